//! Seccomp filters loaded for real, each in a child process: this test binary re-executes itself
//! with `BERTH_SECCOMP_PROBE=<case>` and runs only `probe_entry`, which loads the filter and
//! reports what the syscalls it then makes observe. The parent checks the child's output/status.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::seccomp;
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::LinuxSeccomp;

const PROBE_ENV: &str = "BERTH_SECCOMP_PROBE";
const ARG_ENV: &str = "BERTH_SECCOMP_PROBE_ARG";

fn spec(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("valid seccomp json")
}

/// Runs `case` in a fresh process; kills it if it outlives `limit`.
fn probe(case: &str, arg: &str, limit: Duration) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "probe_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(PROBE_ENV, case)
        .env(ARG_ENV, arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("probe output")
}

/// The `RESULT ...` lines the probe printed.
fn results(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT ").map(str::to_string))
        .collect()
}

fn errno_of(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("errno{}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn mkdir_mode(dir: &std::path::Path, name: &str, mode: u32) -> String {
    use std::os::unix::fs::DirBuilderExt;
    let r = std::fs::DirBuilder::new().mode(mode).create(dir.join(name));
    errno_of(r)
}

/// podman's default profile (containers-common, /usr/share/containers/seccomp.json) turned into
/// an OCI `linux.seccomp` the way an engine does for a container without extra capabilities on
/// amd64: `archMap` -> architectures, rules included unless they need a capability or another
/// arch. `None` when the file isn't installed.
fn containers_profile_as_oci() -> Option<LinuxSeccomp> {
    let text = std::fs::read_to_string("/usr/share/containers/seccomp.json").ok()?;
    let profile: serde_json::Value = serde_json::from_str(&text).expect("profile json");
    let mut archs = Vec::new();
    for entry in profile["archMap"].as_array().into_iter().flatten() {
        if entry["architecture"] == "SCMP_ARCH_X86_64" {
            archs.push(entry["architecture"].clone());
            archs.extend(
                entry["subArchitectures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    let mut syscalls = Vec::new();
    for rule in profile["syscalls"].as_array().into_iter().flatten() {
        let inc = &rule["includes"];
        let needs_caps = inc["caps"].as_array().is_some_and(|c| !c.is_empty());
        let other_arch = inc["arches"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && !a.iter().any(|x| x == "amd64"));
        if needs_caps || other_arch {
            continue;
        }
        let mut r = serde_json::json!({"names": rule["names"], "action": rule["action"]});
        if let Some(args) = rule["args"].as_array().filter(|a| !a.is_empty()) {
            r["args"] = serde_json::Value::Array(args.clone());
        }
        if let Some(errno) = rule["errnoRet"].as_u64() {
            r["errnoRet"] = errno.into();
        }
        syscalls.push(r);
    }
    Some(spec(serde_json::json!({
        "defaultAction": profile["defaultAction"],
        "defaultErrnoRet": profile["defaultErrnoRet"],
        "architectures": archs,
        "syscalls": syscalls,
    })))
}

/// The child side: never returns when a probe case is set.
#[test]
fn probe_entry() {
    let Ok(case) = std::env::var(PROBE_ENV) else {
        return;
    };
    let arg = std::env::var(ARG_ENV).unwrap_or_default();
    match case.as_str() {
        "errno-mkdir" => {
            let dir = tempfile::tempdir().expect("tempdir");
            let filter = spec(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat", "not_a_syscall"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
                ]
            }));
            let fd = seccomp::load(&filter).expect("load");
            println!("RESULT notify={}", fd.is_some());
            println!("RESULT mkdir={}", mkdir_mode(dir.path(), "a", 0o755));
            println!(
                "RESULT getcwd={}",
                errno_of(std::env::current_dir().map(|_| ()))
            );
        }
        "args" => {
            let dir = tempfile::tempdir().expect("tempdir");
            // mkdir(path, mode) has mode at index 1, mkdirat(dfd, path, mode) at index 2.
            // Sticky-bit modes (masked 0o1000 == 0o1000) get EACCES; modes 0o700 or 0o711 get
            // EROFS (same index twice: OR); everything else is allowed.
            let filter = spec(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                     "args": [{"index": 1, "value": 0o1000, "valueTwo": 0o1000, "op": "SCMP_CMP_MASKED_EQ"}]},
                    {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                     "args": [{"index": 2, "value": 0o1000, "valueTwo": 0o1000, "op": "SCMP_CMP_MASKED_EQ"}]},
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30,
                     "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"},
                              {"index": 1, "value": 0o711, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30,
                     "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"},
                              {"index": 2, "value": 0o711, "op": "SCMP_CMP_EQ"}]}
                ]
            }));
            seccomp::load(&filter).expect("load");
            for (name, mode) in [
                ("plain", 0o755),
                ("sticky", 0o1777),
                ("m700", 0o700),
                ("m711", 0o711),
            ] {
                println!("RESULT {name}={}", mkdir_mode(dir.path(), name, mode));
            }
        }
        "kill" => {
            let filter = spec(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]
            }));
            seccomp::load(&filter).expect("load");
            println!("RESULT loaded");
            let _ = std::env::current_dir();
            println!("RESULT survived");
        }
        "default-errno" => {
            // An allowlist: default ERRNO(EOPNOTSUPP) via defaultErrnoRet; only what printing
            // and exiting need is allowed.
            let filter = spec(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 95,
                "syscalls": [{"names": ["write", "exit_group", "exit", "futex", "rt_sigprocmask",
                                        "rt_sigreturn", "sigaltstack", "munmap", "mmap", "brk",
                                        "madvise", "close", "sched_yield"],
                              "action": "SCMP_ACT_ALLOW"}]
            }));
            seccomp::load(&filter).expect("load");
            let r = nix::sys::utsname::uname()
                .map(|_| ())
                .map_err(std::io::Error::from);
            println!("RESULT uname={}", errno_of(r));
        }
        "notify" => {
            let filter = spec(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": arg,
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
            }));
            let fd = seccomp::load(&filter).expect("load").expect("notify fd");
            let state: oci_spec::runtime::State = serde_json::from_str(
                r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":7,"bundle":"/b"}"#,
            )
            .expect("state");
            seccomp::send_notify_fd(
                std::path::Path::new(&arg),
                fd.as_fd(),
                std::process::id() as i32,
                &state,
                Some("meta-data"),
            )
            .expect("send notify fd");
            drop(fd);
            // The agent (the parent test) answers this one.
            println!("RESULT getppid={}", nix::unistd::getppid());
        }
        "real-profile" => {
            let filter = containers_profile_as_oci().expect("profile present (checked by parent)");
            // Through the cache: the first probe run compiles (~10 ms), later ones read it.
            let cache = std::path::Path::new(&arg);
            let start = Instant::now();
            let program = seccomp::program_cached(&filter, cache).expect("compile profile");
            let prepare_time = start.elapsed();
            let start = Instant::now();
            program.load().expect("load profile");
            println!("RESULT compiled+loaded");
            eprintln!(
                "TIMING program {prepare_time:?}, load {:?}",
                start.elapsed()
            );
            let err = std::os::unix::process::CommandExt::exec(Command::new("/bin/sh").args([
                "-c",
                "echo RESULT hello; \
                 if chroot / true 2>/dev/null; then echo RESULT chroot-ok; \
                 else echo RESULT chroot-denied; fi",
            ]));
            panic!("exec: {err}");
        }
        other => panic!("unknown probe case {other}"),
    }
    std::process::exit(0);
}

