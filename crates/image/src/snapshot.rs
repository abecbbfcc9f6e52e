//! Snapshots: one directory per layer chain id, and one writable layer per container.
//!
//! Layout under the snapshotter root:
//! - `snapshots/<chain-id-hex>/fs` — a committed layer, `snapshots/<chain-id-hex>/meta.json` its
//!   parent and size. Committed by renaming a private `snapshots/.tmp-…` directory, so a
//!   snapshot is either absent or complete.
//! - `containers/<id>/{upper,work,merged}` and `containers/<id>/meta.json`.
//!
//! [`Mode::Overlay`] (root, kernel overlayfs): each snapshot holds only its own layer with overlay
//! whiteouts, and is shared as a read-only lower layer by every image using that chain id; a
//! container gets `lowerdir=top:…:base,upperdir,workdir` mounted at `merged`.
//! [`Mode::Copy`] (fallback where overlayfs cannot be used): each snapshot is the full root
//! filesystem — the parent's tree hardlinked (safe: unpacking never writes into an existing file,
//! it replaces it) with this layer applied on top, whiteouts deleting — and a container gets a
//! real copy of its image's top snapshot.
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::layer::{UnpackOptions, WhiteoutMode};

/// Chain ids per the OCI image spec: `chain(L0) = diff(L0)`,
/// `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Errors of the snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("snapshot: {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A mount call failed.
    #[error("snapshot: {op} {path}")]
    Mount {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// No such snapshot.
    #[error("snapshot {0} does not exist")]
    NotFound(Digest),
    /// Copy mode needs the parent committed before a child is prepared.
    #[error("parent snapshot {parent} of {chain_id} is not committed")]
    ParentMissing { chain_id: Digest, parent: Digest },
    /// The overlay mount options do not fit in a page.
    #[error("overlay mount for container {container} needs {len} bytes of options (limit {limit}); too many layers ({layers})")]
    TooManyLayers {
        container: String,
        len: usize,
        limit: usize,
        layers: usize,
    },
    /// A container id that cannot be a directory name.
    #[error("invalid container id {0:?}")]
    BadContainerId(String),
    /// A container already has a writable layer.
    #[error("container {0} already has a writable layer")]
    ContainerExists(String),
    /// Snapshot metadata is corrupt.
    #[error("snapshot metadata {path} is invalid")]
    Meta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// How snapshots are stacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// overlayfs lower layers, one per chain id.
    Overlay,
    /// Full copies (fallback).
    Copy,
}

impl Mode {
    /// Overlay when running as root on a kernel with overlayfs, else copy.
    pub fn detect() -> Mode {
        let root = nix::unistd::geteuid().is_root();
        // Listed once the module is loaded; a first overlay mount loads it on demand.
        let listed = fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some("overlay"))
            })
            .unwrap_or(false);
        let as_module = fs::read_dir("/lib/modules").is_ok_and(|mut rd| {
            rd.any(|e| e.is_ok_and(|e| e.path().join("kernel/fs/overlayfs").is_dir()))
        });
        let has_overlay = listed || as_module;
        if root && has_overlay {
            Mode::Overlay
        } else {
            Mode::Copy
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotMeta {
    parent: Option<Digest>,
    size: u64,
    created: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContainerMeta {
    chain: Vec<Digest>,
    mode: String,
}

/// A container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    /// The directory to use as the container's rootfs (`merged`, or the copy).
    pub path: PathBuf,
    /// overlay lowerdirs, top first (empty in copy mode).
    pub lowerdirs: Vec<PathBuf>,
    /// overlay upperdir (the container's writable layer).
    pub upperdir: Option<PathBuf>,
    /// overlay workdir.
    pub workdir: Option<PathBuf>,
    /// Whether `path` is an overlay mount made by the snapshotter.
    pub mounted: bool,
}

impl RootfsMount {
    /// The overlay mount data (`lowerdir=…,upperdir=…,workdir=…`), for callers mounting it
    /// themselves (e.g. inside another mount namespace). `None` in copy mode.
    pub fn overlay_options(&self) -> Option<String> {
        let (Some(up), Some(work)) = (&self.upperdir, &self.workdir) else {
            return None;
        };
        let lowers: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Some(format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            up.display(),
            work.display()
        ))
    }
}

