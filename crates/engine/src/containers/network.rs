//! A container's networking: which networks it joins (resolved at create from
//! `HostConfig.NetworkMode` and `NetworkingConfig.EndpointsConfig`, kept in its record), and
//! at start its pinned network namespace (`<exec-root>/netns/<id>`, which the runtime joins by
//! path), one veth per network with an address from the network's IPAM, its DNS entries, and
//! /etc/hosts + /etc/resolv.conf; at stop (or removal, or after a crash) all of it is undone.
//! Live `connect`/`disconnect` on running containers, and inspect's `NetworkSettings`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_api::container::{ContainerConfig, HostConfig};
use berth_network::store::{AttachRequest, Network};
use berth_network::{bridge, etc, ipam};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ContainerError, Containers, Record};
use crate::networks::NetworkError;

/// A container's wish for one network (the address itself comes at start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub mac: Option<String>,
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    None,
    Host,
    /// Shares the namespace of this container (full id).
    Container(String),
    /// Its own namespace plugged into bridge networks.
    Bridge,
}

impl From<NetworkError> for ContainerError {
    fn from(e: NetworkError) -> Self {
        match e.kind() {
            crate::ErrorKind::NotFound => ContainerError::NotFoundOther(e.to_string()),
            crate::ErrorKind::Conflict => ContainerError::Conflict(e.to_string()),
            crate::ErrorKind::InvalidArgument => ContainerError::Invalid(e.to_string()),
            _ => ContainerError::Start {
                id: String::new(),
                message: e.to_string(),
            },
        }
    }
}

/// The mode a stored `NetworkMode` means.
pub fn mode_of(rec_mode: &str) -> Mode {
    match rec_mode {
        "none" => Mode::None,
        "host" => Mode::Host,
        m => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c.to_string()),
            None => Mode::Bridge,
        },
    }
}

fn veth_name(container: &str, network: &str) -> String {
    format!(
        "vb{}{}",
        container.chars().take(6).collect::<String>(),
        network.chars().take(6).collect::<String>()
    )
}

fn random_id() -> String {
    super::random_hex(32)
}

/// What create decided about a container's networking.
pub struct Plan {
    /// `HostConfig.NetworkMode` to store (`container:<full id>` for the container mode).
    pub mode: String,
    pub endpoints: BTreeMap<String, EndpointConfig>,
    /// Network namespace the runtime joins (None: its own new one, or host).
    pub netns: Option<PathBuf>,
    /// /etc files shared with another container (container mode).
    pub shared_etc: Option<PathBuf>,
    /// Host and domain name taken from that container (container mode).
    pub names: Option<(String, String)>,
}

impl Containers {
    fn networks(&self) -> &crate::networks::Networks {
        &self.inner.networks
    }

