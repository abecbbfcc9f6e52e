//! The real docker CLI against berthd, end to end: a local Distribution registry on 127.0.0.1
//! seeded with a busybox-static image (scripts/registry-fixture.sh: umoci + skopeo), berthd
//! with its default registry pointed there, then `docker pull/images/run/ps/logs/exec/inspect/
//! stop/rm`, volumes across containers, exit codes, and `kill -9` of berthd with a running
//! container that is re-adopted and whose exit code is recorded later.
//! Everything is cleaned up by Drop guards: berthd and the registry killed by PID, containers
//! removed, leftover shims killed by PID, overlays under the temp data root unmounted, cgroups
//! of the test's containers removed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;

fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// berthd finds berth-shim and berth-runtime next to itself; `cargo test -p berth-daemon`
/// alone doesn't build them, so build them into the same target dir when missing.
fn ensure_siblings() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_berthd"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    if bin_dir.join("berth-shim").exists() && bin_dir.join("berth-runtime").exists() {
        return;
    }
    let target = bin_dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-p", "berth-shim", "-p", "berth-runtime"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(repo_root())
        .status()
        .expect("cargo build");
    assert!(st.success(), "building berth-shim and berth-runtime failed");
}

/// A docker-registry process on 127.0.0.1, killed by PID on drop.
struct Registry {
    pid: i32,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = repo_root().join("scripts/registry-fixture.sh");
        let oci = dir.path().join("oci");
        let out = Command::new(&script)
            .arg("image")
            .arg(&oci)
            .output()
            .expect("fixture image");
        assert!(
            out.status.success(),
            "image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&script)
            .arg("start")
            .arg(dir.path().join("reg"))
            .output()
            .expect("fixture start");
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut it = text.split_whitespace();
        let port: u16 = it.next().and_then(|p| p.parse().ok()).expect("port");
        let pid: i32 = it.next().and_then(|p| p.parse().ok()).expect("pid");
        let reg = Registry {
            pid,
            port,
            _dir: dir,
        };
        for repo in ["busybox:latest", "library/busybox:latest"] {
            let out = Command::new(&script)
                .arg("seed")
                .arg(&oci)
                .arg(port.to_string())
                .arg(repo)
                .output()
                .expect("fixture seed");
            assert!(
                out.status.success(),
                "seed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        reg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Removes what containers of a data root left behind, even when a test fails.
struct Cleanup {
    data_root: PathBuf,
    exec_root: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let shim_dir = self.exec_root.join("shim");
        let ids: Vec<String> = std::fs::read_dir(self.data_root.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for e in std::fs::read_dir(&shim_dir).into_iter().flatten().flatten() {
            let sd = e.path();
            if let Ok(pid) = std::fs::read_to_string(sd.join("shim.pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    if berth_shim_like(pid, &sd) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            // the container's processes: the runtime's state names its init
            let id = e.file_name().to_string_lossy().into_owned();
            let state = self.exec_root.join("runtime").join(&id).join("state.json");
            if let Ok(s) = std::fs::read_to_string(state) {
                if let Some(pid) = s
                    .split("\"pid\":")
                    .nth(1)
                    .and_then(|r| r.split([',', '}']).next())
                    .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let root = self.data_root.display().to_string();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|t| t.starts_with(&root))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
        }
        for id in ids {
            for e in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_dir(e.path().join("berth").join(&id));
            }
        }
    }
}

fn berth_shim_like(pid: i32, state_dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c);
            s.contains("berth-shim") && s.contains(&*state_dir.to_string_lossy())
        })
        .unwrap_or(false)
}

struct Docker {
    host: String,
    config: tempfile::TempDir,
}

impl Docker {
    fn new(d: &Daemon) -> Docker {
        Docker {
            host: d.host(),
            config: tempfile::tempdir().expect("docker config dir"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str], d: &Daemon) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}\nberthd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn start_daemon(dir: Option<tempfile::TempDir>, reg: &Registry) -> Daemon {
    let r = format!("127.0.0.1:{}", reg.port);
    let args = ["--default-registry", r.as_str()];
    match dir {
        Some(dir) => Daemon::start_in(dir, &args),
        None => Daemon::start_with(&args),
    }
}

#[test]
fn docker_cli_runs_containers_end_to_end() {
    for bin in ["docker", "docker-registry", "umoci", "skopeo", "jq"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    ensure_siblings();
    let reg = Registry::start();
    let d = start_daemon(None, &reg);
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    let image = format!("127.0.0.1:{}/busybox", reg.port);

    // pull by full name, and a short name through the default registry (never docker.io)
    let out = docker.ok(&["pull", &image], &d);
    assert!(
        out.contains("Pull complete") || out.contains("Downloaded"),
        "{out}"
    );
    docker.ok(&["pull", "-q", "busybox"], &d);
    let images = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"], &d);
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    assert!(
        images.lines().any(|l| l == format!("{image}:latest")),
        "{images}"
    );

    // run --rm with output and exit codes
    let t = Instant::now();
    assert_eq!(
        docker.ok(&["run", "--rm", &image, "echo", "hi"], &d),
        "hi\n"
    );
    println!("docker run --rm echo hi: {:?}", t.elapsed());
    let out = docker.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let all = docker.ok(&["ps", "-aq"], &d);
    assert_eq!(all.trim(), "", "--rm containers are gone: {all}");

    // detached container: ps, logs, exec, inspect, stop, rm
    docker.ok(
        &[
            "run",
            "-d",
            "--init",
            "--name",
            "web",
            &image,
            "sh",
            "-c",
            "echo started; exec sleep 30",
        ],
        &d,
    );
    let ps = docker.ok(&["ps", "--format", "{{.Names}} {{.Status}}"], &d);
    assert!(ps.lines().any(|l| l.starts_with("web Up")), "{ps}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = docker.ok(&["logs", "web"], &d);
        if logs == "started\n" {
            break;
        }
        assert!(Instant::now() < deadline, "logs: {logs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(docker.ok(&["exec", "web", "echo", "hi"], &d), "hi\n");
    let out = docker.run(&["exec", "web", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.Name}}",
            "web",
        ],
        &d,
    );
    assert_eq!(st.trim(), "running true /web");
    let dup = docker.run(&["run", "-d", "--name", "web", &image, "true"]);
    assert!(!dup.status.success());
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already in use"),
        "{dup:?}"
    );
    let rm = docker.run(&["rm", "web"]);
    assert!(!rm.status.success(), "rm of a running container needs -f");
    let t = Instant::now();
    docker.ok(&["stop", "web"], &d);
    // docker-init (--init) forwards SIGTERM to sleep, which dies of it
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "sleep stops on SIGTERM"
    );
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web",
        ],
        &d,
    );
    assert_eq!(st.trim(), "exited 143");
    docker.ok(&["rm", "web"], &d);
    let gone = docker.run(&["inspect", "web"]);
    assert!(!gone.status.success());

