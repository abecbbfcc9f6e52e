//! dockerd (20.10, on a private containerd) with `--add-runtime berth=<berth-runtime>` and
//! `docker run --runtime berth`: run/--rm and output, exit codes, `--memory` on the host cgroup,
//! `-d` + `exec` + `stop` + `logs`, and `-t`. dockerd sends what runc accepts and berth-runtime
//! must too: its default seccomp profile (clone's `SCMP_CMP_MASKED_EQ` rule has no `valueTwo`) and
//! `blockIO.weight: 0` / `cpu.shares: 0` meaning "unset". Two small tests pin those two configs
//! on berth-runtime directly, next to runc, so a regression names its cause.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    can_run, in_pty, poll, read_trim, run, run_input, runtime_bin, start_containerd, Scratch,
    Steps, IMAGE, LIMIT,
};

/// The docker CLI against the private dockerd.
struct Docker {
    host: String,
    config: PathBuf,
}

impl Docker {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_CONFIG", &self.config)
            .args(["-H", &self.host])
            .args(args);
        c
    }

    /// `docker run --runtime berth --network none --pull never`, then `args`.
    fn run_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(&[
            "run",
            "--runtime",
            "berth",
            "--network",
            "none",
            "--pull",
            "never",
        ]);
        c.args(args);
        c
    }
}

fn start_dockerd(s: &mut Scratch, containerd: &Path) -> Docker {
    let d = s.path().join("dk");
    std::fs::create_dir_all(d.join("cli")).expect("mkdir dockerd dirs");
    std::fs::write(d.join("daemon.json"), "{}").expect("write daemon.json");
    let sock = d.join("d.sock");
    let host = format!("unix://{}", sock.display());
    let docker = Docker {
        host,
        config: d.join("cli"),
    };
    let mut cmd = Command::new("dockerd");
    cmd.args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
        .args([
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
        ])
        .arg("--data-root")
        .arg(d.join("data"))
        .arg("--exec-root")
        .arg(d.join("exec"))
        .args(["-H", &docker.host])
        .arg("--pidfile")
        .arg(d.join("d.pid"))
        .arg("--config-file")
        .arg(d.join("daemon.json"))
        .arg("--containerd")
        .arg(containerd)
        .args(["--cgroup-parent", &s.cgroup_parent()])
        .arg("--add-runtime")
        .arg(format!("berth={}", runtime_bin().display()));
    let ready = docker.cmd(&["version", "--format", "{{.Server.Version}}"]);
    s.start_daemon("dockerd", &mut cmd, move || {
        sock.exists()
            && Command::new(ready.get_program())
                .args(ready.get_args())
                .envs(ready.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .output()
                .is_ok_and(|o| o.status.success())
    });
    docker
}

#[test]
fn dockerd_drives_berth_runtime() {
    if !can_run(&["dockerd", "docker", "containerd", "ctr", "script"]) {
        return;
    }
    let mut s = Scratch::new("dk");
    let archive = common::busybox_archive(&s.path().join("img"));
    let containerd = start_containerd(&mut s);
    let d = start_dockerd(&mut s, &containerd);
    run(&mut d.cmd(&["load", "-q", "-i", archive.to_str().expect("utf-8 path")])).ok();

    let mut st = Steps::new("docker");
    st.step("run --rm echo hi", || {
        let o = run(&mut d.run_cmd(&["--rm", IMAGE, "echo", "hi"])).ok();
        assert_eq!(o.stdout, "hi\n", "{o}");
    });
    st.step("exit code 3 passes through", || {
        run(&mut d.run_cmd(&["--rm", IMAGE, "sh", "-c", "exit 3"])).code(3);
    });
    st.step(
        "exec errors map to 127/126 (the engine reads the runtime's message)",
        || {
            for (cmd, code) in [
                ("/nonexistent", 127),
                ("nosuchcmd", 127),
                ("/etc/passwd", 126),
            ] {
                let o = run(&mut d.run_cmd(&["--rm", IMAGE, cmd])).code(code);
                assert!(o.stderr.contains(cmd), "{o}");
            }
        },
    );
    st.step("-i passes stdin through to EOF", || {
        let mut cmd = d.run_cmd(&["--rm", "-i", IMAGE, "sh", "-c", "cat; echo eof"]);
        let o = run_input(&mut cmd, Some(b"abc\n"), LIMIT).ok();
        assert_eq!(o.stdout, "abc\neof\n", "{o}");
    });
    st.step("-d --memory 64m, exec, stop, logs", || {
        let script = "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done";
        let o = run(&mut d.run_cmd(&[
            "-d", "--name", "svc", "--memory", "64m", IMAGE, "sh", "-c", script,
        ]))
        .ok();
        let id = o.out().to_string();
        let mem = read_trim(&s.cgroup_dir("memory", &id).join("memory.limit_in_bytes"));
        assert_eq!(mem, "67108864");
        let o = run(&mut d.cmd(&["exec", "svc", "sh", "-c", "echo in-exec; exit 4"])).code(4);
        assert_eq!(o.stdout, "in-exec\n", "{o}");
        // exec with its own user, cwd and env (runc exec --process), stdin, and a terminal.
        let o = run(&mut d.cmd(&[
            "exec",
            "-u",
            "65534",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "svc",
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ]))
        .ok();
        assert_eq!(o.stdout, "65534\n/tmp\n1\n", "{o}");
        let o = run_input(
            &mut d.cmd(&["exec", "-i", "svc", "cat"]),
            Some(b"xyz"),
            LIMIT,
        )
        .ok();
        assert_eq!(o.stdout, "xyz", "{o}");
        let o = run(&mut in_pty(&d.cmd(&[
            "exec",
            "-t",
            "svc",
            "sh",
            "-c",
            "tty; exit 5",
        ])))
        .code(5);
        assert!(o.stdout.contains("/dev/pts/"), "{o}");
        let o = run(&mut d.cmd(&["stop", "-t", "10", "svc"])).ok();
        assert!(
            o.took.as_secs() < 5,
            "stop waited for the timeout: SIGTERM lost? {o}"
        );
        let o = run(&mut d.cmd(&["inspect", "-f", "{{.State.ExitCode}}", "svc"])).ok();
        assert_eq!(o.out(), "0", "{o}");
        let logs = poll(|| {
            Some(run(&mut d.cmd(&["logs", "svc"])).ok()).filter(|o| o.stdout == "started\nbye\n")
        });
        assert!(logs.is_some(), "docker logs never showed started/bye");
        run(&mut d.cmd(&["rm", "svc"])).ok();
    });
    st.step(
        "user, read-only, tmpfs, caps, bind, env, rlimit, sysctl, shm, oom, nnp, --init",
        || {
            let flags = common::probe_flags(&s.path().join("vol"));
            let mut args: Vec<&str> = vec!["--rm"];
            args.extend(flags.iter().map(String::as_str));
            args.extend([IMAGE, "sh", "-c", common::PROBE]);
            let o = run(&mut d.run_cmd(&args)).ok();
            assert_eq!(o.stdout, common::probe_expected("/sbin/docker-init"), "{o}");
        },
    );
    st.step(
        "update (runc update --resources -), pause/unpause, top (runc ps), kill",
        || {
            let o = run(&mut d.run_cmd(&["-d", "--memory", "64m", IMAGE, "sleep", "60"])).ok();
            let id = o.out().to_string();
            let cg = |ctrl: &str, file: &str| read_trim(&s.cgroup_dir(ctrl, &id).join(file));
            run(&mut d.cmd(&[
                "update",
                "--memory",
                "96m",
                "--memory-swap",
                "128m",
                "--cpus",
                "0.25",
                "--pids-limit",
                "30",
                &id,
            ]))
            .ok();
            assert_eq!(cg("memory", "memory.limit_in_bytes"), "100663296");
            assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "25000");
            assert_eq!(cg("pids", "pids.max"), "30");
            run(&mut d.cmd(&["pause", &id])).ok();
            assert_eq!(cg("freezer", "freezer.state"), "FROZEN");
            run(&mut d.cmd(&["unpause", &id])).ok();
            assert_eq!(cg("freezer", "freezer.state"), "THAWED");
            let o = run(&mut d.cmd(&["top", &id])).ok();
            assert!(o.stdout.contains("sleep 60"), "{o}");
            run(&mut d.cmd(&["kill", &id])).ok();
            let o = run(&mut d.cmd(&["wait", &id])).ok();
            assert_eq!(o.out(), "137", "{o}");
            run(&mut d.cmd(&["rm", &id])).ok();
        },
    );
    st.step("-t gets a terminal", || {
        let cmd = d.run_cmd(&["--rm", "-t", IMAGE, "sh", "-c", "tty; [ -t 0 ] && exit 6"]);
        let o = run(&mut in_pty(&cmd)).code(6);
        assert!(o.stdout.contains("/dev/pts/0"), "{o}");
    });
    st.finish(|| s.logs());
}

