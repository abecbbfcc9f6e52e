//! Where the cgroup hierarchies are and where a container's cgroup goes in each of them.
//!
//! Detection (done once per `create_manager`): `statfs` on the root (`/sys/fs/cgroup`): a cgroup2
//! filesystem means the unified mode; otherwise the v1 hierarchies are the `cgroup` mounts under
//! the root listed in `/proc/self/mountinfo`, and a cgroup2 mount at `<root>/unified` makes it
//! hybrid. Tests build a [`Layout`] over fixture directories instead.
//!
//! cgroupsPath rules (as runc and crun): an absolute path is taken relative to each hierarchy's
//! mount; a relative path is taken relative to the runtime's own cgroup in that hierarchy (from
//! `/proc/self/cgroup`); no path means [`default_path`] `/berth/<id>`. `..` components are refused.

use std::path::{Component, Path, PathBuf};

use crate::error::{CgroupError, Result};

/// Which cgroup setup the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 hierarchies for the controllers, plus a controller-less cgroup2 at `<root>/unified`.
    Hybrid,
    /// One cgroup2 hierarchy at the root.
    Unified,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Controllers bound to it (`cpu`, `cpuacct`, `name=systemd`, ...).
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// The cgroup seen at the mount point (mountinfo field 4; `/` unless in a cgroup namespace).
    pub mount_root: PathBuf,
}

impl Hierarchy {
    /// Whether `controller` is bound to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup hierarchies of the machine (or of a fixture).
#[derive(Debug, Clone)]
pub struct Layout {
    pub mode: Mode,
    /// v1 hierarchies (empty in unified mode).
    pub v1: Vec<Hierarchy>,
    /// The cgroup2 mount: the root in unified mode, `<root>/unified` in hybrid mode.
    pub unified: Option<PathBuf>,
    /// Where to read the runtime's own cgroups from, for relative cgroupsPaths.
    pub proc_self_cgroup: PathBuf,
}

/// The default cgroup path of a container when the config has none: `/berth/<id>`.
pub fn default_path(container_id: &str) -> PathBuf {
    Path::new("/berth").join(container_id)
}

impl Layout {
    /// Detects the layout of `/sys/fs/cgroup`.
    pub fn detect() -> Result<Layout> {
        Self::detect_at(
            Path::new("/sys/fs/cgroup"),
            Path::new("/proc/self/mountinfo"),
        )
    }

    /// Detects the layout of the cgroup root `root`, reading v1 mounts from `mountinfo`.
    pub fn detect_at(root: &Path, mountinfo: &Path) -> Result<Layout> {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
        let detect_err = |path: &Path, e: nix::errno::Errno| CgroupError::Detect {
            path: path.to_path_buf(),
            source: e.into(),
        };
        let fs = statfs(root).map_err(|e| detect_err(root, e))?;
        if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
            return Ok(Layout {
                mode: Mode::Unified,
                v1: Vec::new(),
                unified: Some(root.to_path_buf()),
                proc_self_cgroup: PathBuf::from("/proc/self/cgroup"),
            });
        }
        let text = std::fs::read_to_string(mountinfo).map_err(|source| CgroupError::Detect {
            path: mountinfo.to_path_buf(),
            source,
        })?;
        let v1 = parse_mountinfo_v1(&text, root);
        let unified_dir = root.join("unified");
        let unified = match statfs(&unified_dir) {
            Ok(fs) if fs.filesystem_type() == CGROUP2_SUPER_MAGIC => Some(unified_dir),
            _ => None,
        };
        if v1.is_empty() {
            return Err(CgroupError::NoCgroupFs {
                path: root.to_path_buf(),
            });
        }
        Ok(Layout {
            mode: if unified.is_some() {
                Mode::Hybrid
            } else {
                Mode::Legacy
            },
            v1,
            unified,
            proc_self_cgroup: PathBuf::from("/proc/self/cgroup"),
        })
    }

