//! The content-addressed blob store: `root/blobs/sha256/<hex>`, partial writes in `root/ingest/`.
//!
//! Every blob is hashed while it is written into a private file under `ingest/`, verified against
//! the expected digest and size, fsynced and renamed into place, so a blob visible under `blobs/`
//! is always complete and correct. An uncommitted [`BlobWriter`] removes its partial file on drop.
//! [`ContentStore::gc`] removes blobs not reachable from a set of roots (index → manifests,
//! manifest → config + layers).
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

use crate::digest::{Digest, Hasher};
use crate::images::manifest::{self, AnyManifest};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("content store: {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The written content does not hash to the expected digest.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The written content does not have the expected size.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    /// No blob with this digest.
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    /// A blob is not the JSON that was asked for.
    #[error("blob {digest} is not valid JSON for this type")]
    Json {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What a garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub bytes: u64,
    /// Stale partial files removed from `ingest/`.
    pub stale_ingest: u64,
}

/// The content-addressed blob store. Cheap to clone; safe to share between threads.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
    leases: crate::lease::Leases,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl ContentStore {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref().to_owned();
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        fs::create_dir_all(&ingest).map_err(io_err("create", &ingest))?;
        Ok(Self {
            root,
            blobs,
            ingest,
            leases: crate::lease::Leases::default(),
        })
    }

    /// Blobs held by in-flight writers; [`ContentStore::gc`] keeps them (shared by clones).
    pub fn leases(&self) -> &crate::lease::Leases {
        &self.leases
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Start writing a blob. With `expected`, the commit fails unless the content hashes to it;
    /// with `expected_size`, writing more than that fails at once and less fails at commit.
    pub fn writer(
        &self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter, StoreError> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{}-{}-{}", std::process::id(), seq, nanos);
        let path = self.ingest.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err("create ingest file", &path))?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            blobs: self.blobs.clone(),
            hasher: Hasher::new(),
            expected: expected.cloned(),
            expected_size,
        })
    }

    /// Whether a blob is present.
    pub fn has(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(d.clone())
            } else {
                StoreError::Io {
                    op: "open",
                    path: p,
                    source: e,
                }
            }
        })
    }

    /// Where a blob lives (whether or not it is present).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    /// A blob's size in bytes.
    pub fn size(&self, d: &Digest) -> Result<u64, StoreError> {
        let p = self.blob_path(d);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(d.clone())),
            Err(e) => Err(StoreError::Io {
                op: "stat",
                path: p,
                source: e,
            }),
        }
    }

    /// Read a whole blob.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(d.clone())
            } else {
                StoreError::Io {
                    op: "read",
                    path: p,
                    source: e,
                }
            }
        })
    }

    /// Read and parse a JSON blob.
    pub fn read_json<T: DeserializeOwned>(&self, d: &Digest) -> Result<T, StoreError> {
        let bytes = self.read(d)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            digest: d.clone(),
            source,
        })
    }

    /// Store `bytes` (verified and atomic) and return their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::sha256_of(bytes);
        if self.has(&d) {
            return Ok(d);
        }
        let mut w = self.writer(Some(&d), Some(bytes.len() as u64))?;
        w.write_all(bytes)
            .map_err(io_err("write", &w.path.clone()))?;
        w.commit()
    }

    /// Remove a blob (absent is not an error).
    pub fn delete(&self, d: &Digest) -> Result<(), StoreError> {
        let p = self.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                op: "remove",
                path: p,
                source: e,
            }),
        }
    }

    /// Every blob present, sorted.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))? {
            let e = e.map_err(io_err("list", &self.blobs))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every blob reachable from `roots`: an index reaches its manifests, a manifest its config
    /// and layers. Missing blobs are skipped (a foreign layer, or a partial pull).
    pub fn reachable(&self, roots: &[Digest]) -> HashSet<Digest> {
        let mut seen = HashSet::new();
        let mut todo: Vec<Digest> = roots.to_vec();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            // Only small blobs can be manifests; never slurp a layer to find out.
            match self.size(&d) {
                Ok(n) if n <= manifest::MAX_MANIFEST_SIZE => {}
                _ => continue,
            }
            let Ok(bytes) = self.read(&d) else { continue };
            if let Ok(m) = AnyManifest::parse(&bytes, None) {
                todo.extend(m.children());
            }
        }
        seen
    }

    /// Remove every blob not reachable from `roots`, and ingest files older than an hour.
    pub fn gc(&self, roots: &[Digest]) -> Result<GcStats, StoreError> {
        let mut keep = self.reachable(roots);
        keep.extend(self.leases.held());
        let mut stats = GcStats::default();
        for d in self.list()? {
            if keep.contains(&d) {
                continue;
            }
            let n = self.size(&d).unwrap_or(0);
            self.delete(&d)?;
            stats.bytes += n;
            stats.removed.push(d);
        }
        let hour = std::time::Duration::from_secs(3600);
        for e in fs::read_dir(&self.ingest).map_err(io_err("list", &self.ingest))? {
            let e = e.map_err(io_err("list", &self.ingest))?;
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > hour);
            if old && fs::remove_file(e.path()).is_ok() {
                stats.stale_ingest += 1;
            }
        }
        Ok(stats)
    }
}

