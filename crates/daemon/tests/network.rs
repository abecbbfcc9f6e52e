//! Container networking end to end with the real docker CLI and docker-compose 1.29: user
//! networks (create with subnet, name and alias resolution through aardvark-dns, inspect, ls,
//! connect/disconnect, rm), the default bridge, bad input (overlap, duplicate, unknown network,
//! removal while in use, address outside the subnet), and teardown leaving no bridge, veth,
//! namespace or DNS server behind. Each test uses its own bridge names, 10.x subnets, nftables
//! table and `--ip-forward=false`; a Drop guard removes all of it even when an assert fails.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Daemon;
use docker::Docker;
use fixture::{ensure_siblings, have, Cleanup, Registry};

/// Everything a networking test may leave on the host.
struct NetGuard {
    bridges: Vec<String>,
    exec_root: PathBuf,
    table: String,
}

fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

impl NetGuard {
    /// Interfaces and namespaces still there (empty when clean).
    fn leftovers(&self, data_root: &Path) -> Vec<String> {
        let mut left = Vec::new();
        let store = data_root.join("network");
        let mut bridges = self.bridges.clone();
        for e in std::fs::read_dir(&store).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                    if let Some(b) = v["bridge"].as_str().filter(|b| !b.is_empty()) {
                        bridges.push(b.to_string());
                    }
                }
            }
        }
        let now = links();
        for b in bridges {
            if now.contains(&b) {
                left.push(format!("bridge {b}"));
            }
        }
        for e in std::fs::read_dir(self.exec_root.join("netns"))
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(format!("netns {}", e.path().display()));
        }
        if self.exec_root.join("aardvark-dns/aardvark.pid").exists() {
            left.push("aardvark-dns".into());
        }
        left
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.exec_root.join("netns"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = berth_network::bridge::remove_netns(&e.path());
        }
        if let Ok(pid) = std::fs::read_to_string(self.exec_root.join("aardvark-dns/aardvark.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        // bridges: the test's own, and any br-* this daemon's store names
        let mut names = self.bridges.clone();
        let store = self.exec_root.with_file_name("data").join("network");
        for e in std::fs::read_dir(&store).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                    if let Some(b) = v["bridge"].as_str().filter(|b| !b.is_empty()) {
                        names.push(b.to_string());
                    }
                }
            }
        }
        for n in names {
            if links().contains(&n) {
                let _ = berth_network::bridge::delete_bridge(&n);
            }
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .stderr(Stdio::null())
            .status();
    }
}

fn start(reg: &Registry, bridge: &str, bip: &str, pool: &str, table: &str) -> Daemon {
    let r = format!("127.0.0.1:{}", reg.port);
    let pool = format!("base={pool},size=24");
    Daemon::start_with(&[
        "--default-registry",
        &r,
        "--bridge",
        bridge,
        "--bip",
        bip,
        "--default-address-pool",
        &pool,
        "--ip-forward=false",
        "--firewall-table",
        table,
        // dockerd's --mtu: the default bridge's MTU (checked below)
        "--mtu",
        "9000",
    ])
}

fn ready(bins: &[&str]) -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: needs root");
        return false;
    }
    for bin in bins {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return false;
        }
    }
    true
}

