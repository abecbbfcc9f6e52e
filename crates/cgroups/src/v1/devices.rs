//! v1 devices controller: the rules written in order to `devices.deny`/`devices.allow` (each
//! file opened once, one write per rule), the config's rules first, then the defaults.

use std::path::Path;

use crate::devices::DeviceRule;
use crate::error::Result;
use crate::file::MultiWriter;

/// Writes `rules` in order to the v1 devices cgroup `dir`.
pub fn apply(rules: &[DeviceRule], dir: &Path) -> Result<()> {
    let mut allow: Option<MultiWriter> = None;
    let mut deny: Option<MultiWriter> = None;
    for r in rules {
        let (slot, name) = if r.allow {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        if slot.is_none() {
            *slot = Some(MultiWriter::open(dir.join(name))?);
        }
        if let Some(w) = slot.as_mut() {
            w.write(&r.v1_line())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{access, DeviceKind};
    use crate::test_fixture::Fixture;

    #[test]
    fn writes_in_order_to_the_right_file() {
        let f = Fixture::new(&["devices.allow", "devices.deny"]);
        let rules = [
            DeviceRule {
                allow: false,
                kind: DeviceKind::All,
                major: None,
                minor: None,
                access: access::ALL,
            },
            DeviceRule {
                allow: true,
                kind: DeviceKind::Char,
                major: Some(10),
                minor: Some(229),
                access: access::ALL,
            },
            DeviceRule {
                allow: true,
                kind: DeviceKind::Block,
                major: Some(8),
                minor: Some(20),
                access: access::READ | access::WRITE,
            },
        ];
        apply(&rules, f.path()).unwrap();
        assert_eq!(f.get("devices.deny"), "a");
        assert_eq!(f.get("devices.allow"), "c 10:229 rwmb 8:20 rw");
    }
}
