//! Privileged: a real bridge, two pinned network namespaces plugged into it with veth pairs,
//! TCP between them, then everything removed (checked). Names and the subnet are this test's
//! own (10.201.0.0/24), so it runs beside other tests and a live daemon.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use berth_network::bridge::{self, Link};

struct Guard {
    bridge: String,
    veths: Vec<String>,
    netns: Vec<PathBuf>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for v in &self.veths {
            let _ = bridge::disconnect(v);
        }
        for n in &self.netns {
            let _ = bridge::remove_netns(n);
        }
        let _ = bridge::delete_bridge(&self.bridge);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn two_namespaces_talk_over_a_bridge() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("berth-net-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let g = Guard {
        bridge: "bt-br201".into(),
        veths: vec!["bt-v201a".into(), "bt-v201b".into()],
        netns: vec![dir.join("a"), dir.join("b")],
        dir: dir.clone(),
    };
    let gw = Ipv4Addr::new(10, 201, 0, 1);
    assert!(
        bridge::ensure_bridge(&g.bridge, gw, 24, Some(9000)).expect("bridge"),
        "created now"
    );
    assert!(
        !bridge::ensure_bridge(&g.bridge, gw, 24, Some(9000)).expect("again"),
        "idempotent"
    );
    let ips = [Ipv4Addr::new(10, 201, 0, 2), Ipv4Addr::new(10, 201, 0, 3)];
    for (i, ip) in ips.iter().copied().enumerate() {
        bridge::create_netns(&g.netns[i]).expect("netns");
        bridge::connect(&Link {
            netns: g.netns[i].clone(),
            bridge: g.bridge.clone(),
            host_veth: g.veths[i].clone(),
            ifname: "eth0".into(),
            ip,
            prefix_len: 24,
            default_route: Some(gw),
            mac: berth_network::ipam::mac_for(ip),
            mtu: Some(9000),
        })
        .expect("connect");
    }
    // plugging a second link named eth0 into the same namespace fails and leaves no veth
    let dup = bridge::connect(&Link {
        netns: g.netns[0].clone(),
        bridge: g.bridge.clone(),
        host_veth: "bt-v201c".into(),
        ifname: "eth0".into(),
        ip: Ipv4Addr::new(10, 201, 0, 9),
        prefix_len: 24,
        default_route: None,
        mac: [2, 0x42, 10, 201, 0, 9],
        mtu: None,
    });
    assert!(dup.is_err(), "duplicate eth0 refused");
    assert!(
        !bridge::link_exists("bt-v201c").expect("links"),
        "rolled back"
    );

    // the MTU reaches the bridge and both veth ends
    let mtu_of = |name: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
            .map(|m| m.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(mtu_of(&g.veths[0]), "9000");
    assert_eq!(mtu_of(&g.bridge), "9000");
    let inside = berth_sys::netns::run_in(&g.netns[0], || {
        let mut nl = berth_network::netlink::Netlink::new().expect("netlink");
        nl.link_mtu("eth0")
    })
    .expect("enter a")
    .expect("mtu of eth0");
    assert_eq!(inside, Some(9000));
    // a listener inside namespace a, a client inside namespace b
    let listener = berth_sys::netns::run_in(&g.netns[0], move || {
        TcpListener::bind(SocketAddrV4::new(ips[0], 8080))
    })
    .expect("enter a")
    .expect("bind in a");
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        s.write_all(b"pong").expect("write");
        (buf, peer)
    });
    let reply = berth_sys::netns::run_in(&g.netns[1], move || -> std::io::Result<String> {
        let mut c = TcpStream::connect_timeout(
            &SocketAddrV4::new(ips[0], 8080).into(),
            Duration::from_secs(5),
        )?;
        c.write_all(b"ping!")?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    })
    .expect("enter b")
    .expect("tcp from b to a");
    let (got, peer) = server.join().expect("server");
    assert_eq!(&got, b"ping!");
    assert_eq!(reply, "pong");
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(ips[1]),
        "no NAT between them"
    );
    // the host reaches a container through the bridge too
    let from_host =
        TcpStream::connect_timeout(&SocketAddrV4::new(ips[1], 1).into(), Duration::from_secs(2));
    assert!(
        matches!(&from_host, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "host → 10.201.0.3:1 answered with a refusal: {from_host:?}"
    );

    // cleanup, checked
    for v in &g.veths {
        bridge::disconnect(v).expect("disconnect");
        assert!(!bridge::link_exists(v).expect("links"));
    }
    for n in &g.netns {
        bridge::remove_netns(n).expect("rm netns");
        assert!(!n.exists());
    }
    bridge::delete_bridge(&g.bridge).expect("rm bridge");
    assert!(!bridge::link_exists(&g.bridge).expect("links"));
}
