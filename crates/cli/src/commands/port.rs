//! Published ports on the command line: `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`, the
//! `-p/--publish` and `--expose` syntax of `run`/`create` (turned into Config.ExposedPorts and
//! HostConfig.PortBindings exactly as the docker CLI does: docker/go-connections nat.ParsePortSpecs),
//! and the PORTS column of `ps` (docker's DisplayablePorts).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use clap::Args;
use serde_json::{json, Value};

use crate::client::Client;

/// `berth port` flags.
#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

/// `berth port`: the container's published ports, from inspect's NetworkSettings.Ports.
pub async fn run(client: &Client, a: PortArgs) -> anyhow::Result<bool> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", a.container))
        .await?;
    let lines = port_lines(&info["NetworkSettings"]["Ports"], a.port.as_deref())?;
    if lines.is_empty() {
        if let Some(p) = &a.port {
            anyhow::bail!("Error: No public port '{p}' published for {}", a.container);
        }
    }
    for l in lines {
        outln!("{l}");
    }
    Ok(true)
}

/// "80" → "80/tcp".
fn with_proto(port: &str) -> String {
    if port.contains('/') {
        port.to_ascii_lowercase()
    } else {
        format!("{port}/tcp")
    }
}

/// What `docker port` prints: every binding as "80/tcp -> 0.0.0.0:8080" (sorted by port), or for
/// one private port just "0.0.0.0:8080".
fn port_lines(ports: &Value, only: Option<&str>) -> anyhow::Result<Vec<String>> {
    let Value::Object(map) = ports else {
        return Ok(Vec::new());
    };
    let mut keys: Vec<(u16, String, &String)> = Vec::new();
    for key in map.keys() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        keys.push((port.parse().unwrap_or(0), proto.to_string(), key));
    }
    keys.sort();
    let wanted = only.map(with_proto);
    if let Some(w) = &wanted {
        let (port, _) = w.split_once('/').unwrap_or((w, ""));
        if port.parse::<u16>().is_err() {
            anyhow::bail!("Error: invalid port ({port}): must be a number");
        }
    }
    let mut lines = Vec::new();
    for (_, _, key) in keys {
        if wanted.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        let Some(bindings) = map[key].as_array() else {
            continue;
        };
        for b in bindings {
            let ip = b["HostIp"].as_str().unwrap_or_default();
            let port = b["HostPort"].as_str().unwrap_or_default();
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            if wanted.is_some() {
                lines.push(addr);
            } else {
                lines.push(format!("{key} -> {addr}"));
            }
        }
    }
    Ok(lines)
}

/// "8000-8002" → (8000, 8002); "80" → (80, 80) (nat.ParsePortRange).
fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        None => s.parse().ok().map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
    }
}

/// The long syntax `target=80,published=8080,protocol=udp` → "8080:80/udp" (the docker CLI's
/// convertToStandardNotation).
fn standard_notation(spec: &str) -> anyhow::Result<String> {
    if !spec.contains('=') {
        return Ok(spec.to_string());
    }
    let mut params: HashMap<&str, &str> = HashMap::from([("protocol", "tcp")]);
    for param in spec.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => anyhow::bail!(
                "invalid publish opts format (should be name=value but got '{param}')"
            ),
        }
    }
    let get = |k: &str| params.get(k).copied().unwrap_or_default();
    Ok(format!(
        "{}:{}/{}",
        get("published"),
        get("target"),
        get("protocol")
    ))
}

