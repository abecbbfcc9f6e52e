//! One `spec.mounts` entry onto the rootfs: bind/rbind (plain or idmapped), tmpfs (with runc's
//! `tmpcopyup`), cgroup (see `cgroup.rs`), proc/sysfs/mqueue/devpts and any other filesystem.
//!
//! The destination is resolved (created when missing) inside the rootfs, the mount goes onto
//! `/proc/self/fd/<fd>` of that resolution, and everything applied afterwards (bind remount,
//! propagation, recursive attributes) targets a fresh in-root resolution of the new mount.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

use berth_sys::mount::{self as sysmount, attr, fd_path, MountAttr, AT_EMPTY_PATH, AT_RECURSIVE};

use super::options::{Idmap, MountOptions};
use super::resolve::{errno_of, Kind};
use super::{Ctx, RootfsError};

/// Files inside /proc a bind mount may cover (the ones lxcfs emulates), as runc allows.
const PROC_BIND_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// The options of `m` as written in the spec, for messages.
pub(super) fn options_text(m: &Mount) -> String {
    m.options().as_deref().unwrap_or_default().join(",")
}

/// mount(2) onto the object `target` was resolved to.
pub(super) fn mount_on(
    source: Option<&Path>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Errno> {
    nix::mount::mount(source, &fd_path(target), fstype, flags, data)
}

/// Mount one `spec.mounts` entry.
pub(super) fn mount_entry(ctx: &Ctx<'_>, m: &Mount) -> Result<(), RootfsError> {
    let dest = m.destination().as_path();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let idmapped = opts.idmap.is_some() || m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if opts.is_bind() || typ == "bind" {
        return bind_entry(ctx, m, dest, &opts, idmapped);
    }
    if idmapped {
        return Err(RootfsError::Idmap {
            dest: dest.to_path_buf(),
            reason: format!("only bind mounts can be idmapped, not {typ:?}"),
            source: None,
        });
    }
    match typ {
        "" | "none" => Err(RootfsError::Forbidden {
            dest: dest.to_path_buf(),
            reason: "a mount needs a filesystem type, or bind/rbind in its options",
        }),
        "cgroup" | "cgroup2" => super::cgroup::mount_cgroup(ctx, m, dest, &opts),
        "tmpfs" => tmpfs_entry(ctx, m, dest, &opts),
        _ => fs_entry(ctx, m, typ, dest, &opts),
    }
}

fn bind_entry(
    ctx: &Ctx<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    idmapped: bool,
) -> Result<(), RootfsError> {
    let src = m
        .source()
        .as_deref()
        .ok_or_else(|| RootfsError::MissingSource {
            dest: dest.to_path_buf(),
            fstype: "bind".into(),
        })?;
    let src = if src.is_relative() {
        ctx.bundle.join(src)
    } else {
        src.to_path_buf()
    };
    if let Some(option) = opts.data.first() {
        // mount(2) ignores data on a bind mount: refuse rather than drop the option.
        return Err(RootfsError::UnknownOption {
            dest: dest.to_path_buf(),
            option: option.clone(),
        });
    }
    let meta = std::fs::metadata(&src).map_err(|e| RootfsError::Bind {
        src: src.clone(),
        dest: dest.to_path_buf(),
        source: errno_of(&e),
    })?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    let target = ctx.root.ensure(dest, kind)?;
    check_proc_destination(ctx, dest, target.as_fd(), "bind", Some(&src))?;
    if idmapped {
        idmap_bind(m, dest, &src, target.as_fd(), opts)?;
    } else {
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        mount_on(Some(&src), target.as_fd(), None, flags, None).map_err(|source| {
            RootfsError::Bind {
                src: src.clone(),
                dest: dest.to_path_buf(),
                source,
            }
        })?;
    }
    let extra = opts.remount_flags();
    if extra.is_empty() && !has_followup(opts) {
        return Ok(());
    }
    let mounted = ctx.root.resolve(dest)?;
    if !extra.is_empty() {
        remount_bind(mounted.as_fd(), dest, extra, opts.cleared)?;
    }
    after_mount(dest, mounted.as_fd(), opts, m)
}

/// Whether the options ask for anything after the mount itself (propagation, recursive attrs).
fn has_followup(opts: &MountOptions) -> bool {
    !opts.propagation.is_empty() || opts.rec_set != 0 || opts.rec_clear != 0
}

/// Propagation and recursive attributes of a mount just made at `dest`, if the options ask.
pub(super) fn followup(
    ctx: &Ctx<'_>,
    dest: &Path,
    opts: &MountOptions,
    m: &Mount,
) -> Result<(), RootfsError> {
    if !has_followup(opts) {
        return Ok(());
    }
    let mounted = ctx.root.resolve(dest)?;
    after_mount(dest, mounted.as_fd(), opts, m)
}

/// Bind one host path onto `dest` (already resolved) with `flags` (a remount follows when
/// they hold more than bind/rec), for cgroup and sysfs/mqueue fallbacks.
pub(super) fn bind_path(
    ctx: &Ctx<'_>,
    src: &Path,
    dest: &Path,
    target: BorrowedFd<'_>,
    flags: MsFlags,
) -> Result<OwnedFd, RootfsError> {
    let bind = MsFlags::MS_BIND | (flags & MsFlags::MS_REC);
    mount_on(Some(src), target, None, bind, None).map_err(|source| RootfsError::Bind {
        src: src.to_path_buf(),
        dest: dest.to_path_buf(),
        source,
    })?;
    let mounted = ctx.root.resolve(dest)?;
    let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount_bind(mounted.as_fd(), dest, extra, MsFlags::empty())?;
    }
    Ok(mounted)
}

