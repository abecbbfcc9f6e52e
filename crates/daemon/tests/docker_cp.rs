//! `docker cp` (the real docker CLI) against berthd: files and directories both ways, on a
//! running and on a stopped container, into and out of a named volume's path, errors for a
//! missing path and a non-directory target, and the symlink-escape attacks (CVE-2019-14271 /
//! CVE-2018-15664 class) with a canary file on the host that must stay unread and untouched.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/fixture.rs"]
mod fixture;

use std::path::Path;

use common::Daemon;
use docker::Docker;
use fixture::{ensure_siblings, have, Cleanup, Registry};

/// berthd stopped first (fields drop in order), then what its containers left is cleaned up,
/// so nothing is remounted or restarted meanwhile.
struct Guard {
    d: Daemon,
    _cleanup: Cleanup,
}

#[test]
fn docker_cp_both_ways_and_contained() {
    for bin in ["docker", "docker-registry", "umoci", "skopeo", "jq"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let r = format!("127.0.0.1:{}", reg.port);
    let d = Daemon::start_with(&["--default-registry", r.as_str()]);
    let cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let guard = Guard {
        d,
        _cleanup: cleanup,
    };
    let d = &guard.d;
    let docker = Docker::new(d);
    docker.ok(&["pull", "-q", "busybox"], d);
    let host = tempfile::tempdir().expect("host dir");
    let h = |p: &str| host.path().join(p).display().to_string();

    // the canary: a host file that the attacks below aim at
    let canary_dir = tempfile::tempdir().expect("canary dir");
    let canary = canary_dir.path().join("canary");
    std::fs::write(&canary, "host secret\n").expect("canary");
    let canary_s = canary.display().to_string();

    let name = "cp-running";
    docker.ok(
        &[
            "run", "-d", "--name", name, "-v", "cpvol:/data", "busybox", "sh", "-c",
            "mkdir -p /srv/d/sub && echo one > /srv/d/a && echo two > /srv/d/sub/b && echo inside > /srv/f && echo vol > /data/v && ln -s /etc /srv/etclink && sleep 1000",
        ],
        d,
    );
    // wait for the setup to finish
    for _ in 0..100 {
        if docker
            .run(&["exec", name, "test", "-L", "/srv/etclink"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // out of a running container: a file, a directory, a volume path
    docker.ok(&["cp", &format!("{name}:/srv/f"), &h("f")], d);
    assert_eq!(std::fs::read_to_string(h("f")).expect("f"), "inside\n");
    docker.ok(&["cp", &format!("{name}:/srv/d"), &h("d")], d);
    assert_eq!(std::fs::read_to_string(h("d/a")).expect("d/a"), "one\n");
    assert_eq!(
        std::fs::read_to_string(h("d/sub/b")).expect("d/sub/b"),
        "two\n"
    );
    docker.ok(&["cp", &format!("{name}:/data/v"), &h("v")], d);
    assert_eq!(std::fs::read_to_string(h("v")).expect("v"), "vol\n");
    // single-file binds (/etc/hosts, /etc/hostname) come from their sources, like docker
    for f in ["hosts", "hostname"] {
        docker.ok(&["cp", &format!("{name}:/etc/{f}"), &h(f)], d);
        let inside = docker.ok(&["exec", name, "cat", &format!("/etc/{f}")], d);
        assert_eq!(std::fs::read_to_string(h(f)).expect(f), inside, "/etc/{f}");
    }
    // a symlink is copied as a symlink; -L follows it
    docker.ok(&["cp", &format!("{name}:/srv/etclink"), &h("link")], d);
    assert_eq!(
        std::fs::read_link(h("link"))
            .expect("link")
            .display()
            .to_string(),
        "/etc"
    );
    docker.ok(&["cp", "-L", &format!("{name}:/srv/etclink"), &h("etc")], d);
    assert!(
        Path::new(&h("etc")).is_dir(),
        "-L copies the container's /etc: {:?}",
        std::fs::symlink_metadata(h("etc"))
    );

    // into a running container: a file, a directory, into the volume
    std::fs::write(h("up"), "uploaded\n").expect("write");
    std::fs::create_dir_all(h("updir/x")).expect("mkdir");
    std::fs::write(h("updir/x/y"), "deep\n").expect("write");
    docker.ok(&["cp", &h("up"), &format!("{name}:/srv/up")], d);
    docker.ok(&["cp", &h("updir"), &format!("{name}:/srv/")], d);
    docker.ok(&["cp", &h("up"), &format!("{name}:/data/")], d);
    let got = docker.ok(
        &["exec", name, "cat", "/srv/up", "/srv/updir/x/y", "/data/up"],
        d,
    );
    assert_eq!(got, "uploaded\ndeep\nuploaded\n");
    let owner = docker.ok(&["exec", name, "stat", "-c", "%u:%g", "/srv/up"], d);
    assert_eq!(owner.trim(), "0:0", "without -a files belong to root");

    // docker commit of the running container: its changes (what cp put in) become an image
    let id = docker.ok(
        &[
            "commit",
            "-m",
            "cp test",
            "-c",
            "CMD cat /srv/up",
            name,
            "cpimg:1",
        ],
        d,
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(docker.ok(&["run", "--rm", "cpimg:1"], d), "uploaded\n");
    docker.ok(&["rmi", "cpimg:1"], d);

    // errors: a missing path, a file where a directory is needed, dir over non-dir
    let e = docker.fails(&["cp", &format!("{name}:/nope"), &h("nope")]);
    assert!(e.contains("Could not find the file /nope"), "{e}");
    let e = docker.fails(&["cp", &h("up"), &format!("{name}:/nope/x")]);
    assert!(
        e.contains("Could not find the file") || e.contains("no such"),
        "{e}"
    );
    let put = d.request(
        "PUT",
        &format!("/containers/{name}/archive?path=/srv/f"),
        Some(b""),
    );
    assert_eq!(put.status, 400, "PUT into a file: {}", put.text());
    let head = d.request(
        "HEAD",
        &format!("/containers/{name}/archive?path=/nope"),
        None,
    );
    assert_eq!(head.status, 404);
    let head = d.request(
        "HEAD",
        &format!("/containers/{name}/archive?path=/srv/f"),
        None,
    );
    assert_eq!(head.status, 200);
    assert!(head.header("X-Docker-Container-Path-Stat").is_some());

    // attacks from inside: symlinks to the host canary by absolute and by ../ paths
    let up = "../../../../../../../../../..";
    docker.ok(
        &[
            "exec", name, "sh", "-c",
            &format!(
                "ln -s {canary_s} /srv/abs && ln -s {up}{canary_s} /srv/rel && ln -s {up}{dir} /srv/reldir && ln -s {dir} /srv/absdir",
                dir = canary_dir.path().display()
            ),
        ],
        d,
    );
    for (src, dst) in [
        ("/srv/abs", "a1"),
        ("/srv/rel", "a2"),
        ("/srv/absdir/canary", "a3"),
        ("/srv/reldir/canary", "a4"),
    ] {
        let out = docker.run(&["cp", &format!("{name}:{src}"), &h(dst)]);
        if out.status.success() {
            // without -L a link is copied as a link (which names the host path, unread)
            let is_link = std::fs::symlink_metadata(h(dst)).is_ok_and(|m| m.is_symlink());
            let got = if is_link {
                vec![]
            } else {
                std::fs::read(h(dst)).unwrap_or_default()
            };
            assert!(
                !String::from_utf8_lossy(&got).contains("host secret"),
                "cp {src} read the host canary"
            );
        }
        let out = docker.run(&["cp", "-L", &format!("{name}:{src}"), &h(&format!("{dst}L"))]);
        if out.status.success() {
            let got = std::fs::read(h(&format!("{dst}L"))).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&got).contains("host secret"),
                "cp -L {src} read the host canary"
            );
        }
    }
    // writes through the same links must land inside the container
    std::fs::write(h("evil"), "pwned\n").expect("write");
    for dst in [
        "/srv/absdir/",
        "/srv/reldir/",
        "/srv/absdir/canary",
        "/srv/abs",
        "/srv/rel",
    ] {
        let _ = docker.run(&["cp", &h("evil"), &format!("{name}:{dst}")]);
    }
    // a hostile tar: .. entries, an absolute name, a symlinked parent, a hardlink out
    let evil_tar = host.path().join("evil.tar");
    {
        let f = std::fs::File::create(&evil_tar).expect("tar");
        let mut b = tar::Builder::new(f);
        let mut add = |path: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
            let mut hd = tar::Header::new_gnu();
            hd.set_entry_type(kind);
            hd.set_mode(0o644);
            hd.set_size(data.len() as u64);
            // raw name bytes so '..' and '/' survive
            let name = hd.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                hd.set_link_name(l).expect("link name");
            }
            hd.set_cksum();
            b.append(&hd, data).expect("append");
        };
        add(
            &format!("{up}{canary_s}"),
            tar::EntryType::Regular,
            None,
            b"pwned\n",
        );
        add(&canary_s, tar::EntryType::Regular, None, b"pwned\n");
        add(
            "hop",
            tar::EntryType::Symlink,
            Some(canary_dir.path().to_str().expect("utf8")),
            b"",
        );
        add("hop/canary", tar::EntryType::Regular, None, b"pwned\n");
        add("hl", tar::EntryType::Link, Some(&canary_s), b"");
        b.finish().expect("finish");
    }
    let body = std::fs::read(&evil_tar).expect("read tar");
    let put = d.request(
        "PUT",
        &format!("/containers/{name}/archive?path=/srv"),
        Some(&body),
    );
    println!("hostile tar PUT: {} {}", put.status, put.text());
    assert_eq!(
        std::fs::read_to_string(&canary).expect("canary"),
        "host secret\n",
        "the host canary was overwritten"
    );
    assert_eq!(
        std::fs::read_dir(canary_dir.path()).expect("ls").count(),
        1,
        "nothing new next to the canary"
    );

    // CVE-2018-15664: the container swaps a directory and a symlink to "/" while cp runs;
    // a daemon that checks and then opens by path would reach the host's files
    let dir = canary_dir.path().display().to_string();
    docker.ok(
        &[
            "exec",
            "-d",
            name,
            "sh",
            "-c",
            &format!(
                "mkdir -p /srv/w{dir}; while :; do mv -T /srv/w /srv/w-dir 2>/dev/null; \
                 ln -sfn / /srv/w; rm -f /srv/w; mv -T /srv/w-dir /srv/w 2>/dev/null; done"
            ),
        ],
        d,
    );
    for i in 0..20 {
        let out = h(&format!("race{i}"));
        if docker
            .run(&["cp", &format!("{name}:/srv/w{canary_s}"), &out])
            .status
            .success()
        {
            let got = std::fs::read_to_string(&out).unwrap_or_default();
            assert!(
                !got.contains("host secret"),
                "the race read the host canary"
            );
        }
        let _ = docker.run(&["cp", &h("evil"), &format!("{name}:/srv/w{dir}/")]);
    }
    assert_eq!(
        std::fs::read_to_string(&canary).expect("canary"),
        "host secret\n",
        "the race overwrote the host canary"
    );
    assert_eq!(std::fs::read_dir(canary_dir.path()).expect("ls").count(), 1);

    // a stopped container: both ways, and its volume
    docker.ok(&["stop", "-t", "0", name], d);
    docker.ok(&["cp", &format!("{name}:/srv/f"), &h("f2")], d);
    assert_eq!(std::fs::read_to_string(h("f2")).expect("f2"), "inside\n");
    std::fs::write(h("late"), "late\n").expect("write");
    docker.ok(&["cp", &h("late"), &format!("{name}:/srv/late")], d);
    docker.ok(&["cp", &h("late"), &format!("{name}:/data/late")], d);
    docker.ok(&["cp", &format!("{name}:/data/late"), &h("late2")], d);
    assert_eq!(
        std::fs::read_to_string(h("late2")).expect("late2"),
        "late\n"
    );
    docker.ok(&["start", name], d);
    let got = docker.ok(&["exec", name, "cat", "/srv/late", "/data/late"], d);
    assert_eq!(got, "late\nlate\n");
    docker.ok(&["rm", "-f", name], d);
    let _ = docker.run(&["volume", "rm", "cpvol"]);
}
