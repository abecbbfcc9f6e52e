//! Networks in the engine: docker's network objects (the predefined `bridge`, `host`, `none`
//! and user-defined bridge networks) over `berth_network`'s store, bridges and DNS, with
//! docker's rules and messages: duplicate names, overlapping subnets, default address pools
//! that avoid existing networks and host routes, removal refused while containers use a
//! network, events (create, connect, disconnect, destroy). Containers join networks through
//! `containers::network`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_network::nft::{Firewall, FirewallError};
use berth_network::ports::{PortError, PortMapping};
use berth_network::store::{Network, NetworkStore, StoreError};
use berth_network::{bridge, dns, ipam};
use ipnet::Ipv4Net;

use crate::config::NetworkConfig;
use crate::events::{Event, EventBus};
use crate::ErrorKind;

/// Errors of network operations.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// docker answers 403 for these (predefined networks).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bridge(#[from] bridge::BridgeError),
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Ports(#[from] PortError),
}

impl NetworkError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::NotFound(_) => ErrorKind::NotFound,
            NetworkError::Invalid(_) => ErrorKind::InvalidArgument,
            NetworkError::Conflict(_) | NetworkError::Forbidden(_) => ErrorKind::Conflict,
            NetworkError::Store(e) => match e {
                StoreError::NotFound(_) => ErrorKind::NotFound,
                StoreError::NameExists(_)
                | StoreError::Overlap { .. }
                | StoreError::AlreadyAttached { .. } => ErrorKind::Conflict,
                StoreError::Ambiguous { .. } | StoreError::NoPool { .. } => {
                    ErrorKind::InvalidArgument
                }
                StoreError::Ipam(i) => match i {
                    ipam::IpamError::Exhausted { .. } | ipam::IpamError::InUse { .. } => {
                        ErrorKind::Conflict
                    }
                    _ => ErrorKind::InvalidArgument,
                },
                StoreError::Io { .. } | StoreError::Parse { .. } => ErrorKind::Internal,
            },
            NetworkError::Ports(PortError::InUse { .. }) => ErrorKind::Conflict,
            NetworkError::Ports(PortError::Invalid { .. } | PortError::Ipv6(_)) => {
                ErrorKind::InvalidArgument
            }
            NetworkError::Bridge(_)
            | NetworkError::Dns(_)
            | NetworkError::Firewall(_)
            | NetworkError::Ports(_) => ErrorKind::Internal,
        }
    }

    /// docker's 403 for predefined networks.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, NetworkError::Forbidden(_))
    }
}

/// `POST /networks/create`, in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
}

