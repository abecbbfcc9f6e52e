//! Facts about the host the daemon runs on (CPUs, memory, kernel, OS, cgroup version), read from
//! the kernel each time they are asked for, and the daemon's stable identity.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::state::{self, StateError};

/// What `/info` and `/version` report about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub ncpu: u32,
    pub mem_total: u64,
    pub kernel_version: String,
    pub operating_system: String,
    pub os_version: String,
    /// `uname -m`: `x86_64`, `aarch64`.
    pub architecture: String,
    pub hostname: String,
    /// `"1"` or `"2"`: `"2"` only when /sys/fs/cgroup itself is cgroup2 (unified); hybrid is 1.
    pub cgroup_version: String,
    pub cgroup: CgroupFeatures,
    pub ipv4_forwarding: bool,
}

/// Which resource controls the cgroup hierarchy offers (what `/info` reports as limits support).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupFeatures {
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    pub cpu_shares: bool,
    pub cpuset: bool,
    pub pids_limit: bool,
}

impl CgroupFeatures {
    /// Probe the controllers' files: v1 per-controller hierarchies, or v2's `cgroup.controllers`.
    pub fn probe(cgroup_root: &Path, version: &str) -> Self {
        if version == "2" {
            let ctrls =
                fs::read_to_string(cgroup_root.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| ctrls.split_whitespace().any(|x| x == c);
            return Self {
                memory_limit: has("memory"),
                swap_limit: has("memory"),
                cpu_cfs_period: has("cpu"),
                cpu_cfs_quota: has("cpu"),
                cpu_shares: has("cpu"),
                cpuset: has("cpuset"),
                pids_limit: has("pids"),
            };
        }
        let f = |p: &str| cgroup_root.join(p).exists();
        Self {
            memory_limit: f("memory/memory.limit_in_bytes"),
            swap_limit: f("memory/memory.memsw.limit_in_bytes"),
            cpu_cfs_period: f("cpu/cpu.cfs_period_us"),
            cpu_cfs_quota: f("cpu/cpu.cfs_quota_us"),
            cpu_shares: f("cpu/cpu.shares"),
            cpuset: f("cpuset/cpuset.cpus"),
            pids_limit: f("pids/pids.max") || f("pids/pids.current"),
        }
    }
}

/// The filesystem under `path`, named as Docker's overlay2 driver reports it ("extfs", "xfs"...).
pub fn backing_filesystem(path: &Path) -> String {
    use nix::sys::statfs::{self, FsType};
    let Ok(st) = statfs::statfs(path) else {
        return "unknown".to_string();
    };
    let t = st.filesystem_type();
    let named: &[(FsType, &str)] = &[
        (statfs::EXT4_SUPER_MAGIC, "extfs"),
        (statfs::XFS_SUPER_MAGIC, "xfs"),
        (statfs::BTRFS_SUPER_MAGIC, "btrfs"),
        (statfs::TMPFS_MAGIC, "tmpfs"),
        (statfs::OVERLAYFS_SUPER_MAGIC, "overlayfs"),
    ];
    named
        .iter()
        .find(|(m, _)| *m == t)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| format!("{:#x}", t.0))
}

/// Open file descriptors and threads of this process (`NFd`, and `NGoroutines`' nearest kin).
pub fn process_counts() -> (u64, u64) {
    let fds = fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let threads = fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    (fds, threads)
}

impl HostFacts {
    pub fn read() -> Self {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let ncpu = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let (operating_system, os_version) = os_release(Path::new("/etc/os-release"));
        let cgroup_version = cgroup_version();
        Self {
            ncpu,
            mem_total: mem_total(Path::new("/proc/meminfo")),
            kernel_version: field(|u| u.release()),
            operating_system,
            os_version,
            architecture: field(|u| u.machine()),
            hostname: field(|u| u.nodename()),
            cgroup: CgroupFeatures::probe(Path::new("/sys/fs/cgroup"), &cgroup_version),
            cgroup_version,
            ipv4_forwarding: fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .is_ok_and(|v| v.trim() == "1"),
        }
    }
}

/// Go's GOARCH name for `uname -m` (what `/version` `Arch` carries).
pub fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" => "386",
        "armv7l" => "arm",
        other => other,
    }
}

fn mem_total(path: &Path) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn os_release(path: &Path) -> (String, String) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    (
        get("PRETTY_NAME").unwrap_or_else(|| "Linux".to_string()),
        get("VERSION_ID").unwrap_or_default(),
    )
}

fn cgroup_version() -> String {
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => "2".to_string(),
        _ => "1".to_string(),
    }
}

/// The daemon's ID: a random UUID made on first start and kept in `<data-root>/engine-id`.
pub fn load_or_create_id(data_root: &Path) -> Result<String, StateError> {
    let path = data_root.join("engine-id");
    if let Some(id) = state::read_json::<String>(&path)? {
        return Ok(id);
    }
    let b = random_bytes::<16>().map_err(|source| StateError::Read {
        path: "/dev/urandom".into(),
        source,
    })?;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let id = format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 | (b[8] & 3),
        &h[17..20],
        &h[20..32]
    );
    state::write_json(&path, &id)?;
    Ok(id)
}

/// `N` bytes from the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// A random 64-hex-digit id (Docker's format for anonymous volume names and object ids).
pub fn random_id() -> std::io::Result<String> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_host() {
        let h = HostFacts::read();
        assert!(h.ncpu >= 1);
        assert!(h.mem_total > 64 << 20, "MemTotal {}", h.mem_total);
        assert!(!h.kernel_version.is_empty());
        assert!(!h.architecture.is_empty());
        assert!(h.cgroup_version == "1" || h.cgroup_version == "2");
        let (fds, threads) = process_counts();
        assert!(fds >= 3 && threads >= 1);
        assert_ne!(backing_filesystem(Path::new("/")), "unknown");
    }

    #[test]
    fn probes_v1_controller_files() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("memory")).unwrap();
        fs::write(d.path().join("memory/memory.limit_in_bytes"), "0").unwrap();
        fs::create_dir_all(d.path().join("pids")).unwrap();
        fs::write(d.path().join("pids/pids.max"), "max").unwrap();
        let f = CgroupFeatures::probe(d.path(), "1");
        assert!(f.memory_limit && f.pids_limit);
        assert!(!f.swap_limit && !f.cpu_shares);
        fs::write(d.path().join("cgroup.controllers"), "cpu memory").unwrap();
        let f = CgroupFeatures::probe(d.path(), "2");
        assert!(f.memory_limit && f.cpu_shares && !f.pids_limit);
    }

    #[test]
    fn parses_os_release() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("os-release");
        fs::write(
            &p,
            "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n",
        )
        .unwrap();
        assert_eq!(
            os_release(&p),
            ("Debian GNU/Linux 12 (bookworm)".into(), "12".into())
        );
        assert_eq!(os_release(&d.path().join("none")).0, "Linux");
    }

    #[test]
    fn id_is_stable_and_uuid_shaped() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create_id(d.path()).unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(load_or_create_id(d.path()).unwrap(), a);
        let r = random_id().unwrap();
        assert_eq!(r.len(), 64);
        assert_ne!(r, random_id().unwrap());
    }
}
