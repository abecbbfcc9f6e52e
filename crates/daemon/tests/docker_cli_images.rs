//! The real docker CLI against berthd for the registry-login and import/export verbs:
//! `docker login` against an htpasswd registry (checked through `POST /auth`, then pushes and
//! pulls with the credentials docker keeps and sends as `X-Registry-Auth`), `docker export` →
//! `docker import --change` → `docker run`, and `docker container prune` / `docker image prune`.
//! berthd and both registries are killed by PID on drop; containers and overlays cleaned up.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/fixture.rs"]
mod fixture;

use std::io::Write;
use std::path::Path;

use common::Daemon;
use docker::Docker;
use fixture::{ensure_siblings, have, Cleanup, Registry};

#[test]
fn docker_cli_login_import_export_prune() {
    for bin in [
        "docker",
        "docker-registry",
        "umoci",
        "skopeo",
        "jq",
        "htpasswd",
    ] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let private = Registry::start_empty(Some("alice:s3cret"));
    let r = format!("127.0.0.1:{}", reg.port);
    let d = Daemon::start_with(&["--default-registry", r.as_str()]);
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    docker.ok(&["pull", "-q", "busybox"], &d);

    // login: refused credentials are docker's one-line error; accepted ones let push/pull in
    let host = format!("127.0.0.1:{}", private.port);
    let name = format!("{host}/private/busybox:1");
    let out = docker.run_with_input(
        &["login", "-u", "alice", "--password-stdin", &host],
        b"wrong\n",
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unauthorized"), "{err}");
    let out = docker.run_with_input(
        &["login", "-u", "alice", "--password-stdin", &host],
        b"s3cret\n",
    );
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{out:?}"
    );
    docker.ok(&["tag", "busybox", &name], &d);
    docker.ok(&["push", &name], &d);
    docker.ok(&["rmi", &name], &d);
    docker.ok(&["pull", "-q", &name], &d);
    docker.ok(&["logout", &host], &d);
    docker.ok(&["rmi", &name], &d);
    let out = docker.run(&["pull", "-q", &name]);
    assert!(!out.status.success(), "pull after logout: {out:?}");

    // export → import with changes → run
    docker.ok(
        &[
            "run",
            "--name",
            "src",
            "busybox",
            "sh",
            "-c",
            "echo exported > /marker",
        ],
        &d,
    );
    let tar = d.data_root.with_file_name("rootfs.tar");
    let tar = tar.to_str().expect("utf-8 path");
    docker.ok(&["export", "-o", tar, "src"], &d);
    let id = docker.ok(
        &[
            "import",
            "--change",
            "CMD [\"cat\", \"/marker\"]",
            "--change",
            "WORKDIR /tmp",
            tar,
            "imported:v1",
        ],
        &d,
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(docker.ok(&["run", "--rm", "imported:v1"], &d), "exported\n");
    assert_eq!(
        docker.ok(&["run", "--rm", "imported:v1", "pwd"], &d),
        "/tmp\n"
    );

    // import from a URL: berthd fetches the tarball (served here on 127.0.0.1)
    let url = serve_file(Path::new(tar));
    docker.ok(&["import", &url, "fromurl:v1"], &d);
    assert_eq!(
        docker.ok(&["run", "--rm", "fromurl:v1", "cat", "/marker"], &d),
        "exported\n"
    );
    let out = docker.run(&["import", &format!("{url}.missing"), "nothing:v1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("404"), "{out:?}");
    let out = docker.run(&["import", "ftp://127.0.0.1/x.tar", "nothing:v1"]);
    assert!(!out.status.success(), "{out:?}");
    docker.ok(&["rmi", "fromurl:v1"], &d);

    // images --filter before=/since= (imported:v1 was made after busybox was pulled)
    let repos = |filter: &str| {
        docker.ok(
            &["images", "--filter", filter, "--format", "{{.Repository}}"],
            &d,
        )
    };
    let older = repos("before=imported:v1");
    assert!(
        older.lines().any(|r| r.ends_with("busybox")) && !older.contains("imported"),
        "{older}"
    );
    let newer = repos("since=busybox");
    assert_eq!(newer.trim(), "imported", "{newer}");

    // prune
    let out = docker.ok(&["container", "prune", "-f"], &d);
    assert!(out.contains("Deleted Containers"), "{out}");
    // until= keeps what is newer than the cut-off: everything here was made just now
    let out = docker.ok(&["image", "prune", "-a", "-f", "--filter", "until=1h"], &d);
    assert!(!out.contains("imported:v1"), "{out}");
    let out = docker.ok(&["image", "prune", "-a", "-f"], &d);
    assert!(out.contains("imported:v1"), "{out}");
    let left = docker.ok(&["images", "-q"], &d);
    assert!(left.trim().is_empty(), "{left}");
}

/// Serves `file` at http://127.0.0.1:PORT/rootfs.tar (404 for any other path) from a thread,
/// for as long as the test process runs.
fn serve_file(file: &Path) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local addr").port();
    let file = file.to_owned();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let found = request.split_whitespace().nth(1) == Some("/rootfs.tar");
            let body = if found {
                std::fs::read(&file).expect("read served file")
            } else {
                b"not found".to_vec()
            };
            let status = if found { "200 OK" } else { "404 Not Found" };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/rootfs.tar")
}
