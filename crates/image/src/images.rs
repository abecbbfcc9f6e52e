//! The image metadata database: which images exist, their names (repo tags), digests and layers.
//!
//! Stored as one JSON document `root/images.json`, rewritten crash-safely (temp file, fsync,
//! rename, directory fsync) under an exclusive `flock` on `root/images.lock`, so concurrent
//! processes never lose an update and a crash leaves either the old or the new database.
//! Names are stored exactly as the caller gives them (the engine normalises references to
//! `host/repo:tag` before calling); lookups accept a full name, a full id (`sha256:…` or bare
//! hex), a unique id prefix of at least 4 hex characters, or a repo digest (`repo@sha256:…`).
pub mod manifest;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Errors of the image database.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("image store: {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The database file is corrupt.
    #[error("image database {path} is not valid JSON")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// No image matches.
    #[error("no such image: {0}")]
    NotFound(String),
    /// An id prefix matches more than one image.
    #[error("image id prefix {prefix:?} is ambiguous: matches {matches}")]
    Ambiguous { prefix: String, matches: String },
    /// A tag is not of a valid shape.
    #[error("invalid image name {0:?}")]
    BadName(String),
    /// Locking the database failed.
    #[error("image store: lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// One image.
///
/// `layers` are the *compressed* layer blob digests exactly as listed in the manifest (what the
/// content store holds); `diff_ids` are the uncompressed digests from the config's
/// `rootfs.diff_ids` (what the snapshotter keys on, through [`crate::snapshot::chain_ids`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest: docker's image ID.
    pub id: Digest,
    /// The platform manifest's digest.
    pub manifest: Digest,
    /// Its media type (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// The index / manifest list it was selected from, if pulled through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    /// Full names, `host/repo:tag`.
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// `host/repo@sha256:…` of the manifest (or index) as pulled from a registry.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// The config's `created` (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// Sum of the uncompressed layer sizes (what `docker images` shows), 0 when unknown.
    pub size: u64,
    /// Compressed layer digests (manifest order, base first).
    pub layers: Vec<Digest>,
    /// Uncompressed layer digests (config `rootfs.diff_ids`, base first).
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
    /// When this record was first stored (RFC 3339 or unix seconds as text).
    #[serde(default)]
    pub stored_at: Option<String>,
}

impl ImageRecord {
    /// Chain ids of this image's layers (base first); the last one is the image's top snapshot.
    pub fn chain_ids(&self) -> Vec<Digest> {
        crate::snapshot::chain_ids(&self.diff_ids)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Db {
    images: Vec<ImageRecord>,
}

/// The image database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    db: PathBuf,
    lock: PathBuf,
}

/// What a lookup key refers to.
fn matches_name(rec: &ImageRecord, key: &str) -> bool {
    rec.repo_tags.iter().any(|t| t == key) || rec.repo_digests.iter().any(|d| d == key)
}

impl ImageStore {
    /// Open (creating if needed) the database under `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ImageError> {
        let root = root.as_ref().to_owned();
        fs::create_dir_all(&root).map_err(|source| ImageError::Io {
            op: "create",
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            db: root.join("images.json"),
            lock: root.join("images.lock"),
            root,
        })
    }

