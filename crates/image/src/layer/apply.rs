//! Applying tar entries to a directory without ever writing outside it.
//!
//! Every path is cleaned lexically (`..` that would climb above the root is refused) and its parent
//! is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the destination
//! directory fd, so symlinks planted by earlier entries resolve *inside* the destination. The
//! final component is always created with `O_EXCL`/`O_NOFOLLOW`-style calls on the parent fd, and
//! metadata is set on the open fd (fchown, fchmod, futimens): one path walk per entry, no umask
//! loss, and never through a symlink.
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::tar::{Entry, Kind};
use super::{LayerError, UnpackOptions, WhiteoutMode};

/// Longest path accepted (Linux PATH_MAX).
const MAX_PATH: usize = 4096;
/// Longest path component (NAME_MAX).
const MAX_NAME: usize = 255;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr marking a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Counters of what was applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyCounts {
    /// Entries applied (files, dirs, links, nodes, whiteouts).
    pub entries: u64,
    /// Device nodes skipped because the options do not allow them.
    pub skipped_devices: u64,
    /// Whiteouts applied.
    pub whiteouts: u64,
}

/// A cleaned relative path: components without `.`, `..` or empty parts.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Vec<&[u8]>, LayerError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.len() > MAX_PATH {
        return Err(LayerError::NameTooLong {
            path: shown(),
            limit: MAX_PATH,
        });
    }
    if raw.contains(&0) {
        return Err(LayerError::BadPath {
            path: shown(),
            reason: "contains a NUL byte",
        });
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(LayerError::BadPath {
                        path: shown(),
                        reason: "climbs above the layer root",
                    });
                }
            }
            c if c.len() > MAX_NAME => {
                return Err(LayerError::NameTooLong {
                    path: shown(),
                    limit: MAX_NAME,
                });
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// Applies entries under one destination directory.
pub(crate) struct Applier<'o> {
    root: OwnedFd,
    dest: PathBuf,
    opts: &'o UnpackOptions,
    cache: Option<(Vec<u8>, OwnedFd)>,
    dir_times: Vec<(Vec<u8>, i64, u32)>,
    /// Paths written by this layer (delete mode: opaque dirs keep them).
    written: HashSet<Vec<u8>>,
    pub(crate) counts: ApplyCounts,
    /// The process umask, euid and egid: a fresh object already has the right mode and owner
    /// when they match, which saves a chmod and a chown (and their journal updates) per file.
    umask: u32,
    euid: u32,
    egid: u32,
    /// Whether the directory with this key is setgid (new children then take its group).
    sgid_cache: Option<(Vec<u8>, bool)>,
}

/// The process umask from /proc (reading it with umask(2) would change it for every thread).
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        // Unknown: assume the strictest, so modes are always set explicitly.
        .unwrap_or(0o777)
}

impl<'o> Applier<'o> {
    pub(crate) fn new(dest: &Path, opts: &'o UnpackOptions) -> Result<Self, LayerError> {
        let root = nix::fcntl::open(
            dest,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| LayerError::fs("open destination", dest, e))?;
        Ok(Self {
            root,
            dest: dest.to_owned(),
            opts,
            cache: None,
            dir_times: Vec::new(),
            written: HashSet::new(),
            counts: ApplyCounts::default(),
            umask: current_umask(),
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            sgid_cache: None,
        })
    }

    fn parent_is_setgid(&mut self, key: &[u8], pfd: BorrowedFd<'_>) -> bool {
        if let Some((k, v)) = &self.sgid_cache {
            if k == key {
                return *v;
            }
        }
        // Unknown counts as setgid: everything is then set explicitly.
        let v = nix::sys::stat::fstat(pfd).map_or(true, |st| st.st_mode & libc::S_ISGID != 0);
        self.sgid_cache = Some((key.to_vec(), v));
        v
    }

    /// For an object just created in `pfd` with permission bits `created`: whether chown and
    /// chmod are still needed to reach `owner` and `mode`.
    fn fixups(
        &mut self,
        key: &[u8],
        pfd: BorrowedFd<'_>,
        owner: Option<(Uid, Gid)>,
        mode: Mode,
        created: u32,
    ) -> (bool, bool) {
        if self.parent_is_setgid(key, pfd) {
            return (owner.is_some(), true);
        }
        let chown = owner.is_some_and(|(u, g)| u.as_raw() != self.euid || g.as_raw() != self.egid);
        let chmod = mode.bits() != created & !self.umask;
        (chown, chmod)
    }

