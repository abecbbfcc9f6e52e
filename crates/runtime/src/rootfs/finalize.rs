//! What happens once the process root is the container's: `linux.sysctl`, `linux.readonlyPaths`, `linux.maskedPaths`, read-only tmpfs mounts, `root.readonly`, and the
//! final `linux.rootfsPropagation` of `/`.
//!
//! All of it uses the fd based mount API (open_tree/fsmount + move_mount onto an fd resolved
//! inside `/`, mount_setattr), so nothing depends on the container having mounted /proc, and a
//! read-only change only ever adds `MOUNT_ATTR_RDONLY`: nosuid/nodev/noexec stay as they were.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use berth_sys::mount::{
    self as sysmount, attr, MountAttr, ResolveFlag, AT_EMPTY_PATH, AT_RECURSIVE, OPEN_TREE_CLONE,
};

use super::options::{propagation_flags, MountOptions};
use super::resolve::{clean, Root};
use super::RootfsError;

/// Everything after pivot, in runc's order.
pub(super) fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let root = Root::open(Path::new("/"))?;
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = sysctl.iter().collect();
        keys.sort();
        for (key, value) in keys {
            write_sysctl(key, value)?;
        }
    }
    for path in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(&root, Path::new(path))?;
    }
    for path in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(&root, Path::new(path))?;
    }
    readonly_tmpfs(&root, spec)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        set_readonly(&root, Path::new("/"), false).map_err(|source| RootfsError::Readonly {
            path: "/".into(),
            source,
        })?;
    }
    if let Some(name) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|s| !s.is_empty())
    {
        let flags = propagation_flags(name).ok_or_else(|| RootfsError::UnknownPropagation {
            name: name.to_string(),
        })?;
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(
            |source| RootfsError::Propagation {
                path: "/".into(),
                flags: name.to_string(),
                source,
            },
        )?;
    }
    Ok(())
}

/// `hostname` and `domainname` of the spec, which needs a UTS namespace for them (never change
/// the host's). The domain name is written through /proc/sys/kernel/domainname, so call it
/// before `finalize` makes /proc/sys read-only (`finalize` itself doesn't call it).
pub fn set_hostname(spec: &Spec) -> Result<(), RootfsError> {
    let hostname = spec.hostname().as_deref();
    let domainname = spec.domainname().as_deref();
    if hostname.is_none() && domainname.is_none() {
        return Ok(());
    }
    let has_uts = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Uts));
    if !has_uts {
        return Err(RootfsError::Hostname {
            name: hostname.or(domainname).unwrap_or_default().to_string(),
            reason: "hostname and domainname need a UTS namespace",
            source: None,
        });
    }
    if let Some(name) = hostname {
        nix::unistd::sethostname(name).map_err(|e| RootfsError::Hostname {
            name: name.to_string(),
            reason: "sethostname",
            source: Some(e),
        })?;
    }
    if let Some(name) = domainname {
        std::fs::write("/proc/sys/kernel/domainname", name).map_err(|e| RootfsError::Hostname {
            name: name.to_string(),
            reason: "write /proc/sys/kernel/domainname",
            source: Some(super::resolve::errno_of(&e)),
        })?;
    }
    Ok(())
}

/// Whether `key` is a sysctl name we may turn into a path below /proc/sys.
pub fn valid_sysctl_name(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('/')
        && !key.contains("..")
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains('\0')
}

/// Write `value` to `/proc/sys/<key with dots as slashes>`, never leaving /proc/sys.
pub fn write_sysctl(key: &str, value: &str) -> Result<(), RootfsError> {
    if !valid_sysctl_name(key) {
        return Err(RootfsError::SysctlName {
            key: key.to_string(),
        });
    }
    let err = |source| RootfsError::Sysctl {
        key: key.to_string(),
        value: value.to_string(),
        source,
    };
    let procsys = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let st = nix::sys::statfs::fstatfs(&procsys).map_err(err)?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(err(Errno::EXDEV));
    }
    let fd = sysmount::openat2(
        procsys.as_fd(),
        Path::new(&key.replace('.', "/")),
        OFlag::O_WRONLY,
        Mode::empty(),
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    )
    .map_err(err)?;
    std::fs::File::from(fd)
        .write_all(value.as_bytes())
        .map_err(|e| err(super::resolve::errno_of(&e)))
}

