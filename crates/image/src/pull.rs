//! `pull`: reference → registry → content store + snapshots + image record.
//!
//! The manifest is resolved (an index or manifest list picks the wanted platform, linux/amd64 by
//! default), the config fetched and verified, then every layer whose snapshot (chain id) is not
//! already there is downloaded concurrently. Each download is a pipeline: the async task reads the
//! HTTP body and hands chunks over a bounded channel to a blocking thread, which writes them into
//! the content store's [`BlobWriter`] (hashing as it goes) while the same bytes feed
//! [`layer::unpack`] into a fresh snapshot — download, decompression and file creation overlap.
//! A layer is kept only when its blob digest and its diff id both match what manifest and config
//! say; on any failure everything this pull created (blobs, snapshots) is removed and no image
//! record is written. Mirrors configured for the registry are tried first.
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::auth::{AuthError, AuthStore, Credentials};
use crate::digest::{Digest, DigestError};
use crate::images::manifest::select_platform;
use crate::images::{ImageError, ImageRecord, ImageStore};
use crate::layer::{self, Compression, LayerError, UnpackOptions};
use crate::lease::Lease;
use crate::progress::{LayerState, ProgressEvent, ProgressFn};
use crate::reference::{Reference, RegistrySettings};
use crate::registry::{
    FetchedManifest, RegistryClient, RegistryError, RetryPolicy, DOCKER_MANIFEST_LIST, OCI_INDEX,
};
use crate::snapshot::{self, SnapshotError, Snapshotter};
use crate::store::{ContentStore, StoreError};

/// Chunks buffered between a download and its unpacking thread (each up to ~16–64 KiB).
const PIPE_DEPTH: usize = 64;
/// At most this often a `Downloading` event per layer.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Errors of a pull; each names the image or layer concerned.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Talking to the registry failed.
    #[error("pull {reference}")]
    Registry {
        /// The reference pulled.
        reference: String,
        /// Cause.
        #[source]
        source: RegistryError,
    },
    /// Stored credentials could not be read.
    #[error("pull {reference}: reading credentials")]
    Auth {
        /// The reference pulled.
        reference: String,
        /// Cause.
        #[source]
        source: AuthError,
    },
    /// The manifest, index or config is not what the spec says.
    #[error("pull {reference}: invalid {what}: {reason}")]
    Invalid {
        /// The reference pulled.
        reference: String,
        /// manifest, index, config.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The index has nothing for the wanted platform.
    #[error("pull {reference}: no manifest for platform {wanted} (available: {available})")]
    NoPlatform {
        /// The reference pulled.
        reference: String,
        /// os/arch[/variant] asked for.
        wanted: String,
        /// What the index offers.
        available: String,
    },
    /// A single-platform image is not of the platform asked for.
    #[error(
        "pull {reference}: image is {actual}, which does not match the specified platform {wanted}"
    )]
    PlatformMismatch {
        /// The reference pulled.
        reference: String,
        /// os/arch[/variant] asked for.
        wanted: String,
        /// What the image's config says.
        actual: String,
    },
    /// A layer's content did not hash to its manifest digest, or its diff id to the config's.
    #[error("pull {reference}: layer {layer}: {what} mismatch: expected {expected}, got {actual}")]
    LayerMismatch {
        /// The reference pulled.
        reference: String,
        /// The layer's manifest digest.
        layer: String,
        /// digest, size or diff id.
        what: &'static str,
        /// Expected value.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// Writing into the content store failed.
    #[error("pull {reference}: content store")]
    Store {
        /// The reference pulled.
        reference: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// Unpacking a layer failed.
    #[error("pull {reference}: unpacking layer {layer}")]
    Unpack {
        /// The reference pulled.
        reference: String,
        /// The layer's manifest digest.
        layer: String,
        /// Cause.
        #[source]
        source: LayerError,
    },
    /// A snapshot operation failed.
    #[error("pull {reference}: snapshot for layer {layer}")]
    Snapshot {
        /// The reference pulled.
        reference: String,
        /// The layer's manifest digest.
        layer: String,
        /// Cause.
        #[source]
        source: SnapshotError,
    },
    /// Recording the image failed.
    #[error("pull {reference}: recording the image")]
    Images {
        /// The reference pulled.
        reference: String,
        /// Cause.
        #[source]
        source: ImageError,
    },
    /// The unpacking thread died.
    #[error("pull {reference}: unpack thread for layer {layer} failed: {reason}")]
    Thread {
        /// The reference pulled.
        reference: String,
        /// The layer's manifest digest.
        layer: String,
        /// Why.
        reason: String,
    },
}

/// The platform type pulls choose by (one type for the whole crate).
pub use crate::images::manifest::Platform;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform to pick from an index; `None` = the host's. When given, a single-platform
    /// image must also be this platform (docker's check), not just any image.
    pub platform: Option<Platform>,
    /// Default registry, mirrors, insecure registries.
    pub settings: RegistrySettings,
    /// Credentials to use (e.g. from the API's `X-Registry-Auth`); else looked up in `auth`.
    pub credentials: Option<Credentials>,
    /// Where stored logins are.
    pub auth: Option<AuthStore>,
    /// Layers downloaded at once.
    pub max_concurrent_downloads: usize,
    /// Retries of transient registry failures.
    pub retry: RetryPolicy,
    /// How layers are unpacked into snapshots.
    pub unpack: UnpackOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            settings: RegistrySettings::from_env(),
            credentials: None,
            auth: None,
            max_concurrent_downloads: 3,
            retry: RetryPolicy::default(),
            unpack: UnpackOptions::default(),
        }
    }
}

