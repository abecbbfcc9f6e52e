//! Published ports (docker's `-p`/`-P`): the Docker API's wire forms (HostConfig.PortBindings,
//! Config.ExposedPorts, HostConfig.PublishAllPorts → [`PortMapping`]s; [`PortMapping`]s →
//! NetworkSettings.Ports and the list API's `Ports`), and the DNAT rules that make a host port
//! reach a container, kept in berth's nftables table (see `nft.rs`).
//!
//! A mapping is one rule in chain `port_dnat`, reached for packets to a local address from
//! prerouting (outside, and containers through the gateway: hairpin) and from output (the host
//! itself, 127.0.0.1 included: `route_localnet` is set on the bridge, and `add_network`'s
//! masquerades make the replies come back). Its comment, `port <owner> <proto> <host-ip>
//! <host-port> <container-port> <container-ip>`, is the reservation: taken ports are read back
//! from the table, so they survive a daemon restart.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::schema::NfListObject;
use nftables::stmt::{Statement, NAT};
use serde_json::{json, Value};

use crate::nft::{check_bridge, matches, payload, Firewall, FirewallError, CHAIN_PORT_DNAT, LOCK};

/// Transport protocol of a published port.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// "tcp" or "udp", as docker writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host port forwarded to one container port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// None = all addresses (0.0.0.0).
    pub host_ip: Option<IpAddr>,
    /// 0 in a request = pick a free ephemeral port.
    pub host_port: u16,
    /// In a request, with `host_port`: the last port of a host range to take the first free
    /// port of (docker's `-p 8000-8010:80`). Never set in a resolved mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// "0.0.0.0:8080->80/tcp", as `docker ps` shows it.
    pub fn display(&self) -> String {
        format!(
            "{}:{}->{}/{}",
            host_ip_text(self.host_ip),
            self.host_port,
            self.container_port,
            self.protocol
        )
    }
}

fn host_ip_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string())
}

