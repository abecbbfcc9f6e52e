//! Privileged: the firewall and published ports on a world each test builds for itself, without
//! berthd — a bridge (`bpt<tag><random>`), network namespaces plugged into it with veth pairs,
//! an explicit 10.231.<n>.0/24 subnet per test, its own nftables table, servers inside the
//! namespaces. Checks reachability through 127.0.0.1:hostport, the gateway, hairpin from another
//! namespace and from the same one, UDP, refusal of taken ports (leaving the table unchanged),
//! reservations seen by a fresh `Firewall` (daemon restart) and complete removal. Traffic only
//! goes to 127.0.0.0/8 and the test's own bridge and namespaces. Drop guards remove the
//! namespaces, links and table even when a test panics.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_network::nft::Firewall;
use berth_network::ports::{PortError, PortMapping, Protocol};

const TIMEOUT: Duration = Duration::from_secs(3);

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn a setup command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP: needs root (creates bridges, namespaces and nftables tables)");
    false
}

/// The test's bridge, namespaces and table; all removed on drop.
struct World {
    bridge: String,
    subnet: u8,
    namespaces: Vec<String>,
    fw: Firewall,
}

impl World {
    /// A bridge on 10.231.`subnet`.0/24 (gateway .1) with `containers` namespaces at .2, .3, …
    fn new(tag: &str, subnet: u8, containers: usize) -> World {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let rand = h.finish() & 0xff_ffff;
        let bridge = format!("bpt{tag}{rand:06x}");
        let mut world = World {
            bridge: bridge.clone(),
            subnet,
            namespaces: Vec::new(),
            fw: Firewall::new(&format!("bpt_{tag}_{rand:06x}")),
        };
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", world.gateway()),
            "dev",
            &bridge,
        ]);
        run(&["ip", "link", "set", &bridge, "up"]);
        // What NET's engine does on berth's bridges: route between ports of this bridge.
        std::fs::write(format!("/proc/sys/net/ipv4/conf/{bridge}/forwarding"), "1")
            .expect("per-bridge forwarding");
        for i in 0..containers {
            let ns = format!("{bridge}-{i}");
            run(&["ip", "netns", "add", &ns]);
            world.namespaces.push(ns.clone());
            let host = format!("{bridge}v{i}");
            run(&[
                "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            run(&["ip", "link", "set", &host, "master", &bridge, "up"]);
            let ip = world.container_ip(i);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &world.gateway().to_string(),
            ]);
        }
        world
            .fw
            .add_network(
                &bridge,
                format!("10.231.{subnet}.0/24").parse().expect("subnet"),
                false,
            )
            .expect("add_network");
        world
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.subnet, 1)
    }

    fn container_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            10,
            231,
            self.subnet,
            2 + u8::try_from(i).expect("few containers"),
        )
    }

    fn netns(&self, i: usize) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.namespaces[i]))
    }

    /// `nft -j list table`, handles removed (a write re-adds the base chains' fixed rules).
    fn table(&self) -> serde_json::Value {
        let out = Command::new("nft")
            .args(["-j", "list", "table", "ip", self.fw.table()])
            .output()
            .expect("run nft");
        assert!(
            out.status.success(),
            "list table: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft json");
        strip_handles(&mut v);
        v
    }

    /// Connects from inside namespace `i` (the socket keeps that namespace).
    fn connect_from(&self, i: usize, to: SocketAddr) -> std::io::Result<String> {
        let stream = berth_sys::netns::run_in(&self.netns(i), move || {
            TcpStream::connect_timeout(&to, TIMEOUT)
        })??;
        read_greeting(stream)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.fw.remove_all();
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

fn strip_handles(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            map.values_mut().for_each(strip_handles);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

/// A TCP server inside a namespace: answers each connection with "<name> <peer address>".
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn tcp(world: &World, i: usize, port: u16, name: &str) -> Server {
        let listener = berth_sys::netns::run_in(&world.netns(i), move || {
            TcpListener::bind(("0.0.0.0", port))
        })
        .expect("enter namespace")
        .expect("bind in the namespace");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = writeln!(s, "{name} {}", peer.ip());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }

    /// A UDP server inside a namespace: answers each datagram with "<name> <peer address>".
    fn udp(world: &World, i: usize, port: u16, name: &str) -> Server {
        let socket =
            berth_sys::netns::run_in(&world.netns(i), move || UdpSocket::bind(("0.0.0.0", port)))
                .expect("enter namespace")
                .expect("bind in the namespace");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer);
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_greeting(stream: TcpStream) -> std::io::Result<String> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

fn connect(to: SocketAddr) -> std::io::Result<String> {
    read_greeting(TcpStream::connect_timeout(&to, TIMEOUT)?)
}

fn tcp(host_ip: Option<&str>, host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: host_ip.map(|ip| ip.parse().expect("test address")),
        host_port,
        host_port_end: None,
        container_port,
        protocol: Protocol::Tcp,
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[test]
fn published_port_is_reachable_from_host_gateway_and_hairpin_then_removed() {
    if !is_root() {
        return;
    }
    let w = World::new("r", 11, 2);
    let _server = Server::tcp(&w, 0, 80, "web");
    let empty = w.table();

    let got =
        w.fw.publish("webctr", &w.bridge, w.container_ip(0), &[tcp(None, 0, 80)])
            .expect("publish");
    assert_eq!(got.len(), 1);
    let port = got[0].host_port;
    assert_ne!(port, 0, "a random host port was picked");
    assert_eq!(w.fw.owners().expect("owners"), vec!["webctr".to_string()]);
    assert_eq!(w.fw.published("webctr").expect("published"), got);

    // The host through 127.0.0.1: DNAT in output, source masqueraded to the gateway.
    assert_eq!(
        connect(local(port)).expect("127.0.0.1:port"),
        format!("web {}", w.gateway())
    );
    // The host through the bridge's own address.
    let gw = SocketAddr::new(IpAddr::V4(w.gateway()), port);
    assert_eq!(
        connect(gw).expect("gateway:port"),
        format!("web {}", w.gateway())
    );
    // Another container through the gateway (hairpin) …
    assert_eq!(
        w.connect_from(1, gw).expect("hairpin from a neighbour"),
        format!("web {}", w.gateway())
    );
    // … and the container itself through the gateway.
    assert_eq!(
        w.connect_from(0, gw).expect("hairpin to itself"),
        format!("web {}", w.gateway())
    );

    w.fw.unpublish("webctr").expect("unpublish");
    w.fw.unpublish("webctr").expect("unpublish is idempotent");
    assert_eq!(w.table(), empty, "unpublish left rules behind");
    assert!(w.fw.owners().expect("owners").is_empty());
    assert!(
        connect(local(port)).is_err(),
        "127.0.0.1:{port} still answers after unpublish"
    );
}

#[test]
fn host_ip_and_fixed_port_and_udp() {
    if !is_root() {
        return;
    }
    let w = World::new("u", 12, 1);
    let _tcp = Server::tcp(&w, 0, 8080, "tcp8080");
    let _udp = Server::udp(&w, 0, 5353, "udp5353");
    // A fixed host port: take a free one from the kernel, then release it.
    let fixed = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let udp = PortMapping {
        host_ip: None,
        host_port: 0,
        host_port_end: None,
        container_port: 5353,
        protocol: Protocol::Udp,
    };
    let got =
        w.fw.publish(
            "multi",
            &w.bridge,
            w.container_ip(0),
            &[tcp(Some("127.0.0.1"), fixed, 8080), udp],
        )
        .expect("publish");
    assert_eq!(got[0].host_port, fixed);
    assert_eq!(
        connect(local(fixed)).expect("tcp"),
        format!("tcp8080 {}", w.gateway())
    );
    // Bound to 127.0.0.1 only: the gateway address does not forward it.
    assert!(
        connect(SocketAddr::new(IpAddr::V4(w.gateway()), fixed)).is_err(),
        "host ip ignored"
    );

    let client = UdpSocket::bind("127.0.0.1:0").expect("udp client");
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    client
        .send_to(b"ping", local(got[1].host_port))
        .expect("send");
    let mut buf = [0u8; 64];
    let n = client
        .recv(&mut buf)
        .expect("udp reply through the published port");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]).trim(),
        format!("udp5353 {}", w.gateway())
    );
}

