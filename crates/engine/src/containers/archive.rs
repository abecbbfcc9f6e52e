//! Copying files out of and into a container (`docker cp`, `GET|HEAD|PUT
//! /containers/{id}/archive`), on running and stopped containers alike.
//!
//! A container path is resolved like docker resolves it: every component but the last is
//! followed through symlinks (the last one too when the path ends in `/` or `/.`), `..` stops at
//! `/`, and a path under a volume or bind mount's destination maps to that mount's source. The
//! symlinks are read here, one component at a time, and every lookup is an
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the fd of the root the path
//! lives in (the container's root filesystem or one mount source), so a symlink planted in the
//! container (`/etc`, `../../..`) can never reach a host file, even when it is swapped in
//! between two checks: it then resolves inside that same root (CVE-2019-14271, CVE-2018-15664).
//! Directory trees are walked with `openat(O_NOFOLLOW)` on directory fds; uploads are unpacked
//! by `berth_image::layer::unpack`, which contains hostile tar entries (`..`, absolute names,
//! symlinked parents, hardlinks out) the same way.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_image::layer::{self, Compression, UnpackOptions, WhiteoutMode};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use serde::Serialize;

use super::{ContainerError, Containers, Record};
use crate::ErrorKind;

/// Most symlinks followed while resolving one path (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Errors of archive operations.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    #[error("extraction point is not a directory: {0}")]
    NotDirectory(String),
    #[error("container rootfs is marked read-only")]
    ReadOnlyRootfs,
    #[error("mounted volume is marked read-only: {0}")]
    ReadOnlyVolume(String),
    #[error("too many levels of symbolic links resolving {0}")]
    SymlinkLoop(String),
    #[error("cannot overwrite {existing} {path:?} with {incoming}")]
    Overwrite {
        path: String,
        existing: &'static str,
        incoming: &'static str,
    },
    #[error("{op} {path}")]
    Fs {
        op: &'static str,
        path: String,
        #[source]
        source: Errno,
    },
    #[error("{op}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the uploaded archive")]
    Tar(#[from] layer::tar::TarError),
    #[error("extracting the uploaded archive")]
    Unpack(#[source] layer::LayerError),
}

impl ArchiveError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Container(e) => e.kind(),
            ArchiveError::NotFound { .. } => ErrorKind::NotFound,
            ArchiveError::NotDirectory(_)
            | ArchiveError::ReadOnlyRootfs
            | ArchiveError::ReadOnlyVolume(_)
            | ArchiveError::SymlinkLoop(_)
            | ArchiveError::Overwrite { .. }
            | ArchiveError::Tar(_) => ErrorKind::InvalidArgument,
            ArchiveError::Unpack(e) => match e {
                layer::LayerError::BadPath { .. }
                | layer::LayerError::NameTooLong { .. }
                | layer::LayerError::Tar(_)
                | layer::LayerError::Decompress { .. } => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            ArchiveError::Fs { .. } | ArchiveError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// docker's `types.ContainerPathStat`, sent base64-encoded in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` encoding (type bits high, permissions low), what docker clients decode.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Options of an upload (`PUT .../archive`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// `noOverwriteDirNonDir`: refuse to replace a directory with a non-directory or back.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID`: keep the archive's owners (else everything belongs to root).
    pub copy_uid_gid: bool,
}

/// One root a container path can live in: `/` (the root filesystem) or a mount's destination.
struct Root {
    dest: Vec<OsString>,
    /// The mount source (a directory), or for a bind of one file the directory holding it.
    fd: OwnedFd,
    rw: bool,
    /// For a bind of one file (`/etc/hosts`): its name in the directory `fd`.
    file: Option<OsString>,
}

/// The container's filesystem as seen through its roots.
struct View {
    roots: Vec<Root>,
}

/// Go `os.FileMode` bits.
mod gomode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
}

/// `st_mode` as Go's `os.FileMode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match SFlag::from_bits_truncate(st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => m |= gomode::DIR,
        SFlag::S_IFLNK => m |= gomode::SYMLINK,
        SFlag::S_IFBLK => m |= gomode::DEVICE,
        SFlag::S_IFCHR => m |= gomode::DEVICE | gomode::CHAR_DEVICE,
        SFlag::S_IFIFO => m |= gomode::NAMED_PIPE,
        SFlag::S_IFSOCK => m |= gomode::SOCKET,
        _ => {}
    }
    if st_mode & 0o4000 != 0 {
        m |= gomode::SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= gomode::SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= gomode::STICKY;
    }
    m
}

fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// Components of an absolute container path (lexical; `..` kept for the resolver).
fn components(path: &[u8]) -> VecDeque<OsString> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
        .collect()
}

fn display(parts: &[OsString]) -> String {
    let mut s = String::from("/");
    s.push_str(
        &parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    );
    s
}

/// Where a resolved container path lives.
struct Resolved {
    /// The resolved container path, as components.
    parts: Vec<OsString>,
    /// Index of its root in [`View::roots`].
    root: usize,
    /// Path relative to that root (`.` for the root itself).
    rel: PathBuf,
}

impl View {
    /// The container's roots: its root filesystem, and every bind mount of its bundle's spec
    /// (volumes, binds, and the single-file binds like `/etc/hosts`), as the container sees
    /// them; without a readable bundle, the record's volume and bind mounts.
    fn open(rec: &Record, bundle_spec: Option<&serde_json::Value>) -> Result<View, ArchiveError> {
        let open_dir = |p: &Path| {
            nix::fcntl::open(
                p,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|source| ArchiveError::Fs {
                op: "open",
                path: p.display().to_string(),
                source,
            })
        };
        let mut roots = vec![Root {
            dest: Vec::new(),
            fd: open_dir(&rec.rootfs)?,
            rw: !rec.host_config.readonly_rootfs,
            file: None,
        }];
        // (destination, source, read-write)
        let mounts: Vec<(String, String, bool)> =
            match bundle_spec.and_then(|s| s["mounts"].as_array()) {
                Some(list) => list
                    .iter()
                    .filter(|m| {
                        m["type"] == "bind"
                            || m["options"]
                                .as_array()
                                .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
                    })
                    .map(|m| {
                        let ro = m["options"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|x| x == "ro"));
                        (
                            m["destination"].as_str().unwrap_or_default().to_string(),
                            m["source"].as_str().unwrap_or_default().to_string(),
                            !ro,
                        )
                    })
                    .collect(),
                None => rec
                    .mounts
                    .iter()
                    .filter(|m| matches!(m.kind.as_str(), "bind" | "volume"))
                    .map(|m| (m.destination.clone(), m.source.clone(), m.rw))
                    .collect(),
            };
        for (dest, source, rw) in mounts {
            if source.is_empty() || !dest.starts_with('/') {
                continue;
            }
            let src = Path::new(&source);
            let (fd, file) = match std::fs::metadata(src) {
                Ok(md) if md.is_dir() => (open_dir(src)?, None),
                Ok(md) if md.is_file() => match (src.parent(), src.file_name()) {
                    (Some(dir), Some(name)) => (open_dir(dir)?, Some(name.to_os_string())),
                    _ => continue,
                },
                _ => continue,
            };
            let dest: Vec<OsString> = components(dest.as_bytes()).into_iter().collect();
            if dest.is_empty() {
                continue;
            }
            // a later mount on the same destination hides an earlier one
            roots.retain(|r| r.dest != dest);
            roots.push(Root { dest, fd, rw, file });
        }
        Ok(View { roots })
    }

    /// The root holding `parts` (the deepest mount destination that is a prefix of it).
    fn locate(&self, parts: &[OsString]) -> (usize, PathBuf) {
        let (idx, root) = self
            .roots
            .iter()
            .enumerate()
            .filter(|(_, r)| parts.starts_with(&r.dest))
            .max_by_key(|(_, r)| r.dest.len())
            .expect("the root filesystem holds every path");
        let mut rel = PathBuf::new();
        if let Some(f) = &root.file {
            rel.push(f);
        }
        rel.extend(&parts[root.dest.len()..]);
        (
            idx,
            if rel.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                rel
            },
        )
    }

    fn open_at(&self, root: usize, rel: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
        berth_sys::mount::openat2(
            self.roots[root].fd.as_fd(),
            rel,
            flags,
            Mode::empty(),
            resolve_flags(),
        )
    }

    /// Resolve `path` like docker's `ResolvePath`: symlinks followed in every component but the
    /// last, and in the last when `follow_last`.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<Resolved, ArchiveError> {
        let mut todo = components(path.as_bytes());
        let mut cur: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(c);
            if todo.is_empty() && !follow_last {
                break;
            }
            let (root, rel) = self.locate(&cur);
            let fd = match self.open_at(root, &rel, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                Ok(fd) => fd,
                // a missing component: the final lookup reports it
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(source) => {
                    return Err(ArchiveError::Fs {
                        op: "look up",
                        path: display(&cur),
                        source,
                    })
                }
            };
            let st = fstat(&fd).map_err(|source| ArchiveError::Fs {
                op: "stat",
                path: display(&cur),
                source,
            })?;
            if kind_of(&st) != SFlag::S_IFLNK {
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ArchiveError::SymlinkLoop(path.to_string()));
            }
            let target = readlinkat(fd.as_fd(), "").map_err(|source| ArchiveError::Fs {
                op: "read link",
                path: display(&cur),
                source,
            })?;
            let tb = target.as_bytes();
            if tb.starts_with(b"/") {
                cur.clear();
            } else {
                cur.pop();
            }
            for p in components(tb).into_iter().rev() {
                todo.push_front(p);
            }
        }
        let (root, rel) = self.locate(&cur);
        Ok(Resolved {
            parts: cur,
            root,
            rel,
        })
    }

    /// The root whose destination is exactly `parts` (a mount point met while walking a tree).
    fn mount_at(&self, parts: &[OsString]) -> Option<usize> {
        self.roots
            .iter()
            .position(|r| !r.dest.is_empty() && r.dest.as_slice() == parts)
    }
}

