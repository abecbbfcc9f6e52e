//! Resource usage of a running container (`docker stats`): its cgroup's counters through
//! `berth-cgroups` (v1, v2 or hybrid), plus the host's CPU time from /proc/stat that docker's
//! CPU percentage is computed against.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{ContainerError, Containers};

/// One sample.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Unix nanoseconds when it was read.
    pub read_nanos: i64,
    pub cpu_total: u64,
    pub cpu_percpu: Vec<u64>,
    pub cpu_kernel: u64,
    pub cpu_user: u64,
    /// Host CPU time (all CPUs), nanoseconds.
    pub system_cpu: u64,
    pub online_cpus: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
    pub periods: u64,
    pub mem_usage: u64,
    pub mem_max: u64,
    /// The limit, or the host's memory when unlimited (as docker reports it).
    pub mem_limit: u64,
    pub mem_raw: BTreeMap<String, u64>,
    pub pids_current: u64,
    pub pids_limit: u64,
}

/// Host CPU time from the first line of /proc/stat, in nanoseconds (USER_HZ is 100 on Linux).
fn system_cpu_nanos() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks.saturating_mul(10_000_000)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

impl Containers {
    /// A sample of a running container's cgroup.
    pub fn stats(&self, key: &str) -> Result<Sample, ContainerError> {
        let rec = self.get(key)?.record();
        if !rec.state.status.is_alive() {
            return Err(ContainerError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let path = PathBuf::from(format!("/berth/{}", rec.id));
        let err = |e: berth_cgroups::CgroupError| ContainerError::Runtime {
            id: rec.id.clone(),
            op: "stats",
            message: e.to_string(),
        };
        let m = berth_cgroups::create_manager(Some(&path), &rec.id, false).map_err(err)?;
        let st = m.stats().map_err(err)?;
        let host_mem = host_memory();
        let online = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        Ok(Sample {
            read_nanos: berth_api::time::Timestamp::now().unix_nanos(),
            cpu_total: st.cpu.usage.total,
            cpu_percpu: st.cpu.usage.percpu.clone(),
            cpu_kernel: st.cpu.usage.kernel,
            cpu_user: st.cpu.usage.user,
            system_cpu: system_cpu_nanos(),
            online_cpus: online,
            throttled_periods: st.cpu.throttling.throttled_periods,
            throttled_time: st.cpu.throttling.throttled_time,
            periods: st.cpu.throttling.periods,
            mem_usage: st.memory.usage.usage,
            mem_max: st.memory.usage.max,
            mem_limit: st.memory.usage.limit.min(host_mem),
            mem_raw: st.memory.raw.clone(),
            pids_current: st.pids.current,
            pids_limit: st.pids.limit,
        })
    }
}
