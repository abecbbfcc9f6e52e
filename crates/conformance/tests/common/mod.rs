//! The conformance harness: builds busybox bundles holding `berth-checker`, drives an OCI runtime
//! (`BERTH_RUNTIME`, default: the workspace's berth-runtime) through its runc-style CLI with a
//! private `--root`, and parses the checker's TAP. Every container and cgroup it makes is removed
//! by Drop guards, even when a test fails.
//!
//! The checker must run inside a busybox-only rootfs: `BERTH_CHECKER` names a static build;
//! else the static build scripts/conformance.sh leaves in <target>/x86_64-unknown-linux-gnu/release
//! is used when it is newer than the test build; otherwise the dynamically linked test build is
//! copied in together with the shared libraries `ldd` lists for it.
#![allow(dead_code)] // each tests/*.rs uses a different part of this module

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the checker lives inside every rootfs.
pub const CHECKER: &str = "/berth-checker";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the conformance suite creates containers: run it as root"
    );
}

/// Prints the conventional skip line; the caller returns right after.
pub fn skip(reason: &str) {
    println!("SKIP: {reason}");
}

fn target_dir() -> PathBuf {
    // .../target/<profile>/berth-checker
    Path::new(env!("CARGO_BIN_EXE_berth-checker"))
        .parent()
        .and_then(Path::parent)
        .expect("the checker binary lives in <target>/<profile>/")
        .to_path_buf()
}

/// The runtime under test.
pub fn runtime_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
        return PathBuf::from(p);
    }
    // The newest of target/{release,debug}/berth-runtime, in this build's target dir or the
    // workspace's.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let newest = [target_dir(), workspace.join("target")]
        .into_iter()
        .flat_map(|dir| ["release", "debug"].map(|p| dir.join(p).join("berth-runtime")))
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max();
    if let Some((_, p)) = newest {
        return p;
    }
    panic!(
        "no runtime to test: set BERTH_RUNTIME=/path/to/runtime (e.g. /usr/bin/crun) \
         or build berth-runtime (cargo build -p berth-runtime)"
    );
}