#[test]
fn errno_action_and_errno_ret_are_seen_by_the_process() {
    let out = probe("errno-mkdir", "", Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        results(&out),
        ["notify=false", "mkdir=errno1", "getcwd=errno38"],
        "{out:?}"
    );
}

#[test]
fn argument_conditions_and_or_on_same_index() {
    let out = probe("args", "", Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        results(&out),
        ["plain=ok", "sticky=errno13", "m700=errno30", "m711=errno30"],
        "{out:?}"
    );
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let out = probe("kill", "", Duration::from_secs(20));
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
    assert_eq!(results(&out), ["loaded"], "{out:?}");
}

#[test]
fn default_errno_ret_applies_to_everything_not_allowed() {
    let out = probe("default-errno", "", Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(results(&out), ["uname=errno95"], "{out:?}");
}

#[test]
fn notify_fd_is_returned_sent_to_the_listener_and_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let path = sock.to_string_lossy().to_string();
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let agent = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking stream");
        let mut buf = vec![0u8; 65536];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .expect("recvmsg");
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(rights) = c {
                fds.extend(rights);
            }
        }
        let len = msg.bytes;
        let payload: serde_json::Value = serde_json::from_slice(&buf[..len]).expect("json payload");
        assert_eq!(fds.len(), 1, "one fd attached");
        // Own the received number (dup'ed close-on-exec, original closed).
        let notify = berth_sys::attr::adopt_raw_fd(fds[0]).expect("adopt received fd");
        // Wait (bounded) for the probe's getppid() and answer it with 4242.
        let mut pfd = [PollFd::new(notify.as_fd(), PollFlags::POLLIN)];
        let n = poll(&mut pfd, PollTimeout::from(20_000u16)).expect("poll notify fd");
        assert_eq!(n, 1, "no seccomp notification within 20s");
        let req = ScmpNotifReq::receive(notify.as_raw_fd()).expect("receive notification");
        ScmpNotifResp::new_val(req.id, 4242, ScmpNotifRespFlags::empty())
            .respond(notify.as_raw_fd())
            .expect("respond");
        payload
    });
    let out = probe("notify", &path, Duration::from_secs(20));
    let payload = agent.join().expect("agent thread");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(results(&out), ["getppid=4242"], "{out:?}");
    assert_eq!(payload["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(payload["metadata"], "meta-data");
    assert_eq!(payload["state"]["id"], "c1");
    assert_eq!(payload["ociVersion"], "1.2.0");
}

#[test]
fn a_real_engine_profile_compiles_loads_and_runs_a_shell() {
    if containers_profile_as_oci().is_none() {
        println!("SKIP: /usr/share/containers/seccomp.json (containers-common) is not installed");
        return;
    }
    let cache = tempfile::tempdir().expect("cache dir");
    let cache_arg = cache.path().to_string_lossy().to_string();
    let cold = probe("real-profile", &cache_arg, Duration::from_secs(30));
    let out = probe("real-profile", &cache_arg, Duration::from_secs(30));
    for o in [&cold, &out] {
        let timing = String::from_utf8_lossy(&o.stderr);
        println!(
            "{}",
            timing
                .lines()
                .find(|l| l.starts_with("TIMING"))
                .unwrap_or("no timing")
        );
    }
    assert!(cold.status.success(), "{cold:?}");
    assert_eq!(results(&cold), results(&out));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        results(&out),
        // chroot needs CAP_SYS_CHROOT in that profile: the rule for it is left out, so the
        // profile's ERRNO(EPERM) rule for chroot applies although the probe runs as root.
        ["compiled+loaded", "hello", "chroot-denied"],
        "{out:?}"
    );
}
