//! Shared helpers of the privileged integration tests: busybox bundles (made like
//! scripts/make-busybox-bundle.sh), a private state root per test, and a Drop guard that force
//! deletes every container the test left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The berth-runtime binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Whether the test can do what it needs (root + busybox).
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return false;
    }
    if which("busybox").is_none() {
        eprintln!("SKIP: busybox-static not installed");
        return false;
    }
    true
}

/// Finds `name` in PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A unique id per test run.
pub fn uid(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// An OCI bundle from busybox in a temp dir.
pub struct Bundle {
    /// keeps the dir alive
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// A bundle running `args` (terminal off).
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-bundle.sh");
        let b = dir.path().join("b");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&b)
            .arg("--")
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run make-busybox-bundle.sh");
        assert!(st.success(), "make-busybox-bundle.sh failed");
        Bundle { dir }
    }

    /// The bundle path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("b")
    }

    /// Edits config.json.
    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let p = self.path().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).expect("read config")).expect("parse config");
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).expect("json")).expect("write config");
    }
}

/// A private state root; Drop force-deletes whatever containers are left.
pub struct Runtime {
    /// the --root dir
    pub root: tempfile::TempDir,
}

impl Runtime {
    /// A fresh root.
    pub fn new() -> Runtime {
        Runtime {
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A command with `--root` set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs berth-runtime with `args`, capturing output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("spawn berth-runtime")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth-runtime {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// For create / run -d: the container inherits stdio, so waiting for pipe EOF would wait for
    /// the container. Stdout goes to null, stderr to a file read after the runtime exits.
    pub fn detached(&self, args: &[&str]) {
        let errf = tempfile::NamedTempFile::new().expect("temp file");
        let st = self
            .cmd()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(errf.reopen().expect("reopen"))
            .status()
            .expect("spawn berth-runtime");
        let err = std::fs::read_to_string(errf.path()).unwrap_or_default();
        assert!(st.success(), "berth-runtime {args:?} failed: {err}");
    }

    /// `state` as JSON.
    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.root.path()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.run(&["delete", "--force", &id]);
            }
        }
    }
}

/// The v1 cgroup dirs a container with the default cgroup path would use.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    ["pids", "memory", "freezer", "cpu"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("berth").join(id))
        .collect()
}

/// Mount points under `path` in our mount namespace.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&p))
        .collect()
}
