//! `save` / `load` / `import` / `export`: images to and from tar archives.
//!
//! [`save`] writes what docker 25+ writes: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) that is *also* a docker-archive (`manifest.json`, `repositories`), with
//! uncompressed layer tars (whose digests are the diff ids), so both `docker load` and OCI tools
//! accept it. The image id (config digest) is preserved.
//! [`load`] accepts docker-archive (old `docker save` with `<id>/layer.tar` and `<id>.json`, and the
//! new OCI-layout style) and OCI image layouts, as a tar stream or a directory ([`load_dir`]).
//! Archive paths are only ever used as keys — nothing is extracted by path — so a hostile
//! archive cannot write anywhere; every blob goes through the verified content store and every
//! layer through [`crate::layer::unpack`].
//! [`import`] turns a rootfs tarball into a single-layer image with a synthesised config;
//! [`export`] writes a container's merged rootfs as a tar.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};
use crate::images::manifest::{self, media_types, AnyManifest, ManifestError, Platform};
use crate::images::{ImageError, ImageRecord, ImageStore};
use crate::layer::{self, Compression, LayerError, UnpackOptions};
use crate::reference::Reference;
use crate::snapshot::{self, SnapshotError, Snapshotter};
use crate::store::{ContentStore, StoreError};

/// Errors of save/load/import/export.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing the archive stream failed.
    #[error("archive: {op}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// A rootfs tarball URL (`docker import URL`) could not be fetched.
    #[error("import: fetch {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The URL answered with an error status.
    #[error("import: fetch {url}: server answered {status}")]
    FetchStatus { url: String, status: u16 },
    /// Only http and https URLs can be imported from.
    #[error("import: {url:?} is not an http:// or https:// URL")]
    FetchScheme { url: String },
    /// The content store failed.
    #[error("archive: content store")]
    Store(#[from] StoreError),
    /// The image database failed.
    #[error("archive: image store")]
    Images(#[from] ImageError),
    /// A snapshot operation failed.
    #[error("archive: snapshot")]
    Snapshot(#[from] SnapshotError),
    /// A layer failed to unpack.
    #[error("archive: layer {layer}")]
    Layer {
        layer: String,
        #[source]
        source: LayerError,
    },
    /// The archive's tar structure is invalid.
    #[error("archive: malformed tar")]
    Tar(#[from] layer::tar::TarError),
    /// A metadata file is not valid JSON.
    #[error("archive: {file} is invalid")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    /// A manifest problem.
    #[error("archive: manifest")]
    Manifest(#[from] ManifestError),
    /// A digest in the archive is malformed.
    #[error("archive: bad digest")]
    Digest(#[from] DigestError),
    /// The archive references a file it does not contain.
    #[error("archive: {0} is referenced but missing")]
    Missing(String),
    /// Neither manifest.json nor index.json.
    #[error("archive: neither manifest.json (docker-archive) nor index.json (OCI layout) found")]
    UnknownFormat,
    /// A layer's content does not match the config's diff id.
    #[error("archive: layer {layer} has diff id {actual}, the config says {expected}")]
    DiffIdMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    /// The config lists a different number of layers than the manifest.
    #[error("archive: image {image} has {layers} layers but {diff_ids} diff ids")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    /// An image name to save is unknown.
    #[error("archive: no such image: {0}")]
    NoSuchImage(String),
    /// An image name is invalid.
    #[error("archive: invalid image name {name:?}: {reason}")]
    BadName { name: String, reason: String },
}

fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let op = op.into();
    move |source| ArchiveError::Io { op, source }
}

/// One entry of docker-archive's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    /// Path of the config JSON inside the archive.
    pub config: String,
    /// `repo:tag` names (familiar form).
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, base first.
    pub layers: Vec<String>,
}

/// Normalise a name to `host/repo:tag` (docker's `busybox` → `docker.io/library/busybox:latest`).
pub fn normalize_name(name: &str) -> Result<String, ArchiveError> {
    crate::images::normalize_name(name).ok_or_else(|| ArchiveError::BadName {
        name: name.to_owned(),
        reason: "not a valid image reference".into(),
    })
}

fn familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_owned())
}

fn tar_append<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> Result<(), ArchiveError> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
        .map_err(io_err(format!("write {path}")))
}