/// What this pull made (removed again if it fails) and what it holds against gc and other
/// pulls' undo while it runs.
struct Created {
    blobs: Mutex<Vec<Digest>>,
    snapshots: Mutex<Vec<Digest>>,
    blob_lease: Mutex<Lease>,
    snapshot_lease: Mutex<Lease>,
}

impl Created {
    fn new(store: &ContentStore, snapshotter: &Snapshotter) -> Created {
        Created {
            blobs: Mutex::default(),
            snapshots: Mutex::default(),
            blob_lease: Mutex::new(store.leases().lease()),
            snapshot_lease: Mutex::new(snapshotter.leases().lease()),
        }
    }

    /// Publishes a layer's snapshot; it is this pull's to undo only if this call published it
    /// (an identical snapshot committed first by another pull is that pull's).
    fn commit_snapshot(
        &self,
        prepared: &snapshot::Prepared,
        size: u64,
    ) -> Result<(), SnapshotError> {
        if prepared.commit(size)? {
            self.snapshots
                .lock()
                .expect("created list lock poisoned")
                .push(prepared.chain_id().clone());
        }
        Ok(())
    }

    fn hold_blob(&self, d: &Digest) {
        self.blob_lease.lock().expect("lease lock poisoned").hold(d);
    }
}

struct LayerJob {
    index: usize,
    digest: Digest,
    size: u64,
    media_type: String,
    diff_id: Digest,
    chain_id: Digest,
    parent: Option<Digest>,
}

/// Pulls `reference` into `store`, `snapshotter` and `images`, reporting through `progress`.
pub async fn pull(
    reference: &Reference,
    opts: &PullOptions,
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    progress: ProgressFn<'_>,
) -> Result<ImageRecord, PullError> {
    let created = Created::new(store, snapshotter);
    let result = pull_inner(
        reference,
        opts,
        store,
        images,
        snapshotter,
        progress,
        &created,
    )
    .await;
    if result.is_err() {
        undo(&created, store, snapshotter);
    }
    result
}

