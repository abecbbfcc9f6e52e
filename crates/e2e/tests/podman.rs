//! podman (4.x, through conmon) with `--runtime <berth-runtime>`: run/--rm and output, exit code
//! passthrough, memory/pids/cpu limits read back from the host cgroups and from inside, `-d` +
//! `exec` + `stop` + `logs`, and `-t` (conmon hands berth-runtime a `--console-socket`).
//! Storage (vfs), run root, events, tmp dir and CNI config all live in one `Scratch`; podman reads
//! a generated containers.conf/storage.conf, never the host's.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{
    can_run, hard_limit, in_pty, read_trim, run, run_input, runtime_bin, Scratch, Steps, IMAGE,
    LIMIT,
};
use nix::sys::resource::Resource;

/// podman pointed at the scratch dir.
struct Podman {
    root: PathBuf,
    env: Vec<(&'static str, PathBuf)>,
    cgroup_parent: String,
}

impl Podman {
    fn new(s: &Scratch) -> Podman {
        let d = s.path();
        for sub in ["storage", "run", "tmp", "cni"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir podman dirs");
        }
        // Root here lacks CAP_SYS_RESOURCE: podman's default RLIMIT_NOFILE/NPROC (1048576) can't
        // be set by any runtime (crun fails the same way), and the hard limits conmon passes on
        // may be lower than this process's: ask for modest limits under both.
        let nofile = hard_limit(Resource::RLIMIT_NOFILE).min(4096);
        let nproc = hard_limit(Resource::RLIMIT_NPROC).min(4096);
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{ev}\"\ntmp_dir = \"{tmp}\"\n\
             [network]\nnetwork_config_dir = \"{cni}\"\n",
            ev = d.join("events.log").display(),
            tmp = d.join("tmp").display(),
            cni = d.join("cni").display(),
        );
        std::fs::write(d.join("containers.conf"), conf).expect("write containers.conf");
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            d.join("storage").display(),
            d.join("run").display()
        );
        std::fs::write(d.join("storage.conf"), storage).expect("write storage.conf");
        Podman {
            root: d.to_path_buf(),
            env: vec![
                ("CONTAINERS_CONF", d.join("containers.conf")),
                ("CONTAINERS_STORAGE_CONF", d.join("storage.conf")),
                ("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf")),
            ],
            cgroup_parent: s.cgroup_parent(),
        }
    }

    /// `podman <global flags> args...` with berth-runtime as the runtime.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--runtime")
            .arg(runtime_bin())
            .args(args);
        c
    }

    /// `podman run` with the flags every run here takes, then `args`.
    fn run_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(&["run", "--network", "none", "--pull", "never"]);
        c.args(["--cgroup-parent", &self.cgroup_parent]).args(args);
        c
    }
}

