//! v2 cpu controller: `cpu.weight` (converted from shares like crun:
//! `1 + ((shares - 2) * 9999) / 262142`), `cpu.max` ("quota period"), `cpu.max.burst`,
//! `cpu.idle`; realtime settings have no v2 file and are refused. Statistics from `cpu.stat`.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::error::{CgroupError, Result};
use crate::file;
use crate::stats::Cpu;

/// cgroup v1 shares to v2 weight, as crun and runc convert: [2, 262144] → [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Whether `c` asks for anything this controller writes.
pub fn is_requested(c: &LinuxCpu) -> bool {
    crate::v1::cpu::is_requested(c)
}

/// Applies `c` to the v2 cgroup `dir`.
pub fn apply(c: &LinuxCpu, dir: &Path) -> Result<()> {
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(CgroupError::Unsupported {
            setting: "linux.resources.cpu.realtimeRuntime/realtimePeriod".into(),
            version: "v2",
        });
    }
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        file::write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        if let Some(p) = period {
            v.push(' ');
            v.push_str(&p.to_string());
        }
        file::write(dir, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst() {
        file::write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        file::write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// Usage and throttling from `cpu.stat` (microseconds there, nanoseconds here).
pub fn stats(dir: &Path) -> Result<Cpu> {
    let s = file::read_flat_keyed(dir, "cpu.stat")?;
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut c = Cpu::default();
    c.usage.total = get("usage_usec") * 1000;
    c.usage.user = get("user_usec") * 1000;
    c.usage.kernel = get("system_usec") * 1000;
    c.throttling.periods = get("nr_periods");
    c.throttling.throttled_periods = get("nr_throttled");
    c.throttling.throttled_time = get("throttled_usec") * 1000;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn weight_conversion_matches_crun() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 30), 10_000);
    }

    #[test]
    fn writes_weight_max_burst_idle() {
        let f = Fixture::new(&["cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle"]);
        let c = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(50_000)
            .period(100_000u64)
            .burst(10u64)
            .idle(0)
            .build()
            .unwrap();
        apply(&c, f.path()).unwrap();
        assert_eq!(f.get("cpu.weight"), "39");
        assert_eq!(f.get("cpu.max"), "50000 100000");
        assert_eq!(f.get("cpu.max.burst"), "10");
        assert_eq!(f.get("cpu.idle"), "0");
    }

    #[test]
    fn quota_alone_and_unlimited() {
        let f = Fixture::new(&["cpu.max"]);
        apply(
            &LinuxCpuBuilder::default().quota(-1).build().unwrap(),
            f.path(),
        )
        .unwrap();
        assert_eq!(f.get("cpu.max"), "max");
        let f = Fixture::new(&["cpu.max"]);
        apply(
            &LinuxCpuBuilder::default()
                .period(20_000u64)
                .build()
                .unwrap(),
            f.path(),
        )
        .unwrap();
        assert_eq!(f.get("cpu.max"), "max 20000");
        let c = LinuxCpuBuilder::default()
            .realtime_runtime(5)
            .build()
            .unwrap();
        assert!(apply(&c, f.path()).is_err());
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set(
            "cpu.stat",
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 2\nnr_throttled 1\nthrottled_usec 3\n",
        );
        let c = stats(f.path()).unwrap();
        assert_eq!(
            (c.usage.total, c.usage.user, c.usage.kernel),
            (10_000, 6_000, 4_000)
        );
        assert_eq!(c.throttling.throttled_time, 3_000);
    }
}
