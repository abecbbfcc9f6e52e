//! Mount API (fsopen/fsconfig/fsmount/open_tree/move_mount/mount_setattr) and openat2 RESOLVE_IN_ROOT.
//!
//! These are the calls `nix` lacks (or that need a retry loop) for setting up a container's root
//! filesystem without ever following a path out of it:
//! - [`open_in_root`]: `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and absolute
//!   symlinks are clamped to the rootfs (the CVE-2021-30465 defence);
//! - the fd based mount API, so a mount can be attached onto an fd already resolved inside the
//!   rootfs, and attributes (read-only, idmap) can be applied to a whole tree before it is visible;
//! - [`new_userns_fd`]: a user namespace holding given id maps, for idmapped mounts.
//!
//! Every function returns the raw [`Errno`]: the caller knows which path or option it was working
//! on and names it in its own error.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow};
use nix::sys::stat::Mode;
use nix::NixPath;

pub use nix::fcntl::ResolveFlag;

/// `MOUNT_ATTR_*` bits for [`mount_setattr`] and [`fsmount`].
pub mod attr {
    /// Mount read-only.
    pub const RDONLY: u64 = 0x0000_0001;
    /// Ignore suid and sgid bits.
    pub const NOSUID: u64 = 0x0000_0002;
    /// Disallow access to device special files.
    pub const NODEV: u64 = 0x0000_0004;
    /// Disallow program execution.
    pub const NOEXEC: u64 = 0x0000_0008;
    /// Mask of the three-valued access time setting.
    pub const ATIME_MASK: u64 = 0x0000_0070;
    /// Update atime relative to mtime/ctime (the value 0 inside [`ATIME_MASK`]).
    pub const RELATIME: u64 = 0x0000_0000;
    /// Do not update access times.
    pub const NOATIME: u64 = 0x0000_0010;
    /// Always perform atime updates.
    pub const STRICTATIME: u64 = 0x0000_0020;
    /// Do not update directory access times.
    pub const NODIRATIME: u64 = 0x0000_0080;
    /// Idmap the mount with the user namespace in `userns_fd`.
    pub const IDMAP: u64 = 0x0010_0000;
    /// Do not follow symlinks.
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// `OPEN_TREE_CLONE`: [`open_tree`] returns a detached copy of the mount (a bind mount to be).
pub const OPEN_TREE_CLONE: u32 = 0x1;
/// `AT_RECURSIVE`: clone or change the whole subtree, not only the top mount.
pub const AT_RECURSIVE: u32 = 0x8000;
/// `AT_EMPTY_PATH`: operate on the fd itself.
pub const AT_EMPTY_PATH: u32 = 0x1000;
/// `AT_SYMLINK_NOFOLLOW` for [`open_tree`] and [`mount_setattr`].
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
/// `MOVE_MOUNT_F_EMPTY_PATH`: the source of [`move_mount`] is the fd itself.
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
/// `MOVE_MOUNT_T_EMPTY_PATH`: the target of [`move_mount`] is the fd itself.
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// `struct mount_attr` of `mount_setattr(2)`, with the user namespace borrowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct MountAttr<'a> {
    /// `MOUNT_ATTR_*` bits to set.
    pub set: u64,
    /// `MOUNT_ATTR_*` bits to clear (include [`attr::ATIME_MASK`] to change the atime mode).
    pub clear: u64,
    /// One of `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED`, `MS_UNBINDABLE`, or 0 to leave it.
    pub propagation: u64,
    /// User namespace for [`attr::IDMAP`].
    pub userns: Option<BorrowedFd<'a>>,
}

#[repr(C)]
struct RawMountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `/proc/self/fd/<fd>`: the magic link through which a mount can target exactly the object an
/// fd was resolved to.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `openat2(2)` with `O_CLOEXEC` added, retried while the kernel answers `EAGAIN` (which it does
/// for RESOLVE_IN_ROOT lookups racing with a rename anywhere on the system).
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    resolve: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(resolve);
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dirfd, path, how) {
            Err(Errno::EAGAIN) if tries < 128 => tries += 1,
            other => return other,
        }
    }
}