/// Docker's option naming the bridge interface.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// The engine's networks.
pub struct Networks {
    store: NetworkStore,
    dns: dns::Aardvark,
    cfg: NetworkConfig,
    netns_dir: PathBuf,
    events: EventBus,
    /// Serialises create/remove/attach so subnet checks and bridge setup don't race.
    lock: std::sync::Mutex<()>,
    firewall: Firewall,
    /// Bridges whose firewall rules this daemon has (re)written since it started.
    firewalled: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn random_id() -> String {
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> String {
    berth_api::time::Timestamp::now().rfc3339_nano()
}

fn predefined(name: &str, driver: &str) -> Network {
    Network {
        id: random_id(),
        name: name.into(),
        driver: driver.into(),
        created: now(),
        bridge: String::new(),
        pool: None,
        internal: false,
        attachable: false,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        predefined: true,
        endpoints: BTreeMap::new(),
        last_ip: None,
    }
}

impl Networks {
    /// Open the store under `<data-root>/network`, make the predefined networks, the default
    /// bridge (when `--bridge` isn't `none`) and turn on forwarding if asked.
    pub fn open(
        cfg: &NetworkConfig,
        data_root: &Path,
        exec_root: &Path,
        events: EventBus,
    ) -> Result<Self, NetworkError> {
        let store = NetworkStore::open(&data_root.join("network"))?;
        let this = Self {
            store,
            dns: dns::Aardvark::new(
                Path::new(dns::DEFAULT_AARDVARK),
                &exec_root.join("aardvark-dns"),
            ),
            cfg: cfg.clone(),
            netns_dir: exec_root.join("netns"),
            events,
            lock: std::sync::Mutex::new(()),
            firewall: Firewall::new(&cfg.firewall_table),
            firewalled: std::sync::Mutex::new(Default::default()),
        };
        for (name, driver) in [("none", "null"), ("host", "host")] {
            if this.store.get(name).is_err() {
                this.store.insert(predefined(name, driver))?;
            }
        }
        match &cfg.bridge {
            Some(b) => this.ensure_default_bridge(b)?,
            None => {
                if let Ok(n) = this.store.get("bridge") {
                    if n.endpoints.is_empty() {
                        this.store.remove(&n.id)?;
                    }
                }
            }
        }
        Ok(this)
    }

    fn ensure_default_bridge(&self, iface: &str) -> Result<(), NetworkError> {
        let existing = self.store.get("bridge").ok();
        let pool = match self.cfg.bip {
            Some(bip) => ipam::Pool::new(bip.trunc(), Some(bip.addr()), None)
                .map_err(|e| NetworkError::Invalid(format!("--bip {bip}: {e}")))?,
            None => match existing.as_ref().and_then(|n| n.pool) {
                Some(p) => p,
                None => {
                    let taken = self.taken_subnets(None)?;
                    let default: Ipv4Net = "172.17.0.0/16".parse().expect("literal");
                    let subnet = if taken.iter().any(|t| ipam::overlaps(t, &default)) {
                        ipam::pick_subnet(&self.cfg.pools, &taken)
                            .map_err(|e| NetworkError::Invalid(e.to_string()))?
                    } else {
                        default
                    };
                    ipam::Pool::new(subnet, None, None)
                        .map_err(|e| NetworkError::Invalid(e.to_string()))?
                }
            },
        };
        let mut n = existing.unwrap_or_else(|| predefined("bridge", "bridge"));
        n.bridge = iface.to_string();
        n.pool = Some(pool);
        n.options = BTreeMap::from([
            (BRIDGE_NAME_OPTION.to_string(), iface.to_string()),
            (
                "com.docker.network.bridge.default_bridge".to_string(),
                "true".to_string(),
            ),
        ]);
        if let Some(mtu) = self.cfg.mtu {
            n.options.insert(
                berth_network::store::MTU_OPTION.to_string(),
                mtu.to_string(),
            );
        }
        self.store.replace(n)?;
        Ok(())
    }

    /// Subnets that a new network must not overlap: other networks and host routes (minus
    /// routes of berth's own bridges).
    fn taken_subnets(&self, except: Option<&str>) -> Result<Vec<Ipv4Net>, NetworkError> {
        let mut taken: Vec<Ipv4Net> = self
            .store
            .list()
            .into_iter()
            .filter(|n| Some(n.id.as_str()) != except)
            .filter_map(|n| n.pool.map(|p| p.subnet))
            .collect();
        let ours: Vec<Ipv4Net> = taken.clone();
        for r in bridge::host_routes()? {
            if !ours.contains(&r) {
                taken.push(r);
            }
        }
        Ok(taken)
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    /// Where a container's network namespace is pinned.
    pub fn netns_path(&self, container: &str) -> PathBuf {
        self.netns_dir.join(container)
    }

    pub fn store(&self) -> &NetworkStore {
        &self.store
    }

    fn publish(&self, action: &str, n: &Network, extra: &[(&str, &str)]) {
        let mut attrs = BTreeMap::from([
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]);
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.to_string());
        }
        self.events
            .publish(Event::now("network", action, &n.id, attrs));
    }

    /// Event for a container joining or leaving.
    pub fn publish_endpoint(&self, action: &str, n: &Network, container: &str) {
        self.publish(action, n, &[("container", container)]);
    }

    /// By id, name or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Network, NetworkError> {
        self.store.get(key).map_err(|e| match e {
            StoreError::NotFound(k) => NetworkError::NotFound(k),
            e => e.into(),
        })
    }

    pub fn list(&self) -> Vec<Network> {
        self.store.list()
    }

