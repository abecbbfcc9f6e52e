//! The `local` driver's mount options (`type`, `device`, `o`, as in `docker volume create -o`):
//! validated at create, mounted on the volume's first use and unmounted after its last.

use std::collections::HashMap;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// Why driver options were refused or a mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid option key: {0:?}")]
    UnknownKey(String),
    #[error("quota size requested but no quota support")]
    Size,
    #[error("missing required option: {0:?}")]
    Missing(&'static str),
    #[error("mount {device} ({fstype}) on {target} with options {data:?}")]
    Mount {
        device: String,
        fstype: String,
        target: String,
        data: String,
        #[source]
        source: nix::Error,
    },
    #[error("unmount {target}")]
    Unmount {
        target: String,
        #[source]
        source: nix::Error,
    },
}

/// Parsed `local` driver options; `None` from [`MountOpts::parse`] means a plain directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOpts {
    pub fstype: String,
    pub device: String,
    pub flags: MsFlags,
    /// What remains of `o` after the flags: passed to the filesystem (`size=10m`, `uid=1000`).
    pub data: String,
}

impl MountOpts {
    /// Validate `opts` like Docker's local driver: keys `type`, `device`, `o` only; `type` and
    /// `device` together (`o` alone is refused).
    pub fn parse(opts: &HashMap<String, String>) -> Result<Option<Self>, MountError> {
        for k in opts.keys() {
            match k.as_str() {
                "type" | "device" | "o" => {}
                "size" => return Err(MountError::Size),
                other => return Err(MountError::UnknownKey(other.to_string())),
            }
        }
        if opts.is_empty() {
            return Ok(None);
        }
        let fstype = opts
            .get("type")
            .filter(|s| !s.is_empty())
            .ok_or(MountError::Missing("type"))?;
        let device = opts
            .get("device")
            .filter(|s| !s.is_empty())
            .ok_or(MountError::Missing("device"))?;
        let (flags, data) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""));
        Ok(Some(Self {
            fstype: fstype.clone(),
            device: device.clone(),
            flags,
            data,
        }))
    }

    /// Mount onto `target`.
    pub fn mount(&self, target: &Path) -> Result<(), MountError> {
        let fstype = (self.fstype != "none").then_some(self.fstype.as_str());
        let data = (!self.data.is_empty()).then_some(self.data.as_str());
        let mut flags = self.flags;
        let remount_ro = flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY);
        if remount_ro {
            // A bind mount ignores MS_RDONLY until remounted.
            flags.remove(MsFlags::MS_RDONLY);
        }
        let err = |source| MountError::Mount {
            device: self.device.clone(),
            fstype: self.fstype.clone(),
            target: target.display().to_string(),
            data: self.data.clone(),
            source,
        };
        nix::mount::mount(Some(self.device.as_str()), target, fstype, flags, data).map_err(err)?;
        if remount_ro {
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, ro, None::<&str>)
            {
                let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
                return Err(err(e));
            }
        }
        Ok(())
    }
}

/// Unmount `target` (lazily, so a busy reader can't wedge the daemon).
pub fn unmount(target: &Path) -> Result<(), MountError> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|source| MountError::Unmount {
        target: target.display().to_string(),
        source,
    })
}

/// Split `o` into mount(2) flags and the filesystem's data string, like `mount -o`.
fn parse_o(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other);
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validates_keys_like_docker() {
        assert_eq!(MountOpts::parse(&HashMap::new()).unwrap(), None);
        let e = MountOpts::parse(&opts(&[("foo", "1")])).unwrap_err();
        assert_eq!(e.to_string(), "invalid option key: \"foo\"");
        assert!(matches!(
            MountOpts::parse(&opts(&[("size", "1")])),
            Err(MountError::Size)
        ));
        assert!(matches!(
            MountOpts::parse(&opts(&[("o", "size=1m")])),
            Err(MountError::Missing("type"))
        ));
        assert!(matches!(
            MountOpts::parse(&opts(&[("type", "tmpfs")])),
            Err(MountError::Missing("device"))
        ));
    }

    #[test]
    fn splits_flags_from_data() {
        let m = MountOpts::parse(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=10m,ro,nosuid,uid=1000"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(m.flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(m.data, "size=10m,uid=1000");
        let (f, d) = parse_o("ro,rw,bind");
        assert_eq!(f, MsFlags::MS_BIND);
        assert!(d.is_empty());
    }
}
