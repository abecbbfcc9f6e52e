//! seccomp user notification (`SCMP_ACT_NOTIFY` with `linux.seccomp.listenerPath`): the runtime
//! connects to the listener, sends the container process state with the notify fd
//! (SCM_RIGHTS), and the container's notified syscalls reach the listener, which answers them.

mod common;

use common::*;
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::poll::{poll, PollFd, PollFlags};
use serde_json::{json, Value};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// What the listener saw: the state message and the (pid, syscall) of each notification.
struct Heard {
    message: Value,
    calls: Vec<(u32, String)>,
}

/// Accepts the runtime's connection, takes the notify fd, and answers every notification with
/// EPERM until the container's side goes away or `limit` passes.
fn listen(listener: UnixListener, limit: Duration) -> Result<Heard, String> {
    let deadline = Instant::now() + limit;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("the runtime never connected to listenerPath: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let (fd, payload) = berth_sys::fdpass::recv_fd(stream.as_fd())
        .map_err(|e| format!("no fd over the listener socket: {e}"))?;
    let message: Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("the message with the fd is not JSON ({e}): {payload:?}"))?;
    let mut calls = Vec::new();
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, 100u16) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll on the notify fd: {e}")),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.contains(PollFlags::POLLIN) {
            let req = ScmpNotifReq::receive(fd.as_raw_fd())
                .map_err(|e| format!("receive a notification: {e}"))?;
            let name = req.data.syscall.get_name().unwrap_or_else(|_| "?".into());
            calls.push((req.pid, name));
            // The target may be gone already: then the answer fails, which is fine.
            let _ = ScmpNotifResp::new_error(req.id, -libc_eperm(), ScmpNotifRespFlags::empty())
                .respond(fd.as_raw_fd());
        } else if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            break;
        }
    }
    Ok(Heard { message, calls })
}

fn libc_eperm() -> i32 {
    nix::errno::Errno::EPERM as i32
}

#[test]
fn linux_seccomp_notify() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["/bin/sh", "-c", "uname; echo rc=$?"]);
    let sock = b.dir().join("seccomp.sock");
    b.set(
        &["linux", "seccomp"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "listenerPath": sock.to_str().expect("utf8"),
            "listenerMetadata": "berth-conformance",
            "syscalls": [{ "names": ["uname"], "action": "SCMP_ACT_NOTIFY" }]
        }),
    );
    b.write();
    let listener = UnixListener::bind(&sock).expect("bind the listener socket");
    let heard = std::thread::spawn(move || listen(listener, Duration::from_secs(20)));
    let id = unique_id("seccompnotify");
    let out = rt.create(&id, &b, &[]);
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&out, "create with a seccomp listenerPath");
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", Duration::from_secs(20))
        .unwrap_or_else(|s| {
            panic!("the container did not stop (a notification left unanswered?): {s:?}")
        });
    let heard = heard
        .join()
        .expect("listener thread")
        .unwrap_or_else(|e| panic!("{e}"));
    let m = &heard.message;
    assert!(
        m["fds"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "seccompFd")),
        "the state message does not name seccompFd: {m}"
    );
    assert_eq!(
        m["metadata"], "berth-conformance",
        "listenerMetadata not passed: {m}"
    );
    assert_eq!(
        m["state"]["id"],
        json!(id),
        "the state in the message is not this container's: {m}"
    );
    assert!(
        m["pid"].as_i64().is_some_and(|p| p > 0),
        "no pid in the message: {m}"
    );
    assert!(
        heard.calls.iter().any(|(_, name)| name == "uname"),
        "no uname notification reached the listener: {:?}",
        heard.calls
    );
    // busybox uname prints the (empty) struct it got: "Linux" would mean the call went through.
    let out = b.stdout();
    assert!(
        out.contains("rc="),
        "the container's shell did not run to the end: {out:?}"
    );
    assert!(
        !out.contains("Linux"),
        "uname was not refused as answered: {out:?}"
    );
}
