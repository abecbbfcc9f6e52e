//! Real hooks (small shell scripts) driven through `hooks::run` / `hooks::run_all`: order, stdin
//! state, args/argv0/env, timeout kill, failure message, poststop running all, no fd leak.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_runtime::hooks::{self, HookError, HookKind};
use oci_spec::runtime::{Hook, State};

const STATE_JSON: &str = r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"k":"v"}}"#;

fn state() -> State {
    serde_json::from_str(STATE_JSON).expect("state")
}

fn hook(json: serde_json::Value) -> Hook {
    serde_json::from_value(json).expect("valid hook")
}

/// A hook `sh -c script` (argv0 "sh").
fn sh(script: &str) -> Hook {
    hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let hooks: Vec<Hook> = (0..3)
        .map(|i| {
            sh(&format!(
                "cat > {d}/stdin{i}; echo {i} >> {log}",
                d = dir.path().display(),
                log = log.display()
            ))
        })
        .collect();
    hooks::run(HookKind::Poststart, &hooks, &state()).expect("hooks succeed");
    assert_eq!(read(&log), "0\n1\n2\n");
    for i in 0..3 {
        let state: serde_json::Value =
            serde_json::from_str(&read(&dir.path().join(format!("stdin{i}")))).expect("json");
        assert_eq!(state["status"], "running", "poststart sees running");
        assert_eq!(state["id"], "c1");
        assert_eq!(state["pid"], 42);
        assert_eq!(state["annotations"]["k"], "v");
    }
}

#[test]
fn args_argv0_and_env_are_exactly_the_hooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let envfile = dir.path().join("env");
    let script = format!(
        "echo \"$0|$1|$FOO|$(head -c 11 /proc/$$/cmdline | tr '\\0' ' ')\" > {}; env > {}",
        out.display(),
        envfile.display()
    );
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["my-argv0", "-c", script, "zero", "one"],
        "env": ["FOO=bar baz", "PATH=/usr/bin:/bin"],
    }));
    hooks::run(HookKind::CreateRuntime, &[h], &state()).expect("hook succeeds");
    // argv[0] is args[0] (seen in cmdline), the rest are the arguments.
    assert_eq!(read(&out), "zero|one|bar baz|my-argv0 -c\n");
    // The runtime's own environment (cargo sets CARGO_PKG_NAME for tests) is not passed on.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok());
    let env = read(&envfile);
    assert!(env.contains("FOO=bar baz\n"), "{env}");
    assert!(!env.contains("CARGO_PKG_NAME"), "{env}");
}

#[test]
fn create_hooks_see_creating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("s");
    hooks::run(
        HookKind::CreateContainer,
        &[sh(&format!("cat > {}", out.display()))],
        &state(),
    )
    .expect("hook");
    let state: serde_json::Value = serde_json::from_str(&read(&out)).expect("json");
    assert_eq!(state["status"], "creating");
}

#[test]
fn timeout_kills_the_hook_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 30", pidfile.display())],
        "timeout": 1,
    }));
    let start = Instant::now();
    let err = hooks::run(HookKind::CreateRuntime, &[h], &state()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(err, HookError::Timeout { .. }));
    assert_eq!(
        err.to_string(),
        "hook \"/bin/sh\" (createRuntime #0) timed out after 1s"
    );
    let pid: i32 = read(&pidfile).trim().parse().expect("pid");
    // Killed and reaped: the pid no longer exists.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "hook {pid} still alive"
    );
}

#[test]
fn failure_reports_status_and_stderr_tail() {
    let h = sh("echo out; echo 'boom: disk on fire' >&2; exit 3");
    let err = hooks::run(HookKind::Prestart, &[h], &state()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "hook \"/bin/sh\" (prestart #0) exited with status 3: boom: disk on fire"
    );
}

