//! System wire types: `GET /version`, `GET /info`, and the headers of `/_ping`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One entry of `Components` in `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<HashMap<String, String>>,
}

/// Body of `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SystemVersion {
    #[serde(rename = "Platform", default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(rename = "Components", default)]
    pub components: Option<Vec<ComponentVersion>>,
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "ApiVersion")]
    pub api_version: String,
    #[serde(rename = "MinAPIVersion", default)]
    pub min_api_version: Option<String>,
    #[serde(rename = "GitCommit", default)]
    pub git_commit: Option<String>,
    #[serde(rename = "GoVersion", default)]
    pub go_version: Option<String>,
    #[serde(rename = "Os")]
    pub os: String,
    #[serde(rename = "Arch")]
    pub arch: String,
    #[serde(rename = "KernelVersion", default)]
    pub kernel_version: Option<String>,
    #[serde(
        rename = "Experimental",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub experimental: Option<bool>,
    #[serde(rename = "BuildTime", default)]
    pub build_time: Option<String>,
}

/// `{"Name": "..."}` of the platform in `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Platform {
    pub name: String,
}

/// An OCI runtime the daemon can use (`Runtimes` in `GET /info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Runtime {
    #[serde(rename = "path")]
    pub path: String,
    #[serde(
        rename = "runtimeArgs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_args: Option<Vec<String>>,
}

/// `Plugins` in `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PluginsInfo {
    pub volume: Option<Vec<String>>,
    pub network: Option<Vec<String>>,
    pub authorization: Option<Vec<String>>,
    pub log: Option<Vec<String>>,
}

/// `RegistryConfig` in `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryServiceConfig {
    #[serde(rename = "InsecureRegistryCIDRs")]
    pub insecure_registry_cidrs: Option<Vec<String>>,
    pub index_configs: Option<HashMap<String, IndexInfo>>,
    pub mirrors: Option<Vec<String>>,
}

/// One registry of `RegistryConfig.IndexConfigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct IndexInfo {
    pub name: String,
    pub mirrors: Vec<String>,
    pub secure: bool,
    pub official: bool,
}

/// `Swarm` in `GET /info` (berth has no swarm: `LocalNodeState` is `inactive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmInfo {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "NodeAddr")]
    pub node_addr: String,
    pub local_node_state: String,
    pub control_available: bool,
    pub error: String,
    pub remote_managers: Option<Vec<serde_json::Value>>,
}

/// A commit reference (`ContainerdCommit`, `RuncCommit`, `InitCommit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Commit {
    #[serde(rename = "ID")]
    pub id: String,
}

/// Body of `GET /info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SystemInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Containers")]
    pub containers: i64,
    #[serde(rename = "ContainersRunning")]
    pub containers_running: i64,
    #[serde(rename = "ContainersPaused")]
    pub containers_paused: i64,
    #[serde(rename = "ContainersStopped")]
    pub containers_stopped: i64,
    #[serde(rename = "Images")]
    pub images: i64,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "DriverStatus")]
    pub driver_status: Option<Vec<[String; 2]>>,
    #[serde(rename = "Plugins")]
    pub plugins: PluginsInfo,
    #[serde(rename = "MemoryLimit")]
    pub memory_limit: bool,
    #[serde(rename = "SwapLimit")]
    pub swap_limit: bool,
    #[serde(rename = "CpuCfsPeriod")]
    pub cpu_cfs_period: bool,
    #[serde(rename = "CpuCfsQuota")]
    pub cpu_cfs_quota: bool,
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    #[serde(rename = "PidsLimit")]
    pub pids_limit: bool,
    #[serde(rename = "OomKillDisable")]
    pub oom_kill_disable: bool,
    #[serde(rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    #[serde(rename = "Debug")]
    pub debug: bool,
    #[serde(rename = "NFd")]
    pub nfd: i64,
    #[serde(rename = "NGoroutines")]
    pub ngoroutines: i64,
    #[serde(rename = "SystemTime")]
    pub system_time: String,
    #[serde(rename = "LoggingDriver")]
    pub logging_driver: String,
    #[serde(rename = "CgroupDriver")]
    pub cgroup_driver: String,
    #[serde(rename = "CgroupVersion")]
    pub cgroup_version: String,
    #[serde(rename = "NEventsListener")]
    pub nevents_listener: i64,
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    #[serde(rename = "Architecture")]
    pub architecture: String,
    #[serde(rename = "IndexServerAddress")]
    pub index_server_address: String,
    #[serde(rename = "RegistryConfig")]
    pub registry_config: Option<RegistryServiceConfig>,
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    #[serde(rename = "MemTotal")]
    pub mem_total: i64,
    #[serde(rename = "GenericResources")]
    pub generic_resources: Option<Vec<serde_json::Value>>,
    #[serde(rename = "DockerRootDir")]
    pub docker_root_dir: String,
    #[serde(rename = "HttpProxy")]
    pub http_proxy: String,
    #[serde(rename = "HttpsProxy")]
    pub https_proxy: String,
    #[serde(rename = "NoProxy")]
    pub no_proxy: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Labels")]
    pub labels: Vec<String>,
    #[serde(rename = "ExperimentalBuild")]
    pub experimental_build: bool,
    #[serde(rename = "ServerVersion")]
    pub server_version: String,
    #[serde(rename = "Runtimes")]
    pub runtimes: HashMap<String, Runtime>,
    #[serde(rename = "DefaultRuntime")]
    pub default_runtime: String,
    #[serde(rename = "Swarm")]
    pub swarm: SwarmInfo,
    #[serde(rename = "LiveRestoreEnabled")]
    pub live_restore_enabled: bool,
    #[serde(rename = "Isolation")]
    pub isolation: String,
    #[serde(rename = "InitBinary")]
    pub init_binary: String,
    #[serde(rename = "ContainerdCommit")]
    pub containerd_commit: Commit,
    #[serde(rename = "RuncCommit")]
    pub runc_commit: Commit,
    #[serde(rename = "InitCommit")]
    pub init_commit: Commit,
    #[serde(rename = "SecurityOptions")]
    pub security_options: Vec<String>,
    #[serde(rename = "CDISpecDirs")]
    pub cdi_spec_dirs: Vec<String>,
    #[serde(rename = "Warnings")]
    pub warnings: Option<Vec<String>>,
}

/// Body of `GET /system/df`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Option<Vec<serde_json::Value>>,
    pub containers: Option<Vec<serde_json::Value>>,
    pub volumes: Option<Vec<crate::volume::Volume>>,
    pub build_cache: Option<Vec<serde_json::Value>>,
}
