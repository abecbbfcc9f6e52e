//! `berth` container and image commands against a real berthd and a local registry on
//! 127.0.0.1: pull, images, run (--rm, exit codes, -i stdin, -e/-w/-u, limits, --read-only),
//! -d/ps/logs/exec/inspect/stop/rm, save → rmi → load, and the `run --rm` latency.

#[path = "support/berthd.rs"]
mod berthd;
#[path = "../../daemon/tests/support/fixture.rs"]
mod fixture;

use std::time::{Duration, Instant};

use berthd::Daemon;
use fixture::{have, Cleanup, Registry};

#[test]
fn berth_runs_containers_from_pulled_images() {
    for bin in ["docker-registry", "umoci", "skopeo", "jq"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    let reg = Registry::start();
    let d = Daemon::start(&reg);
    let _cleanup = Cleanup {
        data_root: d.dir.path().join("data"),
        exec_root: d.dir.path().join("exec"),
    };

    // --platform reaches the daemon: a malformed one is refused there with its reason, the
    // host's own one pulls (choosing from an index is tested in crates/image/tests/pull.rs).
    let bad = d.berth(&["pull", "--platform", "nosuch", "busybox"], None);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("invalid platform \"nosuch\""), "{err}");
    d.ok(&["pull", "--platform", "linux/amd64", "busybox"]);
    let ids = d.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 1, "{ids}");
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "busybox:latest");

    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        d.ok(&["run", "--rm", "busybox", "true"]);
        best = best.min(t.elapsed());
    }
    println!("berth run --rm busybox true: best of 3 {best:?}");
    let out = d.berth(
        &["run", "--rm", "busybox", "sh", "-c", "echo err >&2; exit 5"],
        None,
    );
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = d.berth(
        &["run", "-i", "--rm", "busybox", "cat"],
        Some(b"from stdin\n"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from stdin\n");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "busybox",
            "sh",
            "-c",
            "echo $FOO $(pwd) $(id -u):$(id -g)",
        ]),
        "bar /tmp 1000:1000\n"
    );
    let out = d.berth(
        &[
            "run",
            "--rm",
            "--read-only",
            "--memory",
            "32m",
            "--pids-limit",
            "20",
            "busybox",
            "sh",
            "-c",
            "touch /x",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only"),
        "{out:?}"
    );
    let caps = d.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(caps.contains("0000000000000000"), "{caps}");

    d.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "busybox",
        "sh",
        "-c",
        "echo up; exec sleep 30",
    ]);
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "bg running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.ok(&["logs", "bg"]) != "up\n" {
        assert!(Instant::now() < deadline, "no log line");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["exec", "bg", "echo", "in"]), "in\n");
    assert_eq!(
        d.berth(&["exec", "bg", "sh", "-c", "exit 6"], None)
            .status
            .code(),
        Some(6)
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "bg"]).trim(),
        "running"
    );
    d.ok(&["kill", "bg"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.ok(&["inspect", "-f", "{{.State.Status}}", "bg"]).trim() != "exited" {
        assert!(Instant::now() < deadline, "kill did not end the container");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "bg"]).trim(),
        "137"
    );
    d.ok(&["rm", "bg"]);
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");

    // save → rmi → load keeps the image id
    let tar = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", tar.to_str().expect("utf-8"), "busybox"]);
    d.ok(&["rmi", "busybox"]);
    assert_eq!(d.ok(&["images", "-q"]).trim(), "");
    let loaded = d.ok(&["load", "-i", tar.to_str().expect("utf-8")]);
    assert!(loaded.contains("busybox:latest"), "{loaded}");
    assert_eq!(d.ok(&["images", "-q"]), ids);
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "cat", "/etc/berth-fixture"]),
        "berth registry fixture\n"
    );
    let missing = d.berth(&["run", "--rm", "nosuchimage"], None);
    assert!(!missing.status.success());
}