/// Open `path` as if `root` were `/`: `..` stops at `root` and absolute symlinks restart from it;
/// magic links (`/proc/*/fd/*`, `/proc/*/root`) are refused.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
}

fn raw_fd_result(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = Errno::result(ret)?;
    let fd = RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the syscall succeeded and returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open_tree(2)`: an fd for the mount at `path` (with [`OPEN_TREE_CLONE`]: a detached copy of it,
/// the whole subtree with [`AT_RECURSIVE`]). `O_CLOEXEC` is always added.
pub fn open_tree(dirfd: BorrowedFd<'_>, path: &Path, flags: u32) -> Result<OwnedFd, Errno> {
    let flags = flags | libc::O_CLOEXEC as u32;
    let ret = path.with_nix_path(|p| {
        // SAFETY: `p` is a NUL-terminated string valid for the call, `dirfd` is a live fd, and
        // open_tree only reads its arguments.
        unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                dirfd.as_raw_fd(),
                p.as_ptr(),
                libc::c_uint::from(flags),
            )
        }
    })?;
    raw_fd_result(ret)
}

/// `move_mount(2)`: attach (or move) the mount `from` onto `to`. Use [`MOVE_MOUNT_F_EMPTY_PATH`]
/// / [`MOVE_MOUNT_T_EMPTY_PATH`] with an empty path to name fds themselves.
pub fn move_mount(
    from_dirfd: BorrowedFd<'_>,
    from_path: &Path,
    to_dirfd: BorrowedFd<'_>,
    to_path: &Path,
    flags: u32,
) -> Result<(), Errno> {
    let ret = from_path.with_nix_path(|from| {
        to_path.with_nix_path(|to| {
            // SAFETY: both paths are NUL-terminated strings valid for the call, both fds are
            // live; move_mount only reads its arguments.
            unsafe {
                libc::syscall(
                    libc::SYS_move_mount,
                    from_dirfd.as_raw_fd(),
                    from.as_ptr(),
                    to_dirfd.as_raw_fd(),
                    to.as_ptr(),
                    libc::c_uint::from(flags),
                )
            }
        })
    })??;
    Errno::result(ret).map(drop)
}

/// Attach a detached mount (from [`open_tree`] or [`fsmount`]) onto the object `target` was
/// resolved to, without any path lookup.
pub fn attach_mount(mount: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    move_mount(
        mount,
        Path::new(""),
        target,
        Path::new(""),
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// `mount_setattr(2)`: change the attributes of the mount at `path` (the fd itself with
/// [`AT_EMPTY_PATH`] and an empty path; its whole subtree with [`AT_RECURSIVE`]).
pub fn mount_setattr(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: u32,
    attr: &MountAttr<'_>,
) -> Result<(), Errno> {
    let mut raw = RawMountAttr {
        attr_set: attr.set,
        attr_clr: attr.clear,
        propagation: attr.propagation,
        userns_fd: attr
            .userns
            .map(|fd| u64::try_from(fd.as_raw_fd()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    };
    let ret = path.with_nix_path(|p| {
        // SAFETY: `p` is a NUL-terminated string, `raw` is a properly laid out `struct
        // mount_attr` (VER0, 32 bytes) that outlives the call, and its size is passed with it.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                dirfd.as_raw_fd(),
                p.as_ptr(),
                libc::c_uint::from(flags),
                &mut raw as *mut RawMountAttr,
                std::mem::size_of::<RawMountAttr>(),
            )
        }
    })?;
    Errno::result(ret).map(drop)
}

/// `fsopen(2)`: a filesystem context for `fstype`, configured with [`fsconfig_set`] and
/// created with [`fsconfig_create`].
pub fn fsopen(fstype: &str) -> Result<OwnedFd, Errno> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    let ret = fstype.with_nix_path(|t| {
        // SAFETY: `t` is a NUL-terminated string valid for the call.
        unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) }
    })?;
    raw_fd_result(ret)
}