    fn locked(&self) -> Result<Flock<File>, ImageError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock)
            .map_err(|source| ImageError::Io {
                op: "open",
                path: self.lock.clone(),
                source,
            })?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, source)| ImageError::Lock {
            path: self.lock.clone(),
            source,
        })
    }

    fn load(&self) -> Result<Db, ImageError> {
        match fs::read(&self.db) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| ImageError::Corrupt {
                path: self.db.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Db::default()),
            Err(source) => Err(ImageError::Io {
                op: "read",
                path: self.db.clone(),
                source,
            }),
        }
    }

    fn save(&self, db: &Db) -> Result<(), ImageError> {
        let tmp = self
            .root
            .join(format!("images.json.tmp-{}", std::process::id()));
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| ImageError::Io { op, path, source }
        };
        let bytes = serde_json::to_vec_pretty(db).expect("image records always serialise");
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &self.db).map_err(io("rename", &self.db))?;
        if let Ok(d) = File::open(&self.root) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Read-modify-write under the lock.
    fn update<T>(&self, f: impl FnOnce(&mut Db) -> Result<T, ImageError>) -> Result<T, ImageError> {
        let _lock = self.locked()?;
        let mut db = self.load()?;
        let out = f(&mut db)?;
        self.save(&db)?;
        Ok(out)
    }

    /// Store a record. An existing record with the same id is merged (its tags and digests are
    /// kept, new ones added); a tag held by another image moves to this one.
    pub fn put(&self, rec: ImageRecord) -> Result<(), ImageError> {
        for t in &rec.repo_tags {
            validate_name(t)?;
        }
        self.update(|db| {
            for other in db.images.iter_mut().filter(|i| i.id != rec.id) {
                other.repo_tags.retain(|t| !rec.repo_tags.contains(t));
            }
            match db.images.iter_mut().find(|i| i.id == rec.id) {
                Some(existing) => {
                    let mut merged = rec.clone();
                    for t in &existing.repo_tags {
                        if !merged.repo_tags.contains(t) {
                            merged.repo_tags.push(t.clone());
                        }
                    }
                    for d in &existing.repo_digests {
                        if !merged.repo_digests.contains(d) {
                            merged.repo_digests.push(d.clone());
                        }
                    }
                    if merged.stored_at.is_none() {
                        merged.stored_at = existing.stored_at.clone();
                    }
                    *existing = merged;
                }
                None => {
                    let mut rec = rec.clone();
                    if rec.stored_at.is_none() {
                        rec.stored_at = Some(now_rfc3339());
                    }
                    db.images.push(rec);
                }
            }
            Ok(())
        })
    }

    /// Find an image by full name, repo digest, id or unique id prefix (≥ 4 hex characters).
    pub fn get(&self, name_or_id: &str) -> Option<ImageRecord> {
        self.resolve(name_or_id).ok()
    }

    /// Like [`ImageStore::get`], saying why nothing was found (not found, ambiguous, unreadable).
    pub fn resolve(&self, key: &str) -> Result<ImageRecord, ImageError> {
        let db = self.load()?;
        find(&db, key).cloned()
    }

    /// Give image `id_or_name` the name `name` (moving it from any other image).
    pub fn tag(&self, id_or_name: &str, name: &str) -> Result<(), ImageError> {
        validate_name(name)?;
        self.update(|db| {
            let id = find(db, id_or_name)?.id.clone();
            for i in db.images.iter_mut() {
                if i.id == id {
                    if !i.repo_tags.iter().any(|t| t == name) {
                        i.repo_tags.push(name.to_owned());
                    }
                } else {
                    i.repo_tags.retain(|t| t != name);
                }
            }
            Ok(())
        })
    }

    /// Remove the name `name`. Returns the image it pointed at (which stays, possibly untagged).
    pub fn untag(&self, name: &str) -> Result<ImageRecord, ImageError> {
        self.update(|db| {
            let i = db
                .images
                .iter_mut()
                .find(|i| i.repo_tags.iter().any(|t| t == name))
                .ok_or_else(|| ImageError::NotFound(name.to_owned()))?;
            i.repo_tags.retain(|t| t != name);
            Ok(i.clone())
        })
    }

    /// Every image, in storage order.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(self.load()?.images)
    }

    /// Remove the image record itself (by any key), returning it. Blobs and snapshots are freed
    /// by the next [`crate::store::ContentStore::gc`] / [`crate::snapshot::Snapshotter::prune`].
    pub fn remove(&self, name_or_id: &str) -> Result<ImageRecord, ImageError> {
        self.update(|db| {
            let id = find(db, name_or_id)?.id.clone();
            let pos = db
                .images
                .iter()
                .position(|i| i.id == id)
                .expect("found just above");
            Ok(db.images.remove(pos))
        })
    }

    /// Content-store roots of every image: index, manifest and config digests.
    pub fn gc_roots(&self) -> Result<Vec<Digest>, ImageError> {
        let mut out = Vec::new();
        for i in self.list()? {
            out.extend(i.index.clone());
            out.push(i.manifest.clone());
            out.push(i.id.clone());
        }
        Ok(out)
    }

    /// Chain ids used by any image (for snapshot pruning).
    pub fn used_chain_ids(&self) -> Result<Vec<Digest>, ImageError> {
        Ok(self
            .list()?
            .iter()
            .flat_map(ImageRecord::chain_ids)
            .collect())
    }
}

