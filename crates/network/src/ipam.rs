//! Address management for one IPv4 subnet: validation of subnet/gateway/ip-range (docker's
//! rules and messages), allocation that never hands out an address in use (the caller passes
//! the set in use; the store persists it) and goes round-robin from the last one handed out, so
//! an address just released is not reused at once; and default address pools for networks
//! created without a subnet.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Why an address or subnet was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid subnet {0}: the address must be the network address ({1})")]
    NotNetwork(Ipv4Net, Ipv4Addr),
    #[error("invalid subnet {0}: too small for containers (at most /30)")]
    TooSmall(Ipv4Net),
    #[error("no matching subnet for gateway {0}")]
    GatewayOutside(Ipv4Addr),
    #[error("no matching subnet for range {0}")]
    RangeOutside(Ipv4Net),
    #[error("no available IPv4 addresses on network {network}: all of {range} are in use")]
    Exhausted { network: String, range: Ipv4Net },
    #[error("invalid address {ip}: it is not in subnet {subnet} of network {network}")]
    NotInSubnet {
        ip: Ipv4Addr,
        subnet: Ipv4Net,
        network: String,
    },
    #[error("address {ip} is already in use on network {network}")]
    InUse { ip: Ipv4Addr, network: String },
    #[error("address {ip} is reserved on network {network} (network, gateway or broadcast)")]
    Reserved { ip: Ipv4Addr, network: String },
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
    #[error("invalid default address pool {0:?}: expected base=CIDR,size=N")]
    BadPool(String),
}

/// The addressing of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Where container addresses come from (default: the whole subnet).
    pub range: Option<Ipv4Net>,
}

impl Pool {
    /// Validate; the gateway defaults to the first host address.
    pub fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        range: Option<Ipv4Net>,
    ) -> Result<Self, IpamError> {
        if subnet.network() != subnet.addr() {
            return Err(IpamError::NotNetwork(subnet, subnet.network()));
        }
        if subnet.prefix_len() > 30 {
            return Err(IpamError::TooSmall(subnet));
        }
        let first = Ipv4Addr::from(u32::from(subnet.network()) + 1);
        let gateway = gateway.unwrap_or(first);
        if !subnet.contains(&gateway)
            || gateway == subnet.network()
            || gateway == subnet.broadcast()
        {
            return Err(IpamError::GatewayOutside(gateway));
        }
        if let Some(r) = range {
            if r.network() != r.addr() || !subnet.contains(&r) {
                return Err(IpamError::RangeOutside(r));
            }
        }
        Ok(Self {
            subnet,
            gateway,
            range,
        })
    }

    /// Pick an address: `requested` if free, else the next free one after `last` (round robin
    /// through the range, skipping network, gateway and broadcast).
    pub fn allocate(
        &self,
        network: &str,
        used: &BTreeSet<Ipv4Addr>,
        requested: Option<Ipv4Addr>,
        last: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = requested {
            if !self.subnet.contains(&ip) {
                return Err(IpamError::NotInSubnet {
                    ip,
                    subnet: self.subnet,
                    network: network.to_string(),
                });
            }
            if self.reserved(ip) {
                return Err(IpamError::Reserved {
                    ip,
                    network: network.to_string(),
                });
            }
            if used.contains(&ip) {
                return Err(IpamError::InUse {
                    ip,
                    network: network.to_string(),
                });
            }
            return Ok(ip);
        }
        let range = self.range.unwrap_or(self.subnet);
        let lo = u32::from(range.network());
        let hi = u32::from(range.broadcast());
        let size = u64::from(hi - lo) + 1;
        let start = last
            .map(u32::from)
            .filter(|l| (lo..=hi).contains(l))
            .map(|l| u64::from(l - lo) + 1)
            .unwrap_or(0);
        for step in 0..size {
            let off = (start + step) % size;
            let ip = Ipv4Addr::from(lo + off as u32);
            if !self.reserved(ip) && !used.contains(&ip) {
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted {
            network: network.to_string(),
            range,
        })
    }

    fn reserved(&self, ip: Ipv4Addr) -> bool {
        ip == self.subnet.network() || ip == self.subnet.broadcast() || ip == self.gateway
    }
}