/// Flags a mount can have locked (in a user namespace) that a bind remount must then repeat.
const LOCKABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME);
const ATIME: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// `MS_BIND | MS_REMOUNT | flags` on a bind mount. When the kernel refuses (EPERM: the source
/// has flags locked by a user namespace), retry keeping the mount's current flags (read with
/// statvfs) that the options didn't explicitly clear.
pub(super) fn remount_bind(
    mounted: BorrowedFd<'_>,
    dest: &Path,
    flags: MsFlags,
    cleared: MsFlags,
) -> Result<(), RootfsError> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let err = |flags: MsFlags, source| RootfsError::Remount {
        dest: dest.to_path_buf(),
        flags: format!("{flags:?}"),
        source,
    };
    match mount_on(None, mounted, None, base | flags, None) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let st = nix::sys::statvfs::fstatvfs(mounted).map_err(|e| err(flags, e))?;
            let mut locked = MsFlags::from_bits_truncate(st.flags().bits()) & LOCKABLE;
            locked -= cleared;
            if flags.intersects(ATIME) {
                locked -= ATIME;
            }
            let all = flags | locked;
            mount_on(None, mounted, None, base | all, None).map_err(|e| err(all, e))
        }
        Err(e) => Err(err(flags, e)),
    }
}

/// Propagation changes, then recursive attributes, on the new mount.
pub(super) fn after_mount(
    dest: &Path,
    mounted: BorrowedFd<'_>,
    opts: &MountOptions,
    m: &Mount,
) -> Result<(), RootfsError> {
    for p in &opts.propagation {
        mount_on(None, mounted, None, *p, None).map_err(|source| RootfsError::Propagation {
            path: dest.to_path_buf(),
            flags: format!("{p:?}"),
            source,
        })?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        let a = MountAttr {
            set: opts.rec_set,
            clear: opts.rec_clear,
            ..MountAttr::default()
        };
        sysmount::mount_setattr(mounted, Path::new(""), AT_EMPTY_PATH | AT_RECURSIVE, &a).map_err(
            |source| RootfsError::SetAttr {
                dest: dest.to_path_buf(),
                what: format!("recursive options of {:?}", options_text(m)),
                source,
            },
        )?;
    }
    Ok(())
}

