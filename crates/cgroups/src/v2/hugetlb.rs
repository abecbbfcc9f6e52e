//! v2 hugetlb controller: `hugetlb.<size>.max` (and `hugetlb.<size>.rsvd.max` where present);
//! statistics from `.current`, `.max` and the `max` count of `.events`.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::error::Result;
use crate::file;
use crate::stats::Hugetlb;

/// Applies the limits to the v2 cgroup `dir`.
pub fn apply(limits: &[LinuxHugepageLimit], dir: &Path) -> Result<()> {
    for l in limits {
        let size = crate::v1::hugetlb::page_size(l)?;
        let value = l.limit().to_string();
        file::write(dir, &format!("hugetlb.{size}.max"), &value)?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if file::exists(dir, &rsvd) {
            file::write(dir, &rsvd, &value)?;
        }
    }
    Ok(())
}

/// Reads usage and the limit-hit count per page size.
pub fn stats(dir: &Path) -> Result<BTreeMap<String, Hugetlb>> {
    let mut out = BTreeMap::new();
    for size in crate::v1::hugetlb::sizes(dir, ".current")? {
        let events = file::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?;
        out.insert(
            size.clone(),
            Hugetlb {
                usage: file::read_u64(dir, &format!("hugetlb.{size}.current"))?,
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxHugepageLimitBuilder;

    #[test]
    fn writes_max_and_rsvd() {
        let f = Fixture::new(&["hugetlb.2MB.max", "hugetlb.2MB.rsvd.max", "hugetlb.1GB.max"]);
        let l = |s: &str, v| {
            LinuxHugepageLimitBuilder::default()
                .page_size(s)
                .limit(v)
                .build()
                .unwrap()
        };
        apply(&[l("2MB", 4096), l("1GB", 0)], f.path()).unwrap();
        assert_eq!(f.get("hugetlb.2MB.max"), "4096");
        assert_eq!(f.get("hugetlb.2MB.rsvd.max"), "4096");
        assert_eq!(f.get("hugetlb.1GB.max"), "0");
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set("hugetlb.2MB.current", "2097152\n");
        f.set("hugetlb.2MB.events", "max 4\n");
        f.set("hugetlb.2MB.rsvd.current", "0\n");
        let s = stats(f.path()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s["2MB"],
            Hugetlb {
                usage: 2097152,
                max: 0,
                failcnt: 4
            }
        );
    }
}
