//! `berth` verbs over existing endpoints against a real berthd and a local registry on
//! 127.0.0.1: cp (both ways, files, directories, `-` tars, a stopped container), debug (host
//! tools, `ps` of the container's processes, its files at /proc/1/root, its network namespace,
//! `--image busybox`, exit codes), stats --no-stream, update (read back via inspect and the
//! cgroup files), top, rename, wait, diff, attach (stdin, exit code, detach keys), and window
//! resizes forwarded mid-session under script(1) for run -it, exec -it, start -ai, attach and
//! debug.

#[path = "support/berthd.rs"]
mod berthd;
#[path = "../../daemon/tests/support/fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berthd::Daemon;
use fixture::{have, Cleanup, Registry};

/// Registry, cleanup guard and daemon, in the order they must drop: berthd is killed first, so
/// it can't remount or restart anything while the guard cleans up.
fn setup() -> Option<(Registry, Cleanup, Daemon)> {
    for bin in ["docker-registry", "umoci", "skopeo", "jq"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return None;
        }
    }
    let reg = Registry::start();
    let d = Daemon::start(&reg);
    let cleanup = Cleanup {
        data_root: d.dir.path().join("data"),
        exec_root: d.dir.path().join("exec"),
    };
    d.ok(&["pull", "busybox"]);
    Some((reg, cleanup, d))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cp_moves_files_both_ways() {
    let Some((_reg, _c, d)) = setup() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cpv",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /src/sub && echo a > /src/a && echo b > /src/sub/b && touch /ready && sleep 1000",
    ]);
    wait_for("setup", || {
        d.berth(&["exec", "cpv", "test", "-f", "/ready"], None)
            .status
            .success()
    });
    let host = tempfile::tempdir().expect("host dir");
    let h = |p: &str| host.path().join(p).display().to_string();

    // out: a file to a new name, into a directory, a directory, its contents, a tar on stdout
    d.ok(&["cp", "cpv:/src/a", &h("a1")]);
    assert_eq!(std::fs::read_to_string(h("a1")).expect("a1"), "a\n");
    std::fs::create_dir(h("into")).expect("mkdir");
    d.ok(&["cp", "cpv:/src/a", &h("into")]);
    assert_eq!(std::fs::read_to_string(h("into/a")).expect("into/a"), "a\n");
    d.ok(&["cp", "cpv:/src", &h("tree")]);
    assert_eq!(
        std::fs::read_to_string(h("tree/sub/b")).expect("tree"),
        "b\n"
    );
    d.ok(&["cp", "cpv:/src/.", &h("into")]);
    assert_eq!(
        std::fs::read_to_string(h("into/sub/b")).expect("contents"),
        "b\n"
    );
    let out = d.berth(&["cp", "cpv:/src/a", "-"], None);
    assert!(out.status.success());
    assert_eq!(
        &out.stdout[..2],
        b"a\0",
        "a tar whose first entry is named a"
    );
    let out = d.berth(&["cp", "cpv:/nope", &h("x")], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Could not find the file /nope"),
        "{out:?}"
    );

    // in: a file to a new name, a directory, a tar from stdin
    std::fs::write(h("up"), "up\n").expect("write");
    std::fs::create_dir_all(h("dir/x")).expect("mkdir");
    std::fs::write(h("dir/x/y"), "y\n").expect("write");
    d.ok(&["cp", &h("up"), "cpv:/up2"]);
    d.ok(&["cp", &h("dir"), "cpv:/src/"]);
    let tar = d.berth(&["cp", "cpv:/src/a", "-"], None).stdout;
    d.ok_in(&["cp", "-", "cpv:/tmp"], Some(&tar));
    let got = d.ok(&["exec", "cpv", "cat", "/up2", "/src/dir/x/y", "/tmp/a"]);
    assert_eq!(got, "up\ny\na\n");

    // -a keeps the owner, without it files belong to root
    let owned = h("owned");
    std::fs::write(&owned, "o\n").expect("write");
    std::os::unix::fs::chown(&owned, Some(1234), Some(2345)).expect("chown");
    d.ok(&["cp", "-a", &owned, "cpv:/owned-a"]);
    d.ok(&["cp", &owned, "cpv:/owned-root"]);
    let ids = d.ok(&[
        "exec",
        "cpv",
        "stat",
        "-c",
        "%u:%g",
        "/owned-a",
        "/owned-root",
    ]);
    assert_eq!(ids, "1234:2345\n0:0\n");
    d.ok(&["cp", "-a", "cpv:/owned-a", &h("owned-back")]);
    let m = std::fs::metadata(h("owned-back")).expect("owned-back");
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&m),
            std::os::unix::fs::MetadataExt::gid(&m)
        ),
        (1234, 2345)
    );

    // read-only targets are refused: a :ro bind, a --read-only root filesystem
    let rodir = tempfile::tempdir().expect("ro dir");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cpro",
        "--read-only",
        "-v",
        &format!("{}:/ro:ro", rodir.path().display()),
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = d.berth(&["cp", &h("up"), "cpro:/ro/"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mounted volume is marked read-only"),
        "{out:?}"
    );
    assert!(std::fs::read_dir(rodir.path())
        .expect("ls")
        .next()
        .is_none());
    let out = d.berth(&["cp", &h("up"), "cpro:/tmp/"], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container rootfs is marked read-only"),
        "{out:?}"
    );
    d.ok(&["rm", "-f", "cpro"]);

    // a stopped container
    d.ok(&["stop", "-t", "0", "cpv"]);
    d.ok(&["cp", &h("up"), "cpv:/stopped"]);
    d.ok(&["cp", "cpv:/stopped", &h("back")]);
    assert_eq!(std::fs::read_to_string(h("back")).expect("back"), "up\n");
    d.ok(&["rm", "-f", "cpv"]);
}

