//! Shared helpers of the end-to-end tests: the berth-runtime binary under test (built on demand),
//! the local busybox image (docker-archive made with umoci + skopeo, no network), commands with a
//! deadline, steps that keep going after a failure, and `Scratch`, the Drop guard that owns every
//! daemon, process, cgroup and mount a test made and removes them even when the test panics.
#![allow(dead_code)]

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The image every caller runs: fully qualified so no engine ever looks at docker.io.
pub const IMAGE: &str = "localhost/berth-e2e-busybox:latest";

/// Whether the test can run here: root and every tool in `tools` on PATH. Prints `SKIP: why`.
pub fn can_run(tools: &[&str]) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return false;
    }
    let base = ["busybox", "umoci", "skopeo", "jq"];
    if let Some(t) = base.iter().chain(tools).find(|t| which(t).is_none()) {
        eprintln!("SKIP: {t} is not installed");
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

/// The berth-runtime binary under test, built once per test process.
///
/// `BERTH_RUNTIME` wins when set. Otherwise the target dir and profile are read off this test
/// binary's own path (`<target>/<profile-dir>/deps/<test>`) and `cargo build -p berth-runtime`
/// runs there with the same profile: a no-op under `cargo test --workspace` (already built), and
/// never a stale binary under `cargo test -p berth-e2e`. cargo releases the target-dir lock before
/// it runs the test binaries, so the nested build doesn't deadlock.
pub fn runtime_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("path of the test binary");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in <target>/<profile>/deps");
        let target = profile_dir.parent().expect("profile dir has a parent");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("profile dir {} has no name", profile_dir.display()),
        };
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "berth-runtime",
                "--bin",
                "berth-runtime",
            ])
            .arg("--profile")
            .arg(profile)
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target)
            .stdout(Stdio::null())
            .status()
            .expect("run cargo build -p berth-runtime");
        assert!(st.success(), "cargo build -p berth-runtime failed");
        let bin = profile_dir.join("berth-runtime");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
}

/// What a finished command printed and returned.
#[derive(Debug)]
pub struct Out {
    /// the command line, for messages
    pub cmd: String,
    /// exit code (`None` when killed by a signal)
    pub code: Option<i32>,
    /// stdout as text
    pub stdout: String,
    /// stderr as text
    pub stderr: String,
    /// wall time
    pub took: Duration,
}

impl Out {
    /// Panics with everything it printed unless it exited 0.
    pub fn ok(self) -> Out {
        assert_eq!(self.code, Some(0), "{self}");
        self
    }
    /// Panics unless it exited `code`.
    pub fn code(self, code: i32) -> Out {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }
    /// stdout without surrounding whitespace.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin closed, killing it (by its PID) if it outlives `limit`.
pub fn run_with(cmd: &mut Command, limit: Duration) -> Out {
    run_input(cmd, None, limit)
}

/// Runs `cmd` with `input` on its stdin (then EOF), or stdin closed for `None`; kills it (by its
/// PID) if it outlives `limit`.
pub fn run_input(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Out {
    let line = format!("{cmd:?}").replace('"', "");
    let start = Instant::now();
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {line}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        });
    }
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for command") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{line} still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        cmd: line,
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        took: start.elapsed(),
    }
}

/// How long one engine command may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` with the [`LIMIT`] deadline.
pub fn run(cmd: &mut Command) -> Out {
    run_with(cmd, LIMIT)
}

/// `cmd` run under `script` so it gets a pseudo-terminal as its stdin/stdout (for `-t`); the exit
/// code of `cmd` passes through (`script -e`).
pub fn in_pty(cmd: &Command) -> Command {
    let mut line = shell_quote(cmd.get_program().to_str().expect("utf-8 program"));
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(a.to_str().expect("utf-8 arg")));
    }
    let mut s = Command::new("script");
    s.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    s
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Steps of one scenario: each runs even when an earlier one failed (a failure of `echo hi`
/// shouldn't hide whether `exec` works); `finish` fails the test listing every failed step.
pub struct Steps {
    caller: &'static str,
    total: usize,
    failed: Vec<String>,
}

impl Steps {
    /// Steps for `caller` (podman, ctr, docker).
    pub fn new(caller: &'static str) -> Steps {
        Steps {
            caller,
            total: 0,
            failed: Vec::new(),
        }
    }

    /// Runs one step; a panic inside is recorded, not propagated.
    pub fn step(&mut self, name: &str, f: impl FnOnce()) {
        self.total += 1;
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => eprintln!("{}: ok   {name} ({:?})", self.caller, start.elapsed()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                eprintln!("{}: FAIL {name}", self.caller);
                self.failed.push(format!("[{name}] {msg}"));
            }
        }
    }

    /// Fails the test if any step failed, with `diagnostics` (daemon logs) appended.
    pub fn finish(self, diagnostics: impl FnOnce() -> String) {
        if !self.failed.is_empty() {
            panic!(
                "{}: {} of {} steps failed:\n{}\n=== diagnostics ===\n{}",
                self.caller,
                self.failed.len(),
                self.total,
                self.failed.join("\n\n"),
                diagnostics()
            );
        }
    }
}

