//! `type: cgroup` mounts, the way runc makes them.
//!
//! - cgroup v2 (`/sys/fs/cgroup` is cgroup2, or the mount asks for `cgroup2`): with a cgroup
//!   namespace a fresh cgroup2 mount (it shows the namespace root); without one (or when the
//!   kernel refuses) a bind of the init's own cgroup directory.
//! - cgroup v1 / hybrid: a tmpfs (mode 755) at the destination, and in it one entry per
//!   hierarchy: a fresh `cgroup` mount with a cgroup namespace, else a bind of the init's cgroup
//!   directory in that hierarchy; co-mounted controllers get symlinks (`cpu -> cpu,cpuacct`), and
//!   a hybrid host's cgroup2 hierarchy appears as `unified`. The init is already in its cgroup,
//!   so `/proc/self/cgroup` names the directories to show.
//!
//! The tmpfs is left read-write here even for `ro`; `finalize` remounts it read-only.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Mount;

use super::mountinfo::MountInfo;
use super::mounts::{after_mount, bind_path, followup, mount_error, mount_on};
use super::options::MountOptions;
use super::resolve::Kind;
use super::{Ctx, RootfsError};

/// One line of `/proc/self/cgroup`: controllers (empty for v2) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// `cpu,cpuacct`, `name=systemd`, or empty for the cgroup2 hierarchy.
    pub controllers: String,
    /// Path of the cgroup inside its hierarchy.
    pub path: PathBuf,
}

/// Parse the text of `/proc/<pid>/cgroup`.
pub fn parse_memberships(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let controllers = it.next()?.to_string();
            let path = PathBuf::from(it.next()?);
            Some(Membership { controllers, path })
        })
        .collect()
}

fn read(path: &str) -> Result<String, RootfsError> {
    std::fs::read_to_string(path).map_err(|source| RootfsError::Read {
        path: path.into(),
        source,
    })
}

/// Where the cgroup at `path` of a hierarchy is visible through the mount `mi`.
fn host_dir(mi: &MountInfo, path: &Path) -> PathBuf {
    let rel = path
        .strip_prefix(&mi.root)
        .unwrap_or_else(|_| Path::new(""));
    if rel.as_os_str().is_empty() {
        mi.mount_point.clone()
    } else {
        mi.mount_point.join(rel)
    }
}

/// The v1 hierarchy mount holding every controller of `controllers`.
fn find_v1<'a>(infos: &'a [MountInfo], controllers: &str) -> Option<&'a MountInfo> {
    infos.iter().find(|i| {
        i.fstype == "cgroup"
            && controllers
                .split(',')
                .all(|c| i.super_options.split(',').any(|o| o == c))
    })
}

pub(super) fn mount_cgroup(
    ctx: &Ctx<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let memberships = parse_memberships(&read("/proc/self/cgroup")?);
    let infos = &ctx.mountinfo;
    if unified || m.typ().as_deref() == Some("cgroup2") {
        mount_v2(ctx, m, dest, opts, &memberships, infos)
    } else {
        mount_v1(ctx, m, dest, opts, &memberships, infos)
    }
}

/// The cgroup2 hierarchy at `dest`: a new mount in a cgroup namespace, else a bind.
fn v2_at(
    ctx: &Ctx<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    memberships: &[Membership],
    infos: &[MountInfo],
) -> Result<(), RootfsError> {
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    if ctx.cgroupns {
        let data = opts.data_string();
        match mount_on(
            Some(Path::new("cgroup2")),
            target.as_fd(),
            Some("cgroup2"),
            opts.flags,
            data.as_deref(),
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EPERM | Errno::EBUSY) => {}
            Err(e) => return Err(mount_error("cgroup2", dest, opts, m, e)),
        }
    }
    let cgroup_err = |reason: &str| RootfsError::Cgroup {
        dest: dest.to_path_buf(),
        reason: reason.to_string(),
    };
    let member = memberships
        .iter()
        .find(|x| x.controllers.is_empty())
        .ok_or_else(|| cgroup_err("the process is in no cgroup2 hierarchy"))?;
    let mi = infos
        .iter()
        .find(|i| i.fstype == "cgroup2")
        .ok_or_else(|| cgroup_err("no cgroup2 filesystem is mounted"))?;
    let src = host_dir(mi, &member.path);
    bind_path(
        ctx,
        &src,
        dest,
        target.as_fd(),
        opts.flags | MsFlags::MS_BIND | MsFlags::MS_REC,
    )?;
    Ok(())
}