/// Do two subnets share any address?
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `--default-address-pool base=CIDR,size=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl std::str::FromStr for AddressPool {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IpamError::BadPool(s.to_string());
        let mut base = None;
        let mut size = None;
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("base", v)) => base = Some(v.parse::<Ipv4Net>().map_err(|_| bad())?),
                Some(("size", v)) => size = Some(v.parse::<u8>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let (base, size) = base.zip(size).ok_or_else(bad)?;
        if size < base.prefix_len() || size > 30 || base.network() != base.addr() {
            return Err(bad());
        }
        Ok(Self { base, size })
    }
}

/// dockerd's defaults: 172.17-31.0.0/16 and 192.168.0.0/16 cut into /20s.
pub fn default_pools() -> Vec<AddressPool> {
    vec![
        AddressPool {
            base: "172.17.0.0/16".parse().expect("literal"),
            size: 16,
        },
        AddressPool {
            base: "172.18.0.0/15".parse().expect("literal"),
            size: 16,
        },
        AddressPool {
            base: "172.20.0.0/14".parse().expect("literal"),
            size: 16,
        },
        AddressPool {
            base: "172.24.0.0/13".parse().expect("literal"),
            size: 16,
        },
        AddressPool {
            base: "192.168.0.0/16".parse().expect("literal"),
            size: 20,
        },
    ]
}

/// The first subnet of the pools that overlaps none of `taken` (existing networks and host
/// routes).
pub fn pick_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    for p in pools {
        let Ok(subnets) = p.base.subnets(p.size) else {
            continue;
        };
        for s in subnets {
            if !taken.iter().any(|t| overlaps(t, &s)) {
                return Ok(s);
            }
        }
    }
    Err(IpamError::NoPool)
}

/// Docker's MAC for an address: 02:42 then the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `--mac-address`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split([':', '-'])
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<Vec<_>>>()?;
    let m: [u8; 6] = parts.try_into().ok()?;
    // unicast only
    (m[0] & 1 == 0).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    #[test]
    fn validation() {
        let p = Pool::new(net("10.50.0.0/24"), None, None).expect("pool");
        assert_eq!(p.gateway, Ipv4Addr::new(10, 50, 0, 1));
        assert!(matches!(
            Pool::new(net("10.50.0.5/24"), None, None),
            Err(IpamError::NotNetwork(..))
        ));
        assert!(matches!(
            Pool::new(net("10.50.0.0/24"), Some(Ipv4Addr::new(10, 51, 0, 1)), None),
            Err(IpamError::GatewayOutside(_))
        ));
        assert!(matches!(
            Pool::new(net("10.50.0.0/24"), None, Some(net("10.50.1.0/28"))),
            Err(IpamError::RangeOutside(_))
        ));
        assert!(Pool::new(net("10.50.0.0/31"), None, None).is_err());
    }

    #[test]
    fn allocation_never_repeats_and_round_robins() {
        let p = Pool::new(net("10.50.0.0/29"), None, None).expect("pool");
        let mut used = BTreeSet::new();
        let mut last = None;
        let mut got = vec![];
        for _ in 0..5 {
            let ip = p.allocate("n", &used, None, last).expect("ip");
            assert!(used.insert(ip), "{ip} handed out twice");
            last = Some(ip);
            got.push(ip.octets()[3]);
        }
        // .0 network, .1 gateway, .7 broadcast
        assert_eq!(got, vec![2, 3, 4, 5, 6]);
        let e = p.allocate("n", &used, None, last).expect_err("full");
        assert!(e.to_string().contains("no available IPv4"), "{e}");
        // release .3: the next allocation finds it, though it comes after the last one
        used.remove(&Ipv4Addr::new(10, 50, 0, 3));
        assert_eq!(
            p.allocate("n", &used, None, last).expect("ip"),
            Ipv4Addr::new(10, 50, 0, 3)
        );
        // round robin: with .2 and .3 free and last=.2, .3 comes first
        used.remove(&Ipv4Addr::new(10, 50, 0, 2));
        assert_eq!(
            p.allocate("n", &used, None, Some(Ipv4Addr::new(10, 50, 0, 2)))
                .expect("ip"),
            Ipv4Addr::new(10, 50, 0, 3)
        );
    }

    #[test]
    fn requested_and_range() {
        let p = Pool::new(net("10.50.0.0/24"), None, Some(net("10.50.0.128/30"))).expect("pool");
        let used = BTreeSet::from([Ipv4Addr::new(10, 50, 0, 9)]);
        assert_eq!(
            p.allocate("n", &used, None, None).expect("ip"),
            Ipv4Addr::new(10, 50, 0, 128)
        );
        assert_eq!(
            p.allocate("n", &used, Some(Ipv4Addr::new(10, 50, 0, 10)), None)
                .expect("ip"),
            Ipv4Addr::new(10, 50, 0, 10)
        );
        assert!(matches!(
            p.allocate("n", &used, Some(Ipv4Addr::new(10, 50, 0, 9)), None),
            Err(IpamError::InUse { .. })
        ));
        assert!(matches!(
            p.allocate("n", &used, Some(Ipv4Addr::new(10, 50, 0, 1)), None),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            p.allocate("n", &used, Some(Ipv4Addr::new(10, 60, 0, 9)), None),
            Err(IpamError::NotInSubnet { .. })
        ));
    }

    #[test]
    fn pools_skip_taken() {
        let pools: Vec<AddressPool> = vec!["base=10.60.0.0/16,size=24".parse().expect("pool")];
        let taken = vec![net("10.60.0.0/24"), net("10.60.1.128/25")];
        assert_eq!(
            pick_subnet(&pools, &taken).expect("subnet"),
            net("10.60.2.0/24")
        );
        assert_eq!(
            pick_subnet(&pools, &[net("10.0.0.0/8")]),
            Err(IpamError::NoPool)
        );
        assert!("base=10.0.0.0/16".parse::<AddressPool>().is_err());
        assert!("base=10.0.0.0/16,size=8".parse::<AddressPool>().is_err());
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/16"), &net("10.1.0.0/16")));
        assert_eq!(
            pick_subnet(&default_pools(), &[]).expect("d"),
            net("172.17.0.0/16")
        );
    }

    #[test]
    fn macs() {
        assert_eq!(
            format_mac(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("01:42:ac:11:00:02"), None);
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
    }
}