fn fsconfig(
    fs: BorrowedFd<'_>,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&str>,
) -> Result<(), Errno> {
    let key = key
        .map(std::ffi::CString::new)
        .transpose()
        .map_err(|_| Errno::EINVAL)?;
    let value = value
        .map(std::ffi::CString::new)
        .transpose()
        .map_err(|_| Errno::EINVAL)?;
    let key_ptr = key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
    let value_ptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: key and value are NUL-terminated strings (or NULL where the command takes none)
    // that outlive the call; `fs` is a live fs context fd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key_ptr,
            value_ptr,
            0 as libc::c_int,
        )
    };
    Errno::result(ret).map(drop)
}

/// `fsconfig(FSCONFIG_SET_FLAG / FSCONFIG_SET_STRING)`: one mount option, `key` or `key=value`.
/// The kernel answers for this option alone, so a refusal names exactly one option.
pub fn fsconfig_set(fs: BorrowedFd<'_>, option: &str) -> Result<(), Errno> {
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    match option.split_once('=') {
        Some((key, value)) => fsconfig(fs, FSCONFIG_SET_STRING, Some(key), Some(value)),
        None => fsconfig(fs, FSCONFIG_SET_FLAG, Some(option), None),
    }
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: create the superblock from the configured context.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> Result<(), Errno> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    fsconfig(fs, FSCONFIG_CMD_CREATE, None, None)
}

/// `fsmount(2)`: a detached mount of a created fs context, with `MOUNT_ATTR_*` bits.
pub fn fsmount(fs: BorrowedFd<'_>, attr_flags: u64) -> Result<OwnedFd, Errno> {
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let attrs = libc::c_uint::try_from(attr_flags).map_err(|_| Errno::EINVAL)?;
    // SAFETY: plain integer arguments and a live fd.
    let ret = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    raw_fd_result(ret)
}

/// A detached mount of a new `fstype` filesystem with `options` (each `key` or `key=value`).
/// On a refusal, returns the option the kernel refused (None when it refused the creation).
pub fn new_fs_mount(
    fstype: &str,
    options: &[&str],
    attr_flags: u64,
) -> Result<OwnedFd, (Option<String>, Errno)> {
    let fs = fsopen(fstype).map_err(|e| (None, e))?;
    for option in options {
        fsconfig_set(fs.as_fd(), option).map_err(|e| (Some((*option).to_string()), e))?;
    }
    fsconfig_create(fs.as_fd()).map_err(|e| (None, e))?;
    fsmount(fs.as_fd(), attr_flags).map_err(|e| (None, e))
}