/// Snapshots and container layers under one root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
    snapshots: PathBuf,
    containers: PathBuf,
    mode: Mode,
    leases: crate::lease::Leases,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A snapshot being written: unpack into [`Prepared::path`], then [`Prepared::commit`] (atomic)
/// or [`Prepared::abort`]. Dropped uncommitted, its directory is removed.
#[derive(Debug)]
pub struct Prepared {
    tmp: PathBuf,
    fs: PathBuf,
    dest: PathBuf,
    chain_id: Digest,
    parent: Option<Digest>,
    done: std::sync::atomic::AtomicBool,
}

impl Prepared {
    /// Where to unpack the layer.
    pub fn path(&self) -> &Path {
        &self.fs
    }

    /// The chain id being prepared.
    pub fn chain_id(&self) -> &Digest {
        &self.chain_id
    }

    /// Publish the snapshot (rename into place). If the same chain id was committed meanwhile
    /// (a concurrent pull), this one is discarded and that is not an error. Returns whether
    /// this call published it (only then is it this caller's to remove on failure).
    pub fn commit(&self, size: u64) -> Result<bool, SnapshotError> {
        let meta = SnapshotMeta {
            parent: self.parent.clone(),
            size,
            created: crate::images::now_rfc3339(),
        };
        let mp = self.tmp.join("meta.json");
        fs::write(
            &mp,
            serde_json::to_vec(&meta).expect("snapshot meta serialises"),
        )
        .map_err(io_err("write", &mp))?;
        match fs::rename(&self.tmp, &self.dest) {
            Ok(()) => {
                self.done.store(true, Ordering::SeqCst);
                Ok(true)
            }
            Err(e)
                if self.dest.join("meta.json").exists()
                    && matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) =>
            {
                // Lost a race with an identical snapshot; Drop removes ours.
                Ok(false)
            }
            Err(e) => Err(SnapshotError::Io {
                op: "commit",
                path: self.dest.clone(),
                source: e,
            }),
        }
    }

    /// Discard the partial snapshot (idempotent; a committed snapshot is left alone).
    pub fn abort(&self) -> Result<(), SnapshotError> {
        if self.done.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        remove_tree(&self.tmp)
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !*self.done.get_mut() {
            let _ = remove_tree(&self.tmp);
        }
    }
}

fn remove_tree(p: &Path) -> Result<(), SnapshotError> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SnapshotError::Io {
            op: "remove",
            path: p.to_owned(),
            source: e,
        }),
    }
}

fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !id.starts_with('.')
}

