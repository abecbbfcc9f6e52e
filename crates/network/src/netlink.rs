//! A small synchronous rtnetlink client (as netavark does it): links (bridge, veth), addresses,
//! routes, over `netlink-sys` with messages from `netlink-packet-route`. A [`Netlink`] is bound
//! to the network namespace it was created in; make one inside a container's namespace with
//! `berth_sys::netns::run_in(path, Netlink::new)`.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Why a netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket")]
    Socket(#[source] std::io::Error),
    #[error("{op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: bad netlink reply: {message}")]
    Decode { op: String, message: String },
    #[error("no interface named {0:?}")]
    NoLink(String),
}

impl NetlinkError {
    /// The kernel's errno, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A route in the main table, as far as overlap checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route4 {
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
}

/// An rtnetlink socket bound to one network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Open a socket in the calling thread's network namespace.
    pub fn new() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket.bind_auto().map_err(NetlinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        Ok(Self { socket, seq: 0 })
    }

    /// Send one request and collect the replies (all parts of a dump, or the ack).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.header.length as usize];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|source| NetlinkError::Kernel {
                op: op.to_string(),
                source,
            })?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let n =
                self.socket
                    .recv(&mut &mut rbuf[..], 0)
                    .map_err(|source| NetlinkError::Kernel {
                        op: op.to_string(),
                        source,
                    })?;
            let mut off = 0;
            while off < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    .map_err(|e| NetlinkError::Decode {
                        op: op.to_string(),
                        message: e.to_string(),
                    })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Decode {
                        op: op.to_string(),
                        message: "zero-length message".into(),
                    });
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(NetlinkError::Kernel {
                                op: op.to_string(),
                                source: std::io::Error::from_raw_os_error(-code.get()),
                            }),
                        }
                    }
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if flags & NLM_F_DUMP != NLM_F_DUMP {
                            // a non-dump request answers once (and acks if asked)
                            if flags & NLM_F_ACK == 0 {
                                return Ok(out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Index of the interface `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::GetLink(msg),
            0,
            &format!("look up interface {name}"),
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// MTU of the interface `name`, if it exists.
    pub fn link_mtu(&mut self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::GetLink(msg),
            0,
            &format!("look up interface {name}"),
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::Mtu(m) => Some(m),
                    _ => None,
                }),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn index_of(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.link_index(name)?
            .ok_or_else(|| NetlinkError::NoLink(name.to_string()))
    }

    /// Names of every interface in this namespace.
    pub fn link_names(&mut self) -> Result<Vec<String>, NetlinkError> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "list interfaces",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    /// Create a bridge (fails with EEXIST when it exists).
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(m) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(m));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        )?;
        Ok(())
    }

    /// Create a veth pair `host` (here, attached to `controller` if given) ↔ `peer`, the peer
    /// created directly inside the namespace `peer_netns`, with `peer_mac` if given.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        peer_mac: Option<[u8; 6]>,
        controller: Option<u32>,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        if let Some(m) = mtu {
            peer_msg.attributes.push(LinkAttribute::Mtu(m));
        }
        if let Some(mac) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        if let Some(c) = controller {
            msg.attributes.push(LinkAttribute::Controller(c));
        }
        if let Some(m) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(m));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth pair {host}/{peer}"),
        )?;
        Ok(())
    }

    /// Bring an interface up.
    pub fn set_up(&mut self, name: &str) -> Result<(), NetlinkError> {
        let index = self.index_of(name)?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
            &format!("set {name} up"),
        )?;
        Ok(())
    }

    /// Set an interface's MTU.
    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        let index = self.index_of(name)?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
            &format!("set mtu {mtu} on {name}"),
        )?;
        Ok(())
    }

    /// Delete an interface (a veth takes its peer along). Absent is fine.
    pub fn delete_link(&mut self, name: &str) -> Result<(), NetlinkError> {
        let Some(index) = self.link_index(name)? else {
            return Ok(());
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_ACK,
            &format!("delete interface {name}"),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Add `addr/prefix_len` to an interface. An address already there is fine.
    pub fn add_address(
        &mut self,
        name: &str,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let index = self.index_of(name)?;
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        let host_bits = 32u32.saturating_sub(u32::from(prefix_len));
        if prefix_len < 31 {
            let bcast = u32::from(addr) | ((1u64 << host_bits) - 1) as u32;
            msg.attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {addr}/{prefix_len} to {name}"),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = libc::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {gateway}"),
        )?;
        Ok(())
    }

    /// IPv4 routes of the main table (for picking subnets that don't collide with the host's).
    pub fn routes_v4(&mut self) -> Result<Vec<Route4>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let replies = self.request(
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP,
            "list routes",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(r) if r.header.table == libc::RT_TABLE_MAIN => {
                    let dst = r.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(*d),
                        _ => None,
                    });
                    let len = r.header.destination_prefix_length;
                    // the default route (0/0) overlaps everything and says nothing
                    dst.filter(|_| len > 0).map(|destination| Route4 {
                        destination,
                        prefix_len: len,
                    })
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed() {
        let mut nl = Netlink::new().expect("socket");
        let names = nl.link_names().expect("links");
        assert!(names.iter().any(|n| n == "lo"), "{names:?}");
        assert_eq!(nl.link_index("lo").expect("lo"), Some(1));
        assert_eq!(nl.link_index("berth-absent0").expect("absent"), None);
        assert!(matches!(
            nl.set_up("berth-absent0"),
            Err(NetlinkError::NoLink(_))
        ));
    }
}
