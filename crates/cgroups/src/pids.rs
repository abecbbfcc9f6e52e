//! pids controller (the same files on v1 and v2): the process limit and its statistics.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::error::Result;
use crate::file;
use crate::stats::Pids;

/// The value written to `pids.max`: a positive limit as is, 0 or negative as `max`.
pub(crate) fn limit_value(p: &LinuxPids) -> String {
    if p.limit() > 0 {
        p.limit().to_string()
    } else {
        "max".to_string()
    }
}

/// Applies the limit to the pids cgroup `dir` (same file on v1 and v2).
pub fn apply(p: &LinuxPids, dir: &Path) -> Result<()> {
    file::write(dir, "pids.max", &limit_value(p))
}

/// Reads `pids.current` and `pids.max` (`max` → 0, "no limit", as runc reports it).
pub fn stats(dir: &Path) -> Result<Pids> {
    let limit = file::read_u64(dir, "pids.max")?;
    Ok(Pids {
        current: file::read_u64(dir, "pids.current")?,
        limit: if limit == u64::MAX { 0 } else { limit },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxPidsBuilder;

    #[test]
    fn limit_and_max() {
        let f = Fixture::new(&["pids.max"]);
        apply(
            &LinuxPidsBuilder::default().limit(42).build().unwrap(),
            f.path(),
        )
        .unwrap();
        assert_eq!(f.get("pids.max"), "42");
        for l in [0, -1] {
            let f = Fixture::new(&["pids.max"]);
            apply(
                &LinuxPidsBuilder::default().limit(l).build().unwrap(),
                f.path(),
            )
            .unwrap();
            assert_eq!(f.get("pids.max"), "max");
        }
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set("pids.current", "3\n");
        f.set("pids.max", "max\n");
        assert_eq!(
            stats(f.path()).unwrap(),
            Pids {
                current: 3,
                limit: 0
            }
        );
        f.set("pids.max", "10\n");
        assert_eq!(stats(f.path()).unwrap().limit, 10);
    }
}
