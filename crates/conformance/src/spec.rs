//! The part of an OCI runtime config.json the checker verifies, and the harness's expectations file.
//!
//! Only the fields that can be observed from inside a container are declared; unknown fields are
//! ignored, so a config with extensions (or fields a runtime rejects) still loads.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Where the harness puts the bundle's config.json inside the rootfs.
pub const SPEC_PATH: &str = "/.berth-spec/config.json";
/// Where the harness puts what it knows from outside (host namespace inodes, ...).
pub const EXPECT_PATH: &str = "/.berth-spec/expect.json";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads and parses one JSON file.
pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, LoadError> {
    let data = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| LoadError::Parse {
        path: path.display().to_string(),
        source,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    pub process: Option<Process>,
    pub root: Option<Root>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub mounts: Vec<Mount>,
    pub linux: Option<Linux>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Option<Capabilities>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i64>,
    pub io_priority: Option<IoPriority>,
    pub apparmor_profile: Option<String>,
    #[serde(rename = "execCPUAffinity")]
    pub exec_cpu_affinity: Option<ExecCpuAffinity>,
    pub scheduler: Option<Scheduler>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Scheduler {
    pub policy: String,
    pub nice: Option<i32>,
    pub priority: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExecCpuAffinity {
    pub initial: Option<String>,
    #[serde(rename = "final")]
    pub final_: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub umask: Option<u32>,
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub inheritable: Vec<String>,
    pub permitted: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IoPriority {
    pub class: String,
    pub priority: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub options: Vec<String>,
    #[serde(rename = "uidMappings")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(rename = "gidMappings")]
    pub gid_mappings: Vec<IdMapping>,
}

impl Mount {
    /// A bind mount is named by its type or by a `bind`/`rbind` option.
    pub fn is_bind(&self) -> bool {
        matches!(self.kind.as_deref(), Some("bind") | Some("rbind"))
            || self.options.iter().any(|o| o == "bind" || o == "rbind")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    pub devices: Vec<Device>,
    pub sysctl: BTreeMap<String, String>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub rootfs_propagation: Option<String>,
    pub seccomp: Option<Seccomp>,
    pub resources: Option<Resources>,
    pub cgroups_path: Option<String>,
    pub time_offsets: BTreeMap<String, TimeOffset>,
    pub personality: Option<Personality>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Personality {
    pub domain: String,
    pub flags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Device {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub major: i64,
    pub minor: i64,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    pub default_errno_ret: Option<i32>,
    pub syscalls: Vec<SeccompRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SeccompRule {
    pub names: Vec<String>,
    pub action: String,
    pub errno_ret: Option<i32>,
    pub args: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Resources {
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
    pub pids: Option<Pids>,
    pub hugepage_limits: Vec<HugepageLimit>,
    pub devices: Vec<DeviceRule>,
    #[serde(rename = "blockIO")]
    pub block_io: Option<BlockIo>,
    pub network: Option<Network>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlockIo {
    pub weight: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Network {
    #[serde(rename = "classID")]
    pub class_id: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    pub swap: Option<i64>,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TimeOffset {
    pub secs: i64,
    pub nanosecs: u32,
}

/// What the harness measured outside the container and the checker can't see from inside.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Expect {
    /// `/proc/self/ns/<name>` inode of the runtime's caller, by proc name (`net`, `mnt`, ...).
    pub host_ns: BTreeMap<String, u64>,
    /// Inode of each `linux.namespaces[].path`, by proc name.
    pub ns_path: BTreeMap<String, u64>,
    /// The propagation `/` must show when it differs from the config's word: a `slave` of a
    /// host mount that is not shared is private.
    pub rootfs_propagation: Option<String>,
    /// For each bind mount destination: the mountinfo `root` the bind must show (the source's
    /// path inside the host filesystem that holds it).
    pub bind_roots: BTreeMap<String, String>,
    /// The mountinfo `root` of the container's `/`: the bundle's rootfs inside its filesystem.
    pub root_root: Option<String>,
    /// Owner (uid, gid) of each idmapped bind mount's source directory on the host.
    pub source_owner: BTreeMap<String, (u32, u32)>,
}

/// The `/proc/self/ns` file name of a spec namespace type.
pub fn proc_ns_name(spec_type: &str) -> &str {
    match spec_type {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runc_default_shape_and_ignores_unknown_fields() {
        let json = r#"{"ociVersion":"1.0.2","unknown":1,
          "process":{"user":{"uid":0,"gid":0},"args":["a"],"cwd":"/",
            "capabilities":{"bounding":["CAP_KILL"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":5,"soft":4}]},
          "mounts":[{"destination":"/x","type":"none","source":"/y","options":["rbind"]}],
          "linux":{"namespaces":[{"type":"network","path":"/proc/1/ns/net"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":10}],
            "resources":{"memory":{"limit":5,"disableOOMKiller":true},"devices":[{"allow":false,"access":"rwm"}]}}}"#;
        let spec: Spec = serde_json::from_str(json).expect("valid json");
        let process = spec.process.as_ref().expect("process");
        assert_eq!(process.rlimits[0].soft, 4);
        assert_eq!(
            process.capabilities.as_ref().expect("caps").bounding,
            ["CAP_KILL"]
        );
        assert!(spec.mounts[0].is_bind());
        let linux = spec.linux.as_ref().expect("linux");
        assert_eq!(proc_ns_name(&linux.namespaces[0].kind), "net");
        assert_eq!(linux.uid_mappings[0].host_id, 1000);
        let res = linux.resources.as_ref().expect("resources");
        assert_eq!(
            res.memory.as_ref().and_then(|m| m.disable_oom_killer),
            Some(true)
        );
        assert!(!res.devices[0].allow);
    }
}