#[test]
fn taken_ports_are_refused_and_leave_nothing_behind() {
    if !is_root() {
        return;
    }
    let w = World::new("t", 13, 2);
    let first =
        w.fw.publish(
            "first",
            &w.bridge,
            w.container_ip(0),
            &[tcp(Some("127.0.0.1"), 0, 80)],
        )
        .expect("publish");
    let port = first[0].host_port;
    let before = w.table();

    // Taken by another mapping of this firewall (0.0.0.0 overlaps 127.0.0.1), and seen by a
    // fresh Firewall on the same table, as after a daemon restart.
    let restarted = Firewall::new(w.fw.table());
    let err = restarted
        .publish(
            "second",
            &w.bridge,
            w.container_ip(1),
            &[tcp(Some("127.0.0.2"), 0, 81), tcp(None, port, 80)],
        )
        .expect_err("port taken by a mapping");
    assert_eq!(
        err.to_string(),
        format!("port 0.0.0.0:{port}/tcp is already in use")
    );
    assert_eq!(w.table(), before, "a refused publish changed the table");
    assert_eq!(
        restarted.owners().expect("owners"),
        vec!["first".to_string()]
    );

    // Taken by a listening process.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let busy = listener.local_addr().expect("addr").port();
    let err =
        w.fw.publish(
            "second",
            &w.bridge,
            w.container_ip(1),
            &[tcp(None, busy, 80)],
        )
        .expect_err("port taken by a process");
    assert_eq!(
        err.to_string(),
        format!("port 0.0.0.0:{busy}/tcp is already in use")
    );
    assert!(matches!(err, PortError::InUse { .. }));
    assert_eq!(w.table(), before, "a refused publish changed the table");

    // The same port on another address and on UDP is free.
    w.fw.publish(
        "second",
        &w.bridge,
        w.container_ip(1),
        &[tcp(Some("127.0.0.2"), port, 80)],
    )
    .expect("another address");
    // Publishing again for an owner replaces its rules instead of colliding with itself.
    let again =
        w.fw.publish(
            "second",
            &w.bridge,
            w.container_ip(1),
            &[tcp(Some("127.0.0.2"), port, 80)],
        )
        .expect("republish");
    assert_eq!(w.fw.published("second").expect("published"), again);

    // An unknown bridge and IPv6 host addresses are refused.
    assert!(matches!(
        w.fw.publish("third", "bpt-none", w.container_ip(1), &[tcp(None, 0, 80)]),
        Err(PortError::UnknownBridge(_))
    ));
    assert!(matches!(
        w.fw.publish(
            "third",
            &w.bridge,
            w.container_ip(1),
            &[tcp(Some("::1"), 0, 80)]
        ),
        Err(PortError::Ipv6(_))
    ));

    // A host range (-p BUSY-NEXT:80) takes its first free port, skipping the one a process
    // holds; when every port of the range is taken the error names the range.
    {
        let (_held, busy) = held_port_with_free_next();
        let next = busy + 1;
        let range = PortMapping {
            host_port_end: Some(next),
            ..tcp(None, busy, 80)
        };
        let got =
            w.fw.publish(
                "ranged",
                &w.bridge,
                w.container_ip(1),
                std::slice::from_ref(&range),
            )
            .expect("a free port in the range");
        assert_eq!((got[0].host_port, got[0].host_port_end), (next, None));
        let err =
            w.fw.publish("ranged2", &w.bridge, w.container_ip(0), &[range])
                .expect_err("whole range taken");
        assert_eq!(
            err.to_string(),
            format!("port 0.0.0.0:{busy}-{next}/tcp is already in use")
        );
        w.fw.unpublish("ranged").expect("unpublish");
    }
    drop(listener);
}

