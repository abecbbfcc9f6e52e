//! The container's root filesystem: mounts, devices, pivot_root, masked and read-only paths.
//!
//! Called from the container's init, in its new mount namespace, single-threaded:
//! 1. [`prepare`] (before pivot): propagation of `/` per `linux.rootfsPropagation` (rslave by
//!    default), parent of the rootfs made private, rootfs bound onto itself, every `spec.mounts`
//!    entry in order (destinations resolved and created *inside* the rootfs with
//!    openat2(RESOLVE_IN_ROOT), mounted onto `/proc/self/fd/<fd>` — see `rootfs/resolve.rs`),
//!    then the default devices, `linux.devices` and the /dev symlinks.
//! 2. [`pivot`]: pivot_root (or MS_MOVE + chroot with `no_pivot`).
//! 3. [`finalize`] (after pivot): `linux.sysctl`, `linux.readonlyPaths`,
//!    `linux.maskedPaths`, read-only tmpfs, `root.readonly`, final `rootfsPropagation`.
//!
//! [`setup_console`] binds a terminal onto /dev/console (after pivot); [`set_hostname`] sets
//! hostname/domainname (call it before `finalize`, which makes /proc/sys read-only). Submodules: `options` (mount option parser), `resolve` (in-root paths),
//! `mounts` and `cgroup` (one mount entry), `copyup` (tmpcopyup), `devices`, `pivot`,
//! `finalize`, `mountinfo`.
//!
//! Where this deliberately differs from runc:
//! - a bind mount with an option that is neither a flag nor a known extension is refused
//!   (mount(2) would silently ignore it as data); for other filesystems a refused data option
//!   is named, found by replaying the options one by one through fsconfig(2);
//! - `readonlyPaths` are read-only over their whole subtree (mount_setattr AT_RECURSIVE), and
//!   masked/read-only paths, ro tmpfs and the ro root only ever *add* MOUNT_ATTR_RDONLY, so
//!   nosuid/nodev/noexec (locked or not) are kept without a statfs round trip;
//! - `unbindable`/`runbindable` rootfsPropagation is applied after pivot (before it, `/` is
//!   made private instead: an unbindable `/` would refuse the rootfs bind);
//! - `ratime`/`rnostrictatime` clear the whole atime mask (mount_setattr(2) refuses a partial
//!   one).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use mountinfo::MountInfo;

mod cgroup;
mod copyup;
mod devices;
mod finalize;
pub mod mountinfo;
mod mounts;
pub mod options;
mod pivot;
mod resolve;

pub use devices::{default_devices, devices_of, needs_dev_setup, setup_console, Device};
pub use finalize::{set_hostname, valid_sysctl_name, write_sysctl};
pub use options::{propagation_flags, MountOptions};
pub use resolve::{Kind, Root};

