//! berth-shim with real containers (privileged): busybox bundles run by berth-runtime under the
//! shim; logs, exit codes, rotation, attach with stdin, TTY resize, the `--no-start` handshake,
//! surviving the death of its parent, and a bad bundle leaving nothing behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_shim::client::{self, Attach, Config, LogDriver, Rotation, ShimStatus};
use berth_shim::protocol;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

/// berth-runtime, built (or found fresh) in the target dir this test binary was built in.
fn runtime_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
            return PathBuf::from(p);
        }
        let shim = Path::new(SHIM);
        let profile_dir = shim.parent().expect("shim binary has a dir");
        let target = profile_dir.parent().expect("profile dir has a parent");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "-q",
            "-p",
            "berth-runtime",
            "--bin",
            "berth-runtime",
        ])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo build -p berth-runtime");
        assert!(st.success(), "building berth-runtime failed");
        let bin = profile_dir.join("berth-runtime");
        assert!(bin.exists(), "berth-runtime not at {}", bin.display());
        bin
    })
}

fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() && !Path::new("/usr/bin/busybox").exists() {
        eprintln!("SKIP: busybox-static not installed");
        return false;
    }
    true
}

/// One container under a shim: bundle, runtime root, state dir; Drop removes the container,
/// the shim and the dirs even when the test failed half way.
struct Fixture {
    _tmp: tempfile::TempDir,
    bundle: PathBuf,
    root: PathBuf,
    state: PathBuf,
    id: String,
}

impl Fixture {
    fn new(args: &[&str]) -> Fixture {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("bundle");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-bundle.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&bundle)
            .arg("--")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("run make-busybox-bundle.sh");
        assert!(st.success(), "make-busybox-bundle.sh failed");
        let root = tmp.path().join("root");
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&root).expect("mkdir root");
        let f = Fixture {
            _tmp: tmp,
            bundle,
            root,
            state,
            id: format!("shimtest-{}-{n}", std::process::id()),
        };
        // `runc spec` asks for ambient capabilities that are not inheritable; berth-runtime
        // warns about that on the container's stderr, which would land in every log
        f.edit_config(|v| {
            if let Some(c) = v["process"]["capabilities"].as_object_mut() {
                c.remove("ambient");
            }
        });
        f
    }

    fn edit_config(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let p = self.bundle.join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).expect("read config")).expect("json");
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).expect("json")).expect("write");
    }

    fn log_path(&self) -> PathBuf {
        self.state.join("c.log")
    }

    fn config(&self) -> Config {
        Config {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            runtime: runtime_bin().to_owned(),
            runtime_root: self.root.clone(),
            state_dir: self.state.clone(),
            tty: false,
            stdin: false,
            log: LogDriver::JsonFile {
                path: self.log_path(),
                rotation: Rotation {
                    max_size: None,
                    max_files: 1,
                },
            },
            runtime_args: Vec::new(),
            no_start: false,
        }
    }

    fn runtime(&self, args: &[&str]) -> std::process::Output {
        Command::new(runtime_bin())
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth-runtime")
    }

    fn wait(&self) -> client::ExitRecord {
        client::wait_exit(&self.state, Some(Duration::from_secs(20))).expect("exit record")
    }

    /// JSON entries of one log file.
    fn entries(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .expect("read log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line is json"))
            .collect()
    }

    fn runtime_root_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .expect("read root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let pid = berth_shim::state::load_pid(&self.state).ok().flatten();
        let _ = self.runtime(&["delete", "--force", &self.id]);
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(3);
            while client::is_shim(pid, &self.state) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if client::is_shim(pid, &self.state) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Pids of live berth-shim processes serving `state`.
fn shims_for(state: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| client::is_shim(*pid, state))
        .collect()
}

#[test]
fn output_goes_to_json_log_with_streams_and_exit_code() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["sh", "-c", "echo out; echo err >&2; printf partial; exit 7"]);
    client::spawn(Path::new(SHIM), &f.config()).expect("spawn shim");
    let exit = f.wait();
    assert_eq!(exit.exit_code, 7);
    assert_eq!(exit.signal, None);
    assert!(exit.started_at.is_some());
    let mut e = Fixture::entries(&f.log_path());
    // stdout and stderr are separate pipes: order between them is not defined
    e.sort_by_key(|v| v["log"].as_str().map(str::to_owned));
    let got: Vec<(String, String)> = e
        .iter()
        .map(|v| {
            (
                v["log"].as_str().expect("log").to_owned(),
                v["stream"].as_str().expect("stream").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("err\n".into(), "stderr".into()),
            ("out\n".into(), "stdout".into()),
            ("partial".into(), "stdout".into()),
        ]
    );
    for v in &e {
        let t = v["time"].as_str().expect("time");
        assert!(t.ends_with('Z') && t.len() >= 20, "time {t}");
    }
    // the container is deleted, the shim gone, its sockets and pid file removed
    assert!(f.runtime_root_entries().is_empty());
    assert!(shims_for(&f.state).is_empty());
    assert!(!f.state.join("shim.pid").exists());
    assert!(!f.state.join("attach.sock").exists());
    assert!(matches!(
        client::status(&f.state).expect("status"),
        ShimStatus::Exited(_)
    ));
}