    /// At create: the networks a container joins, checked (unknown network, bad address,
    /// options that make no sense in the mode).
    pub(crate) fn plan_network(
        &self,
        id: &str,
        config: &ContainerConfig,
        host: &HostConfig,
        networking: Option<&Value>,
    ) -> Result<Plan, ContainerError> {
        let nets = self.networks();
        let default_mode = if nets.config().bridge.is_some() {
            "bridge"
        } else {
            "none"
        };
        let mode = match host.network_mode.as_str() {
            "" | "default" => default_mode.to_string(),
            m => m.to_string(),
        };
        etc::check_dns(host.dns.as_deref().unwrap_or_default())
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        etc::parse_extra_hosts(
            host.extra_hosts.as_deref().unwrap_or_default(),
            Some(Ipv4Addr::UNSPECIFIED),
        )
        .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let endpoints_cfg: BTreeMap<String, Value> = networking
            .and_then(|n| n.get("EndpointsConfig"))
            .and_then(|e| serde_json::from_value(e.clone()).ok())
            .unwrap_or_default();
        port_mappings(config, host)?;
        let mac = config.mac_address.clone().filter(|m| !m.is_empty());
        if let Some(m) = &mac {
            if ipam::parse_mac(m).is_none() {
                return Err(ContainerError::Invalid(format!("invalid MAC address: {m}")));
            }
        }
        let stored_mode = if host.network_mode.is_empty() {
            "default".to_string()
        } else {
            host.network_mode.clone()
        };
        match mode.as_str() {
            "none" | "host" => {
                // the docker CLI names the primary network by the mode it sent ("default"
                // when no --network was given), which here resolved to none/host
                if endpoints_cfg
                    .keys()
                    .any(|k| k != &mode && k != &stored_mode)
                {
                    return Err(ContainerError::Invalid(format!(
                        "container cannot be connected to other networks with network mode {mode}"
                    )));
                }
                return Ok(Plan {
                    mode: stored_mode,
                    endpoints: BTreeMap::new(),
                    netns: None,
                    shared_etc: None,
                    names: None,
                });
            }
            m if m.starts_with("container:") => {
                let key = &m["container:".len()..];
                let target = self.get(key).map_err(|_| {
                    ContainerError::Invalid(format!(
                        "no such container to share the network namespace of: {key}"
                    ))
                })?;
                let t = target.record();
                if t.id == id {
                    return Err(ContainerError::Invalid(
                        "cannot join own network namespace".into(),
                    ));
                }
                if !config.hostname.is_empty() {
                    return Err(ContainerError::Invalid(
                        "conflicting options: hostname and the network mode".into(),
                    ));
                }
                return Ok(Plan {
                    mode: format!("container:{}", t.id),
                    endpoints: BTreeMap::new(),
                    netns: None,
                    shared_etc: Some(self.dir(&t.id)),
                    names: Some((t.config.hostname.clone(), t.config.domainname.clone())),
                });
            }
            _ => {}
        }
        let mut endpoints = BTreeMap::new();
        let mut wanted: Vec<(String, Option<&Value>)> = vec![(mode.clone(), None)];
        for (k, v) in &endpoints_cfg {
            if k == &mode || (mode == "bridge" && k == "default") {
                wanted[0].1 = Some(v);
            } else {
                wanted.push((k.clone(), Some(v)));
            }
        }
        for (key, cfg) in wanted {
            let n = nets.get(&key).map_err(|e| match e {
                NetworkError::NotFound(_) => {
                    ContainerError::NotFoundOther(format!("network {key} not found"))
                }
                e => e.into(),
            })?;
            if n.driver != "bridge" {
                return Err(ContainerError::Invalid(format!(
                    "container cannot be connected to network {} (driver {}) together with others",
                    n.name, n.driver
                )));
            }
            let ep = endpoint_config(&n, cfg, mac.as_deref())?;
            endpoints.insert(n.name.clone(), ep);
        }
        Ok(Plan {
            mode: stored_mode,
            endpoints,
            netns: Some(nets.netns_path(id)),
            shared_etc: None,
            names: None,
        })
    }

    /// Endpoints in attach order: the one named by the network mode first, then by name.
    fn ordered(rec: &Record) -> Vec<(String, EndpointConfig)> {
        let primary = match rec.host_config.network_mode.as_str() {
            "" | "default" => "bridge".to_string(),
            m => m.to_string(),
        };
        let mut v: Vec<(String, EndpointConfig)> = rec
            .networks
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        v.sort_by_key(|(k, e)| (k != &primary && e.network_id != primary, k.clone()));
        v
    }

    /// At start, before the runtime creates the container: namespace, links, DNS, /etc files.
    /// On error everything made here is undone.
    pub(crate) fn network_up(&self, rec: &Record) -> Result<(), ContainerError> {
        match mode_of(&rec.host_config.network_mode) {
            Mode::Container(target) => {
                let t = self.get(&target)?.record();
                if !t.state.status.is_alive() {
                    return Err(ContainerError::Conflict(format!(
                        "cannot join network of a non running container: {}",
                        target
                    )));
                }
                let pinned = self.networks().netns_path(&t.id);
                let path = if berth_sys::netns::is_pinned(&pinned) {
                    pinned
                } else if mode_of(&t.host_config.network_mode) == Mode::Host {
                    PathBuf::from("/proc/1/ns/net")
                } else {
                    PathBuf::from(format!("/proc/{}/ns/net", t.state.pid))
                };
                return self.set_spec_netns(&rec.id, Some(&path));
            }
            Mode::None | Mode::Host => {
                return self.write_etc(rec, None, None);
            }
            Mode::Bridge => {}
        }
        if rec.networks.is_empty() {
            return self.write_etc(rec, None, None);
        }
        let result = self.network_up_inner(rec);
        if result.is_err() {
            self.network_down(&rec.id);
        }
        result
    }