#[test]
fn run_stops_at_the_first_failure_but_poststop_runs_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let l = log.display().to_string();
    let hooks = vec![
        sh(&format!("echo a >> {l}")),
        sh(&format!("echo b >> {l}; exit 1")),
        sh(&format!("echo c >> {l}")),
        sh("exit 2"),
    ];
    let err = hooks::run(HookKind::Poststart, &hooks, &state()).unwrap_err();
    assert!(
        err.to_string()
            .contains("(poststart #1) exited with status 1"),
        "{err}"
    );
    assert_eq!(read(&log), "a\nb\n");

    std::fs::remove_file(&log).expect("rm log");
    let errs = hooks::run_all_poststop(&hooks, &state());
    assert_eq!(read(&log), "a\nb\nc\n");
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "hook \"/bin/sh\" (poststop #1) exited with status 1",
            "hook \"/bin/sh\" (poststop #3) exited with status 2"
        ]
    );
}

#[test]
fn missing_hook_binary_is_named() {
    let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
    let err = hooks::run(HookKind::StartContainer, &[h], &state()).unwrap_err();
    assert!(matches!(err, HookError::Spawn { .. }));
    assert!(
        err.to_string()
            .starts_with("hook \"/nonexistent/hook\" (startContainer #0)"),
        "{err}"
    );
}

#[test]
fn zero_timeout_is_refused() {
    let h = hook(serde_json::json!({"path": "/bin/true", "timeout": 0}));
    let err = hooks::run(HookKind::Poststart, &[h], &state()).unwrap_err();
    assert!(
        matches!(err, HookError::InvalidTimeout { timeout: 0, .. }),
        "{err}"
    );
}

#[test]
fn no_runtime_fd_leaks_into_hooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("fds");
    let leaked = std::fs::File::open("/dev/null").expect("open");
    let fd = leaked.as_raw_fd();
    nix::fcntl::fcntl(
        &leaked,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .expect("clear cloexec");
    let script = format!(
        "if [ -e /proc/$$/fd/{fd} ]; then echo leaked; else echo clean; fi > {}",
        out.display()
    );
    hooks::run(HookKind::Poststart, &[sh(&script)], &state()).expect("hook");
    assert_eq!(read(&out).trim(), "clean");
    drop(leaked);
}

#[test]
fn hook_not_reading_stdin_and_background_children_do_not_hang() {
    // A big state (larger than a pipe buffer) to a hook that never reads it.
    let big: State = serde_json::from_value(
        serde_json::json!({"id": "c1", "annotations": {"x": "y".repeat(200_000)}}),
    )
    .expect("state");
    hooks::run(HookKind::Poststart, &[sh("exit 0")], &big).expect("hook ignoring stdin");
    // A hook that leaves a child holding its stdout/stderr open: return when the hook exits.
    let start = Instant::now();
    hooks::run(HookKind::Poststart, &[sh("sleep 3 & exit 0")], &state()).expect("hook");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        start.elapsed()
    );
}

#[test]
fn without_env_the_hook_inherits_the_runtime_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let pkg = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME for tests");
    hooks::run(
        HookKind::Poststart,
        &[sh(&format!("echo \"$CARGO_PKG_NAME\" > {}", out.display()))],
        &state(),
    )
    .expect("hook");
    assert_eq!(read(&out).trim(), pkg);
}

#[test]
fn timeout_also_kills_what_the_hook_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("sleep 30 & echo $! > {}; wait", pidfile.display())],
        "timeout": 1,
    }));
    let start = Instant::now();
    let err = hooks::run(HookKind::Poststart, &[h], &state()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(err, HookError::Timeout { .. }), "{err}");
    let pid: i32 = read(&pidfile).trim().parse().expect("pid");
    // The orphaned sleep is reaped by init/subreaper asynchronously: allow it a moment.
    let gone = (0..200).any(|_| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = !stat.is_empty() && !stat.contains(") Z ");
        if alive {
            std::thread::sleep(Duration::from_millis(10));
        }
        !alive
    });
    assert!(
        gone,
        "background child {pid} of the hook survived the timeout"
    );
}