    fn err(&self, op: &'static str, rel: &[u8], e: Errno) -> LayerError {
        LayerError::fs(
            op,
            &self.dest.join(String::from_utf8_lossy(rel).as_ref()),
            e,
        )
    }

    fn open_in_root(&self, rel: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
        let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        openat2(
            self.root.as_fd(),
            rel,
            OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .resolve(resolve_flags()),
        )
    }

    /// The parent directory of `parts`, created (0755) where missing. Taken out of the one-entry
    /// cache; give it back with [`Applier::keep_parent`].
    fn parent(&mut self, parts: &[&[u8]]) -> Result<(Vec<u8>, OwnedFd), LayerError> {
        let key = join(&parts[..parts.len() - 1]);
        if self.cache.as_ref().is_some_and(|(k, _)| *k == key) {
            return Ok(self.cache.take().expect("checked"));
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let fd = match self.open_in_root(&key, flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                // Create missing ancestors one by one, each resolved inside the root.
                let mut cur = self
                    .open_in_root(b"", flags)
                    .map_err(|e| self.err("open", b".", e))?;
                for i in 0..parts.len() - 1 {
                    let prefix = join(&parts[..=i]);
                    cur = match self.open_in_root(&prefix, flags) {
                        Ok(fd) => fd,
                        Err(Errno::ENOENT) => {
                            match mkdirat(cur.as_fd(), parts[i], Mode::from_bits_truncate(0o755)) {
                                Ok(()) | Err(Errno::EEXIST) => {}
                                Err(e) => {
                                    return Err(self.err("create parent directory", &prefix, e))
                                }
                            }
                            if self.opts.whiteouts == WhiteoutMode::Delete {
                                self.written.insert(prefix.clone());
                            }
                            self.open_in_root(&prefix, flags)
                                .map_err(|e| self.err("open parent directory", &prefix, e))?
                        }
                        Err(e) => return Err(self.err("open parent directory", &prefix, e)),
                    };
                }
                cur
            }
            Err(e) => return Err(self.err("open parent directory", &key, e)),
        };
        Ok((key, fd))
    }

    fn keep_parent(&mut self, key: Vec<u8>, fd: OwnedFd) {
        self.cache = Some((key, fd));
    }

