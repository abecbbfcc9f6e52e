//! The v1 (and hybrid) manager: one directory per mounted v1 hierarchy, plus, on hybrid
//! machines, one in the controller-less cgroup2 hierarchy (joined like runc does; it provides
//! `cgroup.kill` and a freezer when the v1 freezer is not mounted). Controllers live in their
//! own files as pure `apply(resources, dir)` functions.

pub mod blkio;
pub mod cpu;
pub mod cpuacct;
pub mod cpuset;
pub mod devices;
pub mod freezer;
pub mod hugetlb;
pub mod memory;
pub mod network;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::error::{CgroupError, Result};
use crate::layout::{read_own_cgroups, CgroupPath, Layout};
use crate::stats::Stats;
use crate::{dir, Entered, FreezerState, Manager};

/// The container's directory in one v1 hierarchy.
#[derive(Debug, Clone)]
struct HierarchyDir {
    controllers: Vec<String>,
    mount: PathBuf,
    mount_root: PathBuf,
    dir: PathBuf,
}

fn same_set(a: &[String], b: &[String]) -> bool {
    !a.is_empty() && a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// A container cgroup on a v1 or hybrid machine.
#[derive(Debug)]
pub struct V1Manager {
    path: PathBuf,
    dirs: Vec<HierarchyDir>,
    /// Hybrid mode: (cgroup2 mount, the container's directory there).
    unified: Option<(PathBuf, PathBuf)>,
    created: Mutex<Vec<PathBuf>>,
}

impl V1Manager {
    /// The manager for `path` in the v1 hierarchies of `layout`.
    pub(crate) fn new(layout: &Layout, path: &CgroupPath) -> Result<Self> {
        let own = if path.is_relative() {
            read_own_cgroups(&layout.proc_self_cgroup)?
        } else {
            Vec::new()
        };
        let own_for = |ctrls: &[String]| -> Option<&Path> {
            own.iter()
                .find(|(c, _)| {
                    if ctrls.is_empty() {
                        c.is_empty()
                    } else {
                        same_set(c, ctrls)
                    }
                })
                .map(|(_, p)| p.as_path())
        };
        let dirs = layout
            .v1
            .iter()
            .map(|h| HierarchyDir {
                controllers: h.controllers.clone(),
                mount: h.mount.clone(),
                mount_root: h.mount_root.clone(),
                dir: path.dir_in(&h.mount, &h.mount_root, own_for(&h.controllers)),
            })
            .collect();
        let unified = layout.unified.as_ref().map(|m| {
            let d = path.dir_in(m, Path::new("/"), own_for(&[]));
            (m.clone(), d)
        });
        Ok(V1Manager {
            path: path.display_path(),
            dirs,
            unified,
            created: Mutex::new(Vec::new()),
        })
    }

    /// The directory of the hierarchy `controller` is bound to, if it is mounted.
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.dir.as_path())
    }

    fn need(&self, controller: &'static str, needed_for: &'static str) -> Result<&Path> {
        self.dir_for(controller)
            .ok_or(CgroupError::ControllerMissing {
                controller,
                needed_for,
            })
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Option<&Path> {
        ["pids", "freezer", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.dir_for(c))
            .or(self.unified.as_ref().map(|(_, d)| d.as_path()))
            .or(self.dirs.first().map(|d| d.dir.as_path()))
    }

    fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_ref().map(|(_, d)| d.as_path())
    }
}

impl Manager for V1Manager {
    fn path(&self) -> &Path {
        &self.path
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.iter().map(|d| d.dir.clone()).collect();
        if let Some(u) = self.unified_dir() {
            v.push(u.to_path_buf());
        }
        v
    }

    fn create(&self) -> Result<()> {
        let mut created = Vec::new();
        let res = (|| {
            for d in &self.dirs {
                dir::mkdir_p(&d.mount, &d.dir, &mut created)?;
                if d.controllers.iter().any(|c| c == "cpuset") {
                    // Every level below the mount needs cpus/mems before a task can join.
                    let rel = d.dir.strip_prefix(&d.mount).unwrap_or(&d.dir);
                    let mut cur = d.mount.clone();
                    for c in rel.components() {
                        cur.push(c);
                        cpuset::init_from_parent(&cur)?;
                    }
                }
            }
            if let Some((mount, d)) = &self.unified {
                dir::mkdir_p(mount, d, &mut created)?;
            }
            Ok(())
        })();
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(created);
        res
    }

