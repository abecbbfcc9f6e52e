//! Switching the process root to the prepared rootfs: pivot_root the way runc does it, and the
//! `--no-pivot` fallback (MS_MOVE + chroot) for roots where pivot_root is refused (ramfs).

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::mountinfo;
use super::RootfsError;

fn err<'a>(rootfs: &'a Path, step: &'static str) -> impl Fn(Errno) -> RootfsError + 'a {
    move |source| RootfsError::Pivot {
        rootfs: rootfs.to_path_buf(),
        step,
        source,
    }
}

/// `pivot_root(".", ".")` from inside the new root, then detach the old root stacked on it.
pub(super) fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let oldroot = nix::fcntl::open("/", dir, Mode::empty()).map_err(err(rootfs, "open /"))?;
    let newroot =
        nix::fcntl::open(rootfs, dir, Mode::empty()).map_err(err(rootfs, "open the rootfs"))?;
    nix::unistd::fchdir(&newroot).map_err(err(rootfs, "chdir into the rootfs"))?;
    nix::unistd::pivot_root(".", ".").map_err(err(rootfs, "pivot_root"))?;
    // "." is now the old root, stacked under the new one; be explicit about it anyway.
    nix::unistd::fchdir(&oldroot).map_err(err(rootfs, "chdir into the old root"))?;
    // rslave so that detaching it can't propagate unmounts to the host.
    nix::mount::mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err(rootfs, "make the old root rslave"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(err(rootfs, "detach the old root"))?;
    nix::unistd::chdir("/").map_err(err(rootfs, "chdir /"))
}

/// Move the rootfs mount onto `/` and chroot into it. The host's full proc and sysfs mounts
/// outside the rootfs are detached (or covered) first: chroot leaves them in the namespace, and
/// their presence would let the container mount new unmasked instances.
pub(super) fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    let rootfs = std::fs::canonicalize(rootfs).map_err(|e| RootfsError::Pivot {
        rootfs: rootfs.to_path_buf(),
        step: "canonicalize",
        source: super::resolve::errno_of(&e),
    })?;
    let rootfs = rootfs.as_path();
    nix::unistd::chdir(rootfs).map_err(err(rootfs, "chdir into the rootfs"))?;
    let infos = mountinfo::read_self().map_err(|source| RootfsError::Read {
        path: "/proc/self/mountinfo".into(),
        source,
    })?;
    let mut hide: Vec<_> = infos
        .iter()
        .filter(|i| {
            (i.fstype == "proc" || i.fstype == "sysfs")
                && i.root == Path::new("/")
                && i.mount_point != Path::new("/")
                && !i.mount_point.starts_with(rootfs)
        })
        .map(|i| i.mount_point.clone())
        .collect();
    // Deepest first, so a parent's detach doesn't hide a child we still have to handle.
    hide.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in &hide {
        match nix::mount::mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue, // under something already detached
            Err(e) => return Err(err(rootfs, "make a host proc/sysfs rslave")(e)),
        }
        match nix::mount::umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::EPERM) => nix::mount::mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(err(rootfs, "cover a host proc/sysfs"))?,
            Err(e) => return Err(err(rootfs, "detach a host proc/sysfs")(e)),
        }
    }
    nix::mount::mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(err(rootfs, "move the rootfs onto /"))?;
    nix::unistd::chroot(".").map_err(err(rootfs, "chroot"))?;
    nix::unistd::chdir("/").map_err(err(rootfs, "chdir /"))
}