    /// Remove whatever is at `name` in `pfd` (recursively for directories). Absent is fine.
    fn remove_all(pfd: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
        match unlinkat(pfd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EISDIR) => {}
            Err(e) => return Err(e),
        }
        Self::clear_dir(pfd, name, &|_| false)?;
        match unlinkat(pfd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Remove every child of directory `name` in `pfd` for which `keep` is false.
    fn clear_dir(
        pfd: BorrowedFd<'_>,
        name: &[u8],
        keep: &dyn Fn(&[u8]) -> bool,
    ) -> nix::Result<()> {
        let dfd = openat(
            pfd,
            name,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let dup = dfd
            .try_clone()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let mut dir = nix::dir::Dir::from_fd(dup)?;
        let mut names = Vec::new();
        for ent in dir.iter() {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." && !keep(n) {
                names.push(n.to_vec());
            }
        }
        for n in names {
            Self::remove_all(dfd.as_fd(), &n)?;
        }
        Ok(())
    }

    fn times(e: &Entry) -> TimeSpec {
        TimeSpec::new(e.mtime, i64::from(e.mtime_nsec))
    }

    fn mode_of(&self, e: &Entry) -> Mode {
        let mut m = e.mode & 0o7777;
        if !self.opts.preserve_owner {
            // Files end up owned by the unpacking user: never hand its identity to setuid bits.
            m &= !0o6000;
        }
        Mode::from_bits_truncate(m as libc::mode_t)
    }

    fn owner(&self, e: &Entry) -> Option<(Uid, Gid)> {
        self.opts
            .preserve_owner
            .then(|| (Uid::from_raw(e.uid), Gid::from_raw(e.gid)))
    }

    fn set_xattrs(&self, file: &File, e: &Entry, rel: &[u8]) -> Result<(), LayerError> {
        use xattr::FileExt;
        for (k, v) in &e.xattrs {
            // Only what a layer may legitimately carry; never overlay's own trusted.* markers.
            if !(k == "security.capability" || k.starts_with("user.")) {
                continue;
            }
            match file.set_xattr(k, v) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::ENOTSUP) => {}
                Err(err) => {
                    return Err(LayerError::Xattr {
                        name: k.clone(),
                        path: self.dest.join(String::from_utf8_lossy(rel).as_ref()),
                        source: err,
                    })
                }
            }
        }
        Ok(())
    }

    fn note_written(&mut self, rel: &[u8]) {
        if self.opts.whiteouts == WhiteoutMode::Delete {
            self.written.insert(rel.to_vec());
        }
    }

    /// Apply one entry; `body` copies the file body into the created file.
    pub(crate) fn apply(
        &mut self,
        e: &Entry,
        body: &mut dyn FnMut(&mut File) -> Result<(), LayerError>,
    ) -> Result<(), LayerError> {
        let parts = clean_path(&e.path)?;
        let Some(&name) = parts.last() else {
            // The root itself ("./"): its metadata belongs to the snapshot, not the layer.
            return Ok(());
        };
        let rel = join(&parts);
        self.counts.entries += 1;

        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&parts, name, target);
        }
        if e.kind == Kind::Hardlink {
            return self.hardlink(e, &parts, &rel);
        }
        if matches!(e.kind, Kind::Char | Kind::Block) && !self.opts.allow_devices {
            self.counts.skipped_devices += 1;
            return Ok(());
        }
        self.note_written(&rel);
        let mode = self.mode_of(e);
        let owner = self.owner(e);
        let (pkey, pfd_owned) = self.parent(&parts)?;
        let pfd = pfd_owned.as_fd();
        let mut replaced = false;
        match e.kind {
            Kind::File => {
                let flags = OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let created = mode.bits() & 0o777;
                let cmode = Mode::from_bits_truncate(created as libc::mode_t);
                let fd = match openat(pfd, name, flags, cmode) {
                    Ok(fd) => fd,
                    Err(Errno::EEXIST) => {
                        Self::remove_all(pfd, name)
                            .map_err(|err| self.err("replace", &rel, err))?;
                        replaced = true;
                        openat(pfd, name, flags, cmode)
                            .map_err(|err| self.err("create file", &rel, err))?
                    }
                    Err(err) => return Err(self.err("create file", &rel, err)),
                };
                let mut f = File::from(fd);
                body(&mut f)?;
                let (chown, chmod) = self.fixups(&pkey, pfd, owner, mode, created);
                if let (true, Some((u, g))) = (chown, owner) {
                    fchown(f.as_fd(), Some(u), Some(g))
                        .map_err(|err| self.err("chown", &rel, err))?;
                }
                // After chown, which clears setuid/setgid.
                if chmod || chown {
                    fchmod(f.as_fd(), mode).map_err(|err| self.err("chmod", &rel, err))?;
                }
                self.set_xattrs(&f, e, &rel)?;
                let t = Self::times(e);
                futimens(f.as_fd(), &t, &t).map_err(|err| self.err("set times", &rel, err))?;
            }
            Kind::Dir => {
                let created = mode.bits() & 0o777;
                let cmode = Mode::from_bits_truncate(created as libc::mode_t);
                let mut fresh = true;
                match mkdirat(pfd, name, cmode) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        let st = fstatat(pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                            .map_err(|err| self.err("stat", &rel, err))?;
                        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                            Self::remove_all(pfd, name)
                                .map_err(|err| self.err("replace", &rel, err))?;
                            replaced = true;
                            mkdirat(pfd, name, cmode)
                                .map_err(|err| self.err("create directory", &rel, err))?;
                        } else {
                            fresh = false;
                        }
                    }
                    Err(err) => return Err(self.err("create directory", &rel, err)),
                }
                let (chown, chmod) = if fresh {
                    self.fixups(&pkey, pfd, owner, mode, created)
                } else {
                    (owner.is_some(), true)
                };
                if chown || chmod || !e.xattrs.is_empty() {
                    let fd = openat(
                        pfd,
                        name,
                        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|err| self.err("open directory", &rel, err))?;
                    if let (true, Some((u, g))) = (chown, owner) {
                        fchown(fd.as_fd(), Some(u), Some(g))
                            .map_err(|err| self.err("chown", &rel, err))?;
                    }
                    if chmod || chown {
                        fchmod(fd.as_fd(), mode).map_err(|err| self.err("chmod", &rel, err))?;
                    }
                    self.set_xattrs(&File::from(fd), e, &rel)?;
                }
                self.dir_times.push((rel.clone(), e.mtime, e.mtime_nsec));
            }
            Kind::Symlink => {
                if e.link.is_empty() || e.link.len() > MAX_PATH || e.link.contains(&0) {
                    return Err(LayerError::BadPath {
                        path: String::from_utf8_lossy(&e.path).into_owned(),
                        reason: "has an empty, NUL-containing or overlong symlink target",
                    });
                }
                match symlinkat(e.link.as_slice(), pfd, name) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        Self::remove_all(pfd, name)
                            .map_err(|err| self.err("replace", &rel, err))?;
                        replaced = true;
                        symlinkat(e.link.as_slice(), pfd, name)
                            .map_err(|err| self.err("create symlink", &rel, err))?;
                    }
                    Err(err) => return Err(self.err("create symlink", &rel, err)),
                }
                let (chown, _) = self.fixups(&pkey, pfd, owner, mode, mode.bits());
                if let (true, Some((u, g))) = (chown, owner) {
                    fchownat(pfd, name, Some(u), Some(g), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map_err(|err| self.err("chown", &rel, err))?;
                }
                let t = Self::times(e);
                utimensat(pfd, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(|err| self.err("set times", &rel, err))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (kind, dev) = match e.kind {
                    Kind::Char => (
                        SFlag::S_IFCHR,
                        makedev(e.devmajor.into(), e.devminor.into()),
                    ),
                    Kind::Block => (
                        SFlag::S_IFBLK,
                        makedev(e.devmajor.into(), e.devminor.into()),
                    ),
                    _ => (SFlag::S_IFIFO, 0),
                };
                let mk = || mknodat(pfd, name, kind, Mode::from_bits_truncate(0o600), dev);
                match mk() {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        Self::remove_all(pfd, name)
                            .map_err(|err| self.err("replace", &rel, err))?;
                        replaced = true;
                        mk().map_err(|err| self.err("create node", &rel, err))?;
                    }
                    Err(err) => return Err(self.err("create node", &rel, err)),
                }
                if let Some((u, g)) = owner {
                    fchownat(pfd, name, Some(u), Some(g), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map_err(|err| self.err("chown", &rel, err))?;
                }
                // The node was just created by us in a directory only we write: following is safe.
                fchmodat(pfd, name, mode, FchmodatFlags::FollowSymlink)
                    .map_err(|err| self.err("chmod", &rel, err))?;
                let t = Self::times(e);
                utimensat(pfd, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(|err| self.err("set times", &rel, err))?;
            }
            Kind::Hardlink => unreachable!("handled above"),
        }
        if !replaced {
            // When something was replaced, cached parents below it may be stale: drop the cache.
            self.keep_parent(pkey, pfd_owned);
        }
        Ok(())
    }

    fn hardlink(&mut self, e: &Entry, parts: &[&[u8]], rel: &[u8]) -> Result<(), LayerError> {
        let tparts = clean_path(&e.link).map_err(|_| LayerError::BadPath {
            path: format!(
                "{} -> {}",
                String::from_utf8_lossy(&e.path),
                String::from_utf8_lossy(&e.link)
            ),
            reason: "hardlink target is outside the layer",
        })?;
        let Some(&tname) = tparts.last() else {
            return Err(LayerError::BadPath {
                path: String::from_utf8_lossy(&e.path).into_owned(),
                reason: "hardlink to the layer root",
            });
        };
        let trel = join(&tparts[..tparts.len() - 1]);
        let tpfd = self
            .open_in_root(&trel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|err| self.err("open hardlink target directory", &trel, err))?;
        self.note_written(rel);
        let name = *parts.last().expect("caller checked non-empty");
        let (_, pfd) = self.parent(parts)?;
        // Flags 0: never follow a symlink target (a link to a symlink links the symlink itself).
        match linkat(tpfd.as_fd(), tname, pfd.as_fd(), name, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                Self::remove_all(pfd.as_fd(), name).map_err(|err| self.err("replace", rel, err))?;
                self.cache = None;
                linkat(tpfd.as_fd(), tname, pfd.as_fd(), name, AtFlags::empty())
                    .map_err(|err| self.err("create hardlink", rel, err))?;
            }
            Err(err) => return Err(self.err("create hardlink", rel, err)),
        }
        Ok(())
    }

    fn whiteout(&mut self, parts: &[&[u8]], name: &[u8], target: &[u8]) -> Result<(), LayerError> {
        let dir_rel = join(&parts[..parts.len() - 1]);
        self.counts.whiteouts += 1;
        if name == OPAQUE {
            match self.opts.whiteouts {
                WhiteoutMode::Overlay => {
                    // Creates the directory when the layer did not list it.
                    self.parent(parts)?;
                    let fd = self
                        .open_in_root(&dir_rel, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
                        .map_err(|err| self.err("open opaque directory", &dir_rel, err))?;
                    use xattr::FileExt;
                    File::from(fd)
                        .set_xattr(OVERLAY_OPAQUE_XATTR, b"y")
                        .map_err(|source| LayerError::Xattr {
                            name: OVERLAY_OPAQUE_XATTR.into(),
                            path: self.dest.join(String::from_utf8_lossy(&dir_rel).as_ref()),
                            source,
                        })?;
                }
                WhiteoutMode::Delete => {
                    let Ok(pfd) = self.open_in_root(&dir_rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    else {
                        return Ok(());
                    };
                    let prefix = if dir_rel.is_empty() {
                        Vec::new()
                    } else {
                        [&dir_rel[..], b"/"].concat()
                    };
                    let written = &self.written;
                    let keep = |child: &[u8]| written.contains(&[&prefix[..], child].concat());
                    Self::clear_dir(pfd.as_fd(), b".", &keep)
                        .map_err(|err| self.err("clear opaque directory", &dir_rel, err))?;
                    self.cache = None;
                }
            }
            return Ok(());
        }
        if target.starts_with(WHITEOUT_PREFIX) {
            // Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(LayerError::BadPath {
                path: String::from_utf8_lossy(&join(parts)).into_owned(),
                reason: "whiteout names no file",
            });
        }
        let trel = if dir_rel.is_empty() {
            target.to_vec()
        } else {
            [&dir_rel[..], b"/", target].concat()
        };
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let (_, pfd) = self.parent(parts)?;
                let mk = || {
                    mknodat(
                        pfd.as_fd(),
                        target,
                        SFlag::S_IFCHR,
                        Mode::empty(),
                        makedev(0, 0),
                    )
                };
                match mk() {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        Self::remove_all(pfd.as_fd(), target)
                            .map_err(|err| self.err("replace", &trel, err))?;
                        self.cache = None;
                        mk().map_err(|err| self.err("create whiteout", &trel, err))?;
                    }
                    Err(err) => return Err(self.err("create whiteout", &trel, err)),
                }
            }
            WhiteoutMode::Delete => {
                if let Ok(pfd) = self.open_in_root(&dir_rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                    Self::remove_all(pfd.as_fd(), target)
                        .map_err(|err| self.err("remove", &trel, err))?;
                    self.cache = None;
                }
            }
        }
        Ok(())
    }

    /// Set directory times last (creating children changed them).
    pub(crate) fn finish(&mut self) -> Result<(), LayerError> {
        self.cache = None;
        for (rel, s, ns) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let t = TimeSpec::new(s, i64::from(ns));
            match self.open_in_root(
                &rel,
                OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
            ) {
                Ok(fd) => {
                    futimens(fd.as_fd(), &t, &t).map_err(|err| self.err("set times", &rel, err))?
                }
                // Replaced or removed by a later entry.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                Err(err) => return Err(self.err("open directory", &rel, err)),
            }
        }
        Ok(())
    }
}
