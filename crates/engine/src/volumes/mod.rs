//! Named volumes with the `local` driver: `<data-root>/volumes/<name>/_data` plus a crash-safe
//! `volume.json` record; create/list/inspect/remove/prune with Docker's rules, the reference
//! counting the container side uses ([`VolumeStore::acquire`]/[`VolumeStore::release`]), and
//! backup/restore as tar ([`archive`]).

pub mod archive;
pub mod mount;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventBus};
use crate::state::{self, StateError};
use crate::ErrorKind;
use mount::{MountError, MountOpts};

/// The label Docker puts on volumes created without a name; plain `prune` removes only these.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The only driver there is.
pub const LOCAL_DRIVER: &str = "local";
const RECORD: &str = "volume.json";
const DATA: &str = "_data";

/// Why a volume operation failed; [`VolumeError::kind`] tells the API which status to answer.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{}]", refs.join(", "))]
    InUse { name: String, refs: Vec<String> },
    #[error("create {0}: {0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    #[error("error looking up volume plugin {0}: plugin {0:?} not found")]
    UnknownDriver(String),
    #[error("create {name}: a volume with name {name} already exists with driver \"local\" but a different driver was requested {driver:?}")]
    DriverConflict { name: String, driver: String },
    #[error("create {name}: {source}")]
    Options {
        name: String,
        #[source]
        source: Box<MountError>,
    },
    #[error("volume {name}: {source}")]
    Mount {
        name: String,
        #[source]
        source: Box<MountError>,
    },
    #[error("invalid filter: {0}")]
    Filter(String),
    #[error("volume {name}: {op} {path}")]
    Io {
        name: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {name}: record")]
    State {
        name: String,
        #[source]
        source: StateError,
    },
    #[error("volume {0} is being imported")]
    Busy(String),
    #[error("volume {name}")]
    Archive {
        name: String,
        #[source]
        source: Box<archive::ArchiveError>,
    },
}

impl VolumeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::NotFound(_) | VolumeError::UnknownDriver(_) => ErrorKind::NotFound,
            VolumeError::InUse { .. }
            | VolumeError::DriverConflict { .. }
            | VolumeError::Busy(_) => ErrorKind::Conflict,
            VolumeError::InvalidName(_) | VolumeError::Options { .. } | VolumeError::Filter(_) => {
                ErrorKind::InvalidArgument
            }
            VolumeError::Archive { source, .. } => source.kind(),
            VolumeError::Mount { .. } | VolumeError::Io { .. } | VolumeError::State { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// A volume's persistent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// A volume with its live usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeView {
    pub volume: Volume,
    /// Who holds it (container ids), sorted.
    pub refs: Vec<String>,
}

/// What to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub options: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}

/// Volume list/prune selection (the API's `filters`, already parsed).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Patterns (regex or exact) the name must match one of.
    pub name: Vec<String>,
    pub driver: Vec<String>,
    /// `key` or `key=value`, all required.
    pub label: Vec<String>,
    /// `key` or `key=value`, none may match.
    pub label_not: Vec<String>,
    pub dangling: Option<bool>,
}

/// Outcome of a prune.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

struct Entry {
    volume: Volume,
    refs: BTreeSet<String>,
    mounted: bool,
    /// An import owns the volume: nobody else may take a reference.
    exclusive: bool,
}

/// All volumes of one data root.
pub struct VolumeStore {
    root: PathBuf,
    events: EventBus,
    entries: Mutex<BTreeMap<String, Entry>>,
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn labels_match<'a>(
    filters: &'a [String],
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = bool> + 'a {
    filters.iter().map(move |f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(f.as_str()),
    })
}