/// A clone of `src` idmapped with the mount's uid/gid mappings, attached on `target`.
fn idmap_bind(
    m: &Mount,
    dest: &Path,
    src: &Path,
    target: BorrowedFd<'_>,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let err = |reason: &str, source: Option<Errno>| RootfsError::Idmap {
        dest: dest.to_path_buf(),
        reason: reason.to_string(),
        source,
    };
    let (Some(uids), Some(gids)) = (m.uid_mappings(), m.gid_mappings()) else {
        return Err(err("idmap needs both uidMappings and gidMappings", None));
    };
    let map = |maps: &[oci_spec::runtime::LinuxIdMapping]| -> String {
        maps.iter()
            .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
            .collect()
    };
    let userns = sysmount::new_userns_fd(&map(uids), &map(gids))
        .map_err(|e| err("create a user namespace with the mappings", Some(e)))?;
    let srcfd = nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| err("open the source", Some(e)))?;
    let mut clone_flags = sysmount::OPEN_TREE_CLONE | AT_EMPTY_PATH;
    if opts.is_recursive_bind() {
        clone_flags |= AT_RECURSIVE;
    }
    let tree = sysmount::open_tree(srcfd.as_fd(), Path::new(""), clone_flags)
        .map_err(|e| err("clone the source mount", Some(e)))?;
    let mut setattr_flags = AT_EMPTY_PATH;
    if opts.idmap == Some(Idmap::Recursive) {
        setattr_flags |= AT_RECURSIVE;
    }
    let a = MountAttr {
        set: attr::IDMAP,
        userns: Some(userns.as_fd()),
        ..MountAttr::default()
    };
    sysmount::mount_setattr(tree.as_fd(), Path::new(""), setattr_flags, &a).map_err(|e| {
        err(
            "idmap the mount (the filesystem may not support idmapped mounts)",
            Some(e),
        )
    })?;
    sysmount::attach_mount(tree.as_fd(), target).map_err(|e| err("attach the mount", Some(e)))
}

/// runc's check of mounts on and inside /proc: only procfs on /proc itself, and inside it only
/// binds over the few files lxcfs emulates (masking /proc entries is how the runtime protects
/// the host; a mount there could undo it).
pub(super) fn check_proc_destination(
    ctx: &Ctx<'_>,
    dest: &Path,
    target: BorrowedFd<'_>,
    typ: &str,
    bind_src: Option<&Path>,
) -> Result<(), RootfsError> {
    let real = ctx
        .root
        .path_in_root(target)
        .unwrap_or_else(|| PathBuf::from("/").join(dest));
    if real == Path::new("/proc") {
        let src_is_proc = bind_src
            .and_then(|s| nix::sys::statfs::statfs(s).ok())
            .is_some_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
        if typ == "proc" || src_is_proc {
            return Ok(());
        }
        return Err(RootfsError::Forbidden {
            dest: dest.to_path_buf(),
            reason: "only a proc filesystem can be mounted on /proc",
        });
    }
    if real.starts_with("/proc") && !PROC_BIND_ALLOWED.iter().any(|p| real == Path::new(p)) {
        return Err(RootfsError::Forbidden {
            dest: dest.to_path_buf(),
            reason: "inside /proc only the files lxcfs emulates can be mounted over",
        });
    }
    Ok(())
}

/// The error of a refused filesystem mount. When the options carried data, ask the kernel
/// which option it refuses (fsconfig takes them one by one) so the message names it.
pub(super) fn mount_error(
    typ: &str,
    dest: &Path,
    opts: &MountOptions,
    m: &Mount,
    source: Errno,
) -> RootfsError {
    if !opts.data.is_empty() {
        let data: Vec<&str> = opts.data.iter().map(String::as_str).collect();
        if let Err((Some(option), e)) = sysmount::new_fs_mount(typ, &data, 0) {
            return RootfsError::MountOption {
                fstype: typ.to_string(),
                dest: dest.to_path_buf(),
                option,
                source: e,
            };
        }
    }
    RootfsError::Mount {
        fstype: typ.to_string(),
        dest: dest.to_path_buf(),
        options: options_text(m),
        source,
    }
}