#[test]
fn sigkill_is_recorded_as_signal() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["sleep", "100"]);
    client::spawn(Path::new(SHIM), &f.config()).expect("spawn shim");
    assert!(matches!(
        client::status(&f.state).expect("status"),
        ShimStatus::Running { .. }
    ));
    let o = f.runtime(&["kill", &f.id, "KILL"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exit = f.wait();
    assert_eq!(exit.exit_code, 137);
    assert_eq!(exit.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(exit.oom_killed, Some(false));
}

#[test]
fn container_gets_a_clean_signal_state() {
    if !can_run() {
        return;
    }
    // the shim blocks SIGCHLD: the mask must not leak into the container
    let f = Fixture::new(&["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
    client::spawn(Path::new(SHIM), &f.config()).expect("spawn shim");
    assert_eq!(f.wait().exit_code, 0);
    let e = Fixture::entries(&f.log_path());
    assert_eq!(e.len(), 2, "{e:?}");
    let field = |name: &str| -> u64 {
        let line = e
            .iter()
            .filter_map(|v| v["log"].as_str())
            .find(|l| l.starts_with(name))
            .expect("status line");
        u64::from_str_radix(line[name.len()..].trim(), 16).expect("hex mask")
    };
    assert_eq!(field("SigBlk:"), 0);
    // known, not the shim's doing: SIGPIPE (13) is ignored by berth-runtime's Rust std and
    // inherited by its init; 32 and 33 come from glibc's posix_spawn of the runtime (std's
    // Command). Both vanish once the runtime's init resets dispositions before execve.
    let known = (1u64 << 12) | (1 << 31) | (1 << 32);
    assert_eq!(field("SigIgn:") & !known, 0, "unexpected ignored signals");
}

#[test]
fn log_rotates_by_size_and_count_keeping_the_newest_intact() {
    if !can_run() {
        return;
    }
    // 30000 numbered lines of 100 bytes: 3 MB of output, ~5 MB of json
    let f = Fixture::new(&[
        "awk",
        "BEGIN{for(i=1;i<=30000;i++) printf \"%06d %093d\\n\", i, 0}",
    ]);
    let mut cfg = f.config();
    cfg.log = LogDriver::JsonFile {
        path: f.log_path(),
        rotation: Rotation {
            max_size: Some(1 << 20),
            max_files: 3,
        },
    };
    client::spawn(Path::new(SHIM), &cfg).expect("spawn shim");
    assert_eq!(f.wait().exit_code, 0);
    let files = [
        berth_shim::logfile::numbered(&f.log_path(), 2),
        berth_shim::logfile::numbered(&f.log_path(), 1),
        f.log_path(),
    ];
    assert!(!berth_shim::logfile::numbered(&f.log_path(), 3).exists());
    let mut numbers = Vec::new();
    for p in &files {
        let len = std::fs::metadata(p).expect("log file exists").len();
        assert!(len <= (1 << 20) + 200, "{} is {len} bytes", p.display());
        for v in Fixture::entries(p) {
            let line = v["log"].as_str().expect("log");
            assert_eq!(line.len(), 101, "{line:?}");
            numbers.push(line[..6].parse::<u32>().expect("number"));
        }
    }
    // the kept files hold one unbroken run of lines ending with the last one
    assert_eq!(numbers.last(), Some(&30000));
    for w in numbers.windows(2) {
        assert_eq!(w[0] + 1, w[1], "gap or reorder in the kept logs");
    }
    assert!(numbers.len() > 10_000, "only {} lines kept", numbers.len());
}

#[test]
fn attach_gets_live_output_and_stdin_round_trips() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["cat"]);
    let mut cfg = f.config();
    cfg.stdin = true;
    client::spawn(Path::new(SHIM), &cfg).expect("spawn shim");
    assert_eq!(
        client::version(&f.state).expect("version"),
        protocol::VERSION
    );
    let mut a = Attach::connect(&f.state).expect("attach");
    let mut b = Attach::connect(&f.state).expect("second attach");
    a.socket()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    a.write_stdin(b"ping\n").expect("stdin");
    let fr = a.read_frame().expect("read").expect("a frame");
    assert_eq!(fr.kind, protocol::OUT_STDOUT);
    assert_eq!(fr.payload, b"ping\n");
    // every client sees the output
    let fr = b.read_frame().expect("read").expect("a frame");
    assert_eq!(fr.payload, b"ping\n");
    a.close_stdin().expect("close stdin");
    assert_eq!(f.wait().exit_code, 0);
    // the stream ends once the shim is done
    assert_eq!(a.read_frame().expect("read"), None);
    let e = Fixture::entries(&f.log_path());
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["log"], "ping\n");
}

#[test]
fn slow_attach_client_does_not_block_the_container() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&[
        "sh",
        "-c",
        "sleep 0.3; head -c 8000000 /dev/zero | tr '\\0' x",
    ]);
    client::spawn(Path::new(SHIM), &f.config()).expect("spawn shim");
    // connected, never read
    let slow = Attach::connect(&f.state).expect("attach");
    let started = Instant::now();
    let exit = f.wait();
    assert_eq!(exit.exit_code, 0);
    assert!(started.elapsed() < Duration::from_secs(15));
    // all 8 MB reached the log (as 16 KiB partial entries)
    let total: usize = Fixture::entries(&f.log_path())
        .iter()
        .map(|v| v["log"].as_str().map_or(0, str::len))
        .sum();
    assert_eq!(total, 8_000_000);
    // the slow client got a bounded prefix and then the end of its stream
    let mut s = slow.socket();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0usize;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 4_000_000, "slow client was sent {got} bytes");
}

