//! Privileged lifecycle tests of the berth-runtime binary with busybox bundles: run and exit
//! codes, create/start/state/kill/delete, list, ps, pause/resume, exec, console socket,
//! preserved fds.

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{can_run, uid, Bundle, Runtime};

#[test]
fn run_echo_prints_and_passes_exit_codes() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["echo", "hello from berth"]);
    let id = uid("echo");
    let out = rt.ok(&["run", "-b", b.path().to_str().expect("utf8"), &id]);
    assert_eq!(out, "hello from berth\n");
    assert!(!rt.root.path().join(&id).exists(), "run left its state dir");

    let b = Bundle::new(&["sh", "-c", "exit 42"]);
    let o = rt.run(&["run", "-b", b.path().to_str().expect("utf8"), &uid("exit")]);
    assert_eq!(o.status.code(), Some(42));

    // pid 1 can't SIGKILL itself: kill it from outside while `run` waits.
    let b = Bundle::new(&["sleep", "60"]);
    let id = uid("sig");
    let mut child = rt
        .cmd()
        .args(["run", "-b", b.path().to_str().expect("utf8"), &id])
        .spawn()
        .expect("spawn run");
    for _ in 0..200 {
        let o = rt.run(&["state", &id]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("running") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.ok(&["kill", &id, "KILL"]);
    let st = child.wait().expect("wait run");
    assert_eq!(st.code(), Some(137), "killed by SIGKILL -> 128+9");
}

#[test]
fn create_start_state_kill_delete() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "60"]);
    b.edit(|v| v["annotations"] = serde_json::json!({"org.berth.test": "yes"}));
    let id = uid("life");
    let pidfile = b.dir.path().join("pid");
    rt.detached(&[
        "create",
        "-b",
        b.path().to_str().expect("utf8"),
        "--pid-file",
        pidfile.to_str().expect("utf8"),
        &id,
    ]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.path().to_str().expect("utf8"));
    assert_eq!(st["annotations"]["org.berth.test"], "yes");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(st["pid"], pid);
    // a second create with the same id fails and leaves the first alone
    let o = rt
        .cmd()
        .args(["create", "-b", b.path().to_str().expect("utf8"), &id])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("create");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));

    rt.ok(&["start", &id]);
    assert_eq!(rt.state(&id)["status"], "running");
    let o = rt.run(&["start", &id]);
    assert!(
        !o.status.success(),
        "start of a running container must fail"
    );
    let o = rt.run(&["delete", &id]);
    assert!(
        !o.status.success(),
        "delete of a running container without --force must fail"
    );

    let list: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).expect("list json");
    assert_eq!(list[0]["id"], id.as_str());
    assert!(rt.ok(&["list", "-q"]).contains(&id));

    rt.ok(&["kill", &id, "KILL"]);
    for _ in 0..100 {
        if rt.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rt.state(&id)["status"], "stopped");
    rt.ok(&["delete", &id]);
    assert!(!rt.root.path().join(&id).exists());
    for d in common::cgroup_dirs(&id) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

#[test]
fn ps_pause_resume_exec_and_kill_all() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 60 & sleep 60"]);
    let id = uid("ops");
    rt.detached(&["run", "-d", "-b", b.path().to_str().expect("utf8"), &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    let pids: Vec<i32> =
        serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).expect("ps json");
    assert!(pids.len() >= 2, "ps saw {pids:?}");

    let out = rt.ok(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd",
    ]);
    assert_eq!(out, "bar\n/tmp\n");
    let o = rt.run(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let o = rt.run(&["exec", &id, "nosuch-cmd"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("exec \"nosuch-cmd\": no such file or directory"));
    let out = rt.ok(&["exec", "--user", "65534:65534", &id, "id"]);
    assert!(out.contains("uid=65534"), "{out}");

    rt.ok(&["pause", &id]);
    assert_eq!(rt.state(&id)["status"], "paused");
    assert!(
        !rt.run(&["exec", &id, "true"]).status.success(),
        "exec into paused must fail"
    );
    rt.ok(&["resume", &id]);
    assert_eq!(rt.state(&id)["status"], "running");

    let ev: serde_json::Value =
        serde_json::from_str(rt.ok(&["events", "--stats", &id]).trim()).expect("events json");
    assert_eq!(ev["type"], "stats");
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0);

    rt.ok(&["kill", "--all", &id, "KILL"]);
    for _ in 0..100 {
        if rt.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rt.state(&id)["status"], "stopped");
    rt.ok(&["delete", &id]);
}

