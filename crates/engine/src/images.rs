//! Images in the engine: the content store, image database and snapshotter of `berth-image`
//! attached under `<data-root>/image`, and the operations the API serves on them (pull with
//! progress, list, inspect, tag, remove, history, save, load, push), publishing image events.
//! Names are normalised with the daemon's registry settings (default registry, insecure
//! registries) before they reach the image database.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use berth_image::auth::Credentials;
use berth_image::images::{ImageRecord, ImageStore};
use berth_image::progress::ProgressEvent;
use berth_image::reference::{Reference, RegistrySettings};
use berth_image::snapshot::Snapshotter;
use berth_image::store::ContentStore;
use berth_image::{archive, pull, push};
use serde::Deserialize;

use crate::events::{Event, EventBus};
use crate::ErrorKind;

/// Errors of the image side of the engine.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("open image store under {path}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid reference format: {0}")]
    Reference(#[source] berth_image::reference::ReferenceError),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] berth_image::images::ImageError),
    #[error(transparent)]
    Content(#[from] berth_image::store::StoreError),
    #[error(transparent)]
    Pull(Box<pull::PullError>),
    #[error(transparent)]
    Push(Box<push::PushError>),
    #[error(transparent)]
    Archive(Box<archive::ArchiveError>),
    #[error("conflict: unable to remove repository reference {name:?} (must force) - container {container} is using its referenced image {image}")]
    InUse {
        name: String,
        container: String,
        image: String,
    },
    #[error("conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories")]
    MultipleTags { id: String },
    #[error("login to {registry} failed")]
    Login {
        registry: String,
        #[source]
        source: Box<berth_image::registry::RegistryError>,
    },
    #[error("image config {id} is not valid JSON")]
    Config {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<pull::PullError> for ImageError {
    fn from(e: pull::PullError) -> Self {
        ImageError::Pull(Box::new(e))
    }
}

impl From<push::PushError> for ImageError {
    fn from(e: push::PushError) -> Self {
        ImageError::Push(Box::new(e))
    }
}

impl From<archive::ArchiveError> for ImageError {
    fn from(e: archive::ArchiveError) -> Self {
        ImageError::Archive(Box::new(e))
    }
}

impl ImageError {
    pub fn kind(&self) -> ErrorKind {
        use berth_image::images::ImageError as S;
        match self {
            ImageError::NotFound(_) | ImageError::Store(S::NotFound(_)) => ErrorKind::NotFound,
            ImageError::Archive(e) if matches!(**e, archive::ArchiveError::NoSuchImage(_)) => {
                ErrorKind::NotFound
            }
            ImageError::Reference(_) | ImageError::Store(S::BadName(_) | S::Ambiguous { .. }) => {
                ErrorKind::InvalidArgument
            }
            ImageError::Archive(e)
                if matches!(
                    **e,
                    archive::ArchiveError::FetchScheme { .. }
                        | archive::ArchiveError::FetchStatus { .. }
                ) =>
            {
                ErrorKind::InvalidArgument
            }
            ImageError::InUse { .. } | ImageError::MultipleTags { .. } => ErrorKind::Conflict,
            ImageError::Pull(e) => {
                let s = e.to_string();
                if s.contains("not found") || s.contains("unknown") || s.contains("404") {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::Internal
                }
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// One deleted/untagged entry (`DELETE /images/{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Untagged(String),
    Deleted(String),
}

/// One `history` row.
#[derive(Debug, Clone, Default)]
pub struct HistoryItem {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

#[derive(Deserialize, Default)]
struct RawHistory {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    empty_layer: Option<bool>,
}

#[derive(Deserialize, Default)]
struct RawConfigHistory {
    #[serde(default)]
    history: Option<Vec<RawHistory>>,
}

/// The engine's images.
#[derive(Clone)]
pub struct Images {
    content: ContentStore,
    db: ImageStore,
    snapshots: Snapshotter,
    settings: RegistrySettings,
    events: EventBus,
}

fn open_err<E: std::error::Error + Send + Sync + 'static>(
    path: &Path,
) -> impl FnOnce(E) -> ImageError + '_ {
    move |e| ImageError::Open {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

impl Images {
    /// Open (creating) `<data_root>/image/{content,db,snapshots}`.
    pub fn open(
        data_root: &Path,
        settings: RegistrySettings,
        events: EventBus,
    ) -> Result<Self, ImageError> {
        let root = data_root.join("image");
        let content = ContentStore::open(root.join("content")).map_err(open_err(&root))?;
        let db = ImageStore::open(root.join("db")).map_err(open_err(&root))?;
        let snapshots = Snapshotter::open(root.join("snapshots")).map_err(open_err(&root))?;
        Ok(Self {
            content,
            db,
            snapshots,
            settings,
            events,
        })
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn db(&self) -> &ImageStore {
        &self.db
    }

    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Parse a user-given name with the default registry.
    ///
    /// When the default registry is not Docker Hub, names that spell out Docker Hub
    /// (`docker.io/library/busybox`, what the docker CLI sends after normalising) go to the
    /// default registry too: berth never reaches docker.io unless it is the default.
    pub fn parse(&self, name: &str) -> Result<Reference, ImageError> {
        let mut n = name;
        if self.settings.default_registry != berth_image::reference::DOCKER_HUB {
            for hub in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
                if let Some(rest) = n.strip_prefix(hub) {
                    n = rest;
                }
            }
        }
        self.settings.parse(n).map_err(ImageError::Reference)
    }

    /// The name as docker shows it: `busybox:latest` for the default registry's `library/`
    /// images, the full name otherwise.
    pub fn familiar(&self, full: &str) -> String {
        let prefix = format!("{}/", self.settings.default_registry);
        match full.strip_prefix(&prefix) {
            // `R/library/x` is `x`; `R/ns/x` is `ns/x`; `R/x` must stay whole (a short `x`
            // means `R/library/x`)
            Some(rest) => match rest.strip_prefix("library/") {
                Some(short) => short.to_string(),
                None if rest
                    .split(['@', ':'])
                    .next()
                    .is_some_and(|p| p.contains('/')) =>
                {
                    rest.to_string()
                }
                None => full.to_string(),
            },
            None => full.to_string(),
        }
    }

    /// Find an image by id, id prefix, full or short name.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, ImageError> {
        if let Some(r) = self.db.get(name) {
            return Ok(r);
        }
        if let Ok(reference) = self.parse(name) {
            if let Some(r) = self.db.get(&reference.to_string()) {
                return Ok(r);
            }
        }
        Err(ImageError::NotFound(name.to_string()))
    }

    /// The raw image config JSON (the blob whose digest is the image id).
    pub fn config_json(&self, rec: &ImageRecord) -> Result<Vec<u8>, ImageError> {
        Ok(self.content.read(&rec.id)?)
    }

    /// Pull `name` (tag or digest given separately as the API does), reporting progress.
    /// `platform` picks from an index (default linux/amd64).
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: Option<pull::Platform>,
        credentials: Option<Credentials>,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<ImageRecord, ImageError> {
        let opts = pull::PullOptions {
            settings: self.settings.clone(),
            credentials,
            platform,
            ..pull::PullOptions::default()
        };
        let rec = pull::pull(
            reference,
            &opts,
            &self.content,
            &self.db,
            &self.snapshots,
            progress,
        )
        .await?;
        self.publish("pull", &reference.to_string(), &reference.to_string());
        Ok(rec)
    }

    /// Push `name` to its registry.
    pub async fn push(
        &self,
        reference: &Reference,
        credentials: Option<Credentials>,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<(), ImageError> {
        let opts = push::PushOptions {
            settings: self.settings.clone(),
            credentials,
            ..push::PushOptions::default()
        };
        push::push(reference, &opts, &self.content, &self.db, progress).await?;
        self.publish("push", &reference.to_string(), &reference.to_string());
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(self.db.list()?)
    }

    /// `docker tag SRC REPO[:TAG]`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<(), ImageError> {
        let rec = self.resolve(source)?;
        self.db.tag(&rec.id.to_string(), &target.to_string())?;
        self.publish("tag", &rec.id.to_string(), &target.to_string());
        Ok(())
    }

    /// `docker rmi`: untag a name, delete the image when its last name goes (or when given by
    /// id). `used_by` says which container (if any) uses an image id.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        used_by: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Deleted>, ImageError> {
        let rec = self.resolve(name)?;
        let id = rec.id.to_string();
        let by_id = id == name
            || id
                .strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(name))
            || name.starts_with("sha256:");
        let mut out = Vec::new();
        if !force {
            if let Some(c) = used_by(&id) {
                return Err(ImageError::InUse {
                    name: name.to_string(),
                    container: c,
                    image: rec.id.short().to_string(),
                });
            }
        }
        if !by_id && rec.repo_tags.len() > 1 {
            let full = self.full_tag(&rec, name);
            self.db.untag(&full)?;
            out.push(Deleted::Untagged(self.familiar(&full)));
            self.publish("untag", &id, &full);
            return Ok(out);
        }
        if by_id && rec.repo_tags.len() > 1 && !force {
            return Err(ImageError::MultipleTags {
                id: rec.id.short().to_string(),
            });
        }
        for t in &rec.repo_tags {
            out.push(Deleted::Untagged(self.familiar(t)));
        }
        for d in &rec.repo_digests {
            out.push(Deleted::Untagged(self.familiar(d)));
        }
        self.db.remove(&id)?;
        for l in &rec.layers {
            out.push(Deleted::Deleted(l.to_string()));
        }
        out.insert(
            rec.repo_tags.len() + rec.repo_digests.len(),
            Deleted::Deleted(id.clone()),
        );
        self.gc();
        self.publish("delete", &id, &id);
        Ok(out)
    }

    fn full_tag(&self, rec: &ImageRecord, name: &str) -> String {
        if rec.repo_tags.iter().any(|t| t == name) {
            return name.to_string();
        }
        self.parse(name)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| name.to_string())
    }

    /// Remove blobs and snapshots no image references any more.
    pub fn gc(&self) {
        match self.db.gc_roots() {
            Ok(roots) => {
                if let Err(e) = self.content.gc(&roots) {
                    tracing::warn!(error = %e, "content gc");
                }
            }
            Err(e) => tracing::warn!(error = %e, "image gc roots"),
        }
        match self.db.used_chain_ids() {
            Ok(used) => {
                if let Err(e) = self.snapshots.prune(&used) {
                    tracing::warn!(error = %e, "snapshot prune");
                }
            }
            Err(e) => tracing::warn!(error = %e, "image chain ids"),
        }
    }

    /// `docker history`: config history, newest first, layer sizes from the snapshots.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>, ImageError> {
        let rec = self.resolve(name)?;
        let raw = self.config_json(&rec)?;
        let cfg: RawConfigHistory =
            serde_json::from_slice(&raw).map_err(|source| ImageError::Config {
                id: rec.id.to_string(),
                source,
            })?;
        let chain = rec.chain_ids();
        let mut layer = 0usize;
        let mut items = Vec::new();
        let hist = cfg.history.unwrap_or_default();
        for h in &hist {
            let size = if h.empty_layer.unwrap_or(false) {
                0
            } else {
                let s = chain
                    .get(layer)
                    .and_then(|c| self.snapshots.size(c).ok())
                    .unwrap_or(0);
                layer += 1;
                s as i64
            };
            items.push(HistoryItem {
                id: "<missing>".into(),
                created: h.created.as_deref().and_then(berth_api_time).unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: vec![],
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        if items.is_empty() {
            for c in &chain {
                items.push(HistoryItem {
                    id: "<missing>".into(),
                    size: self.snapshots.size(c).unwrap_or(0) as i64,
                    ..HistoryItem::default()
                });
            }
        }
        items.reverse();
        if let Some(first) = items.first_mut() {
            first.id = rec.id.to_string();
            first.tags = rec.repo_tags.iter().map(|t| self.familiar(t)).collect();
        }
        Ok(items)
    }

    /// `docker save`.
    pub fn save<W: Write>(&self, names: &[String], out: W) -> Result<(), ImageError> {
        let mut full = Vec::new();
        for n in names {
            let rec = self.resolve(n)?;
            match self.parse(n) {
                Ok(r) if rec.repo_tags.contains(&r.to_string()) => full.push(r.to_string()),
                _ => full.push(rec.id.to_string()),
            }
        }
        archive::save(&self.content, &self.db, &full, out)?;
        Ok(())
    }

    /// `docker load`: returns the loaded names (familiar) or ids.
    pub fn load<R: Read>(&self, input: R) -> Result<Vec<String>, ImageError> {
        let unpack = self
            .snapshots
            .unpack_options(&berth_image::layer::UnpackOptions::default());
        let loaded = archive::load(&self.content, &self.db, &self.snapshots, input, &unpack)?;
        let mut out = Vec::new();
        for l in loaded {
            if l.tags.is_empty() {
                out.push(format!("Loaded image ID: {}", l.record.id));
            }
            for t in &l.tags {
                out.push(format!("Loaded image: {}", self.familiar(t)));
            }
            self.publish("load", &l.record.id.to_string(), &l.record.id.to_string());
        }
        Ok(out)
    }

    /// `docker import`: a root filesystem tarball (plain, gzip or zstd) becomes a single-layer
    /// image named `opts.tag` (if any) with the config fields `opts` gives.
    pub fn import<R: Read>(
        &self,
        input: R,
        opts: &archive::ImportOptions,
    ) -> Result<ImageRecord, ImageError> {
        let unpack = berth_image::layer::UnpackOptions::default();
        // The name is resolved against the default registry, like every other name here.
        let mut opts = opts.clone();
        if let Some(t) = &opts.tag {
            let mut r = self.parse(t)?;
            if r.tag().is_none() && r.digest().is_none() {
                r = r.with_tag("latest").map_err(ImageError::Reference)?;
            }
            opts.tag = Some(r.to_string());
        }
        let rec = archive::import(
            &self.content,
            &self.db,
            &self.snapshots,
            input,
            &unpack,
            &opts,
        )?;
        let id = rec.id.to_string();
        let name = rec.repo_tags.first().cloned().unwrap_or_else(|| id.clone());
        self.publish("import", &id, &name);
        Ok(rec)
    }

    /// `docker import URL`: downloads the tarball next to the content store, then imports it
    /// like [`Images::import`]; the download is removed either way.
    pub async fn import_url(
        &self,
        url: &str,
        opts: &archive::ImportOptions,
    ) -> Result<ImageRecord, ImageError> {
        fn io(op: &str) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
            move |source| {
                ImageError::Archive(Box::new(archive::ArchiveError::Io {
                    op: op.to_string(),
                    source,
                }))
            }
        }
        let tmp = tempfile::NamedTempFile::new_in(self.content.root())
            .map_err(io("create a download file in the content store"))?;
        let mut file = tmp.reopen().map_err(io("open the download file"))?;
        archive::fetch(url, &mut file).await?;
        let images = self.clone();
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || {
            let input = std::fs::File::open(tmp.path()).map_err(io("read the download file"))?;
            images.import(std::io::BufReader::new(input), &opts)
        })
        .await
        .map_err(|e| io("import the download")(std::io::Error::other(e.to_string())))?
    }

    /// `POST /auth`: checks `username`/`password` against `server` (`GET /v2/`, answering a
    /// Bearer challenge like `docker login`); nothing is stored, the client keeps credentials.
    /// An empty server or Docker Hub's names mean the default registry; returns the registry
    /// that was checked.
    pub async fn verify_login(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<String, ImageError> {
        let mut registry = berth_image::reference::normalize_registry(server);
        if server.trim().is_empty() || registry == berth_image::reference::DOCKER_HUB {
            registry = self.settings.default_registry.clone();
        }
        let login = |source| ImageError::Login {
            registry: registry.clone(),
            source: Box::new(source),
        };
        let client = berth_image::registry::RegistryClient::new(
            &registry,
            &self.settings,
            Some(Credentials::basic(username, password)),
        )
        .map_err(login)?;
        client.ping().await.map_err(login)?;
        Ok(registry)
    }

    /// Whether a [`ImageError::Login`] was the registry refusing the credentials (not a network
    /// or protocol failure).
    pub fn is_unauthorized(e: &ImageError) -> bool {
        use berth_image::registry::RegistryError as R;
        match e {
            ImageError::Login { source, .. } => match &**source {
                R::Unauthorized { .. } | R::Token { .. } => true,
                R::Api { status, .. } => *status == 401 || *status == 403,
                _ => false,
            },
            _ => false,
        }
    }

    pub fn count(&self) -> usize {
        self.db.list().map(|l| l.len()).unwrap_or(0)
    }

    fn publish(&self, action: &str, id: &str, name: &str) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), self.familiar(name));
        self.events.publish(Event::now("image", action, id, attrs));
    }
}

/// RFC 3339 → Unix seconds.
fn berth_api_time(s: &str) -> Option<i64> {
    berth_api::time::parse_timestamp(s)
        .ok()
        .map(|t| t.unix_nanos() / 1_000_000_000)
}
