//! Published ports end to end with the real docker CLI against berthd: `run -p 127.0.0.1:P:80`
//! on a user network (busybox httpd), fetched from the host through 127.0.0.1 and from another
//! container through the network's gateway (hairpin), `docker port`, `ps` PORTS, `-P` with
//! `--expose`, a host port taken by another container or by a process refused with one clear
//! line and nothing added to the firewall, and no rule left after `docker rm -f`. The daemon
//! gets its own default bridge, 10.240.x subnets, nftables table and `--ip-forward=false`;
//! traffic only goes to 127.0.0.1 and the test's own bridge. A Drop guard removes the bridges,
//! namespaces and table even when an assert fails.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/fixture.rs"]
mod fixture;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Daemon;
use docker::Docker;
use fixture::{ensure_siblings, have, Cleanup, Registry};

const TABLE: &str = "berth_pe1";
const DEFAULT_BRIDGE: &str = "bpe-def1";
const NET_BRIDGE: &str = "bpe-u1";
const HTTPD: &str =
    "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www";

/// Removes the daemon's bridges, namespaces and firewall table.
struct NetGuard {
    exec_root: PathBuf,
    data_root: PathBuf,
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
        let mut names = vec![DEFAULT_BRIDGE.to_string(), NET_BRIDGE.to_string()];
        for e in std::fs::read_dir(self.data_root.join("network"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let v = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            if let Some(b) = v.as_ref().and_then(|v| v["bridge"].as_str()) {
                names.push(b.to_string());
            }
        }
        for n in names.iter().filter(|n| !n.is_empty()) {
            if Path::new("/sys/class/net").join(n).exists() {
                let _ = berth_network::bridge::delete_bridge(n);
            }
        }
        let _ = berth_network::nft::Firewall::new(TABLE).remove_all();
    }
}

/// The comments of the `port` rules in the daemon's table (one per published mapping).
fn port_rules() -> Vec<String> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "ip", TABLE])
        .output()
        .expect("run nft");
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft json");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["rule"]["comment"].as_str())
        .filter(|c| c.starts_with("port "))
        .map(str::to_string)
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// GET / over plain HTTP/1.0, retried while httpd starts.
fn fetch(addr: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if let Some((_, b)) = body.split_once("\r\n\r\n") {
                    return b.to_string();
                }
                last = body;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no answer from {addr}: {last}");
}