#[test]
fn network_rules_come_and_go_as_a_unit() {
    if !is_root() {
        return;
    }
    let w = World::new("n", 14, 0);
    let with_one = w.table();
    // Idempotent.
    w.fw.add_network(&w.bridge, "10.231.14.0/24".parse().expect("subnet"), false)
        .expect("again");
    assert_eq!(w.table(), with_one);
    // A second, internal network, then removed: back to where we were.
    w.fw.add_network(
        "bptn-other",
        "10.231.15.0/24".parse().expect("subnet"),
        true,
    )
    .expect("internal");
    let text = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "table", "ip", w.fw.table()])
            .output()
            .expect("nft")
            .stdout,
    )
    .to_string();
    assert!(
        text.contains(r#"iifname "bptn-other" oifname != "bptn-other" drop"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"ip saddr 10.231.15.0/24 oifname != "bptn-other" masquerade"#),
        "{text}"
    );
    w.fw.remove_network("bptn-other").expect("remove");
    w.fw.remove_network("bptn-other")
        .expect("remove is idempotent");
    assert_eq!(w.table(), with_one);
    w.fw.remove_all().expect("remove all");
    assert!(
        Command::new("nft")
            .args(["list", "table", "ip", w.fw.table()])
            .output()
            .expect("nft")
            .status
            .code()
            != Some(0)
    );
    w.fw.remove_all().expect("remove_all is idempotent");
}

