//! The berth CLI against a real berthd: commands, output formats, errors and exit codes, host
//! selection (`-H`, `BERTH_HOST`, `DOCKER_HOST`), and starting berthd on demand.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// berthd next to the berth binary (built on demand when this package is tested alone).
fn berthd() -> PathBuf {
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let d = berth.with_file_name("berthd");
    if !d.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "berth-daemon", "--bin", "berthd"])
            .status()
            .expect("build berthd");
        assert!(st.success(), "building berthd failed");
    }
    assert!(d.exists(), "berthd not at {}", d.display());
    d
}

/// Stop a daemon this test didn't spawn itself (reaped by init, so "gone" means gone).
fn kill_pid(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..500 {
        if nix::sys::signal::kill(pid, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Daemon {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        let child = Command::new(berthd())
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .args(["--bridge", "none", "--ip-forward=false"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&d.socket).is_err() {
            assert!(Instant::now() < deadline, "berthd did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..500 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Out {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn berth_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&Path>) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.args(args)
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("BERTH_EXEC_ROOT")
        .env_remove("BERTH_DATA_ROOT");
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(p) = stdin {
        c.stdin(std::fs::File::open(p).unwrap());
    }
    let o = c.output().unwrap();
    Out {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn berth(d: &Daemon, args: &[&str]) -> Out {
    let host = d.host();
    let mut all = vec!["-H", host.as_str()];
    all.extend_from_slice(args);
    berth_env(&all, &[], None)
}

#[test]
fn volume_commands_and_formats() {
    let d = Daemon::start();
    let o = berth(&d, &["volume", "create", "--label", "tier=db", "dbdata"]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "dbdata");
    assert!(berth(&d, &["volume", "create", "--name", "other"]).ok);
    let o = berth(&d, &["volume", "ls"]);
    assert_eq!(
        o.stdout,
        "DRIVER    VOLUME NAME\nlocal     dbdata\nlocal     other\n"
    );
    let o = berth(&d, &["volume", "ls", "-q", "--filter", "label=tier=db"]);
    assert_eq!(o.stdout, "dbdata\n");
    let o = berth(
        &d,
        &["volume", "ls", "--format", "table {{.Name}}\\t{{.Labels}}"],
    );
    assert_eq!(
        o.stdout,
        "VOLUME NAME   LABELS\ndbdata        tier=db\nother         \n"
    );
    let o = berth(
        &d,
        &["volume", "ls", "--format", "{{json .}}", "-f", "name=db"],
    );
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(v["Name"], "dbdata");
    let o = berth(
        &d,
        &[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{json .Labels}} {{.Scope}}",
            "dbdata",
        ],
    );
    assert_eq!(o.stdout, "dbdata {\"tier\":\"db\"} local\n");
    let o = berth(&d, &["volume", "inspect", "dbdata"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["Driver"], "local");
    assert!(
        o.stdout.contains("\n    {"),
        "docker's 4-space indentation: {}",
        o.stdout
    );
    // Errors: docker's one line, non-zero exit.
    let o = berth(&d, &["volume", "rm", "nosuch"]);
    assert_eq!(
        (o.ok, o.stderr.as_str()),
        (
            false,
            "Error response from daemon: get nosuch: no such volume\n"
        )
    );
    let o = berth(&d, &["volume", "inspect", "dbdata", "nosuch"]);
    assert!(!o.ok);
    assert!(o.stdout.contains("dbdata"), "found ones are still printed");
    let o = berth(&d, &["volume", "ls", "--format", "{{.Name"]);
    assert!(!o.ok && o.stderr.contains("template"), "{}", o.stderr);
    let o = berth(&d, &["volume", "rm", "other"]);
    assert_eq!(o.stdout, "other\n");
    let o = berth(&d, &["volume", "prune", "-f"]);
    assert_eq!(o.stdout, "Total reclaimed space: 0B\n");
    let o = berth(&d, &["volume", "prune", "-a", "-f"]);
    assert_eq!(
        o.stdout,
        "Deleted Volumes:\ndbdata\n\nTotal reclaimed space: 0B\n"
    );
}

#[test]
fn export_import_round_trip() {
    let d = Daemon::start();
    assert!(berth(&d, &["volume", "create", "src"]).ok);
    let mp = d.dir.path().join("data/volumes/src/_data");
    std::fs::create_dir(mp.join("sub")).unwrap();
    std::fs::write(mp.join("sub/hello.txt"), b"hello from a volume").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", mp.join("link")).unwrap();
    let tar = d.dir.path().join("backup.tar");
    let o = berth(
        &d,
        &["volume", "export", "src", "-o", tar.to_str().unwrap()],
    );
    assert!(o.ok, "{}", o.stderr);
    let o = berth(&d, &["volume", "rm", "src"]);
    assert!(o.ok);
    let o = berth(&d, &["volume", "import", "src", tar.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(
        std::fs::read(mp.join("sub/hello.txt")).unwrap(),
        b"hello from a volume"
    );
    assert_eq!(
        std::fs::read_link(mp.join("link")).unwrap(),
        Path::new("/etc/shadow")
    );
    // From stdin into another volume.
    let host = d.host();
    let o = berth_env(
        &["-H", &host, "volume", "import", "copy", "-"],
        &[],
        Some(&tar),
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(d
        .dir
        .path()
        .join("data/volumes/copy/_data/sub/hello.txt")
        .exists());
    // Into a non-empty volume: refused with the daemon's reason.
    let o = berth(&d, &["volume", "import", "copy", tar.to_str().unwrap()]);
    assert!(!o.ok);
    assert!(
        o.stderr.starts_with("Error response from daemon: ") && o.stderr.contains("not empty"),
        "{}",
        o.stderr
    );
    // Missing volume: no file left behind.
    let missing = d.dir.path().join("missing.tar");
    let o = berth(
        &d,
        &[
            "volume",
            "export",
            "nosuch",
            "-o",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!o.ok && !missing.exists());
}

#[test]
fn system_commands_and_events() {
    let d = Daemon::start();
    let o = berth(
        &d,
        &[
            "version",
            "--format",
            "{{.Server.ApiVersion}} {{.Server.MinAPIVersion}}",
        ],
    );
    assert_eq!(o.stdout, "1.47 1.41\n");
    let o = berth(
        &d,
        &[
            "info",
            "--format",
            "{{.Driver}} {{.DefaultRuntime}} {{.Containers}}",
        ],
    );
    assert_eq!(o.stdout, "overlay2 berth 0\n");
    let o = berth(&d, &["system", "info"]);
    assert!(
        o.ok && o.stdout.contains("Storage Driver: overlay2"),
        "{}",
        o.stdout
    );
    assert!(berth(&d, &["volume", "create", "evvol"]).ok);
    std::thread::sleep(Duration::from_millis(1100));
    let o = berth(
        &d,
        &[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "type=volume",
        ],
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout
            .trim_end()
            .ends_with("volume create evvol (driver=local)"),
        "{}",
        o.stdout
    );
    let o = berth(
        &d,
        &[
            "system",
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--format",
            "{{.Action}}:{{.Actor.ID}}",
        ],
    );
    assert_eq!(o.stdout, "create:evvol\n");
}

#[test]
fn host_selection_order() {
    let d = Daemon::start();
    let host = d.host();
    let bogus = "unix:///nonexistent/berth.sock";
    let o = berth_env(
        &["volume", "ls", "-q"],
        &[("BERTH_HOST", &host), ("DOCKER_HOST", bogus)],
        None,
    );
    assert!(o.ok, "BERTH_HOST wins over DOCKER_HOST: {}", o.stderr);
    let o = berth_env(&["volume", "ls", "-q"], &[("DOCKER_HOST", &host)], None);
    assert!(o.ok, "DOCKER_HOST is used: {}", o.stderr);
    let o = berth_env(
        &["-H", bogus, "volume", "ls"],
        &[("BERTH_HOST", &host)],
        None,
    );
    assert!(!o.ok, "-H wins");
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr
            .contains("Cannot connect to the berth daemon at unix:///nonexistent/berth.sock"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("started berthd"),
        "never autostarts for an explicit host"
    );
    let o = berth_env(&["-H", "tcp://127.0.0.1:1", "version"], &[], None);
    assert!(!o.ok && o.stderr.contains("needs TLS"), "{}", o.stderr);
}

/// Kills the daemon the CLI started, by the pid it announced.
struct Started(Option<i32>);

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_pid(pid);
        }
    }
}

#[test]
fn starts_berthd_when_nothing_answers_on_the_default_socket() {
    let _ = berthd();
    let dir = tempfile::tempdir().unwrap();
    let exec = dir.path().join("exec");
    let data = dir.path().join("data");
    let env = [
        ("BERTH_EXEC_ROOT", exec.to_str().unwrap()),
        ("BERTH_DATA_ROOT", data.to_str().unwrap()),
    ];
    let o = berth_env(&["volume", "create", "auto"], &env, None);
    let pid = o
        .stderr
        .strip_prefix("berth: started berthd (pid ")
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse::<i32>().ok());
    let _guard = Started(pid);
    assert!(o.ok, "{}", o.stderr);
    assert!(pid.is_some(), "one line on stderr: {:?}", o.stderr);
    let log = exec.join("berthd.log");
    assert_eq!(
        o.stderr,
        format!(
            "berth: started berthd (pid {}), logs in {}\n",
            pid.unwrap(),
            log.display()
        )
    );
    assert_eq!(o.stdout, "auto\n");
    assert!(
        data.join("volumes/auto/_data").is_dir(),
        "the data root was passed on"
    );
    assert!(log.exists());
    // Second call: the daemon is there, nothing started.
    let o = berth_env(&["volume", "ls", "-q"], &env, None);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("auto\n", ""));
}

fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join(prog).is_file())
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn talks_mutual_tls_to_a_tcp_daemon() {
    if !have("openssl") {
        println!("SKIP: openssl not installed");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    std::fs::write(
        c.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    std::fs::write(c.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
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
        "/CN=ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ];
    ca.extend_from_slice(&ec);
    openssl(c, &ca);
    for who in ["server", "client"] {
        let (key, csr, cert, ext) = (
            format!("{who}-key.pem"),
            format!("{who}.csr"),
            format!("{who}-cert.pem"),
            format!("{who}.ext"),
        );
        let mut req = vec!["req", "-subj", "/CN=t", "-keyout", &key, "-out", &csr];
        req.extend_from_slice(&ec);
        openssl(c, &req);
        openssl(
            c,
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
                &ext,
            ],
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let p = |f: &str| c.join(f).display().to_string();
    let _d = Daemon::start_with(&[
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
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = berth_env(
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("client-cert.pem"),
            "--tlskey",
            &p("client-key.pem"),
            "volume",
            "create",
            "overtls",
        ],
        &[],
        None,
    );
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout, "overtls\n");
    // docker's environment variables work too.
    let dir = c.join("docker-layout");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(c.join("ca.pem"), dir.join("ca.pem")).unwrap();
    std::fs::copy(c.join("client-cert.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(c.join("client-key.pem"), dir.join("key.pem")).unwrap();
    let o = berth_env(
        &["volume", "ls", "-q"],
        &[
            ("DOCKER_HOST", &tcp),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", dir.to_str().unwrap()),
        ],
        None,
    );
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout, "overtls\n");
    // A certificate from another CA is refused by the daemon.
    let other = c.join("other");
    std::fs::create_dir(&other).unwrap();
    let mut ca2 = vec![
        "req", "-x509", "-days", "2", "-subj", "/CN=evil", "-keyout", "k.pem", "-out", "c.pem",
    ];
    ca2.extend_from_slice(&ec);
    openssl(&other, &ca2);
    let o = berth_env(
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            other.join("c.pem").to_str().unwrap(),
            "--tlskey",
            other.join("k.pem").to_str().unwrap(),
            "version",
        ],
        &[],
        None,
    );
    assert!(!o.ok, "a client certificate from a foreign CA got through");
}
