//! v1 memory controller: limit, reservation (soft limit), memory+swap, kernel and kernel TCP
//! limits, swappiness, OOM killer, hierarchy; and its statistics.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::error::{CgroupError, Result};
use crate::file;
use crate::stats::{Memory, MemoryEntry};

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// Whether `m` asks for anything this controller writes.
pub fn is_requested(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some()
}

/// Applies `m` to the v1 memory cgroup `dir`.
pub fn apply(m: &LinuxMemory, dir: &Path) -> Result<()> {
    // Limit and memsw must stay ordered (limit <= memsw): when raising the limit above the
    // current memsw, the kernel refuses with EINVAL, so write memsw first and retry.
    let limit_done = match m.limit() {
        Some(l) => match file::write(dir, LIMIT, &l.to_string()) {
            Ok(()) => true,
            Err(CgroupError::Write { ref source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && m.swap().is_some() =>
            {
                false
            }
            Err(e) => return Err(e),
        },
        None => true,
    };
    if let Some(s) = m.swap() {
        file::write(dir, MEMSW, &s.to_string())?;
    }
    if !limit_done {
        if let Some(l) = m.limit() {
            file::write(dir, LIMIT, &l.to_string())?;
        }
    }
    if let Some(r) = m.reservation() {
        file::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(k) = m.kernel() {
        file::write(dir, "memory.kmem.limit_in_bytes", &k.to_string())?;
    }
    if let Some(k) = m.kernel_tcp() {
        file::write(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::Invalid {
                field: "linux.resources.memory.swappiness".into(),
                reason: format!("{s} is above 100"),
            });
        }
        file::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        file::write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    if let Some(h) = m.use_hierarchy() {
        file::write(dir, "memory.use_hierarchy", if h { "1" } else { "0" })?;
    }
    Ok(())
}

fn entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    Ok(MemoryEntry {
        limit: file::read_u64(dir, &format!("{prefix}.limit_in_bytes"))?,
        usage: file::read_u64(dir, &format!("{prefix}.usage_in_bytes"))?,
        max: file::read_u64(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: file::read_u64(dir, &format!("{prefix}.failcnt"))?,
    })
}

/// Reads the statistics of the v1 memory cgroup `dir`.
pub fn stats(dir: &Path) -> Result<Memory> {
    let raw = file::read_flat_keyed(dir, "memory.stat")?;
    Ok(Memory {
        cache: raw
            .get("total_cache")
            .or(raw.get("cache"))
            .copied()
            .unwrap_or(0),
        usage: entry(dir, "memory")?,
        swap: entry(dir, "memory.memsw")?,
        kernel: entry(dir, "memory.kmem")?,
        kernel_tcp: entry(dir, "memory.kmem.tcp")?,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxMemoryBuilder;

    const FILES: &[&str] = &[
        LIMIT,
        MEMSW,
        "memory.soft_limit_in_bytes",
        "memory.kmem.limit_in_bytes",
        "memory.kmem.tcp.limit_in_bytes",
        "memory.swappiness",
        "memory.oom_control",
        "memory.use_hierarchy",
    ];

    #[test]
    fn writes_every_field() {
        let f = Fixture::new(FILES);
        let m = LinuxMemoryBuilder::default()
            .limit(1 << 20)
            .reservation(1 << 19)
            .swap(2 << 20)
            .kernel(1 << 18)
            .kernel_tcp(1 << 17)
            .swappiness(10u64)
            .disable_oom_killer(true)
            .use_hierarchy(true)
            .build()
            .unwrap();
        assert!(is_requested(&m));
        apply(&m, f.path()).unwrap();
        assert_eq!(f.get(LIMIT), "1048576");
        assert_eq!(f.get(MEMSW), "2097152");
        assert_eq!(f.get("memory.soft_limit_in_bytes"), "524288");
        assert_eq!(f.get("memory.kmem.limit_in_bytes"), "262144");
        assert_eq!(f.get("memory.kmem.tcp.limit_in_bytes"), "131072");
        assert_eq!(f.get("memory.swappiness"), "10");
        assert_eq!(f.get("memory.oom_control"), "1");
        assert_eq!(f.get("memory.use_hierarchy"), "1");
    }

    #[test]
    fn unset_fields_are_not_written_and_bad_swappiness_fails() {
        let f = Fixture::new(FILES);
        let m = LinuxMemoryBuilder::default().build().unwrap();
        assert!(!is_requested(&m));
        apply(&m, f.path()).unwrap();
        assert_eq!(f.get(LIMIT), "");
        let m = LinuxMemoryBuilder::default()
            .swappiness(101u64)
            .build()
            .unwrap();
        assert!(apply(&m, f.path()).is_err());
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let f = Fixture::new(&[LIMIT]);
        let m = LinuxMemoryBuilder::default().swap(5).build().unwrap();
        let e = apply(&m, f.path()).unwrap_err().to_string();
        assert!(e.contains("memory.memsw.limit_in_bytes"), "{e}");
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set("memory.stat", "cache 100\nrss 200\ntotal_cache 150\n");
        f.set("memory.usage_in_bytes", "4096\n");
        f.set("memory.limit_in_bytes", "9223372036854771712\n");
        f.set("memory.failcnt", "3\n");
        f.set("memory.memsw.usage_in_bytes", "8192\n");
        let s = stats(f.path()).unwrap();
        assert_eq!(s.cache, 150);
        assert_eq!(s.usage.usage, 4096);
        assert_eq!(s.usage.limit, 9223372036854771712);
        assert_eq!(s.usage.failcnt, 3);
        assert_eq!(s.swap.usage, 8192);
        assert_eq!(s.raw.get("rss"), Some(&200));
    }
}