/// A busybox bundle running `true` with `edit` applied to its config.json; returns the bundle dir.
fn bundle(dir: &Path, edit: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-bundle.sh");
    let b = dir.join("bundle");
    run(Command::new("bash")
        .arg(&script)
        .arg(&b)
        .args(["--", "true"]))
    .ok();
    let cfg = b.join("config.json");
    let o = run(Command::new("jq").arg(edit).arg(&cfg)).ok();
    std::fs::write(&cfg, o.stdout).expect("write config.json");
    b
}

/// `<runtime> --root <dir>/state run --bundle B id` must succeed, as it does with runc.
fn runs_like_runc(s: &Scratch, b: &Path) {
    for rt in [Path::new("runc"), runtime_bin()] {
        let id = format!("e2e-{}", std::process::id());
        let o = run(Command::new(rt)
            .arg("--root")
            .arg(s.path().join("state"))
            .args(["run", "--bundle"])
            .arg(b)
            .arg(&id));
        assert_eq!(
            o.code,
            Some(0),
            "{} refused what dockerd sends:\n{o}",
            rt.display()
        );
    }
}

/// dockerd's default seccomp profile allows clone with `{"index":0,"value":2114060288,
/// "op":"SCMP_CMP_MASKED_EQ"}` and no `valueTwo`: runc reads the missing value as 0
/// ((flags & CLONE_NEW*) == 0).
#[test]
fn seccomp_masked_eq_without_value_two_as_dockerd_sends_it() {
    if !can_run(&["runc"]) {
        return;
    }
    let s = Scratch::new("sc");
    let b = bundle(
        s.path(),
        r#".linux.seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                         "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    runs_like_runc(&s, &b);
}

/// dockerd always sends `blockIO.weight: 0` (and `cpu.shares: 0`) when no weight is asked for;
/// runc treats 0 as unset (`if r.BlkioWeight != 0`). Writing 0 to blkio.bfq.weight is ERANGE.
#[test]
fn zero_blkio_weight_and_cpu_shares_as_dockerd_sends_them() {
    if !can_run(&["runc"]) {
        return;
    }
    let s = Scratch::new("bw");
    let parent = s.cgroup_parent();
    let b = bundle(
        s.path(),
        &format!(
            r#".linux.resources = {{"blockIO": {{"weight": 0}}, "cpu": {{"shares": 0}},
                 "memory": {{"disableOOMKiller": false}}}} | .linux.cgroupsPath = "{parent}/c""#
        ),
    );
    runs_like_runc(&s, &b);
}
