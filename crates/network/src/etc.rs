//! The files that give a container its names, written like docker writes them: `/etc/hosts`
//! (localhost lines, `--add-host` entries, the container's own address and hostname) and
//! `/etc/resolv.conf` (the host's, minus loopback servers, or the network's DNS server on user
//! networks; `--dns`, `--dns-search`, `--dns-option` override). Pure functions over text.

use std::net::{IpAddr, Ipv4Addr};

/// Why an option was refused.
#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error("bad format for add-host: {0:?}")]
    AddHost(String),
    #[error("{0} is not an ip address")]
    Dns(String),
}

/// One `--add-host name:ip` (docker also takes `name=ip`; `host-gateway` means the gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub ip: String,
}

/// Parse `--add-host` values.
pub fn parse_extra_hosts(
    items: &[String],
    host_gateway: Option<Ipv4Addr>,
) -> Result<Vec<ExtraHost>, EtcError> {
    items
        .iter()
        .map(|s| {
            let (name, ip) = s
                .split_once('=')
                .or_else(|| s.split_once(':'))
                .ok_or_else(|| EtcError::AddHost(s.clone()))?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if name.is_empty() {
                return Err(EtcError::AddHost(s.clone()));
            }
            let ip = if ip == "host-gateway" {
                host_gateway
                    .map(|g| g.to_string())
                    .ok_or_else(|| EtcError::AddHost(s.clone()))?
            } else {
                ip.parse::<IpAddr>()
                    .map_err(|_| EtcError::AddHost(s.clone()))?
                    .to_string()
            };
            Ok(ExtraHost {
                name: name.to_string(),
                ip,
            })
        })
        .collect()
}

/// What `/etc/hosts` says.
pub struct HostsInput<'a> {
    pub hostname: &'a str,
    pub domainname: &'a str,
    /// The container's address on its first network (none: `--network none`).
    pub ip: Option<Ipv4Addr>,
    pub extra: &'a [ExtraHost],
}

/// `/etc/hosts` content, docker's layout.
pub fn hosts(i: &HostsInput<'_>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for e in i.extra {
        s.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    let names = if i.domainname.is_empty() {
        i.hostname.to_string()
    } else {
        format!("{}.{} {}", i.hostname, i.domainname, i.hostname)
    };
    match i.ip {
        Some(ip) => s.push_str(&format!("{ip}\t{names}\n")),
        None => s.push_str(&format!("127.0.0.1\t{names}\n")),
    }
    s
}

/// What `/etc/resolv.conf` says.
pub struct ResolvInput<'a> {
    /// The host's resolv.conf.
    pub host: &'a str,
    /// The network's own DNS server (user networks): it answers container names and forwards
    /// the rest.
    pub embedded: Option<Ipv4Addr>,
    pub dns: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
}

/// Nameservers of a resolv.conf text.
pub fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next().map(String::from))
                .flatten()
        })
        .collect()
}

fn is_loopback(server: &str) -> bool {
    server
        .split('%')
        .next()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// Upstream servers for a container: `--dns`, else the host's non-loopback servers, else
/// docker's fallback (Google's public resolvers).
pub fn upstream_servers(host: &str, dns: &[String]) -> Vec<String> {
    if !dns.is_empty() {
        return dns.to_vec();
    }
    let servers: Vec<String> = nameservers(host)
        .into_iter()
        .filter(|s| !is_loopback(s))
        .collect();
    if servers.is_empty() {
        vec!["8.8.8.8".into(), "8.8.4.4".into()]
    } else {
        servers
    }
}

/// Check `--dns` values are addresses.
pub fn check_dns(dns: &[String]) -> Result<(), EtcError> {
    for d in dns {
        if d.parse::<IpAddr>().is_err() {
            return Err(EtcError::Dns(d.clone()));
        }
    }
    Ok(())
}

/// `/etc/resolv.conf` content.
pub fn resolv_conf(i: &ResolvInput<'_>) -> String {
    let servers = match i.embedded {
        Some(gw) => vec![gw.to_string()],
        None => upstream_servers(i.host, i.dns),
    };
    let host_search: Vec<String> = i
        .host
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            matches!(w.next(), Some("search") | Some("domain"))
                .then(|| w.map(String::from).collect::<Vec<_>>())
        })
        .next_back()
        .unwrap_or_default();
    let host_options: Vec<String> = i
        .host
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("options")).then(|| w.map(String::from).collect::<Vec<_>>())
        })
        .flatten()
        .collect();
    let search: Vec<String> = if i.search.is_empty() {
        host_search
    } else {
        i.search
            .iter()
            .filter(|s| s.as_str() != ".")
            .cloned()
            .collect()
    };
    let mut options: Vec<String> = if i.options.is_empty() {
        host_options
    } else {
        i.options.to_vec()
    };
    if i.embedded.is_some() && !options.iter().any(|o| o.starts_with("ndots")) {
        options.push("ndots:0".into());
    }
    let mut s = String::new();
    for n in servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_docker() {
        let extra = parse_extra_hosts(
            &["db:10.1.2.3".into(), "gw:host-gateway".into()],
            Some(Ipv4Addr::new(10, 9, 0, 1)),
        )
        .expect("parse");
        let h = hosts(&HostsInput {
            hostname: "web",
            domainname: "",
            ip: Some(Ipv4Addr::new(10, 9, 0, 2)),
            extra: &extra,
        });
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"), "{h}");
        assert!(h.contains("10.1.2.3\tdb\n"), "{h}");
        assert!(h.contains("10.9.0.1\tgw\n"), "{h}");
        assert!(h.ends_with("10.9.0.2\tweb\n"), "{h}");
        let h = hosts(&HostsInput {
            hostname: "a",
            domainname: "example.org",
            ip: None,
            extra: &[],
        });
        assert!(h.ends_with("127.0.0.1\ta.example.org a\n"), "{h}");
        assert!(parse_extra_hosts(&["nocolon".into()], None).is_err());
        assert!(parse_extra_hosts(&["x:notanip".into()], None).is_err());
        assert!(parse_extra_hosts(&["x:host-gateway".into()], None).is_err());
        let v6 = parse_extra_hosts(&["v6:[::1]".into()], None).expect("v6");
        assert_eq!(v6[0].ip, "::1");
    }

    #[test]
    fn resolv_conf_drops_loopback_and_honours_flags() {
        let host =
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";
        let r = resolv_conf(&ResolvInput {
            host,
            embedded: None,
            dns: &[],
            search: &[],
            options: &[],
        });
        assert_eq!(
            r,
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
        let only_loop = resolv_conf(&ResolvInput {
            host: "nameserver 127.0.0.1\n",
            embedded: None,
            dns: &[],
            search: &[],
            options: &[],
        });
        assert_eq!(only_loop, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let flags = resolv_conf(&ResolvInput {
            host,
            embedded: None,
            dns: &["1.1.1.1".into()],
            search: &["a.example".into()],
            options: &["ndots:2".into()],
        });
        assert_eq!(
            flags,
            "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"
        );
        let user = resolv_conf(&ResolvInput {
            host,
            embedded: Some(Ipv4Addr::new(10, 9, 0, 1)),
            dns: &["1.1.1.1".into()],
            search: &[],
            options: &[],
        });
        assert_eq!(
            user,
            "nameserver 10.9.0.1\nsearch corp.example\noptions edns0 ndots:0\n"
        );
        assert!(check_dns(&["1.2.3.4".into()]).is_ok());
        assert!(check_dns(&["nope".into()]).is_err());
    }
}
