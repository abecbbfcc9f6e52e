//! The attacks behind two runc CVEs, mounted against berth-runtime.
//! - CVE-2019-5736: a container overwriting the runtime binary through /proc/<pid>/exe.
//! - CVE-2024-21626: fds of the runtime leaking into the container (and a cwd through them).

mod common;

use std::os::fd::AsRawFd;

use common::{can_run, uid, Bundle, Runtime};

fn digest(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("read runtime binary")
}

#[test]
fn runtime_binary_cannot_be_overwritten_from_the_container() {
    if !can_run() {
        return;
    }
    let before = digest(common::BIN);
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "30"]);
    let id = uid("cve5736");
    rt.detached(&["create", "-b", b.path().to_str().expect("utf8"), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");

    // The init still runs our binary: its exe must be the read-only clone.
    let exe = format!("/proc/{pid}/exe");
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("exe opened for writing");
    // ETXTBSY while any process executes the inode (other tests run the same binary), EROFS after.
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
        "{err}"
    );
    // The attack keeps an O_PATH handle and reopens it for writing once nobody executes it.
    let handle = nix::fcntl::open(
        exe.as_str(),
        nix::fcntl::OFlag::O_PATH,
        nix::sys::stat::Mode::empty(),
    )
    .expect("O_PATH");
    let vfs = nix::sys::statvfs::fstatvfs(&handle).expect("fstatvfs");
    assert!(
        vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the init's exe is not on a read-only mount: the runtime binary is exposed"
    );

    // From inside: the container's pid 1 is still the runtime before start.
    let o = rt.run(&["exec", &id, "sh", "-c", "echo pwned >> /proc/1/exe"]);
    assert!(!o.status.success(), "container wrote to /proc/1/exe");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Read-only file system") || err.contains("Text file busy"),
        "{err}"
    );

    rt.ok(&["start", &id]);
    let reopen = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&reopen)
        .expect_err("reopened for writing");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
        "{err}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert!(before == digest(common::BIN), "runtime binary changed");
}

#[test]
fn no_runtime_fd_leaks_into_the_container() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd"]);
    let id = uid("cve21626");
    // fd 5 is open (and inheritable) in the runtime, but not asked to be preserved.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 5</sys/fs/cgroup 7<{} && exec {} --root {} run -b {} {}",
            b.path().join("config.json").display(),
            common::BIN,
            rt.root.path().display(),
            b.path().display(),
            id
        ))
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let fds: Vec<&str> = out.lines().take_while(|l| !l.starts_with('/')).collect();
    // 0-2 are stdio, 3 is ls's own handle on /proc/self/fd.
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "unexpected fds in the container: {out}"
    );
    assert_eq!(out.lines().last(), Some("/"), "cwd leaked: {out}");

    // the same for exec
    let b = Bundle::new(&["sleep", "30"]);
    let id = uid("cve21626x");
    rt.detached(&["run", "-d", "-b", b.path().to_str().expect("utf8"), &id]);
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 5</sys/fs/cgroup && exec {} --root {} exec {} ls /proc/self/fd",
            common::BIN,
            rt.root.path().display(),
            id
        ))
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    for cwd in [
        "/proc/self/fd/5",
        "/proc/self/fd/7",
        "/proc/self/cwd/../../..",
    ] {
        let b = Bundle::new(&["true"]);
        b.edit(|v| v["process"]["cwd"] = cwd.into());
        let id = uid("cwd");
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 5</sys/fs/cgroup 7</ && exec {} --root {} run -b {} {}",
                common::BIN,
                rt.root.path().display(),
                b.path().display(),
                id
            ))
            .output()
            .expect("sh");
        if cwd.ends_with("..") {
            // resolves inside the container to "/": allowed
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            continue;
        }
        assert!(!o.status.success(), "cwd {cwd} accepted");
        assert!(!rt.root.path().join(&id).exists());
    }
}
