//! v1 cpuacct controller: CPU usage statistics (it has nothing to apply).

use std::path::Path;

use crate::error::Result;
use crate::file;
use crate::stats::CpuUsage;

/// Nanoseconds per clock tick (`cpuacct.stat` counts in USER_HZ ticks).
fn ns_per_tick() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(100);
    1_000_000_000 / hz
}

/// Reads the usage counters of the v1 cpuacct cgroup `dir`.
pub fn usage(dir: &Path) -> Result<CpuUsage> {
    let stat = file::read_flat_keyed(dir, "cpuacct.stat")?;
    let tick = ns_per_tick();
    Ok(CpuUsage {
        total: file::read_u64(dir, "cpuacct.usage")?,
        percpu: file::read_u64_list(dir, "cpuacct.usage_percpu")?,
        percpu_kernel: file::read_u64_list(dir, "cpuacct.usage_percpu_sys")?,
        percpu_user: file::read_u64_list(dir, "cpuacct.usage_percpu_user")?,
        kernel: stat.get("system").copied().unwrap_or(0) * tick,
        user: stat.get("user").copied().unwrap_or(0) * tick,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;

    #[test]
    fn reads_usage() {
        let f = Fixture::new(&[]);
        f.set("cpuacct.usage", "1000\n");
        f.set("cpuacct.usage_percpu", "600 400 \n");
        f.set("cpuacct.usage_percpu_sys", "100 50\n");
        f.set("cpuacct.usage_percpu_user", "500 350\n");
        f.set("cpuacct.stat", "user 2\nsystem 1\n");
        let u = usage(f.path()).unwrap();
        assert_eq!(u.total, 1000);
        assert_eq!(u.percpu, vec![600, 400]);
        assert_eq!(u.percpu_kernel, vec![100, 50]);
        assert_eq!(u.percpu_user, vec![500, 350]);
        assert_eq!(u.user, 2 * ns_per_tick());
        assert_eq!(u.kernel, ns_per_tick());
    }
}
