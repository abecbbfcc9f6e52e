//! The parts of runc's command line that are not in the OCI runtime spec but that engines use
//! (containerd, podman, docker's shim): `exec`, `pause`/`resume`, `list`, `ps`, and a terminal
//! handed over a `--console-socket`.

mod common;

use berth_conformance::checks::process::cpu_set;
use common::*;
use serde_json::json;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn running_sleeper(rt: &Runtime, name: &str) -> (Bundle, String) {
    let b = Bundle::new(&["/bin/sleep", "300"]);
    b.write();
    let id = unique_id(name);
    ok(&rt.create(&id, &b, &[]), "create");
    ok(&rt.start(&id), "start");
    (b, id)
}

fn ns_of(pid: &str, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn exec() {
    // exec runs a process in the container: its pid namespace, its root, its hostname.
    let rt = Runtime::new();
    let (b, id) = running_sleeper(&rt, "exec");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let out = rt.run(&[
        "exec",
        &id,
        "/bin/sh",
        "-c",
        "echo $$; head -1 /proc/self/mountinfo; hostname",
    ]);
    ok(&out, "exec");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "exec output: {text:?}");
    let pid: u32 = lines[0].parse().expect("the shell's pid");
    assert!(
        pid > 1 && pid < 100,
        "exec'd shell has pid {pid}: not in the container's pid namespace"
    );
    let root_line: Vec<&str> = lines[1].split(' ').collect();
    let want_root = host_fs_root(&b.rootfs()).expect("rootfs root");
    assert!(
        root_line.get(4) == Some(&"/") && root_line.get(3) == Some(&want_root.as_str()),
        "exec'd process does not see the container's root: {}",
        lines[1]
    );
    assert_eq!(
        lines[2], "berth-conformance",
        "exec'd process is not in the container's uts namespace"
    );
}

#[test]
fn exec_namespaces() {
    // The exec'd process is in the same namespaces as the container's init.
    let rt = Runtime::new();
    let (_b, id) = running_sleeper(&rt, "execns");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let pid = rt.state(&id).expect("state")["pid"]
        .as_i64()
        .expect("pid")
        .to_string();
    let kinds = ["pid", "net", "mnt", "ipc", "uts", "cgroup"];
    let script = format!(
        "for n in {}; do readlink /proc/self/ns/$n; done",
        kinds.join(" ")
    );
    let out = rt.run(&["exec", &id, "/bin/sh", "-c", &script]);
    ok(&out, "exec");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let got: Vec<&str> = text.lines().collect();
    let want: Vec<String> = kinds.iter().map(|n| ns_of(&pid, n)).collect();
    assert_eq!(
        got, want,
        "exec'd namespaces differ from the container's ({kinds:?})"
    );
}

#[test]
fn exec_exit_code() {
    let rt = Runtime::new();
    let (_b, id) = running_sleeper(&rt, "execcode");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let out = rt.run(&["exec", &id, "/bin/sh", "-c", "exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exec exit code; stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exec_process_json() {
    // exec --process takes a process spec: user, cwd, env and args from it.
    let rt = Runtime::new();
    let (b, id) = running_sleeper(&rt, "execjson");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let process = json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000 },
        "args": ["/bin/sh", "-c", "echo $(id -u):$(id -g):$(pwd):$BERTH_X"],
        "env": ["PATH=/bin", "BERTH_X=yes"],
        "cwd": "/tmp"
    });
    let path = b.dir().join("process.json");
    fs::write(&path, process.to_string()).expect("write process.json");
    let out = rt.run(&["exec", "--process", path.to_str().expect("utf8"), &id]);
    ok(&out, "exec --process");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1000:1000:/tmp:yes"
    );
}

#[test]
fn exec_cpu_affinity() {
    // process.execCPUAffinity applies to exec'd processes (not to the init): `final` is the
    // affinity after joining the container's cgroup.
    let rt = Runtime::new();
    let (b, id) = running_sleeper(&rt, "execaffinity");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let process = json!({
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": ["/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "execCPUAffinity": { "initial": "0", "final": "0" }
    });
    let path = b.dir().join("process.json");
    fs::write(&path, process.to_string()).expect("write process.json");
    let out = rt.run(&["exec", "--process", path.to_str().expect("utf8"), &id]);
    ok(&out, "exec --process with execCPUAffinity");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let got = text.split_whitespace().nth(1).unwrap_or("");
    assert_eq!(
        cpu_set(got),
        cpu_set("0"),
        "exec'd process affinity: {text:?}"
    );
}

#[test]
fn exec_stopped_fails() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]);
    b.write();
    let id = unique_id("execstopped");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", WAIT).expect("true stops");
    let out = rt.run(&["exec", &id, "/bin/true"]);
    assert!(
        !out.status.success(),
        "exec into a stopped container succeeded"
    );
}

#[test]
fn pause_resume() {
    let rt = Runtime::new();
    let (_b, id) = running_sleeper(&rt, "pause");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.run(&["pause", &id]), "pause");
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    let out = rt.run(&["exec", &id, "/bin/true"]);
    assert!(
        !out.status.success(),
        "exec into a paused container succeeded"
    );
    ok(&rt.run(&["resume", &id]), "resume");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    // A paused container can be killed and deleted.
    ok(&rt.run(&["pause", &id]), "pause again");
    ok(
        &rt.delete(&id, true),
        "delete --force of a paused container",
    );
    assert!(
        rt.state(&id).is_err(),
        "paused container survived delete --force"
    );
}

#[test]
fn list() {
    let rt = Runtime::new();
    let (_b, id) = running_sleeper(&rt, "list");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let out = rt.run(&["list", "--format", "json"]);
    ok(&out, "list --format json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list output is JSON");
    let entry = v
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == json!(id)))
        .unwrap_or_else(|| panic!("{id} not listed: {v}"));
    assert_eq!(entry["status"], "running");
}

#[test]
fn ps() {
    let rt = Runtime::new();
    let (_b, id) = running_sleeper(&rt, "ps");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let out = rt.run(&["ps", "--format", "json", &id]);
    ok(&out, "ps --format json");
    let pids: Vec<i64> =
        serde_json::from_slice(&out.stdout).expect("ps output is a JSON list of pids");
    assert!(pids.contains(&pid), "ps lists {pids:?}, not the init {pid}");
}

/// Receives the pty master a runtime sends over the console socket.
fn receive_fd(listener: &UnixListener) -> OwnedFd {
    let (stream, _) = listener
        .accept()
        .expect("runtime connects to the console socket");
    let (fd, _payload) =
        berth_sys::fdpass::recv_fd(stream.as_fd()).expect("an fd over the console socket");
    fd
}

#[test]
fn process_terminal() {
    // terminal: true with --console-socket: the runtime sends the pty master; the checker's TAP
    // comes through it and checks stdio is the controlling terminal and /dev/console exists.
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.set(&["process", "terminal"], json!(true));
    b.write();
    let sock = b.dir().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let id = unique_id("terminal");
    let receiver = std::thread::spawn(move || receive_fd(&listener));
    let out = rt.create(&id, &b, &["--console-socket", sock.to_str().expect("utf8")]);
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&out, "create --console-socket");
    let master = receiver.join().expect("console receiver");
    ok(&rt.start(&id), "start");
    let mut master = fs::File::from(master);
    let mut text = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the container's side is closed
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text).replace('\r', "");
    let report = parse_tap(&text);
    assert_tap(&report, &b);
    assert!(
        report.passed_containing("process.terminal"),
        "terminal not verified:\n{text}"
    );
    assert!(
        report.passed_containing("/dev/console"),
        "/dev/console not verified"
    );
}
