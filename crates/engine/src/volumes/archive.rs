//! Volume backup and restore as tar streams.
//!
//! Export walks the volume with `openat`/`fstatat` relative to directory fds, never following a
//! symlink, so a link planted inside the volume can't make the daemon read host files. Import
//! treats the tar as hostile: absolute paths and `..` are refused, every parent directory is
//! resolved *inside* the destination (`openat2` with `RESOLVE_IN_ROOT`), and each entry is created
//! with `*at` calls relative to that parent fd with `O_NOFOLLOW`/`O_EXCL`, so no symlink (from the
//! tar or already on disk) can redirect a write outside the volume. Device nodes are refused.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use crate::ErrorKind;

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("tar entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: &'static str },
    #[error("tar entry {entry:?}: unsupported entry type {kind}")]
    Unsupported { entry: String, kind: String },
    #[error("read tar stream")]
    Corrupt(#[source] io::Error),
    #[error("{op} {path:?}")]
    Sys {
        op: &'static str,
        path: String,
        #[source]
        source: Errno,
    },
    #[error("{op} {path:?}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("not empty: import restores into a new or empty volume")]
    NotEmpty(String),
}

impl ArchiveError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Unsafe { .. }
            | ArchiveError::Unsupported { .. }
            | ArchiveError::Corrupt(_) => ErrorKind::InvalidArgument,
            ArchiveError::NotEmpty(_) => ErrorKind::Conflict,
            ArchiveError::Sys { .. } | ArchiveError::Io { .. } => ErrorKind::Internal,
        }
    }
}

fn sys(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> ArchiveError {
    let path = path.display().to_string();
    move |source| ArchiveError::Sys { op, path, source }
}

fn open_dir(dir: &Path) -> Result<OwnedFd, ArchiveError> {
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", dir))
}

// ---------------------------------------------------------------- export

/// Reads `inner` but always yields exactly `len` bytes: a file that shrank while being archived
/// is padded with zeros, one that grew is cut, so the tar stays well formed.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left.min(buf.len() as u64)).expect("bounded by buf.len()");
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn header_for(st: &stat::FileStat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// Write the tree under `dir` as a tar stream to `out` (paths relative, `./` first); returns
/// `out` after the end-of-archive blocks.
pub fn write_tar<W: Write>(dir: &Path, out: W) -> Result<W, ArchiveError> {
    let root = open_dir(dir)?;
    let mut b = tar::Builder::new(out);
    let wio = |path: &Path| {
        let path = path.display().to_string();
        move |source| ArchiveError::Io {
            op: "write tar entry",
            path,
            source,
        }
    };
    let st = stat::fstat(&root).map_err(sys("stat", dir))?;
    let mut h = header_for(&st);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, "./", io::empty()).map_err(wio(dir))?;
    let mut links = HashMap::new();
    walk(&mut b, &root, Path::new(""), &mut links)?;
    b.into_inner().map_err(wio(dir))
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dirfd: &OwnedFd,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ArchiveError> {
    let mut d = nix::dir::Dir::openat(
        dirfd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", rel))?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in d.iter() {
        let e = e.map_err(sys("read dir", rel))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    for name in names {
        let name = OsStr::from_bytes(&name);
        let path = rel.join(name);
        let wio = |source| ArchiveError::Io {
            op: "write tar entry",
            path: path.display().to_string(),
            source,
        };
        let st =
            stat::fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys("stat", &path))?;
        let mut h = header_for(&st);
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => {
                let sub = nix::fcntl::openat(
                    dirfd,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", &path))?;
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, &path, io::empty()).map_err(wio)?;
                walk(b, &sub, &path, links)?;
            }
            SFlag::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        h.set_entry_type(tar::EntryType::Link);
                        b.append_link(&mut h, &path, first).map_err(wio)?;
                        continue;
                    }
                    links.insert(key, path.clone());
                }
                let fd = nix::fcntl::openat(
                    dirfd,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", &path))?;
                let size = u64::try_from(stat::fstat(&fd).map_err(sys("stat", &path))?.st_size)
                    .unwrap_or(0);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                let data = Exact {
                    inner: File::from(fd),
                    left: size,
                };
                b.append_data(&mut h, &path, data).map_err(wio)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dirfd, name).map_err(sys("readlink", &path))?;
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, &path, Path::new(&target))
                    .map_err(wio)?;
            }
            SFlag::S_IFIFO => {
                h.set_entry_type(tar::EntryType::Fifo);
                b.append_data(&mut h, &path, io::empty()).map_err(wio)?;
            }
            _ => tracing::warn!(path = %path.display(), "export skips sockets and device nodes"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- import

/// `a/./b/` → `a/b`; `None` for the root itself; refuses absolute paths and `..`.
fn clean(raw: &Path) -> Result<Option<PathBuf>, ArchiveError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Unsafe {
                    entry: raw.display().to_string(),
                    reason: "absolute path",
                })
            }
            Component::ParentDir => {
                return Err(ArchiveError::Unsafe {
                    entry: raw.display().to_string(),
                    reason: "path contains ..",
                })
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// An fd (O_PATH) for directory `rel` inside `root`, creating missing directories; every lookup
/// is confined to `root` (symlinks resolve as if `root` were `/`).
fn ensure_dir(root: &OwnedFd, rel: &Path) -> Result<OwnedFd, ArchiveError> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_PATH;
    match berth_sys::mount::open_in_root(root.as_fd(), rel, flags) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                return Err(sys("open", rel)(Errno::ENOENT));
            };
            let pfd = ensure_dir(root, parent)?;
            match stat::mkdirat(&pfd, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) => {}
                // Something is there yet didn't resolve: a symlink to a missing place.
                Err(Errno::EEXIST) => {
                    return Err(ArchiveError::Unsafe {
                        entry: rel.display().to_string(),
                        reason: "parent is a symlink to a missing directory",
                    })
                }
                Err(e) => return Err(sys("mkdir", rel)(e)),
            }
            berth_sys::mount::open_in_root(root.as_fd(), rel, flags).map_err(sys("open", rel))
        }
        Err(e) => Err(sys("open", rel)(e)),
    }
}