fn find<'a>(db: &'a Db, key: &str) -> Result<&'a ImageRecord, ImageError> {
    if let Some(r) = db.images.iter().find(|i| matches_name(i, key)) {
        return Ok(r);
    }
    let hex_part = key.strip_prefix("sha256:").unwrap_or(key);
    let is_hex = !hex_part.is_empty() && hex_part.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && hex_part.len() >= 4 {
        let hex_part = hex_part.to_ascii_lowercase();
        let hits: Vec<&ImageRecord> = db
            .images
            .iter()
            .filter(|i| i.id.hex().starts_with(&hex_part))
            .collect();
        match hits.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                return Err(ImageError::Ambiguous {
                    prefix: key.to_owned(),
                    matches: many
                        .iter()
                        .map(|i| i.id.short())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
    // A name without a tag means `:latest`.
    let last = key.rsplit('/').next().unwrap_or(key);
    if !last.contains(':') && !key.contains('@') {
        let with_latest = format!("{key}:latest");
        if let Some(r) = db.images.iter().find(|i| matches_name(i, &with_latest)) {
            return Ok(r);
        }
    }
    // A short name: `busybox` is `docker.io/library/busybox:latest`.
    if let Some(full) = normalize_name(key).filter(|f| f != key) {
        if let Some(r) = db.images.iter().find(|i| matches_name(i, &full)) {
            return Ok(r);
        }
    }
    Err(ImageError::NotFound(key.to_owned()))
}

/// A reference in full form, `host/repo:tag` (or `host/repo@digest`), `:latest` when no tag is
/// given; `None` when `name` is not a valid reference.
pub fn normalize_name(name: &str) -> Option<String> {
    let r = crate::reference::Reference::parse(name).ok()?;
    if r.tag().is_none() && r.digest().is_none() {
        return r.with_tag("latest").ok().map(|r| r.to_string());
    }
    Some(r.to_string())
}

fn validate_name(name: &str) -> Result<(), ImageError> {
    let ok = !name.is_empty()
        && name.len() <= 4096
        && !name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        && !name.starts_with("sha256:");
    if ok {
        Ok(())
    } else {
        Err(ImageError::BadName(name.to_owned()))
    }
}

/// Current UTC time as RFC 3339 with nanoseconds (docker's RFC3339Nano), without a date crate.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // nanoseconds, like docker's created times: objects made within one second still order
    let secs = rfc3339_from_unix(now.as_secs());
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), now.subsec_nanos())
}