/// Remove what a failed pull made, except what another in-flight pull holds (it may be about to
/// record an image on it).
fn undo(created: &Created, store: &ContentStore, snapshotter: &Snapshotter) {
    let snapshot_lease = created.snapshot_lease.lock().expect("lease lock poisoned");
    for chain in created
        .snapshots
        .lock()
        .expect("created list lock poisoned")
        .iter()
        .rev()
    {
        if snapshot_lease.shared(chain) {
            continue;
        }
        if let Err(e) = snapshotter.remove(chain) {
            tracing::warn!(chain_id = %chain, error = %e, "removing snapshot of failed pull");
        }
    }
    let blob_lease = created.blob_lease.lock().expect("lease lock poisoned");
    for blob in created
        .blobs
        .lock()
        .expect("created list lock poisoned")
        .iter()
    {
        if blob_lease.shared(blob) {
            continue;
        }
        if let Err(e) = store.delete(blob) {
            tracing::warn!(digest = %blob, error = %e, "removing blob of failed pull");
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn pull_inner(
    reference: &Reference,
    opts: &PullOptions,
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    progress: ProgressFn<'_>,
    created: &Created,
) -> Result<ImageRecord, PullError> {
    let rs = reference.to_string();
    let reg_err = |source| PullError::Registry {
        reference: rs.clone(),
        source,
    };
    let invalid = |what: &'static str, reason: String| PullError::Invalid {
        reference: rs.clone(),
        what,
        reason,
    };
    let store_err = |source| PullError::Store {
        reference: rs.clone(),
        source,
    };
    progress(ProgressEvent::Resolving {
        repository: reference.repository().to_string(),
        reference: reference.manifest_reference().to_string(),
    });

    let (client, top) = resolve(reference, opts).await?;
    let repo = reference.repository();

    // index → platform manifest
    let (index_digest, manifest) = if is_index(&top) {
        let index: ImageIndex =
            serde_json::from_slice(&top.bytes).map_err(|e| invalid("index", e.to_string()))?;
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let desc = select_platform(&index, &want).map_err(|_| PullError::NoPlatform {
            reference: rs.clone(),
            wanted: want.to_string(),
            available: available_platforms(&index),
        })?;
        let digest = desc.digest().to_string();
        let m = client.get_manifest(repo, &digest).await.map_err(reg_err)?;
        (Some(top), m)
    } else {
        (None, top)
    };
    let parsed: ImageManifest =
        serde_json::from_slice(&manifest.bytes).map_err(|e| invalid("manifest", e.to_string()))?;
    let manifest_digest =
        parse_digest(&manifest.digest).map_err(|e| invalid("manifest", e.to_string()))?;

    // config
    let config_desc = parsed.config();
    let config_digest = parse_digest(config_desc.digest().as_ref())
        .map_err(|e| invalid("config", e.to_string()))?;
    let config_bytes = fetch_small_blob(
        &client,
        repo,
        config_desc.digest().as_ref(),
        config_desc.size(),
    )
    .await
    .map_err(reg_err)?;
    let actual = Digest::sha256_of(&config_bytes);
    if actual != config_digest {
        return Err(PullError::LayerMismatch {
            reference: rs.clone(),
            layer: config_digest.to_string(),
            what: "config digest",
            expected: config_digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| invalid("config", e.to_string()))?;
    if let (None, Some(want)) = (&index_digest, &opts.platform) {
        if !want.matches_config(&config) {
            let mut actual = format!("{}/{}", config.os(), config.architecture());
            if let Some(v) = config.variant() {
                actual = format!("{actual}/{v}");
            }
            return Err(PullError::PlatformMismatch {
                reference: rs.clone(),
                wanted: want.to_string(),
                actual,
            });
        }
    }
    let diff_ids: Vec<Digest> = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| parse_digest(d))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("config", e.to_string()))?;
    if diff_ids.len() != parsed.layers().len() {
        return Err(invalid(
            "config",
            format!(
                "{} diff ids for {} layers",
                diff_ids.len(),
                parsed.layers().len()
            ),
        ));
    }
    let chain_ids = snapshot::chain_ids(&diff_ids);
    // from here on this pull makes or reuses content: hold it against gc and other pulls' undo
    {
        let mut lease = created.snapshot_lease.lock().expect("lease lock poisoned");
        for c in &chain_ids {
            lease.hold(c);
        }
    }
    created.hold_blob(&config_digest);
    created.hold_blob(&manifest_digest);
    if let Some(i) = &index_digest {
        if let Ok(d) = parse_digest(&i.digest) {
            created.hold_blob(&d);
        }
    }

    // layers
    let mut jobs = Vec::new();
    let mut layer_digests = Vec::new();
    for (i, desc) in parsed.layers().iter().enumerate() {
        let digest =
            parse_digest(desc.digest().as_ref()).map_err(|e| invalid("manifest", e.to_string()))?;
        layer_digests.push(digest.clone());
        created.hold_blob(&digest);
        let id = short_id(&digest);
        if snapshotter.exists(&chain_ids[i]) {
            progress(ProgressEvent::Layer {
                id,
                state: LayerState::AlreadyExists,
            });
            continue;
        }
        progress(ProgressEvent::Layer {
            id,
            state: LayerState::PullingFsLayer,
        });
        jobs.push(LayerJob {
            index: i,
            digest,
            size: desc.size(),
            media_type: desc.media_type().to_string(),
            diff_id: diff_ids[i].clone(),
            chain_id: chain_ids[i].clone(),
            parent: i.checked_sub(1).map(|p| chain_ids[p].clone()),
        });
    }
    // overlay snapshots are independent directories and unpack in parallel; copy-mode snapshots
    // start from their committed parent, so layers go one after the other
    let concurrency = match snapshotter.mode() {
        snapshot::Mode::Overlay => opts.max_concurrent_downloads.max(1),
        snapshot::Mode::Copy => 1,
    };
    for job in jobs.iter().skip(concurrency) {
        progress(ProgressEvent::Layer {
            id: short_id(&job.digest),
            state: LayerState::Waiting,
        });
    }
    // indices, not references, into the stream: keeps the future Send (higher-ranked closure
    // lifetimes otherwise defeat the auto trait)
    let sizes: Vec<(usize, u64)> = stream::iter(0..jobs.len())
        .map(|i| {
            pull_layer(
                &client,
                repo,
                &rs,
                &jobs[i],
                opts,
                store,
                snapshotter,
                progress,
                created,
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let mut uncompressed: u64 = sizes.iter().map(|(_, s)| s).sum();
    for (i, chain) in chain_ids.iter().enumerate() {
        if !jobs.iter().any(|j| j.index == i) {
            uncompressed += snapshotter.size(chain).unwrap_or(0);
        }
    }

    // manifest (+ index) and config into the content store, then the record
    for bytes in [
        Some(&manifest.bytes),
        index_digest.as_ref().map(|i| &i.bytes),
    ]
    .into_iter()
    .flatten()
    {
        let d = Digest::sha256_of(bytes);
        if !store.has(&d) {
            store.write_bytes(bytes).map_err(store_err)?;
            created
                .blobs
                .lock()
                .expect("created list lock poisoned")
                .push(d);
        }
    }
    if !store.has(&config_digest) {
        store.write_bytes(&config_bytes).map_err(store_err)?;
        created
            .blobs
            .lock()
            .expect("created list lock poisoned")
            .push(config_digest.clone());
    }
    let top_digest = match &index_digest {
        Some(i) => i.digest.clone(),
        None => manifest.digest.clone(),
    };
    let mut repo_tags = Vec::new();
    if let Some(tag) = reference.tag() {
        repo_tags.push(format!("{}:{tag}", reference.name()));
    }
    let record = ImageRecord {
        id: config_digest,
        manifest: manifest_digest,
        manifest_media_type: manifest.media_type.clone(),
        index: index_digest
            .as_ref()
            .map(|i| parse_digest(&i.digest))
            .transpose()
            .map_err(|e| invalid("index", e.to_string()))?,
        repo_tags,
        repo_digests: vec![format!("{}@{top_digest}", reference.name())],
        created: config.created().clone(),
        size: uncompressed,
        layers: layer_digests,
        diff_ids,
        stored_at: None,
    };
    let existed = images.get(&record.id.to_string()).is_some();
    images
        .put(record.clone())
        .map_err(|source| PullError::Images {
            reference: rs.clone(),
            source,
        })?;
    progress(ProgressEvent::Digest {
        tag: None,
        digest: top_digest,
        size: None,
    });
    let status = if existed && jobs.is_empty() {
        format!("Status: Image is up to date for {}", reference.familiar())
    } else {
        format!(
            "Status: Downloaded newer image for {}",
            reference.familiar()
        )
    };
    progress(ProgressEvent::Status { message: status });
    images
        .resolve(&record.id.to_string())
        .map_err(|source| PullError::Images {
            reference: rs,
            source,
        })
}

/// Finds the manifest on the first endpoint (mirrors, then the registry) that has it.
async fn resolve(
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(RegistryClient, FetchedManifest), PullError> {
    let rs = reference.to_string();
    let endpoints = opts.settings.endpoints(reference.registry());
    let mut last = None;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let creds = match &opts.credentials {
            Some(c) if endpoint == reference.registry() => Some(c.clone()),
            _ => match &opts.auth {
                Some(store) => {
                    store
                        .credentials_for(endpoint)
                        .map_err(|source| PullError::Auth {
                            reference: rs.clone(),
                            source,
                        })?
                }
                None => None,
            },
        };
        let client = RegistryClient::new(endpoint, &opts.settings, creds)
            .map_err(|source| PullError::Registry {
                reference: rs.clone(),
                source,
            })?
            .with_retry(opts.retry);
        match client
            .get_manifest(reference.repository(), reference.manifest_reference())
            .await
        {
            Ok(m) => return Ok((client, m)),
            Err(e) if i + 1 < endpoints.len() => {
                tracing::info!(mirror = %endpoint, error = %e, "mirror failed, trying the next endpoint");
                last = Some(e);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(PullError::Registry {
        reference: rs,
        source: last.expect("endpoints always holds the registry itself"),
    })
}

fn is_index(m: &FetchedManifest) -> bool {
    let mt = m.media_type.split(';').next().unwrap_or("").trim();
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

fn available_platforms(index: &ImageIndex) -> String {
    let v: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn parse_digest(s: &str) -> Result<Digest, DigestError> {
    s.parse()
}

fn short_id(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

async fn fetch_small_blob(
    client: &RegistryClient,
    repo: &str,
    digest: &str,
    size: u64,
) -> Result<Vec<u8>, RegistryError> {
    let mut d = client.get_blob(repo, digest).await?;
    let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
    while let Some(chunk) = d.chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > size {
            // more than the descriptor says: the digest check that follows refuses it
            break;
        }
    }
    Ok(out)
}

/// A `Read` over the chunks a download task sends, copying every byte into the content store
/// writer as it passes (so the blob on disk is exactly what was unpacked).
struct TeeReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
    blob: crate::store::BlobWriter,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.blob.write_all(&self.cur[..n])?;
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// A layer whose blob is already in the content store (loaded, or pulled before and its snapshot
/// pruned since) is unpacked from that blob: nothing is downloaded. The blob is checked again while
/// unpacking (compressed digest and diff id).
#[allow(clippy::too_many_arguments)]
async fn unpack_local(
    rs: &str,
    job: &LayerJob,
    compression: Compression,
    opts: &PullOptions,
    store: &ContentStore,
    snapshotter: &Snapshotter,
    progress: ProgressFn<'_>,
    created: &Created,
) -> Result<(usize, u64), PullError> {
    let id = short_id(&job.digest);
    let layer = job.digest.to_string();
    let file = store
        .open_blob(&job.digest)
        .map_err(|source| PullError::Store {
            reference: rs.to_string(),
            source,
        })?;
    let prepared = snapshotter
        .prepare(&job.chain_id, job.parent.as_ref())
        .map_err(|source| PullError::Snapshot {
            reference: rs.to_string(),
            layer: layer.clone(),
            source,
        })?;
    progress(ProgressEvent::Layer {
        id: id.clone(),
        state: LayerState::Extracting {
            current: 0,
            total: Some(job.size),
        },
    });
    let dest = prepared.path().to_path_buf();
    let unpack_opts = snapshotter.unpack_options(&opts.unpack);
    let joined = tokio::task::spawn_blocking(move || {
        layer::unpack(
            std::io::BufReader::with_capacity(256 * 1024, file),
            compression,
            &dest,
            &unpack_opts,
        )
    })
    .await;
    let fail = |e: PullError| {
        if let Err(err) = prepared.abort() {
            tracing::warn!(layer = %layer, error = %err, "removing partial snapshot");
        }
        e
    };
    let stats = match joined {
        Err(e) => {
            return Err(fail(PullError::Thread {
                reference: rs.to_string(),
                layer: layer.clone(),
                reason: e.to_string(),
            }))
        }
        Ok(Err(source)) => {
            return Err(fail(PullError::Unpack {
                reference: rs.to_string(),
                layer: layer.clone(),
                source,
            }))
        }
        Ok(Ok(stats)) => stats,
    };
    for (what, expected, actual) in [
        ("digest", &job.digest, &stats.compressed_digest),
        ("diff id", &job.diff_id, &stats.diff_id),
    ] {
        if expected != actual {
            return Err(fail(PullError::LayerMismatch {
                reference: rs.to_string(),
                layer: layer.clone(),
                what,
                expected: expected.to_string(),
                actual: actual.to_string(),
            }));
        }
    }
    created
        .commit_snapshot(&prepared, stats.uncompressed_size)
        .map_err(|source| PullError::Snapshot {
            reference: rs.to_string(),
            layer: layer.clone(),
            source,
        })?;
    progress(ProgressEvent::Layer {
        id,
        state: LayerState::Complete,
    });
    Ok((job.index, stats.uncompressed_size))
}

/// Downloads one layer into the store and its snapshot; returns (index, uncompressed size).
#[allow(clippy::too_many_arguments)]
async fn pull_layer(
    client: &RegistryClient,
    repo: &str,
    rs: &str,
    job: &LayerJob,
    opts: &PullOptions,
    store: &ContentStore,
    snapshotter: &Snapshotter,
    progress: ProgressFn<'_>,
    created: &Created,
) -> Result<(usize, u64), PullError> {
    let id = short_id(&job.digest);
    let layer = job.digest.to_string();
    let reg_err = |source| PullError::Registry {
        reference: rs.to_string(),
        source,
    };
    let compression =
        Compression::from_media_type(&job.media_type).map_err(|source| PullError::Unpack {
            reference: rs.to_string(),
            layer: layer.clone(),
            source,
        })?;
    if store.has(&job.digest) {
        return unpack_local(
            rs,
            job,
            compression,
            opts,
            store,
            snapshotter,
            progress,
            created,
        )
        .await;
    }
    let blob = store
        .writer(Some(&job.digest), Some(job.size))
        .map_err(|source| PullError::Store {
            reference: rs.to_string(),
            source,
        })?;
    let prepared = snapshotter
        .prepare(&job.chain_id, job.parent.as_ref())
        .map_err(|source| PullError::Snapshot {
            reference: rs.to_string(),
            layer: layer.clone(),
            source,
        })?;
    let dest = prepared.path().to_path_buf();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PIPE_DEPTH);
    let unpack_opts = snapshotter.unpack_options(&opts.unpack);
    let worker = tokio::task::spawn_blocking(move || {
        let mut tee = TeeReader {
            rx,
            cur: Bytes::new(),
            blob,
        };
        let stats = layer::unpack(&mut tee, compression, &dest, &unpack_opts);
        // whatever unpack left unread (padding after the tar) still belongs to the blob
        let drained = std::io::copy(&mut tee, &mut std::io::sink());
        (stats, drained.map(|_| ()), tee.blob)
    });

    let download = async {
        let mut d = client.get_blob(repo, &layer).await?;
        let total = d.total().or(Some(job.size));
        let mut last = Instant::now() - PROGRESS_EVERY;
        while let Some(chunk) = d.chunk().await? {
            if tx.send(chunk).await.is_err() {
                // the unpacking side stopped; its error is reported below
                return Ok(false);
            }
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                progress(ProgressEvent::Layer {
                    id: id.clone(),
                    state: LayerState::Downloading {
                        current: d.offset(),
                        total,
                    },
                });
            }
        }
        Ok::<bool, RegistryError>(true)
    };
    let downloaded = download.await;
    drop(tx);
    let (stats, drained, blob) = worker.await.map_err(|e| PullError::Thread {
        reference: rs.to_string(),
        layer: layer.clone(),
        reason: e.to_string(),
    })?;
    let fail = |e: PullError| {
        if let Err(err) = prepared.abort() {
            tracing::warn!(layer = %layer, error = %err, "removing partial snapshot");
        }
        e
    };
    // a broken download explains any unpack error, so it is reported first
    if let Err(e) = downloaded {
        return Err(fail(reg_err(e)));
    }
    progress(ProgressEvent::Layer {
        id: id.clone(),
        state: LayerState::VerifyingChecksum,
    });
    let written = blob.written();
    let committed = blob.commit();
    let stats = match (committed, stats) {
        (Err(StoreError::DigestMismatch { expected, actual }), _) => {
            return Err(fail(PullError::LayerMismatch {
                reference: rs.to_string(),
                layer: layer.clone(),
                what: "digest",
                expected: expected.to_string(),
                actual: actual.to_string(),
            }))
        }
        (
            Err(StoreError::SizeMismatch {
                expected, actual, ..
            }),
            _,
        ) => {
            return Err(fail(PullError::LayerMismatch {
                reference: rs.to_string(),
                layer: layer.clone(),
                what: "size",
                expected: expected.to_string(),
                actual: actual.to_string(),
            }))
        }
        (Err(source), _) => {
            return Err(fail(PullError::Store {
                reference: rs.to_string(),
                source,
            }))
        }
        (Ok(_), Err(source)) => {
            created
                .blobs
                .lock()
                .expect("created list lock poisoned")
                .push(job.digest.clone());
            return Err(fail(PullError::Unpack {
                reference: rs.to_string(),
                layer: layer.clone(),
                source,
            }));
        }
        (Ok(_), Ok(stats)) => {
            created
                .blobs
                .lock()
                .expect("created list lock poisoned")
                .push(job.digest.clone());
            stats
        }
    };
    if let Err(e) = drained {
        return Err(fail(PullError::Thread {
            reference: rs.to_string(),
            layer: layer.clone(),
            reason: format!("draining the layer stream: {e}"),
        }));
    }
    progress(ProgressEvent::Layer {
        id: id.clone(),
        state: LayerState::DownloadComplete,
    });
    if stats.diff_id != job.diff_id {
        return Err(fail(PullError::LayerMismatch {
            reference: rs.to_string(),
            layer: layer.clone(),
            what: "diff id",
            expected: job.diff_id.to_string(),
            actual: stats.diff_id.to_string(),
        }));
    }
    progress(ProgressEvent::Layer {
        id: id.clone(),
        state: LayerState::Extracting {
            current: written,
            total: Some(job.size),
        },
    });
    created
        .commit_snapshot(&prepared, stats.uncompressed_size)
        .map_err(|source| PullError::Snapshot {
            reference: rs.to_string(),
            layer: layer.clone(),
            source,
        })?;
    progress(ProgressEvent::Layer {
        id,
        state: LayerState::Complete,
    });
    Ok((job.index, stats.uncompressed_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn pull_and_push_futures_are_send() {
        // the engine spawns pulls and pushes on its runtime
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path().join("c")).expect("store");
        let images = ImageStore::open(dir.path().join("i")).expect("images");
        let snaps = Snapshotter::open(dir.path().join("s")).expect("snapshots");
        let r = Reference::parse_with_default("busybox", "127.0.0.1:9").expect("reference");
        let opts = PullOptions::default();
        let fut = pull(&r, &opts, &store, &images, &snaps, &crate::progress::ignore);
        assert_send(&fut);
        let popts = crate::push::PushOptions::default();
        let fut = crate::push::push(&r, &popts, &store, &images, &crate::progress::ignore);
        assert_send(&fut);
    }

    #[test]
    fn picks_platform_from_index() {
        let d = |arch: &str, variant: Option<&str>, hex: char| {
            let mut p = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                p["variant"] = v.into();
            }
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", hex.to_string().repeat(64)),
                "size": 1, "platform": p,
            })
        };
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [d("arm", Some("v6"), 'a'), d("arm", Some("v7"), 'b'), d("amd64", None, 'c')],
        }))
        .expect("index");
        let pick = |s: &str| {
            select_platform(&index, &s.parse::<Platform>().expect("platform"))
                .ok()
                .map(|d| d.digest().to_string())
        };
        assert_eq!(
            pick("linux/amd64"),
            Some(format!("sha256:{}", "c".repeat(64)))
        );
        assert_eq!(
            pick("linux/arm/v7"),
            Some(format!("sha256:{}", "b".repeat(64)))
        );
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(
            available_platforms(&index),
            "linux/arm/v6, linux/arm/v7, linux/amd64"
        );
    }
}