    /// A v1 (or, with `unified`, hybrid) layout over fixture directories: each subdirectory of
    /// `root` is a hierarchy whose controllers are its name split at `,` (`cpu,cpuacct`).
    pub fn v1_fixture(root: &Path, unified: Option<PathBuf>) -> Result<Layout> {
        let entries = std::fs::read_dir(root).map_err(|source| CgroupError::Detect {
            path: root.to_path_buf(),
            source,
        })?;
        let mut v1 = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !e.path().is_dir() || Some(e.path()) == unified {
                continue;
            }
            v1.push(Hierarchy {
                controllers: name.split(',').map(str::to_string).collect(),
                mount: e.path(),
                mount_root: PathBuf::from("/"),
            });
        }
        v1.sort_by(|a, b| a.mount.cmp(&b.mount));
        Ok(Layout {
            mode: if unified.is_some() {
                Mode::Hybrid
            } else {
                Mode::Legacy
            },
            v1,
            unified,
            proc_self_cgroup: PathBuf::from("/proc/self/cgroup"),
        })
    }

    /// A unified layout rooted at `root` (a real cgroup2 mount or a fixture directory).
    pub fn unified_at(root: &Path) -> Layout {
        Layout {
            mode: Mode::Unified,
            v1: Vec::new(),
            unified: Some(root.to_path_buf()),
            proc_self_cgroup: PathBuf::from("/proc/self/cgroup"),
        }
    }
}

/// v1 controller-less mount options that are not controller names.
const V1_NON_CONTROLLER_OPTS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// The `cgroup` (v1) mounts directly under `root`, one per hierarchy.
pub(crate) fn parse_mountinfo_v1(text: &str, root: &Path) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or("");
        let pre: Vec<&str> = pre.split(' ').collect();
        let (Some(mount_root), Some(mount)) = (pre.get(3), pre.get(4)) else {
            continue;
        };
        let mount = PathBuf::from(unescape_mountinfo(mount));
        if mount.parent() != Some(root) {
            continue;
        }
        let controllers: Vec<String> = super_opts
            .split(',')
            .filter(|o| !V1_NON_CONTROLLER_OPTS.contains(o) && !o.starts_with("release_agent="))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        out.push(Hierarchy {
            controllers,
            mount,
            mount_root: PathBuf::from(unescape_mountinfo(mount_root)),
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Maps systemd's `slice:prefix:name` cgroupsPath to the cgroupfs path systemd would create:
/// `/<slice expanded>/<prefix>-<name>.scope` (`a-b.slice` expands to `a.slice/a-b.slice`; an
/// empty slice is `system.slice`; a name ending in `.slice` is a slice itself). No path means
/// `system.slice:berth:<id>`.
pub fn systemd_path(cgroups_path: Option<&Path>, container_id: &str) -> Result<PathBuf> {
    let given = cgroups_path
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("system.slice:berth:{container_id}"));
    let bad = |reason| CgroupError::InvalidPath {
        path: given.clone(),
        reason,
    };
    let parts: Vec<&str> = given.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(bad("systemd cgroupsPath must be slice:prefix:name"));
    };
    if given.contains('/') {
        return Err(bad("systemd cgroupsPath must be slice:prefix:name"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad("the slice must end in .slice"));
    };
    let mut path = PathBuf::from("/");
    if slice != "-.slice" {
        let mut acc = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return Err(bad("the slice name has an empty component"));
            }
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            path.push(format!("{acc}.slice"));
        }
    }
    if name.ends_with(".slice") {
        path.push(name);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// A container's cgroup path, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CgroupPath {
    /// Relative to each hierarchy's mount.
    Absolute(PathBuf),
    /// Relative to the runtime's own cgroup in each hierarchy.
    Relative(PathBuf),
}

impl CgroupPath {
    pub(crate) fn new(cgroups_path: Option<&Path>, container_id: &str) -> Result<CgroupPath> {
        let p = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => default_path(container_id),
        };
        let shown = || p.display().to_string();
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(CgroupError::InvalidPath {
                path: shown(),
                reason: "must not contain ..",
            });
        }
        let rel: PathBuf = p
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            return Err(CgroupError::InvalidPath {
                path: shown(),
                reason: "names the root cgroup",
            });
        }
        Ok(if p.is_absolute() {
            CgroupPath::Absolute(rel)
        } else {
            CgroupPath::Relative(rel)
        })
    }

    /// The path as given (absolute paths with a leading `/`).
    pub(crate) fn display_path(&self) -> PathBuf {
        match self {
            CgroupPath::Absolute(p) => Path::new("/").join(p),
            CgroupPath::Relative(p) => p.clone(),
        }
    }

    /// The directory in a hierarchy mounted at `mount` whose mount root is `mount_root`;
    /// `own` is the runtime's cgroup in that hierarchy (needed for relative paths).
    pub(crate) fn dir_in(&self, mount: &Path, mount_root: &Path, own: Option<&Path>) -> PathBuf {
        match self {
            CgroupPath::Absolute(p) => mount.join(p),
            CgroupPath::Relative(p) => {
                let own = own.unwrap_or(Path::new("/"));
                let own = own.strip_prefix(mount_root).unwrap_or(own);
                let own: PathBuf = own
                    .components()
                    .filter(|c| matches!(c, Component::Normal(_)))
                    .collect();
                mount.join(own).join(p)
            }
        }
    }

    pub(crate) fn is_relative(&self) -> bool {
        matches!(self, CgroupPath::Relative(_))
    }
}