/// Why ports could not be parsed or published.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid port {spec:?}: {reason}")]
    Invalid { spec: String, reason: String },
    #[error("port {addr}/{protocol} is already in use")]
    InUse { addr: String, protocol: Protocol },
    #[error("cannot reserve host port {addr}/{protocol}")]
    Bind {
        addr: String,
        protocol: Protocol,
        #[source]
        source: std::io::Error,
    },
    #[error("no free host port left in the ephemeral range {low}-{high}/{protocol}")]
    Exhausted {
        low: u16,
        high: u16,
        protocol: Protocol,
    },
    #[error("host address {0} is IPv6: berth networks publish IPv4 only")]
    Ipv6(IpAddr),
    #[error("invalid owner {0:?} (1 to 64 characters out of a-z A-Z 0-9 _ . -)")]
    Owner(String),
    #[error("bridge {0:?} has no network rules in the firewall (add_network first)")]
    UnknownBridge(String),
    #[error("cannot write {path}")]
    Sysctl {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Firewall(#[from] FirewallError),
}

fn invalid(spec: &str, reason: impl Into<String>) -> PortError {
    PortError::Invalid {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// Parses a port key of PortBindings/ExposedPorts: "80/tcp", "53/udp", "80" (= tcp).
fn parse_port_key(key: &str) -> Result<(u16, Protocol), PortError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = Protocol::parse(proto)
        .ok_or_else(|| invalid(key, format!("unsupported protocol {proto:?}")))?;
    let port = parse_port(key, port)?;
    if port == 0 {
        return Err(invalid(key, "container port 0"));
    }
    Ok((port, protocol))
}

fn parse_port(spec: &str, port: &str) -> Result<u16, PortError> {
    port.parse::<u16>()
        .map_err(|_| invalid(spec, format!("{port:?} is not a port number")))
}

/// Docker's HostConfig.PortBindings JSON (`{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}`; a
/// HostPort range "8000-8010" means the first free port of the range, chosen at publish),
/// Config.ExposedPorts, and HostConfig.PublishAllPorts → the mappings to set up. `publish_all` maps every exposed port that has no binding to a random host port.
pub fn from_docker(
    port_bindings: Option<&Value>,
    exposed: Option<&Value>,
    publish_all: bool,
) -> Result<Vec<PortMapping>, PortError> {
    let mut mappings: Vec<PortMapping> = Vec::new();
    let mut bound: Vec<(u16, Protocol)> = Vec::new();
    if let Some(Value::Object(bindings)) = port_bindings {
        for (key, list) in bindings {
            let (container_port, protocol) = parse_port_key(key)?;
            let list = match list {
                Value::Null => continue,
                Value::Array(list) => list,
                _ => return Err(invalid(key, "bindings must be a list")),
            };
            bound.push((container_port, protocol));
            for binding in list {
                let field = |name: &str| {
                    binding
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .trim()
                };
                let ip_text = field("HostIp");
                let host_ip = match ip_text.trim_matches(|c| c == '[' || c == ']') {
                    "" => None,
                    text => Some(
                        text.parse::<IpAddr>()
                            .map_err(|_| invalid(key, format!("host address {ip_text:?}")))?,
                    ),
                };
                let port_text = field("HostPort");
                let (host_port, host_port_end) = match port_text.split_once('-') {
                    _ if port_text.is_empty() => (0, None),
                    None => (parse_port(key, port_text)?, None),
                    Some((low, high)) => {
                        let (low, high) = (parse_port(key, low)?, parse_port(key, high)?);
                        if low > high || low == 0 {
                            return Err(invalid(key, format!("host port range {port_text}")));
                        }
                        (low, (high > low).then_some(high))
                    }
                };
                let mapping = PortMapping {
                    host_ip,
                    host_port,
                    host_port_end,
                    container_port,
                    protocol,
                };
                if !mappings.contains(&mapping) {
                    mappings.push(mapping);
                }
            }
        }
    }
    if publish_all {
        for (container_port, protocol) in exposed_ports(exposed)? {
            if !bound.contains(&(container_port, protocol)) {
                mappings.push(PortMapping {
                    host_ip: None,
                    host_port: 0,
                    host_port_end: None,
                    container_port,
                    protocol,
                });
            }
        }
    }
    mappings.sort_by_key(|m| (m.protocol, m.container_port, m.host_ip, m.host_port));
    Ok(mappings)
}

/// The keys of Config.ExposedPorts (`{"80/tcp":{}}`), parsed.
fn exposed_ports(exposed: Option<&Value>) -> Result<Vec<(u16, Protocol)>, PortError> {
    let mut ports = Vec::new();
    if let Some(Value::Object(map)) = exposed {
        for key in map.keys() {
            ports.push(parse_port_key(key)?);
        }
    }
    Ok(ports)
}

/// NetworkSettings.Ports JSON for inspect (`{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}],
/// "443/tcp": null}`): every mapping, and every exposed port without one as null.
pub fn to_docker(mappings: &[PortMapping], exposed: Option<&Value>) -> Value {
    let mut ports: BTreeMap<String, Value> = BTreeMap::new();
    for (port, protocol) in exposed_ports(exposed).unwrap_or_default() {
        ports.insert(format!("{port}/{protocol}"), Value::Null);
    }
    for m in mappings {
        let entry = ports
            .entry(format!("{}/{}", m.container_port, m.protocol))
            .or_insert(Value::Null);
        let binding =
            json!({"HostIp": host_ip_text(m.host_ip), "HostPort": m.host_port.to_string()});
        match entry {
            Value::Array(list) => list.push(binding),
            _ => *entry = Value::Array(vec![binding]),
        }
    }
    Value::Object(ports.into_iter().collect())
}

/// The list API's `Ports` (`GET /containers/json`, what `docker ps` shows):
/// `[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}, {"PrivatePort":443,"Type":"tcp"}]`.
pub fn to_docker_list(mappings: &[PortMapping], exposed: Option<&Value>) -> Value {
    let mut list = Vec::new();
    for m in mappings {
        list.push(json!({
            "IP": host_ip_text(m.host_ip),
            "PrivatePort": m.container_port,
            "PublicPort": m.host_port,
            "Type": m.protocol.as_str(),
        }));
    }
    for (port, protocol) in exposed_ports(exposed).unwrap_or_default() {
        if !mappings
            .iter()
            .any(|m| m.container_port == port && m.protocol == protocol)
        {
            list.push(json!({"PrivatePort": port, "Type": protocol.as_str()}));
        }
    }
    Value::Array(list)
}

/// A host port held by a rule of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reservation {
    owner: String,
    host_ip: Option<IpAddr>,
    host_port: u16,
    protocol: Protocol,
}

impl Reservation {
    fn tag(owner: &str, m: &PortMapping, container_ip: Ipv4Addr) -> String {
        format!(
            "port {owner} {} {} {} {} {container_ip}",
            m.protocol,
            host_ip_text(m.host_ip),
            m.host_port,
            m.container_port
        )
    }

    fn parse(comment: &str) -> Option<Reservation> {
        let words: Vec<&str> = comment.split_whitespace().collect();
        let ["port", owner, proto, ip, port, ..] = words.as_slice() else {
            return None;
        };
        let ip: IpAddr = ip.parse().ok()?;
        Some(Reservation {
            owner: owner.to_string(),
            host_ip: (!ip.is_unspecified()).then_some(ip),
            host_port: port.parse().ok()?,
            protocol: Protocol::parse(proto)?,
        })
    }

    fn overlaps(&self, host_ip: Option<IpAddr>, host_port: u16, protocol: Protocol) -> bool {
        self.protocol == protocol
            && self.host_port == host_port
            && (self.host_ip.is_none() || host_ip.is_none() || self.host_ip == host_ip)
    }
}

fn check_owner(owner: &str) -> Result<(), PortError> {
    let ok = !owner.is_empty()
        && owner.len() <= 64
        && owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PortError::Owner(owner.to_string()))
    }
}

