//! berth's container networking (issue 5): docker's network model on Linux bridges. It owns
//! bridges and veth pairs (netlink), address management (IPAM, persisted), the files that
//! give a container its names (/etc/hosts, /etc/resolv.conf), name resolution between
//! containers, and published ports (nftables DNAT). The engine calls it; it knows nothing
//! of the engine.
pub mod bridge;
pub mod dns;
pub mod etc;
pub mod ipam;
pub mod netlink;
pub mod nft;
pub mod ports;
pub mod store;