fn tar_dir<W: Write>(b: &mut tar::Builder<W>, path: &str) -> Result<(), ArchiveError> {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, io::empty())
        .map_err(io_err(format!("write {path}")))
}

/// A layer as it goes into a saved archive: uncompressed, at a path inside the store's ingest dir
/// or straight from the store when it already is an uncompressed tar.
struct SavedLayer {
    diff_id: Digest,
    size: u64,
    path: PathBuf,
    temp: bool,
}

impl Drop for SavedLayer {
    fn drop(&mut self) {
        if self.temp {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn uncompressed_layer(
    store: &ContentStore,
    blob: &Digest,
    expected: &Digest,
) -> Result<SavedLayer, ArchiveError> {
    let mut f = store.open_blob(blob)?;
    let mut head = [0u8; 4];
    let n = read_up_to(&mut f, &mut head).map_err(io_err(format!("read layer {blob}")))?;
    let compression = Compression::sniff(&head[..n]);
    if compression == Compression::None && blob == expected {
        return Ok(SavedLayer {
            diff_id: blob.clone(),
            size: store.size(blob)?,
            path: store.blob_path(blob),
            temp: false,
        });
    }
    let f = store.open_blob(blob)?;
    let reader: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(f))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(f).map_err(io_err(format!("zstd layer {blob}")))?,
        ),
        _ => Box::new(f),
    };
    let tmp =
        store
            .root()
            .join("ingest")
            .join(format!("save-{}-{}", blob.short(), std::process::id()));
    let out = File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
    let mut saved = SavedLayer {
        diff_id: expected.clone(),
        size: 0,
        path: tmp,
        temp: true,
    };
    let mut w = crate::digest::DigestingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
    let mut r = reader;
    io::copy(&mut r, &mut w).map_err(io_err(format!("decompress layer {blob}")))?;
    let (d, size, mut inner) = w.finish();
    inner.flush().map_err(io_err("flush layer"))?;
    if d != *expected {
        return Err(ArchiveError::DiffIdMismatch {
            layer: blob.to_string(),
            expected: expected.clone(),
            actual: d,
        });
    }
    saved.size = size;
    Ok(saved)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Write `names` (names or ids) as one archive to `writer` (see the module doc for the format).
pub fn save<W: Write>(
    store: &ContentStore,
    images: &ImageStore,
    names: &[String],
    writer: W,
) -> Result<(), ArchiveError> {
    // Resolve every name first: a typo fails before anything is written.
    let mut chosen: Vec<(ImageRecord, Vec<String>)> = Vec::new();
    for n in names {
        let rec = images
            .get(n)
            .or_else(|| normalize_name(n).ok().and_then(|full| images.get(&full)));
        let rec = rec.ok_or_else(|| ArchiveError::NoSuchImage(n.clone()))?;
        // A name saves that tag; an id saves the image with all its tags (docker's behaviour).
        let tags: Vec<String> = if rec.repo_tags.iter().any(|t| t == n) {
            vec![n.clone()]
        } else if let Some(full) = normalize_name(n).ok().filter(|f| rec.repo_tags.contains(f)) {
            vec![full]
        } else {
            rec.repo_tags.clone()
        };
        match chosen.iter_mut().find(|(r, _)| r.id == rec.id) {
            Some((_, t)) => {
                for x in tags {
                    if !t.contains(&x) {
                        t.push(x);
                    }
                }
            }
            None => chosen.push((rec, tags)),
        }
    }

    let mut b = tar::Builder::new(writer);
    b.mode(tar::HeaderMode::Deterministic);
    tar_dir(&mut b, "blobs/")?;
    tar_dir(&mut b, "blobs/sha256/")?;
    let mut written: std::collections::HashSet<Digest> = std::collections::HashSet::new();
    let mut layer_sizes: HashMap<Digest, u64> = HashMap::new();
    let mut docker_manifest: Vec<DockerArchiveEntry> = Vec::new();
    let mut index_entries: Vec<serde_json::Value> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

    for (rec, tags) in &chosen {
        let config_bytes = store.read(&rec.id)?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|source| ArchiveError::Json {
                file: format!("config {}", rec.id),
                source,
            })?;
        let diff_ids: Vec<Digest> = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse())
            .collect::<Result<_, _>>()?;
        if diff_ids.len() != rec.layers.len() {
            return Err(ArchiveError::LayerCount {
                image: rec.id.to_string(),
                layers: rec.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        if written.insert(rec.id.clone()) {
            tar_append(
                &mut b,
                &format!("blobs/sha256/{}", rec.id.hex()),
                config_bytes.len() as u64,
                &config_bytes[..],
            )?;
        }
        let mut layer_descs = Vec::new();
        let mut layer_paths = Vec::new();
        for (blob, diff) in rec.layers.iter().zip(&diff_ids) {
            let path = format!("blobs/sha256/{}", diff.hex());
            let size = match layer_sizes.get(diff) {
                // Same layer already written for another image.
                Some(n) => *n,
                None => {
                    let l = uncompressed_layer(store, blob, diff)?;
                    let f = File::open(&l.path)
                        .map_err(io_err(format!("open {}", l.path.display())))?;
                    tar_append(&mut b, &path, l.size, f)?;
                    written.insert(l.diff_id.clone());
                    layer_sizes.insert(l.diff_id.clone(), l.size);
                    l.size
                }
            };
            layer_descs.push(serde_json::json!({"mediaType": media_types::OCI_LAYER_TAR, "digest": diff.to_string(), "size": size}));
            layer_paths.push(path);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": {"mediaType": media_types::OCI_CONFIG, "digest": rec.id.to_string(), "size": config_bytes.len()},
            "layers": layer_descs,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("json values serialise");
        let manifest_digest = Digest::sha256_of(&manifest_bytes);
        if written.insert(manifest_digest.clone()) {
            tar_append(
                &mut b,
                &format!("blobs/sha256/{}", manifest_digest.hex()),
                manifest_bytes.len() as u64,
                &manifest_bytes[..],
            )?;
        }
        let desc = |annotations: Option<serde_json::Value>| {
            let mut d = serde_json::json!({"mediaType": media_types::OCI_MANIFEST, "digest": manifest_digest.to_string(), "size": manifest_bytes.len()});
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if tags.is_empty() {
            index_entries.push(desc(None));
        }
        for t in tags {
            let tag = t
                .rsplit_once(':')
                .filter(|(_, tg)| !tg.contains('/'))
                .map(|(_, tg)| tg.to_owned())
                .unwrap_or_else(|| "latest".into());
            index_entries.push(desc(Some(serde_json::json!({
                "io.containerd.image.name": t,
                "org.opencontainers.image.ref.name": tag,
            }))));
            let fam = familiar(t);
            if let Some((repo, tg)) = fam.rsplit_once(':').filter(|(_, tg)| !tg.contains('/')) {
                if let Some(top) = diff_ids.last() {
                    repositories
                        .entry(repo.to_owned())
                        .or_default()
                        .insert(tg.to_owned(), top.hex().to_owned());
                }
            }
        }
        docker_manifest.push(DockerArchiveEntry {
            config: format!("blobs/sha256/{}", rec.id.hex()),
            repo_tags: (!tags.is_empty()).then(|| tags.iter().map(|t| familiar(t)).collect()),
            layers: layer_paths,
        });
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": index_entries});
    for (name, bytes) in [
        ("index.json", serde_json::to_vec(&index).expect("json")),
        (
            "manifest.json",
            serde_json::to_vec(&docker_manifest).expect("json"),
        ),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "repositories",
            serde_json::to_vec(&repositories).expect("json"),
        ),
    ] {
        tar_append(&mut b, name, bytes.len() as u64, &bytes[..])?;
    }
    b.into_inner()
        .map_err(io_err("finish archive"))?
        .flush()
        .map_err(io_err("flush archive"))?;
    Ok(())
}

/// What a load produced.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The stored record.
    pub record: ImageRecord,
    /// Names given to it (full form).
    pub tags: Vec<String>,
}

/// Files of an archive: blobs went to the content store, small metadata stays in memory.
#[derive(Default)]
struct Contents {
    blobs: HashMap<String, Digest>,
    small: HashMap<String, Vec<u8>>,
    symlinks: HashMap<String, String>,
}

const SMALL_FILE: u64 = 8 << 20;
/// Past this many bytes of metadata held in memory, further files go to the content store.
const SMALL_TOTAL: u64 = 64 << 20;

fn clean(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl Contents {
    fn resolve(&self, path: &str) -> Option<String> {
        let mut p = clean(path)?;
        for _ in 0..16 {
            match self.symlinks.get(&p) {
                Some(target) => {
                    let base = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    p = if target.starts_with('/') {
                        clean(target)?
                    } else {
                        clean(&format!("{base}/{target}"))?
                    };
                }
                None => return Some(p),
            }
        }
        None
    }

    /// A metadata file's bytes, from memory or (when memory was full) from the store.
    fn small(&self, store: &ContentStore, path: &str) -> Option<Vec<u8>> {
        let p = self.resolve(path)?;
        if let Some(v) = self.small.get(&p) {
            return Some(v.clone());
        }
        let d = self.blobs.get(&p)?;
        (store.size(d).ok()? <= SMALL_FILE)
            .then(|| store.read(d).ok())
            .flatten()
    }

    /// The blob digest for `path`, storing small files on demand.
    fn blob(&mut self, store: &ContentStore, path: &str) -> Result<Digest, ArchiveError> {
        let p = self
            .resolve(path)
            .ok_or_else(|| ArchiveError::Missing(path.to_owned()))?;
        if let Some(d) = self.blobs.get(&p) {
            return Ok(d.clone());
        }
        let bytes = self
            .small
            .get(&p)
            .ok_or_else(|| ArchiveError::Missing(path.to_owned()))?;
        let d = store.write_bytes(bytes)?;
        self.blobs.insert(p, d.clone());
        Ok(d)
    }
}

/// Load images from an archive stream (docker-archive or OCI layout as tar, optionally
/// compressed). Layers are unpacked into snapshots with `unpack` (adjusted to the snapshotter).
pub fn load<R: Read>(
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    reader: R,
    unpack: &UnpackOptions,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let mut input = io::BufReader::with_capacity(1 << 20, reader);
    let head = io::BufRead::fill_buf(&mut input)
        .map_err(io_err("read archive"))?
        .to_vec();
    let reader: Box<dyn Read> = match Compression::sniff(&head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(input).map_err(io_err("zstd archive"))?,
        ),
        _ => Box::new(input),
    };
    let mut tar = layer::tar::TarReader::new(reader, 1 << 20);
    let mut c = Contents::default();
    let mut small_total = 0u64;
    while let Some(e) = tar.next_entry()? {
        let Some(path) = clean(&String::from_utf8_lossy(&e.path)) else {
            continue;
        };
        match e.kind {
            layer::tar::Kind::Symlink => {
                c.symlinks
                    .insert(path, String::from_utf8_lossy(&e.link).into_owned());
            }
            layer::tar::Kind::Hardlink => {
                if let Some(t) = clean(&String::from_utf8_lossy(&e.link)) {
                    c.symlinks.insert(path, format!("/{t}"));
                }
            }
            layer::tar::Kind::File => {
                let expected = path
                    .strip_prefix("blobs/sha256/")
                    .and_then(|h| Digest::from_hex(h).ok());
                let is_blobish =
                    expected.is_some() || path.ends_with(".tar") || e.size > SMALL_FILE;
                let fits = small_total + e.size <= SMALL_TOTAL;
                if fits && e.size <= SMALL_FILE && (!is_blobish || e.size <= 64 << 10) {
                    small_total += e.size;
                    let mut v = Vec::with_capacity(e.size as usize);
                    tar.read_body_into(&mut v)?;
                    if let Some(exp) = &expected {
                        let d = Digest::sha256_of(&v);
                        if d != *exp {
                            return Err(StoreError::DigestMismatch {
                                expected: exp.clone(),
                                actual: d,
                            }
                            .into());
                        }
                    }
                    c.small.insert(path, v);
                } else {
                    let mut w = store.writer(expected.as_ref(), Some(e.size))?;
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = tar.read_body(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        w.write_all(&buf[..n])
                            .map_err(io_err(format!("store {path}")))?;
                    }
                    c.blobs.insert(path, w.commit()?);
                }
            }
            _ => {}
        }
    }
    load_contents(store, images, snapshotter, c, unpack)
}

/// Load from an OCI image layout (or extracted docker-archive) directory.
pub fn load_dir(
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    dir: &Path,
    unpack: &UnpackOptions,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let mut c = Contents::default();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io_err(format!("list {}", d.display())))? {
            let e = e.map_err(io_err(format!("list {}", d.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let m = std::fs::symlink_metadata(e.path())
                .map_err(io_err(format!("stat {}", e.path().display())))?;
            if m.is_dir() {
                stack.push((e.path(), rel));
            } else if m.file_type().is_symlink() {
                let t = std::fs::read_link(e.path()).map_err(io_err("readlink"))?;
                c.symlinks.insert(rel, t.to_string_lossy().into_owned());
            } else if m.is_file() {
                let expected = rel
                    .strip_prefix("blobs/sha256/")
                    .and_then(|h| Digest::from_hex(h).ok());
                if m.len() <= 64 << 10
                    || (expected.is_none() && !rel.ends_with(".tar") && m.len() <= SMALL_FILE)
                {
                    c.small.insert(
                        rel,
                        std::fs::read(e.path())
                            .map_err(io_err(format!("read {}", e.path().display())))?,
                    );
                } else {
                    let mut w = store.writer(expected.as_ref(), Some(m.len()))?;
                    let mut f = File::open(e.path())
                        .map_err(io_err(format!("open {}", e.path().display())))?;
                    io::copy(&mut f, &mut w).map_err(io_err(format!("store {rel}")))?;
                    c.blobs.insert(rel, w.commit()?);
                }
            }
        }
    }
    load_contents(store, images, snapshotter, c, unpack)
}

struct Candidate {
    config: Digest,
    layers: Vec<Digest>,
    manifest: Option<(Digest, String)>,
    tags: Vec<String>,
}

fn load_contents(
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    mut c: Contents,
    unpack: &UnpackOptions,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let mut candidates: Vec<Candidate> = Vec::new();
    if let Some(bytes) = c.small(store, "manifest.json") {
        let entries: Vec<DockerArchiveEntry> =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
                file: "manifest.json".into(),
                source,
            })?;
        for e in entries {
            let config = c.blob(store, &e.config)?;
            let layers = e
                .layers
                .iter()
                .map(|l| c.blob(store, l))
                .collect::<Result<Vec<_>, _>>()?;
            let tags = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| normalize_name(t))
                .collect::<Result<_, _>>()?;
            candidates.push(Candidate {
                config,
                layers,
                manifest: None,
                tags,
            });
        }
    } else if let Some(bytes) = c.small(store, "index.json") {
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
                file: "index.json".into(),
                source,
            })?;
        for desc in index.manifests() {
            let d = manifest::descriptor_digest(desc)?;
            let name = desc.annotations().as_ref().and_then(|a| {
                a.get("io.containerd.image.name").cloned().or_else(|| {
                    a.get("org.opencontainers.image.ref.name")
                        .filter(|r| r.contains('/') || r.contains(':'))
                        .cloned()
                })
            });
            let (mdigest, mbytes, mt) =
                resolve_manifest(store, &mut c, &d, desc.media_type().as_ref())?;
            let m: ImageManifest =
                serde_json::from_slice(&mbytes).map_err(|source| ArchiveError::Json {
                    file: format!("manifest {mdigest}"),
                    source,
                })?;
            let config = manifest::descriptor_digest(m.config())?;
            let config = c.blob(store, &format!("blobs/sha256/{}", config.hex()))?;
            let layers = m
                .layers()
                .iter()
                .map(|l| {
                    let d = manifest::descriptor_digest(l)?;
                    c.blob(store, &format!("blobs/sha256/{}", d.hex()))
                })
                .collect::<Result<Vec<_>, ArchiveError>>()?;
            let tags = name
                .map(|n| normalize_name(&n))
                .transpose()?
                .into_iter()
                .collect();
            match candidates.iter_mut().find(|x| x.config == config) {
                Some(x) => x.tags.extend(tags),
                None => candidates.push(Candidate {
                    config,
                    layers,
                    manifest: Some((mdigest, mt)),
                    tags,
                }),
            }
        }
    } else {
        return Err(ArchiveError::UnknownFormat);
    }
    candidates
        .into_iter()
        .map(|cand| install(store, images, snapshotter, cand, unpack))
        .collect()
}

