//! v1 hugetlb controller: per page size limits (`hugetlb.<size>.limit_in_bytes`, and the
//! reservation limit `hugetlb.<size>.rsvd.limit_in_bytes` where the kernel has it); statistics.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::error::{CgroupError, Result};
use crate::file;
use crate::stats::Hugetlb;

/// Checks a page size as the spec writes it (`2MB`, `1GB`, `64KB`) and returns it.
pub(crate) fn page_size(l: &LinuxHugepageLimit) -> Result<&str> {
    let s = l.page_size().as_str();
    let digits = s.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !["KB", "MB", "GB"].contains(&unit)
    {
        return Err(CgroupError::Invalid {
            field: "linux.resources.hugepageLimits.pageSize".into(),
            reason: format!("{s:?} is not of the form <number>KB|MB|GB"),
        });
    }
    Ok(s)
}

/// Applies the limits to the v1 hugetlb cgroup `dir`.
pub fn apply(limits: &[LinuxHugepageLimit], dir: &Path) -> Result<()> {
    for l in limits {
        let size = page_size(l)?;
        let value = l.limit().to_string();
        file::write(dir, &format!("hugetlb.{size}.limit_in_bytes"), &value)?;
        let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
        if file::exists(dir, &rsvd) {
            file::write(dir, &rsvd, &value)?;
        }
    }
    Ok(())
}

/// Page sizes that have files in `dir` (`hugetlb.<size>.<suffix>`).
pub(crate) fn sizes(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let size = n.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reads usage, max usage and failcnt per page size.
pub fn stats(dir: &Path) -> Result<BTreeMap<String, Hugetlb>> {
    let mut out = BTreeMap::new();
    for size in sizes(dir, ".usage_in_bytes")? {
        out.insert(
            size.clone(),
            Hugetlb {
                usage: file::read_u64(dir, &format!("hugetlb.{size}.usage_in_bytes"))?,
                max: file::read_u64(dir, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: file::read_u64(dir, &format!("hugetlb.{size}.failcnt"))?,
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

    fn limit(size: &str, l: i64) -> LinuxHugepageLimit {
        LinuxHugepageLimitBuilder::default()
            .page_size(size)
            .limit(l)
            .build()
            .unwrap()
    }

    #[test]
    fn writes_limits_and_rsvd() {
        let f = Fixture::new(&[
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
            "hugetlb.1GB.limit_in_bytes",
        ]);
        apply(&[limit("2MB", 4 << 21), limit("1GB", 0)], f.path()).unwrap();
        assert_eq!(f.get("hugetlb.2MB.limit_in_bytes"), "8388608");
        assert_eq!(f.get("hugetlb.2MB.rsvd.limit_in_bytes"), "8388608");
        assert_eq!(f.get("hugetlb.1GB.limit_in_bytes"), "0");
    }

    #[test]
    fn refuses_bad_size_and_unknown_size() {
        let f = Fixture::new(&["hugetlb.2MB.limit_in_bytes"]);
        assert!(apply(&[limit("2M", 1)], f.path()).is_err());
        assert!(apply(&[limit("../x", 1)], f.path()).is_err());
        let e = apply(&[limit("16GB", 1)], f.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("hugetlb.16GB.limit_in_bytes"), "{e}");
    }

    #[test]
    fn reads_stats() {
        let f = Fixture::new(&[]);
        f.set("hugetlb.2MB.usage_in_bytes", "2097152\n");
        f.set("hugetlb.2MB.max_usage_in_bytes", "4194304\n");
        f.set("hugetlb.2MB.failcnt", "1\n");
        f.set("hugetlb.2MB.rsvd.usage_in_bytes", "0\n");
        let s = stats(f.path()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s["2MB"],
            Hugetlb {
                usage: 2097152,
                max: 4194304,
                failcnt: 1
            }
        );
    }
}