/// The cost of one publish + unpublish cycle (two `nft` runs each), printed for
/// docs/ARCHITECTURE.md; checks every cycle really adds and removes the rule.
#[test]
fn publish_unpublish_cycle_cost() {
    if !is_root() {
        return;
    }
    let w = World::new("c", 16, 1);
    let mut publish = Vec::new();
    let mut unpublish = Vec::new();
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let got =
            w.fw.publish(
                "cyc",
                &w.bridge,
                w.container_ip(0),
                &[tcp(Some("127.0.0.1"), 0, 80)],
            )
            .expect("publish");
        publish.push(t.elapsed());
        assert_eq!(w.fw.published("cyc").expect("published"), got);
        let t = std::time::Instant::now();
        w.fw.unpublish("cyc").expect("unpublish");
        unpublish.push(t.elapsed());
        assert!(w.fw.owners().expect("owners").is_empty());
    }
    publish.sort();
    unpublish.sort();
    eprintln!(
        "publish median {:?}, unpublish median {:?} (20 cycles)",
        publish[10], unpublish[10]
    );
}

/// A child process killed (by PID) and reaped on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One iperf3 run against `port` on 127.0.0.1 with a one-off server started by `server`;
/// returns the received bits per second.
fn iperf(server: &mut Command, port: u16, seconds: &str) -> f64 {
    let _server = Child(
        server
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start iperf3 -s"),
    );
    // The server needs a moment to listen.
    let mut out = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(50));
        let o = Command::new("iperf3")
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                seconds,
                "-J",
            ])
            .output()
            .expect("run iperf3 -c");
        if o.status.success() {
            out = Some(o.stdout);
            break;
        }
    }
    let out = out.expect("iperf3 client never connected");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("iperf3 json");
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second");
    assert!(bps > 0.0, "no data went through");
    bps
}