/// Makes the busybox image in `dir` (OCI layout by umoci from scripts/make-busybox-bundle.sh's
/// rootfs) and returns a docker-archive of it tagged [`IMAGE`], loadable by all three callers.
pub fn busybox_archive(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-bundle.sh");
    let bundle = dir.join("bundle");
    let layout = dir.join("oci");
    let img = format!("{}:latest", layout.display());
    let unpacked = dir.join("unpacked");
    run(Command::new("bash").arg(&script).arg(&bundle)).ok();
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout))
    .ok();
    run(Command::new("umoci").args(["new", "--image", &img])).ok();
    run(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&unpacked))
    .ok();
    run(Command::new("cp")
        .arg("-a")
        .arg(bundle.join("rootfs/."))
        .arg(unpacked.join("rootfs")))
    .ok();
    run(Command::new("umoci")
        .args(["repack", "--image", &img])
        .arg(&unpacked))
    .ok();
    run(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--config.cmd",
        "sh",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]))
    .ok();
    let archive = dir.join("busybox.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{img}"),
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    ]))
    .ok();
    let _ = std::fs::remove_dir_all(&unpacked);
    archive
}

/// A daemon started by a test, stopped by its PID.
struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Everything one test made: a temp dir, a cgroup parent `/berth-e2e-<pid>-<n>` for every
/// container the callers start, and the daemons. Drop (also on panic) stops the daemons by PID
/// (SIGTERM, then SIGKILL after 15 s), SIGKILLs every process still running from the temp dir
/// (shims, conmon) and every process in the cgroup parent, removes the cgroups bottom-up,
/// unmounts everything under the temp dir, then removes it.
pub struct Scratch {
    dir: tempfile::TempDir,
    cgroup: String,
    daemons: Vec<Daemon>,
}