/// Config.ExposedPorts and HostConfig.PortBindings for `-p` and `--expose` values, as the docker
/// CLI builds them (every published port is exposed too; ranges expand one key per port).
pub fn parse_ports(
    publish: &[String],
    expose: &[String],
) -> anyhow::Result<(HashMap<String, Value>, Value)> {
    let mut exposed: HashMap<String, Value> = HashMap::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for raw in publish {
        let spec = standard_notation(raw)?;
        let parts: Vec<&str> = spec.split(':').collect();
        let n = parts.len();
        let (ip, host, container) = match n {
            1 => (String::new(), "", parts[0]),
            2 => (String::new(), parts[0], parts[1]),
            3 => (parts[0].to_string(), parts[1], parts[2]),
            _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
        };
        let (container, proto) = container.split_once('/').unwrap_or((container, "tcp"));
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .map(str::to_string)
            .unwrap_or(ip);
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            anyhow::bail!("invalid IP address: {ip}");
        }
        if container.is_empty() {
            anyhow::bail!("no port specified: {spec}<empty>");
        }
        let (start, end) = port_range(container)
            .ok_or_else(|| anyhow::anyhow!("invalid containerPort: {container}"))?;
        let (host_start, host_end) = if host.is_empty() {
            (0, 0)
        } else {
            port_range(host).ok_or_else(|| anyhow::anyhow!("invalid hostPort: {host}"))?
        };
        if !host.is_empty() && end - start != host_end - host_start && end != start {
            anyhow::bail!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            );
        }
        let proto = proto.to_ascii_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            anyhow::bail!("invalid proto: {proto}");
        }
        for i in 0..=(end - start) {
            let port = start + i;
            let host_port = if host.is_empty() {
                String::new()
            } else if start == end && host_start != host_end {
                format!("{host_start}-{host_end}")
            } else {
                (host_start + i).to_string()
            };
            let key = format!("{port}/{proto}");
            exposed.insert(key.clone(), json!({}));
            bindings
                .entry(key)
                .or_default()
                .push(json!({"HostIp": ip, "HostPort": host_port}));
        }
    }
    for e in expose {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (start, end) = port_range(port)
            .ok_or_else(|| anyhow::anyhow!("invalid range format for --expose: {e}"))?;
        for p in start..=end {
            exposed.insert(format!("{p}/{}", proto.to_ascii_lowercase()), json!({}));
        }
    }
    let bindings = bindings
        .into_iter()
        .map(|(k, v)| (k, Value::Array(v)))
        .collect::<serde_json::Map<_, _>>();
    Ok((exposed, Value::Object(bindings)))
}