/// TCP throughput host → container through a published port (127.0.0.1:hostport, DNAT to a
/// namespace behind the bridge) against host loopback with the same tool, alternating A B A B.
/// Run by scripts/bench-ports.sh (needs iperf3): `BERTH_BENCH_SECONDS=5 cargo test -p
/// berth-network --test ports published_port_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: scripts/bench-ports.sh"]
fn published_port_throughput() {
    if !is_root() {
        return;
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!("SKIP: iperf3 is not installed (scripts/deps.sh)");
        return;
    }
    let seconds = std::env::var("BERTH_BENCH_SECONDS").unwrap_or_else(|_| "5".into());
    let rounds: usize = std::env::var("BERTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let w = World::new("b", 17, 1);
    // BERTH_BENCH_MTU: what the bridge and veth MTU (1500 by default, like docker's) costs.
    if let Ok(mtu) = std::env::var("BERTH_BENCH_MTU") {
        let host_veth = format!("{}v0", w.bridge);
        run(&["ip", "link", "set", &host_veth, "mtu", &mtu]);
        run(&["ip", "link", "set", &w.bridge, "mtu", &mtu]);
        run(&[
            "ip",
            "-n",
            &w.namespaces[0],
            "link",
            "set",
            "eth0",
            "mtu",
            &mtu,
        ]);
        println!("bridge and veth MTU {mtu}");
    }
    let got =
        w.fw.publish(
            "bench",
            &w.bridge,
            w.container_ip(0),
            &[tcp(Some("127.0.0.1"), 0, 5201)],
        )
        .expect("publish");
    let published_port = got[0].host_port;
    let loopback_port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let (mut lo, mut published) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut s = Command::new("iperf3");
        s.args([
            "-s",
            "-1",
            "-B",
            "127.0.0.1",
            "-p",
            &loopback_port.to_string(),
        ]);
        lo.push(iperf(&mut s, loopback_port, &seconds));
        let mut s = Command::new("ip");
        s.args([
            "netns",
            "exec",
            &w.namespaces[0],
            "iperf3",
            "-s",
            "-1",
            "-p",
            "5201",
        ]);
        published.push(iperf(&mut s, published_port, &seconds));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (lo_m, pub_m) = (median(&mut lo), median(&mut published));
    let gbit = |v: &[f64]| {
        v.iter()
            .map(|b| format!("{:.2}", b / 1e9))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("loopback  Gbit/s: {} (median {:.2})", gbit(&lo), lo_m / 1e9);
    println!(
        "published Gbit/s: {} (median {:.2})",
        gbit(&published),
        pub_m / 1e9
    );
    println!("published/loopback: {:.1}%", pub_m / lo_m * 100.0);
}

/// Forwarding between two berth bridges: masqueraded when allowed, dropped by isolation while
/// both are berth networks of one table, dropped for an `--internal` network.
#[test]
fn isolation_internal_and_masquerade_between_bridges() {
    if !is_root() {
        return;
    }
    let a = World::new("i", 20, 1);
    let b = World::new("j", 21, 1);
    let _server = Server::tcp(&b, 0, 8080, "srvb");
    let to_b = SocketAddr::new(IpAddr::V4(b.container_ip(0)), 8080);
    let quick = |w: &World| {
        berth_sys::netns::run_in(&w.netns(0), move || {
            TcpStream::connect_timeout(&to_b, Duration::from_millis(700))
        })
        .expect("enter namespace")
    };

    // Only a's network is in a's table: routed and masqueraded to b's gateway.
    let got = a.connect_from(0, to_b).expect("a → b routed");
    assert_eq!(
        got,
        format!("srvb {}", b.gateway()),
        "masquerade out of a's subnet"
    );

    // Both bridges berth networks of one table: isolated.
    a.fw.add_network(&b.bridge, "10.231.21.0/24".parse().expect("subnet"), false)
        .expect("second network");
    assert!(quick(&a).is_err(), "a → b crossed the isolation");
    a.fw.remove_network(&b.bridge).expect("remove b");
    a.connect_from(0, to_b)
        .expect("a → b after b left the table");

    // An internal network forwards nothing out of its bridge.
    a.fw.add_network(&a.bridge, "10.231.20.0/24".parse().expect("subnet"), true)
        .expect("internal");
    assert!(quick(&a).is_err(), "an internal network forwarded");
    a.fw.add_network(&a.bridge, "10.231.20.0/24".parse().expect("subnet"), false)
        .expect("not internal again");
    a.connect_from(0, to_b)
        .expect("a → b once a is not internal");
}

/// `route_localnet` on a bridge (what DNAT to 127.0.0.1 needs) must not let a container reach
/// the host's loopback-only services (kubernetes' CVE-2020-8558): packets for 127.0.0.0/8
/// arriving from a berth bridge are dropped unless they belong to a published port's connection.
#[test]
fn containers_cannot_reach_host_loopback_services() {
    if !is_root() {
        return;
    }
    let w = World::new("l", 22, 1);
    let _server = Server::tcp(&w, 0, 80, "web");
    let got =
        w.fw.publish(
            "loctr",
            &w.bridge,
            w.container_ip(0),
            &[tcp(Some("127.0.0.1"), 0, 80)],
        )
        .expect("publish");
    // A host service on a loopback address only.
    let host_service = TcpListener::bind("127.0.0.9:0").expect("listen on 127.0.0.9");
    let target = host_service.local_addr().expect("addr");
    // The container routes 127.0.0.9 to the gateway (a hostile one would).
    let ns = &w.namespaces[0];
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.conf.eth0.route_localnet=1",
    ]);
    run(&[
        "ip",
        "-n",
        ns,
        "route",
        "del",
        "local",
        "127.0.0.0/8",
        "dev",
        "lo",
        "table",
        "local",
    ]);
    run(&[
        "ip",
        "-n",
        ns,
        "route",
        "add",
        "127.0.0.9/32",
        "via",
        &w.gateway().to_string(),
        "dev",
        "eth0",
    ]);
    let attempt = || {
        berth_sys::netns::run_in(&w.netns(0), move || {
            TcpStream::connect_timeout(&target, Duration::from_millis(700))
        })
        .expect("enter namespace")
    };
    assert!(
        attempt().is_err(),
        "a container reached a host service on 127.0.0.9"
    );
    // The published port still works through 127.0.0.1 (its replies come back from the bridge).
    assert_eq!(
        connect(local(got[0].host_port)).expect("published"),
        format!("web {}", w.gateway())
    );
    // Positive control: without the drop, the same path does reach the service.
    run(&["nft", "flush", "chain", "ip", w.fw.table(), "input"]);
    assert!(
        attempt().is_ok(),
        "the test's route to 127.0.0.9 does not work at all"
    );
}

/// A port held by a listener on 127.0.0.1 whose next port is free, both below the kernel's
/// ephemeral range (so ports handed out to parallel tests' sockets don't land on them).
fn held_port_with_free_next() -> (TcpListener, u16) {
    let seed = std::process::id() as u16;
    for i in 0..2000u16 {
        let port = 20000 + (seed.wrapping_mul(7).wrapping_add(i * 13)) % 10000;
        let Ok(held) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            return (held, port);
        }
    }
    panic!("no port with a free neighbour in 20000-30000");
}
