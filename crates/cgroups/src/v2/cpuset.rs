//! v2 cpuset controller: `cpuset.cpus` and `cpuset.mems` (no parent initialisation is needed on
//! v2: an empty value means "inherit").

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::error::Result;
use crate::file;

/// Whether `c` sets cpus or mems.
pub fn is_requested(c: &LinuxCpu) -> bool {
    crate::v1::cpuset::is_requested(c)
}

/// Applies cpus/mems to the v2 cgroup `dir`.
pub fn apply(c: &LinuxCpu, dir: &Path) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        file::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        file::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn writes_cpus_and_mems() {
        let f = Fixture::new(&["cpuset.cpus", "cpuset.mems"]);
        apply(
            &LinuxCpuBuilder::default()
                .cpus("1")
                .mems("0")
                .build()
                .unwrap(),
            f.path(),
        )
        .unwrap();
        assert_eq!(f.get("cpuset.cpus"), "1");
        assert_eq!(f.get("cpuset.mems"), "0");
    }
}