    fn add_task(&self, pid: Pid) -> Result<()> {
        let pid = pid.as_raw().to_string();
        for d in &self.dirs {
            dir::add_pid(&d.dir, &pid)?;
        }
        if let Some(u) = self.unified_dir() {
            dir::add_pid(u, &pid)?;
        }
        Ok(())
    }

    fn enter(&self) -> Result<Entered> {
        if let Some(d) = self.dir_for("freezer") {
            if freezer::state(d)? == FreezerState::Frozen {
                return Err(CgroupError::Frozen {
                    path: d.to_path_buf(),
                });
            }
        }
        let own = read_own_cgroups(Path::new("/proc/thread-self/cgroup"))?;
        let mut to = Vec::with_capacity(self.dirs.len());
        let mut from = Vec::with_capacity(self.dirs.len());
        for d in &self.dirs {
            let Some((_, p)) = own.iter().find(|(c, _)| same_set(c, &d.controllers)) else {
                continue;
            };
            let rel = p.strip_prefix(&d.mount_root).unwrap_or(p);
            let rel = rel.strip_prefix("/").unwrap_or(rel);
            from.push(d.mount.join(rel));
            to.push(d.dir.clone());
        }
        Entered::enter(&to, from, self.unified_dir())
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory().as_ref().filter(|m| memory::is_requested(m)) {
            memory::apply(m, self.need("memory", "linux.resources.memory")?)?;
        }
        if let Some(c) = r.cpu() {
            if cpu::is_requested(c) {
                cpu::apply(c, self.need("cpu", "linux.resources.cpu")?)?;
            }
            if cpuset::is_requested(c) {
                cpuset::apply(c, self.need("cpuset", "linux.resources.cpu.cpus/mems")?)?;
            }
        }
        if let Some(p) = r.pids() {
            crate::pids::apply(p, self.need("pids", "linux.resources.pids")?)?;
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| blkio::is_requested(b)) {
            blkio::apply(b, self.need("blkio", "linux.resources.blockIO")?)?;
        }
        if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            hugetlb::apply(h, self.need("hugetlb", "linux.resources.hugepageLimits")?)?;
        }
        if let Some(n) = r.network() {
            if network::wants_classid(n) {
                network::apply_classid(
                    n,
                    self.need("net_cls", "linux.resources.network.classID")?,
                )?;
            }
            if network::wants_priorities(n) {
                network::apply_priorities(
                    n,
                    self.need("net_prio", "linux.resources.network.priorities")?,
                )?;
            }
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|r| crate::rdma::is_requested(r)) {
            crate::rdma::apply(rdma, self.need("rdma", "linux.resources.rdma")?)?;
        }
        if let Some(devs) = r.devices() {
            let rules = crate::devices::effective_rules(devs)?;
            devices::apply(&rules, self.need("devices", "linux.resources.devices")?)?;
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            let mut keys: Vec<&String> = u.keys().collect();
            keys.sort();
            return Err(CgroupError::Unsupported {
                setting: format!(
                    "linux.resources.unified ({})",
                    keys.first().map_or("", |k| k.as_str())
                ),
                version: "v1",
            });
        }
        Ok(())
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        if let Some(d) = self.dir_for("freezer") {
            return freezer::set(d, state);
        }
        if let Some(u) = self.unified_dir() {
            return crate::v2::freezer::set(u, state);
        }
        Err(CgroupError::ControllerMissing {
            controller: "freezer",
            needed_for: "pause/resume",
        })
    }

    fn state(&self) -> Result<FreezerState> {
        if let Some(d) = self.dir_for("freezer") {
            return freezer::state(d);
        }
        if let Some(u) = self.unified_dir() {
            return crate::v2::freezer::state(u);
        }
        Err(CgroupError::ControllerMissing {
            controller: "freezer",
            needed_for: "state",
        })
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir_for("cpuacct") {
            s.cpu.usage = cpuacct::usage(d)?;
        }
        if let Some(d) = self.dir_for("cpu") {
            s.cpu.throttling = cpu::throttling(d)?;
        }
        if let Some(d) = self.dir_for("cpuset") {
            s.cpuset = cpuset::stats(d)?;
        }
        if let Some(d) = self.dir_for("memory") {
            s.memory = memory::stats(d)?;
        }
        if let Some(d) = self.dir_for("pids") {
            s.pids = crate::pids::stats(d)?;
        }
        if let Some(d) = self.dir_for("blkio") {
            s.blkio = blkio::stats(d)?;
        }
        if let Some(d) = self.dir_for("hugetlb") {
            s.hugetlb = hugetlb::stats(d)?;
        }
        Ok(s)
    }

    fn oom_kills(&self) -> Result<u64> {
        let d = self.need("memory", "the OOM kill count")?;
        Ok(crate::file::read_flat_keyed(d, "memory.oom_control")?
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    fn pids(&self) -> Result<Vec<Pid>> {
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            dir::procs_recursive(d, &mut out)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL {
            if let Some(u) = self
                .unified_dir()
                .filter(|u| crate::file::exists(u, "cgroup.kill"))
            {
                crate::file::write(u, "cgroup.kill", "1")?;
                // Processes that joined only the v1 hierarchies (added without the cgroup2
                // directory) are not reached by cgroup.kill: SIGKILL them directly.
                for pid in self.pids()? {
                    match nix::sys::signal::kill(pid, Signal::SIGKILL) {
                        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                        Err(source) => {
                            return Err(CgroupError::Kill {
                                pid: pid.as_raw(),
                                signal,
                                source,
                            })
                        }
                    }
                }
                return Ok(());
            }
        }
        crate::signal_all(self, signal)
    }

    fn destroy(&self) -> Result<()> {
        let dirs = self.dirs();
        let res = dir::remove_trees(&dirs);
        let created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        let leaves: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        dir::remove_created(&created, &leaves);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create_manager_with;
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxNetworkBuilder, LinuxResourcesBuilder};

    fn fixture(hierarchies: &[&str]) -> (tempfile::TempDir, Layout) {
        let t = tempfile::tempdir().unwrap();
        for h in hierarchies {
            std::fs::create_dir(t.path().join(h)).unwrap();
        }
        let l = Layout::v1_fixture(t.path(), None).unwrap();
        (t, l)
    }

    #[test]
    fn create_and_destroy_remove_only_what_was_created() {
        let (t, l) = fixture(&["memory", "cpu,cpuacct"]);
        std::fs::create_dir(t.path().join("memory/keep")).unwrap();
        let m = create_manager_with(&l, Some(Path::new("/keep/c1")), "c1").unwrap();
        m.create().unwrap();
        assert!(t.path().join("memory/keep/c1").is_dir());
        assert!(t.path().join("cpu,cpuacct/keep/c1").is_dir());
        m.destroy().unwrap();
        assert!(!t.path().join("memory/keep/c1").exists());
        // Pre-existing ancestor stays, the one we created goes.
        assert!(t.path().join("memory/keep").is_dir());
        assert!(!t.path().join("cpu,cpuacct/keep").exists());
    }

    #[test]
    fn missing_controller_is_a_clear_error() {
        let (_t, l) = fixture(&["memory"]);
        let m = create_manager_with(&l, None, "c1").unwrap();
        m.create().unwrap();
        let r = LinuxResourcesBuilder::default()
            .network(
                LinuxNetworkBuilder::default()
                    .class_id(1u32)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("net_cls") && e.contains("classID"), "{e}");
        let mut u = std::collections::HashMap::new();
        u.insert("memory.max".to_string(), "1".to_string());
        let r = LinuxResourcesBuilder::default().unified(u).build().unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("unified") && e.contains("v1"), "{e}");
        // A memory section with nothing set writes nothing and needs nothing.
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().build().unwrap())
            .build()
            .unwrap();
        m.apply(&r).unwrap();
        m.destroy().unwrap();
    }

    #[test]
    fn cpu_and_cpuacct_share_a_hierarchy() {
        let (t, l) = fixture(&["cpu,cpuacct", "cpuset"]);
        let m = V1Manager::new(&l, &CgroupPath::new(None, "x").unwrap()).unwrap();
        assert_eq!(
            m.dir_for("cpuacct"),
            Some(t.path().join("cpu,cpuacct/berth/x").as_path())
        );
        assert_eq!(m.dir_for("cpu"), m.dir_for("cpuacct"));
        assert!(m.dir_for("memory").is_none());
    }
}
