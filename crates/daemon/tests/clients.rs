//! The real clients against berthd: the docker CLI (28.x), docker-py, and the docker CLI over
//! mutual TLS on TCP. Nothing here contacts a registry.

mod common;

use std::path::Path;
use std::process::Command;

use common::{have, run, Daemon};

fn docker(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    run(Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY"))
}

fn skip_without(prog: &str) -> bool {
    if have(prog) {
        return false;
    }
    println!("SKIP: {prog} not installed");
    true
}

#[test]
fn docker_cli_version_and_info() {
    if skip_without("docker") {
        return;
    }
    let d = Daemon::start();
    let (ok, out, err) = docker(
        &d,
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Os}} {{.Client.APIVersion}}",
        ],
    );
    assert!(ok, "{out}{err}");
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(parts[0], "1.47");
    assert_eq!(parts[1], "linux");
    assert_eq!(
        parts[2], "1.47",
        "the CLI negotiated down to berthd's version"
    );
    let (ok, out, err) = docker(
        &d,
        &[
            "info",
            "--format",
            "{{.NCPU}} {{.Driver}} {{.CgroupDriver}} {{.ServerVersion}}",
        ],
    );
    assert!(ok, "{out}{err}");
    let ncpu = std::thread::available_parallelism().unwrap().get();
    assert!(
        out.starts_with(&format!("{ncpu} overlay2 cgroupfs ")),
        "{out}"
    );
    let (ok, out, err) = docker(&d, &["info"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Storage Driver: overlay2"), "{out}");
    assert!(!err.contains("WARNING: error"), "{err}");
}

#[test]
fn docker_cli_volume_lifecycle() {
    if skip_without("docker") {
        return;
    }
    let d = Daemon::start();
    let (ok, out, err) = docker(&d, &["volume", "create", "--label", "app=web", "webdata"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "webdata");
    let (ok, _, err) = docker(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "scratch",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = docker(&d, &["volume", "ls"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        vec!["DRIVER", "VOLUME", "NAME"]
    );
    assert_eq!(lines.len(), 3, "{out}");
    let (_, out, _) = docker(&d, &["volume", "ls", "-q", "--filter", "label=app=web"]);
    assert_eq!(out.trim(), "webdata");
    let (_, out, _) = docker(
        &d,
        &[
            "volume",
            "inspect",
            "--format",
            "{{.Driver}} {{.Labels.app}} {{.Options.type}}",
            "webdata",
            "scratch",
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["local web <no value>", "local <no value> tmpfs"]
    );
    let (ok, out, _) = docker(&d, &["volume", "inspect", "webdata"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[0]["Mountpoint"],
        d.data_root
            .join("volumes/webdata/_data")
            .display()
            .to_string()
    );
    let (ok, _, err) = docker(&d, &["volume", "rm", "nosuch"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error response from daemon: get nosuch: no such volume"
    );
    let (ok, _, err) = docker(&d, &["volume", "create", "bad/name"]);
    assert!(!ok);
    assert!(err.contains("includes invalid characters"), "{err}");
    let (ok, out, _) = docker(&d, &["volume", "rm", "webdata"]);
    assert!(ok);
    assert_eq!(out.trim(), "webdata");
    // Anonymous volumes go with a plain prune, named ones only with --all.
    let (_, anon, _) = docker(&d, &["volume", "create"]);
    let (ok, out, err) = docker(&d, &["volume", "prune", "-f"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(anon.trim()) && !out.contains("scratch"),
        "{out}"
    );
    let (ok, out, _) = docker(&d, &["volume", "prune", "-af"]);
    assert!(ok);
    assert!(out.contains("scratch"), "{out}");
    let (_, out, _) = docker(&d, &["volume", "ls", "-q"]);
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn docker_cli_system_df_counts_volume_bytes() {
    if skip_without("docker") {
        return;
    }
    let d = Daemon::start();
    docker(&d, &["volume", "create", "dfv"]);
    std::fs::write(d.data_root.join("volumes/dfv/_data/f"), vec![0u8; 12345]).unwrap();
    let (ok, out, err) = docker(
        &d,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}={{.TotalCount}}/{{.Size}}",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Local Volumes=1/12.35kB"), "{out}");
    assert!(
        out.contains("Images=0/0B") && out.contains("Containers=0/0B"),
        "{out}"
    );
    let (ok, out, err) = docker(&d, &["system", "df", "-v"]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["dfv", "0", "12.35kB"]),
        "{out}"
    );
}

#[test]
fn docker_cli_events_since_until() {
    if skip_without("docker") {
        return;
    }
    let d = Daemon::start();
    docker(&d, &["volume", "create", "ev"]);
    docker(&d, &["volume", "rm", "ev"]);
    // The CLI sends `--until 0s` as whole seconds (like docker): let the events' second pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (ok, out, err) = docker(
        &d,
        &[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "type=volume",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}}",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["volume create ev", "volume destroy ev"]
    );
}

#[test]
fn docker_py_client() {
    if skip_without("python3") {
        return;
    }
    let probe = run(Command::new("python3").args(["-c", "import docker"]));
    if !probe.0 {
        println!("SKIP: python3-docker not installed");
        return;
    }
    let d = Daemon::start();
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
v = c.version()
assert v["ApiVersion"] == "1.47", v
assert c.api.api_version == "1.47", c.api.api_version
info = c.info()
assert info["Containers"] == 0 and info["NCPU"] >= 1, info
vol = c.volumes.create(name="pyvol", driver="local", labels={"k": "v"})
assert vol.attrs["Labels"] == {"k": "v"}, vol.attrs
assert [x.name for x in c.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
assert c.volumes.get("pyvol").attrs["Mountpoint"].endswith("/volumes/pyvol/_data")
try:
    c.volumes.get("nosuch")
    raise SystemExit("expected NotFound")
except docker.errors.NotFound as e:
    assert "no such volume" in str(e), e
vol.remove()
anon = c.volumes.create()
r = c.volumes.prune()
assert r["VolumesDeleted"] == [anon.name], r
df = c.df()
assert df["Images"] == [] and df["Containers"] == [], df
assert df["Volumes"] == [], df
print("ok")
"#;
    let (ok, out, err) = run(Command::new("python3").args(["-c", script, &d.host()]));
    assert!(
        ok && out.trim() == "ok",
        "docker-py failed:\n{out}\n{err}\n{}",
        d.log()
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let (ok, out, err) = run(Command::new("openssl").args(args).current_dir(dir));
    assert!(ok, "openssl {args:?}: {out}{err}");
}

/// A CA, a server cert for 127.0.0.1 and a client cert, like docker's TLS guide.
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=berth-test-ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ];
    ca.extend_from_slice(&ec);
    openssl(dir, &ca);
    for (who, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        let key = format!("{who}-key.pem");
        let csr = format!("{who}.csr");
        let mut req = vec![
            "req",
            "-subj",
            "/CN=berth-test",
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        req.extend_from_slice(&ec);
        openssl(dir, &req);
        let cert = format!("{who}-cert.pem");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &cert,
                "-extfile",
                ext,
            ],
        );
    }
    // docker's DOCKER_CERT_PATH layout for the client.
    let c = dir.join("client");
    std::fs::create_dir(&c).unwrap();
    std::fs::copy(dir.join("ca.pem"), c.join("ca.pem")).unwrap();
    std::fs::copy(dir.join("client-cert.pem"), c.join("cert.pem")).unwrap();
    std::fs::copy(dir.join("client-key.pem"), c.join("key.pem")).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn docker_cli_over_mutual_tls() {
    if skip_without("openssl") || skip_without("docker") || skip_without("curl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let p = |f: &str| certs.path().join(f).display().to_string();
    let d = Daemon::start_with(&[
        "-H",
        &tcp,
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("server-cert.pem"),
        "--tlskey",
        &p("server-key.pem"),
    ]);
    // Wait for the TCP listener too (the harness waited for the socket).
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let cfg = d.dir.path().join("docker-config");
    let (ok, out, err) = run(Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .env("DOCKER_HOST", &tcp)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs.path().join("client"))
        .env("DOCKER_CONFIG", &cfg));
    assert!(ok, "docker over mTLS failed: {out}{err}\n{}", d.log());
    assert_eq!(out.trim(), "1.47");
    // Without a client certificate the handshake is refused.
    let (ok, _, _) = run(Command::new("curl").args([
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        &p("ca.pem"),
        &format!("https://127.0.0.1:{port}/_ping"),
    ]));
    assert!(!ok, "a client without a certificate got through");
    // With one, it answers.
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        &p("ca.pem"),
        "--cert",
        &p("client-cert.pem"),
        "--key",
        &p("client-key.pem"),
        &format!("https://127.0.0.1:{port}/_ping"),
    ]));
    assert!(ok && out == "OK", "{out}{err}");
}