fn mount_v2(
    ctx: &Ctx<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    memberships: &[Membership],
    infos: &[MountInfo],
) -> Result<(), RootfsError> {
    v2_at(ctx, m, dest, opts, memberships, infos)?;
    followup(ctx, dest, opts, m)
}

fn mount_v1(
    ctx: &Ctx<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    memberships: &[Membership],
    infos: &[MountInfo],
) -> Result<(), RootfsError> {
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_on(
        Some(Path::new("tmpfs")),
        target.as_fd(),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .map_err(|source| RootfsError::Mount {
        fstype: "tmpfs".into(),
        dest: dest.to_path_buf(),
        options: "mode=755 (for cgroup v1)".into(),
        source,
    })?;
    let tmpfs = ctx.root.resolve(dest)?;
    // Without ro: the tmpfs stays writable until finalize, the hierarchies are ro right away.
    let flags = opts.flags;
    for member in memberships.iter().filter(|x| !x.controllers.is_empty()) {
        let Some(mi) = find_v1(infos, &member.controllers) else {
            continue; // a controller the host doesn't mount
        };
        let Some(name) = mi.mount_point.file_name() else {
            continue;
        };
        let sub = dest.join(name);
        let subfd = ctx.root.ensure(&sub, Kind::Dir)?;
        if ctx.cgroupns {
            mount_on(
                Some(Path::new("cgroup")),
                subfd.as_fd(),
                Some("cgroup"),
                flags,
                Some(member.controllers.as_str()),
            )
            .map_err(|source| RootfsError::Mount {
                fstype: "cgroup".into(),
                dest: sub.clone(),
                options: member.controllers.clone(),
                source,
            })?;
        } else {
            let src = host_dir(mi, &member.path);
            bind_path(
                ctx,
                &src,
                &sub,
                subfd.as_fd(),
                flags | MsFlags::MS_BIND | MsFlags::MS_REC,
            )?;
        }
        let name = name.to_string_lossy();
        if name.contains(',') {
            for alias in name.split(',') {
                match nix::unistd::symlinkat(name.as_ref(), tmpfs.as_fd(), alias) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(source) => {
                        return Err(RootfsError::Symlink {
                            link: dest.join(alias),
                            target: PathBuf::from(name.as_ref()),
                            source,
                        })
                    }
                }
            }
        }
    }
    // A hybrid host also has the cgroup2 hierarchy (systemd's `unified`).
    if let Some(mi) = infos.iter().find(|i| i.fstype == "cgroup2") {
        if memberships.iter().any(|x| x.controllers.is_empty()) {
            let name = mi
                .mount_point
                .file_name()
                .map_or_else(|| "unified".into(), |n| n.to_os_string());
            let sub = dest.join(name);
            let mut v2_opts = opts.clone();
            v2_opts.propagation.clear();
            v2_opts.rec_set = 0;
            v2_opts.rec_clear = 0;
            v2_at(ctx, m, &sub, &v2_opts, memberships, infos)?;
        }
    }
    after_mount(dest, tmpfs.as_fd(), opts, m)
}

#[cfg(test)]
mod tests {
    use super::super::mountinfo;
    use super::*;

    #[test]
    fn memberships_and_host_dirs() {
        let ms = parse_memberships(
            "12:cpu,cpuacct:/user.slice/x\n1:name=systemd:/user.slice/x\n0::/user.slice/x\n",
        );
        assert_eq!(ms.len(), 3);
        assert_eq!(ms[0].controllers, "cpu,cpuacct");
        assert!(ms[2].controllers.is_empty());
        let infos = mountinfo::parse(
            "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n\
             31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
             32 25 0:28 /user.slice /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        let cpu = find_v1(&infos, "cpu,cpuacct").expect("cpu");
        assert_eq!(
            host_dir(cpu, &ms[0].path),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/user.slice/x")
        );
        let sd = find_v1(&infos, "name=systemd").expect("systemd");
        assert_eq!(sd.mount_point, PathBuf::from("/sys/fs/cgroup/systemd"));
        let mem = find_v1(&infos, "memory").expect("memory");
        assert_eq!(
            host_dir(mem, Path::new("/user.slice/x")),
            PathBuf::from("/sys/fs/cgroup/memory/x")
        );
        assert!(find_v1(&infos, "pids").is_none());
    }
}