/// Follow an index entry to a platform manifest, storing both; returns (digest, bytes, media type).
fn resolve_manifest(
    store: &ContentStore,
    c: &mut Contents,
    d: &Digest,
    media_type: &str,
) -> Result<(Digest, Vec<u8>, String), ArchiveError> {
    let mut d = d.clone();
    let mut mt = media_type.to_owned();
    for _ in 0..4 {
        let stored = c.blob(store, &format!("blobs/sha256/{}", d.hex()))?;
        let bytes = store.read(&stored)?;
        match AnyManifest::parse(&bytes, Some(&mt))? {
            AnyManifest::Manifest(_) => return Ok((stored, bytes, mt)),
            AnyManifest::Index(idx) => {
                let desc = manifest::select_platform(&idx, &Platform::host())?;
                d = manifest::descriptor_digest(desc)?;
                mt = desc.media_type().to_string();
            }
        }
    }
    Err(ArchiveError::Missing(format!(
        "manifest for {d} (index nesting too deep)"
    )))
}

fn install(
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    cand: Candidate,
    unpack: &UnpackOptions,
) -> Result<LoadedImage, ArchiveError> {
    let config_bytes = store.read(&cand.config)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|source| ArchiveError::Json {
            file: format!("config {}", cand.config),
            source,
        })?;
    let diff_ids: Vec<Digest> = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse())
        .collect::<Result<_, _>>()?;
    if diff_ids.len() != cand.layers.len() {
        return Err(ArchiveError::LayerCount {
            image: cand.config.to_string(),
            layers: cand.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let chain = snapshot::chain_ids(&diff_ids);
    let opts = snapshotter.unpack_options(unpack);
    let mut size = 0;
    let mut media = Vec::new();
    for (i, blob) in cand.layers.iter().enumerate() {
        let mut head = [0u8; 4];
        let n = read_up_to(&mut store.open_blob(blob)?, &mut head)
            .map_err(io_err(format!("read layer {blob}")))?;
        media.push(match Compression::sniff(&head[..n]) {
            Compression::Gzip => media_types::OCI_LAYER_GZIP,
            Compression::Zstd => media_types::OCI_LAYER_ZSTD,
            _ => media_types::OCI_LAYER_TAR,
        });
        if snapshotter.exists(&chain[i]) {
            size += snapshotter.size(&chain[i]).unwrap_or(0);
            continue;
        }
        let parent = i.checked_sub(1).map(|p| &chain[p]);
        let prepared = snapshotter.prepare(&chain[i], parent)?;
        let stats = layer::unpack(
            io::BufReader::with_capacity(1 << 20, store.open_blob(blob)?),
            Compression::Detect,
            prepared.path(),
            &opts,
        )
        .map_err(|source| ArchiveError::Layer {
            layer: blob.to_string(),
            source,
        })?;
        if stats.diff_id != diff_ids[i] {
            prepared.abort()?;
            return Err(ArchiveError::DiffIdMismatch {
                layer: blob.to_string(),
                expected: diff_ids[i].clone(),
                actual: stats.diff_id,
            });
        }
        prepared.commit(stats.uncompressed_size)?;
        size += stats.uncompressed_size;
    }
    let (manifest_digest, manifest_media_type) = match cand.manifest {
        Some(m) => m,
        None => {
            let layers: Vec<serde_json::Value> = cand
                .layers
                .iter()
                .zip(&media)
                .map(|(l, mt)| Ok(serde_json::json!({"mediaType": mt, "digest": l.to_string(), "size": store.size(l)?})))
                .collect::<Result<_, StoreError>>()?;
            let m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_types::OCI_MANIFEST,
                "config": {"mediaType": media_types::OCI_CONFIG, "digest": cand.config.to_string(), "size": config_bytes.len()},
                "layers": layers,
            });
            let d = store.write_bytes(&serde_json::to_vec(&m).expect("json"))?;
            (d, media_types::OCI_MANIFEST.to_owned())
        }
    };
    let record = ImageRecord {
        id: cand.config.clone(),
        manifest: manifest_digest,
        manifest_media_type,
        index: None,
        repo_tags: cand.tags.clone(),
        repo_digests: Vec::new(),
        created: config.created().clone(),
        size,
        layers: cand.layers.clone(),
        diff_ids,
        stored_at: None,
    };
    images.put(record)?;
    let record = images.resolve(&cand.config.to_string())?;
    Ok(LoadedImage {
        record,
        tags: cand.tags,
    })
}

