//! v1 net_cls and net_prio controllers: the class id and the per-interface priorities. They
//! exist only on v1; the manager reports them as missing when they are not mounted.

use std::path::Path;

use oci_spec::runtime::LinuxNetwork;

use crate::error::Result;
use crate::file::{self, MultiWriter};

/// Whether a class id is asked for.
pub fn wants_classid(n: &LinuxNetwork) -> bool {
    n.class_id().is_some()
}

/// Whether interface priorities are asked for.
pub fn wants_priorities(n: &LinuxNetwork) -> bool {
    n.priorities().as_ref().is_some_and(|p| !p.is_empty())
}

/// Writes `net_cls.classid` in the net_cls cgroup `dir`.
pub fn apply_classid(n: &LinuxNetwork, dir: &Path) -> Result<()> {
    match n.class_id() {
        Some(id) => file::write(dir, "net_cls.classid", &id.to_string()),
        None => Ok(()),
    }
}

/// Writes one `net_prio.ifpriomap` line per interface in the net_prio cgroup `dir`.
pub fn apply_priorities(n: &LinuxNetwork, dir: &Path) -> Result<()> {
    let Some(prios) = n.priorities().as_ref().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut w = MultiWriter::open(dir.join("net_prio.ifpriomap"))?;
    for p in prios {
        w.write(&format!("{} {}", p.name(), p.priority()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::{LinuxInterfacePriorityBuilder, LinuxNetworkBuilder};

    #[test]
    fn writes_classid_and_priorities() {
        let f = Fixture::new(&["net_cls.classid", "net_prio.ifpriomap"]);
        let n = LinuxNetworkBuilder::default()
            .class_id(0x100001u32)
            .priorities(vec![LinuxInterfacePriorityBuilder::default()
                .name("eth0")
                .priority(5u32)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        assert!(wants_classid(&n) && wants_priorities(&n));
        apply_classid(&n, f.path()).unwrap();
        apply_priorities(&n, f.path()).unwrap();
        assert_eq!(f.get("net_cls.classid"), "1048577");
        assert_eq!(f.get("net_prio.ifpriomap"), "eth0 5");
    }
}
