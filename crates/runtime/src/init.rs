//! What runs in the cloned child, and the typed channel between it and the runtime.
//!
//! The parent and the child talk over a `SOCK_SEQPACKET` socketpair (one datagram per message,
//! so no framing is needed) carrying serde-encoded [`Message`]s. An error in the child crosses
//! back with its cause as text; a clean EOF after `execve` means the exec succeeded (the socket
//! is close-on-exec).
//!
//! - `init::container`: the container's init (`create`/`run`).
//! - `init::exec`: a process joining a running container (`exec`).
//! - `init::namespaces`: clone flags, setns by path, id maps, time offsets.
//! - `init::tty`: the pty and the console socket.
//! - `init::command`: PATH lookup and exec of the user process.

pub mod command;
pub mod container;
pub mod exec;
pub mod namespaces;
pub mod tty;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// Messages between the runtime (parent) and the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// parent -> child: cgroup joined, id maps written; go on. Carries the child's host pid
    /// (for the state hooks see).
    Go {
        /// the init's pid in the runtime's pid namespace
        pid: i32,
    },
    /// child -> parent: mounts are ready, run `prestart`/`createRuntime` hooks now.
    RunRuntimeHooks,
    /// parent -> child: runtime hooks done.
    HooksDone,
    /// child -> parent: everything before the exec fifo is done; non-fatal problems (skipped
    /// capabilities...) for the runtime to report.
    Ready {
        /// warnings from applying the process attributes
        warnings: Vec<String>,
    },
    /// child -> parent: the seccomp notify fd rides along (SCM_RIGHTS) for `listenerPath`.
    SeccompNotify,
    /// either way: a failure, with its cause chain as text.
    Error(String),
}

/// Errors of the parent/child channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// socketpair/send/recv failed.
    #[error("init channel: {0}")]
    Io(#[source] nix::Error),
    /// The peer closed the channel without a message.
    #[error("init channel closed by peer")]
    Closed,
    /// A datagram was not a valid message.
    #[error("init channel: bad message: {0}")]
    Decode(#[source] serde_json::Error),
}

/// One end of the parent/child channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair (close-on-exec).
    pub fn pair() -> Result<(Channel, Channel), ChannelError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(ChannelError::Io)?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Sends one message.
    pub fn send(&self, msg: &Message) -> Result<(), ChannelError> {
        let data = serde_json::to_vec(msg).map_err(ChannelError::Decode)?;
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL).map_err(ChannelError::Io)?;
        Ok(())
    }

    /// Sends one message with `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(
        &self,
        msg: &Message,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), ChannelError> {
        let data = serde_json::to_vec(msg).map_err(ChannelError::Decode)?;
        berth_sys::fdpass::send_fd(std::os::fd::AsFd::as_fd(&self.fd), fd, &data)
            .map_err(ChannelError::Io)
    }

    /// Receives one message and the fd it carries, if any; [`ChannelError::Closed`] on EOF.
    pub fn recv_with_fd(&self) -> Result<(Message, Option<OwnedFd>), ChannelError> {
        let mut buf = [0u8; 8192];
        let (n, fd) = loop {
            match berth_sys::fdpass::recv_maybe_fd(std::os::fd::AsFd::as_fd(&self.fd), &mut buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(ChannelError::Io)?,
            }
        };
        if n == 0 {
            return Err(ChannelError::Closed);
        }
        let msg = serde_json::from_slice(&buf[..n]).map_err(ChannelError::Decode)?;
        Ok((msg, fd))
    }

    /// Receives one message; [`ChannelError::Closed`] on EOF.
    pub fn recv(&self) -> Result<Message, ChannelError> {
        let mut buf = [0u8; 8192];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(ChannelError::Io)?,
            }
        };
        if n == 0 {
            return Err(ChannelError::Closed);
        }
        serde_json::from_slice(&buf[..n]).map_err(ChannelError::Decode)
    }

    /// Like [`Channel::recv`] but EOF is `Ok(None)` (the child exec'd: the socket was CLOEXEC).
    pub fn recv_or_eof(&self) -> Result<Option<Message>, ChannelError> {
        match self.recv() {
            Err(ChannelError::Closed) => Ok(None),
            r => r.map(Some),
        }
    }
}

/// Formats an error and its `source()` chain as one line: `a: b: c` (dropping repeats).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair_and_eof_is_seen() {
        let (a, b) = Channel::pair().expect("pair");
        a.send(&Message::Error(
            "exec \"x\": no such file or directory".into(),
        ))
        .expect("send");
        match b.recv().expect("recv") {
            Message::Error(m) => assert!(m.contains("no such file")),
            m => panic!("unexpected {m:?}"),
        }
        drop(a);
        assert!(b.recv_or_eof().expect("eof").is_none());
    }
}