    // a named volume keeps data across containers
    docker.ok(
        &[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            &image,
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
        &d,
    );
    assert_eq!(
        docker.ok(
            &["run", "--rm", "-v", "keep:/data", &image, "cat", "/data/f"],
            &d
        ),
        "kept\n"
    );
    docker.ok(&["volume", "rm", "keep"], &d);

    // --network none has only loopback; an unsupported network is a clear error
    let links = docker.ok(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "ls",
            "/sys/class/net",
        ],
        &d,
    );
    assert_eq!(links.trim(), "lo");
    let bad = docker.run(&["run", "--rm", "--network", "bridge", &image, "true"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("network"),
        "{bad:?}"
    );

    // kill -9 berthd with a running container: re-adopted, exit code recorded later
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "survivor",
            &image,
            "sh",
            "-c",
            "sleep 2; exit 7",
        ],
        &d,
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(d.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9 berthd");
    let dir = d.stop();
    let d = start_daemon(Some(dir), &reg);
    let docker = Docker::new(&d);
    let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", "survivor"], &d);
    assert_eq!(st.trim(), "running", "re-adopted as running");
    assert_eq!(docker.ok(&["wait", "survivor"], &d).trim(), "7");
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "survivor",
        ],
        &d,
    );
    assert_eq!(st.trim(), "exited 7");
    docker.ok(&["rm", "survivor"], &d);

    // an image in use can't be removed without -f; unused it can
    docker.ok(&["create", "--name", "holder", &image, "true"], &d);
    let rmi = docker.run(&["rmi", &image]);
    assert!(!rmi.status.success(), "{rmi:?}");
    docker.ok(&["rm", "holder"], &d);
    docker.ok(&["rmi", &image], &d);
}
