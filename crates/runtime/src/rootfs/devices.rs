//! Device nodes and /dev symlinks in the rootfs, and the console.
//!
//! The default devices (null, zero, full, random, urandom, tty) and `linux.devices` are made
//! with mknod at their exact mode and owner (chmod after mknod, so the umask plays no part);
//! in a user namespace, where mknod is refused, the host's node is bind-mounted over an empty
//! file instead (runc does the same). Then the /dev symlinks: fd, stdin/stdout/stderr, core
//! (when the container mounts /proc) and ptmx -> pts/ptmx.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDeviceType, Spec};

use berth_sys::mount::{self as sysmount, fd_path, AT_EMPTY_PATH};

use super::mounts::mount_on;
use super::options::MountOptions;
use super::resolve::{clean, Kind, Root};
use super::{Ctx, RootfsError};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path inside the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

fn default_device(path: &str, major: u64, minor: u64) -> Device {
    Device {
        path: PathBuf::from(path),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// The devices every container gets (OCI runtime spec, "Default Devices").
pub fn default_devices() -> Vec<Device> {
    vec![
        default_device("/dev/null", 1, 3),
        default_device("/dev/zero", 1, 5),
        default_device("/dev/full", 1, 7),
        default_device("/dev/random", 1, 8),
        default_device("/dev/urandom", 1, 9),
        default_device("/dev/tty", 5, 0),
    ]
}

/// The default devices and `linux.devices` (which win on the same path).
pub fn devices_of(spec: &Spec) -> Result<Vec<Device>, RootfsError> {
    let mut list = Vec::new();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::DeviceType {
                    path: d.path().clone(),
                    typ: "a".into(),
                })
            }
        };
        let number = |n: i64, what: &'static str| {
            u64::try_from(n).map_err(|_| RootfsError::DeviceType {
                path: d.path().clone(),
                typ: format!("{} (negative {what} number {n})", d.typ().as_str()),
            })
        };
        list.push(Device {
            path: d.path().clone(),
            kind,
            major: number(d.major(), "major")?,
            minor: number(d.minor(), "minor")?,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let mut all: Vec<Device> = default_devices()
        .into_iter()
        .filter(|def| !list.iter().any(|d| clean(&d.path) == clean(&def.path)))
        .collect();
    all.extend(list);
    Ok(all)
}

/// runc's rule: the runtime populates /dev unless /dev itself is a bind mount.
pub fn needs_dev_setup(spec: &Spec) -> bool {
    !spec.mounts().iter().flatten().any(|m| {
        let bind = m.typ().as_deref() == Some("bind")
            || MountOptions::parse(m.options().as_deref().unwrap_or_default()).is_bind();
        bind && clean(m.destination()) == clean(Path::new("/dev"))
    })
}

/// Whether the spec mounts a proc filesystem on /proc.
pub fn mounts_proc(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.typ().as_deref() == Some("proc") && clean(m.destination()) == clean(Path::new("/proc"))
    })
}