/// Make the mount at `path` read-only, only adding `MOUNT_ATTR_RDONLY` (and to every mount
/// below it with `recursive`).
fn set_readonly(root: &Root, path: &Path, recursive: bool) -> Result<(), Errno> {
    let fd = match root.lookup(path) {
        Ok(Some(fd)) => fd,
        Ok(None) => return Err(Errno::ENOENT),
        Err(RootfsError::Resolve { source, .. }) => return Err(source),
        Err(_) => return Err(Errno::EINVAL),
    };
    let mut flags = AT_EMPTY_PATH;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let a = MountAttr {
        set: attr::RDONLY,
        ..MountAttr::default()
    };
    sysmount::mount_setattr(fd.as_fd(), Path::new(""), flags, &a)
}

/// A read-only bind of `path` onto itself (its whole subtree read-only); missing paths are
/// skipped.
fn readonly_path(root: &Root, path: &Path) -> Result<(), RootfsError> {
    let err = |source| RootfsError::Readonly {
        path: path.to_path_buf(),
        source,
    };
    let Some(fd) = root.lookup(path)? else {
        return Ok(());
    };
    let tree = sysmount::open_tree(
        fd.as_fd(),
        Path::new(""),
        OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH,
    )
    .map_err(err)?;
    let a = MountAttr {
        set: attr::RDONLY,
        ..MountAttr::default()
    };
    sysmount::mount_setattr(
        tree.as_fd(),
        Path::new(""),
        AT_EMPTY_PATH | AT_RECURSIVE,
        &a,
    )
    .map_err(err)?;
    sysmount::attach_mount(tree.as_fd(), fd.as_fd()).map_err(err)
}

/// /dev/null over a file, an empty read-only tmpfs over a directory; missing paths are skipped.
fn mask_path(root: &Root, path: &Path) -> Result<(), RootfsError> {
    let err = |source| RootfsError::Mask {
        path: path.to_path_buf(),
        source,
    };
    let Some(fd) = root.lookup(path)? else {
        return Ok(());
    };
    let st = nix::sys::stat::fstat(&fd).map_err(err)?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
    let cover = if is_dir {
        sysmount::new_fs_mount("tmpfs", &["mode=0555"], attr::RDONLY).map_err(|(_, e)| err(e))?
    } else {
        let null = root.resolve(Path::new("/dev/null"))?;
        sysmount::open_tree(null.as_fd(), Path::new(""), OPEN_TREE_CLONE | AT_EMPTY_PATH)
            .map_err(err)?
    };
    sysmount::attach_mount(cover.as_fd(), fd.as_fd()).map_err(err)
}

/// tmpfs mounts (and cgroup v1's tmpfs, and /dev) asked `ro` were mounted writable so the
/// runtime could fill them: make them read-only now.
fn readonly_tmpfs(root: &Root, spec: &Spec) -> Result<(), RootfsError> {
    for m in spec.mounts().iter().flatten() {
        let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
        if !opts.flags.contains(MsFlags::MS_RDONLY) || opts.is_bind() {
            continue;
        }
        let typ = m.typ().as_deref().unwrap_or("");
        let is_dev = clean(m.destination()) == clean(Path::new("/dev"));
        if typ == "tmpfs" || typ == "cgroup" || is_dev {
            let dest: PathBuf = m.destination().clone();
            set_readonly(root, &dest, false).map_err(|source| RootfsError::Readonly {
                path: dest.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names() {
        for ok in [
            "kernel.shmmax",
            "net.ipv4.ip_forward",
            "fs.mqueue.queues_max",
        ] {
            assert!(valid_sysctl_name(ok), "{ok}");
        }
        for bad in [
            "",
            "kernel/shmmax",
            "kernel..shmmax",
            ".kernel",
            "kernel.",
            "a.b/../c",
        ] {
            assert!(!valid_sysctl_name(bad), "{bad}");
        }
        assert!(matches!(
            write_sysctl("../../etc/passwd", "x"),
            Err(RootfsError::SysctlName { .. })
        ));
    }
}