/// What docker names the copied resource: the last component of the path as asked (`.` for a
/// path ending in `/.`, `/` for the root).
fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    match path.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/".into(),
        Some(b) => b.to_string(),
    }
}

fn wants_follow(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.")
}

fn stat_of(st: &FileStat, name: String, link_target: String) -> PathStat {
    let nanos = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec;
    PathStat {
        name,
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: berth_api::time::Timestamp::from_unix_nanos(nanos).rfc3339_nano(),
        link_target,
    }
}

/// A resolved source of `GET .../archive`: its stat, ready to be written as a tar.
pub struct Source {
    pub stat: PathStat,
    view: View,
    resolved: Resolved,
    fd: OwnedFd,
    st: FileStat,
    name: String,
}

impl Containers {
    fn archive_view(&self, key: &str) -> Result<(Record, View), ArchiveError> {
        let rec = self.get(key)?.record();
        self.ensure_rootfs(&rec)?;
        let spec: Option<serde_json::Value> =
            std::fs::read(self.bundle_dir(&rec.id).join("config.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
        let view = View::open(&rec, spec.as_ref())?;
        Ok((rec, view))
    }

    fn lookup(
        &self,
        rec: &Record,
        view: &View,
        path: &str,
    ) -> Result<(Resolved, OwnedFd, FileStat), ArchiveError> {
        let resolved = view.resolve(path, wants_follow(path))?;
        let not_found = || ArchiveError::NotFound {
            path: path.to_string(),
            container: rec.id.clone(),
        };
        let fd = match view.open_at(
            resolved.root,
            &resolved.rel,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(not_found()),
            Err(source) => {
                return Err(ArchiveError::Fs {
                    op: "open",
                    path: path.to_string(),
                    source,
                })
            }
        };
        let st = fstat(&fd).map_err(|source| ArchiveError::Fs {
            op: "stat",
            path: path.to_string(),
            source,
        })?;
        Ok((resolved, fd, st))
    }

    /// `HEAD .../archive`: docker's stat of `path` in the container.
    pub fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat, ArchiveError> {
        let (rec, view) = self.archive_view(key)?;
        let path = absolute(path);
        let (_, _, st) = self.lookup(&rec, &view, &path)?;
        let link = if kind_of(&st) == SFlag::S_IFLNK {
            display(&view.resolve(&path, true)?.parts)
        } else {
            String::new()
        };
        Ok(stat_of(&st, base_name(&path), link))
    }

    /// `GET .../archive`: resolve `path` and stat it; [`Source::write_tar`] writes it.
    pub fn archive_get(&self, key: &str, path: &str) -> Result<Source, ArchiveError> {
        let (rec, view) = self.archive_view(key)?;
        let path = absolute(path);
        let (resolved, fd, st) = self.lookup(&rec, &view, &path)?;
        let link = if kind_of(&st) == SFlag::S_IFLNK {
            display(&view.resolve(&path, true)?.parts)
        } else {
            String::new()
        };
        let name = base_name(&path);
        self.publish("archive-path", &rec, &[]);
        Ok(Source {
            stat: stat_of(&st, name.clone(), link),
            view,
            resolved,
            fd,
            st,
            name,
        })
    }

    /// `PUT .../archive`: extract the tar in `body` into the existing directory `path`.
    pub fn archive_put<R: Read>(
        &self,
        key: &str,
        path: &str,
        body: R,
        opts: PutOptions,
    ) -> Result<(), ArchiveError> {
        let (rec, view) = self.archive_view(key)?;
        let path = absolute(path);
        let (resolved, fd, st) = self.lookup(&rec, &view, &path)?;
        if kind_of(&st) != SFlag::S_IFDIR {
            return Err(ArchiveError::NotDirectory(path));
        }
        let root = &view.roots[resolved.root];
        if !root.rw {
            return Err(if resolved.root == 0 {
                ArchiveError::ReadOnlyRootfs
            } else {
                ArchiveError::ReadOnlyVolume(display(&root.dest))
            });
        }
        // Spool the upload: the overwrite check needs the entry list before anything is written.
        let mut spool = spool_file(&rec.rootfs)?;
        let mut body = body;
        std::io::copy(&mut body, &mut spool).map_err(|source| ArchiveError::Io {
            op: "receive the archive",
            source,
        })?;
        spool.rewind().map_err(|source| ArchiveError::Io {
            op: "rewind the spooled archive",
            source,
        })?;
        if opts.no_overwrite_dir_non_dir {
            check_overwrites(&spool, fd.as_fd())?;
            spool.rewind().map_err(|source| ArchiveError::Io {
                op: "rewind the spooled archive",
                source,
            })?;
        }
        let unpack_opts = UnpackOptions {
            whiteouts: WhiteoutMode::Delete,
            preserve_owner: opts.copy_uid_gid,
            ..UnpackOptions::default()
        };
        // the directory exactly as resolved, reopened through its fd
        let dest = berth_sys::mount::fd_path(fd.as_fd());
        layer::unpack(spool, Compression::Detect, &dest, &unpack_opts)
            .map_err(ArchiveError::Unpack)?;
        self.publish("extract-to-dir", &rec, &[]);
        Ok(())
    }
}

/// `path` made absolute (docker clients may send relative paths, meaning from `/`).
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// An anonymous temporary file next to the container's directory (same disk as its data).
pub(crate) fn spool_file(rootfs: &Path) -> Result<File, ArchiveError> {
    let dir = rootfs.parent().unwrap_or(Path::new("/tmp"));
    nix::fcntl::open(
        dir,
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .or_else(|_| {
        nix::fcntl::open(
            "/tmp",
            OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
    })
    .map(File::from)
    .map_err(|source| ArchiveError::Fs {
        op: "create a spool file in",
        path: dir.display().to_string(),
        source,
    })
}

/// docker's `noOverwriteDirNonDir`: no entry may turn an existing directory into a
/// non-directory or the other way round. Compressed uploads are left to the unpacker.
fn check_overwrites(spool: &File, dest: BorrowedFd<'_>) -> Result<(), ArchiveError> {
    let mut head = [0u8; 6];
    let n = (&*spool)
        .read(&mut head)
        .map_err(|source| ArchiveError::Io {
            op: "read the spooled archive",
            source,
        })?;
    if !matches!(Compression::sniff(&head[..n]), Compression::None) {
        return Ok(());
    }
    (&*spool).rewind().map_err(|source| ArchiveError::Io {
        op: "rewind the spooled archive",
        source,
    })?;
    let mut tar = layer::tar::TarReader::new(std::io::BufReader::new(spool), 1 << 20);
    while let Some(e) = tar.next_entry()? {
        let rel: PathBuf = e
            .path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(OsStr::from_bytes)
            .collect();
        if rel.as_os_str().is_empty() || rel.components().any(|c| c.as_os_str() == "..") {
            continue; // the root itself, or refused by the unpacker
        }
        let Ok(fd) = berth_sys::mount::openat2(
            dest,
            &rel,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Mode::empty(),
            resolve_flags(),
        ) else {
            continue;
        };
        let Ok(st) = fstat(&fd) else {
            continue;
        };
        let existing_dir = kind_of(&st) == SFlag::S_IFDIR;
        let incoming_dir = e.kind == layer::tar::Kind::Dir;
        if existing_dir != incoming_dir {
            let what = |dir: bool| if dir { "directory" } else { "non-directory" };
            return Err(ArchiveError::Overwrite {
                path: format!("/{}", rel.display()),
                existing: what(existing_dir),
                incoming: what(incoming_dir),
            });
        }
    }
    Ok(())
}

impl Source {
    /// Write the resource as a tar whose top entry is named like the path asked for.
    pub fn write_tar<W: Write>(self, out: W) -> Result<W, ArchiveError> {
        let mut b = tar::Builder::new(out);
        let top = if self.name == "/" {
            ".".to_string()
        } else {
            self.name.clone()
        };
        let mut w = Walker {
            view: &self.view,
            b: &mut b,
            overlay_whiteouts: false,
        };
        w.entry(
            self.fd,
            None,
            &self.st,
            &top,
            self.resolved.parts.clone(),
            self.resolved.root,
        )?;
        b.into_inner().map_err(|source| ArchiveError::Io {
            op: "finish the archive",
            source,
        })
    }
}

struct Walker<'a, W: Write> {
    view: &'a View,
    b: &'a mut tar::Builder<W>,
    /// Writing an overlay upper directory as a layer: 0/0 character devices become `.wh.`
    /// files and opaque directories get a `.wh..wh..opq` entry (OCI whiteouts).
    overlay_whiteouts: bool,
}

/// The OCI layer tar of an overlay upper directory (a container's changes, `docker commit`):
/// entries relative to `upper`, whiteouts in OCI form, walked through directory fds without
/// following any symlink, so a running container can't make it read files outside `upper`.
pub(crate) fn layer_of_upper<W: Write>(upper: &Path, out: W) -> Result<W, ArchiveError> {
    let root = nix::fcntl::open(
        upper,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| ArchiveError::Fs {
        op: "open",
        path: upper.display().to_string(),
        source,
    })?;
    let view = View {
        roots: vec![Root {
            dest: Vec::new(),
            fd: root
                .try_clone()
                .map_err(io_err("duplicate a directory fd"))?,
            rw: false,
            file: None,
        }],
    };
    let mut b = tar::Builder::new(out);
    let mut w = Walker {
        view: &view,
        b: &mut b,
        overlay_whiteouts: true,
    };
    w.children(root.as_fd(), "", &[], 0)?;
    b.into_inner().map_err(|source| ArchiveError::Io {
        op: "finish the layer",
        source,
    })
}

fn io_err(op: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Io { op, source }
}

impl<W: Write> Walker<'_, W> {
    fn header(st: &FileStat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        h.set_size(0);
        h
    }

    /// Add every entry of the directory `dir` (container path `parts`, tar prefix `dname`).
    fn children(
        &mut self,
        dir: BorrowedFd<'_>,
        dname: &str,
        parts: &[OsString],
        root: usize,
    ) -> Result<(), ArchiveError> {
        let mut names: Vec<OsString> = Vec::new();
        let dup = dir
            .try_clone_to_owned()
            .map_err(io_err("duplicate a directory fd"))?;
        let mut d = nix::dir::Dir::from_fd(dup).map_err(|source| ArchiveError::Fs {
            op: "read directory",
            path: display(parts),
            source,
        })?;
        for e in d.iter() {
            let e = e.map_err(|source| ArchiveError::Fs {
                op: "read directory",
                path: display(parts),
                source,
            })?;
            let n = OsStr::from_bytes(e.file_name().to_bytes());
            if n != "." && n != ".." {
                names.push(n.to_os_string());
            }
        }
        names.sort();
        for n in names {
            let mut child_parts = parts.to_vec();
            child_parts.push(n.clone());
            let child_name = format!("{}{}", dname, n.to_string_lossy());
            // a mount point: continue in the mount's source, like the container sees it
            let (cfd, croot, via_parent) = match self.view.mount_at(&child_parts) {
                Some(m) => (
                    self.view
                        .open_at(
                            m,
                            self.view.roots[m]
                                .file
                                .as_deref()
                                .map_or(Path::new("."), Path::new),
                            OFlag::O_PATH | OFlag::O_NOFOLLOW,
                        )
                        .map_err(|source| ArchiveError::Fs {
                            op: "open",
                            path: display(&child_parts),
                            source,
                        })?,
                    m,
                    false,
                ),
                None => match openat(
                    dir,
                    n.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => (fd, root, true),
                    Err(Errno::ENOENT) => continue, // gone meanwhile
                    Err(source) => {
                        return Err(ArchiveError::Fs {
                            op: "open",
                            path: display(&child_parts),
                            source,
                        })
                    }
                },
            };
            let cst = fstat(&cfd).map_err(|source| ArchiveError::Fs {
                op: "stat",
                path: display(&child_parts),
                source,
            })?;
            let parent = via_parent.then_some((dir, n.as_os_str()));
            self.entry(cfd, parent, &cst, &child_name, child_parts, croot)?;
        }
        Ok(())
    }

    /// Add one entry. `fd` is an `O_PATH|O_NOFOLLOW` fd of it; `parent` with its name the
    /// directory fd it was found in (None for the top entry, reopened through `fd` instead).
    fn entry(
        &mut self,
        fd: OwnedFd,
        parent: Option<(BorrowedFd<'_>, &OsStr)>,
        st: &FileStat,
        name: &str,
        parts: Vec<OsString>,
        root: usize,
    ) -> Result<(), ArchiveError> {
        let reopen = |flags: OFlag| -> Result<OwnedFd, ArchiveError> {
            let r = match parent {
                Some((dir, n)) => openat(
                    dir,
                    n,
                    flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ),
                None => nix::fcntl::open(
                    &berth_sys::mount::fd_path(fd.as_fd()),
                    flags | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ),
            };
            r.map_err(|source| ArchiveError::Fs {
                op: "open",
                path: display(&parts),
                source,
            })
        };
        match kind_of(st) {
            SFlag::S_IFDIR => {
                let mut h = Self::header(st, tar::EntryType::Directory);
                let dname = if name.ends_with('/') {
                    name.to_string()
                } else {
                    format!("{name}/")
                };
                self.b
                    .append_data(&mut h, &dname, std::io::empty())
                    .map_err(io_err("write a directory entry"))?;
                let dir = reopen(OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                if self.overlay_whiteouts && is_opaque(dir.as_fd()) {
                    let mut h = Self::header(st, tar::EntryType::Regular);
                    h.set_mode(0o644);
                    self.b
                        .append_data(&mut h, format!("{dname}.wh..wh..opq"), std::io::empty())
                        .map_err(io_err("write an opaque whiteout"))?;
                }
                self.children(dir.as_fd(), &dname, &parts, root)?;
            }
            SFlag::S_IFREG => {
                let f = File::from(reopen(OFlag::O_RDONLY | OFlag::O_NONBLOCK)?);
                let fst = fstat(&f).map_err(|source| ArchiveError::Fs {
                    op: "stat",
                    path: display(&parts),
                    source,
                })?;
                if kind_of(&fst) != SFlag::S_IFREG {
                    return Ok(()); // swapped for something else meanwhile
                }
                let mut h = Self::header(&fst, tar::EntryType::Regular);
                let size = u64::try_from(fst.st_size).unwrap_or(0);
                h.set_size(size);
                // exactly `size` bytes, even if the file grows or shrinks while it is read
                let body = f.take(size).chain(std::io::repeat(0)).take(size);
                self.b
                    .append_data(&mut h, name, body)
                    .map_err(io_err("write a file entry"))?;
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(fd.as_fd(), "").map_err(|source| ArchiveError::Fs {
                    op: "read link",
                    path: display(&parts),
                    source,
                })?;
                let mut h = Self::header(st, tar::EntryType::Symlink);
                self.b
                    .append_link(&mut h, name, Path::new(&target))
                    .map_err(io_err("write a symlink entry"))?;
            }
            SFlag::S_IFCHR if self.overlay_whiteouts && st.st_rdev == 0 => {
                let (dir, base) = match name.rsplit_once('/') {
                    Some((d, b)) => (format!("{d}/"), b),
                    None => (String::new(), name),
                };
                let mut h = Self::header(st, tar::EntryType::Regular);
                h.set_mode(0o644);
                self.b
                    .append_data(&mut h, format!("{dir}.wh.{base}"), std::io::empty())
                    .map_err(io_err("write a whiteout"))?;
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                let kind = match kind_of(st) {
                    SFlag::S_IFCHR => tar::EntryType::Char,
                    SFlag::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = Self::header(st, kind);
                if kind != tar::EntryType::Fifo {
                    let num = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
                    h.set_device_major(num(nix::sys::stat::major(st.st_rdev)))
                        .map_err(io_err("write a device number"))?;
                    h.set_device_minor(num(nix::sys::stat::minor(st.st_rdev)))
                        .map_err(io_err("write a device number"))?;
                }
                self.b
                    .append_data(&mut h, name, std::io::empty())
                    .map_err(io_err("write a device entry"))?;
            }
            _ => {} // sockets are not archived (docker skips them too)
        }
        Ok(())
    }
}

/// Whether an overlay directory is opaque (`trusted.overlay.opaque=y`).
fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    use xattr::FileExt;
    // fgetxattr on the directory itself (a path through /proc/self/fd would be a symlink)
    dir.try_clone_to_owned()
        .map(File::from)
        .ok()
        .and_then(|f| f.get_xattr("trusted.overlay.opaque").ok().flatten())
        .is_some_and(|v| v == b"y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o100644), 0o644);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o104755), (1 << 23) | 0o755);
    }

    #[test]
    fn upper_dirs_become_oci_layers() {
        let t = tempfile::tempdir().expect("tempdir");
        let up = t.path();
        std::fs::create_dir(up.join("d")).expect("mkdir");
        std::fs::write(up.join("d/c"), "c").expect("write");
        xattr::set(up.join("d"), "trusted.overlay.opaque", b"y").expect("opaque xattr");
        nix::sys::stat::mknod(
            &up.join("gone"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .expect("whiteout");
        std::os::unix::fs::symlink("/etc/shadow", up.join("link")).expect("symlink");
        let tar = layer_of_upper(up, Vec::new()).expect("layer");
        let mut names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(names, [".wh.gone", "d/", "d/.wh..wh..opq", "d/c", "link"]);
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("/etc/passwd"), "passwd");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/etc/."), ".");
        assert_eq!(base_name("/"), "/");
    }

    /// A fake container root with hostile symlinks, next to a host "secret" outside it.
    fn hostile() -> (tempfile::TempDir, View) {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("rootfs");
        let vol = t.path().join("vol");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::create_dir_all(&vol).expect("mkdir");
        std::fs::write(t.path().join("secret"), "host").expect("write");
        std::fs::write(root.join("etc/secret"), "container").expect("write");
        std::fs::write(vol.join("v"), "volume").expect("write");
        std::os::unix::fs::symlink("../../../../secret", root.join("up")).expect("symlink");
        std::os::unix::fs::symlink("/etc", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("/data/../../..", root.join("esc")).expect("symlink");
        std::os::unix::fs::symlink("loop", root.join("loop")).expect("symlink");
        let open = |p: &Path| {
            nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).expect("open")
        };
        let view = View {
            roots: vec![
                Root {
                    dest: vec![],
                    fd: open(&root),
                    rw: true,
                    file: None,
                },
                Root {
                    dest: vec!["data".into()],
                    fd: open(&vol),
                    rw: true,
                    file: None,
                },
            ],
        };
        (t, view)
    }

    fn read(view: &View, path: &str) -> Option<String> {
        let r = view.resolve(path, true).ok()?;
        let fd = view.open_at(r.root, &r.rel, OFlag::O_RDONLY).ok()?;
        std::fs::read_to_string(berth_sys::mount::fd_path(fd.as_fd())).ok()
    }

    #[test]
    fn symlinks_resolve_inside_the_container() {
        let (_t, view) = hostile();
        assert_eq!(read(&view, "/abs/secret").as_deref(), Some("container"));
        assert_eq!(read(&view, "/up").as_deref(), None);
        assert_eq!(read(&view, "/esc/etc/secret").as_deref(), Some("container"));
        assert_eq!(
            read(&view, "/../../etc/secret").as_deref(),
            Some("container")
        );
        assert_eq!(read(&view, "/data/v").as_deref(), Some("volume"));
        assert_eq!(
            read(&view, "/data/../etc/secret").as_deref(),
            Some("container")
        );
        assert!(matches!(
            view.resolve("/loop/x", true),
            Err(ArchiveError::SymlinkLoop(_))
        ));
        let r = view.resolve("/abs", false).expect("resolve");
        assert_eq!(display(&r.parts), "/abs");
    }
}