#[test]
fn delete_force_kills_running_container() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "60"]);
    let id = uid("force");
    rt.detached(&["run", "-d", "-b", b.path().to_str().expect("utf8"), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    rt.ok(&["delete", "--force", &id]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn console_socket_receives_pty_master() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "tty; echo out-on-tty"]);
    b.edit(|v| v["process"]["terminal"] = serde_json::json!(true));
    let sock_path = b.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).expect("bind console socket");
    let id = uid("tty");
    let root = rt.root.path().to_path_buf();
    let bundle = b.path();
    let sp = sock_path.clone();
    let idc = id.clone();
    let runner = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .args(["--root"])
            .arg(&root)
            .args(["run", "-d", "--console-socket"])
            .arg(&sp)
            .arg("-b")
            .arg(&bundle)
            .arg(&idc)
            .output()
            .expect("run")
    });
    let (conn, _) = listener.accept().expect("accept");
    let (master, name) = berth_sys::fdpass::recv_fd(conn.as_fd()).expect("receive pty master");
    assert!(
        String::from_utf8_lossy(&name).starts_with("/dev/pts/"),
        "name {:?}",
        String::from_utf8_lossy(&name)
    );
    let o = runner.join().expect("join");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut f = std::fs::File::from(master);
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    // EIO once the slave side is closed.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
        if out.contains("out-on-tty") {
            break;
        }
    }
    assert!(out.contains("/dev/pts/"), "tty output: {out:?}");
    assert!(out.contains("out-on-tty"), "tty output: {out:?}");
}

#[test]
fn preserve_fds_passes_fd_3() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "cat <&3"]);
    let id = uid("pfd");
    let data = b.dir.path().join("data");
    std::fs::write(&data, "through fd 3\n").expect("write");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3<{} && exec {} --root {} run --preserve-fds 1 -b {} {}",
            data.display(),
            common::BIN,
            rt.root.path().display(),
            b.path().display(),
            id
        ))
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through fd 3\n");
}

#[test]
fn spec_and_features() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = std::process::Command::new(common::BIN)
        .args(["spec", "-b"])
        .arg(dir.path())
        .output()
        .expect("spec");
    assert!(o.status.success());
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(s["process"]["args"][0], "sh");
    let o = std::process::Command::new(common::BIN)
        .args(["spec", "-b"])
        .arg(dir.path())
        .output()
        .expect("spec");
    assert!(!o.status.success(), "spec must not overwrite config.json");
    let o = std::process::Command::new(common::BIN)
        .arg("features")
        .output()
        .expect("features");
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).expect("features json");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .any(|n| n == "time"));
    assert!(f["linux"]["seccomp"]["actions"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
}

#[test]
fn exec_process_json_detached_with_pid_file_and_update() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "60"]);
    let id = uid("pjson");
    rt.detached(&["run", "-d", "-b", b.path().to_str().expect("utf8"), &id]);
    let proc_json = b.dir.path().join("process.json");
    std::fs::write(
        &proc_json,
        serde_json::to_vec(&serde_json::json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "echo $MARK > /dev/shm/mark; sleep 30"],
            "env": ["PATH=/bin", "MARK=from-process-json"],
            "cwd": "/"
        }))
        .expect("json"),
    )
    .expect("write process.json");
    let pidfile = b.dir.path().join("exec.pid");
    rt.detached(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().expect("utf8"),
        "-p",
        proc_json.to_str().expect("utf8"),
        &id,
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "detached exec process is gone"
    );
    let mut mark = String::new();
    for _ in 0..100 {
        let o = rt.run(&["exec", &id, "cat", "/dev/shm/mark"]);
        mark = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() && !mark.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mark, "from-process-json\n");
    let pids: Vec<i32> =
        serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).expect("ps");
    assert!(
        pids.contains(&pid),
        "exec'd process not in the container's cgroup: {pids:?} vs {pid}"
    );

    rt.ok(&["update", "--pids-limit", "77", "--memory", "64m", &id]);
    let cg = std::path::Path::new("/sys/fs/cgroup");
    let pids_max = std::fs::read_to_string(cg.join("pids/berth").join(&id).join("pids.max"))
        .expect("pids.max");
    assert_eq!(pids_max.trim(), "77");
    let mem = std::fs::read_to_string(
        cg.join("memory/berth")
            .join(&id)
            .join("memory.limit_in_bytes"),
    )
    .expect("memory limit");
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn foreground_run_with_terminal_holds_the_pty_itself() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "tty; echo on-our-pty; exit 7"]);
    b.edit(|v| v["process"]["terminal"] = serde_json::json!(true));
    let o = rt.run(&["run", "-b", b.path().to_str().expect("utf8"), &uid("fgtty")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("on-our-pty"), "{out}");
    assert!(!rt
        .root
        .path()
        .read_dir()
        .expect("root")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".sock")));
}