impl Scratch {
    /// A fresh scratch area under /tmp (kept short: unix socket paths live in it).
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix(&format!("be2e-{tag}-"))
            .tempdir_in("/tmp")
            .expect("temp dir");
        Scratch {
            dir,
            cgroup: format!("berth-e2e-{}-{n}", std::process::id()),
            daemons: Vec::new(),
        }
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup parent as callers take it (`/berth-e2e-...`).
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.cgroup)
    }

    /// Host path of `controller`'s cgroup dir for `sub` under the cgroup parent.
    pub fn cgroup_dir(&self, controller: &str, sub: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(&self.cgroup)
            .join(sub)
    }

    /// Starts a daemon; its stdout+stderr go to `<dir>/<name>.log`. Waits until `ready` holds
    /// (checked every 20 ms, 30 s at most) and panics with the log if it never does.
    pub fn start_daemon(&mut self, name: &str, cmd: &mut Command, ready: impl Fn() -> bool) {
        let log = self.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("daemon log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup log fd"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.daemons.push(Daemon {
            name: name.into(),
            child,
            log,
        });
        let start = Instant::now();
        while !ready() {
            let d = self.daemons.last_mut().expect("just pushed");
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("{name} exited with {st} while starting:\n{}", self.logs());
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("{name} not ready after 30 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{name} ready in {:?}", start.elapsed());
    }

    /// The last 25 lines of each daemon's log.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for d in &self.daemons {
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            s.push_str(&format!(
                "--- {} log (tail) ---\n{}\n",
                d.name,
                tail.join("\n")
            ));
        }
        s
    }

    fn stop_daemons(&mut self) {
        // Newest first: dockerd before the containerd it uses.
        while let Some(mut d) = self.daemons.pop() {
            let pid = Pid::from_raw(d.child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let start = Instant::now();
            loop {
                match d.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if start.elapsed() > Duration::from_secs(15) => {
                        eprintln!("{} ignored SIGTERM for 15 s: SIGKILL", d.name);
                        let _ = d.child.kill();
                        let _ = d.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// SIGKILLs processes whose command line names the temp dir (shims, conmon), by PID.
    fn kill_strays(&self) {
        let needle = self.path().to_string_lossy().into_owned();
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }

    /// Kills what is left in the cgroup parent and removes its cgroups, deepest first.
    fn remove_cgroups(&self) {
        let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for c in ctrls.flatten() {
            let top = c.path().join(&self.cgroup);
            if top.is_dir() {
                remove_cgroup_tree(&top);
            }
        }
    }

    /// Detaches every mount at or below the temp dir, deepest first.
    fn unmount_all(&self) {
        let root = self.path().to_string_lossy().into_owned();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mountinfo)
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            if let Err(e) = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("umount {p}: {e}");
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.stop_daemons();
        self.kill_strays();
        self.remove_cgroups();
        self.unmount_all();
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("cgroup {} still busy: left behind", dir.display());
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The current hard limit of `res` (root here can't raise it: no CAP_SYS_RESOURCE).
pub fn hard_limit(res: nix::sys::resource::Resource) -> u64 {
    nix::sys::resource::getrlimit(res).expect("getrlimit").1
}

/// Calls `f` every 50 ms until it returns `Some`, for 10 s at most.
pub fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a cgroup file as a trimmed string.
pub fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Starts a private containerd (CRI and the unused snapshotters off; root, state, sockets and its
/// `opt` dir all in the scratch dir) and returns its gRPC socket.
pub fn start_containerd(s: &mut Scratch) -> PathBuf {
    let d = s.path().join("ctd");
    std::fs::create_dir_all(&d).expect("mkdir containerd dir");
    let sock = d.join("c.sock");
    let conf = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{dir}/debug.sock"
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"#,
        root = d.join("root").display(),
        state = d.join("state").display(),
        sock = sock.display(),
        dir = d.display(),
    );
    std::fs::write(d.join("config.toml"), conf).expect("write containerd config");
    let probe = sock.clone();
    s.start_daemon(
        "containerd",
        Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml")),
        move || {
            probe.exists()
                && Command::new("ctr")
                    .arg("-a")
                    .arg(&probe)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|st| st.success())
        },
    );
    sock
}

/// Flags (podman and docker spell them alike) that exercise much of the OCI config an engine
/// generates: user, read-only rootfs + tmpfs, capabilities, a read-only bind mount of
/// `<vol>` (holding `f` = "data"), cwd, env, hostname, rlimits, sysctl, /dev/shm size,
/// oom_score_adj, no_new_privs and an init process. Pair with [`PROBE`] and [`probe_expected`].
pub fn probe_flags(vol: &Path) -> Vec<String> {
    std::fs::create_dir_all(vol).expect("mkdir vol");
    std::fs::write(vol.join("f"), "data\n").expect("write vol/f");
    let v = format!("{}:/vol:ro", vol.display());
    [
        "--user",
        "65534:65534",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_RAW",
        "-v",
        &v,
        "-w",
        "/tmp",
        "-e",
        "FOO=bar",
        "--hostname",
        "hh",
        "--ulimit",
        "nofile=100:200",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--shm-size",
        "8m",
        "--oom-score-adj",
        "500",
        "--security-opt",
        "no-new-privileges",
        "--init",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The shell script run with [`probe_flags`]: one line per property.
pub const PROBE: &str = "id -u; pwd; echo $FOO; hostname; cat /vol/f; \
    touch /vol/g 2>/dev/null || echo vol-ro; touch /x 2>/dev/null || echo root-ro; \
    touch /scratch/y && echo tmpfs-rw; grep CapBnd /proc/self/status; ulimit -n; ulimit -Hn; \
    cat /proc/sys/net/ipv4/ip_forward; df -k /dev/shm | awk 'NR==2{print $2}'; \
    cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status; \
    tr '\\0' ' ' < /proc/1/cmdline | cut -d' ' -f1";

/// What [`PROBE`] prints when every flag took effect; `init` is the engine's init binary.
pub fn probe_expected(init: &str) -> String {
    format!(
        "65534\n/tmp\nbar\nhh\ndata\nvol-ro\nroot-ro\ntmpfs-rw\nCapBnd:\t0000000000002000\n\
         100\n200\n1\n8192\n500\nNoNewPrivs:\t1\n{init}\n"
    )
}