const HTTPD: &str =
    "mkdir -p /www && echo hello-from-a > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn docker_cli_user_networks_resolve_names() {
    if !ready(&["docker", "docker-registry", "umoci", "skopeo", "jq"]) {
        return;
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let d = start(
        &reg,
        "bnt-def1",
        "10.210.0.1/24",
        "10.211.0.0/16",
        "berth_nt1",
    );
    let _guard = NetGuard {
        bridges: vec!["bnt-def1".into(), "bnt-u1".into()],
        exec_root: d.exec_root.clone(),
        table: "berth_nt1".into(),
    };
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    docker.ok(&["pull", "-q", "busybox"], &d);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();

    // predefined networks, listed like docker's
    let ls = docker.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"], &d);
    for want in ["bridge bridge", "host host", "none null"] {
        assert!(ls.lines().any(|l| l == want), "{want} in {ls}");
    }
    let e = docker.fails(&["network", "rm", "bridge"]);
    assert!(e.contains("pre-defined"), "{e}");

    // create, and bad input
    docker.ok(
        &[
            "network",
            "create",
            "--subnet",
            "10.212.0.0/24",
            "-o",
            "com.docker.network.bridge.name=bnt-u1",
            "--label",
            "t=1",
            "tnet1",
        ],
        &d,
    );
    let e = docker.fails(&["network", "create", "--subnet", "10.212.0.128/25", "tnet2"]);
    assert!(
        e.contains("10.212.0.128/25") && e.contains("10.212.0.0/24"),
        "overlap names both subnets: {e}"
    );
    let e = docker.fails(&["network", "create", "--subnet", "10.214.0.0/24", "tnet1"]);
    assert!(e.contains("already exists"), "{e}");
    let e = docker.fails(&["run", "--rm", "--network", "nonet", "busybox", "true"]);
    assert!(e.contains("nonet") && e.contains("not found"), "{e}");
    let e = docker.fails(&[
        "run",
        "--rm",
        "--network",
        "tnet1",
        "--ip",
        "10.99.0.5",
        "busybox",
        "true",
    ]);
    assert!(e.contains("not in subnet"), "{e}");
    // no subnet: one from the default pool
    let e = docker.fails(&[
        "network",
        "create",
        "-o",
        "com.docker.network.driver.mtu=10",
        "badmtu",
    ]);
    assert!(e.contains("MTU"), "{e}");
    docker.ok(
        &[
            "network",
            "create",
            "-o",
            "com.docker.network.driver.mtu=9000",
            "tnet3",
        ],
        &d,
    );
    let sub = docker.ok(
        &[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
            "tnet3",
        ],
        &d,
    );
    assert_eq!(sub.trim(), "10.211.0.0/24");
    // an exhausted range: a /30 has one address for containers
    docker.ok(
        &["network", "create", "--subnet", "10.215.0.0/30", "tiny"],
        &d,
    );
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "only",
            "--network",
            "tiny",
            "busybox",
            "sleep",
            "60",
        ],
        &d,
    );
    let e = docker.fails(&["run", "--rm", "--network", "tiny", "busybox", "true"]);
    assert!(e.contains("no available IPv4 addresses"), "{e}");
    docker.ok(&["rm", "-f", "only"], &d);
    docker.ok(&["network", "rm", "tiny"], &d);
    // --internal: no way out (no default route), the subnet itself is reachable
    docker.ok(
        &[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.216.0.0/24",
            "inner",
        ],
        &d,
    );
    let routes = docker.ok(
        &[
            "run",
            "--rm",
            "--network",
            "inner",
            "busybox",
            "ip",
            "route",
        ],
        &d,
    );
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains("10.216.0.0/24"), "{routes}");
    docker.ok(&["network", "rm", "inner"], &d);

    // a server found by name and by alias
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "tnet1",
            "--network-alias",
            "web",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sh",
            "-c",
            HTTPD,
        ],
        &d,
    );
    let mut got = String::new();
    for _ in 0..50 {
        let out = docker.run(&[
            "run",
            "--rm",
            "--network",
            "tnet1",
            "busybox",
            "wget",
            "-qO-",
            "http://srv/",
        ]);
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got, "hello-from-a\n", "by name; berthd log:\n{}", d.log());
    assert_eq!(
        docker.ok(
            &[
                "run",
                "--rm",
                "--network",
                "tnet1",
                "busybox",
                "wget",
                "-qO-",
                "http://web/"
            ],
            &d
        ),
        "hello-from-a\n",
        "by alias"
    );
    // published on 127.0.0.1 with a port the daemon picked; inspect tells which
    let port = docker.ok(
        &[
            "inspect",
            "-f",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
            "srv",
        ],
        &d,
    );
    let port: u16 = port.trim().parse().expect("host port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect published port");
    use std::io::{Read, Write};
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.ends_with("hello-from-a\n"), "{reply}");
    // resolv.conf points at the network's DNS server; hosts names the container
    let resolv = docker.ok(&["exec", "srv", "cat", "/etc/resolv.conf"], &d);
    assert!(resolv.starts_with("nameserver 10.212.0.1\n"), "{resolv}");
    let hosts = docker.ok(&["exec", "srv", "cat", "/etc/hosts"], &d);
    assert!(hosts.contains("10.212.0.2\t"), "{hosts}");

    // inspect from both sides
    let ip = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.tnet1.IPAddress}}",
            "srv",
        ],
        &d,
    );
    assert_eq!(ip.trim(), "10.212.0.2");
    let members = docker.ok(
        &[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
            "tnet1",
        ],
        &d,
    );
    assert_eq!(members.trim(), "srv 10.212.0.2/24");
    let e = docker.fails(&["network", "rm", "tnet1"]);
    assert!(e.contains("active endpoints"), "{e}");

    // ps filters: by network (name or id prefix), by published and exposed container port
    let net_id = docker.ok(&["network", "inspect", "-f", "{{.Id}}", "tnet1"], &d);
    for (filter, want) in [
        ("network=tnet1".to_string(), "srv"),
        (format!("network={}", &net_id.trim()[..12]), "srv"),
        ("network=nosuchnet".to_string(), ""),
        ("publish=80".to_string(), "srv"),
        ("publish=79-81/tcp".to_string(), "srv"),
        ("publish=80/udp".to_string(), ""),
        ("expose=80".to_string(), "srv"),
        ("expose=81".to_string(), ""),
    ] {
        let ps = docker.ok(&["ps", "--filter", &filter, "--format", "{{.Names}}"], &d);
        assert_eq!(ps.trim(), want, "ps --filter {filter}");
    }
    let e = docker.fails(&["ps", "--filter", "publish=x"]);
    assert!(e.contains("invalid port filter"), "{e}");

    // a fixed address, connect and disconnect while running
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "fixed",
            "--network",
            "tnet1",
            "--ip",
            "10.212.0.50",
            "--dns",
            "10.250.0.53",
            "busybox",
            "sleep",
            "60",
        ],
        &d,
    );
    let e = docker.fails(&[
        "run",
        "--rm",
        "--network",
        "tnet1",
        "--ip",
        "10.212.0.50",
        "busybox",
        "true",
    ]);
    assert!(e.contains("already in use"), "{e}");
    docker.ok(&["network", "connect", "tnet3", "fixed"], &d);
    // its --dns servers are where the network's DNS server forwards its other names
    let dns_file =
        std::fs::read_to_string(d.exec_root.join("aardvark-dns/tnet1")).expect("dns config");
    assert!(
        dns_file
            .lines()
            .any(|l| l.contains(" 10.212.0.50 ") && l.ends_with(" 10.250.0.53")),
        "{dns_file}"
    );
    let mtu = docker.ok(&["exec", "fixed", "cat", "/sys/class/net/eth1/mtu"], &d);
    assert_eq!(
        mtu.trim(),
        "9000",
        "the network's MTU reaches the container"
    );
    let addrs = docker.ok(&["exec", "fixed", "ip", "-4", "-o", "addr"], &d);
    assert!(
        addrs.contains("10.212.0.50/24") && addrs.contains("10.211.0.2/24"),
        "{addrs}"
    );
    docker.ok(&["network", "disconnect", "tnet3", "fixed"], &d);
    let addrs = docker.ok(&["exec", "fixed", "ip", "-4", "-o", "addr"], &d);
    assert!(!addrs.contains("10.211.0."), "{addrs}");
    // reconnecting after a disconnect left a gap: eth1 (tnet3), then tnet1 again in eth0's place
    docker.ok(&["network", "connect", "tnet3", "fixed"], &d);
    docker.ok(&["network", "disconnect", "tnet1", "fixed"], &d);
    docker.ok(&["network", "connect", "tnet1", "fixed"], &d);
    let addrs = docker.ok(&["exec", "fixed", "ip", "-4", "-o", "addr"], &d);
    assert!(
        addrs.contains("eth0") && addrs.contains("10.212.0.") && addrs.contains("10.211.0."),
        "{addrs}"
    );
    docker.ok(&["network", "disconnect", "tnet3", "fixed"], &d);

    // the default bridge: an address from --bip, no name resolution
    let addr = docker.ok(
        &[
            "run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
        ],
        &d,
    );
    assert!(addr.contains("10.210.0."), "{addr}");
    let mtu = docker.ok(
        &["run", "--rm", "busybox", "cat", "/sys/class/net/eth0/mtu"],
        &d,
    );
    assert_eq!(mtu.trim(), "9000", "--mtu sets the default bridge's veths");
    let none = docker.ok(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ip",
            "-o",
            "link",
        ],
        &d,
    );
    assert_eq!(none.lines().count(), 1, "only lo: {none}");
    // container: mode shares srv's namespace
    let shared = docker.ok(
        &[
            "run",
            "--rm",
            "--network",
            "container:srv",
            "busybox",
            "wget",
            "-qO-",
            "http://127.0.0.1/",
        ],
        &d,
    );
    assert_eq!(shared, "hello-from-a\n");
    // ... and its names: hostname and /etc/hosts are srv's
    let srv_host = docker.ok(&["inspect", "-f", "{{.Config.Hostname}}", "srv"], &d);
    let names = docker.ok(
        &[
            "run",
            "--rm",
            "--network",
            "container:srv",
            "busybox",
            "sh",
            "-c",
            "hostname; grep -c 10.212.0.2 /etc/hosts",
        ],
        &d,
    );
    assert_eq!(names, format!("{}1\n", srv_host), "shared names");

    // teardown leaves nothing
    let ps = docker.ok(&["ps", "--format", "{{.Names}} {{.Networks}}"], &d);
    assert!(ps.lines().any(|l| l == "srv tnet1"), "{ps}");
    let ids = docker.ok(&["inspect", "-f", "{{.Id}}", "srv", "fixed"], &d);
    docker.ok(&["rm", "-f", "srv", "fixed"], &d);
    docker.ok(&["network", "rm", "tnet1", "tnet3"], &d);
    // prune --filter until= keeps networks created after the cut-off
    docker.ok(&["network", "create", "pruneme"], &d);
    let early = docker.ok(&["network", "prune", "-f", "--filter", "until=1h"], &d);
    assert!(!early.contains("pruneme"), "{early}");
    let names = docker.ok(&["network", "ls", "--format", "{{.Name}}"], &d);
    assert!(names.lines().any(|n| n == "pruneme"), "{names}");
    let pruned = docker.ok(&["network", "prune", "-f"], &d);
    assert!(pruned.contains("pruneme"), "{pruned}");
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1)
    .to_string();
    let events = docker.ok(
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=network",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
        &d,
    );
    for want in [
        "create tnet1",
        "connect tnet1",
        "disconnect tnet1",
        "destroy tnet1",
    ] {
        assert!(
            events.lines().any(|l| l == want),
            "{want} in events:\n{events}"
        );
    }
    assert!(!pruned.contains("bridge"), "{pruned}");
    let left = _guard.leftovers(&d.data_root);
    let left: Vec<&String> = left.iter().filter(|l| !l.contains("bnt-def1")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    for id in ids.lines() {
        let veth = format!("vb{}", &id[..6]);
        assert!(
            !links().iter().any(|l| l.starts_with(&veth)),
            "veth of {id} left: {:?}",
            links()
        );
    }
}

