//! TTY sessions through berthd with the real docker CLI under script(1) (issue 4): the first
//! output bytes of `docker run -it ... echo hi` are exactly "hi\r\n" (no stray byte before
//! them), and `stty size` inside `run -it` and `exec -it` prints the size docker sent with
//! POST /containers/{id}/resize and /exec/{id}/resize (the terminal script(1) made, set with
//! stty). Registry and berthd come from the same fixtures as docker_cli.rs; everything is
//! cleaned up by their Drop guards.

mod common;
#[path = "support/fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use fixture::{ensure_siblings, have, Cleanup, Registry};

/// Runs `shell` (a docker command line) inside script(1), i.e. on a fresh terminal set to
/// 33 rows × 101 columns first.
fn in_terminal(host: &str, config: &Path, shell: &str) -> Output {
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 33 cols 101; {shell}"),
            "/dev/null",
        ])
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        // script(1) runs $SHELL, else /bin/sh: the same shell whatever the caller's is
        .env("SHELL", "/bin/sh")
        .env_remove("DOCKER_CONTEXT")
        // a stdin that stays open without data: at EOF on its stdin script(1) types the
        // terminal's EOF character into the session, which docker would pass on as input
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let stdin = child.stdin.take();
    let out = child.wait_with_output().expect("wait for script");
    drop(stdin);
    out
}

/// Resizes script's terminal while `docker CMD` runs: the kernel sends docker SIGWINCH (same
/// process group, the terminal's foreground), docker posts the new size, and the container
/// reads it after waiting long enough.
const RESIZE_LATER: &str =
    "(sleep 1; stty -F /dev/tty rows 40 cols 120) & docker CMD sh -c 'sleep 3; stty size'; wait";

#[test]
fn docker_tty_sessions_are_clean_and_sized() {
    for bin in ["docker", "docker-registry", "umoci", "skopeo", "script"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let r = format!("127.0.0.1:{}", reg.port);
    let d = common::Daemon::start_with(&["--default-registry", r.as_str()]);
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let config = tempfile::tempdir().expect("docker config dir");
    let host = d.host();
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &host)
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("run docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {out:?}\nberthd log:\n{}",
            d.log()
        );
    };
    docker(&["pull", "-q", "busybox"]);
    let term = |shell: &str| in_terminal(&host, config.path(), shell);
    let text = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    // run -it: exactly the process's output, the terminal sized from the start (docker's
    // HostConfig.ConsoleSize) and resized later (POST /containers/{id}/resize on SIGWINCH)
    let out = term("docker run -it --rm busybox echo hi");
    assert_eq!(out.stdout, b"hi\r\n", "run -it: {:?} {out:?}", text(&out));
    let out = term("docker run -it --rm busybox stty size");
    assert_eq!(text(&out), "33 101\r\n", "run -it stty size: {out:?}");
    let out = term(RESIZE_LATER.replace("CMD", "run -it --rm busybox").as_str());
    assert_eq!(text(&out), "40 120\r\n", "run -it after resize: {out:?}");

    // exec -it: the same through the runtime's console socket bridged by berthd (the exec's
    // ConsoleSize, then POST /exec/{id}/resize)
    docker(&["run", "-d", "--name", "tty", "busybox", "sleep", "60"]);
    let out = term("docker exec -it tty echo hi");
    assert_eq!(out.stdout, b"hi\r\n", "exec -it: {:?} {out:?}", text(&out));
    let out = term("docker exec -it tty stty size");
    assert_eq!(text(&out), "33 101\r\n", "exec -it stty size: {out:?}");
    let out = term(RESIZE_LATER.replace("CMD", "exec -it tty").as_str());
    assert_eq!(text(&out), "40 120\r\n", "exec -it after resize: {out:?}");

    // the berth CLI (built next to berthd by `cargo test --workspace`): the same sizes, and it
    // exits when the session ends although its stdin (the terminal) is still open
    let berth = Path::new(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
    if berth.exists() {
        let b = berth.display();
        for (cmd, want) in [
            (
                format!("{b} -H $DOCKER_HOST run -it --rm busybox stty size"),
                "33 101\r\n",
            ),
            (
                format!("{b} -H $DOCKER_HOST exec -it tty stty size"),
                "33 101\r\n",
            ),
            (
                format!("{b} -H $DOCKER_HOST run -it --rm busybox echo hi"),
                "hi\r\n",
            ),
        ] {
            // --foreground: a plain timeout(1) puts itself in a new process group, which
            // is then in the terminal's background, and berth is stopped (SIGTTOU) when it
            // sets the terminal raw, as any program would be
            let out = term(&format!("timeout --foreground 20 {cmd}"));
            assert_eq!(
                (text(&out).as_str(), out.status.code()),
                (want, Some(0)),
                "{cmd}: {out:?}"
            );
        }
    } else {
        println!(
            "SKIP: berth CLI checks: {b} is not built",
            b = berth.display()
        );
    }
    docker(&["rm", "-f", "tty"]);
}
