//! v1 cpuset controller: cpus and mems, and the initialisation a new v1 cpuset cgroup needs
//! before a task can join it (empty `cpuset.cpus`/`cpuset.mems` are copied from the parent, as
//! runc and crun do); plus its statistics.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::error::Result;
use crate::file;
use crate::stats::{parse_list, CpuSet};

const CPUS: &str = "cpuset.cpus";
const MEMS: &str = "cpuset.mems";

/// Whether `c` sets cpus or mems.
pub fn is_requested(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

/// Applies cpus/mems to the v1 cpuset cgroup `dir`.
pub fn apply(c: &LinuxCpu, dir: &Path) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        file::write(dir, CPUS, cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        file::write(dir, MEMS, mems)?;
    }
    Ok(())
}

/// Copies `cpuset.cpus` and `cpuset.mems` from the parent into `dir` where they are empty.
/// Called on every directory from the first one created down to the container's, parent first.
pub fn init_from_parent(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for name in [CPUS, MEMS] {
        let own = file::read(dir, name)?;
        if own.trim().is_empty() {
            let from = file::read(parent, name)?;
            let from = from.trim();
            if !from.is_empty() {
                file::write(dir, name, from)?;
            }
        }
    }
    Ok(())
}

/// Reads the cpuset settings of `dir` (runc's `cpuset` stats object).
pub fn stats(dir: &Path) -> Result<CpuSet> {
    let n = |name: &str| file::read_u64(dir, name);
    Ok(CpuSet {
        cpus: parse_list(&file::read_opt(dir, CPUS)?.unwrap_or_default()),
        mems: parse_list(&file::read_opt(dir, MEMS)?.unwrap_or_default()),
        cpu_exclusive: n("cpuset.cpu_exclusive")?,
        mem_hardwall: n("cpuset.mem_hardwall")?,
        mem_exclusive: n("cpuset.mem_exclusive")?,
        memory_migrate: n("cpuset.memory_migrate")?,
        memory_spread_page: n("cpuset.memory_spread_page")?,
        memory_spread_slab: n("cpuset.memory_spread_slab")?,
        memory_pressure: n("cpuset.memory_pressure")?,
        sched_load_balance: n("cpuset.sched_load_balance")?,
        sched_relax_domain_level: file::read_opt(dir, "cpuset.sched_relax_domain_level")?
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn writes_cpus_and_mems() {
        let f = Fixture::new(&[CPUS, MEMS]);
        let c = LinuxCpuBuilder::default()
            .cpus("0-1")
            .mems("0")
            .build()
            .unwrap();
        assert!(is_requested(&c));
        apply(&c, f.path()).unwrap();
        assert_eq!(f.get(CPUS), "0-1");
        assert_eq!(f.get(MEMS), "0");
    }

    #[test]
    fn initialises_empty_child_from_parent() {
        let f = Fixture::new(&[]);
        f.set(CPUS, "0-3\n");
        f.set(MEMS, "0\n");
        let child = f.file("child");
        std::fs::create_dir(&child).unwrap();
        std::fs::write(child.join(CPUS), "").unwrap();
        std::fs::write(child.join(MEMS), "1").unwrap();
        init_from_parent(&child).unwrap();
        assert_eq!(std::fs::read_to_string(child.join(CPUS)).unwrap(), "0-3");
        // Already set: left alone.
        assert_eq!(std::fs::read_to_string(child.join(MEMS)).unwrap(), "1");
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set(CPUS, "0-2\n");
        f.set(MEMS, "0\n");
        f.set("cpuset.sched_relax_domain_level", "-1\n");
        f.set("cpuset.sched_load_balance", "1\n");
        let s = stats(f.path()).unwrap();
        assert_eq!(s.cpus, vec![0, 1, 2]);
        assert_eq!(s.mems, vec![0]);
        assert_eq!(s.sched_relax_domain_level, -1);
        assert_eq!(s.sched_load_balance, 1);
    }
}