#[test]
fn seccomp_notify_fd_reaches_the_listener() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "sleep 1; mkdir /dev/shm/x && echo mkdir-ok || echo mkdir-failed",
    ]);
    let sock = b.dir.path().join("agent.sock");
    b.edit(|v| {
        v["process"]["noNewPrivileges"] = serde_json::json!(false);
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock.to_str().expect("utf8"),
            "listenerMetadata": "berth-test",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let (fd, payload) = berth_sys::fdpass::recv_fd(conn.as_fd()).expect("receive notify fd");
        // closing the notify fd makes the notified syscalls fail (ENOSYS)
        drop(fd);
        String::from_utf8_lossy(&payload).into_owned()
    });
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf8"),
        &uid("notify"),
    ]);
    let payload = agent.join().expect("agent");
    let msg: serde_json::Value =
        serde_json::from_str(&payload).expect("container process state JSON");
    assert_eq!(msg["fds"][0], "seccompFd");
    assert_eq!(msg["metadata"], "berth-test");
    assert!(msg["pid"].as_i64().is_some_and(|p| p > 0));
    assert_eq!(out, "mkdir-failed\n");
}

/// `events` (streaming) reports an OOM kill as runc does, `{"type":"oom","id":..}`, and ends
/// when the container stops.
#[test]
fn events_report_oom_kills() {
    if !can_run() {
        return;
    }
    let id = uid("oom");
    // `tail` keeps the current "line" in memory, and /dev/zero has no newline: it grows until
    // the OOM killer ends it; the container's shell then exits
    let b = Bundle::new(&["sh", "-c", "sleep 0.5; tail /dev/zero; sleep 0.3"]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] =
            serde_json::json!({"limit": 16 << 20, "swap": 16 << 20});
    });
    let rt = Runtime::new();
    rt.detached(&["create", "--bundle", b.path().to_str().expect("utf-8"), &id]);
    let events = rt
        .cmd()
        .args(["events", "--interval", "1s", &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn events");
    rt.ok(&["start", &id]);
    let out = events.wait_with_output().expect("events output");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.first().map(|e| &e["type"]), Some(&"stats".into()));
    let ooms: Vec<_> = lines.iter().filter(|e| e["type"] == "oom").collect();
    assert_eq!(ooms.len(), 1, "{lines:?}");
    assert_eq!(ooms[0]["id"], id.as_str());
    rt.ok(&["delete", &id]);
}

/// An exec'd process is under the container's seccomp filter (compiled once in the runtime's
/// process through the cache, loaded by the exec child).
#[test]
fn exec_runs_under_the_containers_seccomp_filter() {
    if !can_run() {
        return;
    }
    let id = uid("secx");
    let b = Bundle::new(&["sleep", "30"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let rt = Runtime::new();
    rt.detached(&[
        "run",
        "-d",
        "--bundle",
        b.path().to_str().expect("utf-8"),
        &id,
    ]);
    let o = rt.run(&["exec", &id, "mkdir", "/tmp/denied"]);
    assert!(!o.status.success(), "mkdir must be refused by the filter");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(rt.ok(&["exec", &id, "echo", "ok"]), "ok\n");
    rt.ok(&["delete", "--force", &id]);
}