/// Why setting up the root filesystem failed; each names the path, option or step.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The rootfs directory itself.
    #[error("rootfs {path:?}: {what}")]
    Rootfs {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Errno,
    },
    /// `linux.rootfsPropagation` names no propagation.
    #[error("unknown rootfsPropagation {name:?}")]
    UnknownPropagation { name: String },
    /// Changing the propagation of a mount.
    #[error("set propagation {flags} on {path:?}")]
    Propagation {
        path: PathBuf,
        flags: String,
        #[source]
        source: Errno,
    },
    /// Binding the rootfs onto itself.
    #[error("bind the rootfs {path:?} onto itself")]
    BindRootfs {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// Looking up a path inside the root.
    #[error("resolve {path:?} inside the rootfs")]
    Resolve {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// Creating a missing path inside the root.
    #[error("create {path:?} inside the rootfs")]
    Create {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// A filesystem mount the kernel refused.
    #[error("mount {fstype:?} on {dest:?} (options {options:?})")]
    Mount {
        fstype: String,
        dest: PathBuf,
        options: String,
        #[source]
        source: Errno,
    },
    /// A filesystem refused one of the mount's data options.
    #[error("mount {fstype:?} on {dest:?}: option {option:?} refused")]
    MountOption {
        fstype: String,
        dest: PathBuf,
        option: String,
        #[source]
        source: Errno,
    },
    /// An option that is neither a flag nor meaningful for a bind mount (it would be dropped).
    #[error(
        "mount on {dest:?}: unknown option {option:?} (a bind mount takes no filesystem data)"
    )]
    UnknownOption { dest: PathBuf, option: String },
    /// A mount without a source where one is needed.
    #[error("{fstype} mount on {dest:?} needs a source")]
    MissingSource { dest: PathBuf, fstype: String },
    /// A bind mount.
    #[error("bind mount {src:?} on {dest:?}")]
    Bind {
        src: PathBuf,
        dest: PathBuf,
        #[source]
        source: Errno,
    },
    /// The remount that applies flags (ro, nosuid...) to a bind mount.
    #[error("remount {dest:?} with {flags}")]
    Remount {
        dest: PathBuf,
        flags: String,
        #[source]
        source: Errno,
    },
    /// mount_setattr of recursive options.
    #[error("set {what} on {dest:?}")]
    SetAttr {
        dest: PathBuf,
        what: String,
        #[source]
        source: Errno,
    },
    /// An idmapped mount.
    #[error("idmapped mount on {dest:?}: {reason}")]
    Idmap {
        dest: PathBuf,
        reason: String,
        #[source]
        source: Option<Errno>,
    },
    /// A destination refused by policy.
    #[error("mount on {dest:?} refused: {reason}")]
    Forbidden { dest: PathBuf, reason: &'static str },
    /// Reading a file of /proc.
    #[error("read {path:?}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cgroup mount.
    #[error("cgroup mount on {dest:?}: {reason}")]
    Cgroup { dest: PathBuf, reason: String },
    /// A copy of a directory into its new tmpfs (`tmpcopyup`).
    #[error("copy {dest:?} into its new tmpfs (tmpcopyup)")]
    CopyUp {
        dest: PathBuf,
        #[source]
        source: Errno,
    },
    /// A device node.
    #[error("device {path:?}: {what}")]
    Device {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Errno,
    },
    /// A device entry that can't be created.
    #[error("device {path:?}: type {typ} can't be created")]
    DeviceType { path: PathBuf, typ: String },
    /// A symlink.
    #[error("symlink {link:?} -> {target:?}")]
    Symlink {
        link: PathBuf,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    /// The console bind mount.
    #[error("console {pty:?}: {what}")]
    Console {
        pty: PathBuf,
        what: &'static str,
        #[source]
        source: Errno,
    },
    /// pivot_root / MS_MOVE.
    #[error("switch root to {rootfs:?}: {step}")]
    Pivot {
        rootfs: PathBuf,
        step: &'static str,
        #[source]
        source: Errno,
    },
    /// A sysctl name that would leave /proc/sys.
    #[error("sysctl {key:?}: invalid name")]
    SysctlName { key: String },
    /// Writing a sysctl.
    #[error("sysctl {key:?} = {value:?}")]
    Sysctl {
        key: String,
        value: String,
        #[source]
        source: Errno,
    },
    /// A masked path.
    #[error("mask {path:?}")]
    Mask {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// A read-only path (or the read-only root / tmpfs).
    #[error("make {path:?} read-only")]
    Readonly {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// Hostname or domainname.
    #[error("set hostname/domainname {name:?}: {reason}")]
    Hostname {
        name: String,
        reason: &'static str,
        #[source]
        source: Option<Errno>,
    },
}

/// What every mount entry needs to know.
pub(crate) struct Ctx<'a> {
    spec: &'a Spec,
    root: Root,
    bundle: PathBuf,
    /// Inside a user namespace: no mknod, and sysfs/mqueue may need binds.
    userns: bool,
    /// The container has its own cgroup namespace: cgroup filesystems are mounted, not bound.
    cgroupns: bool,
    /// The mount table before the rootfs was touched (the host's hierarchies, for cgroup).
    mountinfo: Vec<MountInfo>,
}

fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
}

/// Whether this process runs in a user namespace other than the initial one.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields != ["0", "0", "4294967295"]
    })
}

