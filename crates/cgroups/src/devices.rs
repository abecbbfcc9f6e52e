//! Device access rules shared by the v1 (`devices.allow`/`devices.deny`) and v2 (eBPF) device
//! controllers: the checked form of `linux.resources.devices`, and the default devices every
//! container may use (crun's list), which are applied after the config's rules.
//!
//! Semantics, as the runtime spec says: the list is an allowlist (everything starts denied),
//! rules apply in order and a later rule overrides an earlier one. `p` (fifo) rules are dropped (the device controller never sees fifos); `u` is a
//! character device.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{CgroupError, Result};

/// Which devices a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

/// Access bits, with the values the kernel's `BPF_DEVCG_ACC_*` use.
pub mod access {
    pub const MKNOD: u8 = 1;
    pub const READ: u8 = 2;
    pub const WRITE: u8 = 4;
    pub const ALL: u8 = MKNOD | READ | WRITE;
}

/// One checked device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    /// `None` = any.
    pub major: Option<u32>,
    /// `None` = any.
    pub minor: Option<u32>,
    /// Bits of [`access`].
    pub access: u8,
}

impl DeviceRule {
    const fn allow_char(major: Option<u32>, minor: Option<u32>, access: u8) -> Self {
        DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major,
            minor,
            access,
        }
    }

    /// The line written to `devices.allow`/`devices.deny` on v1.
    pub fn v1_line(&self) -> String {
        let t = match self.kind {
            DeviceKind::All => return "a".to_string(),
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let mut acc = String::with_capacity(3);
        for (bit, c) in [
            (access::READ, 'r'),
            (access::WRITE, 'w'),
            (access::MKNOD, 'm'),
        ] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        format!("{t} {}:{} {acc}", num(self.major), num(self.minor))
    }
}

/// Devices every container may use, applied after the config's rules (crun's defaults): mknod
/// of any device, /dev/null, random, full, tty, zero, urandom, console, pts, ptmx, net/tun.
pub const DEFAULT_RULES: [DeviceRule; 12] = [
    DeviceRule {
        allow: true,
        kind: DeviceKind::Char,
        major: None,
        minor: None,
        access: access::MKNOD,
    },
    DeviceRule {
        allow: true,
        kind: DeviceKind::Block,
        major: None,
        minor: None,
        access: access::MKNOD,
    },
    DeviceRule::allow_char(Some(1), Some(3), access::ALL),
    DeviceRule::allow_char(Some(1), Some(8), access::ALL),
    DeviceRule::allow_char(Some(1), Some(7), access::ALL),
    DeviceRule::allow_char(Some(5), Some(0), access::ALL),
    DeviceRule::allow_char(Some(1), Some(5), access::ALL),
    DeviceRule::allow_char(Some(1), Some(9), access::ALL),
    DeviceRule::allow_char(Some(5), Some(1), access::ALL),
    DeviceRule::allow_char(Some(136), None, access::ALL),
    DeviceRule::allow_char(Some(5), Some(2), access::ALL),
    DeviceRule::allow_char(Some(10), Some(200), access::ALL),
];

/// Checks the config's rules; fifo rules are dropped.
pub fn rules_from_spec(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => continue,
        };
        let num = |n: Option<i64>, what: &str| -> Result<Option<u32>> {
            match n {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| CgroupError::Invalid {
                        field: format!("linux.resources.devices[{i}].{what}"),
                        reason: format!("{n} is out of range"),
                    }),
            }
        };
        let major = num(r.major(), "major")?;
        let minor = num(r.minor(), "minor")?;
        let access = parse_access(r.access().as_deref().unwrap_or(""), i)?;
        out.push(DeviceRule {
            allow: r.allow(),
            kind,
            major,
            minor,
            access,
        });
    }
    Ok(out)
}

fn parse_access(s: &str, i: usize) -> Result<u8> {
    if s.is_empty() {
        return Ok(access::ALL);
    }
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'r' => access::READ,
            'w' => access::WRITE,
            'm' => access::MKNOD,
            _ => {
                return Err(CgroupError::Invalid {
                    field: format!("linux.resources.devices[{i}].access"),
                    reason: format!("{s:?} is not a combination of r, w and m"),
                })
            }
        };
    }
    Ok(bits)
}

/// Denies every access to every device: the start of every effective rule list.
pub const DENY_ALL: DeviceRule = DeviceRule {
    allow: false,
    kind: DeviceKind::All,
    major: None,
    minor: None,
    access: access::ALL,
};

/// What is applied for `linux.resources.devices`: [`DENY_ALL`] (the list is an allowlist, as
/// runc treats it on v1 and v2), the config's rules in order, then [`DEFAULT_RULES`].
pub fn effective_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(rules.len() + 1 + DEFAULT_RULES.len());
    out.push(DENY_ALL);
    out.extend(rules_from_spec(rules)?);
    out.extend_from_slice(&DEFAULT_RULES);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn converts_spec_rules() {
        let spec = vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(10)
                .minor(229)
                .access("rw")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::P)
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::B)
                .major(8)
                .access("m")
                .build()
                .unwrap(),
        ];
        let r = rules_from_spec(&spec).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].v1_line(), "a");
        assert!(!r[0].allow);
        assert_eq!(r[1].v1_line(), "c 10:229 rw");
        assert_eq!(r[2].v1_line(), "b 8:* m");
        let eff = effective_rules(&spec).unwrap();
        assert_eq!(eff.len(), 1 + 3 + DEFAULT_RULES.len());
        assert_eq!(eff[0], DENY_ALL);
        assert_eq!(eff[2].v1_line(), "c 10:229 rw");
        assert_eq!(DEFAULT_RULES[9].v1_line(), "c 136:* rwm");
    }

    #[test]
    fn refuses_bad_access() {
        let spec = vec![LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rx")
            .build()
            .unwrap()];
        let e = rules_from_spec(&spec).unwrap_err().to_string();
        assert!(e.contains("devices[0].access"), "{e}");
    }
}