impl Snapshotter {
    /// Open (creating if needed) with the mode detected for this host.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        Self::open_with_mode(root, Mode::detect())
    }

    /// Open with an explicit mode.
    pub fn open_with_mode(root: impl AsRef<Path>, mode: Mode) -> Result<Self, SnapshotError> {
        let root = root.as_ref().to_owned();
        let snapshots = root.join("snapshots");
        let containers = root.join("containers");
        for d in [&snapshots, &containers] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(io_err("create", d))?;
        }
        Ok(Self {
            root,
            snapshots,
            containers,
            mode,
            leases: crate::lease::Leases::default(),
        })
    }

    /// Snapshots held by in-flight pulls; [`Snapshotter::prune`] keeps them (shared by clones).
    pub fn leases(&self) -> &crate::lease::Leases {
        &self.leases
    }

    /// The stacking mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `base` adjusted to this snapshotter: overlay whiteouts in overlay mode, deletions in copy
    /// mode. Callers unpacking into [`Prepared::path`] must use these options.
    pub fn unpack_options(&self, base: &UnpackOptions) -> UnpackOptions {
        let mut o = base.clone();
        o.whiteouts = match self.mode {
            Mode::Overlay => WhiteoutMode::Overlay,
            Mode::Copy => WhiteoutMode::Delete,
        };
        o
    }

    fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.snapshots.join(chain_id.hex())
    }

    /// The committed snapshot's filesystem directory.
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("fs")
    }

    /// Whether a committed snapshot exists.
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join("meta.json").is_file()
    }

    /// The uncompressed layer size recorded at commit.
    pub fn size(&self, chain_id: &Digest) -> Result<u64, SnapshotError> {
        Ok(self.meta(chain_id)?.size)
    }

    /// The parent chain id recorded at commit.
    pub fn parent(&self, chain_id: &Digest) -> Result<Option<Digest>, SnapshotError> {
        Ok(self.meta(chain_id)?.parent)
    }

    fn meta(&self, chain_id: &Digest) -> Result<SnapshotMeta, SnapshotError> {
        let p = self.dir(chain_id).join("meta.json");
        let bytes = fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SnapshotError::NotFound(chain_id.clone())
            } else {
                SnapshotError::Io {
                    op: "read",
                    path: p.clone(),
                    source: e,
                }
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Meta { path: p, source })
    }

    /// Every committed snapshot.
    pub fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.snapshots).map_err(io_err("list", &self.snapshots))? {
            let e = e.map_err(io_err("list", &self.snapshots))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                if self.exists(&d) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Start a snapshot for `chain_id` on top of `parent`. In overlay mode the directory starts
    /// empty and the parent need not be committed yet (layers unpack in parallel); in copy mode
    /// it starts as a hardlinked copy of the committed parent.
    pub fn prepare(
        &self,
        chain_id: &Digest,
        parent: Option<&Digest>,
    ) -> Result<Prepared, SnapshotError> {
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.snapshots.join(format!(
            ".tmp-{}-{}-{}",
            chain_id.short(),
            std::process::id(),
            seq
        ));
        let fs_dir = tmp.join("fs");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&fs_dir)
            .map_err(io_err("create", &fs_dir))?;
        let prepared = Prepared {
            tmp,
            fs: fs_dir,
            dest: self.dir(chain_id),
            chain_id: chain_id.clone(),
            parent: parent.cloned(),
            done: std::sync::atomic::AtomicBool::new(false),
        };
        if self.mode == Mode::Copy {
            if let Some(p) = parent {
                if !self.exists(p) {
                    return Err(SnapshotError::ParentMissing {
                        chain_id: chain_id.clone(),
                        parent: p.clone(),
                    });
                }
                copy_tree(&self.fs_path(p), &prepared.fs, true)?;
            }
        }
        Ok(prepared)
    }

    /// The brief's name for [`Snapshotter::prepare`].
    pub fn prepare_layer(
        &self,
        chain_id: &Digest,
        parent: Option<&Digest>,
    ) -> Result<Prepared, SnapshotError> {
        self.prepare(chain_id, parent)
    }

    /// Remove a committed snapshot (absent is fine). Callers make sure no image or container
    /// uses it ([`Snapshotter::prune`] does).
    pub fn remove(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        // Rename first so a half-removed snapshot is never mistaken for a committed one.
        let dir = self.dir(chain_id);
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let trash = self.snapshots.join(format!(
            ".tmp-rm-{}-{}-{}",
            chain_id.short(),
            std::process::id(),
            seq
        ));
        match fs::rename(&dir, &trash) {
            Ok(()) => remove_tree(&trash),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SnapshotError::Io {
                op: "remove",
                path: dir,
                source: e,
            }),
        }
    }

    fn container_dir(&self, id: &str) -> Result<PathBuf, SnapshotError> {
        if !valid_container_id(id) {
            return Err(SnapshotError::BadContainerId(id.to_owned()));
        }
        Ok(self.containers.join(id))
    }

    /// Create the container's writable layer over `image_chain` (chain ids, base first) and
    /// mount it (overlay mode) or copy the image into it (copy mode).
    pub fn mount_for_container(
        &self,
        container_id: &str,
        image_chain: &[Digest],
    ) -> Result<RootfsMount, SnapshotError> {
        let cdir = self.container_dir(container_id)?;
        for c in image_chain {
            if !self.exists(c) {
                return Err(SnapshotError::NotFound(c.clone()));
            }
        }
        match fs::DirBuilder::new().mode(0o700).create(&cdir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(SnapshotError::ContainerExists(container_id.to_owned()))
            }
            Err(e) => {
                return Err(SnapshotError::Io {
                    op: "create",
                    path: cdir,
                    source: e,
                })
            }
        }
        let result = self.mount_inner(container_id, &cdir, image_chain);
        if result.is_err() {
            let _ = self.remove_container(container_id);
        }
        result
    }

    fn mount_inner(
        &self,
        container_id: &str,
        cdir: &Path,
        chain: &[Digest],
    ) -> Result<RootfsMount, SnapshotError> {
        let meta = ContainerMeta {
            chain: chain.to_vec(),
            mode: format!("{:?}", self.mode),
        };
        let mp = cdir.join("meta.json");
        fs::write(
            &mp,
            serde_json::to_vec(&meta).expect("container meta serialises"),
        )
        .map_err(io_err("write", &mp))?;
        let merged = cdir.join("merged");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&merged)
            .map_err(io_err("create", &merged))?;
        match self.mode {
            Mode::Copy => {
                if let Some(top) = chain.last() {
                    copy_tree(&self.fs_path(top), &merged, false)?;
                }
                Ok(RootfsMount {
                    path: merged,
                    lowerdirs: vec![],
                    upperdir: None,
                    workdir: None,
                    mounted: false,
                })
            }
            Mode::Overlay => {
                let upper = cdir.join("upper");
                let work = cdir.join("work");
                for d in [&upper, &work] {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(d)
                        .map_err(io_err("create", d))?;
                }
                let mut lowerdirs: Vec<PathBuf> =
                    chain.iter().rev().map(|c| self.fs_path(c)).collect();
                if lowerdirs.is_empty() {
                    // overlayfs needs a lower layer: an image without layers gets an empty one.
                    let empty = cdir.join("empty");
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&empty)
                        .map_err(io_err("create", &empty))?;
                    lowerdirs.push(empty);
                }
                let m = RootfsMount {
                    path: merged.clone(),
                    lowerdirs,
                    upperdir: Some(upper),
                    workdir: Some(work),
                    mounted: true,
                };
                let data = m
                    .overlay_options()
                    .expect("overlay mode has upper and work");
                let limit = 4095;
                if data.len() > limit {
                    // mount(2) takes at most a page of options; the fs-context API takes one
                    // `lowerdir+` per layer (Linux 6.8+), so any number of layers fits.
                    return match mount_layer_by_layer(&m, &merged) {
                        Ok(()) => Ok(m),
                        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                            Err(SnapshotError::TooManyLayers {
                                container: container_id.to_owned(),
                                len: data.len(),
                                limit,
                                layers: chain.len(),
                            })
                        }
                        Err(source) => Err(SnapshotError::Mount {
                            op: "mount overlay (one lowerdir+ per layer) on",
                            path: merged.clone(),
                            source,
                        }),
                    };
                }
                mount(
                    Some("overlay"),
                    &merged,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(data.as_str()),
                )
                .map_err(|source| SnapshotError::Mount {
                    op: "mount overlay on",
                    path: merged.clone(),
                    source,
                })?;
                Ok(m)
            }
        }
    }

    /// The container's rootfs path (whether or not mounted).
    pub fn container_rootfs(&self, container_id: &str) -> Result<PathBuf, SnapshotError> {
        Ok(self.container_dir(container_id)?.join("merged"))
    }

    /// Unmount and delete a container's writable layer (absent is fine).
    pub fn remove_container(&self, container_id: &str) -> Result<(), SnapshotError> {
        let cdir = self.container_dir(container_id)?;
        let merged = cdir.join("merged");
        match umount2(&merged, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(source) => {
                return Err(SnapshotError::Mount {
                    op: "unmount",
                    path: merged,
                    source,
                })
            }
        }
        remove_tree(&cdir)
    }

    /// Container ids with a writable layer.
    pub fn containers(&self) -> Result<Vec<String>, SnapshotError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.containers).map_err(io_err("list", &self.containers))? {
            let e = e.map_err(io_err("list", &self.containers))?;
            if let Some(n) = e.file_name().to_str() {
                out.push(n.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Bytes used by a container's writable layer (what `docker ps -s` calls size).
    pub fn usage(&self, container_id: &str) -> Result<u64, SnapshotError> {
        let cdir = self.container_dir(container_id)?;
        let top = match self.mode {
            Mode::Overlay => cdir.join("upper"),
            Mode::Copy => cdir.join("merged"),
        };
        disk_usage(&top)
    }

    /// Bytes a committed snapshot uses on disk.
    pub fn snapshot_usage(&self, chain_id: &Digest) -> Result<u64, SnapshotError> {
        if !self.exists(chain_id) {
            return Err(SnapshotError::NotFound(chain_id.clone()));
        }
        disk_usage(&self.fs_path(chain_id))
    }

    /// Remove snapshots no image (`in_use`, e.g. [`crate::images::ImageStore::used_chain_ids`])
    /// and no container uses, and stale temporary directories. Returns the removed chain ids.
    pub fn prune(&self, in_use: &[Digest]) -> Result<Vec<Digest>, SnapshotError> {
        let mut keep: std::collections::HashSet<Digest> = in_use.iter().cloned().collect();
        keep.extend(self.leases.held());
        for c in self.containers()? {
            let p = self.containers.join(&c).join("meta.json");
            if let Ok(bytes) = fs::read(&p) {
                if let Ok(m) = serde_json::from_slice::<ContainerMeta>(&bytes) {
                    keep.extend(m.chain);
                }
            }
        }
        let mut removed = Vec::new();
        for d in self.list()? {
            if !keep.contains(&d) {
                self.remove(&d)?;
                removed.push(d);
            }
        }
        let hour = std::time::Duration::from_secs(3600);
        for e in fs::read_dir(&self.snapshots).map_err(io_err("list", &self.snapshots))? {
            let e = e.map_err(io_err("list", &self.snapshots))?;
            let name = e.file_name();
            let stale = name.to_str().is_some_and(|n| n.starts_with(".tmp-"))
                && e.metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a > hour);
            if stale {
                remove_tree(&e.path())?;
            }
        }
        Ok(removed)
    }
}

/// Mount `m` at `target` through fsopen/fsconfig/fsmount with one `lowerdir+` option per layer.
fn mount_layer_by_layer(m: &RootfsMount, target: &Path) -> Result<(), Errno> {
    use std::os::fd::AsFd;
    let mut opts: Vec<String> = m
        .lowerdirs
        .iter()
        .map(|p| format!("lowerdir+={}", p.display()))
        .collect();
    if let (Some(up), Some(work)) = (&m.upperdir, &m.workdir) {
        opts.push(format!("upperdir={}", up.display()));
        opts.push(format!("workdir={}", work.display()));
    }
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    let mnt = berth_sys::mount::new_fs_mount("overlay", &refs, 0).map_err(|(_, e)| e)?;
    let dir = nix::fcntl::open(
        target,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    berth_sys::mount::attach_mount(mnt.as_fd(), dir.as_fd())
}

fn disk_usage(p: &Path) -> Result<u64, SnapshotError> {
    let mut total = 0u64;
    let mut stack = vec![p.to_owned()];
    let mut seen_inodes = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SnapshotError::Io {
                    op: "list",
                    path: d,
                    source: e,
                })
            }
        };
        for e in rd {
            let e = e.map_err(io_err("list", &d))?;
            let m = e.metadata().map_err(io_err("stat", &e.path()))?;
            if m.nlink() > 1 && !m.is_dir() && !seen_inodes.insert((m.dev(), m.ino())) {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(total)
}

/// Copy a tree keeping owners, modes, times and xattrs; regular files are hardlinked when
/// `hardlink` is set (copy-mode snapshots) and copied otherwise (a container's writable copy).
fn copy_tree(src: &Path, dst: &Path, hardlink: bool) -> Result<(), SnapshotError> {
    use std::os::unix::fs::{lchown, symlink, FileTypeExt, PermissionsExt};
    let mut dirs: Vec<(PathBuf, PathBuf, fs::Metadata)> = Vec::new();
    let mut stack = vec![(src.to_owned(), dst.to_owned())];
    while let Some((s, d)) = stack.pop() {
        for e in fs::read_dir(&s).map_err(io_err("list", &s))? {
            let e = e.map_err(io_err("list", &s))?;
            let sp = e.path();
            let dp = d.join(e.file_name());
            let m = fs::symlink_metadata(&sp).map_err(io_err("stat", &sp))?;
            let ft = m.file_type();
            if ft.is_dir() {
                fs::create_dir(&dp).map_err(io_err("create", &dp))?;
                stack.push((sp.clone(), dp.clone()));
                dirs.push((sp, dp, m));
                continue;
            }
            if ft.is_symlink() {
                let target = fs::read_link(&sp).map_err(io_err("readlink", &sp))?;
                symlink(&target, &dp).map_err(io_err("symlink", &dp))?;
                lchown(&dp, Some(m.uid()), Some(m.gid())).map_err(io_err("chown", &dp))?;
                continue;
            }
            if ft.is_file() && hardlink {
                fs::hard_link(&sp, &dp).map_err(io_err("link", &dp))?;
                continue;
            }
            if ft.is_file() {
                fs::copy(&sp, &dp).map_err(io_err("copy", &dp))?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = nix::sys::stat::SFlag::from_bits_truncate(m.mode() & libc::S_IFMT);
                nix::sys::stat::mknod(
                    &dp,
                    kind,
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                    m.rdev(),
                )
                .map_err(|source| SnapshotError::Mount {
                    op: "mknod",
                    path: dp.clone(),
                    source,
                })?;
            } else {
                continue; // sockets are not content
            }
            std::os::unix::fs::chown(&dp, Some(m.uid()), Some(m.gid()))
                .map_err(io_err("chown", &dp))?;
            fs::set_permissions(&dp, fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io_err("chmod", &dp))?;
            copy_xattrs(&sp, &dp);
            set_times(&dp, &m);
        }
    }
    // Directories last, deepest first, so their times survive their children.
    for (sp, dp, m) in dirs.into_iter().rev() {
        std::os::unix::fs::chown(&dp, Some(m.uid()), Some(m.gid()))
            .map_err(io_err("chown", &dp))?;
        fs::set_permissions(&dp, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(io_err("chmod", &dp))?;
        copy_xattrs(&sp, &dp);
        set_times(&dp, &m);
    }
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) {
    if let Ok(names) = xattr::list(src) {
        for n in names {
            if let Ok(Some(v)) = xattr::get(src, &n) {
                let _ = xattr::set(dst, &n, &v);
            }
        }
    }
}

fn set_times(p: &Path, m: &fs::Metadata) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let at = TimeSpec::new(m.atime(), m.atime_nsec());
    let mt = TimeSpec::new(m.mtime(), m.mtime_nsec());
    let _ = utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &at,
        &mt,
        UtimensatFlags::NoFollowSymlink,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = Digest::sha256_of(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = Digest::sha256_of(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], Digest::sha256_of(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn prepare_commit_abort_remove() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Snapshotter::open_with_mode(dir.path(), Mode::Overlay).expect("open");
        let id = Digest::sha256_of(b"layer");
        let p = s.prepare(&id, None).expect("prepare");
        fs::write(p.path().join("f"), b"x").expect("write");
        assert!(!s.exists(&id));
        assert!(p.commit(1).expect("commit"), "first commit publishes");
        assert!(s.exists(&id));
        assert_eq!(s.size(&id).expect("size"), 1);
        assert_eq!(fs::read(s.fs_path(&id).join("f")).expect("read"), b"x");
        // a second commit of the same chain id is discarded quietly
        let p = s.prepare(&id, None).expect("prepare");
        assert!(
            !p.commit(1).expect("commit again"),
            "the loser is discarded"
        );
        drop(p);
        let other = Digest::sha256_of(b"other");
        let p = s.prepare(&other, Some(&id)).expect("prepare");
        let tmp = p.path().to_owned();
        p.abort().expect("abort");
        assert!(!tmp.exists());
        let p = s.prepare(&other, None).expect("prepare");
        let tmp = p.path().to_owned();
        drop(p);
        assert!(!tmp.exists());
        assert_eq!(s.list().expect("list"), vec![id.clone()]);
        assert_eq!(
            s.prune(std::slice::from_ref(&id)).expect("prune"),
            Vec::<Digest>::new()
        );
        assert_eq!(s.prune(&[]).expect("prune"), vec![id.clone()]);
        assert!(!s.exists(&id));
        // only our own entries remain: no leftovers
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots"))
                .expect("ls")
                .count(),
            0
        );
    }

    #[test]
    fn container_ids_are_validated() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Snapshotter::open_with_mode(dir.path(), Mode::Copy).expect("open");
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(
                    s.mount_for_container(bad, &[]),
                    Err(SnapshotError::BadContainerId(_))
                ),
                "{bad}"
            );
        }
    }
}
