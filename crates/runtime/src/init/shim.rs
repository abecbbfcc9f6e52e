//! TEMPORARY integration shims, used only until the owners' modules land (see the r1 report):
//! `rootfs::{prepare,pivot,finalize}` (r2) and `hooks::run` (r3). Each function has the
//! signature of docs/ARCHITECTURE.md so swapping in the real call is a one-line change.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Hook, Spec};

/// Errors of the shims.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A mount-related syscall failed.
    #[error("{what} {path}: {source}")]
    Sys {
        /// step
        what: &'static str,
        /// path involved
        path: PathBuf,
        /// cause
        #[source]
        source: nix::Error,
    },
    /// A hook failed.
    #[error("hook {path}: {msg}")]
    Hook {
        /// hook path
        path: PathBuf,
        /// what happened
        msg: String,
    },
}

fn sys<T>(what: &'static str, path: &Path, r: nix::Result<T>) -> Result<T, ShimError> {
    r.map_err(|source| ShimError::Sys {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn parse_opts(opts: &[String]) -> (MsFlags, String, bool) {
    let mut f = MsFlags::empty();
    let mut data = Vec::new();
    let mut bind = false;
    for o in opts {
        match o.as_str() {
            "ro" => f |= MsFlags::MS_RDONLY,
            "rw" | "defaults" => {}
            "nosuid" => f |= MsFlags::MS_NOSUID,
            "nodev" => f |= MsFlags::MS_NODEV,
            "noexec" => f |= MsFlags::MS_NOEXEC,
            "strictatime" => f |= MsFlags::MS_STRICTATIME,
            "relatime" => f |= MsFlags::MS_RELATIME,
            "noatime" => f |= MsFlags::MS_NOATIME,
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                f |= MsFlags::MS_REC;
            }
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {}
            other => data.push(other.to_owned()),
        }
    }
    (f, data.join(","), bind)
}

/// Shim of `rootfs::prepare`.
pub fn rootfs_prepare(spec: &Spec, rootfs: &Path, _bundle: &Path) -> Result<(), ShimError> {
    sys(
        "make / private",
        Path::new("/"),
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    sys(
        "bind rootfs",
        rootfs,
        mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
    )?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = rootfs.join(m.destination().strip_prefix("/").unwrap_or(m.destination()));
        let (flags, data, bind) = parse_opts(m.options().as_deref().unwrap_or_default());
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from("none"));
        if bind && src.is_file() {
            if let Some(p) = dest.parent() {
                let _ = std::fs::create_dir_all(p);
            }
            if !dest.exists() {
                let _ = std::fs::File::create(&dest);
            }
        } else {
            let _ = std::fs::create_dir_all(&dest);
        }
        if bind {
            sys(
                "bind mount",
                &dest,
                mount(
                    Some(&src),
                    &dest,
                    None::<&str>,
                    MsFlags::MS_BIND | (flags & MsFlags::MS_REC),
                    None::<&str>,
                ),
            )?;
            if flags.intersects(
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            ) {
                sys(
                    "remount bind",
                    &dest,
                    mount(
                        None::<&str>,
                        &dest,
                        None::<&str>,
                        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                        None::<&str>,
                    ),
                )?;
            }
        } else {
            let typ = m.typ().clone().unwrap_or_default();
            let data = if data.is_empty() {
                None
            } else {
                Some(data.as_str())
            };
            let r = mount(Some(&src), &dest, Some(typ.as_str()), flags, data);
            // cgroup v1 mounts need the per-controller layout; skip them in the shim.
            if typ == "cgroup" || typ == "cgroup2" {
                let _ = r;
                continue;
            }
            // sysfs can't be mounted in a non-new net ns: bind it like runc does.
            if r == Err(nix::errno::Errno::EPERM) && typ == "sysfs" {
                sys(
                    "bind sysfs",
                    &dest,
                    mount(
                        Some("/sys"),
                        &dest,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    ),
                )?;
                continue;
            }
            sys("mount", &dest, r)?;
        }
    }
    let dev = rootfs.join("dev");
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(d);
        if !target.exists() {
            let _ = std::fs::File::create(&target);
            sys(
                "bind device",
                &target,
                mount(
                    Some(&Path::new("/dev").join(d)),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
            )?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let _ = std::os::unix::fs::symlink(to, dev.join(link));
    }
    Ok(())
}

/// Shim of `rootfs::pivot`.
pub fn rootfs_pivot(rootfs: &Path, _no_pivot: bool) -> Result<(), ShimError> {
    sys("chdir", rootfs, nix::unistd::chdir(rootfs))?;
    sys("pivot_root", rootfs, nix::unistd::pivot_root(".", "."))?;
    sys(
        "detach old root",
        rootfs,
        umount2(".", MntFlags::MNT_DETACH),
    )?;
    sys("chdir", Path::new("/"), nix::unistd::chdir("/"))
}

/// Shim of `rootfs::finalize`.
pub fn rootfs_finalize(spec: &Spec) -> Result<(), ShimError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        let path = Path::new(p);
        if path.is_dir() {
            let _ = mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            );
        } else if path.exists() {
            let _ = mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            );
        }
    }
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        let path = Path::new(p);
        if path.exists()
            && mount(
                Some(path),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .is_ok()
        {
            let _ = mount(
                None::<&str>,
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                None::<&str>,
            );
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        sys(
            "remount root ro",
            Path::new("/"),
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            ),
        )?;
    }
    Ok(())
}

