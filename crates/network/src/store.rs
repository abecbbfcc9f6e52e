//! The network store: one JSON file per network under `<data-root>/network/<id>.json`
//! holding its definition and its endpoints (which container has which address), replaced
//! atomically (temp file, rename) on every change — definitions also fsynced, file and
//! directory — so IPAM survives daemon crashes and restarts and never hands out an address
//! twice. Lookups by full id, name or
//! unique id prefix, like docker's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::ipam::{self, IpamError, Pool};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network with name {0} already exists")]
    NameExists(String),
    #[error("network {key} is ambiguous: {count} networks match")]
    Ambiguous { key: String, count: usize },
    #[error("subnet {subnet} overlaps with subnet {other} of network {network}")]
    Overlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        network: String,
    },
    #[error("network {network} has no IPv4 addressing")]
    NoPool { network: String },
    #[error("container {container} is already attached to network {network}")]
    AlreadyAttached { container: String, network: String },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: String,
    /// Container name without `/`.
    pub name: String,
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub aliases: Vec<String>,
    /// Host end of the veth pair.
    pub host_veth: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// Published ports (host ports resolved), on the container's first network.
    #[serde(default)]
    pub ports: Vec<crate::ports::PortMapping>,
    /// The container's `--dns` servers.
    #[serde(default)]
    pub dns_servers: Vec<std::net::IpAddr>,
}

/// One network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    /// Bridge interface (bridge driver).
    #[serde(default)]
    pub bridge: String,
    #[serde(default)]
    pub pool: Option<Pool>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `bridge`, `host`, `none`: made by the daemon, never removed by users.
    #[serde(default)]
    pub predefined: bool,
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    #[serde(default)]
    pub last_ip: Option<Ipv4Addr>,
}

/// Docker's option for a network's MTU.
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";

impl Network {
    /// The MTU of its bridge and veths (`com.docker.network.driver.mtu`), None for the default.
    pub fn mtu(&self) -> Option<u32> {
        self.options.get(MTU_OPTION).and_then(|m| m.parse().ok())
    }

    /// Does this network resolve container names (docker: user-defined bridge networks)?
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && !self.predefined
    }
}

/// What [`NetworkStore::attach`] needs.
pub struct AttachRequest<'a> {
    pub container: &'a str,
    pub name: &'a str,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    pub host_veth: String,
    pub ifname: String,
    pub endpoint_id: String,
    /// The container's `--dns` servers (its DNS server forwards to them).
    pub dns_servers: Vec<std::net::IpAddr>,
}

/// All networks of one daemon.
pub struct NetworkStore {
    dir: PathBuf,
    map: Mutex<BTreeMap<String, Network>>,
}

/// Replace `path` by a rename, so a reader (or berthd after a crash) sees the old or the new
/// version, never a mix. `durable` also fsyncs file and directory: network definitions must
/// survive a power loss; endpoints need not (after one, every container is gone anyway), and
/// skipping the two fsyncs keeps them off the container start path.
fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<(), StoreError> {
    let io = |op, source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(data).map_err(|e| io("write", e))?;
    if durable {
        f.sync_all().map_err(|e| io("sync", e))?;
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    if let Some(dir) = path.parent().filter(|_| durable) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync directory of", e))?;
    }
    Ok(())
}