/// Format unix seconds as RFC 3339 UTC.
pub fn rfc3339_from_unix(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seed: &[u8], tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: Digest::sha256_of(seed),
            manifest: Digest::sha256_of(&[seed, b"m"].concat()),
            manifest_media_type: manifest::media_types::OCI_MANIFEST.into(),
            index: None,
            repo_tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            repo_digests: vec![],
            created: None,
            size: 1,
            layers: vec![],
            diff_ids: vec![],
            stored_at: None,
        }
    }

    #[test]
    fn put_get_by_name_id_prefix() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ImageStore::open(dir.path()).expect("open");
        let a = rec(b"a", &["docker.io/library/busybox:latest"]);
        s.put(a.clone()).expect("put");
        assert_eq!(
            s.get("docker.io/library/busybox:latest")
                .expect("by name")
                .id,
            a.id
        );
        assert_eq!(
            s.get("docker.io/library/busybox")
                .expect("implicit latest")
                .id,
            a.id
        );
        assert_eq!(s.get(&a.id.to_string()).expect("by id").id, a.id);
        assert_eq!(s.get(a.id.hex()).expect("by hex").id, a.id);
        assert_eq!(s.get(&a.id.hex()[..6]).expect("by prefix").id, a.id);
        assert!(s.get(&a.id.hex()[..3]).is_none(), "prefix under 4 chars");
        assert!(s.get("nope:latest").is_none());
        assert_eq!(s.get("busybox").expect("short name").id, a.id);
        assert_eq!(
            s.get("busybox:latest").expect("short name with tag").id,
            a.id
        );
        // survives reopen
        let s2 = ImageStore::open(dir.path()).expect("reopen");
        assert_eq!(s2.list().expect("list").len(), 1);
    }

    #[test]
    fn ambiguous_prefix_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ImageStore::open(dir.path()).expect("open");
        // Find two seeds whose ids share the first 4 hex characters.
        let mut seen = std::collections::HashMap::new();
        let (x, y) = (0u32..)
            .find_map(|i| {
                let d = Digest::sha256_of(&i.to_le_bytes());
                seen.insert(d.hex()[..4].to_owned(), i).map(|j| (j, i))
            })
            .expect("a collision exists");
        s.put(rec(&x.to_le_bytes(), &[])).expect("put");
        s.put(rec(&y.to_le_bytes(), &[])).expect("put");
        let prefix = &Digest::sha256_of(&x.to_le_bytes()).hex()[..4].to_owned();
        match s.resolve(prefix) {
            Err(ImageError::Ambiguous { .. }) => {}
            other => panic!("expected ambiguous, got {other:?}"),
        }
    }

    #[test]
    fn tag_moves_untag_remove() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ImageStore::open(dir.path()).expect("open");
        let a = rec(b"a", &["r/a:1"]);
        let b = rec(b"b", &["r/b:1"]);
        s.put(a.clone()).expect("put");
        s.put(b.clone()).expect("put");
        s.tag("r/a:1", "r/x:latest").expect("tag");
        assert_eq!(s.get("r/x").expect("x").id, a.id);
        s.tag(b.id.hex(), "r/x:latest").expect("retag");
        assert_eq!(s.get("r/x:latest").expect("x").id, b.id);
        assert!(!s
            .get(a.id.hex())
            .expect("a")
            .repo_tags
            .contains(&"r/x:latest".to_owned()));
        assert!(s.tag("r/a:1", "bad name").is_err());
        let untagged = s.untag("r/x:latest").expect("untag");
        assert_eq!(untagged.id, b.id);
        assert!(s.get("r/x:latest").is_none());
        let removed = s.remove("r/a:1").expect("remove");
        assert_eq!(removed.id, a.id);
        assert_eq!(s.list().expect("list").len(), 1);
        assert!(matches!(s.remove("r/a:1"), Err(ImageError::NotFound(_))));
        let roots = s.gc_roots().expect("roots");
        assert!(roots.contains(&b.id) && roots.contains(&b.manifest));
    }

    #[test]
    fn put_merges_same_id_and_moves_tags() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = ImageStore::open(dir.path()).expect("open");
        s.put(rec(b"a", &["r/a:1"])).expect("put");
        s.put(rec(b"a", &["r/a:2"])).expect("put");
        let got = s.get("r/a:1").expect("a");
        assert_eq!(got.repo_tags, vec!["r/a:2".to_owned(), "r/a:1".to_owned()]);
        s.put(rec(b"b", &["r/a:1"])).expect("put b");
        assert_eq!(s.get("r/a:1").expect("moved").id, Digest::sha256_of(b"b"));
        assert_eq!(s.list().expect("list").len(), 2);
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
    }
}