fn fs_entry(
    ctx: &Ctx<'_>,
    m: &Mount,
    typ: &str,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    check_proc_destination(ctx, dest, target.as_fd(), typ, None)?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = opts.data_string();
    let res = mount_on(
        Some(&source),
        target.as_fd(),
        Some(typ),
        opts.flags,
        data.as_deref(),
    );
    match res {
        Ok(()) => {}
        // In a user namespace without its own network (sysfs) or ipc (mqueue) namespace the
        // kernel refuses a new instance: bind the runtime's one, as runc does.
        Err(Errno::EPERM) if ctx.userns && (typ == "sysfs" || typ == "mqueue") => {
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            let flags = opts.flags | MsFlags::MS_BIND | MsFlags::MS_REC;
            let mounted = bind_path(ctx, Path::new(host), dest, target.as_fd(), flags)?;
            return after_mount(dest, mounted.as_fd(), opts, m);
        }
        Err(e) => return Err(mount_error(typ, dest, opts, m, e)),
    }
    followup(ctx, dest, opts, m)
}

/// MsFlags of a tmpfs mount as `MOUNT_ATTR_*` for fsmount.
fn mount_attrs(flags: MsFlags) -> u64 {
    let mut a = 0;
    for (f, v) in [
        (MsFlags::MS_RDONLY, attr::RDONLY),
        (MsFlags::MS_NOSUID, attr::NOSUID),
        (MsFlags::MS_NODEV, attr::NODEV),
        (MsFlags::MS_NOEXEC, attr::NOEXEC),
        (MsFlags::MS_NOATIME, attr::NOATIME),
        (MsFlags::MS_STRICTATIME, attr::STRICTATIME),
        (MsFlags::MS_NODIRATIME, attr::NODIRATIME),
        (super::options::MS_NOSYMFOLLOW, attr::NOSYMFOLLOW),
    ] {
        if flags.contains(f) {
            a |= v;
        }
    }
    a
}

/// tmpfs, mounted read-write even when `ro` is asked: `finalize` makes it read-only after the
/// runtime has created what it needs inside (devices in /dev, mount points), as runc does.
fn tmpfs_entry(
    ctx: &Ctx<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    check_proc_destination(ctx, dest, target.as_fd(), "tmpfs", None)?;
    let flags = opts.flags - MsFlags::MS_RDONLY;
    if opts.tmpcopyup {
        let data: Vec<&str> = opts.data.iter().map(String::as_str).collect();
        let tmpfs = sysmount::new_fs_mount("tmpfs", &data, mount_attrs(flags)).map_err(
            |(option, source)| match option {
                Some(option) => RootfsError::MountOption {
                    fstype: "tmpfs".into(),
                    dest: dest.to_path_buf(),
                    option,
                    source,
                },
                None => RootfsError::Mount {
                    fstype: "tmpfs".into(),
                    dest: dest.to_path_buf(),
                    options: options_text(m),
                    source,
                },
            },
        )?;
        let copy_err = |source| RootfsError::CopyUp {
            dest: dest.to_path_buf(),
            source,
        };
        super::copyup::copy_dir(target.as_fd(), tmpfs.as_fd()).map_err(copy_err)?;
        sysmount::attach_mount(tmpfs.as_fd(), target.as_fd()).map_err(|source| {
            RootfsError::Mount {
                fstype: "tmpfs".into(),
                dest: dest.to_path_buf(),
                options: options_text(m),
                source,
            }
        })?;
    } else {
        let source = m.source().clone().unwrap_or_else(|| "tmpfs".into());
        let data = opts.data_string();
        mount_on(
            Some(&source),
            target.as_fd(),
            Some("tmpfs"),
            flags,
            data.as_deref(),
        )
        .map_err(|e| mount_error("tmpfs", dest, opts, m, e))?;
    }
    followup(ctx, dest, opts, m)
}