fn device_err<'a>(path: &'a Path, what: &'static str) -> impl Fn(Errno) -> RootfsError + 'a {
    move |source| RootfsError::Device {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Create one device node inside the rootfs (bind the host's in a user namespace).
pub(super) fn create_device(ctx: &Ctx<'_>, dev: &Device) -> Result<(), RootfsError> {
    let path = dev.path.as_path();
    let name = path.file_name().ok_or_else(|| RootfsError::DeviceType {
        path: path.to_path_buf(),
        typ: "(a device path needs a file name)".into(),
    })?;
    if ctx.userns {
        let target = ctx.root.ensure(path, Kind::File)?;
        return mount_on(Some(path), target.as_fd(), None, MsFlags::MS_BIND, None)
            .map_err(device_err(path, "bind mount the host's node"));
    }
    if ctx.root.lookup(path)?.is_some() {
        return Ok(()); // already there (the image's own node): kept, as runc does
    }
    let parent = ctx
        .root
        .ensure(path.parent().unwrap_or(Path::new("/")), Kind::Dir)?;
    match mknodat(
        parent.as_fd(),
        name,
        dev.kind,
        Mode::from_bits_truncate(dev.mode),
        makedev(dev.major, dev.minor),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(device_err(path, "mknod")(e)),
    }
    let node = ctx.root.resolve(path)?;
    set_owner_and_mode(&node, dev.uid, dev.gid, dev.mode)
        .map_err(device_err(path, "set owner and mode"))
}

fn set_owner_and_mode(node: &OwnedFd, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    fchownat(
        node.as_fd(),
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )?;
    // After chown (which clears setuid/setgid), and whatever the umask was at mknod.
    std::fs::set_permissions(fd_path(node.as_fd()), std::fs::Permissions::from_mode(mode))
        .map_err(|e| super::resolve::errno_of(&e))
}

/// Default devices and `linux.devices`.
pub(super) fn create_devices(ctx: &Ctx<'_>) -> Result<(), RootfsError> {
    for dev in devices_of(ctx.spec)? {
        create_device(ctx, &dev)?;
    }
    Ok(())
}

/// /dev/fd, stdin, stdout, stderr, core (with /proc) and ptmx -> pts/ptmx.
pub(super) fn create_symlinks(ctx: &Ctx<'_>) -> Result<(), RootfsError> {
    let dev = ctx.root.ensure(Path::new("/dev"), Kind::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if mounts_proc(ctx.spec) {
        links.push(("/proc/kcore", "core"));
    }
    let link_err = |name: &str, target: &str| {
        let (link, target) = (Path::new("/dev").join(name), PathBuf::from(target));
        move |source| RootfsError::Symlink {
            link,
            target,
            source,
        }
    };
    for (target, name) in links {
        match symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(link_err(name, target)(e)),
        }
    }
    match unlinkat(dev.as_fd(), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(link_err("ptmx", "pts/ptmx")(e)),
    }
    symlinkat("pts/ptmx", dev.as_fd(), "ptmx").map_err(link_err("ptmx", "pts/ptmx"))
}

/// Bind-mount the terminal `pty_slave` onto /dev/console, as runc does: call it after
/// [`super::pivot`], with the current root being the container's. `pty_slave` is a path as
/// seen from there (`/dev/pts/0`, or `/proc/self/fd/N` of an open slave).
pub fn setup_console(pty_slave: &Path) -> Result<(), RootfsError> {
    let console = Path::new("/dev/console");
    let err = |what: &'static str| {
        move |source| RootfsError::Console {
            pty: pty_slave.to_path_buf(),
            what,
            source,
        }
    };
    let root = Root::open(Path::new("/"))?;
    let target = root.ensure(console, Kind::File)?;
    let src = nix::fcntl::open(
        pty_slave,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open the pty"))?;
    let tree = sysmount::open_tree(
        src.as_fd(),
        Path::new(""),
        sysmount::OPEN_TREE_CLONE | AT_EMPTY_PATH,
    )
    .map_err(err("clone the pty for a bind mount"))?;
    sysmount::attach_mount(tree.as_fd(), target.as_fd()).map_err(err("mount on /dev/console"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_devices_override_defaults() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[
                {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":438,"uid":5,"gid":6},
                {"path":"/dev/sda","type":"b","major":8,"minor":0,"fileMode":8624},
                {"path":"/dev/fifo","type":"p"}]}}"#,
        )
        .expect("spec");
        let all = devices_of(&spec).expect("devices");
        assert_eq!(all.len(), 8);
        let null: Vec<_> = all
            .iter()
            .filter(|d| d.path == Path::new("/dev/null"))
            .collect();
        assert_eq!(null.len(), 1);
        assert_eq!((null[0].uid, null[0].gid), (5, 6));
        let sda = all
            .iter()
            .find(|d| d.path == Path::new("/dev/sda"))
            .expect("sda");
        assert_eq!(
            (sda.kind, sda.major, sda.minor, sda.mode),
            (SFlag::S_IFBLK, 8, 0, 0o660)
        );
        let fifo = all
            .iter()
            .find(|d| d.path == Path::new("/dev/fifo"))
            .expect("fifo");
        assert_eq!((fifo.kind, fifo.mode), (SFlag::S_IFIFO, 0o666));

        let bad: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[{"path":"/dev/x","type":"a"}]}}"#,
        )
        .expect("spec");
        assert!(matches!(
            devices_of(&bad),
            Err(RootfsError::DeviceType { .. })
        ));
    }

    #[test]
    fn dev_setup_unless_dev_is_bound() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/dev","type":"tmpfs","source":"tmpfs"}]}"#,
        )
        .expect("spec");
        assert!(needs_dev_setup(&spec));
        assert!(!mounts_proc(&spec));
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/dev/","source":"/dev","options":["rbind"]},
                {"destination":"/proc","type":"proc","source":"proc"}]}"#,
        )
        .expect("spec");
        assert!(!needs_dev_setup(&spec));
        assert!(mounts_proc(&spec));
    }
}