#[test]
fn tty_mode_resizes_the_terminal() {
    if !can_run() {
        return;
    }
    let mut f = Fixture::new(&["sh", "-c", "read x; stty size"]);
    f.edit_config(|v| v["process"]["terminal"] = true.into());
    // a state dir so deep that its sockets exceed sun_path: reached through /proc/PID/fd/N
    f.state = f.state.join("d".repeat(60)).join("e".repeat(60));
    assert!(f.state.join("console.sock").as_os_str().len() > 108);
    let mut cfg = f.config();
    cfg.tty = true;
    cfg.stdin = true;
    client::spawn(Path::new(SHIM), &cfg).expect("spawn shim");
    let mut a = Attach::connect(&f.state).expect("attach");
    a.socket()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    a.resize(33, 101).expect("resize");
    a.write_stdin(b"go\n").expect("stdin");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("33 101") {
        let n = a.read_raw(&mut buf).expect("read tty");
        assert!(
            n > 0,
            "tty output ended early: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(f.wait().exit_code, 0);
    let log: String = Fixture::entries(&f.log_path())
        .iter()
        .filter_map(|v| v["log"].as_str().map(str::to_owned))
        .collect();
    assert!(log.contains("33 101\r\n"), "{log:?}");
}

#[test]
fn no_start_lets_a_client_attach_before_the_first_output() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["echo", "first words"]);
    let mut cfg = f.config();
    cfg.no_start = true;
    client::spawn(Path::new(SHIM), &cfg).expect("spawn shim");
    let st = f.runtime(&["state", &f.id]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("state json");
    assert_eq!(st["status"], "created");
    let mut a = Attach::connect(&f.state).expect("attach");
    client::start(&f.state).expect("start");
    let fr = a.read_frame().expect("read").expect("frame");
    assert_eq!(fr.payload, b"first words\n");
    assert_eq!(f.wait().exit_code, 0);
    let again = client::start(&f.state);
    assert!(again.is_err());
}

#[test]
fn shim_survives_the_death_of_its_parent() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["sh", "-c", "sleep 1; echo done; exit 3"]);
    let mut args = vec![SHIM.to_owned()];
    args.extend(
        f.config()
            .to_args()
            .into_iter()
            .map(|a| a.into_string().expect("utf-8 args")),
    );
    // a parent that spawns the shim, reports, then waits to be killed
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg("\"$@\" && echo started && exec sleep 100")
        .arg("sh")
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn parent");
    let mut line = [0u8; 8];
    parent
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut line)
        .expect("parent reports");
    assert_eq!(&line, b"started\n");
    parent.kill().expect("SIGKILL parent");
    parent.wait().expect("reap parent");
    let pid = berth_shim::state::load_pid(&f.state)
        .expect("pid file")
        .expect("shim pid");
    assert!(client::is_shim(pid, &f.state));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    // own session (setsid), not in the parent's
    assert_eq!(fields[3], pid.to_string(), "session id");
    let exit = f.wait();
    assert_eq!(exit.exit_code, 3);
    let e = Fixture::entries(&f.log_path());
    assert_eq!(e[0]["log"], "done\n");
}

#[test]
fn bad_bundle_fails_with_the_runtime_message_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["nosuch"]);
    let err = client::spawn(Path::new(SHIM), &f.config()).expect_err("spawn must fail");
    let msg = err.to_string();
    let first = msg.lines().next().expect("a message");
    assert!(
        first.contains("exec \"nosuch\": no such file or directory"),
        "{msg}"
    );
    assert!(!first.starts_with("berth-shim"), "{msg}");
    assert!(f.runtime_root_entries().is_empty());
    assert!(shims_for(&f.state).is_empty());
    let left: Vec<_> = std::fs::read_dir(&f.state)
        .expect("state dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in the state dir: {left:?}");
    assert_eq!(client::status(&f.state).expect("status"), ShimStatus::Lost);
}

