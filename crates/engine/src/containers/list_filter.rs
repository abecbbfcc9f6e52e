//! The `GET /containers/json` filters that look past a record's own fields — network, health,
//! expose, publish, before/since, is-task — as pure functions over a [`Record`], so
//! [`super::Containers::list`] stays a loop and these are tested without containers.

use super::Record;

/// A port filter value: `80`, `80/udp`, `8000-8080`, `8000-8080/tcp` (docker's forms; the
/// protocol defaults to tcp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFilter {
    low: u16,
    high: u16,
    proto: String,
}

impl PortFilter {
    /// Parses one filter value; the error names it.
    pub fn parse(s: &str) -> Result<PortFilter, String> {
        let bad = || format!("invalid port filter {s:?}: expected PORT[-PORT][/PROTO]");
        let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let (low, high) = ports.split_once('-').unwrap_or((ports, ports));
        let (low, high): (u16, u16) = (
            low.trim().parse().map_err(|_| bad())?,
            high.trim().parse().map_err(|_| bad())?,
        );
        if low > high || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(bad());
        }
        Ok(PortFilter {
            low,
            high,
            proto: proto.to_string(),
        })
    }

    /// Whether a docker port key (`80/tcp`) is in this filter.
    pub fn matches_key(&self, key: &str) -> bool {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        port.parse::<u16>()
            .is_ok_and(|p| (self.low..=self.high).contains(&p) && proto == self.proto)
    }
}

/// `network=`: a network the container joins, by name or (a prefix of) its id.
pub fn network(r: &Record, wanted: &[&str]) -> bool {
    wanted.iter().any(|w| {
        r.networks
            .iter()
            .any(|(name, ep)| name == w || (!w.is_empty() && ep.network_id.starts_with(w)))
    })
}

/// `health=`: starting, healthy, unhealthy, or none for containers without a check.
pub fn health(r: &Record, wanted: &[&str]) -> bool {
    let status = r
        .state
        .health
        .as_ref()
        .map_or("none", |h| h.status.as_str());
    wanted.contains(&status)
}

/// `expose=`: a port in the container's ExposedPorts.
pub fn expose(r: &Record, wanted: &[PortFilter]) -> bool {
    let keys = r.config.exposed_ports.iter().flat_map(|m| m.keys());
    keys.into_iter()
        .any(|k| wanted.iter().any(|f| f.matches_key(k)))
}

/// `publish=`: a container port with a host binding (HostConfig.PortBindings), as docker
/// matches it.
pub fn publish(r: &Record, wanted: &[PortFilter]) -> bool {
    let Some(serde_json::Value::Object(bindings)) = &r.host_config.port_bindings else {
        return false;
    };
    bindings
        .iter()
        .filter(|(_, v)| v.as_array().is_some_and(|a| !a.is_empty()))
        .any(|(k, _)| wanted.iter().any(|f| f.matches_key(k)))
}

/// `is-task=`: berth has no swarm tasks, so only `false` keeps containers.
pub fn is_task(wanted: &[&str]) -> bool {
    wanted.contains(&"false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_filters_parse_and_match_like_docker() {
        let f = PortFilter::parse("8000-8080").expect("range");
        assert!(f.matches_key("8000/tcp") && f.matches_key("8080/tcp"));
        assert!(!f.matches_key("8081/tcp") && !f.matches_key("8000/udp"));
        let u = PortFilter::parse("53/udp").expect("udp");
        assert!(u.matches_key("53/udp") && !u.matches_key("53/tcp"));
        for bad in ["", "x", "90-80", "80/icmp", "70000"] {
            let e = PortFilter::parse(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn is_task_keeps_only_for_false() {
        assert!(is_task(&["false"]));
        assert!(!is_task(&["true"]));
    }
}