    fn network_up_inner(&self, rec: &Record) -> Result<(), ContainerError> {
        let nets = self.networks();
        let path = nets.netns_path(&rec.id);
        // a namespace left by a crash
        let _ = bridge::remove_netns(&path);
        bridge::create_netns(&path).map_err(|e| self.start_err(rec, e))?;
        let mut first: Option<(Network, Ipv4Addr)> = None;
        for (i, (name, cfg)) in Self::ordered(rec).into_iter().enumerate() {
            let n = nets
                .get(&cfg.network_id)
                .or_else(|_| nets.get(&name))
                .map_err(|_| ContainerError::NotFoundOther(format!("network {name} not found")))?;
            let ip = self.attach_one(rec, &n, &cfg, &format!("eth{i}"), first.is_none())?;
            if first.is_none() {
                first = Some((n, ip));
            }
        }
        let (n, ip) = first.expect("at least one network");
        let ports = port_mappings(&rec.config, &rec.host_config)?;
        nets.publish_ports(&rec.id, &n, ip, &ports)
            .map_err(|e| match e.kind() {
                crate::ErrorKind::Internal => self.start_err(rec, e),
                _ => ContainerError::from(e),
            })?;
        self.write_etc(rec, Some(ip), Some(&n))
    }

    fn start_err(&self, rec: &Record, e: impl std::fmt::Display) -> ContainerError {
        ContainerError::Start {
            id: rec.id.clone(),
            message: format!("network setup: {e}"),
        }
    }

    /// Plug a container into one network (its namespace exists). On error nothing of this
    /// endpoint is left.
    fn attach_one(
        &self,
        rec: &Record,
        n: &Network,
        cfg: &EndpointConfig,
        ifname: &str,
        default_route: bool,
    ) -> Result<Ipv4Addr, ContainerError> {
        let nets = self.networks();
        let pool = n.pool.ok_or_else(|| {
            ContainerError::Invalid(format!("network {} has no IPv4 addressing", n.name))
        })?;
        let _g = nets.lock();
        bridge::ensure_bridge(&n.bridge, pool.gateway, pool.subnet.prefix_len(), n.mtu())
            .map_err(|e| self.start_err(rec, e))?;
        nets.firewall_network(n)
            .map_err(|e| self.start_err(rec, e))?;
        let name = rec.name.trim_start_matches('/').to_string();
        let ep = nets
            .store()
            .attach(
                &n.id,
                AttachRequest {
                    container: &rec.id,
                    name: &name,
                    aliases: cfg.aliases.clone(),
                    ip: cfg.ipv4,
                    mac: cfg.mac.as_deref().and_then(ipam::parse_mac),
                    host_veth: veth_name(&rec.id, &n.id),
                    ifname: ifname.to_string(),
                    endpoint_id: random_id(),
                    dns_servers: rec
                        .host_config
                        .dns
                        .iter()
                        .flatten()
                        .filter_map(|d| d.parse().ok())
                        .collect(),
                },
            )
            .map_err(NetworkError::from)?;
        let link = bridge::Link {
            netns: nets.netns_path(&rec.id),
            bridge: n.bridge.clone(),
            host_veth: ep.host_veth.clone(),
            ifname: ifname.to_string(),
            ip: ep.ip,
            prefix_len: pool.subnet.prefix_len(),
            default_route: (default_route && !n.internal).then_some(pool.gateway),
            mac: ipam::parse_mac(&ep.mac).unwrap_or_else(|| ipam::mac_for(ep.ip)),
            mtu: n.mtu(),
        };
        if let Err(e) = bridge::connect(&link) {
            let _ = nets.store().detach(&n.id, &rec.id);
            return Err(self.start_err(rec, e));
        }
        drop(_g);
        if let Err(e) = nets.refresh_dns(&n.id) {
            let _ = bridge::disconnect(&ep.host_veth);
            let _ = nets.store().detach(&n.id, &rec.id);
            return Err(self.start_err(rec, e));
        }
        nets.publish_endpoint("connect", n, &rec.id);
        Ok(ep.ip)
    }