/// Shim of `hooks::run`: each hook with the state JSON on stdin; the first failure stops.
pub fn hooks_run(hooks: &[Hook], state: &oci_spec::runtime::State) -> Result<(), ShimError> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        let fail = |msg: String| ShimError::Hook {
            path: h.path().clone(),
            msg,
        };
        let args = h.args().clone().unwrap_or_default();
        let mut cmd = std::process::Command::new(h.path());
        if let Some((a0, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, a0);
            cmd.args(rest);
        }
        cmd.env_clear();
        for e in h.env().as_deref().unwrap_or_default() {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&json);
        }
        let st = child.wait().map_err(|e| fail(e.to_string()))?;
        if !st.success() {
            return Err(fail(format!("exited with {st}")));
        }
    }
    Ok(())
}

/// Shim of r3's `process::apply_process` (user, groups, capabilities, rlimits, no_new_privs,
/// umask, oom_score_adj); seccomp is not loaded by the shim.
pub fn process_apply(p: &oci_spec::runtime::Process) -> Result<(), ShimError> {
    let fail = |what: &'static str, source| ShimError::Sys {
        what,
        path: PathBuf::from("/"),
        source,
    };
    for r in p.rlimits().as_deref().unwrap_or_default() {
        let res = match r.typ() {
            oci_spec::runtime::PosixRlimitType::RlimitNofile => {
                nix::sys::resource::Resource::RLIMIT_NOFILE
            }
            oci_spec::runtime::PosixRlimitType::RlimitNproc => {
                nix::sys::resource::Resource::RLIMIT_NPROC
            }
            oci_spec::runtime::PosixRlimitType::RlimitCore => {
                nix::sys::resource::Resource::RLIMIT_CORE
            }
            _ => continue,
        };
        nix::sys::resource::setrlimit(res, r.soft(), r.hard()).map_err(|e| fail("setrlimit", e))?;
    }
    if let Some(adj) = p.oom_score_adj() {
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    let u = p.user();
    let gids: Vec<nix::unistd::Gid> = u
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    let _ = nix::unistd::setgroups(&gids);
    let _ = prctl_keepcaps();
    let g = nix::unistd::Gid::from_raw(u.gid());
    nix::unistd::setresgid(g, g, g).map_err(|e| fail("setresgid", e))?;
    let uid = nix::unistd::Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
    if let Some(m) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    if let Some(c) = p.capabilities() {
        let to_set = |s: &Option<oci_spec::runtime::Capabilities>| -> caps::CapsHashSet {
            s.as_ref()
                .map(|s| {
                    s.iter()
                        .filter_map(|c| c.to_string().parse::<caps::Capability>().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let bounding = to_set(c.bounding());
        for cap in caps::all() {
            if !bounding.contains(&cap) {
                let _ = caps::drop(None, caps::CapSet::Bounding, cap);
            }
        }
        let _ = caps::set(None, caps::CapSet::Effective, &to_set(c.effective()));
        let _ = caps::set(None, caps::CapSet::Permitted, &to_set(c.permitted()));
        let _ = caps::set(None, caps::CapSet::Inheritable, &to_set(c.inheritable()));
        let _ = caps::set(None, caps::CapSet::Ambient, &to_set(c.ambient()));
    }
    if p.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().map_err(|e| fail("no_new_privs", e))?;
    }
    Ok(())
}

fn prctl_keepcaps() -> nix::Result<()> {
    nix::sys::prctl::set_keepcaps(true)
}
