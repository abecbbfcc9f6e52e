//! `update`: apply new cgroup resources (from runc's flags or a `LinuxResources` JSON document)
//! to a live container.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::Container;
use crate::error::Error;
use crate::state::Status;

/// Applies `res` to container `id`.
pub fn update(root: &Path, id: &str, res: &LinuxResources) -> Result<(), Error> {
    let c = Container::load(root, id)?;
    c.check("update", c.status != Status::Stopped)?;
    c.cgroup()?.apply(res).map_err(Error::Cgroup)
}

/// runc's `update` flags as values (None: leave alone).
#[derive(Debug, Default, Clone)]
pub struct UpdateFlags {
    /// --memory
    pub memory: Option<i64>,
    /// --memory-swap
    pub memory_swap: Option<i64>,
    /// --memory-reservation
    pub memory_reservation: Option<i64>,
    /// --kernel-memory
    pub kernel_memory: Option<i64>,
    /// --cpu-shares
    pub cpu_shares: Option<u64>,
    /// --cpu-period
    pub cpu_period: Option<u64>,
    /// --cpu-quota
    pub cpu_quota: Option<i64>,
    /// --cpuset-cpus
    pub cpuset_cpus: Option<String>,
    /// --cpuset-mems
    pub cpuset_mems: Option<String>,
    /// --pids-limit
    pub pids_limit: Option<i64>,
    /// --blkio-weight
    pub blkio_weight: Option<u16>,
}

/// Builds the resources document from flags (as JSON, so the spec types do the validation).
pub fn resources_from_flags(f: &UpdateFlags) -> Result<LinuxResources, Error> {
    let mut v = serde_json::json!({});
    let mut mem = serde_json::Map::new();
    if let Some(x) = f.memory {
        mem.insert("limit".into(), x.into());
    }
    if let Some(x) = f.memory_swap {
        mem.insert("swap".into(), x.into());
    }
    if let Some(x) = f.memory_reservation {
        mem.insert("reservation".into(), x.into());
    }
    if let Some(x) = f.kernel_memory {
        mem.insert("kernel".into(), x.into());
    }
    if !mem.is_empty() {
        v["memory"] = mem.into();
    }
    let mut cpu = serde_json::Map::new();
    if let Some(x) = f.cpu_shares {
        cpu.insert("shares".into(), x.into());
    }
    if let Some(x) = f.cpu_period {
        cpu.insert("period".into(), x.into());
    }
    if let Some(x) = f.cpu_quota {
        cpu.insert("quota".into(), x.into());
    }
    if let Some(x) = &f.cpuset_cpus {
        cpu.insert("cpus".into(), x.clone().into());
    }
    if let Some(x) = &f.cpuset_mems {
        cpu.insert("mems".into(), x.clone().into());
    }
    if !cpu.is_empty() {
        v["cpu"] = cpu.into();
    }
    if let Some(x) = f.pids_limit {
        v["pids"] = serde_json::json!({"limit": x});
    }
    if let Some(x) = f.blkio_weight {
        v["blockIO"] = serde_json::json!({"weight": x});
    }
    serde_json::from_value(v).map_err(|e| Error::Usage(format!("update: {e}")))
}

/// Parses `-r` input (a `LinuxResources` JSON document).
pub fn resources_from_json(data: &[u8]) -> Result<LinuxResources, Error> {
    serde_json::from_slice(data).map_err(|e| Error::Usage(format!("update -r: {e}")))
}

/// Parses runc's size strings: plain bytes or with k/m/g suffix (`512m`), `-1` for unlimited.
pub fn parse_size(s: &str) -> Result<i64, Error> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<i64>()
        .map(|n| n * mult)
        .map_err(|_| Error::Usage(format!("invalid size {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_resources_and_sizes_parse() {
        assert_eq!(parse_size("512m").expect("512m"), 512 << 20);
        assert_eq!(parse_size("-1").expect("-1"), -1);
        assert!(parse_size("x").is_err());
        let r = resources_from_flags(&UpdateFlags {
            memory: Some(1 << 20),
            pids_limit: Some(10),
            ..Default::default()
        })
        .expect("resources");
        assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(1 << 20));
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(10));
    }
}
