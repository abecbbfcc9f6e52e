//! Shared by the docker CLI (crates/daemon) and berth CLI (crates/cli) container tests: a
//! docker-registry on 127.0.0.1 seeded with a busybox-static image made by
//! scripts/registry-fixture.sh (umoci + skopeo), killed by PID on drop; a cleanup guard for a
//! berthd data root (shims and container processes killed by PID, overlays under the root
//! unmounted, the containers' cgroups removed); and building the sibling binaries berthd needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// berthd finds berth-shim and berth-runtime next to itself; `cargo test -p berth-daemon`
/// alone doesn't build them, so build them into the same target dir when missing.
pub fn ensure_siblings(any_bin: &Path) {
    let bin_dir = any_bin.parent().expect("bin dir").to_path_buf();
    if ["berthd", "berth-shim", "berth-runtime"]
        .iter()
        .all(|b| bin_dir.join(b).exists())
    {
        return;
    }
    let target = bin_dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args([
            "build",
            "-p",
            "berth-shim",
            "-p",
            "berth-runtime",
            "-p",
            "berth-daemon",
        ])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(repo_root())
        .status()
        .expect("cargo build");
    assert!(st.success(), "building berth-shim and berth-runtime failed");
}

/// A docker-registry process on 127.0.0.1, killed by PID on drop.
pub struct Registry {
    pub pid: i32,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry seeded with the busybox-static image as `busybox` and `library/busybox`.
    pub fn start() -> Registry {
        let reg = Registry::start_empty(None);
        let script = repo_root().join("scripts/registry-fixture.sh");
        let oci = reg._dir.path().join("oci");
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
        for repo in ["busybox:latest", "library/busybox:latest"] {
            let out = Command::new(&script)
                .arg("seed")
                .arg(&oci)
                .arg(reg.port.to_string())
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

    /// An empty registry; with `auth` (`user:password`) it asks for htpasswd basic auth.
    pub fn start_empty(auth: Option<&str>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(repo_root().join("scripts/registry-fixture.sh"));
        cmd.arg("start").arg(dir.path().join("reg"));
        if let Some(a) = auth {
            cmd.arg(a);
        }
        let out = cmd.output().expect("fixture start");
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut it = text.split_whitespace();
        let port: u16 = it.next().and_then(|p| p.parse().ok()).expect("port");
        let pid: i32 = it.next().and_then(|p| p.parse().ok()).expect("pid");
        Registry {
            pid,
            port,
            _dir: dir,
        }
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
pub struct Cleanup {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
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