#[test]
fn berth_exports_imports_and_prunes() {
    for bin in ["docker-registry", "umoci", "skopeo", "jq"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    let reg = Registry::start();
    let d = Daemon::start(&reg);
    let _cleanup = Cleanup {
        data_root: d.dir.path().join("data"),
        exec_root: d.dir.path().join("exec"),
    };
    d.ok(&["pull", "-q", "busybox"]);
    d.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo exported > /marker",
    ]);
    let tar = d.dir.path().join("rootfs.tar");
    d.ok(&["export", "src", "-o", tar.to_str().expect("utf-8 path")]);
    assert!(std::fs::metadata(&tar).expect("export file").len() > 100_000);

    let id = d.ok(&[
        "import",
        "-c",
        "CMD [\"cat\", \"/marker\"]",
        "-c",
        "ENV GREETING=hello",
        "-c",
        "WORKDIR /tmp",
        tar.to_str().expect("utf-8 path"),
        "imported:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.ok(&["run", "--rm", "imported:v1"]), "exported\n");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "imported:v1",
            "sh",
            "-c",
            "echo $GREETING $(pwd)"
        ]),
        "hello /tmp\n"
    );
    // From stdin, untagged, via `image import`; a bad change is a clear error.
    let data = std::fs::read(&tar).expect("read tar");
    let out = d.berth(&["image", "import", "-"], Some(&data));
    assert!(out.status.success(), "{out:?}");
    let out = d.berth(
        &["import", "-c", "FROB x", tar.to_str().expect("utf-8 path")],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unsupported instruction"),
        "{out:?}"
    );

    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    // The untagged import is dangling: a plain prune removes it and keeps the tagged ones.
    let pruned = d.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains("deleted: sha256:"), "{pruned}");
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 2);
    let pruned = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(pruned.contains("untagged: imported:v1"), "{pruned}");
    assert!(d.ok(&["images", "-q"]).trim().is_empty());
}

#[test]
fn berth_login_gives_pull_and_push_their_credentials() {
    for bin in ["docker-registry", "umoci", "skopeo", "jq", "htpasswd"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    let reg = Registry::start();
    let private = Registry::start_empty(Some("alice:s3cret"));
    let d = Daemon::start(&reg);
    let _cleanup = Cleanup {
        data_root: d.dir.path().join("data"),
        exec_root: d.dir.path().join("exec"),
    };
    let host = format!("127.0.0.1:{}", private.port);
    let name = format!("{host}/private/busybox:1");
    d.ok(&["pull", "-q", "busybox"]);
    d.ok(&["tag", "busybox", &name]);

    let out = d.berth(&["push", &name], None);
    assert!(!out.status.success(), "push without login: {out:?}");

    let out = d.berth(&["login", "-u", "alice", "-p", "wrong", &host], None);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let err: Vec<&str> = err.lines().filter(|l| !l.starts_with("WARNING!")).collect();
    assert_eq!(err.len(), 1, "one line: {err:?}");
    assert!(err[0].contains("unauthorized"), "{err:?}");
    assert!(!d.dir.path().join("config/config.json").exists());

    let out = d.berth(
        &["login", "-u", "alice", "--password-stdin", &host],
        Some(b"s3cret\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let cfg = d.dir.path().join("config/config.json");
    let text = std::fs::read_to_string(&cfg).expect("config.json written");
    assert!(text.contains(&host), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cfg).expect("stat").permissions().mode() & 0o777,
        0o600
    );

    d.ok(&["push", &name]);
    d.ok(&["rmi", &name]);
    d.ok(&["pull", "-q", &name]);
    assert_eq!(
        d.ok(&["run", "--rm", &name, "echo", "private"]),
        "private\n"
    );

    assert!(d
        .ok(&["logout", &host])
        .contains("Removing login credentials"));
    d.ok(&["rmi", &name]);
    let out = d.berth(&["pull", "-q", &name], None);
    assert!(!out.status.success(), "pull after logout: {out:?}");
}
