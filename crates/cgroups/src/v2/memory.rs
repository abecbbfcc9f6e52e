//! v2 memory controller: `memory.max`, `memory.low` (reservation), `memory.swap.max` (the
//! spec's swap is memory+swap, so swap.max = swap - limit), the optional usage check before an
//! update; and statistics. Settings v2 has no file for are refused when they ask for something.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::error::{CgroupError, Result};
use crate::file;
use crate::stats::{Memory, MemoryEntry};

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Whether `m` asks for anything.
pub fn is_requested(m: &LinuxMemory) -> bool {
    crate::v1::memory::is_requested(m)
}

fn unsupported(setting: &str) -> CgroupError {
    CgroupError::Unsupported {
        setting: format!("linux.resources.memory.{setting}"),
        version: "v2",
    }
}

/// Applies `m` to the v2 cgroup `dir`.
pub fn apply(m: &LinuxMemory, dir: &Path) -> Result<()> {
    if m.kernel().is_some() {
        return Err(unsupported("kernel"));
    }
    if m.kernel_tcp().is_some() {
        return Err(unsupported("kernelTCP"));
    }
    if m.swappiness().is_some_and(|s| s != 0) {
        return Err(unsupported("swappiness"));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported("disableOOMKiller"));
    }
    if m.use_hierarchy() == Some(false) {
        return Err(unsupported("useHierarchy=false"));
    }
    let swap = match m.swap() {
        Some(s) if s > 0 => {
            let Some(limit) = m.limit().filter(|&l| l > 0) else {
                return Err(CgroupError::Invalid {
                    field: "linux.resources.memory.swap".into(),
                    reason: "a swap limit needs a memory limit on cgroup v2".into(),
                });
            };
            if s < limit {
                return Err(CgroupError::Invalid {
                    field: "linux.resources.memory.swap".into(),
                    reason: format!("memory+swap {s} is below the memory limit {limit}"),
                });
            }
            Some((s - limit).to_string())
        }
        Some(s) => Some(max_or(s)),
        None => None,
    };
    if m.check_before_update() == Some(true) {
        let current = file::read_u64(dir, "memory.current")?;
        let swap_current = file::read_u64(dir, "memory.swap.current")?;
        let mut limit = 0u64;
        if let Some(l) = m.limit().filter(|&l| l >= 0) {
            limit = l.unsigned_abs();
        }
        if let Some(s) = m.swap().filter(|&s| s >= 0) {
            limit = limit.saturating_add(s.unsigned_abs());
        }
        if limit > 0 && limit <= current + swap_current {
            return Err(CgroupError::Invalid {
                field: "linux.resources.memory.limit".into(),
                reason: format!(
                    "{limit} is not above the current usage {}",
                    current + swap_current
                ),
            });
        }
    }
    if let Some(l) = m.limit() {
        file::write(dir, "memory.max", &max_or(l))?;
    }
    if let Some(s) = swap {
        file::write(dir, "memory.swap.max", &s)?;
    }
    if let Some(r) = m.reservation() {
        file::write(dir, "memory.low", &max_or(r))?;
    }
    Ok(())
}

/// Reads the statistics of the v2 cgroup `dir`. `swap` is memory+swap as on v1 (as runc does,
/// for tools written against v1).
pub fn stats(dir: &Path) -> Result<Memory> {
    let raw = file::read_flat_keyed(dir, "memory.stat")?;
    let events = file::read_flat_keyed(dir, "memory.events")?;
    let usage = file::read_u64(dir, "memory.current")?;
    let swap_usage = file::read_u64(dir, "memory.swap.current")?;
    let limit = file::read_u64(dir, "memory.max")?;
    let swap_limit = file::read_u64(dir, "memory.swap.max")?;
    Ok(Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage: MemoryEntry {
            limit,
            usage,
            max: file::read_u64(dir, "memory.peak")?,
            failcnt: events.get("max").copied().unwrap_or(0),
        },
        swap: MemoryEntry {
            limit: if limit == u64::MAX || swap_limit == u64::MAX {
                u64::MAX
            } else {
                limit + swap_limit
            },
            usage: usage + swap_usage,
            max: file::read_u64(dir, "memory.swap.peak")?,
            failcnt: 0,
        },
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxMemoryBuilder;

    const FILES: &[&str] = &["memory.max", "memory.swap.max", "memory.low"];

    #[test]
    fn swap_max_is_swap_minus_limit() {
        let f = Fixture::new(FILES);
        let m = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(300)
            .reservation(50)
            .build()
            .unwrap();
        apply(&m, f.path()).unwrap();
        assert_eq!(f.get("memory.max"), "100");
        assert_eq!(f.get("memory.swap.max"), "200");
        assert_eq!(f.get("memory.low"), "50");
    }

    #[test]
    fn unlimited_values_are_max() {
        let f = Fixture::new(FILES);
        let m = LinuxMemoryBuilder::default()
            .limit(-1)
            .swap(-1)
            .build()
            .unwrap();
        apply(&m, f.path()).unwrap();
        assert_eq!(f.get("memory.max"), "max");
        assert_eq!(f.get("memory.swap.max"), "max");
    }

    #[test]
    fn refuses_what_v2_cannot_do() {
        let f = Fixture::new(FILES);
        for m in [
            LinuxMemoryBuilder::default().kernel(1).build().unwrap(),
            LinuxMemoryBuilder::default().kernel_tcp(1).build().unwrap(),
            LinuxMemoryBuilder::default()
                .swappiness(10u64)
                .build()
                .unwrap(),
            LinuxMemoryBuilder::default()
                .disable_oom_killer(true)
                .build()
                .unwrap(),
            LinuxMemoryBuilder::default().swap(10).build().unwrap(),
            LinuxMemoryBuilder::default()
                .limit(100)
                .swap(10)
                .build()
                .unwrap(),
        ] {
            assert!(apply(&m, f.path()).is_err(), "{m:?}");
        }
        assert_eq!(f.get("memory.max"), "");
    }

    #[test]
    fn check_before_update_refuses_limit_under_usage() {
        let f = Fixture::new(FILES);
        f.set("memory.current", "1000\n");
        f.set("memory.swap.current", "0\n");
        let m = LinuxMemoryBuilder::default()
            .limit(500)
            .check_before_update(true)
            .build()
            .unwrap();
        assert!(apply(&m, f.path()).is_err());
        let m = LinuxMemoryBuilder::default()
            .limit(5000)
            .check_before_update(true)
            .build()
            .unwrap();
        apply(&m, f.path()).unwrap();
        assert_eq!(f.get("memory.max"), "5000");
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set("memory.stat", "anon 10\nfile 20\n");
        f.set("memory.current", "30\n");
        f.set("memory.max", "max\n");
        f.set("memory.swap.current", "5\n");
        f.set("memory.swap.max", "max\n");
        f.set("memory.events", "low 0\nhigh 0\nmax 2\noom 1\n");
        let s = stats(f.path()).unwrap();
        assert_eq!(s.cache, 20);
        assert_eq!(s.usage.usage, 30);
        assert_eq!(s.usage.limit, u64::MAX);
        assert_eq!(s.usage.failcnt, 2);
        assert_eq!(s.swap.usage, 35);
    }
}