#[test]
fn docker_compose_service_names_resolve() {
    if !ready(&[
        "docker",
        "docker-compose",
        "docker-registry",
        "umoci",
        "skopeo",
        "jq",
    ]) {
        return;
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let d = start(
        &reg,
        "bnt-def2",
        "10.220.0.1/24",
        "10.221.0.0/16",
        "berth_nt2",
    );
    let guard = NetGuard {
        bridges: vec!["bnt-def2".into()],
        exec_root: d.exec_root.clone(),
        table: "berth_nt2".into(),
    };
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    docker.ok(&["pull", "-q", "busybox"], &d);
    let proj = tempfile::tempdir().expect("compose dir");
    std::fs::write(
        proj.path().join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  web:
    image: busybox
    command: sh -c "{HTTPD}"
  client:
    image: busybox
    depends_on: [web]
    command: sh -c "for i in $$(seq 50); do wget -qO- http://web/ && exit 0; sleep 0.1; done; exit 1"
"#
        ),
    )
    .expect("compose file");
    let project = format!("bnt{}", std::process::id());
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .args(["-p", &project])
            .args(args)
            .current_dir(proj.path())
            .env("DOCKER_HOST", &docker.host)
            .env("DOCKER_CONFIG", docker.config.path())
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose")
    };
    let up = compose(&["up", "--no-color", "--exit-code-from", "client"]);
    let text = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "compose up: {text}{}\nberthd log:\n{}",
        String::from_utf8_lossy(&up.stderr),
        d.log()
    );
    assert!(
        text.contains("hello-from-a"),
        "client fetched from web: {text}"
    );
    let down = compose(&["down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(
        docker.ok(&["ps", "-aq"], &d).trim(),
        "",
        "no container left"
    );
    let nets = docker.ok(&["network", "ls", "--format", "{{.Name}}"], &d);
    assert!(!nets.contains(&project), "network removed: {nets}");
    let left = guard.leftovers(&d.data_root);
    let left: Vec<&String> = left.iter().filter(|l| !l.contains("bnt-def2")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn restart_keeps_addresses_and_releases_those_of_dead_containers() {
    if !ready(&["docker", "docker-registry", "umoci", "skopeo", "jq", "nft"]) {
        return;
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let args = |r: &str| -> Vec<String> {
        [
            "--default-registry",
            r,
            "--bridge",
            "bnt-def3",
            "--bip",
            "10.225.0.1/24",
            "--default-address-pool",
            "base=10.226.0.0/16,size=24",
            "--ip-forward=false",
            "--firewall-table",
            "berth_nt3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let r = format!("127.0.0.1:{}", reg.port);
    let a = args(&r);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut d = Daemon::start_with(&a);
    let guard = NetGuard {
        bridges: vec!["bnt-def3".into()],
        exec_root: d.exec_root.clone(),
        table: "berth_nt3".into(),
    };
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    docker.ok(&["pull", "-q", "busybox"], &d);
    docker.ok(
        &["network", "create", "--subnet", "10.227.0.0/24", "rnet"],
        &d,
    );
    let keep = docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "keep",
            "--network",
            "rnet",
            "busybox",
            "sleep",
            "300",
        ],
        &d,
    );
    let dies = docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "dies",
            "--network",
            "rnet",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sleep",
            "300",
        ],
        &d,
    );
    let (keep, dies) = (keep.trim().to_string(), dies.trim().to_string());
    let ip_of = |docker: &Docker, d: &Daemon, c: &str| {
        docker
            .ok(
                &[
                    "inspect",
                    "-f",
                    "{{.NetworkSettings.Networks.rnet.IPAddress}}",
                    c,
                ],
                d,
            )
            .trim()
            .to_string()
    };
    assert_eq!(ip_of(&docker, &d, "keep"), "10.227.0.2");
    assert_eq!(ip_of(&docker, &d, "dies"), "10.227.0.3");
    let pid: i32 = docker
        .ok(&["inspect", "-f", "{{.State.Pid}}", "dies"], &d)
        .trim()
        .parse()
        .expect("pid");
    let table = || {
        String::from_utf8_lossy(
            &Command::new("nft")
                .args(["list", "table", "ip", "berth_nt3"])
                .output()
                .expect("nft")
                .stdout,
        )
        .into_owned()
    };
    assert!(table().contains(&dies), "ports of dies published");

    // berthd dies, then so does one container while nobody watches
    d.child.kill().expect("kill berthd");
    d.child.wait().expect("reap berthd");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill container");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dir = d.stop();
    let d = Daemon::start_in(dir, &a);
    let docker = Docker::new(&d);

    assert_eq!(
        ip_of(&docker, &d, "keep"),
        "10.227.0.2",
        "kept across the restart"
    );
    let members = docker.ok(
        &[
            "network",
            "inspect",
            "-f",
            "{{range $k, $v := .Containers}}{{$k}} {{end}}",
            "rnet",
        ],
        &d,
    );
    assert_eq!(
        members.trim(),
        keep,
        "only the live container holds an address"
    );
    assert!(
        !table().contains(&dies),
        "the dead container's ports are gone"
    );
    let veth = format!("vb{}", &dies[..6]);
    assert!(
        !links().iter().any(|l| l.starts_with(&veth)),
        "{:?}",
        links()
    );
    assert!(!d.exec_root.join("netns").join(&dies).exists());
    // the next container never gets the live one's address
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "third",
            "--network",
            "rnet",
            "busybox",
            "sleep",
            "300",
        ],
        &d,
    );
    let third = ip_of(&docker, &d, "third");
    assert!(
        third.starts_with("10.227.0.") && third != "10.227.0.2",
        "{third}"
    );
    docker.ok(&["rm", "-f", "keep", "dies", "third"], &d);
    docker.ok(&["network", "rm", "rnet"], &d);
    let left = guard.leftovers(&d.data_root);
    let left: Vec<&String> = left.iter().filter(|l| !l.contains("bnt-def3")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