    /// Undo `network_up` (idempotent): links, addresses, DNS entries, the namespace.
    ///
    /// Deleting a veth waits for an RCU grace period (~30 ms here), so it happens on a
    /// short-lived thread after everything else; `wait` (daemon startup) does it inline.
    pub(crate) fn network_down(&self, id: &str) {
        self.network_down_with(id, false)
    }

    fn network_down_with(&self, id: &str, wait: bool) {
        let nets = self.networks();
        let attached = nets.store().of_container(id);
        if attached.iter().any(|(_, ep)| !ep.ports.is_empty()) {
            nets.unpublish_ports(id);
        }
        let mut veths = Vec::new();
        for (n, ep) in attached {
            veths.push(ep.host_veth.clone());
            if let Err(e) = nets.store().detach(&n.id, id) {
                tracing::warn!(container = %id, network = %n.name, error = %e, "releasing address");
            }
            if let Err(e) = nets.refresh_dns(&n.id) {
                tracing::warn!(network = %n.name, error = %e, "updating DNS");
            }
            nets.publish_endpoint("disconnect", &n, id);
        }
        if let Err(e) = bridge::remove_netns(&nets.netns_path(id)) {
            tracing::warn!(container = %id, error = %e, "removing network namespace");
        }
        if veths.is_empty() {
            return;
        }
        let cid = id.to_string();
        let delete = move || {
            for v in &veths {
                if let Err(e) = bridge::disconnect(v) {
                    tracing::warn!(container = %cid, veth = %v, error = %e, "removing veth");
                }
            }
        };
        if wait {
            delete();
        } else if let Err(e) = std::thread::Builder::new()
            .name("berth-veth-rm".into())
            .stack_size(64 << 10)
            .spawn(delete)
        {
            tracing::warn!(container = %id, error = %e, "spawning veth removal");
        }
    }

