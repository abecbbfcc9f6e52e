//! The v2 (unified) manager: one directory in the cgroup2 hierarchy. Controllers are enabled in
//! the ancestors' `cgroup.subtree_control` when the cgroup is created; asking for a controller
//! that is not enabled in the container's cgroup is an error naming it.

pub mod cpu;
pub mod cpuset;
pub mod devices;
pub mod freezer;
pub mod hugetlb;
pub mod io;
pub mod memory;
pub mod unified;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::error::{CgroupError, Result};
use crate::layout::{read_own_cgroups, CgroupPath, Layout};
use crate::stats::Stats;
use crate::{dir, file, Entered, FreezerState, Manager};

/// A container cgroup on a cgroup2 hierarchy.
#[derive(Debug)]
pub struct V2Manager {
    path: PathBuf,
    mount: PathBuf,
    dir: PathBuf,
    created: Mutex<Vec<PathBuf>>,
}

impl V2Manager {
    pub(crate) fn new(layout: &Layout, path: &CgroupPath) -> Result<Self> {
        let mount = layout
            .unified
            .clone()
            .ok_or_else(|| CgroupError::NoCgroupFs {
                path: PathBuf::from("cgroup2"),
            })?;
        let own = if path.is_relative() {
            read_own_cgroups(&layout.proc_self_cgroup)?
                .into_iter()
                .find(|(c, _)| c.is_empty())
                .map(|(_, p)| p)
        } else {
            None
        };
        let dir = path.dir_in(&mount, Path::new("/"), own.as_deref());
        Ok(V2Manager {
            path: path.display_path(),
            mount,
            dir,
            created: Mutex::new(Vec::new()),
        })
    }

    /// Enables every available controller in `cgroup.subtree_control` of each ancestor, top
    /// down. Best effort: a level that refuses (processes in it, or a controller that can't be
    /// delegated) is left as is, and `apply` reports the controller as missing if it is needed.
    fn enable_controllers(&self) {
        let rel = self.dir.strip_prefix(&self.mount).unwrap_or(&self.dir);
        // The mount and every directory between it and the container's (exclusive).
        let mut ancestors = vec![self.mount.clone()];
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                let next = ancestors[ancestors.len() - 1].join(c);
                ancestors.push(next);
            }
        }
        for dir in &ancestors {
            let read = |name| file::read_opt(dir, name).ok().flatten().unwrap_or_default();
            let (available, enabled) = (read("cgroup.controllers"), read("cgroup.subtree_control"));
            let missing: Vec<String> = available
                .split_whitespace()
                .filter(|a| !enabled.split_whitespace().any(|e| e == *a))
                .map(|a| format!("+{a}"))
                .collect();
            if !missing.is_empty() {
                let _ = file::write(dir, "cgroup.subtree_control", &missing.join(" "));
            }
        }
    }

    fn controllers(&self) -> Result<Vec<String>> {
        Ok(file::read_opt(&self.dir, "cgroup.controllers")?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }
}

impl Manager for V2Manager {
    fn path(&self) -> &Path {
        &self.path
    }

    fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn create(&self) -> Result<()> {
        let mut created = Vec::new();
        let res = dir::mkdir_p(&self.mount, &self.dir, &mut created);
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(created);
        res?;
        self.enable_controllers();
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<()> {
        dir::add_pid(&self.dir, &pid.as_raw().to_string())
    }

    fn enter(&self) -> Result<Entered> {
        if freezer::state(&self.dir)? == FreezerState::Frozen {
            return Err(CgroupError::Frozen {
                path: self.dir.clone(),
            });
        }
        Entered::enter(&[], Vec::new(), Some(&self.dir))
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        let mut available: Option<Vec<String>> = None;
        let mut need = |controller: &'static str, needed_for: &'static str| -> Result<&Path> {
            if available.is_none() {
                available = Some(self.controllers()?);
            }
            if available
                .as_ref()
                .is_some_and(|a| a.iter().any(|c| c == controller))
            {
                Ok(self.dir.as_path())
            } else {
                Err(CgroupError::ControllerMissing {
                    controller,
                    needed_for,
                })
            }
        };
        if let Some(m) = r.memory().as_ref().filter(|m| memory::is_requested(m)) {
            memory::apply(m, need("memory", "linux.resources.memory")?)?;
        }
        if let Some(c) = r.cpu() {
            if cpu::is_requested(c) {
                cpu::apply(c, need("cpu", "linux.resources.cpu")?)?;
            }
            if cpuset::is_requested(c) {
                cpuset::apply(c, need("cpuset", "linux.resources.cpu.cpus/mems")?)?;
            }
        }
        if let Some(p) = r.pids() {
            crate::pids::apply(p, need("pids", "linux.resources.pids")?)?;
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| io::is_requested(b)) {
            io::apply(b, need("io", "linux.resources.blockIO")?)?;
        }
        if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            hugetlb::apply(h, need("hugetlb", "linux.resources.hugepageLimits")?)?;
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|r| crate::rdma::is_requested(r)) {
            crate::rdma::apply(rdma, need("rdma", "linux.resources.rdma")?)?;
        }
        if let Some(n) = r.network() {
            if crate::v1::network::wants_classid(n) || crate::v1::network::wants_priorities(n) {
                return Err(CgroupError::Unsupported {
                    setting: "linux.resources.network (net_cls/net_prio are v1 controllers)".into(),
                    version: "v2",
                });
            }
        }
        if let Some(devs) = r.devices() {
            devices::apply(&crate::devices::effective_rules(devs)?, &self.dir)?;
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            unified::apply(u, &self.dir)?;
        }
        Ok(())
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        freezer::set(&self.dir, state)
    }

    fn state(&self) -> Result<FreezerState> {
        freezer::state(&self.dir)
    }

    fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            cpu: cpu::stats(&self.dir)?,
            cpuset: Default::default(),
            memory: memory::stats(&self.dir)?,
            pids: crate::pids::stats(&self.dir)?,
            blkio: io::stats(&self.dir)?,
            hugetlb: hugetlb::stats(&self.dir)?,
        })
    }

    fn oom_kills(&self) -> Result<u64> {
        Ok(file::read_flat_keyed(&self.dir, "memory.events")?
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    fn pids(&self) -> Result<Vec<Pid>> {
        let mut out = Vec::new();
        dir::procs_recursive(&self.dir, &mut out)?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL && file::exists(&self.dir, "cgroup.kill") {
            return file::write(&self.dir, "cgroup.kill", "1");
        }
        crate::signal_all(self, signal)
    }

    fn destroy(&self) -> Result<()> {
        let res = dir::remove_trees(std::slice::from_ref(&self.dir));
        let created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        dir::remove_created(&created, &[self.dir.as_path()]);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create_manager_with;
    use oci_spec::runtime::{LinuxPidsBuilder, LinuxResourcesBuilder};

    #[test]
    fn create_enables_controllers_and_apply_checks_them() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(t.path().join("cgroup.subtree_control"), "cpu\n").unwrap();
        let l = Layout::unified_at(t.path());
        let m = create_manager_with(&l, Some(Path::new("/c1")), "c1").unwrap();
        m.create().unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        let d = t.path().join("c1");
        std::fs::write(d.join("cgroup.controllers"), "memory\n").unwrap();
        let r = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
            .build()
            .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.contains("controller pids is not available"), "{e}");
        std::fs::write(d.join("cgroup.controllers"), "memory pids\n").unwrap();
        std::fs::write(d.join("pids.max"), "").unwrap();
        m.apply(&r).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("pids.max")).unwrap(), "5");
        // A fixture directory holds plain files: remove them so destroy can rmdir.
        for f in ["cgroup.controllers", "pids.max"] {
            std::fs::remove_file(d.join(f)).unwrap();
        }
        m.destroy().unwrap();
        assert!(!d.exists());
    }
}