/// Propagation of `/` per `linux.rootfsPropagation` (runc's default: rslave).
fn root_propagation(spec: &Spec) -> Result<(MsFlags, String), RootfsError> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|s| !s.is_empty())
    {
        // An unbindable / would refuse the rootfs bind below: private (what unbindable implies)
        // until `finalize` applies the real setting.
        Some("unbindable") => Ok((MsFlags::MS_PRIVATE, "private".into())),
        Some("runbindable") => Ok((MsFlags::MS_PRIVATE | MsFlags::MS_REC, "rprivate".into())),
        Some(name) => propagation_flags(name)
            .map(|f| (f, name.to_string()))
            .ok_or_else(|| RootfsError::UnknownPropagation {
                name: name.to_string(),
            }),
        None => Ok((MsFlags::MS_SLAVE | MsFlags::MS_REC, "rslave".into())),
    }
}

/// Make the mount holding `rootfs` private if it is shared: pivot_root refuses a shared parent,
/// and the rootfs bind would otherwise propagate to the host.
fn make_parent_private(rootfs: &Path, infos: &[MountInfo]) -> Result<(), RootfsError> {
    let parent = infos
        .iter()
        .filter(|i| rootfs.starts_with(&i.mount_point))
        .max_by_key(|i| i.mount_point.components().count());
    if let Some(p) = parent {
        if p.optional.iter().any(|o| o.starts_with("shared:")) {
            nix::mount::mount(
                None::<&str>,
                &p.mount_point,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|source| RootfsError::Propagation {
                path: p.mount_point.clone(),
                flags: "private".into(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Set up the rootfs before pivot (see the module doc). `rootfs` is the rootfs directory on the
/// host, `bundle` the bundle directory (relative bind sources are relative to it).
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<(), RootfsError> {
    let (flags, name) = root_propagation(spec)?;
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(|source| {
        RootfsError::Propagation {
            path: "/".into(),
            flags: name,
            source,
        }
    })?;
    let canonical = std::fs::canonicalize(rootfs).map_err(|e| RootfsError::Rootfs {
        path: rootfs.to_path_buf(),
        what: "canonicalize",
        source: resolve::errno_of(&e),
    })?;
    let mountinfo = mountinfo::read_self().map_err(|source| RootfsError::Read {
        path: "/proc/self/mountinfo".into(),
        source,
    })?;
    make_parent_private(&canonical, &mountinfo)?;
    nix::mount::mount(
        Some(&canonical),
        &canonical,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| RootfsError::BindRootfs {
        path: canonical.clone(),
        source,
    })?;
    // Opened after the bind: the fd must be the new mount's root.
    let root = Root::open(&canonical)?;
    let bundle = if bundle.is_absolute() {
        bundle.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| RootfsError::Rootfs {
                path: bundle.to_path_buf(),
                what: "bundle path relative to an unknown directory",
                source: resolve::errno_of(&e),
            })?
            .join(bundle)
    };
    let ctx = Ctx {
        spec,
        root,
        bundle,
        userns: has_namespace(spec, LinuxNamespaceType::User) || in_user_namespace(),
        cgroupns: has_namespace(spec, LinuxNamespaceType::Cgroup),
        mountinfo,
    };
    for m in spec.mounts().iter().flatten() {
        mounts::mount_entry(&ctx, m)?;
    }
    if needs_dev_setup(spec) {
        devices::create_devices(&ctx)?;
        devices::create_symlinks(&ctx)?;
    }
    Ok(())
}

/// Make the prepared `rootfs` the process root: pivot_root, or with `no_pivot` MS_MOVE onto `/`
/// and chroot (for ramfs, where pivot_root is refused; weaker isolation).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    if no_pivot {
        pivot::move_root(rootfs)
    } else {
        pivot::pivot_root(rootfs)
    }
}

/// After pivot: sysctl, read-only and masked paths, read-only tmpfs and
/// root, final rootfsPropagation (see the module doc).
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    finalize::finalize(spec)
}