    /// Point the bundle's network namespace at `path` (container mode: the target's
    /// namespace is known only once it runs).
    fn set_spec_netns(&self, id: &str, path: Option<&Path>) -> Result<(), ContainerError> {
        let p = self.dir(id).join("config.json");
        let state = |source| ContainerError::State {
            id: id.to_string(),
            source,
        };
        let mut spec: Value = crate::state::read_json(&p)
            .map_err(state)?
            .unwrap_or(json!({}));
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
            match path {
                Some(path) => ns.push(json!({"type": "network", "path": path})),
                None => ns.push(json!({"type": "network"})),
            }
        }
        crate::state::write_json(&p, &spec).map_err(state)
    }

    /// /etc/hosts and /etc/resolv.conf for the container's first network (or none).
    fn write_etc(
        &self,
        rec: &Record,
        ip: Option<Ipv4Addr>,
        net: Option<&Network>,
    ) -> Result<(), ContainerError> {
        if mode_of(&rec.host_config.network_mode) == Mode::Host {
            return Ok(());
        }
        let dir = self.dir(&rec.id);
        let io = |op: &str| {
            let id = rec.id.clone();
            let op = op.to_string();
            move |source| ContainerError::Io { id, op, source }
        };
        let h = &rec.host_config;
        let gw = net.and_then(|n| n.pool).map(|p| p.gateway);
        let extra = etc::parse_extra_hosts(h.extra_hosts.as_deref().unwrap_or_default(), gw)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let hosts = etc::hosts(&etc::HostsInput {
            hostname: &rec.config.hostname,
            domainname: &rec.config.domainname,
            ip,
            extra: &extra,
        });
        std::fs::write(dir.join("hosts"), hosts).map_err(io("write hosts"))?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let embedded = net
            .filter(|n| n.has_dns())
            .and_then(|n| n.pool)
            .map(|p| p.gateway);
        let resolv = etc::resolv_conf(&etc::ResolvInput {
            host: &host_resolv,
            embedded,
            dns: h.dns.as_deref().unwrap_or_default(),
            search: h.dns_search.as_deref().unwrap_or_default(),
            options: h.dns_options.as_deref().unwrap_or_default(),
        });
        std::fs::write(dir.join("resolv.conf"), resolv).map_err(io("write resolv.conf"))?;
        Ok(())
    }

    /// `POST /networks/{id}/connect`: remembered in the record, and live when it runs.
    pub async fn connect(
        &self,
        container: &str,
        network: &str,
        cfg: Option<&Value>,
    ) -> Result<(), ContainerError> {
        let entry = self.get(container)?;
        let _op = entry.op.lock().await;
        let rec = entry.record();
        let nets = self.networks();
        let n = nets.get(network).map_err(|e| match e {
            NetworkError::NotFound(_) => {
                ContainerError::NotFoundOther(format!("network {network} not found"))
            }
            e => e.into(),
        })?;
        match mode_of(&rec.host_config.network_mode) {
            Mode::Bridge => {}
            _ => {
                return Err(ContainerError::Invalid(format!(
                    "container sharing network namespace with another container or host cannot be connected to any other network (network mode {})",
                    rec.host_config.network_mode
                )))
            }
        }
        if n.driver != "bridge" {
            return Err(ContainerError::Invalid(format!(
                "container cannot be connected to network {}",
                n.name
            )));
        }
        if rec.networks.contains_key(&n.name) {
            return Err(ContainerError::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name.trim_start_matches('/'),
                n.name
            )));
        }
        let ep = endpoint_config(&n, cfg, None)?;
        if rec.state.status.is_alive() {
            let this = self.clone();
            let (r2, n2, ep2) = (rec.clone(), n.clone(), ep.clone());
            // the lowest ethN free inside the container (a disconnect leaves gaps)
            let used: Vec<String> = nets
                .store()
                .of_container(&rec.id)
                .into_iter()
                .map(|(_, e)| e.ifname)
                .collect();
            let ifname = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(n))
                .expect("an unused interface name");
            tokio::task::spawn_blocking(move || this.attach_one(&r2, &n2, &ep2, &ifname, false))
                .await
                .map_err(|e| ContainerError::Invalid(e.to_string()))??;
        }
        let rec = {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            r.networks.insert(n.name.clone(), ep);
            r.clone()
        };
        self.save(&rec)
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect(&self, container: &str, network: &str) -> Result<(), ContainerError> {
        let entry = self.get(container)?;
        let _op = entry.op.lock().await;
        let rec = entry.record();
        let nets = self.networks();
        let n = nets.get(network).map_err(|e| match e {
            NetworkError::NotFound(_) => {
                ContainerError::NotFoundOther(format!("network {network} not found"))
            }
            e => e.into(),
        })?;
        if !rec.networks.contains_key(&n.name) {
            return Err(ContainerError::Conflict(format!(
                "container {} is not connected to network {}",
                rec.id, n.name
            )));
        }
        if let Some(ep) = n.endpoints.get(&rec.id) {
            bridge::disconnect(&ep.host_veth).map_err(|e| self.start_err(&rec, e))?;
            nets.store()
                .detach(&n.id, &rec.id)
                .map_err(NetworkError::from)?;
            nets.refresh_dns(&n.id)?;
            nets.publish_endpoint("disconnect", &n, &rec.id);
        }
        let rec = {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            r.networks.remove(&n.name);
            r.clone()
        };
        self.save(&rec)
    }

    /// Containers whose records name network `id` (for removal and inspect of stopped ones).
    pub fn on_network(&self, network_id: &str) -> Vec<Record> {
        self.entries()
            .into_iter()
            .map(|e| e.record())
            .filter(|r| r.networks.values().any(|e| e.network_id == network_id))
            .collect()
    }

    /// After a daemon restart: containers that are not running give their addresses back.
    pub(crate) fn release_dead_endpoints(&self) {
        let nets = self.networks();
        let mut ids: Vec<String> = nets
            .list()
            .iter()
            .flat_map(|n| n.endpoints.keys().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        // published ports of containers that died while berthd was down
        if nets.config().bridge.is_some() || nets.list().iter().any(|n| !n.predefined) {
            for owner in nets.owners() {
                if !ids.contains(&owner) {
                    ids.push(owner);
                }
            }
        }
        for id in ids {
            let alive = self
                .get(&id)
                .map(|e| e.record().state.status.is_alive())
                .unwrap_or(false);
            if !alive {
                tracing::info!(container = %id, "releasing network endpoints of a stopped container");
                self.network_down_with(&id, true);
                nets.unpublish_ports(&id);
            }
        }
    }

    /// Inspect's `NetworkSettings`.
    pub fn network_settings(&self, rec: &Record) -> Value {
        let nets = self.networks();
        let live: BTreeMap<String, (Network, berth_network::store::Endpoint)> = nets
            .store()
            .of_container(&rec.id)
            .into_iter()
            .map(|(n, e)| (n.name.clone(), (n, e)))
            .collect();
        let mut networks = serde_json::Map::new();
        let mode = mode_of(&rec.host_config.network_mode);
        if matches!(mode, Mode::None | Mode::Host) {
            let name = if mode == Mode::Host { "host" } else { "none" };
            let id = nets.get(name).map(|n| n.id).unwrap_or_default();
            networks.insert(
                name.into(),
                json!({"IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": id,
                    "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                    "MacAddress": "", "DriverOpts": null}),
            );
        }
        for (name, cfg) in &rec.networks {
            let (ip, gw, len, mac, epid) = match live.get(name) {
                Some((n, e)) => (
                    e.ip.to_string(),
                    n.pool.map(|p| p.gateway.to_string()).unwrap_or_default(),
                    n.pool.map(|p| p.subnet.prefix_len()).unwrap_or(0),
                    e.mac.clone(),
                    e.endpoint_id.clone(),
                ),
                None => Default::default(),
            };
            let ipam_cfg = cfg.ipv4.map(|ip| json!({"IPv4Address": ip.to_string()}));
            let mut aliases = cfg.aliases.clone();
            if name != "bridge" {
                aliases.push(rec.id.chars().take(12).collect());
            }
            networks.insert(
                name.clone(),
                json!({"IPAMConfig": ipam_cfg, "Links": null,
                    "Aliases": if name == "bridge" { Value::Null } else { json!(aliases) },
                    "NetworkID": cfg.network_id, "EndpointID": epid, "Gateway": gw,
                    "IPAddress": ip, "IPPrefixLen": len, "IPv6Gateway": "",
                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac,
                    "DriverOpts": null}),
            );
        }
        let ports: Vec<berth_network::ports::PortMapping> = live
            .values()
            .flat_map(|(_, e)| e.ports.iter().cloned())
            .collect();
        let exposed = rec
            .config
            .exposed_ports
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok());
        let ports = berth_network::ports::to_docker(&ports, exposed.as_ref());
        let default = networks.get("bridge").cloned().unwrap_or(json!({}));
        let field = |k: &str| default.get(k).cloned().unwrap_or(json!(""));
        let sandbox = if live.is_empty() {
            String::new()
        } else {
            nets.netns_path(&rec.id).display().to_string()
        };
        json!({
            "Bridge": "", "SandboxID": if live.is_empty() { String::new() } else { rec.id.clone() },
            "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports, "SandboxKey": sandbox, "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": field("EndpointID"), "Gateway": field("Gateway"),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": field("IPAddress"),
            "IPPrefixLen": default.get("IPPrefixLen").cloned().unwrap_or(json!(0)),
            "IPv6Gateway": "", "MacAddress": field("MacAddress"),
            "Networks": networks,
        })
    }
}

/// The ports to publish (`-p`, `-P` with `--expose`), checked.
fn port_mappings(
    config: &ContainerConfig,
    host: &HostConfig,
) -> Result<Vec<berth_network::ports::PortMapping>, ContainerError> {
    let exposed = config
        .exposed_ports
        .as_ref()
        .and_then(|e| serde_json::to_value(e).ok());
    berth_network::ports::from_docker(
        host.port_bindings.as_ref(),
        exposed.as_ref(),
        host.publish_all_ports,
    )
    .map_err(|e| ContainerError::Invalid(e.to_string()))
}

/// An endpoint config from the API (`{"Aliases": [...], "IPAMConfig": {"IPv4Address": ..}}`).
fn endpoint_config(
    n: &Network,
    cfg: Option<&Value>,
    mac: Option<&str>,
) -> Result<EndpointConfig, ContainerError> {
    let mut ep = EndpointConfig {
        network_id: n.id.clone(),
        ..EndpointConfig::default()
    };
    let Some(cfg) = cfg else {
        ep.mac = mac.map(String::from);
        return Ok(ep);
    };
    ep.aliases = cfg
        .get("Aliases")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !ep.aliases.is_empty() && n.predefined {
        return Err(ContainerError::Invalid(
            "network-scoped aliases are only supported for user-defined networks".into(),
        ));
    }
    if let Some(ip) = cfg
        .get("IPAMConfig")
        .and_then(|i| i.get("IPv4Address"))
        .and_then(|i| i.as_str())
        .filter(|s| !s.is_empty())
    {
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| ContainerError::Invalid(format!("invalid IPv4 address: {ip}")))?;
        if n.predefined {
            return Err(ContainerError::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if let Some(p) = n.pool {
            if !p.subnet.contains(&ip) {
                return Err(ContainerError::Invalid(format!(
                    "invalid address {ip}: it is not in subnet {} of network {}",
                    p.subnet, n.name
                )));
            }
        }
        ep.ipv4 = Some(ip);
    }
    let m = cfg
        .get("MacAddress")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .or(mac);
    if let Some(m) = m {
        if ipam::parse_mac(m).is_none() {
            return Err(ContainerError::Invalid(format!("invalid MAC address: {m}")));
        }
        ep.mac = Some(m.to_string());
    }
    Ok(ep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_names() {
        assert_eq!(mode_of("none"), Mode::None);
        assert_eq!(mode_of("host"), Mode::Host);
        assert_eq!(mode_of("container:abc"), Mode::Container("abc".into()));
        assert_eq!(mode_of("default"), Mode::Bridge);
        assert_eq!(mode_of("mynet"), Mode::Bridge);
        let v = veth_name("0123456789abcdef", "fedcba9876543210");
        assert_eq!(v, "vb012345fedcba");
        assert!(v.len() <= 15);
    }

    #[test]
    fn endpoint_configs_are_checked() {
        let n = Network {
            id: "n1".into(),
            name: "net".into(),
            driver: "bridge".into(),
            created: String::new(),
            bridge: "br-n1".into(),
            pool: Some(
                ipam::Pool::new("10.80.0.0/24".parse().expect("net"), None, None).expect("pool"),
            ),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            predefined: false,
            endpoints: BTreeMap::new(),
            last_ip: None,
        };
        let ep = endpoint_config(
            &n,
            Some(&json!({"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.80.0.9"}})),
            None,
        )
        .expect("ok");
        assert_eq!(ep.aliases, vec!["web"]);
        assert_eq!(ep.ipv4, Some(Ipv4Addr::new(10, 80, 0, 9)));
        let e = endpoint_config(
            &n,
            Some(&json!({"IPAMConfig": {"IPv4Address": "10.81.0.9"}})),
            None,
        )
        .expect_err("outside");
        assert!(e.to_string().contains("not in subnet 10.80.0.0/24"), "{e}");
        assert!(
            endpoint_config(&n, None, Some("zz")).is_ok(),
            "mac checked at create"
        );
        assert!(endpoint_config(&n, Some(&json!({"MacAddress": "zz"})), None).is_err());
    }
}
