//! v1 cpu controller: shares, CFS quota/period/burst, realtime runtime/period, idle; and the
//! throttling statistics from `cpu.stat`.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::error::{CgroupError, Result};
use crate::file;
use crate::stats::Throttling;

/// Whether `c` asks for anything this controller writes (cpus/mems belong to cpuset).
pub fn is_requested(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.burst().is_some()
        || c.realtime_runtime().is_some_and(|r| r != 0)
        || c.realtime_period().is_some_and(|p| p != 0)
        || c.idle().is_some()
}

/// Applies `c` to the v1 cpu cgroup `dir`.
pub fn apply(c: &LinuxCpu, dir: &Path) -> Result<()> {
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        file::write(dir, "cpu.shares", &s.to_string())?;
    }
    // The period is written first so a quota valid for the new period is accepted; if the new
    // period is refused against the old quota, write the quota first and retry.
    let period = c.period().filter(|&p| p != 0);
    let quota = c.quota().filter(|&q| q != 0);
    let mut period_done = true;
    if let Some(p) = period {
        match file::write(dir, "cpu.cfs_period_us", &p.to_string()) {
            Ok(()) => {}
            Err(CgroupError::Write { ref source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && quota.is_some() =>
            {
                period_done = false
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(q) = quota {
        file::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if !period_done {
        if let Some(p) = period {
            file::write(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(b) = c.burst() {
        file::write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    // Same ordering problem for the realtime pair (runtime <= period).
    let rt_period = c.realtime_period().filter(|&p| p != 0);
    let rt_runtime = c.realtime_runtime().filter(|&r| r != 0);
    let mut rt_period_done = true;
    if let Some(p) = rt_period {
        match file::write(dir, "cpu.rt_period_us", &p.to_string()) {
            Ok(()) => {}
            Err(CgroupError::Write { ref source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && rt_runtime.is_some() =>
            {
                rt_period_done = false
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(r) = rt_runtime {
        file::write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if !rt_period_done {
        if let Some(p) = rt_period {
            file::write(dir, "cpu.rt_period_us", &p.to_string())?;
        }
    }
    if let Some(i) = c.idle() {
        file::write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// Throttling counters from `cpu.stat` (`throttled_time` is already in ns on v1).
pub fn throttling(dir: &Path) -> Result<Throttling> {
    let s = file::read_flat_keyed(dir, "cpu.stat")?;
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    Ok(Throttling {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_time"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxCpuBuilder;

    const FILES: &[&str] = &[
        "cpu.shares",
        "cpu.cfs_period_us",
        "cpu.cfs_quota_us",
        "cpu.cfs_burst_us",
        "cpu.rt_period_us",
        "cpu.rt_runtime_us",
        "cpu.idle",
    ];

    #[test]
    fn writes_every_field() {
        let f = Fixture::new(FILES);
        let c = LinuxCpuBuilder::default()
            .shares(512u64)
            .quota(50000)
            .period(100000u64)
            .burst(1000u64)
            .realtime_period(1000000u64)
            .realtime_runtime(950000)
            .idle(1)
            .cpus("0")
            .build()
            .unwrap();
        assert!(is_requested(&c));
        apply(&c, f.path()).unwrap();
        assert_eq!(f.get("cpu.shares"), "512");
        assert_eq!(f.get("cpu.cfs_quota_us"), "50000");
        assert_eq!(f.get("cpu.cfs_period_us"), "100000");
        assert_eq!(f.get("cpu.cfs_burst_us"), "1000");
        assert_eq!(f.get("cpu.rt_period_us"), "1000000");
        assert_eq!(f.get("cpu.rt_runtime_us"), "950000");
        assert_eq!(f.get("cpu.idle"), "1");
    }

    #[test]
    fn zero_means_unset() {
        let f = Fixture::new(FILES);
        let c = LinuxCpuBuilder::default()
            .shares(0u64)
            .cpus("0-1")
            .build()
            .unwrap();
        assert!(!is_requested(&c));
        apply(&c, f.path()).unwrap();
        assert_eq!(f.get("cpu.shares"), "");
    }

    #[test]
    fn reads_throttling() {
        let f = Fixture::new(&[]);
        f.set(
            "cpu.stat",
            "nr_periods 10\nnr_throttled 3\nthrottled_time 999\n",
        );
        let t = throttling(f.path()).unwrap();
        assert_eq!(
            (t.periods, t.throttled_periods, t.throttled_time),
            (10, 3, 999)
        );
    }
}