/// Short name of the runtime under test (`crun`, `runc`, `berth-runtime`), for messages.
pub fn runtime_name() -> String {
    runtime_bin()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A container id unique to this test process and call.
pub fn unique_id(name: &str) -> String {
    format!(
        "bc-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The runtime binary plus a private state root, removed on drop.
pub struct Runtime {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
}

impl Runtime {
    pub fn new() -> Runtime {
        require_root();
        Runtime {
            bin: runtime_bin(),
            root: tempfile::Builder::new()
                .prefix("berth-conf-root-")
                .tempdir_in("/run")
                .expect("create a state root under /run"),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs one CLI verb to completion, output captured.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().expect("temp file for stdout");
        let err = tempfile::tempfile().expect("temp file for stderr");
        let mut cmd = self.cmd();
        cmd.args(args);
        let status = run_timed(cmd, &out, &err);
        Output {
            status,
            stdout: read_back(out),
            stderr: read_back(err),
        }
    }

    /// `create --bundle B ID` with the container's stdio going to `B/stdout` and `B/stderr`
    /// (the runtime passes its own stdio to the container process when there is no terminal).
    pub fn create(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        let out = fs::File::create(bundle.dir().join("stdout")).expect("create stdout file");
        let err = fs::File::create(bundle.dir().join("stderr")).expect("create stderr file");
        let mut cmd = self.cmd();
        cmd.arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(bundle.dir())
            .arg(id);
        let status = run_timed(cmd, &out, &err);
        Output {
            status,
            stdout: Vec::new(),
            stderr: fs::read(bundle.dir().join("stderr")).unwrap_or_default(),
        }
    }

    pub fn start(&self, id: &str) -> Output {
        self.run(&["start", id])
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.run(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str, force: bool) -> Output {
        if force {
            self.run(&["delete", "--force", id])
        } else {
            self.run(&["delete", id])
        }
    }

    /// The parsed `state` JSON, or the runtime's error text.
    pub fn state(&self, id: &str) -> Result<Value, String> {
        let out = self.run(&["state", id]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "state output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .ok()
            .and_then(|s| s["status"].as_str().map(str::to_string))
    }

    /// Polls `state` until the status is `want`; returns the last status seen on timeout.
    pub fn wait_status(
        &self,
        id: &str,
        want: &str,
        timeout: Duration,
    ) -> Result<(), Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if s.as_deref() == Some(want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How long one runtime command may take before the harness kills it (BERTH_CONF_TIMEOUT,
/// seconds): a hanging runtime fails its test instead of hanging the suite.
fn command_timeout() -> Duration {
    let secs = std::env::var("BERTH_CONF_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr into the given files, killing it at
/// the timeout (its status then shows the signal).
pub fn run_timed(mut cmd: Command, out: &fs::File, err: &fs::File) -> ExitStatus {
    let program = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup stdout file"))
        .stderr(err.try_clone().expect("dup stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let deadline = Instant::now() + command_timeout();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the runtime") {
            return status;
        }
        if Instant::now() > deadline {
            eprintln!(
                "TIMEOUT: {program} ran longer than {:?}; killed",
                command_timeout()
            );
            let _ = child.kill();
            return child.wait().expect("reap the killed runtime");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn read_back(mut f: fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut buf = Vec::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_end(&mut buf);
    buf
}

/// Deletes the container (with --force) when dropped.
pub struct Container<'a> {
    pub rt: &'a Runtime,
    pub id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.rt.delete(&self.id, true);
    }
}

pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}) with {}: {}",
        out.status,
        runtime_name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A unique absolute `cgroupsPath` with a parent of its own (`/<id>-parent/<id>`): parents the
/// runtime creates can then be removed without racing another test's create.
pub fn nested_cgroup(name: &str) -> String {
    let leaf = unique_id(name);
    format!("/{leaf}-parent/{leaf}")
}

/// Removes a container's cgroup (a `cgroupsPath`, absolute or relative to this process's own
/// cgroups) from every hierarchy when dropped, and for an absolute path its parents once empty:
/// a runtime that fails halfway may leave them behind.
pub struct CgroupCleanup(pub String);

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.flatten() {
            let name = h.file_name().to_string_lossy().into_owned();
            let mut candidates = vec![h.path().join(self.0.trim_start_matches('/'))];
            if !self.0.starts_with('/') {
                let ctrl = if name == "systemd" {
                    "name=systemd".to_string()
                } else {
                    name.clone()
                };
                let mine = own.lines().find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                    ctrls
                        .split(',')
                        .any(|c| c == ctrl)
                        .then(|| path.to_string())
                });
                if let Some(mine) = mine {
                    candidates.push(h.path().join(mine.trim_start_matches('/')).join(&self.0));
                }
            }
            for c in candidates {
                // A cgroup whose processes are still exiting can't be removed at once.
                for _ in 0..50 {
                    if !c.exists() || fs::remove_dir(&c).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if self.0.starts_with('/') {
                let mut parent = Path::new(self.0.as_str()).parent();
                while let Some(p) = parent.filter(|p| *p != Path::new("/")) {
                    let _ = fs::remove_dir(h.path().join(p.strip_prefix("/").unwrap_or(p)));
                    parent = p.parent();
                }
            }
        }
    }
}

/// A bundle directory: busybox rootfs with the checker, and the config.json being built.
pub struct Bundle {
    dir: tempfile::TempDir,
    pub config: Value,
    /// Extra expectations merged into expect.json (on top of the host namespace inodes).
    pub expect: BTreeMap<String, Value>,
}

impl Bundle {
    /// A bundle whose process is `args` (the checker when `args` is empty).
    pub fn new(args: &[&str]) -> Bundle {
        // BERTH_CONF_KEEP=1 keeps every bundle (config, rootfs, container stdout/stderr) for debugging.
        let dir = tempfile::Builder::new()
            .prefix("berth-conf-bundle-")
            .disable_cleanup(std::env::var_os("BERTH_CONF_KEEP").is_some())
            .tempdir()
            .expect("create bundle dir");
        // The dir must be traversable by non-root container users (process_user, userns).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod bundle");
        make_rootfs(&dir.path().join("rootfs"));
        let mut config = default_config();
        if !args.is_empty() {
            config["process"]["args"] = json!(args);
        }
        Bundle {
            dir,
            config,
            expect: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json, and the copies the checker reads in rootfs/.berth-spec/.
    pub fn write(&self) {
        let text = serde_json::to_vec_pretty(&self.config).expect("serialize config");
        fs::write(self.dir().join("config.json"), &text).expect("write config.json");
        let spec_dir = self.rootfs().join(".berth-spec");
        fs::create_dir_all(&spec_dir).expect("mkdir .berth-spec");
        fs::write(spec_dir.join("config.json"), &text).expect("write spec copy");
        let mut expect = json!({
            "host_ns": host_ns(),
            "ns_path": self.ns_path_inodes(),
            "bind_roots": self.bind_roots(),
            "root_root": self.root_path().and_then(|p| host_fs_root(&p)),
            "source_owner": self.idmap_source_owners(),
        });
        for (k, v) in &self.expect {
            expect[k] = v.clone();
        }
        fs::write(spec_dir.join("expect.json"), expect.to_string()).expect("write expect.json");
        for f in ["config.json", "expect.json"] {
            fs::set_permissions(spec_dir.join(f), fs::Permissions::from_mode(0o644))
                .expect("chmod spec");
        }
    }

    fn ns_path_inodes(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ns in self.config["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(t), Some(p)) = (ns["type"].as_str(), ns["path"].as_str()) {
                if let Ok(md) = fs::metadata(p) {
                    out.insert(proc_ns_name(t).to_string(), md.ino());
                }
            }
        }
        out
    }

    /// The mountinfo root each bind mount must show: the source's path inside the host
    /// filesystem holding it (its mount's root joined with the rest of the path).
    fn bind_roots(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for m in self.config["mounts"].as_array().into_iter().flatten() {
            let bind = m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
            let (Some(src), Some(dest)) = (m["source"].as_str(), m["destination"].as_str()) else {
                continue;
            };
            if !bind || !Path::new(src).is_dir() {
                continue;
            }
            if let Some(root) = host_fs_root(Path::new(src)) {
                out.insert(berth_conformance::checks::fs::clean(dest), root);
            }
        }
        out
    }

    /// Owner of the source of every mount with uid/gid mappings, by destination.
    fn idmap_source_owners(&self) -> BTreeMap<String, (u32, u32)> {
        let mut out = BTreeMap::new();
        for m in self.config["mounts"].as_array().into_iter().flatten() {
            if m.get("uidMappings").is_none() && m.get("gidMappings").is_none() {
                continue;
            }
            let (Some(src), Some(dest)) = (m["source"].as_str(), m["destination"].as_str()) else {
                continue;
            };
            if let Ok(md) = fs::metadata(src) {
                out.insert(
                    berth_conformance::checks::fs::clean(dest),
                    (md.uid(), md.gid()),
                );
            }
        }
        out
    }

    /// root.path as a host path (relative paths are relative to the bundle).
    fn root_path(&self) -> Option<PathBuf> {
        let p = Path::new(self.config["root"]["path"].as_str()?);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir().join(p)
        })
    }

    /// Sets a value at a JSON pointer-like path of keys, creating objects on the way.
    pub fn set(&mut self, path: &[&str], value: Value) {
        let mut cur = &mut self.config;
        for key in &path[..path.len() - 1] {
            if cur.get(*key).is_none() {
                cur[*key] = json!({});
            }
            cur = &mut cur[*key];
        }
        cur[path[path.len() - 1]] = value;
    }

    /// Appends to an array at `path`, creating it.
    pub fn push(&mut self, path: &[&str], value: Value) {
        let mut cur = &mut self.config;
        for key in path {
            if cur.get(*key).is_none() {
                cur[*key] = json!({});
            }
            cur = &mut cur[*key];
        }
        if !cur.is_array() {
            *cur = json!([]);
        }
        cur.as_array_mut().expect("array").push(value);
    }

    pub fn remove_namespace(&mut self, kind: &str) {
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != kind);
        }
    }

    pub fn set_namespace(&mut self, kind: &str, path: Option<&str>) {
        self.remove_namespace(kind);
        let mut ns = json!({ "type": kind });
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        self.push(&["linux", "namespaces"], ns);
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir().join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir().join("stderr")).unwrap_or_default()
    }
}

/// The path of a host directory inside the filesystem holding it: what mountinfo shows as the
/// `root` of a bind mount of that directory.
pub fn host_fs_root(path: &Path) -> Option<String> {
    let host = berth_conformance::mountinfo::read_self().ok()?;
    let path = fs::canonicalize(path).ok()?.to_string_lossy().into_owned();
    let holder = berth_conformance::mountinfo::containing(&host, &path)?;
    let rest = path.strip_prefix(holder.mount_point.trim_end_matches('/'))?;
    let root = format!(
        "{}/{}",
        holder.root.trim_end_matches('/'),
        rest.trim_start_matches('/')
    );
    Some(if root.len() > 1 {
        root.trim_end_matches('/').to_string()
    } else {
        root
    })
}

pub fn proc_ns_name(spec_type: &str) -> &str {
    match spec_type {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

/// Inodes of this process's namespaces, which the runtime inherits.
pub fn host_ns() -> BTreeMap<String, u64> {
    ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time"]
        .into_iter()
        .filter_map(|n| {
            fs::metadata(format!("/proc/self/ns/{n}"))
                .ok()
                .map(|m| (n.to_string(), m.ino()))
        })
        .collect()
}

/// The configuration every scenario starts from: `runc spec`'s defaults (namespaces, mounts,
/// masked and read-only paths, three capabilities) with the checker as the process.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": [CHECKER],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "inheritable": caps,
                "permitted": caps, "ambient": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "berth-conformance",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Busybox (static) with an applet link per command, passwd/group, and the checker.
fn make_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "var",
        "run",
        ".berth-spec",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs dir");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755)).expect("chmod rootfs");
    let busybox = busybox_path();
    fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "true", "false", "sleep", "cat", "echo", "ls", "ionice", "id", "env", "touch",
        "mkdir", "grep", "head", "readlink", "hostname", "pwd",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .expect("applet link");
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("write passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("write group");
    install_checker(rootfs);
}

pub fn busybox_path() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("busybox-static is needed (apt-get install busybox-static)")
}

fn install_checker(rootfs: &Path) {
    let dest = rootfs.join(CHECKER.trim_start_matches('/'));
    if let Some(p) = std::env::var_os("BERTH_CHECKER") {
        fs::copy(&p, &dest)
            .unwrap_or_else(|e| panic!("copy BERTH_CHECKER {}: {e}", Path::new(&p).display()));
        return;
    }
    let built = env!("CARGO_BIN_EXE_berth-checker");
    // The static build scripts/conformance.sh makes, when it is at least as new as this one.
    let static_build = target_dir().join("x86_64-unknown-linux-gnu/release/berth-checker");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(s), Some(d)) = (mtime(&static_build), mtime(Path::new(built))) {
        if s >= d {
            fs::copy(&static_build, &dest).expect("copy the static berth-checker");
            return;
        }
    }
    fs::copy(built, &dest).expect("copy berth-checker");
    // A dynamic build needs its loader and libraries at the same paths inside the rootfs.
    let out = Command::new("ldd")
        .arg(built)
        .output()
        .expect("run ldd on berth-checker");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let target = rootfs.join(path.trim_start_matches('/'));
        fs::create_dir_all(target.parent().expect("library has a parent dir"))
            .expect("mkdir lib dir");
        fs::copy(path, &target).unwrap_or_else(|e| panic!("copy {path} into rootfs: {e}"));
    }
}

/// The checker's TAP output, parsed.
#[derive(Debug, Default)]
pub struct TapReport {
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
    pub plan: Option<usize>,
    pub raw: String,
}

pub fn parse_tap(text: &str) -> TapReport {
    let mut r = TapReport {
        raw: text.to_string(),
        ..TapReport::default()
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("not ok ") {
            r.failed.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("ok ") {
            if rest.contains("# SKIP") {
                r.skipped.push(rest.to_string());
            } else {
                r.passed.push(rest.to_string());
            }
        } else if let Some(n) = line.strip_prefix("1..") {
            r.plan = n.trim().parse().ok();
        }
    }
    r
}

impl TapReport {
    pub fn total(&self) -> usize {
        self.passed.len() + self.failed.len() + self.skipped.len()
    }

    /// Whether a check whose description contains `needle` passed.
    pub fn passed_containing(&self, needle: &str) -> bool {
        self.passed.iter().any(|l| l.contains(needle))
    }
}

/// Runs the bundle's process (the checker) through create → start → stopped → delete and
/// returns its TAP. Panics with the runtime's stderr when a lifecycle step fails.
pub fn run_checker(rt: &Runtime, bundle: &Bundle, name: &str) -> TapReport {
    bundle.write();
    let id = unique_id(name);
    let out = rt.create(&id, bundle, &[]);
    let guard = Container { rt, id: id.clone() };
    ok(&out, "create");
    ok(&rt.start(&id), "start");
    if let Err(last) = rt.wait_status(&id, "stopped", Duration::from_secs(20)) {
        panic!(
            "container {id} did not stop; last status {last:?}; stdout so far:\n{}",
            bundle.stdout()
        );
    }
    ok(&rt.delete(&id, false), "delete");
    std::mem::forget(guard);
    parse_tap(&bundle.stdout())
}

/// Asserts that the checker ran to its plan and reported no failure.
pub fn assert_tap(report: &TapReport, bundle: &Bundle) {
    println!("{}", report.raw);
    assert!(
        report.plan == Some(report.total()) && report.total() > 0,
        "checker output incomplete (plan {:?}, {} results); stderr: {}",
        report.plan,
        report.total(),
        bundle.stderr()
    );
    assert!(
        report.failed.is_empty(),
        "{} failed {} check(s) inside the container:\n  not ok {}",
        runtime_name(),
        report.failed.len(),
        report.failed.join("\n  not ok ")
    );
}

/// Runs the checker for a scenario and asserts a clean TAP.
pub fn inside(bundle: &Bundle, name: &str) -> TapReport {
    let rt = Runtime::new();
    let report = run_checker(&rt, bundle, name);
    assert_tap(&report, bundle);
    report
}

/// Asserts that `create` refuses the bundle and leaves no container behind.
pub fn assert_create_fails(bundle: &Bundle, name: &str) {
    bundle.write();
    let rt = Runtime::new();
    let id = unique_id(name);
    let out = rt.create(&id, bundle, &[]);
    let guard = Container {
        rt: &rt,
        id: id.clone(),
    };
    if out.status.success() {
        // Some runtimes only fail at start; the spec asks for an error either way.
        let started = rt.start(&id);
        assert!(
            !started.status.success(),
            "{} accepted an invalid config ({name}): create and start both succeeded",
            runtime_name()
        );
        drop(guard);
        return;
    }
    drop(guard);
    assert!(
        rt.state(&id).is_err(),
        "a failed create left container {id} behind"
    );
}