/// Is the host port free for a process too? Binding it tells (a listener on 0.0.0.0 also
/// blocks 127.0.0.1 and the reverse).
fn check_bindable(host_ip: Option<IpAddr>, port: u16, protocol: Protocol) -> Result<(), PortError> {
    let ip = host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, port);
    let result = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(PortError::InUse {
            addr: format!("{}:{port}", host_ip_text(host_ip)),
            protocol,
        }),
        Err(source) => Err(PortError::Bind {
            addr: format!("{}:{port}", host_ip_text(host_ip)),
            protocol,
            source,
        }),
    }
}

/// The kernel's ephemeral port range (net.ipv4.ip_local_port_range), docker's source of random ports.
fn ephemeral_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut parts = text
        .split_whitespace()
        .filter_map(|p| p.parse::<u16>().ok());
    match (parts.next(), parts.next()) {
        (Some(low), Some(high)) if low > 0 && low <= high => (low, high),
        _ => (32768, 60999),
    }
}

fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl Firewall {
    /// DNAT host ports to `container_ip` (reachable from the host incl. 127.0.0.1, from other
    /// containers through the host's addresses/the gateway (hairpin), and from outside); refuses
    /// a host port already in use — by a mapping in this table or by a listening process — with
    /// one clear error naming ip:port/proto, and leaves nothing behind on any error (one nft
    /// transaction). Returns the mappings with host ports resolved (0 → a free ephemeral port).
    /// `owner` = container id: all rules for it can be removed together; publishing again for the
    /// same owner replaces its previous rules. `bridge` must have had [`Firewall::add_network`].
    /// An empty `ports` does nothing.
    pub fn publish(
        &self,
        owner: &str,
        bridge: &str,
        container_ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<Vec<PortMapping>, PortError> {
        check_owner(owner)?;
        check_bridge(bridge)?;
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(ip) = ports.iter().filter_map(|m| m.host_ip).find(IpAddr::is_ipv6) {
            return Err(PortError::Ipv6(ip));
        }
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let listing = self.list()?.unwrap_or_default();
        if listing.tagged("net", bridge).next().is_none() {
            return Err(PortError::UnknownBridge(bridge.to_string()));
        }
        let mut taken: Vec<Reservation> = listing
            .rules
            .iter()
            .filter_map(|r| Reservation::parse(r.comment.as_deref()?))
            .filter(|r| r.owner != owner)
            .collect();

        let mut resolved = Vec::with_capacity(ports.len());
        for m in ports {
            let host_port = if m.host_port == 0 {
                pick_free_port(m.host_ip, m.protocol, &taken)?
            } else if let Some(end) = m.host_port_end.filter(|&e| e > m.host_port) {
                pick_in_range(m.host_ip, m.host_port, end, m.protocol, &taken)?
            } else {
                if taken
                    .iter()
                    .any(|r| r.overlaps(m.host_ip, m.host_port, m.protocol))
                {
                    return Err(PortError::InUse {
                        addr: format!("{}:{}", host_ip_text(m.host_ip), m.host_port),
                        protocol: m.protocol,
                    });
                }
                check_bindable(m.host_ip, m.host_port, m.protocol)?;
                m.host_port
            };
            let m = PortMapping {
                host_port,
                host_port_end: None,
                ..m.clone()
            };
            taken.push(Reservation {
                owner: owner.to_string(),
                host_ip: m.host_ip,
                host_port,
                protocol: m.protocol,
            });
            resolved.push(m);
        }

        set_route_localnet(bridge)?;
        set_hairpin(bridge)?;
        let mut batch = Batch::new();
        self.ensure_skeleton(&listing, &mut batch);
        for rule in listing.tagged("port", owner) {
            batch.delete(NfListObject::Rule(
                self.rule_handle(&rule.chain, rule.handle),
            ));
        }
        for m in &resolved {
            let mut expr = Vec::new();
            if let Some(ip) = m.host_ip {
                expr.push(matches(
                    payload("ip", "daddr"),
                    Expression::String(ip.to_string().into()),
                ));
            }
            expr.push(matches(
                payload(m.protocol.as_str(), "dport"),
                Expression::Number(u32::from(m.host_port)),
            ));
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(Cow::Owned(container_ip.to_string()))),
                family: None,
                port: Some(Expression::Number(u32::from(m.container_port))),
                flags: None,
            })));
            batch.add(self.rule(
                CHAIN_PORT_DNAT,
                &Reservation::tag(owner, m, container_ip),
                expr,
            ));
        }
        self.apply(batch, &format!("publish ports of {owner}"))?;
        Ok(resolved)
    }

    /// Removes every rule (and port reservation) of `owner`. Idempotent.
    pub fn unpublish(&self, owner: &str) -> Result<(), PortError> {
        check_owner(owner)?;
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let Some(listing) = self.list()? else {
            return Ok(());
        };
        let mut batch = Batch::new();
        let mut any = false;
        for rule in listing.tagged("port", owner) {
            batch.delete(NfListObject::Rule(
                self.rule_handle(&rule.chain, rule.handle),
            ));
            any = true;
        }
        if any {
            self.apply(batch, &format!("unpublish ports of {owner}"))?;
        }
        Ok(())
    }

    /// Owners that currently have rules (for cleanup after a daemon crash: the engine unpublishes
    /// the ones whose container is not running).
    pub fn owners(&self) -> Result<Vec<String>, PortError> {
        let Some(listing) = self.list()? else {
            return Ok(Vec::new());
        };
        let mut owners: Vec<String> = Vec::new();
        for r in listing
            .rules
            .iter()
            .filter_map(|r| Reservation::parse(r.comment.as_deref()?))
        {
            if !owners.contains(&r.owner) {
                owners.push(r.owner);
            }
        }
        Ok(owners)
    }

    /// The mappings currently published for `owner`, read back from the table.
    pub fn published(&self, owner: &str) -> Result<Vec<PortMapping>, PortError> {
        let Some(listing) = self.list()? else {
            return Ok(Vec::new());
        };
        Ok(listing
            .tagged("port", owner)
            .filter_map(|r| {
                let comment = r.comment.as_deref()?;
                let res = Reservation::parse(comment)?;
                let container_port = comment.split_whitespace().nth(5)?.parse().ok()?;
                Some(PortMapping {
                    host_ip: res.host_ip,
                    host_port: res.host_port,
                    host_port_end: None,
                    container_port,
                    protocol: res.protocol,
                })
            })
            .collect())
    }
}