    /// `POST /networks/create`.
    pub fn create(&self, req: CreateNetwork) -> Result<Network, NetworkError> {
        let _g = self.lock.lock().expect("network lock poisoned");
        let driver = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        if driver != "bridge" {
            return Err(NetworkError::Invalid(format!(
                "plugin \"{driver}\" not found: berth supports the bridge driver"
            )));
        }
        if req.name.is_empty() {
            return Err(NetworkError::Invalid("network name is required".into()));
        }
        if ["bridge", "host", "none", "default"].contains(&req.name.as_str()) {
            return Err(NetworkError::Forbidden(format!(
                "{} is a pre-defined network and cannot be created",
                req.name
            )));
        }
        if self.store.get(&req.name).is_ok_and(|n| n.name == req.name) {
            return Err(StoreError::NameExists(req.name).into());
        }
        let parse_net = |field: &str, s: &str| -> Result<Ipv4Net, NetworkError> {
            s.parse::<Ipv4Net>().map_err(|_| {
                NetworkError::Invalid(format!("invalid {field} {s:?}: expected an IPv4 CIDR"))
            })
        };
        let subnet = req
            .subnet
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_net("subnet", s))
            .transpose()?;
        let gateway = req
            .gateway
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    NetworkError::Invalid(format!(
                        "invalid gateway {s:?}: expected an IPv4 address"
                    ))
                })
            })
            .transpose()?;
        let range = req
            .ip_range
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_net("ip-range", s))
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || range.is_some()) {
            return Err(NetworkError::Invalid(
                "a gateway or ip-range needs a subnet".into(),
            ));
        }
        let subnet = match subnet {
            Some(s) => {
                if let Some(r) = bridge::host_routes()?.into_iter().find(|r| {
                    ipam::overlaps(r, &s) && !self.store.subnets().iter().any(|(_, o)| o == r)
                }) {
                    return Err(NetworkError::Conflict(format!(
                        "subnet {s} overlaps with the host's route to {r}"
                    )));
                }
                s
            }
            None => ipam::pick_subnet(&self.cfg.pools, &self.taken_subnets(None)?)
                .map_err(|e| NetworkError::Conflict(e.to_string()))?,
        };
        let pool = ipam::Pool::new(subnet, gateway, range)
            .map_err(|e| NetworkError::Invalid(e.to_string()))?;
        if let Some(m) = req.options.get(berth_network::store::MTU_OPTION) {
            if !m.parse::<u32>().is_ok_and(|m| (68..=65535).contains(&m)) {
                return Err(NetworkError::Invalid(format!(
                    "invalid {} {m:?}: an MTU from 68 to 65535",
                    berth_network::store::MTU_OPTION
                )));
            }
        }
        let id = random_id();
        let iface = match req
            .options
            .get(BRIDGE_NAME_OPTION)
            .filter(|b| !b.is_empty())
        {
            Some(b) if b.len() > 15 => {
                return Err(NetworkError::Invalid(format!(
                    "bridge name {b:?} is longer than 15 characters"
                )))
            }
            Some(b) => {
                if self.store.list().iter().any(|n| &n.bridge == b) {
                    return Err(NetworkError::Conflict(format!(
                        "bridge name {b} is already used by another network"
                    )));
                }
                b.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        let n = Network {
            id,
            name: req.name,
            driver,
            created: now(),
            bridge: iface.clone(),
            pool: Some(pool),
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            predefined: false,
            endpoints: BTreeMap::new(),
            last_ip: None,
        };
        self.store.insert(n.clone())?;
        // the bridge comes up now (docker does too), so the network is usable at once
        let created =
            match bridge::ensure_bridge(&iface, pool.gateway, subnet.prefix_len(), n.mtu()) {
                Ok(c) => c,
                Err(e) => {
                    let _ = self.store.remove(&n.id);
                    return Err(e.into());
                }
            };
        if let Err(e) = self.firewall_network(&n) {
            if created {
                let _ = bridge::delete_bridge(&iface);
            }
            let _ = self.store.remove(&n.id);
            return Err(e);
        }
        self.publish("create", &n, &[]);
        Ok(n)
    }

    /// `DELETE /networks/{id}`.
    pub fn remove(&self, key: &str) -> Result<(), NetworkError> {
        let _g = self.lock.lock().expect("network lock poisoned");
        let n = self.get(key)?;
        if n.predefined {
            return Err(NetworkError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !n.endpoints.is_empty() {
            let names: Vec<&str> = n.endpoints.values().map(|e| e.name.as_str()).collect();
            return Err(NetworkError::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                n.name,
                n.id,
                names.join(", ")
            )));
        }
        self.firewall.remove_network(&n.bridge)?;
        self.firewalled
            .lock()
            .expect("firewall set lock poisoned")
            .remove(&n.bridge);
        bridge::delete_bridge(&n.bridge)?;
        self.store.remove(&n.id)?;
        if let Err(e) = self.dns.remove_network(&n.name) {
            tracing::warn!(network = %n.name, error = %e, "removing DNS entries");
        }
        self.publish("destroy", &n, &[]);
        Ok(())
    }

    /// Rewrite the DNS entries of a user network from its endpoints.
    pub fn refresh_dns(&self, network_id: &str) -> Result<(), NetworkError> {
        let Ok(n) = self.store.get(network_id) else {
            return Ok(());
        };
        if !n.has_dns() {
            return Ok(());
        }
        let Some(pool) = n.pool else {
            return Ok(());
        };
        let entries: Vec<dns::Entry> = n
            .endpoints
            .values()
            .map(|e| {
                let mut names = vec![e.name.clone(), e.container.chars().take(12).collect()];
                names.extend(e.aliases.iter().cloned());
                dns::Entry {
                    container: e.container.clone(),
                    ip: e.ip,
                    names,
                    dns_servers: e.dns_servers.clone(),
                }
            })
            .collect();
        self.dns.set_network(&n.name, pool.gateway, &entries)?;
        Ok(())
    }

    /// Write the firewall rules of a bridge network (masquerade, isolation, internal) once per
    /// daemon run; idempotent.
    pub(crate) fn firewall_network(&self, n: &Network) -> Result<(), NetworkError> {
        let Some(pool) = n.pool else {
            return Ok(());
        };
        let mut done = self.firewalled.lock().expect("firewall set lock poisoned");
        if done.contains(&n.bridge) {
            return Ok(());
        }
        self.firewall
            .add_network(&n.bridge, pool.subnet, n.internal)?;
        // host-wide forwarding (`--ip-forward`), turned on with the first bridge in use rather
        // than at startup: a daemon that never networks a container leaves the host alone
        if self.cfg.ip_forward && done.is_empty() {
            if let Err(e) = bridge::enable_ip_forward() {
                tracing::warn!(error = %e, "enabling ip forwarding");
            }
        }
        done.insert(n.bridge.clone());
        Ok(())
    }

    /// DNAT `ports` to a container's address on bridge network `n`; the resolved mappings are
    /// kept with its endpoint (persisted: a restarted daemon still knows what to remove).
    pub(crate) fn publish_ports(
        &self,
        container: &str,
        n: &Network,
        ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<(), NetworkError> {
        if ports.is_empty() {
            return Ok(());
        }
        let resolved = self.firewall.publish(container, &n.bridge, ip, ports)?;
        if let Err(e) = self.store.set_ports(&n.id, container, resolved) {
            let _ = self.firewall.unpublish(container);
            return Err(e.into());
        }
        Ok(())
    }

    /// Remove a container's published ports (idempotent).
    pub(crate) fn unpublish_ports(&self, container: &str) {
        if let Err(e) = self.firewall.unpublish(container) {
            tracing::warn!(container = %container, error = %e, "removing published ports");
        }
    }

    /// Owners with port rules in the table (crash cleanup).
    pub(crate) fn owners(&self) -> Vec<String> {
        match self.firewall.owners() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "reading published ports");
                Vec::new()
            }
        }
    }

    /// The aardvark-dns instance (tests stop it; the daemon leaves it running).
    pub fn dns(&self) -> &dns::Aardvark {
        &self.dns
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().expect("network lock poisoned")
    }

    /// Remove networks no container uses (`POST /networks/prune`); `keep` says which to keep.
    pub fn prune(&self, keep: impl Fn(&Network) -> bool) -> Vec<String> {
        let mut removed = Vec::new();
        for n in self.store.list() {
            if n.predefined || !n.endpoints.is_empty() || keep(&n) {
                continue;
            }
            if self.remove(&n.id).is_ok() {
                removed.push(n.name.clone());
            }
        }
        removed
    }

    /// Names of user-visible labels, for filters.
    pub fn labels(n: &Network) -> HashMap<String, String> {
        n.labels.clone().into_iter().collect()
    }
}