/// A blob being written. Hashes while writing; [`BlobWriter::commit`] verifies and publishes it.
/// Dropping it uncommitted removes the partial file.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<File>,
    path: PathBuf,
    blobs: PathBuf,
    hasher: Hasher,
    expected: Option<Digest>,
    expected_size: Option<u64>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.count()
    }

    /// The digest this writer was told to expect, if any.
    pub fn expected(&self) -> Option<&Digest> {
        self.expected.as_ref()
    }

    /// Verify digest and size, fsync and rename into place. On mismatch the partial file is
    /// deleted and the error says what was expected and what was written.
    pub fn commit(mut self) -> Result<Digest, StoreError> {
        let file = self
            .file
            .take()
            .expect("commit consumes the writer, file present until then");
        let size = self.hasher.count();
        let actual = std::mem::take(&mut self.hasher).finish();
        if let Some(expected_size) = self.expected_size {
            if expected_size != size {
                return Err(StoreError::SizeMismatch {
                    digest: self
                        .expected
                        .as_ref()
                        .map_or_else(|| actual.to_string(), ToString::to_string),
                    expected: expected_size,
                    actual: size,
                });
            }
        }
        if let Some(expected) = &self.expected {
            if *expected != actual {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let dest = self.blobs.join(actual.hex());
        if dest.exists() {
            // Same content already published; our partial file is removed by Drop.
            drop(file);
            return Ok(actual);
        }
        file.sync_all().map_err(io_err("fsync", &self.path))?;
        drop(file);
        fs::rename(&self.path, &dest).map_err(io_err("rename into place", &dest))?;
        // The rename is durable once the directory is synced.
        if let Ok(dir) = File::open(&self.blobs) {
            let _ = dir.sync_all();
        }
        self.path = PathBuf::new();
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.expected_size {
            if self.hasher.count() + buf.len() as u64 > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is larger than its expected size of {limit} bytes",
                        self.expected
                            .as_ref()
                            .map_or_else(|| "(unknown)".into(), ToString::to_string)
                    ),
                ));
            }
        }
        let file = self.file.as_mut().expect("file present until commit");
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest_is_empty(s: &ContentStore) -> bool {
        fs::read_dir(s.root().join("ingest"))
            .expect("ingest")
            .next()
            .is_none()
    }

    #[test]
    fn write_read_has_size_list_delete() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ContentStore::open(dir.path()).expect("open");
        let d = s.write_bytes(b"hello").expect("write");
        assert_eq!(d, Digest::sha256_of(b"hello"));
        assert!(s.has(&d));
        assert_eq!(s.size(&d).expect("size"), 5);
        assert_eq!(s.read(&d).expect("read"), b"hello");
        assert_eq!(s.list().expect("list"), vec![d.clone()]);
        assert_eq!(
            s.blob_path(&d),
            dir.path().join("blobs/sha256").join(d.hex())
        );
        s.delete(&d).expect("delete");
        assert!(!s.has(&d));
        assert!(matches!(s.open_blob(&d), Err(StoreError::NotFound(_))));
        assert!(ingest_is_empty(&s));
    }

    #[test]
    fn mismatched_digest_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ContentStore::open(dir.path()).expect("open");
        let want = Digest::sha256_of(b"good");
        let mut w = s.writer(Some(&want), None).expect("writer");
        w.write_all(b"evil").expect("write");
        match w.commit() {
            Err(StoreError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, want);
                assert_eq!(actual, Digest::sha256_of(b"evil"));
            }
            other => panic!("expected mismatch, got {other:?}"),
        }
        assert!(!s.has(&want));
        assert!(s.list().expect("list").is_empty());
        assert!(ingest_is_empty(&s));
    }

    #[test]
    fn size_is_enforced_both_ways() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ContentStore::open(dir.path()).expect("open");
        let mut w = s.writer(None, Some(3)).expect("writer");
        assert!(w.write_all(b"four").is_err());
        drop(w);
        let mut w = s.writer(None, Some(10)).expect("writer");
        w.write_all(b"short").expect("write");
        assert!(matches!(
            w.commit(),
            Err(StoreError::SizeMismatch {
                expected: 10,
                actual: 5,
                ..
            })
        ));
        assert!(ingest_is_empty(&s));
        assert!(s.list().expect("list").is_empty());
    }

    #[test]
    fn dropped_writer_leaves_no_partial_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ContentStore::open(dir.path()).expect("open");
        let mut w = s.writer(None, None).expect("writer");
        w.write_all(b"partial").expect("write");
        assert_eq!(w.written(), 7);
        assert!(!ingest_is_empty(&s));
        drop(w);
        assert!(ingest_is_empty(&s));
        assert!(s.list().expect("list").is_empty());
    }

    #[test]
    fn gc_keeps_what_manifests_reach() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ContentStore::open(dir.path()).expect("open");
        let layer = s.write_bytes(b"layer-bytes").expect("w");
        let config = s.write_bytes(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#).expect("w");
        let orphan = s.write_bytes(b"orphan").expect("w");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}]}}"#,
            s.size(&config).expect("size")
        );
        let man = s.write_bytes(m.as_bytes()).expect("w");
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{man}","size":{}}}]}}"#,
            m.len()
        );
        let idx = s.write_bytes(idx.as_bytes()).expect("w");
        let stats = s.gc(std::slice::from_ref(&idx)).expect("gc");
        assert_eq!(stats.removed, vec![orphan.clone()]);
        for d in [&idx, &man, &config, &layer] {
            assert!(s.has(d), "{d} kept");
        }
        assert!(!s.has(&orphan));
        let stats = s.gc(&[]).expect("gc all");
        assert_eq!(stats.removed.len(), 4);
    }
}