/// A user namespace whose uid/gid maps are `uid_map` / `gid_map` (the text of
/// `/proc/<pid>/uid_map`: `inside outside count` lines), for `MOUNT_ATTR_IDMAP`.
///
/// A helper child is forked, unshares a user namespace, gets its maps written, and is reaped
/// once its namespace is held open. Call it only from a single-threaded process.
pub fn new_userns_fd(uid_map: &str, gid_map: &str) -> Result<OwnedFd, Errno> {
    use nix::sched::{unshare, CloneFlags};
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, pipe2, read, write, ForkResult};

    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (hold_r, hold_w) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the child only calls async-signal-safe functions (unshare, readlink, write, read,
    // _exit) and never returns into Rust code that could touch locks held by other threads.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(hold_w);
            // Our pid as the /proc in use numbers it (the caller may be in a pid namespace
            // that this /proc doesn't belong to), sent after the status byte.
            let mut msg = [0u8; 33];
            msg[0] = u8::from(unshare(CloneFlags::CLONE_NEWUSER).is_ok());
            // SAFETY: readlink is async-signal-safe; the path is a NUL-terminated literal and
            // the buffer is a stack array whose length is passed.
            let n = unsafe {
                libc::readlink(
                    c"/proc/self".as_ptr(),
                    msg[1..].as_mut_ptr().cast(),
                    msg.len() - 1,
                )
            };
            let len = 1 + usize::try_from(n).unwrap_or(0);
            let _ = write(&ready_w, &msg[..len]);
            let mut buf = [0u8; 1];
            let _ = read(&hold_r, &mut buf);
            // SAFETY: _exit is async-signal-safe and skips destructors and atexit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(hold_r);
            let result = (|| {
                let mut buf = [0u8; 33];
                let n = read(&ready_r, &mut buf)?;
                if n < 2 || buf[0] != 1 {
                    return Err(Errno::EPERM);
                }
                let proc_pid = std::str::from_utf8(&buf[1..n]).map_err(|_| Errno::EIO)?;
                let write_map = |file: &str, map: &str| -> Result<(), Errno> {
                    std::fs::write(format!("/proc/{proc_pid}/{file}"), map)
                        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                };
                write_map("uid_map", uid_map)?;
                write_map("gid_map", gid_map)?;
                nix::fcntl::open(
                    format!("/proc/{proc_pid}/ns/user").as_str(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
            })();
            drop(hold_w);
            if result.is_err() {
                let _ = kill(child, Signal::SIGKILL);
            }
            let _ = waitpid(child, None);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn tempdir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("berth-sys-mount-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test dir");
        dir
    }

    #[test]
    fn open_in_root_clamps_absolute_and_dotdot_symlinks() {
        let dir = tempdir("inroot");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("inside")).expect("mkdir");
        std::os::unix::fs::symlink("/", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../..", root.join("rel")).expect("symlink");
        let rootfd = nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
            .expect("open root");
        for p in ["abs/inside", "rel/inside", "/../../inside", "inside"] {
            let fd = open_in_root(rootfd.as_fd(), Path::new(p), OFlag::O_PATH)
                .unwrap_or_else(|e| panic!("{p}: {e}"));
            let target = std::fs::read_link(fd_path(fd.as_fd())).expect("readlink");
            assert_eq!(target, root.join("inside"), "{p} resolved outside the root");
        }
        // The host's /etc exists, but must not be reachable through the symlink.
        assert_eq!(
            open_in_root(rootfd.as_fd(), Path::new("abs/etc"), OFlag::O_PATH).err(),
            Some(Errno::ENOENT)
        );
        // Magic links are refused.
        assert!(open_in_root(
            nix::fcntl::open("/", OFlag::O_PATH, Mode::empty())
                .expect("open /")
                .as_fd(),
            Path::new("/proc/self/root"),
            OFlag::O_PATH
        )
        .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn new_userns_fd_holds_the_maps() {
        let fd = match new_userns_fd("0 1000 1\n", "0 2000 1\n") {
            Ok(fd) => fd,
            Err(Errno::EPERM) if !nix::unistd::geteuid().is_root() => {
                println!("SKIP: writing id maps needs root");
                return;
            }
            Err(e) => panic!("new_userns_fd: {e}"),
        };
        let link = std::fs::read_link(fd_path(fd.as_fd())).expect("readlink");
        let own = std::fs::read_link("/proc/self/ns/user").expect("readlink");
        assert!(link.to_string_lossy().starts_with("user:["), "{link:?}");
        assert_ne!(link, own, "not a new user namespace");
    }

    #[test]
    fn new_fs_mount_names_the_refused_option() {
        match new_fs_mount("tmpfs", &["mode=755", "bogus_option=1"], 0) {
            Err((Some(opt), Errno::EINVAL)) => assert_eq!(opt, "bogus_option=1"),
            Err((_, Errno::EPERM)) => println!("SKIP: no CAP_SYS_ADMIN for fsopen"),
            other => panic!("expected EINVAL on bogus_option=1, got {other:?}"),
        }
        match new_fs_mount("tmpfs", &["mode=700", "size=1m"], attr::RDONLY) {
            Ok(_) | Err((_, Errno::EPERM)) => {}
            Err(e) => panic!("valid tmpfs refused: {e:?}"),
        }
    }
}
