//! Passing file descriptors over unix sockets with SCM_RIGHTS (the console socket protocol
//! podman/containerd use to receive a container's pty master, and seccomp notify fds).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends `fd` with `payload` (e.g. the pty name; runc sends the console path) as one message.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let payload = if payload.is_empty() {
        b"/dev/console".as_slice()
    } else {
        payload
    };
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one message into `buf`, with the fd it carries if any (SCM_RIGHTS, close-on-exec).
/// Returns the payload length (0: peer closed).
pub fn recv_maybe_fd(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, fd) in fds.iter().enumerate() {
                // SAFETY: fds received with SCM_RIGHTS are new in this process and unowned;
                // extra ones (never sent by berth) are wrapped only to be closed.
                let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
                if i == 0 {
                    got = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, got))
}

/// Receives one message carrying an fd; returns the fd and the payload bytes.
pub fn recv_fd(sock: BorrowedFd<'_>) -> nix::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
    let (bytes, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut got = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                got = fds.first().copied();
            }
        }
        (msg.bytes, got)
    };
    let fd = fd.ok_or(nix::errno::Errno::EBADMSG)?;
    buf.truncate(bytes);
    // SAFETY: the fd was just received with SCM_RIGHTS: it is new in this process and unowned.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    #[test]
    fn fd_crosses_socketpair() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("pair");
        let file = std::fs::File::open("/proc/self/status").expect("open");
        send_fd(a.as_fd(), file.as_fd(), b"x").expect("send");
        let (fd, payload) = recv_fd(b.as_fd()).expect("recv");
        assert_eq!(payload, b"x");
        let st1 = nix::sys::stat::fstat(&fd).expect("fstat");
        let st2 = nix::sys::stat::fstat(&file).expect("fstat");
        assert_eq!(st1.st_ino, st2.st_ino);
    }
}
