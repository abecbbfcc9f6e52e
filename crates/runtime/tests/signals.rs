//! The container's process starts with a clean signal state: no ignored signals and an empty
//! mask, whatever the runtime itself inherited (Rust ignores SIGPIPE; a caller may ignore more).

mod common;

use std::os::unix::process::CommandExt;

use common::{can_run, uid, Bundle, Runtime};

fn status_field(out: &str, field: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {out:?}"));
    let hex = line.split_whitespace().nth(1).expect("mask value");
    u64::from_str_radix(hex, 16).expect("hex mask")
}

#[test]
fn container_process_has_no_ignored_or_blocked_signals() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    // The caller ignores SIGPIPE, SIGHUP and SIGUSR1 (and the runtime's Rust std ignores
    // SIGPIPE anyway): none of it may reach the container.
    let mut cmd = rt.cmd();
    cmd.args(["run", "-b", b.path().to_str().expect("utf8"), &uid("sig")]);
    ignore_signals_in_caller(&mut cmd);
    let out = cmd.output().expect("run berth-runtime");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status_field(&stdout, "SigIgn:"),
        0,
        "ignored signals leaked: {stdout}"
    );
    assert_eq!(
        status_field(&stdout, "SigBlk:"),
        0,
        "blocked signals leaked: {stdout}"
    );
}

/// Makes the spawned runtime inherit ignored and blocked signals, through a shell: `trap '' ...`
/// sets SIG_IGN, which survives exec, exactly like a careless caller.
fn ignore_signals_in_caller(cmd: &mut std::process::Command) {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("trap '' PIPE HUP USR1; exec \"$0\" \"$@\"")
        .arg(prog)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let _ = sh.process_group(0);
    *cmd = sh;
}