/// The runtime's own cgroups, from `/proc/self/cgroup`: `(controllers, path)` per line; the
/// unified line has no controllers.
pub(crate) fn read_own_cgroups(path: &Path) -> Result<Vec<(Vec<String>, PathBuf)>> {
    let text = std::fs::read_to_string(path).map_err(|source| CgroupError::Detect {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_proc_cgroup(&text))
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            Some((ctrls, PathBuf::from(path)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:40 /sub /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
51 23 0:32 / /mnt/other rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn mountinfo_lists_v1_hierarchies_under_root() {
        let h = parse_mountinfo_v1(MOUNTINFO, Path::new("/sys/fs/cgroup"));
        let names: Vec<String> = h.iter().map(|h| h.controllers.join(",")).collect();
        assert_eq!(
            names,
            [
                "cpu",
                "cpuacct",
                "memory",
                "name=systemd",
                "net_cls,net_prio"
            ]
        );
        assert_eq!(h[4].mount_root, Path::new("/sub"));
        assert!(h[4].has("net_prio"));
    }

    #[test]
    fn cgroups_path_rules() {
        assert_eq!(
            CgroupPath::new(None, "abc").unwrap(),
            CgroupPath::Absolute("berth/abc".into())
        );
        assert_eq!(
            CgroupPath::new(Some(Path::new("/a/b")), "x").unwrap(),
            CgroupPath::Absolute("a/b".into())
        );
        let rel = CgroupPath::new(Some(Path::new("a/b")), "x").unwrap();
        assert_eq!(rel, CgroupPath::Relative("a/b".into()));
        assert!(CgroupPath::new(Some(Path::new("/a/../b")), "x").is_err());
        assert!(CgroupPath::new(Some(Path::new("/")), "x").is_err());
        assert_eq!(
            rel.dir_in(
                Path::new("/sys/fs/cgroup/memory"),
                Path::new("/"),
                Some(Path::new("/user/me"))
            ),
            Path::new("/sys/fs/cgroup/memory/user/me/a/b")
        );
        // In a cgroup namespace the mount root is stripped from our own path.
        assert_eq!(
            rel.dir_in(Path::new("/m"), Path::new("/ns"), Some(Path::new("/ns/me"))),
            Path::new("/m/me/a/b")
        );
        assert_eq!(
            CgroupPath::Absolute("a".into()).dir_in(Path::new("/m"), Path::new("/ns"), None),
            Path::new("/m/a")
        );
    }

    #[test]
    fn systemd_paths() {
        let p = |s: &str| systemd_path(Some(Path::new(s)), "id");
        assert_eq!(
            p("system.slice:docker:abc").unwrap(),
            Path::new("/system.slice/docker-abc.scope")
        );
        assert_eq!(
            p(":berth:x").unwrap(),
            Path::new("/system.slice/berth-x.scope")
        );
        assert_eq!(
            p("user-1000.slice:crun:c").unwrap(),
            Path::new("/user.slice/user-1000.slice/crun-c.scope")
        );
        assert_eq!(
            p("machine.slice::m.slice").unwrap(),
            Path::new("/machine.slice/m.slice")
        );
        assert_eq!(
            systemd_path(None, "c9").unwrap(),
            Path::new("/system.slice/berth-c9.scope")
        );
        assert!(p("/a/b").is_err());
        assert!(p("nope:a:b").is_err());
        assert!(p("a--b.slice:x:y").is_err());
    }

    #[test]
    fn proc_self_cgroup_lines() {
        let v = parse_proc_cgroup("4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(v[0].0, ["memory"]);
        assert_eq!(v[0].1, Path::new("/process_api/x"));
        assert_eq!(v[1].0, ["cpu", "cpuacct"]);
        assert!(v[2].0.is_empty());
    }

    #[test]
    fn detects_this_machine() {
        let Ok(l) = Layout::detect() else {
            println!("SKIP: no cgroup filesystem at /sys/fs/cgroup");
            return;
        };
        match l.mode {
            Mode::Unified => assert!(l.v1.is_empty()),
            Mode::Hybrid | Mode::Legacy => assert!(!l.v1.is_empty()),
        }
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