#[test]
fn relative_paths_work_although_the_monitor_leaves_its_cwd() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["echo", "relative"]);
    let base = f.bundle.parent().expect("fixture dir").to_owned();
    let out = Command::new(SHIM)
        .current_dir(&base)
        .args([
            "--id",
            &f.id,
            "--bundle",
            "bundle",
            "--runtime-root",
            "root",
        ])
        .args(["--log-path", "state/c.log", "--state-dir"])
        .arg(&f.state)
        .arg("--runtime")
        .arg(runtime_bin())
        .output()
        .expect("run shim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.wait().exit_code, 0);
    let e = Fixture::entries(&f.log_path());
    assert_eq!(e[0]["log"], "relative\n");
}

#[test]
fn oom_kill_is_recorded() {
    if !can_run() {
        return;
    }
    // the shell itself grows past a 32 MiB limit (no swap here; with swap, memsw would decide)
    let f = Fixture::new(&[
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived",
    ]);
    f.edit_config(|v| v["linux"]["resources"]["memory"] = serde_json::json!({"limit": 32 << 20}));
    client::spawn(Path::new(SHIM), &f.config()).expect("spawn shim");
    let exit = f.wait();
    assert_eq!(exit.exit_code, 137);
    assert_eq!(exit.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(exit.oom_killed, Some(true));
}

#[test]
fn log_driver_none_writes_no_file_and_still_serves_attach() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["sh", "-c", "echo to-attach; echo oops >&2"]);
    let mut cfg = f.config();
    cfg.log = LogDriver::None;
    cfg.no_start = true;
    client::spawn(Path::new(SHIM), &cfg).expect("spawn shim");
    let mut a = Attach::connect(&f.state).expect("attach");
    client::start(&f.state).expect("start");
    let mut got = Vec::new();
    while let Some(fr) = a.read_frame().expect("read") {
        got.push((fr.kind, fr.payload));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            (protocol::OUT_STDOUT, b"to-attach\n".to_vec()),
            (protocol::OUT_STDERR, b"oops\n".to_vec())
        ]
    );
    assert_eq!(f.wait().exit_code, 0);
    assert!(!f.log_path().exists());
}

/// Resident KiB of the mappings of `pid`'s executable (its code, rodata and data).
fn exe_resident_kib(pid: i32) -> u64 {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let exe = exe.to_string_lossy().into_owned();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut in_exe = false;
    let mut kib = 0;
    for l in smaps.lines() {
        let f: Vec<&str> = l.split_ascii_whitespace().collect();
        if f.first()
            .is_some_and(|a| a.contains('-') && !a.ends_with(':'))
        {
            in_exe = f.get(5) == Some(&exe.as_str());
        } else if in_exe && f.first() == Some(&"Rss:") {
            kib += f[1].parse::<u64>().expect("rss kib");
        }
    }
    kib
}

#[test]
fn an_idle_shim_gives_back_its_code_pages_and_keeps_serving() {
    if !can_run() {
        return;
    }
    let f = Fixture::new(&["cat"]);
    let mut cfg = f.config();
    cfg.stdin = true;
    client::spawn(Path::new(SHIM), &cfg).expect("spawn shim");
    let pid = berth_shim::state::load_pid(&f.state)
        .expect("shim.pid")
        .expect("a pid");
    let busy = exe_resident_kib(pid);
    // quiet for longer than the monitor's idle time (1 s after its last event; the machine
    // may be loaded, so allow a few seconds)
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut idle = busy;
    while idle * 2 >= busy && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        idle = exe_resident_kib(pid);
    }
    assert!(
        idle * 2 < busy,
        "resident code of the idle shim: {busy} KiB -> {idle} KiB"
    );
    // everything faults back in on use: output, the log, attach, the exit record
    let mut a = Attach::connect(&f.state).expect("attach");
    a.socket()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    a.write_stdin(b"after idle\n").expect("stdin");
    let fr = a.read_frame().expect("read").expect("a frame");
    assert_eq!(fr.payload, b"after idle\n");
    std::thread::sleep(Duration::from_millis(1500));
    a.write_stdin(b"again\n").expect("stdin");
    let fr = a.read_frame().expect("read").expect("a frame");
    assert_eq!(fr.payload, b"again\n");
    a.close_stdin().expect("close stdin");
    assert_eq!(f.wait().exit_code, 0);
    let e = Fixture::entries(&f.log_path());
    assert_eq!(e.len(), 2);
}
