//! containerd 1.6 with its runc shim v2 calling berth-runtime (`ctr run --runc-binary`): the shim
//! passes `--root <runc-root> --log <bundle>/log.json --log-format json` before every verb, and
//! uses create (with `--pid-file`, and `--console-socket` for `-t`), start, state, exec
//! (`--process`, `--detach`), ps, pause/resume, kill and delete. containerd itself is private to
//! the test (config, root, state and sockets in the scratch dir) and stopped by PID at the end.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    can_run, in_pty, poll, read_trim, run, runtime_bin, start_containerd, Scratch, Steps, IMAGE,
};

/// `ctr` against the private containerd, in namespace `e2e`.
struct Ctr {
    sock: PathBuf,
    runc_root: PathBuf,
    cgroup_parent: String,
}

impl Ctr {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.sock).args(["-n", "e2e"]).args(args);
        c
    }

    /// `ctr run` with berth-runtime as the shim's runc, the container in the test's cgroup parent.
    fn run_cmd(&self, id: &str, flags: &[&str], args: &[&str]) -> Command {
        let mut c = self.cmd(&["run"]);
        c.arg("--runc-binary")
            .arg(runtime_bin())
            .arg("--runc-root")
            .arg(&self.runc_root)
            .args(["--cgroup", &format!("{}/{id}", self.cgroup_parent)])
            .args(flags)
            .args([IMAGE, id])
            .args(args);
        c
    }

    fn task_status(&self, id: &str) -> Option<String> {
        let o = run(&mut self.cmd(&["task", "ls"])).ok();
        o.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_string)
    }
}

#[test]
fn containerd_shim_drives_berth_runtime() {
    if !can_run(&["containerd", "ctr", "containerd-shim-runc-v2", "script"]) {
        return;
    }
    let mut s = Scratch::new("ctd");
    let archive = common::busybox_archive(&s.path().join("img"));
    let sock = start_containerd(&mut s);
    let c = Ctr {
        sock,
        runc_root: s.path().join("runc-root"),
        cgroup_parent: s.cgroup_parent(),
    };
    run(&mut c.cmd(&["images", "import", archive.to_str().expect("utf-8 path")])).ok();

    let mut st = Steps::new("ctr");
    st.step("run --rm echo hi", || {
        let o = run(&mut c.run_cmd("t1", &["--rm"], &["echo", "hi"])).ok();
        assert_eq!(o.stdout, "hi\n", "{o}");
    });
    st.step("exit code 3 passes through", || {
        run(&mut c.run_cmd("t2", &["--rm"], &["sh", "-c", "exit 3"])).code(3);
    });
    st.step(
        "-d with --memory-limit/--cpus, ps, exec, pause/resume, kill",
        || {
            let flags = ["-d", "--memory-limit", "67108864", "--cpus", "0.5"];
            let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
            run(&mut c.run_cmd("t3", &flags, &["sh", "-c", script])).ok();
            let cg = |ctrl: &str, file: &str| {
                read_trim(&Path::new("/sys/fs/cgroup").join(ctrl).join(format!(
                    "{}/t3/{file}",
                    c.cgroup_parent.trim_start_matches('/')
                )))
            };
            assert_eq!(cg("memory", "memory.limit_in_bytes"), "67108864");
            assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
            assert_eq!(c.task_status("t3").as_deref(), Some("RUNNING"));
            let o = run(&mut c.cmd(&["task", "ps", "t3"])).ok();
            assert!(o.stdout.lines().count() >= 2, "no pid listed: {o}");
            let o = run(&mut c.cmd(&[
                "task",
                "exec",
                "--exec-id",
                "e1",
                "t3",
                "sh",
                "-c",
                "echo in-exec; exit 4",
            ]))
            .code(4);
            assert_eq!(o.stdout, "in-exec\n", "{o}");
            let exec_t = c.cmd(&[
                "task",
                "exec",
                "-t",
                "--exec-id",
                "e2",
                "t3",
                "sh",
                "-c",
                "tty; exit 5",
            ]);
            let o = run(&mut in_pty(&exec_t)).code(5);
            assert!(o.stdout.contains("/dev/pts/"), "{o}");
            run(&mut c.cmd(&["task", "pause", "t3"])).ok();
            assert_eq!(c.task_status("t3").as_deref(), Some("PAUSED"));
            assert_eq!(cg("freezer", "freezer.state"), "FROZEN");
            run(&mut c.cmd(&["task", "resume", "t3"])).ok();
            assert_eq!(c.task_status("t3").as_deref(), Some("RUNNING"));
            run(&mut c.cmd(&["task", "kill", "t3"])).ok();
            let stopped = poll(|| c.task_status("t3").filter(|s| s == "STOPPED"));
            assert!(stopped.is_some(), "t3 not STOPPED 10 s after SIGTERM");
            run(&mut c.cmd(&["task", "delete", "t3"])).ok();
            run(&mut c.cmd(&["containers", "rm", "t3"])).ok();
            assert!(
                !Path::new("/sys/fs/cgroup/memory")
                    .join(c.cgroup_parent.trim_start_matches('/'))
                    .join("t3")
                    .exists(),
                "t3's cgroup outlived delete"
            );
        },
    );
    st.step(
        "a failed create reports the runtime's error (--log json read by the shim)",
        || {
            let o = run(&mut c.run_cmd("t5", &["--rm"], &["/nonexistent"]));
            assert_ne!(o.code, Some(0), "{o}");
            assert!(o.stderr.contains("/nonexistent"), "{o}");
            let _ = run(&mut c.cmd(&["containers", "rm", "t5"]));
        },
    );
    st.step("-t gets a terminal through --console-socket", || {
        let cmd = c.run_cmd(
            "t4",
            &["--rm", "-t"],
            &["sh", "-c", "tty; [ -t 0 ] && exit 7"],
        );
        let o = run(&mut in_pty(&cmd)).code(7);
        assert!(o.stdout.contains("/dev/pts/0"), "{o}");
    });
    st.finish(|| s.logs());
}
