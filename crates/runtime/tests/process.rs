//! `process::apply_process` for real, in a child process that then execs a shell reporting what
//! the exec'd program got (/proc/self/status, stat, ulimit, oom_score_adj). This test binary
//! re-executes itself with `BERTH_PROCESS_PROBE=<case>` and runs only `probe_entry`.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::process::{self, ProcessError};
use oci_spec::runtime::{Linux, PosixRlimit, Process};

const PROBE_ENV: &str = "BERTH_PROCESS_PROBE";

fn probe(case: &str) -> Output {
    probe_under(&[], case)
}

/// Runs the probe under `wrapper` (e.g. `unshare --user --map-root-user`).
fn probe_under(wrapper: &[&str], case: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = cmd
        .args([
            "--exact",
            "probe_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(PROBE_ENV, case)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("probe output")
}

/// The value of `key:` in the probe's output (a /proc/self/status line or a RESULT line).
fn field(out: &Output, key: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {key:?} in probe output: {out:?}"))
}

fn report_and_exec(script: &str) -> ! {
    let err = Command::new("/bin/sh").args(["-c", script]).exec();
    panic!("exec /bin/sh: {err}");
}

const REPORT: &str = "cat /proc/self/status; \
    echo \"STAT: $(cut -d' ' -f19,41 /proc/self/stat)\"; \
    echo \"NOFILE: $(ulimit -n) $(ulimit -Hn)\"; \
    echo \"OOM: $(cat /proc/self/oom_score_adj)\"";

/// The child side: never returns when a probe case is set.
#[test]
fn probe_entry() {
    let Ok(case) = std::env::var(PROBE_ENV) else {
        return;
    };
    match case.as_str() {
        "full" => {
            let p: Process = serde_json::from_value(serde_json::json!({
                "cwd": "/",
                "args": ["sh"],
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [2000, 2001], "umask": 0o027},
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_KILL"],
                    "permitted": ["CAP_CHOWN", "CAP_KILL"],
                    "effective": ["CAP_KILL"],
                    "inheritable": ["CAP_KILL"],
                    "ambient": ["CAP_KILL"]
                },
                "rlimits": [
                    {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
                ],
                "noNewPrivileges": true,
                "oomScoreAdj": 500,
                "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6},
                "scheduler": {"policy": "SCHED_BATCH", "nice": 3}
            }))
            .expect("process json");
            let linux: Linux = serde_json::from_value(serde_json::json!({
                "personality": {"domain": "LINUX"},
                "seccomp": {
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
                }
            }))
            .expect("linux json");
            let prepared = process::apply_process(&p, Some(&linux), None).expect("apply_process");
            println!(
                "IOPRIO: {}",
                berth_sys::attr::ioprio_get().expect("ioprio_get")
            );
            println!("WARNINGS: {}", prepared.warnings.len());
            // noNewPrivileges: the filter was deferred to here.
            let before = std::fs::read_to_string("/proc/thread-self/status").expect("status");
            println!(
                "SECCOMP_BEFORE_FINALIZE: {}",
                before.contains("Seccomp:\t0")
            );
            let fd = prepared.finalize().expect("finalize");
            println!("NOTIFY: {}", fd.is_some());
            report_and_exec(REPORT);
        }
        "no-caps" => {
            let p: Process = serde_json::from_value(serde_json::json!({
                "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}
            }))
            .expect("process json");
            let prepared = process::apply_process(&p, None, None).expect("apply_process");
            println!(
                "NOTIFY: {}",
                prepared.finalize().expect("finalize").is_some()
            );
            report_and_exec(REPORT);
        }
        "seccomp-early" => {
            // Without noNewPrivileges the filter is loaded inside apply_process (before caps
            // are dropped), and no_new_privs stays off.
            let p: Process = serde_json::from_value(serde_json::json!({
                "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                                 "effective": ["CAP_KILL"]}
            }))
            .expect("process json");
            let linux: Linux = serde_json::from_value(serde_json::json!({
                "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
            }))
            .expect("linux json");
            let prepared = process::apply_process(&p, Some(&linux), None).expect("apply_process");
            let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
            println!("EARLY_FILTER: {}", status.contains("Seccomp:\t2"));
            println!(
                "NOTIFY: {}",
                prepared.finalize().expect("finalize").is_some()
            );
            report_and_exec(REPORT);
        }
        "linux32" => {
            let linux: Linux = serde_json::from_value(serde_json::json!({
                "personality": {"domain": "LINUX32"}
            }))
            .expect("linux json");
            let personality = linux.personality().as_ref().expect("personality");
            process::set_personality(personality).expect("set_personality");
            report_and_exec("echo \"MACHINE: $(uname -m)\"");
        }
        "rlimit-eperm" => {
            let (_, hard) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                    .expect("getrlimit");
            let want = hard.saturating_add(1);
            let rl: PosixRlimit = serde_json::from_value(serde_json::json!(
                {"type": "RLIMIT_NOFILE", "soft": want, "hard": want}
            ))
            .expect("rlimit json");
            match process::set_rlimits(&[rl]) {
                Err(e @ ProcessError::Rlimit { .. }) => {
                    let source = std::error::Error::source(&e).map(ToString::to_string);
                    println!("ERROR: {e}");
                    println!("SOURCE: {}", source.unwrap_or_default());
                }
                Err(e) => println!("ERROR: unexpected {e}"),
                Ok(()) => println!("ERROR: SKIP: this root has CAP_SYS_RESOURCE"),
            }
        }
        "userns-setgroups-denied" => {
            // Runs under `unshare --user --map-root-user`: a user namespace as rootless
            // engines make it, setgroups denied and only our own ids mapped.
            let user: oci_spec::runtime::User = serde_json::from_value(serde_json::json!(
                {"uid": 0, "gid": 0, "additionalGids": [0, 5]}
            ))
            .expect("user json");
            let warnings = process::apply_user(&user).expect("apply_user in userns");
            for w in warnings {
                println!("WARNING: {w}");
            }
        }
        other => panic!("unknown probe case {other}"),
    }
    std::process::exit(0);
}

#[test]
fn apply_process_sets_everything_the_execd_program_sees() {
    let out = probe("full");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(field(&out, "Uid"), "1000 1000 1000 1000");
    assert_eq!(field(&out, "Gid"), "1000 1000 1000 1000");
    assert_eq!(field(&out, "Groups"), "2000 2001");
    assert_eq!(field(&out, "Umask"), "0027");
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5. As uid 1000 only the ambient CAP_KILL survives exec.
    assert_eq!(field(&out, "CapBnd"), "0000000000000021");
    assert_eq!(field(&out, "CapInh"), "0000000000000020");
    assert_eq!(field(&out, "CapPrm"), "0000000000000020");
    assert_eq!(field(&out, "CapEff"), "0000000000000020");
    assert_eq!(field(&out, "CapAmb"), "0000000000000020");
    assert_eq!(field(&out, "NoNewPrivs"), "1");
    assert_eq!(field(&out, "SECCOMP_BEFORE_FINALIZE"), "true");
    assert_eq!(field(&out, "Seccomp"), "2");
    assert_eq!(field(&out, "NOTIFY"), "false");
    assert_eq!(field(&out, "STAT"), "3 3", "nice 3, SCHED_BATCH");
    assert_eq!(field(&out, "NOFILE"), "512 1024");
    assert_eq!(field(&out, "OOM"), "500");
    assert_eq!(field(&out, "IOPRIO"), ((2 << 13) | 6).to_string());
    assert_eq!(field(&out, "WARNINGS"), "0");
}

#[test]
fn absent_capabilities_mean_none_and_root_keeps_uid_0() {
    let out = probe("no-caps");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(field(&out, "Uid"), "0 0 0 0");
    assert_eq!(field(&out, "Groups"), "");
    assert_eq!(field(&out, "CapBnd"), "0000000000000000");
    assert_eq!(field(&out, "CapEff"), "0000000000000000");
    assert_eq!(field(&out, "NoNewPrivs"), "0");
    assert_eq!(field(&out, "Seccomp"), "0");
    assert_eq!(field(&out, "Umask"), "0022", "default umask");
}

#[test]
fn without_no_new_privs_seccomp_loads_early_and_returns_the_notify_fd() {
    let out = probe("seccomp-early");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(field(&out, "EARLY_FILTER"), "true");
    assert_eq!(field(&out, "NOTIFY"), "true");
    assert_eq!(field(&out, "NoNewPrivs"), "0");
    assert_eq!(field(&out, "Seccomp"), "2");
    assert_eq!(field(&out, "CapEff"), "0000000000000020");
}

#[test]
fn linux32_personality_changes_uname() {
    let out = probe("linux32");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(field(&out, "MACHINE"), "i686");
}

#[test]
fn raising_rlimit_without_cap_sys_resource_is_reported_clearly() {
    let out = probe("rlimit-eperm");
    assert!(out.status.success(), "{out:?}");
    let err = field(&out, "ERROR");
    if err.starts_with("SKIP:") {
        println!("{err}");
        return;
    }
    assert!(err.starts_with("setrlimit RLIMIT_NOFILE (soft "), "{err}");
    assert!(err.contains("needs CAP_SYS_RESOURCE"), "{err}");
    assert!(field(&out, "SOURCE").contains("EPERM"));
}

#[test]
fn setgroups_denied_in_a_user_namespace_is_a_warning() {
    let out = probe_under(
        &["unshare", "--user", "--map-root-user"],
        "userns-setgroups-denied",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        field(&out, "WARNING"),
        "additionalGids [0, 5] not applied: setgroups is denied in this user namespace \
         (/proc/self/setgroups is \"deny\")"
    );
}