#[test]
fn debug_shell_sees_the_container_with_host_tools() {
    let Some((_reg, _c, d)) = setup() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "dbg",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&["exec", "dbg", "touch", "/made-in-container"]);
    let pid = d.inspect("dbg", "{{.State.Pid}}");
    let netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("container netns");

    // host tools: dpkg and /etc/debian_version exist on the host, not in busybox
    let host_tool = ["/usr/bin/dpkg", "/usr/bin/env"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a host tool");
    let script = format!(
        "test -x {host_tool} && echo host-tool; ps -o pid,args 2>/dev/null || ps; ls /proc/1/root/made-in-container; readlink /proc/self/ns/net; grep :pids: /proc/self/cgroup; echo uts=$(hostname); exit 4"
    );
    let out = d.berth(&["debug", "dbg", "--", "sh", "-c", &script], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit code passes through: {text}{err}\n{}",
        d.log()
    );
    assert!(
        err.contains("debug shell in dbg's namespaces; its files are at /proc/1/root"),
        "{err}"
    );
    assert!(text.contains("host-tool"), "{text}");
    assert!(
        text.contains("sleep 1000"),
        "ps shows the container's process: {text}"
    );
    assert!(text.contains("/proc/1/root/made-in-container"), "{text}");
    let cid = d.inspect("dbg", "{{.Id}}");
    let hostname = d.ok(&["exec", "dbg", "hostname"]);
    assert!(
        text.contains(&format!("uts={}", hostname.trim())),
        "the container's uts namespace: {text}"
    );
    // a child of the container's cgroup (shown from the host's cgroup root or the container's)
    assert!(
        text.lines().any(|l| l.contains(":pids:")
            && l.contains("/debug-")
            && (l.contains(&cid) || l.contains(":pids:/debug-"))),
        "the session's cgroup is a child of the container's: {text}"
    );
    assert!(
        text.contains(&netns.display().to_string()),
        "the container's network namespace {netns:?}: {text}"
    );

    // tools from an image instead
    let out = d.berth(
        &[
            "debug", "--image", "busybox", "dbg", "--", "sh", "-c",
            "test -e /etc/debian_version && echo host-etc; ls /proc/1/root/made-in-container; busybox | head -1",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert!(!text.contains("host-etc"), "{text}");
    assert!(text.contains("/proc/1/root/made-in-container"), "{text}");
    assert!(text.contains("BusyBox"), "{text}");

    // stdin reaches the shell
    let text = d.ok_in(&["debug", "dbg"], Some(b"echo from-stdin\n"));
    assert!(text.contains("from-stdin"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(d.dir.path().join("exec/debug"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "debug sessions leave nothing: {leftovers:?}"
    );
    let cgroups: Vec<_> = std::fs::read_dir(format!("/sys/fs/cgroup/pids/berth/{cid}"))
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("debug-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    assert!(cgroups.is_empty(), "nor cgroups: {cgroups:?}");
    let out = d.berth(&["debug", "--image", "nosuchimage", "dbg"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unable to find image 'nosuchimage' locally"),
        "a missing tools image is pulled first: {out:?}"
    );
    d.ok(&["rm", "-f", "dbg"]);
    let out = d.berth(&["debug", "dbg"], None);
    assert!(!out.status.success());
}

#[test]
fn stats_update_top_rename_wait_diff_attach() {
    let Some((_reg, _c, d)) = setup() else { return };
    let id = d.ok(&["run", "-d", "--name", "vb", "busybox", "sleep", "1000"]);
    let id = id.trim();

    // top
    let top = d.ok(&["top", "vb"]);
    assert!(
        top.lines().next().is_some_and(|l| l.contains("PID")),
        "{top}"
    );
    assert!(top.contains("sleep 1000"), "{top}");

    // stats --no-stream, default table and --format
    let s = d.ok(&["stats", "--no-stream"]);
    let mut lines = s.lines();
    let header = lines.next().expect("header");
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(s.contains(&id[..12]) && s.contains("vb"), "{s}");
    let s = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}:{{.PIDs}}",
        "vb",
    ]);
    assert_eq!(s.trim(), "vb:1");
    // streaming: one table per refresh until interrupted
    let mut live = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &d.host(), "stats", "--format", "{{.Name}}", "vb"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth stats");
    std::thread::sleep(Duration::from_millis(2500));
    let _ = live.kill();
    let out = live.wait_with_output().expect("stats output");
    let n = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l == "vb")
        .count();
    assert!(n >= 2, "stats refreshes: {n} samples");

    // update: inspect and the cgroup files
    d.ok(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "77",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--restart",
        "on-failure:2",
        "vb",
    ]);
    assert_eq!(d.inspect("vb", "{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(d.inspect("vb", "{{.HostConfig.PidsLimit}}"), "77");
    assert_eq!(d.inspect("vb", "{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(
        d.inspect("vb", "{{.HostConfig.RestartPolicy.Name}}"),
        "on-failure"
    );
    let cg = |ctrl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/berth/{id}/{file}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(cg("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(cg("pids", "pids.max"), "77");
    assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
    d.ok(&[
        "update",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "32m",
        "--blkio-weight",
        "300",
        "vb",
    ]);
    assert_eq!(d.inspect("vb", "{{.HostConfig.CpusetCpus}}"), "0");
    assert_eq!(
        d.inspect("vb", "{{.HostConfig.MemoryReservation}}"),
        "33554432"
    );
    assert_eq!(cg("cpuset", "cpuset.cpus"), "0");
    assert_eq!(cg("memory", "memory.soft_limit_in_bytes"), "33554432");
    // a weight the kernel can't apply is discarded, as docker does
    let weighs = Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists();
    assert_eq!(
        d.inspect("vb", "{{.HostConfig.BlkioWeight}}"),
        if weighs { "300" } else { "0" }
    );
    let out = d.berth(&["update", "vb"], None);
    assert!(!out.status.success(), "update without flags is refused");

    // diff
    d.ok(&[
        "exec",
        "vb",
        "sh",
        "-c",
        "touch /added && rm /bin/true 2>/dev/null; true",
    ]);
    let diff = d.ok(&["diff", "vb"]);
    assert!(diff.lines().any(|l| l == "A /added"), "{diff}");

    // rename
    d.ok(&["rename", "vb", "vb2"]);
    assert_eq!(d.inspect("vb2", "{{.Name}}"), "/vb2");
    let out = d.berth(&["rename", "vb", "x"], None);
    assert!(!out.status.success());

    // wait
    d.ok(&[
        "run",
        "-d",
        "--name",
        "w7",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 7",
    ]);
    assert_eq!(d.ok(&["wait", "w7"]).trim(), "7");
    let out = d.berth(&["wait", "nosuch"], None);
    assert!(!out.status.success());

    // attach: stdin in, output out, the exit code back
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x; exit 3",
    ]);
    let out = d.berth(&["attach", "att"], Some(b"hello\n"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "got hello\n",
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(3));
    // detach keys leave it running
    d.ok(&["run", "-d", "-i", "--name", "att2", "busybox", "cat"]);
    let out = d.berth(
        &["attach", "--detach-keys", "ctrl-x", "att2"],
        Some(b"abc\n\x18"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.inspect("att2", "{{.State.Running}}"), "true");
    // without a TTY, SIGINT to berth attach reaches the container (--sig-proxy)
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-int; exit 9' INT; echo ready; while :; do sleep 0.1; done",
    ]);
    wait_for("sig ready", || d.ok(&["logs", "sig"]).contains("ready"));
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &d.host(), "attach", "sig"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth attach");
    std::thread::sleep(Duration::from_millis(700));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let out = child.wait_with_output().expect("attach output");
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("got-int"),
        "{out:?}"
    );
    let out = d.berth(&["attach", "w7"], None);
    assert!(
        !out.status.success(),
        "attach to a stopped container is refused"
    );
    d.ok(&["rm", "-f", "vb2", "w7", "att", "att2", "sig"]);
}

/// Runs `shell` inside script(1) on a 33×101 terminal (SHELL pinned, stdin held open).
fn in_terminal(d: &Daemon, shell: &str) -> Output {
    let berth = env!("CARGO_BIN_EXE_berth");
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!(
                "stty rows 33 cols 101; {}",
                shell.replace("BERTH", &format!("{berth} -H {}", d.host()))
            ),
            "/dev/null",
        ])
        .env("SHELL", "/bin/sh")
        .env("BERTH_CONFIG", d.dir.path().join("config"))
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

#[test]
fn window_resizes_reach_every_session() {
    if !have("script") {
        println!("SKIP: script is not installed");
        return;
    }
    let Some((_reg, _c, d)) = setup() else { return };
    d.ok(&["run", "-d", "--name", "rs", "busybox", "sleep", "1000"]);
    d.ok(&[
        "create",
        "-it",
        "--name",
        "rsa",
        "busybox",
        "sh",
        "-c",
        "sleep 3; stty size",
    ]);
    d.ok(&[
        "create",
        "-it",
        "--name",
        "rsb",
        "busybox",
        "sh",
        "-c",
        "sleep 3; stty size; sleep 1",
    ]);
    let later = |cmd: &str| {
        format!(
            "(sleep 1; stty -F /dev/tty rows 40 cols 120) & timeout --foreground 20 {cmd}; wait"
        )
    };
    for (what, cmd) in [
        (
            "run -it",
            later("BERTH run --rm -it busybox sh -c 'sleep 3; stty size'"),
        ),
        (
            "exec -it",
            later("BERTH exec -it rs sh -c 'sleep 3; stty size'"),
        ),
        ("start -ai", later("BERTH start -ai rsa")),
        (
            "attach",
            later("sh -c 'BERTH start rsb >/dev/null; BERTH attach rsb'"),
        ),
        (
            "debug",
            later("BERTH debug rs -- sh -c 'sleep 3; stty size'"),
        ),
    ] {
        let out = in_terminal(&d, &cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("40 120"),
            "{what}: the resized terminal reaches the container: {text:?} {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
    }
    d.ok(&["rm", "-f", "rs", "rsa", "rsb"]);
}

#[test]
fn commit_makes_images_from_changes() {
    let Some((_reg, _c, d)) = setup() else { return };
    d.ok(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo data > /committed && mkdir -p /d && touch /d/a /d/b && rm /bin/true",
    ]);
    let id = d.ok(&[
        "commit",
        "-a",
        "me <me@x>",
        "-m",
        "first",
        "-c",
        "CMD [\"cat\", \"/committed\"]",
        "-c",
        "ENV X=1",
        "c1",
        "mine:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.ok(&["run", "--rm", "mine:v1"]), "data\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "mine:v1",
        "sh",
        "-c",
        "test -e /bin/true || echo gone; echo $X; ls /d",
    ]);
    assert_eq!(out, "gone\n1\na\nb\n");
    assert_eq!(
        d.inspect("mine:v1", "{{.Id}}"),
        id.trim(),
        "the image is named mine:v1"
    );
    let hist = d.ok(&["history", "mine:v1"]);
    assert!(
        hist.contains("first") || hist.lines().count() >= 2,
        "{hist}"
    );
    // a directory removed and made again is opaque in the next layer
    d.ok(&[
        "run",
        "--name",
        "c2",
        "mine:v1",
        "sh",
        "-c",
        "rm -rf /d && mkdir /d && touch /d/c",
    ]);
    d.ok(&["commit", "c2", "mine:v2"]);
    assert_eq!(d.ok(&["run", "--rm", "mine:v2", "ls", "/d"]), "c\n");
    let out = d.berth(&["commit", "-c", "RUN make", "c2", "mine:v3"], None);
    assert!(!out.status.success(), "RUN is refused: {out:?}");
    let out = d.berth(&["commit", "nosuch"], None);
    assert!(!out.status.success());
    d.ok(&["rm", "c1", "c2"]);
}