impl NetworkStore {
    /// Load every network under `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut map = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
            op: "list",
            path: dir.to_path_buf(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                // a temp file from a write cut short: the previous version is intact
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let data = std::fs::read(&p).map_err(|source| StoreError::Io {
                op: "read",
                path: p.clone(),
                source,
            })?;
            let n: Network = serde_json::from_slice(&data)
                .map_err(|source| StoreError::Parse { path: p, source })?;
            map.insert(n.id.clone(), n);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            map: Mutex::new(map),
        })
    }

    fn save(&self, n: &Network) -> Result<(), StoreError> {
        self.write(n, true)
    }

    /// Endpoint changes: atomic, not fsynced (see [`write_atomic`]).
    fn save_endpoints(&self, n: &Network) -> Result<(), StoreError> {
        self.write(n, false)
    }

    fn write(&self, n: &Network, durable: bool) -> Result<(), StoreError> {
        let data = serde_json::to_vec_pretty(n).map_err(|source| StoreError::Parse {
            path: self.dir.join(&n.id),
            source,
        })?;
        write_atomic(&self.dir.join(format!("{}.json", n.id)), &data, durable)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Network>> {
        self.map.lock().expect("network store lock poisoned")
    }

    fn find<'m>(map: &'m BTreeMap<String, Network>, key: &str) -> Result<&'m Network, StoreError> {
        if let Some(n) = map.get(key) {
            return Ok(n);
        }
        if let Some(n) = map.values().find(|n| n.name == key) {
            return Ok(n);
        }
        let hits: Vec<&Network> = map.values().filter(|n| n.id.starts_with(key)).collect();
        match hits.len() {
            1 if !key.is_empty() => Ok(hits[0]),
            0 | 1 => Err(StoreError::NotFound(key.to_string())),
            count => Err(StoreError::Ambiguous {
                key: key.to_string(),
                count,
            }),
        }
    }

    /// By id, name or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Network, StoreError> {
        Self::find(&self.lock(), key).cloned()
    }

    /// Every network, by name.
    pub fn list(&self) -> Vec<Network> {
        let mut v: Vec<Network> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Subnets in use by networks (for overlap checks and default pools).
    pub fn subnets(&self) -> Vec<(String, Ipv4Net)> {
        self.lock()
            .values()
            .filter_map(|n| n.pool.map(|p| (n.name.clone(), p.subnet)))
            .collect()
    }

    /// Add a network: refused when its name is taken or its subnet overlaps another's.
    pub fn insert(&self, n: Network) -> Result<(), StoreError> {
        let mut map = self.lock();
        if map.values().any(|o| o.name == n.name) {
            return Err(StoreError::NameExists(n.name));
        }
        if let Some(p) = n.pool {
            if let Some(o) = map.values().find(|o| {
                o.pool
                    .is_some_and(|op| ipam::overlaps(&op.subnet, &p.subnet))
            }) {
                return Err(StoreError::Overlap {
                    subnet: p.subnet,
                    other: o.pool.map(|op| op.subnet).expect("checked above"),
                    network: o.name.clone(),
                });
            }
        }
        self.save(&n)?;
        map.insert(n.id.clone(), n);
        Ok(())
    }

    /// Replace a network's definition (the daemon's own `bridge` when its flags change).
    pub fn replace(&self, n: Network) -> Result<(), StoreError> {
        let mut map = self.lock();
        self.save(&n)?;
        map.insert(n.id.clone(), n);
        Ok(())
    }

    /// Remove a network's record.
    pub fn remove(&self, id: &str) -> Result<Network, StoreError> {
        let mut map = self.lock();
        let n = map
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let p = self.dir.join(format!("{id}.json"));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    op: "remove",
                    path: p,
                    source,
                })
            }
        }
        map.remove(id);
        Ok(n)
    }

    /// Give `container` an address on network `id` and record the endpoint (persisted before
    /// anything is configured, so a crash can't hand the address out again).
    pub fn attach(&self, id: &str, r: AttachRequest<'_>) -> Result<Endpoint, StoreError> {
        let mut map = self.lock();
        let n = map
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        if n.endpoints.contains_key(r.container) {
            return Err(StoreError::AlreadyAttached {
                container: r.name.to_string(),
                network: n.name.clone(),
            });
        }
        let pool = n.pool.ok_or_else(|| StoreError::NoPool {
            network: n.name.clone(),
        })?;
        let used: BTreeSet<Ipv4Addr> = n.endpoints.values().map(|e| e.ip).collect();
        let ip = pool.allocate(&n.name, &used, r.ip, n.last_ip)?;
        let mac = r.mac.unwrap_or_else(|| ipam::mac_for(ip));
        let ep = Endpoint {
            container: r.container.to_string(),
            name: r.name.to_string(),
            endpoint_id: r.endpoint_id,
            ip,
            mac: ipam::format_mac(mac),
            aliases: r.aliases,
            host_veth: r.host_veth,
            ifname: r.ifname,
            ports: Vec::new(),
            dns_servers: r.dns_servers,
        };
        let mut updated = n.clone();
        updated
            .endpoints
            .insert(r.container.to_string(), ep.clone());
        if r.ip.is_none() {
            updated.last_ip = Some(ip);
        }
        self.save_endpoints(&updated)?;
        *n = updated;
        Ok(ep)
    }

    /// Record the ports published for `container`'s endpoint on network `id`.
    pub fn set_ports(
        &self,
        id: &str,
        container: &str,
        ports: Vec<crate::ports::PortMapping>,
    ) -> Result<(), StoreError> {
        let mut map = self.lock();
        let n = map
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut updated = n.clone();
        if let Some(ep) = updated.endpoints.get_mut(container) {
            ep.ports = ports;
        }
        self.save_endpoints(&updated)?;
        *n = updated;
        Ok(())
    }

    /// Forget `container`'s endpoint on network `id` (its address is free again).
    pub fn detach(&self, id: &str, container: &str) -> Result<Option<Endpoint>, StoreError> {
        let mut map = self.lock();
        let Some(n) = map.get_mut(id) else {
            return Ok(None);
        };
        let Some(ep) = n.endpoints.get(container).cloned() else {
            return Ok(None);
        };
        let mut updated = n.clone();
        updated.endpoints.remove(container);
        self.save_endpoints(&updated)?;
        *n = updated;
        Ok(Some(ep))
    }

    /// Networks that have an endpoint for `container`.
    pub fn of_container(&self, container: &str) -> Vec<(Network, Endpoint)> {
        self.lock()
            .values()
            .filter_map(|n| n.endpoints.get(container).map(|e| (n.clone(), e.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, name: &str, subnet: &str) -> Network {
        Network {
            id: id.into(),
            name: name.into(),
            driver: "bridge".into(),
            created: String::new(),
            bridge: format!("br-{id}"),
            pool: Some(Pool::new(subnet.parse().expect("subnet"), None, None).expect("pool")),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            predefined: false,
            endpoints: BTreeMap::new(),
            last_ip: None,
        }
    }

    fn req<'a>(c: &'a str, ip: Option<Ipv4Addr>) -> AttachRequest<'a> {
        AttachRequest {
            container: c,
            name: c,
            aliases: vec![],
            ip,
            mac: None,
            host_veth: format!("vb{c}"),
            ifname: "eth0".into(),
            endpoint_id: format!("ep{c}"),
            dns_servers: vec![],
        }
    }

    #[test]
    fn persisted_allocations_survive_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = NetworkStore::open(dir.path()).expect("open");
        s.insert(net("aaa111", "one", "10.70.0.0/24"))
            .expect("insert");
        let e = s
            .insert(net("bbb222", "two", "10.70.0.128/25"))
            .expect_err("overlap");
        assert!(
            e.to_string().contains("10.70.0.128/25") && e.to_string().contains("10.70.0.0/24"),
            "{e}"
        );
        let e = s
            .insert(net("ccc333", "one", "10.71.0.0/24"))
            .expect_err("dup");
        assert!(matches!(e, StoreError::NameExists(_)));
        let a = s.attach("aaa111", req("c1", None)).expect("c1");
        assert_eq!(a.ip, Ipv4Addr::new(10, 70, 0, 2));
        assert_eq!(a.mac, "02:42:0a:46:00:02");
        assert!(
            s.attach("aaa111", req("c1", None)).is_err(),
            "attached twice"
        );
        drop(s);
        let s = NetworkStore::open(dir.path()).expect("reopen");
        let b = s.attach("aaa111", req("c2", None)).expect("c2");
        assert_eq!(
            b.ip,
            Ipv4Addr::new(10, 70, 0, 3),
            "c1's address is still taken"
        );
        let e = s
            .attach("aaa111", req("c3", Some(Ipv4Addr::new(10, 70, 0, 3))))
            .expect_err("in use");
        assert!(e.to_string().contains("already in use"), "{e}");
        assert_eq!(
            s.detach("aaa111", "c1").expect("detach").map(|e| e.ip),
            Some(a.ip)
        );
        assert_eq!(s.detach("aaa111", "c1").expect("detach twice"), None);
        assert_eq!(s.of_container("c2").len(), 1);
        assert_eq!(s.get("one").expect("by name").id, "aaa111");
        assert_eq!(s.get("aaa").expect("by prefix").id, "aaa111");
        assert!(matches!(s.get("zzz"), Err(StoreError::NotFound(_))));
        s.remove("aaa111").expect("remove");
        assert!(s.list().is_empty());
        assert!(NetworkStore::open(dir.path())
            .expect("reopen")
            .list()
            .is_empty());
    }
}
