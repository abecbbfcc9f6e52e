//! End-to-end smoke tests with the engines that call an OCI runtime: podman (`--runtime`) and
//! containerd's ctr (`--runc-binary`), each on private roots/sockets, with a busybox image
//! made here (no network). dockerd is covered by crates/e2e/tests/docker.rs
//! (`dockerd_drives_berth_runtime`: run, exit codes, -d, exec, update, pause, top, tty).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{can_run, which, Bundle};

fn out(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A podman with private storage; Drop resets it.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                common::BIN,
            ]);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("spawn podman")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["system", "reset", "--force"]);
    }
}

/// The host's hard RLIMIT_NOFILE/NPROC cap what podman may ask for (root here lacks
/// CAP_SYS_RESOURCE; crun fails the same way without these flags).
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

#[test]
fn podman_runs_execs_and_allocates_a_tty() {
    if !can_run() {
        return;
    }
    if which("podman").is_none() {
        eprintln!("SKIP: podman not installed");
        return;
    }
    let pm = Podman {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let b = Bundle::new(&["true"]);
    let tar = pm.dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(b.path().join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let o = pm.run(&[
        "import",
        tar.to_str().expect("utf8"),
        "localhost/berth-busybox:test",
    ]);
    assert!(o.status.success(), "import: {}", out(&o));

    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(ULIMITS);
    args.extend([
        "localhost/berth-busybox:test",
        "sh",
        "-c",
        "echo hello-podman; exit 3",
    ]);
    let o = pm.run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello-podman\n");

    let mut args = vec!["run", "-d", "--name", "berth-peer", "--network", "none"];
    args.extend(ULIMITS);
    args.extend(["localhost/berth-busybox:test", "sleep", "60"]);
    let o = pm.run(&args);
    assert!(o.status.success(), "run -d: {}", out(&o));
    let o = pm.run(&[
        "exec",
        "berth-peer",
        "sh",
        "-c",
        "echo in-exec; cat /proc/1/cmdline",
    ]);
    assert!(o.status.success(), "exec: {}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("in-exec\nsleep"),
        "{}",
        out(&o)
    );
    let o = pm.run(&["exec", "-t", "berth-peer", "tty"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "exec -t: {}",
        out(&o)
    );
    let o = pm.run(&["pause", "berth-peer"]);
    assert!(o.status.success(), "pause: {}", out(&o));
    let o = pm.run(&["unpause", "berth-peer"]);
    assert!(o.status.success(), "unpause: {}", out(&o));
    let o = pm.run(&["rm", "-f", "-t", "0", "berth-peer"]);
    assert!(o.status.success(), "rm: {}", out(&o));
}

/// containerd on private paths; killed by pid on Drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\n  address = \"{sock}\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_apparmor = true\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).expect("config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let sock = d.join("containerd.sock");
        for _ in 0..200 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Containerd { dir, child }
    }
    fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }
    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.sock())
            .args(args)
            .output()
            .expect("spawn ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.ctr(&["task", "kill", "-s", "KILL", "berth-ctr"]);
        let _ = self.ctr(&["container", "rm", "berth-ctr"]);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // containerd leaves its snapshot mounts under root
        let root = self.dir.path().join("root");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l",
                root.display()
            ))
            .status();
    }
}

fn oci_layout_tar(dir: &Path, rootfs: &Path) -> PathBuf {
    // umoci builds an OCI image from a plain rootfs without any registry.
    let layout = dir.join("oci");
    let run = |args: &[&str]| {
        let o = Command::new("umoci").args(args).output().expect("umoci");
        assert!(o.status.success(), "umoci {args:?}: {}", out(&o));
    };
    let l = layout.to_str().expect("utf8");
    run(&["init", "--layout", l]);
    run(&["new", "--image", &format!("{l}:test")]);
    let unpacked = dir.join("unpacked");
    run(&[
        "unpack",
        "--image",
        &format!("{l}:test"),
        unpacked.to_str().expect("utf8"),
    ]);
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs.display()))
        .arg(unpacked.join("rootfs"))
        .status()
        .expect("cp");
    assert!(st.success());
    run(&[
        "repack",
        "--image",
        &format!("{l}:test"),
        unpacked.to_str().expect("utf8"),
    ]);
    run(&[
        "config",
        "--image",
        &format!("{l}:test"),
        "--config.cmd",
        "sh",
    ]);
    run(&["gc", "--layout", l]);
    let tar = dir.join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    tar
}

#[test]
fn ctr_runs_with_berth_runtime_as_runc_binary() {
    if !can_run() {
        return;
    }
    for tool in ["containerd", "ctr", "umoci"] {
        if which(tool).is_none() {
            eprintln!("SKIP: {tool} not installed");
            return;
        }
    }
    let cd = Containerd::start();
    let b = Bundle::new(&["true"]);
    let tar = oci_layout_tar(cd.dir.path(), &b.path().join("rootfs"));
    let o = cd.ctr(&[
        "image",
        "import",
        "--all-platforms",
        "--base-name",
        "localhost/berth-busybox",
        tar.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "import: {}", out(&o));
    let o = cd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        common::BIN,
        "localhost/berth-busybox:test",
        "berth-ctr",
        "sh",
        "-c",
        "echo hello-ctr",
    ]);
    assert!(
        o.status.success(),
        "ctr run: {}\ncontainerd log: {}",
        out(&o),
        std::fs::read_to_string(cd.dir.path().join("containerd.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello-ctr\n");
}