/// Options for [`import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name to give the image (`repo[:tag]`).
    pub tag: Option<String>,
    /// `Cmd` of the synthesised config.
    pub cmd: Option<Vec<String>>,
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Env`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// History comment (docker: "Imported from -").
    pub comment: Option<String>,
    /// Platform recorded in the config (default linux/host arch).
    pub platform: Option<Platform>,
}

/// Copies everything read through it into a blob writer.
struct Tee<'a, R> {
    inner: R,
    blob: &'a mut crate::store::BlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.blob.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Downloads `url` (http or https, `docker import URL`) into `to`, streaming; returns the bytes
/// written. The caller then imports the file with [`import`] (its format is sniffed there).
pub async fn fetch(url: &str, to: &mut File) -> Result<u64, ArchiveError> {
    let parsed = url::Url::parse(url).map_err(|_| ArchiveError::FetchScheme {
        url: url.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ArchiveError::FetchScheme {
            url: url.to_string(),
        });
    }
    let fetch_err = |source| ArchiveError::Fetch {
        url: url.to_string(),
        source,
    };
    let mut resp = reqwest::get(parsed).await.map_err(fetch_err)?;
    if !resp.status().is_success() {
        return Err(ArchiveError::FetchStatus {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(fetch_err)? {
        to.write_all(&chunk).map_err(|source| ArchiveError::Io {
            op: format!("write the download of {url}"),
            source,
        })?;
        n += chunk.len() as u64;
    }
    Ok(n)
}

/// Import a root filesystem tarball (plain, gzip or zstd) as a single-layer image.
pub fn import<R: Read>(
    store: &ContentStore,
    images: &ImageStore,
    snapshotter: &Snapshotter,
    reader: R,
    unpack: &UnpackOptions,
    opts: &ImportOptions,
) -> Result<ImageRecord, ArchiveError> {
    let tag = opts.tag.as_deref().map(normalize_name).transpose()?;
    let mut blob = store.writer(None, None)?;
    // The layer unpacks into a scratch snapshot while it is stored; its chain id (= diff id) is
    // known only at the end, so the snapshot is committed under it afterwards.
    let scratch_id = Digest::sha256_of(
        format!(
            "import {} {:?}",
            std::process::id(),
            std::time::SystemTime::now()
        )
        .as_bytes(),
    );
    let prepared = snapshotter.prepare(&scratch_id, None)?;
    let layer_opts = snapshotter.unpack_options(unpack);
    let stats = layer::unpack(
        Tee {
            inner: reader,
            blob: &mut blob,
        },
        Compression::Detect,
        prepared.path(),
        &layer_opts,
    )
    .map_err(|source| ArchiveError::Layer {
        layer: "imported rootfs".into(),
        source,
    })?;
    let layer_digest = blob.commit()?;
    let diff_id = stats.diff_id.clone();
    if snapshotter.exists(&diff_id) {
        prepared.abort()?;
    } else {
        let real = snapshotter.prepare(&diff_id, None)?;
        // Move the unpacked tree into the properly named snapshot.
        std::fs::remove_dir(real.path()).map_err(io_err("replace snapshot dir"))?;
        std::fs::rename(prepared.path(), real.path()).map_err(io_err("move imported tree"))?;
        prepared.abort()?;
        real.commit(stats.uncompressed_size)?;
    }
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let created = crate::images::now_rfc3339();
    let mut cfg = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "comment": opts.comment.clone().unwrap_or_else(|| "Imported from -".into())}],
    });
    if let Some(v) = &platform.variant {
        cfg["variant"] = serde_json::json!(v);
    }
    let c = &mut cfg["config"];
    if let Some(cmd) = &opts.cmd {
        c["Cmd"] = serde_json::json!(cmd);
    }
    if let Some(ep) = &opts.entrypoint {
        c["Entrypoint"] = serde_json::json!(ep);
    }
    if !opts.env.is_empty() {
        c["Env"] = serde_json::json!(opts.env);
    }
    if let Some(w) = &opts.working_dir {
        c["WorkingDir"] = serde_json::json!(w);
    }
    let config_bytes = serde_json::to_vec(&cfg).expect("json");
    let config_digest = store.write_bytes(&config_bytes)?;
    let layer_mt = match stats.compression {
        Compression::Gzip => media_types::OCI_LAYER_GZIP,
        Compression::Zstd => media_types::OCI_LAYER_ZSTD,
        _ => media_types::OCI_LAYER_TAR,
    };
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": layer_mt, "digest": layer_digest.to_string(), "size": stats.compressed_size}],
    });
    let manifest_digest = store.write_bytes(&serde_json::to_vec(&m).expect("json"))?;
    let record = ImageRecord {
        id: config_digest.clone(),
        manifest: manifest_digest,
        manifest_media_type: media_types::OCI_MANIFEST.into(),
        index: None,
        repo_tags: tag.into_iter().collect(),
        repo_digests: Vec::new(),
        created: Some(created),
        size: stats.uncompressed_size,
        layers: vec![layer_digest],
        diff_ids: vec![diff_id],
        stored_at: None,
    };
    images.put(record)?;
    Ok(images.resolve(&config_digest.to_string())?)
}

/// Write the tree at `rootfs` (a container's merged root) as a tar to `writer`: numeric owners,
/// modes, times, symlinks as symlinks, device nodes and fifos as such.
pub fn export<W: Write>(rootfs: &Path, writer: W) -> Result<(), ArchiveError> {
    let mut b = tar::Builder::new(writer);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    b.append_dir_all(".", rootfs)
        .map_err(io_err(format!("export {}", rootfs.display())))?;
    b.into_inner()
        .map_err(io_err("finish export"))?
        .flush()
        .map_err(io_err("flush export"))?;
    Ok(())
}