/// The first free port of a requested host range (`-p 8000-8010:80`), checked like a single
/// port; all taken is one "already in use" error naming the range.
fn pick_in_range(
    host_ip: Option<IpAddr>,
    low: u16,
    high: u16,
    protocol: Protocol,
    taken: &[Reservation],
) -> Result<u16, PortError> {
    for port in low..=high {
        if taken.iter().any(|r| r.overlaps(host_ip, port, protocol)) {
            continue;
        }
        match check_bindable(host_ip, port, protocol) {
            Ok(()) => return Ok(port),
            Err(PortError::InUse { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::InUse {
        addr: format!("{}:{low}-{high}", host_ip_text(host_ip)),
        protocol,
    })
}

/// A random free port of the ephemeral range: not reserved in the table, bindable.
fn pick_free_port(
    host_ip: Option<IpAddr>,
    protocol: Protocol,
    taken: &[Reservation],
) -> Result<u16, PortError> {
    let (low, high) = ephemeral_range();
    let span = u64::from(high - low) + 1;
    let start = random_u64() % span;
    for i in 0..span {
        let port = low + u16::try_from((start + i) % span).expect("offset below the range's span");
        if taken.iter().any(|r| r.overlaps(host_ip, port, protocol)) {
            continue;
        }
        match check_bindable(host_ip, port, protocol) {
            Ok(()) => return Ok(port),
            Err(PortError::InUse { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::Exhausted {
        low,
        high,
        protocol,
    })
}

/// Lets 127.0.0.1 be DNATed onto `bridge` (berth's own bridge only, never host-wide).
fn set_route_localnet(bridge: &str) -> Result<(), PortError> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    if std::fs::read_to_string(&path)
        .map(|v| v.trim() == "1")
        .unwrap_or(false)
    {
        return Ok(());
    }
    std::fs::write(&path, "1").map_err(|source| PortError::Sysctl { path, source })
}

/// Lets a container reach its own published port through a host address: with br_netfilter
/// the DNATed frame is bridged straight back to the port it came from, which a bridge only does
/// in hairpin mode (docker sets it on every veth when it runs without its userland proxy).
/// Only ports of berth's `bridge`.
fn set_hairpin(bridge: &str) -> Result<(), PortError> {
    let dir = format!("/sys/class/net/{bridge}/brif");
    let ports = std::fs::read_dir(&dir).map_err(|source| PortError::Sysctl {
        path: dir.clone(),
        source,
    })?;
    for port in ports.flatten() {
        let path = port.path().join("hairpin_mode");
        if std::fs::read_to_string(&path)
            .map(|v| v.trim() == "1")
            .unwrap_or(false)
        {
            continue;
        }
        std::fs::write(&path, "1").map_err(|source| PortError::Sysctl {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ip: Option<&str>, host: u16, container: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|i| i.parse().expect("test ip")),
            host_port: host,
            host_port_end: None,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn port_bindings_become_mappings() {
        let bindings = json!({
            "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}],
            "53/udp": [{"HostIp": "", "HostPort": ""}],
            "443": [{"HostIp": "127.0.0.1", "HostPort": "9443-9443"}],
            "9000/tcp": null
        });
        let got = from_docker(Some(&bindings), None, false).expect("valid");
        assert_eq!(
            got,
            vec![
                map(None, 8080, 80, Protocol::Tcp),
                map(Some("127.0.0.1"), 8081, 80, Protocol::Tcp),
                map(Some("127.0.0.1"), 9443, 443, Protocol::Tcp),
                map(None, 0, 53, Protocol::Udp),
            ]
        );
    }

    #[test]
    fn publish_all_maps_exposed_ports_without_a_binding() {
        let bindings = json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]});
        let exposed = json!({"80/tcp": {}, "443/tcp": {}, "53/udp": {}});
        let got = from_docker(Some(&bindings), Some(&exposed), true).expect("valid");
        assert_eq!(
            got,
            vec![
                map(None, 8080, 80, Protocol::Tcp),
                map(None, 0, 443, Protocol::Tcp),
                map(None, 0, 53, Protocol::Udp)
            ]
        );
        // Without -P, exposing publishes nothing.
        assert_eq!(
            from_docker(None, Some(&exposed), false).expect("valid"),
            vec![]
        );
    }

    #[test]
    fn bad_bindings_are_refused_naming_the_port() {
        for (bindings, needle) in [
            (json!({"80/sctp": [{"HostPort": "1"}]}), "80/sctp"),
            (json!({"x/tcp": [{"HostPort": "1"}]}), "x/tcp"),
            (json!({"80/tcp": [{"HostPort": "99999"}]}), "99999"),
            (
                json!({"80/tcp": [{"HostIp": "nope", "HostPort": "1"}]}),
                "nope",
            ),
            (json!({"80/tcp": [{"HostPort": "8010-8000"}]}), "8010-8000"),
            (json!({"80/tcp": "8080"}), "list"),
            (json!({"0/tcp": [{"HostPort": "1"}]}), "0/tcp"),
        ] {
            let err = from_docker(Some(&bindings), None, false)
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn host_range_for_one_container_port_is_kept_for_publish() {
        let got = from_docker(
            Some(&json!({"80/tcp": [{"HostPort": "8000-8010"}], "81/tcp": [{"HostPort": "9000-9000"}]})),
            None,
            false,
        )
        .expect("ranges");
        assert!(got.contains(&PortMapping {
            host_port_end: Some(8010),
            ..map(None, 8000, 80, Protocol::Tcp)
        }));
        assert!(got.contains(&map(None, 9000, 81, Protocol::Tcp)), "{got:?}");
    }

    #[test]
    fn inspect_ports_list_mappings_and_null_for_exposed_only() {
        let exposed = json!({"80/tcp": {}, "443/tcp": {}});
        let mappings = [
            map(None, 8080, 80, Protocol::Tcp),
            map(Some("127.0.0.1"), 8081, 80, Protocol::Tcp),
            map(None, 5353, 53, Protocol::Udp),
        ];
        assert_eq!(
            to_docker(&mappings, Some(&exposed)),
            json!({
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}],
                "443/tcp": null,
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}]
            })
        );
        assert_eq!(to_docker(&[], None), json!({}));
    }

    #[test]
    fn list_ports_like_the_containers_json_api() {
        let exposed = json!({"80/tcp": {}, "443/tcp": {}});
        assert_eq!(
            to_docker_list(&[map(None, 8080, 80, Protocol::Tcp)], Some(&exposed)),
            json!([
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"PrivatePort": 443, "Type": "tcp"}
            ])
        );
        assert_eq!(
            map(Some("127.0.0.1"), 8080, 80, Protocol::Udp).display(),
            "127.0.0.1:8080->80/udp"
        );
    }

    #[test]
    fn reservations_round_trip_through_the_rule_comment() {
        let m = map(Some("127.0.0.1"), 8080, 80, Protocol::Tcp);
        let tag = Reservation::tag("abc", &m, Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(tag, "port abc tcp 127.0.0.1 8080 80 10.1.2.3");
        let r = Reservation::parse(&tag).expect("parses");
        assert_eq!(
            r,
            Reservation {
                owner: "abc".into(),
                host_ip: m.host_ip,
                host_port: 8080,
                protocol: Protocol::Tcp
            }
        );
        let any = Reservation::parse("port x udp 0.0.0.0 53 53 10.0.0.2").expect("parses");
        assert_eq!(any.host_ip, None);
        assert!(Reservation::parse("net br0 10.0.0.0/24").is_none());
    }

    #[test]
    fn overlap_is_per_protocol_and_address_with_wildcards() {
        let r = Reservation {
            owner: "a".into(),
            host_ip: Some("127.0.0.1".parse().expect("ip")),
            host_port: 8080,
            protocol: Protocol::Tcp,
        };
        assert!(r.overlaps(None, 8080, Protocol::Tcp));
        assert!(r.overlaps(Some("127.0.0.1".parse().expect("ip")), 8080, Protocol::Tcp));
        assert!(!r.overlaps(Some("127.0.0.2".parse().expect("ip")), 8080, Protocol::Tcp));
        assert!(!r.overlaps(None, 8080, Protocol::Udp));
        assert!(!r.overlaps(None, 8081, Protocol::Tcp));
    }

    #[test]
    fn owners_are_checked() {
        assert!(check_owner("0123abcdef").is_ok());
        assert!(check_owner(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "semi;colon", &"a".repeat(65)] {
            assert!(check_owner(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_listening_port_is_in_use() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let port = listener.local_addr().expect("local addr").port();
        let err = check_bindable(Some("127.0.0.1".parse().expect("ip")), port, Protocol::Tcp)
            .expect_err("in use");
        assert_eq!(
            err.to_string(),
            format!("port 127.0.0.1:{port}/tcp is already in use")
        );
        // 0.0.0.0 overlaps 127.0.0.1.
        assert!(matches!(
            check_bindable(None, port, Protocol::Tcp),
            Err(PortError::InUse { .. })
        ));
        drop(listener);
    }

    #[test]
    fn random_ports_come_from_the_ephemeral_range_and_skip_reservations() {
        let (low, high) = ephemeral_range();
        let port = pick_free_port(Some("127.0.0.1".parse().expect("ip")), Protocol::Tcp, &[])
            .expect("a free port");
        assert!((low..=high).contains(&port));
    }
}
