//! Daemon configuration: where state lives, which addresses to serve, and TLS material; built
//! from flags (and optionally a JSON file), validated before the daemon touches anything.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// Default `--data-root`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
/// Default `--exec-root`.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
/// Default socket, inside the default exec root.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";
/// Default host URL clients use.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid host {0:?}: expected unix:///path or tcp://host:port")]
    Host(String),
    #[error("refusing to listen on {0} without TLS: plain TCP would give root to anyone who can reach it; pass --tlsverify --tlscacert --tlscert --tlskey")]
    PlainTcp(String),
    #[error("--tlsverify needs --tlscacert, --tlscert and --tlskey (missing {0})")]
    TlsIncomplete(&'static str),
    #[error("{field} must be an absolute path, got {path}")]
    RelativePath { field: &'static str, path: PathBuf },
    #[error("read config file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Network(String),
    #[error("parse config file {path}")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// An address to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl FromStr for Host {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Ok(Host::Unix(PathBuf::from(DEFAULT_SOCKET)));
            }
            if !p.starts_with('/') {
                return Err(ConfigError::Host(s.to_string()));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            let Some((h, port)) = a.rsplit_once(':') else {
                return Err(ConfigError::Host(s.to_string()));
            };
            if h.is_empty() || port.parse::<u16>().is_err() {
                return Err(ConfigError::Host(s.to_string()));
            }
            return Ok(Host::Tcp(a.to_string()));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        Err(ConfigError::Host(s.to_string()))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Certificates for `-H tcp://` (mutual TLS: clients must present a cert signed by `ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The daemon's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<Host>,
    pub tls: Option<TlsFiles>,
    pub debug: bool,
    /// Path of the OCI runtime (`berth-runtime`), reported in `/info` `Runtimes`.
    pub runtime_path: PathBuf,
    /// The `berth-shim` binary started for each container.
    pub shim_path: PathBuf,
    /// Default registry for short names and insecure registries (flags, file, then
    /// `BERTH_DEFAULT_REGISTRY` / `BERTH_INSECURE_REGISTRIES`).
    pub registry: berth_image::reference::RegistrySettings,
    /// Networking: the default bridge, address pools, forwarding, firewall table.
    pub network: NetworkConfig,
}

/// dockerd's networking flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Interface of the default `bridge` network; `None` (`--bridge none`): no default bridge,
    /// containers default to `--network none`.
    pub bridge: Option<String>,
    /// `--bip`: the default bridge's gateway address and subnet.
    pub bip: Option<ipnet::Ipv4Net>,
    /// `--default-address-pool`: where subnets of networks created without one come from.
    pub pools: Vec<berth_network::ipam::AddressPool>,
    /// Set `net.ipv4.ip_forward=1` at startup (`--ip-forward`, default true).
    pub ip_forward: bool,
    /// The nftables table holding berth's rules.
    pub firewall_table: String,
    /// `--mtu`: MTU of the default bridge and its veths; `None` = the kernel's 1500.
    pub mtu: Option<u32>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: Some("berth0".into()),
            bip: None,
            pools: berth_network::ipam::default_pools(),
            ip_forward: true,
            firewall_table: "berth".into(),
            mtu: None,
        }
    }
}

/// Optional `daemon.json` keys (a subset of dockerd's, same names); flags win over the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub debug: Option<bool>,
    pub default_registry: Option<String>,
    pub insecure_registries: Option<Vec<String>>,
    pub bridge: Option<String>,
    pub bip: Option<String>,
    pub default_address_pools: Option<Vec<PoolEntry>>,
    pub ip_forward: Option<bool>,
    pub firewall_table: Option<String>,
    pub mtu: Option<u32>,
}

/// A `default-address-pools` entry of daemon.json (`{"base": "10.10.0.0/16", "size": 24}`).
#[derive(Debug, Clone, Deserialize)]
pub struct PoolEntry {
    pub base: String,
    pub size: u8,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let data = std::fs::read(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&data).map_err(|source| ConfigError::ParseFile {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Raw settings before validation (flags merged over the file).
#[derive(Debug, Clone, Default)]
pub struct ConfigInput {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Vec<String>,
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub debug: bool,
    pub runtime_path: Option<PathBuf>,
    pub shim_path: Option<PathBuf>,
    pub default_registry: Option<String>,
    pub insecure_registries: Vec<String>,
    /// `--bridge NAME|none`.
    pub bridge: Option<String>,
    /// `--bip CIDR`.
    pub bip: Option<String>,
    /// `--default-address-pool base=CIDR,size=N` (repeatable).
    pub default_address_pools: Vec<String>,
    pub ip_forward: Option<bool>,
    pub firewall_table: Option<String>,
    /// `--mtu N`.
    pub mtu: Option<u32>,
}

impl ConfigInput {
    /// Fill what the flags left unset from a config file.
    pub fn merge_file(&mut self, f: FileConfig) {
        self.data_root = self.data_root.take().or(f.data_root);
        self.exec_root = self.exec_root.take().or(f.exec_root);
        if self.hosts.is_empty() {
            self.hosts = f.hosts.unwrap_or_default();
        }
        self.tlsverify |= f.tlsverify.unwrap_or(false);
        self.tlscacert = self.tlscacert.take().or(f.tlscacert);
        self.tlscert = self.tlscert.take().or(f.tlscert);
        self.tlskey = self.tlskey.take().or(f.tlskey);
        self.debug |= f.debug.unwrap_or(false);
        self.default_registry = self.default_registry.take().or(f.default_registry);
        self.insecure_registries
            .extend(f.insecure_registries.unwrap_or_default());
        self.bridge = self.bridge.take().or(f.bridge);
        self.bip = self.bip.take().or(f.bip);
        if self.default_address_pools.is_empty() {
            self.default_address_pools = f
                .default_address_pools
                .unwrap_or_default()
                .into_iter()
                .map(|p| format!("base={},size={}", p.base, p.size))
                .collect();
        }
        self.ip_forward = self.ip_forward.or(f.ip_forward);
        self.firewall_table = self.firewall_table.take().or(f.firewall_table);
        self.mtu = self.mtu.or(f.mtu);
    }

    /// Validate: absolute roots, parseable hosts, TCP only with complete mutual TLS. With no host
    /// given, the socket is `<exec-root>/berth.sock`.
    pub fn validate(self) -> Result<DaemonConfig, ConfigError> {
        let data_root = self
            .data_root
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT));
        let exec_root = self
            .exec_root
            .unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT));
        for (field, p) in [("--data-root", &data_root), ("--exec-root", &exec_root)] {
            if !p.is_absolute() {
                return Err(ConfigError::RelativePath {
                    field,
                    path: p.clone(),
                });
            }
        }
        let mut hosts = self
            .hosts
            .iter()
            .map(|h| h.parse())
            .collect::<Result<Vec<Host>, _>>()?;
        if hosts.is_empty() {
            hosts.push(Host::Unix(exec_root.join("berth.sock")));
        }
        let tls = if self.tlsverify {
            Some(TlsFiles {
                ca: self
                    .tlscacert
                    .ok_or(ConfigError::TlsIncomplete("--tlscacert"))?,
                cert: self
                    .tlscert
                    .ok_or(ConfigError::TlsIncomplete("--tlscert"))?,
                key: self.tlskey.ok_or(ConfigError::TlsIncomplete("--tlskey"))?,
            })
        } else {
            None
        };
        if tls.is_none() {
            if let Some(h) = hosts.iter().find(|h| matches!(h, Host::Tcp(_))) {
                return Err(ConfigError::PlainTcp(h.to_string()));
            }
        }
        let runtime_path = self
            .runtime_path
            .unwrap_or_else(|| PathBuf::from("berth-runtime"));
        let shim_path = self
            .shim_path
            .unwrap_or_else(|| PathBuf::from("berth-shim"));
        let mut registry = berth_image::reference::RegistrySettings::default();
        if let Some(r) = self.default_registry.filter(|r| !r.trim().is_empty()) {
            registry.default_registry = berth_image::reference::normalize_registry(r.trim());
        }
        registry.insecure_registries.extend(
            self.insecure_registries
                .iter()
                .map(|h| berth_image::reference::normalize_registry(h.trim())),
        );
        let registry = registry.with_env_overrides();
        let mut network = NetworkConfig::default();
        if let Some(b) = self.bridge.filter(|b| !b.is_empty()) {
            if b == "none" {
                network.bridge = None;
            } else if b.len() > 15 || b.contains(['/', ' ']) {
                return Err(ConfigError::Network(format!(
                    "invalid --bridge {b:?}: an interface name of at most 15 characters"
                )));
            } else {
                network.bridge = Some(b);
            }
        }
        if let Some(bip) = self.bip.filter(|b| !b.is_empty()) {
            network.bip = Some(bip.parse().map_err(|_| {
                ConfigError::Network(format!("invalid --bip {bip:?}: expected an address/prefix"))
            })?);
        }
        if !self.default_address_pools.is_empty() {
            network.pools = self
                .default_address_pools
                .iter()
                .map(|p| {
                    p.parse().map_err(|e: berth_network::ipam::IpamError| {
                        ConfigError::Network(e.to_string())
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(f) = self.ip_forward {
            network.ip_forward = f;
        }
        if let Some(t) = self.firewall_table.filter(|t| !t.is_empty()) {
            network.firewall_table = t;
        }
        if let Some(m) = self.mtu {
            // 68: the IPv4 minimum; 65535: what a veth and a bridge accept
            if !(68..=65535).contains(&m) {
                return Err(ConfigError::Network(format!(
                    "invalid --mtu {m}: expected 68 to 65535"
                )));
            }
            network.mtu = Some(m);
        }
        Ok(DaemonConfig {
            data_root,
            exec_root,
            hosts,
            tls,
            debug: self.debug,
            runtime_path,
            shim_path,
            registry,
            network,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            "unix:///tmp/s".parse::<Host>().unwrap(),
            Host::Unix("/tmp/s".into())
        );
        assert_eq!(
            "unix://".parse::<Host>().unwrap(),
            Host::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            "tcp://127.0.0.1:2376".parse::<Host>().unwrap(),
            Host::Tcp("127.0.0.1:2376".into())
        );
        for bad in [
            "tcp://nohost",
            "tcp://:1",
            "http://x:1",
            "unix://rel",
            "tcp://h:99999",
        ] {
            assert!(bad.parse::<Host>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_socket_into_exec_root() {
        let c = ConfigInput {
            exec_root: Some("/tmp/x".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(c.hosts, vec![Host::Unix("/tmp/x/berth.sock".into())]);
        assert_eq!(c.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
    }

    #[test]
    fn refuses_plain_tcp_and_partial_tls() {
        let plain = ConfigInput {
            hosts: vec!["tcp://127.0.0.1:2375".into()],
            ..Default::default()
        };
        let err = plain.clone().validate().unwrap_err();
        assert!(matches!(err, ConfigError::PlainTcp(_)), "{err}");
        assert!(err.to_string().contains("without TLS"));
        let partial = ConfigInput {
            tlsverify: true,
            tlscacert: Some("/ca".into()),
            ..plain.clone()
        };
        assert!(matches!(
            partial.validate(),
            Err(ConfigError::TlsIncomplete("--tlscert"))
        ));
        let full = ConfigInput {
            tlsverify: true,
            tlscacert: Some("/ca".into()),
            tlscert: Some("/c".into()),
            tlskey: Some("/k".into()),
            ..plain
        };
        assert!(full.validate().unwrap().tls.is_some());
    }

    #[test]
    fn refuses_relative_roots() {
        let c = ConfigInput {
            data_root: Some("rel".into()),
            ..Default::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RelativePath { .. })
        ));
    }

    #[test]
    fn flags_win_over_file() {
        let mut c = ConfigInput {
            data_root: Some("/flag".into()),
            ..Default::default()
        };
        let f: FileConfig =
            serde_json::from_str(r#"{"data-root":"/file","exec-root":"/ex","debug":true}"#)
                .unwrap();
        c.merge_file(f);
        assert_eq!(c.data_root, Some("/flag".into()));
        assert_eq!(c.exec_root, Some("/ex".into()));
        assert!(c.debug);
        assert!(serde_json::from_str::<FileConfig>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn mtu_from_file_or_flag_and_checked() {
        let mut c = ConfigInput::default();
        c.merge_file(serde_json::from_str(r#"{"mtu":9000}"#).expect("daemon.json"));
        assert_eq!(c.clone().validate().expect("valid").network.mtu, Some(9000));
        assert_eq!(
            ConfigInput::default()
                .validate()
                .expect("valid")
                .network
                .mtu,
            None
        );
        let bad = ConfigInput {
            mtu: Some(70000),
            ..Default::default()
        };
        let e = bad.validate().expect_err("too big");
        assert!(e.to_string().contains("--mtu 70000"), "{e}");
    }
}