impl Selector {
    fn matches(&self, v: &Volume, in_use: bool) -> Result<bool, VolumeError> {
        if !self.name.is_empty() {
            let mut any = false;
            for pat in &self.name {
                any |= name_matches(pat, &v.name)?;
            }
            if !any {
                return Ok(false);
            }
        }
        if !self.driver.is_empty() && !self.driver.iter().any(|d| d == &v.driver) {
            return Ok(false);
        }
        if !labels_match(&self.label, &v.labels).all(|m| m) {
            return Ok(false);
        }
        if labels_match(&self.label_not, &v.labels).any(|m| m) {
            return Ok(false);
        }
        if let Some(d) = self.dangling {
            if d == in_use {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Docker matches names exactly or as a regular expression found anywhere in the name.
fn name_matches(pattern: &str, name: &str) -> Result<bool, VolumeError> {
    if pattern == name {
        return Ok(true);
    }
    let re = regex::Regex::new(pattern)
        .map_err(|e| VolumeError::Filter(format!("name={pattern}: {e}")))?;
    Ok(re.is_match(name))
}

impl VolumeStore {
    /// Load every volume under `<data_root>/volumes`.
    pub fn open(data_root: &Path, events: EventBus) -> Result<Self, VolumeError> {
        let root = data_root.join("volumes");
        let ioerr = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| VolumeError::Io {
                name: String::new(),
                op,
                path,
                source,
            }
        };
        fs::create_dir_all(&root).map_err(ioerr("create", &root))?;
        let mut entries = BTreeMap::new();
        for de in fs::read_dir(&root).map_err(ioerr("list", &root))? {
            let de = de.map_err(ioerr("list", &root))?;
            let name = de.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) || !de.path().join(DATA).is_dir() {
                // Trash of an interrupted removal, or not a volume at all.
                if name.starts_with(".trash-") {
                    let _ = fs::remove_dir_all(de.path());
                }
                continue;
            }
            let record = de.path().join(RECORD);
            let mut volume = match state::read_json::<Volume>(&record) {
                Ok(Some(v)) => v,
                // A `_data` dir without a record: created by hand or a crash between the two
                // writes; it is a volume with defaults (Docker does the same for bare dirs).
                Ok(None) => Volume {
                    name: name.clone(),
                    driver: LOCAL_DRIVER.to_string(),
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    created_at: de
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .map(crate::unix_secs)
                        .unwrap_or(0),
                    mountpoint: PathBuf::new(),
                },
                Err(source) => {
                    tracing::warn!(volume = %name, error = %source, "skipping volume with unreadable record");
                    continue;
                }
            };
            volume.mountpoint = de.path().join(DATA);
            entries.insert(
                name,
                Entry {
                    volume,
                    refs: BTreeSet::new(),
                    mounted: false,
                    exclusive: false,
                },
            );
        }
        Ok(Self {
            root,
            events,
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, action: &str, v: &Volume, extra: &[(&str, &str)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("driver".to_string(), v.driver.clone());
        for (k, val) in extra {
            attrs.insert((*k).to_string(), (*val).to_string());
        }
        self.events
            .publish(Event::now("volume", action, &v.name, attrs));
    }

    /// Create a volume, or return the existing one of that name (Docker's idempotent create).
    pub fn create(&self, req: CreateRequest) -> Result<Volume, VolumeError> {
        let driver = req
            .driver
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| LOCAL_DRIVER.to_string());
        let mut labels: BTreeMap<String, String> = req.labels.into_iter().collect();
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
                crate::host::random_id().map_err(|source| VolumeError::Io {
                    name: String::new(),
                    op: "read",
                    path: "/dev/urandom".into(),
                    source,
                })?
            }
        };
        if !valid_name(&name) {
            return Err(VolumeError::InvalidName(name));
        }
        let mut entries = self.lock();
        if let Some(e) = entries.get(&name) {
            if driver != e.volume.driver {
                return Err(VolumeError::DriverConflict { name, driver });
            }
            return Ok(e.volume.clone());
        }
        if driver != LOCAL_DRIVER {
            return Err(VolumeError::UnknownDriver(driver));
        }
        MountOpts::parse(&req.options).map_err(|source| VolumeError::Options {
            name: name.clone(),
            source: Box::new(source),
        })?;
        let dir = self.root.join(&name);
        let data = dir.join(DATA);
        let io = |op, path: &Path| {
            let (name, path) = (name.clone(), path.to_path_buf());
            move |source| VolumeError::Io {
                name,
                op,
                path,
                source,
            }
        };
        fs::create_dir_all(&data).map_err(io("create", &data))?;
        let volume = Volume {
            name: name.clone(),
            driver,
            labels,
            options: req.options.into_iter().collect(),
            created_at: crate::unix_secs(std::time::SystemTime::now()),
            mountpoint: data,
        };
        if let Err(source) = state::write_json(&dir.join(RECORD), &volume) {
            let _ = fs::remove_dir_all(&dir);
            return Err(VolumeError::State { name, source });
        }
        entries.insert(
            name,
            Entry {
                volume: volume.clone(),
                refs: BTreeSet::new(),
                mounted: false,
                exclusive: false,
            },
        );
        drop(entries);
        self.publish("create", &volume, &[]);
        Ok(volume)
    }

    pub fn get(&self, name: &str) -> Result<VolumeView, VolumeError> {
        let entries = self.lock();
        let e = entries
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        Ok(VolumeView {
            volume: e.volume.clone(),
            refs: e.refs.iter().cloned().collect(),
        })
    }

    pub fn list(&self, sel: &Selector) -> Result<Vec<VolumeView>, VolumeError> {
        let entries = self.lock();
        let mut out = Vec::new();
        for e in entries.values() {
            if sel.matches(&e.volume, !e.refs.is_empty())? {
                out.push(VolumeView {
                    volume: e.volume.clone(),
                    refs: e.refs.iter().cloned().collect(),
                });
            }
        }
        Ok(out)
    }

    /// Remove a volume and its data. In use: conflict, even with `force`; missing: not found,
    /// unless `force`.
    pub fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let mut entries = self.lock();
        let Some(e) = entries.get(name) else {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound(name.to_string()))
            };
        };
        if !e.refs.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                refs: e.refs.iter().cloned().collect(),
            });
        }
        let trash = self.move_to_trash(name)?;
        let e = entries
            .remove(name)
            .expect("checked above under the same lock");
        drop(entries);
        let _ = fs::remove_dir_all(&trash);
        self.publish("destroy", &e.volume, &[]);
        Ok(())
    }

    /// Rename the volume dir out of the way atomically, so a crash mid-delete never leaves a
    /// half-deleted volume that still loads.
    fn move_to_trash(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let dir = self.root.join(name);
        let trash = self.root.join(format!(".trash-{name}-{}", short_random()));
        fs::rename(&dir, &trash).map_err(|source| VolumeError::Io {
            name: name.to_string(),
            op: "remove",
            path: dir,
            source,
        })?;
        Ok(trash)
    }

    /// Remove unused volumes that match; without `all`, only anonymous ones (API ≥ 1.42).
    pub fn prune(&self, sel: &Selector, all: bool) -> Result<PruneReport, VolumeError> {
        let mut report = PruneReport::default();
        let victims: Vec<String> = {
            let entries = self.lock();
            let mut v = Vec::new();
            for e in entries.values() {
                if e.refs.is_empty()
                    && (all || e.volume.is_anonymous())
                    && sel.matches(&e.volume, false)?
                {
                    v.push(e.volume.name.clone());
                }
            }
            v
        };
        for name in victims {
            let mut entries = self.lock();
            // Re-check under the lock: it may have been taken or removed meanwhile.
            let Some(e) = entries.get(&name) else {
                continue;
            };
            if !e.refs.is_empty() {
                continue;
            }
            let size = dir_size(&e.volume.mountpoint);
            let trash = self.move_to_trash(&name)?;
            let e = entries.remove(&name).expect("present under the same lock");
            drop(entries);
            let _ = fs::remove_dir_all(&trash);
            self.publish("destroy", &e.volume, &[]);
            report.space_reclaimed += size;
            report.deleted.push(name);
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".to_string(), report.space_reclaimed.to_string());
        self.events
            .publish(Event::now("volume", "prune", "", attrs));
        Ok(report)
    }

    /// Take a reference on a volume for `ref_id` (a container id): mounts it on its first
    /// reference when it has mount options; returns the path to mount into the container.
    pub fn acquire(&self, name: &str, ref_id: &str) -> Result<PathBuf, VolumeError> {
        let (volume, path, first) = self.take_ref(name, ref_id, false)?;
        if first {
            self.publish("mount", &volume, &[("container", ref_id)]);
        }
        Ok(path)
    }

    /// Drop `ref_id`'s reference; unmounts after the last one. Releasing a reference that isn't
    /// held is not an error (release is idempotent, for cleanup paths).
    pub fn release(&self, name: &str, ref_id: &str) -> Result<(), VolumeError> {
        let (volume, had) = self.drop_ref(name, ref_id)?;
        if had {
            self.publish("unmount", &volume, &[("container", ref_id)]);
        }
        Ok(())
    }

    fn take_ref(
        &self,
        name: &str,
        ref_id: &str,
        exclusive: bool,
    ) -> Result<(Volume, PathBuf, bool), VolumeError> {
        let mut entries = self.lock();
        let e = entries
            .get_mut(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        if e.exclusive {
            return Err(VolumeError::Busy(name.to_string()));
        }
        if exclusive && !e.refs.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                refs: e.refs.iter().cloned().collect(),
            });
        }
        if !e.mounted {
            let opts: HashMap<String, String> = e.volume.options.clone().into_iter().collect();
            let parsed = MountOpts::parse(&opts).map_err(|source| VolumeError::Mount {
                name: name.to_string(),
                source: Box::new(source),
            })?;
            if let Some(m) = parsed {
                m.mount(&e.volume.mountpoint)
                    .map_err(|source| VolumeError::Mount {
                        name: name.to_string(),
                        source: Box::new(source),
                    })?;
                e.mounted = true;
            }
        }
        e.exclusive = exclusive;
        let first = e.refs.insert(ref_id.to_string());
        Ok((e.volume.clone(), e.volume.mountpoint.clone(), first))
    }

    fn drop_ref(&self, name: &str, ref_id: &str) -> Result<(Volume, bool), VolumeError> {
        let mut entries = self.lock();
        let e = entries
            .get_mut(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        let had = e.refs.remove(ref_id);
        if had {
            e.exclusive = false;
        }
        if e.refs.is_empty() && e.mounted {
            mount::unmount(&e.volume.mountpoint).map_err(|source| VolumeError::Mount {
                name: name.to_string(),
                source: Box::new(source),
            })?;
            e.mounted = false;
        }
        Ok((e.volume.clone(), had))
    }

    /// Write volume `name` as a tar stream to `out` (mounting it for the duration when it has
    /// mount options; it can't be removed meanwhile).
    pub fn export<W: Write>(&self, name: &str, out: W) -> Result<W, VolumeError> {
        let ref_id = format!("berth-export-{}", short_random());
        let (_, path, _) = self.take_ref(name, &ref_id, false)?;
        let result = archive::write_tar(&path, out).map_err(|source| VolumeError::Archive {
            name: name.to_string(),
            source: Box::new(source),
        });
        self.drop_ref(name, &ref_id)?;
        result
    }

    /// Restore a tar stream into volume `name`, creating the volume when it doesn't exist. The
    /// volume must be unused and empty; on failure nothing is left behind (a volume this import
    /// created is removed again, an existing one is emptied).
    pub fn import<R: Read>(
        &self,
        name: &str,
        input: R,
    ) -> Result<(Volume, archive::ImportStats), VolumeError> {
        let created = match self.get(name) {
            Ok(_) => false,
            Err(VolumeError::NotFound(_)) => {
                self.create(CreateRequest {
                    name: Some(name.to_string()),
                    ..Default::default()
                })?;
                true
            }
            Err(e) => return Err(e),
        };
        let ref_id = format!("berth-import-{}", short_random());
        let (volume, path) = match self.take_ref(name, &ref_id, true) {
            Ok((v, p, _)) => (v, p),
            Err(e) => {
                if created {
                    let _ = self.remove(name, true);
                }
                return Err(e);
            }
        };
        let result = self.import_into(name, &volume, &path, input);
        let released = self.drop_ref(name, &ref_id);
        match result {
            Ok(stats) => {
                released?;
                self.publish("import", &volume, &[]);
                Ok((volume, stats))
            }
            Err(e) => {
                if created {
                    let _ = self.remove(name, true);
                }
                Err(e)
            }
        }
    }

    fn import_into<R: Read>(
        &self,
        name: &str,
        volume: &Volume,
        path: &Path,
        input: R,
    ) -> Result<archive::ImportStats, VolumeError> {
        let io = |op, p: &Path| {
            let (name, path) = (name.to_string(), p.to_path_buf());
            move |source| VolumeError::Io {
                name,
                op,
                path,
                source,
            }
        };
        let archive_err = |source| VolumeError::Archive {
            name: name.to_string(),
            source: Box::new(source),
        };
        if fs::read_dir(path)
            .map_err(io("list", path))?
            .next()
            .is_some()
        {
            return Err(archive_err(archive::ArchiveError::NotEmpty(
                name.to_string(),
            )));
        }
        if volume.options.is_empty() {
            // Plain directory: extract beside `_data` and swap it in only when complete.
            let staging = self
                .root
                .join(name)
                .join(format!("_import-{}", short_random()));
            fs::create_dir(&staging).map_err(io("create", &staging))?;
            let result = archive::extract_tar(input, &staging).map_err(archive_err);
            let result = result.and_then(|stats| {
                fs::remove_dir(path).map_err(io("replace", path))?;
                fs::rename(&staging, path).map_err(io("replace", path))?;
                Ok(stats)
            });
            if result.is_err() {
                let _ = fs::remove_dir_all(&staging);
            }
            result
        } else {
            // A mounted filesystem: extract in place, empty it again on failure.
            let result = archive::extract_tar(input, path).map_err(archive_err);
            if result.is_err() {
                if let Ok(rd) = fs::read_dir(path) {
                    for de in rd.flatten() {
                        let p = de.path();
                        let _ = if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                    }
                }
            }
            result
        }
    }

    /// Every volume with its size on disk (bytes of regular files) and reference count, for
    /// `system df`. Sizes are measured outside the lock.
    pub fn usage(&self) -> Vec<(VolumeView, u64)> {
        let views: Vec<VolumeView> = {
            let entries = self.lock();
            entries
                .values()
                .map(|e| VolumeView {
                    volume: e.volume.clone(),
                    refs: e.refs.iter().cloned().collect(),
                })
                .collect()
        };
        views
            .into_iter()
            .map(|v| {
                let size = dir_size(&v.volume.mountpoint);
                (v, size)
            })
            .collect()
    }

    /// Number of volumes (for `/info`-style counts).
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

fn short_random() -> String {
    crate::host::random_id()
        .map(|r| r[..12].to_string())
        .unwrap_or_else(|_| std::process::id().to_string())
}

/// Bytes used by regular files under `dir` (each inode once; symlinks not followed).
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for de in rd.flatten() {
            let Ok(md) = de.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(de.path());
            } else if md.is_file() && seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests;
