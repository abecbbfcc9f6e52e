//! TEMPORARY cgroup shim used only until `berth_cgroups::create_manager` lands (cg's crate is
//! still empty): plain cgroupfs v1 + unified directories, the calls the lifecycle verbs need.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

const ROOT: &str = "/sys/fs/cgroup";

/// Errors of the shim.
#[derive(Debug, thiserror::Error)]
pub enum CgroupShimError {
    /// A cgroupfs file operation failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// file or dir
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupShimError + '_ {
    move |source| CgroupShimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cgroup of one container across every mounted hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupShim {
    dirs: Vec<(String, PathBuf)>,
}

/// Resolves the relative cgroup path from `linux.cgroupsPath` (systemd `slice:prefix:name` form
/// mapped to `slice/prefix-name.scope`), default `berth-runtime/<id>`.
pub fn relative_path(path: Option<&Path>, id: &str) -> PathBuf {
    match path.and_then(Path::to_str) {
        Some(p) if p.split(':').count() == 3 && !p.contains('/') => {
            let parts: Vec<&str> = p.split(':').collect();
            let slice = if parts[0].is_empty() {
                "system.slice"
            } else {
                parts[0]
            };
            PathBuf::from(slice).join(format!("{}-{}.scope", parts[1], parts[2]))
        }
        Some(p) if !p.is_empty() => PathBuf::from(p.trim_start_matches('/')),
        _ => PathBuf::from("berth-runtime").join(id),
    }
}

impl CgroupShim {
    /// Names the container's cgroup in every hierarchy (nothing is created yet).
    pub fn new(path: Option<&Path>, id: &str) -> CgroupShim {
        let rel = relative_path(path, id);
        let mut dirs = Vec::new();
        if let Ok(rd) = std::fs::read_dir(ROOT) {
            for e in rd.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_symlink() || !ft.is_dir() {
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                dirs.push((name, e.path().join(&rel)));
            }
        }
        dirs.sort();
        CgroupShim { dirs }
    }

    fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(n, _)| n == ctrl || n.split(',').any(|c| c == ctrl))
            .map(|(_, d)| d.as_path())
    }

    /// mkdir -p in every hierarchy (cpuset gets its parent's cpus/mems).
    pub fn create(&self) -> Result<(), CgroupShimError> {
        for (name, d) in &self.dirs {
            std::fs::create_dir_all(d).map_err(io(d))?;
            if name.split(',').any(|c| c == "cpuset") {
                let mut chain = Vec::new();
                let mut cur = d.clone();
                while cur.as_path() != Path::new(ROOT).join(name) {
                    chain.push(cur.clone());
                    if !cur.pop() {
                        break;
                    }
                }
                for dir in chain.iter().rev() {
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let cur = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                        if cur.trim().is_empty() {
                            if let Some(parent) = dir.parent() {
                                let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                                let _ = std::fs::write(dir.join(f), v.trim());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupShimError> {
        let s = pid.to_string();
        for (_, d) in &self.dirs {
            let f = d.join("cgroup.procs");
            std::fs::write(&f, &s).map_err(io(&f))?;
        }
        Ok(())
    }

    /// Applies the memory/pids/cpu limits of `res`.
    pub fn apply(&self, res: &LinuxResources) -> Result<(), CgroupShimError> {
        let mut writes: Vec<(&str, &str, String)> = Vec::new();
        if let Some(m) = res.memory() {
            if let Some(l) = m.limit() {
                writes.push(("memory", "memory.limit_in_bytes", l.to_string()));
            }
            if let Some(s) = m.swap() {
                writes.push(("memory", "memory.memsw.limit_in_bytes", s.to_string()));
            }
            if let Some(r) = m.reservation() {
                writes.push(("memory", "memory.soft_limit_in_bytes", r.to_string()));
            }
        }
        if let Some(p) = res.pids() {
            let l = p.limit();
            writes.push((
                "pids",
                "pids.max",
                if l <= 0 { "max".into() } else { l.to_string() },
            ));
        }
        if let Some(c) = res.cpu() {
            if let Some(s) = c.shares() {
                writes.push(("cpu", "cpu.shares", s.to_string()));
            }
            if let Some(p) = c.period() {
                writes.push(("cpu", "cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = c.quota() {
                writes.push(("cpu", "cpu.cfs_quota_us", q.to_string()));
            }
            if let Some(s) = c.cpus() {
                writes.push(("cpuset", "cpuset.cpus", s.clone()));
            }
            if let Some(s) = c.mems() {
                writes.push(("cpuset", "cpuset.mems", s.clone()));
            }
        }
        if let Some(b) = res.block_io() {
            if let Some(w) = b.weight() {
                writes.push(("blkio", "blkio.weight", w.to_string()));
            }
        }
        for (ctrl, file, val) in writes {
            if let Some(d) = self.dir(ctrl) {
                let f = d.join(file);
                std::fs::write(&f, val).map_err(io(&f))?;
            }
        }
        Ok(())
    }

    /// Pids in the cgroup (from the pids or freezer hierarchy).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupShimError> {
        let d = self
            .dir("pids")
            .or_else(|| self.dir("freezer"))
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()));
        let Some(d) = d else { return Ok(Vec::new()) };
        let f = d.join("cgroup.procs");
        match std::fs::read_to_string(&f) {
            Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&f)(e)),
        }
    }

    /// Freezes (true) or thaws (false) through the v1 freezer, waiting until it settles.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupShimError> {
        let Some(d) = self.dir("freezer") else {
            return Ok(());
        };
        let f = d.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            std::fs::write(&f, want).map_err(io(&f))?;
            if std::fs::read_to_string(&f).map_err(io(&f))?.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    /// Statistics in runc's `events --stats` shape.
    pub fn stats(&self) -> serde_json::Value {
        let read = |ctrl: &str, f: &str| -> u64 {
            self.dir(ctrl)
                .and_then(|d| std::fs::read_to_string(d.join(f)).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let percpu: Vec<u64> = self
            .dir("cpuacct")
            .and_then(|d| std::fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({
            "cpu": {"usage": {"total": read("cpuacct", "cpuacct.usage"), "percpu_usage": percpu,
                               "kernel": read("cpuacct", "cpuacct.usage_sys"), "user": read("cpuacct", "cpuacct.usage_user")},
                    "throttling": {}},
            "memory": {"usage": {"limit": read("memory", "memory.limit_in_bytes"), "usage": read("memory", "memory.usage_in_bytes"),
                                 "max": read("memory", "memory.max_usage_in_bytes"), "failcnt": read("memory", "memory.failcnt")}},
            "pids": {"current": read("pids", "pids.current"), "limit": read("pids", "pids.max")},
            "blkio": {},
            "hugetlb": {},
        })
    }

    /// Removes the directories (retrying briefly while tasks exit).
    pub fn destroy(&self) -> Result<(), CgroupShimError> {
        for (_, d) in &self.dirs {
            let mut last = Ok(());
            for _ in 0..100 {
                last = match std::fs::remove_dir(d) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    r => r,
                };
                if last.is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            last.map_err(io(d))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_style_path_maps_to_scope() {
        assert_eq!(
            relative_path(Some(Path::new("machine.slice:libpod:abc")), "x"),
            PathBuf::from("machine.slice/libpod-abc.scope")
        );
        assert_eq!(
            relative_path(Some(Path::new("/a/b")), "x"),
            PathBuf::from("a/b")
        );
        assert_eq!(relative_path(None, "x"), PathBuf::from("berth-runtime/x"));
    }
}
