//! Linux bridge networks on the host and the veth pairs that plug a container's network
//! namespace into them: bridge with its gateway address (forwarding on for that bridge only),
//! veth pair created with its peer directly inside the container's namespace (so its name,
//! `eth0`, never collides on the host), address, `lo` and default route set through a netlink
//! socket opened inside that namespace. A failure half-way removes what was made.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::netlink::{Netlink, NetlinkError};

/// Why a bridge or a container link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container network namespace {path}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn write_sysctl(path: &str, value: &str) -> Result<(), BridgeError> {
    std::fs::write(path, value).map_err(|source| BridgeError::Io {
        op: "write",
        path: PathBuf::from(path),
        source,
    })
}

/// `net.ipv4.ip_forward=1` (dockerd's `--ip-forward`, default on).
pub fn enable_ip_forward() -> Result<(), BridgeError> {
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

/// Make sure bridge `name` exists, carries `gateway/prefix` and is up. Returns whether it was
/// created now (so a failing caller knows to delete it again).
/// `mtu`: docker's `com.docker.network.driver.mtu` (None: the kernel's 1500).
pub fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix_len: u8,
    mtu: Option<u32>,
) -> Result<bool, BridgeError> {
    let mut nl = Netlink::new()?;
    let created = match nl.link_index(name)? {
        Some(_) => false,
        None => {
            match nl.create_bridge(name, mtu) {
                Ok(()) => {}
                // a parallel create won the race: fine, it is the same bridge
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            true
        }
    };
    let setup = (|| -> Result<(), BridgeError> {
        nl.add_address(name, gateway, prefix_len)?;
        nl.set_up(name)?;
        // container ↔ container through a published port on the host needs forwarding on
        // this bridge, not host-wide
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/forwarding"), "1")?;
        Ok(())
    })();
    if let Err(e) = setup {
        if created {
            let _ = nl.delete_link(name);
        }
        return Err(e);
    }
    Ok(created)
}

/// Delete a bridge (absent is fine).
pub fn delete_bridge(name: &str) -> Result<(), BridgeError> {
    Netlink::new()?.delete_link(name)?;
    Ok(())
}

/// Does interface `name` exist on the host?
pub fn link_exists(name: &str) -> Result<bool, BridgeError> {
    Ok(Netlink::new()?.link_index(name)?.is_some())
}

/// IPv4 routes of the host's main table (to keep default subnets off the host's networks).
pub fn host_routes() -> Result<Vec<Ipv4Net>, BridgeError> {
    Ok(Netlink::new()?
        .routes_v4()?
        .into_iter()
        .filter_map(|r| Ipv4Net::new(r.destination, r.prefix_len).ok())
        .map(|n| n.trunc())
        .collect())
}

/// One container interface on a bridge.
#[derive(Debug, Clone)]
pub struct Link {
    /// The container's pinned network namespace.
    pub netns: PathBuf,
    pub bridge: String,
    pub host_veth: String,
    /// Name inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    /// Default route through this gateway (none on `--internal` networks, or when the
    /// container already has one from its first network).
    pub default_route: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    /// Both ends of the veth pair (None: 1500).
    pub mtu: Option<u32>,
}

/// Plug a container into its bridge. On error nothing of this link is left.
pub fn connect(l: &Link) -> Result<(), BridgeError> {
    let mut nl = Netlink::new()?;
    let bridge = nl
        .link_index(&l.bridge)?
        .ok_or_else(|| NetlinkError::NoLink(l.bridge.clone()))?;
    let ns = std::fs::File::open(&l.netns).map_err(|source| BridgeError::Netns {
        path: l.netns.clone(),
        source,
    })?;
    let create = |nl: &mut Netlink| {
        nl.create_veth(
            &l.host_veth,
            &l.ifname,
            ns.as_fd(),
            Some(l.mac),
            Some(bridge),
            l.mtu,
        )
    };
    match create(&mut nl) {
        // the same container's previous veth, still being deleted in the background
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            nl.delete_link(&l.host_veth)?;
            create(&mut nl)?;
        }
        r => r?,
    }
    let inside = {
        let l = l.clone();
        move || -> Result<(), NetlinkError> {
            let mut nl = Netlink::new()?;
            nl.set_up("lo")?;
            nl.add_address(&l.ifname, l.ip, l.prefix_len)?;
            nl.set_up(&l.ifname)?;
            if let Some(gw) = l.default_route {
                match nl.add_default_route(gw) {
                    Ok(()) => {}
                    Err(e) if e.errno() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    };
    let result = nl
        .set_up(&l.host_veth)
        .map_err(BridgeError::from)
        .and_then(|()| {
            berth_sys::netns::run_in(&l.netns, inside)
                .map_err(|source| BridgeError::Netns {
                    path: l.netns.clone(),
                    source,
                })?
                .map_err(BridgeError::from)
        });
    if result.is_err() {
        let _ = nl.delete_link(&l.host_veth);
    }
    result
}

/// Unplug: deleting the host end takes the container end along. Absent is fine.
pub fn disconnect(host_veth: &str) -> Result<(), BridgeError> {
    Netlink::new()?.delete_link(host_veth)?;
    Ok(())
}

/// Create a container's network namespace at `path` with `lo` up.
pub fn create_netns(path: &Path) -> Result<(), BridgeError> {
    let netns = |source| BridgeError::Netns {
        path: path.to_path_buf(),
        source,
    };
    berth_sys::netns::create(path, || Netlink::new().and_then(|mut nl| nl.set_up("lo")))
        .map_err(netns)?
        .map_err(|e| {
            let _ = berth_sys::netns::remove(path);
            BridgeError::from(e)
        })
}

/// Remove a container's pinned namespace (absent is fine).
pub fn remove_netns(path: &Path) -> Result<(), BridgeError> {
    berth_sys::netns::remove(path).map_err(|source| BridgeError::Netns {
        path: path.to_path_buf(),
        source,
    })
}