/// Make room for a new non-directory entry `name` in `pfd`: unlink what's there (never a dir).
fn clear_slot(pfd: &OwnedFd, name: &OsStr, rel: &Path) -> Result<(), ArchiveError> {
    match stat::fstatat(pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(sys("stat", rel)(e)),
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() => {
            Err(ArchiveError::Unsafe {
                entry: rel.display().to_string(),
                reason: "would replace a directory",
            })
        }
        Ok(_) => {
            nix::unistd::unlinkat(pfd, name, UnlinkatFlags::NoRemoveDir).map_err(sys("unlink", rel))
        }
    }
}

fn owner(h: &tar::Header) -> (Option<Uid>, Option<Gid>) {
    let uid = h
        .uid()
        .ok()
        .and_then(|u| u32::try_from(u).ok())
        .map(Uid::from_raw);
    let gid = h
        .gid()
        .ok()
        .and_then(|g| u32::try_from(g).ok())
        .map(Gid::from_raw);
    (uid, gid)
}

fn mtime_spec(h: &tar::Header) -> TimeSpec {
    let secs = h
        .mtime()
        .ok()
        .and_then(|m| i64::try_from(m).ok())
        .unwrap_or(0);
    TimeSpec::new(secs, 0)
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Extract the tar stream `input` into directory `dir`, containing every write inside it.
pub fn extract_tar<R: Read>(input: R, dir: &Path) -> Result<ImportStats, ArchiveError> {
    let root = open_dir(dir)?;
    let mut stats = ImportStats::default();
    let mut ar = tar::Archive::new(input);
    let mut dir_times: Vec<(Option<PathBuf>, TimeSpec)> = Vec::new();
    for entry in ar.entries().map_err(ArchiveError::Corrupt)? {
        let mut entry = entry.map_err(ArchiveError::Corrupt)?;
        let raw = entry.path().map_err(ArchiveError::Corrupt)?.into_owned();
        let kind = entry.header().entry_type();
        let mode = Mode::from_bits_truncate(
            entry.header().mode().map_err(ArchiveError::Corrupt)? & 0o7777,
        );
        let (uid, gid) = owner(entry.header());
        let mtime = mtime_spec(entry.header());
        let rel = clean(&raw)?;
        stats.entries += 1;
        let Some(rel) = rel else {
            // The archive's root: restore its owner and mode onto `dir`.
            if kind == tar::EntryType::Directory {
                nix::unistd::fchown(&root, uid, gid).map_err(sys("chown", dir))?;
                stat::fchmod(&root, mode).map_err(sys("chmod", dir))?;
                dir_times.push((None, mtime));
            }
            continue;
        };
        let name = rel
            .file_name()
            .expect("a cleaned non-empty path ends in a name")
            .to_owned();
        let parent = rel.parent().unwrap_or(Path::new(""));
        let pfd = ensure_dir(&root, parent)?;
        match kind {
            tar::EntryType::Directory => {
                match stat::mkdirat(&pfd, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys("mkdir", &rel)(e)),
                }
                let fd = nix::fcntl::openat(
                    &pfd,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| match e {
                    Errno::ENOTDIR | Errno::ELOOP => ArchiveError::Unsafe {
                        entry: rel.display().to_string(),
                        reason: "directory entry over an existing non-directory",
                    },
                    e => sys("open", &rel)(e),
                })?;
                nix::unistd::fchown(&fd, uid, gid).map_err(sys("chown", &rel))?;
                stat::fchmod(&fd, mode).map_err(sys("chmod", &rel))?;
                dir_times.push((Some(rel), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear_slot(&pfd, &name, &rel)?;
                let fd = nix::fcntl::openat(
                    &pfd,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(sys("create", &rel))?;
                let mut f = File::from(fd);
                stats.bytes += io::copy(&mut entry, &mut f).map_err(|source| ArchiveError::Io {
                    op: "write",
                    path: rel.display().to_string(),
                    source,
                })?;
                nix::unistd::fchown(&f, uid, gid).map_err(sys("chown", &rel))?;
                stat::fchmod(&f, mode).map_err(sys("chmod", &rel))?;
                stat::futimens(&f, &mtime, &mtime).map_err(sys("set times", &rel))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(ArchiveError::Corrupt)?
                    .ok_or_else(|| ArchiveError::Unsafe {
                        entry: rel.display().to_string(),
                        reason: "symlink without a target",
                    })?
                    .into_owned();
                clear_slot(&pfd, &name, &rel)?;
                nix::unistd::symlinkat(target.as_path(), &pfd, name.as_os_str())
                    .map_err(sys("symlink", &rel))?;
                nix::unistd::fchownat(
                    &pfd,
                    name.as_os_str(),
                    uid,
                    gid,
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(sys("chown", &rel))?;
                stat::utimensat(
                    &pfd,
                    name.as_os_str(),
                    &mtime,
                    &mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(sys("set times", &rel))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(ArchiveError::Corrupt)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let Some(target) = clean(&target)? else {
                    return Err(ArchiveError::Unsafe {
                        entry: rel.display().to_string(),
                        reason: "hard link to the archive root",
                    });
                };
                let tname = target
                    .file_name()
                    .expect("cleaned non-empty path has a name");
                let tparent = berth_sys::mount::open_in_root(
                    root.as_fd(),
                    target.parent().unwrap_or(Path::new("")),
                    OFlag::O_DIRECTORY | OFlag::O_PATH,
                )
                .map_err(sys("open link target", &target))?;
                clear_slot(&pfd, &name, &rel)?;
                // No AT_SYMLINK_FOLLOW: a symlink target is linked as the link itself.
                nix::unistd::linkat(&tparent, tname, &pfd, name.as_os_str(), AtFlags::empty())
                    .map_err(sys("link", &rel))?;
            }
            tar::EntryType::Fifo => {
                clear_slot(&pfd, &name, &rel)?;
                nix::unistd::mkfifoat(&pfd, name.as_os_str(), mode).map_err(sys("mkfifo", &rel))?;
                nix::unistd::fchownat(
                    &pfd,
                    name.as_os_str(),
                    uid,
                    gid,
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(sys("chown", &rel))?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(ArchiveError::Unsupported {
                    entry: rel.display().to_string(),
                    kind: format!("{other:?}"),
                })
            }
        }
    }
    // Directory times last: creating entries inside them bumped their mtimes.
    for (rel, t) in dir_times.iter().rev() {
        let fd = match rel {
            None => root.try_clone().map_err(|source| ArchiveError::Io {
                op: "dup",
                path: dir.display().to_string(),
                source,
            })?,
            Some(rel) => berth_sys::mount::open_in_root(
                root.as_fd(),
                rel,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )
            .map_err(sys("open", rel))?,
        };
        stat::futimens(&fd, t, t).map_err(sys("set times", rel.as_deref().unwrap_or(dir)))?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;