/// The PORTS column of `ps` from the list API's `Ports` (docker's DisplayablePorts): ports
/// published on the same number are grouped into ranges, other mappings listed as
/// "0.0.0.0:8080->80/tcp", exposed-only ports as "80/tcp".
pub fn displayable(ports: &[Value]) -> String {
    struct Port {
        ip: String,
        private: u16,
        public: u16,
        kind: String,
    }
    let num = |v: &Value| u16::try_from(v.as_u64().unwrap_or(0)).unwrap_or(0);
    let mut list: Vec<Port> = ports
        .iter()
        .map(|p| Port {
            ip: p["IP"].as_str().unwrap_or_default().to_string(),
            private: num(&p["PrivatePort"]),
            public: num(&p["PublicPort"]),
            kind: p["Type"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.kind).cmp(&(b.private, &b.ip, b.public, &b.kind))
    });
    let form = |key: &str, first: u16, last: u16| -> String {
        let (ip, kind) = match key.split_once('/') {
            Some((ip, kind)) => (ip, kind),
            None => ("", key),
        };
        let mut group = first.to_string();
        if first != last {
            group = format!("{group}-{last}");
        }
        if !ip.is_empty() {
            group = format!("{ip}:{group}->{group}");
        }
        format!("{group}/{kind}")
    };
    let mut groups: HashMap<String, (u16, u16)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut result: Vec<String> = Vec::new();
    let mut host_mappings: Vec<String> = Vec::new();
    for p in &list {
        let mut key = p.kind.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                let host = if p.ip.contains(':') {
                    format!("[{}]:{}", p.ip, p.public)
                } else {
                    format!("{}:{}", p.ip, p.public)
                };
                host_mappings.push(format!("{host}->{}/{}", p.private, p.kind));
                continue;
            }
            key = format!("{}/{}", p.ip, p.kind);
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (p.private, p.private));
                order.push(key);
            }
            Some(g) if p.private == g.1.wrapping_add(1) => g.1 = p.private,
            Some(g) => {
                result.push(form(&key, g.0, g.1));
                *g = (p.private, p.private);
            }
        }
    }
    for key in order {
        let (first, last) = groups[&key];
        result.push(form(&key, first, last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &[&str], e: &[&str]) -> (Value, Value) {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        let e: Vec<String> = e.iter().map(|s| s.to_string()).collect();
        let (exposed, bindings) = parse_ports(&p, &e).expect("valid");
        (Value::Object(exposed.into_iter().collect()), bindings)
    }

    #[test]
    fn publish_specs_like_the_docker_cli() {
        let (exposed, bindings) = parse(
            &[
                "8080:80",
                "127.0.0.1:8081:80",
                "53/udp",
                "127.0.0.1::443",
                "[::1]:9000:9000",
            ],
            &[],
        );
        assert_eq!(
            bindings,
            json!({
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}],
                "53/udp": [{"HostIp": "", "HostPort": ""}],
                "443/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                "9000/tcp": [{"HostIp": "::1", "HostPort": "9000"}],
            })
        );
        assert_eq!(
            exposed,
            json!({"80/tcp": {}, "53/udp": {}, "443/tcp": {}, "9000/tcp": {}})
        );
    }

    #[test]
    fn ranges_expand_or_stay_a_host_range() {
        let (_, bindings) = parse(&["8000-8002:80-82/udp"], &[]);
        assert_eq!(
            bindings,
            json!({
                "80/udp": [{"HostIp": "", "HostPort": "8000"}],
                "81/udp": [{"HostIp": "", "HostPort": "8001"}],
                "82/udp": [{"HostIp": "", "HostPort": "8002"}],
            })
        );
        let (_, bindings) = parse(&["9000-9010:80"], &[]);
        assert_eq!(
            bindings,
            json!({"80/tcp": [{"HostIp": "", "HostPort": "9000-9010"}]})
        );
        let (_, bindings) = parse(&["7000-7001"], &[]);
        assert_eq!(
            bindings,
            json!({"7000/tcp": [{"HostIp": "", "HostPort": ""}], "7001/tcp": [{"HostIp": "", "HostPort": ""}]})
        );
    }

    #[test]
    fn long_syntax_and_expose() {
        let (exposed, bindings) = parse(
            &["target=80,published=8080,protocol=udp", "target=81"],
            &["90", "100-101/udp"],
        );
        assert_eq!(
            bindings,
            json!({
                "80/udp": [{"HostIp": "", "HostPort": "8080"}],
                "81/tcp": [{"HostIp": "", "HostPort": ""}],
            })
        );
        assert_eq!(
            exposed,
            json!({"80/udp": {}, "81/tcp": {}, "90/tcp": {}, "100/udp": {}, "101/udp": {}})
        );
    }

    #[test]
    fn bad_specs_get_docker_messages() {
        for (spec, msg) in [
            ("nope:80:80", "invalid IP address: nope"),
            ("8080:", "no port specified: 8080:<empty>"),
            ("8080:x", "invalid containerPort: x"),
            ("x:80", "invalid hostPort: x"),
            (
                "8000-8001:80-82",
                "invalid ranges specified for container and host Ports: 80-82 and 8000-8001",
            ),
            ("80/icmp", "invalid proto: icmp"),
            (
                "target=80,bad",
                "invalid publish opts format (should be name=value but got 'bad')",
            ),
        ] {
            let got = parse_ports(&[spec.to_string()], &[])
                .expect_err(spec)
                .to_string();
            assert!(got.starts_with(msg), "{spec}: {got}");
        }
    }

    #[test]
    fn port_lines_like_docker_port() {
        let ports = json!({
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
            "443/tcp": null,
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
        });
        assert_eq!(
            port_lines(&ports, None).expect("lines"),
            vec![
                "53/udp -> 127.0.0.1:5353",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::]:8080"
            ]
        );
        assert_eq!(
            port_lines(&ports, Some("80")).expect("lines"),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        assert!(port_lines(&ports, Some("443/tcp"))
            .expect("lines")
            .is_empty());
        assert!(port_lines(&ports, Some("x")).is_err());
    }

    #[test]
    fn ps_ports_column_like_docker() {
        let ports = vec![
            json!({"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}),
            json!({"PrivatePort": 443, "Type": "tcp"}),
            json!({"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 9000, "Type": "tcp"}),
            json!({"IP": "0.0.0.0", "PrivatePort": 9001, "PublicPort": 9001, "Type": "tcp"}),
            json!({"IP": "127.0.0.1", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"}),
        ];
        assert_eq!(
            displayable(&ports),
            "443/tcp, 0.0.0.0:9000-9001->9000-9001/tcp, 127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp"
        );
        assert_eq!(displayable(&[]), "");
    }
}
