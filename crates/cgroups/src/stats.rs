//! Resource usage of a cgroup, serialised in the shape of runc's `events --stats` `data` object
//! (`types.Stats` in runc): the same field names, and the same fields left out when zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// All statistics of a container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Keyed by page size as the kernel names it (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// CPU usage and throttling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

/// CFS bandwidth throttling; `throttledTime` in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// cpuset configuration (v1 names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// One memory counter set; `limit` is `u64::MAX`-ish when unlimited, as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Memory usage. On v1 `swap` is memory+swap (`memory.memsw.*`), as in runc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// `memory.stat` as is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Process count; `limit` 0 means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One block I/O counter of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Block I/O counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServicedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioQueueRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioWaitTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioMergedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "sectorsRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// Huge page usage of one page size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Parses a cpu/mem list (`0-3,7`) into the numbers it names.
pub(crate) fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(v) = part.parse() {
                    out.push(v);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_like_runc() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.pids.current = 2;
        s.memory.kernel_tcp.limit = 7;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 5);
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert!(v["cpu"]["usage"].get("percpu").is_none());
        assert!(v["cpu"]["throttling"].get("throttledTime").is_none());
        assert_eq!(v["pids"]["current"], 2);
        assert!(v["pids"].get("limit").is_none());
        assert_eq!(v["memory"]["kernelTCP"]["limit"], 7);
        assert_eq!(v["memory"]["usage"]["failcnt"], 0);
        assert!(v["hugetlb"].as_object().unwrap().is_empty());
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_list("0-3,7\n"), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
    }
}