#[test]
fn docker_cli_publishes_ports() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: needs root");
        return;
    }
    for bin in ["docker", "docker-registry", "umoci", "skopeo", "nft"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let registry = format!("127.0.0.1:{}", reg.port);
    let d = Daemon::start_with(&[
        "--default-registry",
        &registry,
        "--bridge",
        DEFAULT_BRIDGE,
        "--bip",
        "10.240.0.1/24",
        "--default-address-pool",
        "base=10.241.0.0/16,size=24",
        "--ip-forward=false",
        "--firewall-table",
        TABLE,
    ]);
    let _net = NetGuard {
        exec_root: d.exec_root.clone(),
        data_root: d.data_root.clone(),
    };
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    docker.ok(&["pull", "-q", "busybox"], &d);
    docker.ok(
        &[
            "network",
            "create",
            "--subnet",
            "10.240.9.0/24",
            "-o",
            &format!("com.docker.network.bridge.name={NET_BRIDGE}"),
            "pnet",
        ],
        &d,
    );
    let gateway = "10.240.9.1";

    // Published on 127.0.0.1 and on the gateway address.
    let (lo_port, gw_port) = (free_port(), free_port());
    let lo_spec = format!("127.0.0.1:{lo_port}:80");
    let gw_spec = format!("{gateway}:{gw_port}:80");
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "pnet",
            "-p",
            &lo_spec,
            "-p",
            &gw_spec,
            "busybox",
            "sh",
            "-c",
            HTTPD,
        ],
        &d,
    );
    assert_eq!(fetch(&format!("127.0.0.1:{lo_port}")), "hello-from-web\n");
    // Another container through the gateway (hairpin through the host).
    let url = format!("http://{gateway}:{gw_port}/");
    let mut got = String::new();
    for _ in 0..30 {
        let out = docker.run(&[
            "run",
            "--rm",
            "--network",
            "pnet",
            "busybox",
            "wget",
            "-qO-",
            &url,
        ]);
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        got,
        "hello-from-web\n",
        "{url} from a neighbour; berthd log:\n{}",
        d.log()
    );

    // docker port and ps.
    let ports = docker.ok(&["port", "web"], &d);
    let mut lines: Vec<&str> = ports.lines().collect();
    lines.sort();
    let mut want = vec![
        format!("80/tcp -> 127.0.0.1:{lo_port}"),
        format!("80/tcp -> {gateway}:{gw_port}"),
    ];
    want.sort();
    assert_eq!(lines, want, "docker port web");
    let one = docker.ok(&["port", "web", "80/tcp"], &d);
    assert!(
        one.lines().any(|l| l == format!("127.0.0.1:{lo_port}")),
        "{one}"
    );
    let e = docker.fails(&["port", "web", "81"]);
    assert!(e.contains("No public port '81' published for web"), "{e}");
    let ps = docker.ok(
        &["ps", "--filter", "name=web", "--format", "{{.Ports}}"],
        &d,
    );
    assert!(
        ps.contains(&format!("127.0.0.1:{lo_port}->80/tcp")),
        "ps PORTS: {ps}"
    );
    assert_eq!(port_rules().len(), 2, "{:?}", port_rules());

    // -P publishes every exposed port on a random host port.
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "pall",
            "--network",
            "pnet",
            "-P",
            "--expose",
            "80",
            "busybox",
            "sh",
            "-c",
            HTTPD,
        ],
        &d,
    );
    let addr = docker.ok(&["port", "pall", "80"], &d);
    let random: u16 = addr
        .lines()
        .find_map(|l| l.strip_prefix("0.0.0.0:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("docker port pall 80: {addr}"));
    assert_eq!(fetch(&format!("127.0.0.1:{random}")), "hello-from-web\n");
    // -P also publishes what the image EXPOSEs (merged into the container's config at create).
    docker.ok(
        &["commit", "-c", "EXPOSE 8080", "pall", "berth-exposing"],
        &d,
    );
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "pimg",
            "--network",
            "pnet",
            "-P",
            "berth-exposing",
            "sh",
            "-c",
            &HTTPD.replace("-p 80", "-p 8080"),
        ],
        &d,
    );
    let addr = docker.ok(&["port", "pimg", "8080"], &d);
    let from_image = addr
        .lines()
        .find_map(|l| l.strip_prefix("0.0.0.0:"))
        .unwrap_or_else(|| panic!("docker port pimg 8080: {addr}"));
    assert_eq!(
        fetch(&format!("127.0.0.1:{}", from_image.trim())),
        "hello-from-web\n"
    );

    // A host port taken by a container, or by a process: one clear line, nothing added.
    let before = port_rules();
    let e = docker.fails(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "pnet",
        "-p",
        &lo_spec,
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        e.contains(&format!("port 127.0.0.1:{lo_port}/tcp is already in use")),
        "{e}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let busy = listener.local_addr().expect("addr").port();
    let e = docker.fails(&[
        "run",
        "-d",
        "--name",
        "dup2",
        "--network",
        "pnet",
        "-p",
        &format!("127.0.0.1:{busy}:80"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        e.contains(&format!("port 127.0.0.1:{busy}/tcp is already in use")),
        "{e}"
    );
    assert_eq!(port_rules(), before, "a refused publish changed the table");

    // A host range for one container port (-p 127.0.0.1:BUSY-NEXT:80) takes its first free
    // port: the one the process holds is skipped.
    {
        let (_held, busy) = held_port_with_free_next();
        let next = busy + 1;
        docker.ok(
            &[
                "run",
                "-d",
                "--name",
                "ranged",
                "--network",
                "pnet",
                "-p",
                &format!("127.0.0.1:{busy}-{next}:80"),
                "busybox",
                "sleep",
                "60",
            ],
            &d,
        );
        let addr = docker.ok(&["port", "ranged", "80"], &d);
        assert_eq!(addr.trim(), format!("127.0.0.1:{next}"));
        docker.ok(&["rm", "-f", "ranged"], &d);
    }
    drop(listener);

    // Removing the containers removes their rules.
    // (A refused run may leave its container created, as docker does.)
    let _ = docker.run(&["rm", "-f", "dup", "dup2"]);
    docker.ok(&["rm", "-f", "web", "pall", "pimg"], &d);
    assert!(port_rules().is_empty(), "left: {:?}", port_rules());
    assert!(
        TcpStream::connect_timeout(
            &format!("127.0.0.1:{lo_port}").parse().expect("addr"),
            Duration::from_millis(500)
        )
        .is_err(),
        "127.0.0.1:{lo_port} still answers"
    );
    docker.ok(&["network", "rm", "pnet"], &d);
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