#[test]
fn podman_drives_berth_runtime() {
    if !can_run(&["podman", "conmon", "script"]) {
        return;
    }
    let s = Scratch::new("podman");
    let archive = common::busybox_archive(&s.path().join("img"));
    let p = Podman::new(&s);
    std::fs::write(
        s.path().join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .expect("write registries.conf");
    run(&mut p.cmd(&["load", "-q", "-i", archive.to_str().expect("utf-8 path")])).ok();

    let mut st = Steps::new("podman");
    st.step("run --rm echo hi", || {
        let o = run(&mut p.run_cmd(&["--rm", IMAGE, "echo", "hi"])).ok();
        assert_eq!(o.stdout, "hi\n", "{o}");
    });
    st.step("exit code 3 passes through", || {
        run(&mut p.run_cmd(&["--rm", IMAGE, "sh", "-c", "exit 3"])).code(3);
    });
    st.step(
        "exec errors map to 127/126 (the engine reads the runtime's message)",
        || {
            for (cmd, code) in [
                ("/nonexistent", 127),
                ("nosuchcmd", 127),
                ("/etc/passwd", 126),
            ] {
                let o = run(&mut p.run_cmd(&["--rm", IMAGE, cmd])).code(code);
                assert!(o.stderr.contains(cmd), "{o}");
            }
        },
    );
    st.step("-i passes stdin through to EOF", || {
        let mut cmd = p.run_cmd(&["--rm", "-i", IMAGE, "sh", "-c", "cat; echo eof"]);
        let o = run_input(&mut cmd, Some(b"abc\n"), LIMIT).ok();
        assert_eq!(o.stdout, "abc\neof\n", "{o}");
    });
    st.step("--memory 64m --pids-limit 50 --cpus 0.5", || {
        let o = run(&mut p.run_cmd(&[
            "-d",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            IMAGE,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
             /sys/fs/cgroup/cpu/cpu.cfs_quota_us; sleep 30",
        ]))
        .ok();
        let id = o.out().to_string();
        let sub = format!("libpod-{id}");
        let host = |ctrl: &str, file: &str| read_trim(&s.cgroup_dir(ctrl, &sub).join(file));
        assert_eq!(host("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(host("pids", "pids.max"), "50");
        assert_eq!(host("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(host("cpu", "cpu.cfs_period_us"), "100000");
        // The container's own view (podman mounts its cgroup dirs at /sys/fs/cgroup/<ctrl>).
        let want = "67108864\n50\n50000\n";
        let logs = common::poll(|| {
            Some(run(&mut p.cmd(&["logs", &id])).ok()).filter(|o| o.stdout == want)
        });
        assert!(logs.is_some(), "the container never printed {want:?}");
        run(&mut p.cmd(&["rm", "-f", "-t", "0", &id])).ok();
    });
    st.step("-d, exec, stop, logs", || {
        run(&mut p.run_cmd(&[
            "-d",
            "--name",
            "svc",
            IMAGE,
            "sh",
            "-c",
            "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
        ]))
        .ok();
        let o = run(&mut p.cmd(&["exec", "svc", "sh", "-c", "echo in-exec $$; exit 4"])).code(4);
        assert!(o.stdout.starts_with("in-exec "), "{o}");
        let o = run(&mut p.cmd(&["inspect", "--format", "{{.State.Status}}", "svc"])).ok();
        assert_eq!(o.out(), "running", "{o}");
        let o = run(&mut p.cmd(&["stop", "-t", "10", "svc"])).ok();
        assert!(
            o.took.as_secs() < 5,
            "stop waited for the timeout: SIGTERM lost? {o}"
        );
        let o = run(&mut p.cmd(&["inspect", "--format", "{{.State.ExitCode}}", "svc"])).ok();
        assert_eq!(o.out(), "0", "{o}");
        let o = run(&mut p.cmd(&["logs", "svc"])).ok();
        assert_eq!(o.stdout, "started\nbye\n", "{o}");
        run(&mut p.cmd(&["rm", "svc"])).ok();
    });
    st.step(
        "user, read-only, tmpfs, caps, bind, env, rlimit, sysctl, shm, oom, nnp, --init",
        || {
            let flags = common::probe_flags(&s.path().join("vol"));
            // An explicit --ulimit replaces containers.conf's default_ulimits: keep NPROC settable.
            let mut args: Vec<&str> = vec!["--rm", "--ulimit", "nproc=4096:4096"];
            args.extend(flags.iter().map(String::as_str));
            args.extend([IMAGE, "sh", "-c", common::PROBE]);
            let o = run(&mut p.run_cmd(&args)).ok();
            assert_eq!(o.stdout, common::probe_expected("/run/podman-init"), "{o}");
        },
    );
    st.step("-t gets a terminal through --console-socket", || {
        let cmd = p.run_cmd(&["--rm", "-t", IMAGE, "sh", "-c", "tty; [ -t 0 ] && exit 6"]);
        let o = run(&mut in_pty(&cmd)).code(6);
        assert!(o.stdout.contains("/dev/pts/0"), "{o}");
    });
    st.finish(|| s.logs());
}
