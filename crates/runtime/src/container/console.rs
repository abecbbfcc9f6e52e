//! The foreground terminal of `run` when `process.terminal` is true and no `--console-socket`
//! was given (runc's behaviour): the runtime receives the pty master itself, puts its own
//! terminal in raw mode and copies stdin -> pty and pty -> stdout until the init exits,
//! forwarding signals and window size changes.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::Error;

/// A listening socket standing in for `--console-socket`, removed on drop.
#[derive(Debug)]
pub struct ConsoleListener {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleListener {
    /// Binds `<root>/.console-<id>.sock`.
    pub fn bind(root: &Path, id: &str) -> Result<ConsoleListener, Error> {
        std::fs::create_dir_all(root).map_err(Error::io("create state root", root))?;
        let path = root.join(format!(".console-{id}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(Error::io("bind console socket", &path))?;
        Ok(ConsoleListener { listener, path })
    }

    /// The path to pass as the console socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the init's connection (already queued) and receives the pty master.
    pub fn receive_master(&self) -> Result<OwnedFd, Error> {
        let (conn, _) = self
            .listener
            .accept()
            .map_err(Error::io("accept console socket", &self.path))?;
        let (fd, _) =
            berth_sys::fdpass::recv_fd(conn.as_fd()).map_err(Error::sys("receive pty master"))?;
        Ok(fd)
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Restores the terminal mode on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Copies between our stdio and `master` until `init` exits; forwards `set` signals to it and
/// SIGWINCH as a resize. Returns the exit code (128+signal when killed).
pub fn proxy(master: OwnedFd, init: Pid, set: &SigSet) -> Result<i32, Error> {
    let stdin = std::io::stdin();
    let stdin_fd = stdin.as_fd();
    let _raw = match termios::tcgetattr(stdin_fd) {
        Ok(saved) => {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin_fd, SetArg::TCSANOW, &raw);
            if let Ok((rows, cols)) = berth_sys::process::window_size(stdin_fd) {
                let _ = berth_sys::process::set_window_size(&master, rows, cols);
            }
            Some(RawMode {
                fd: stdin_fd,
                saved,
            })
        }
        Err(_) => None,
    };
    let sfd = SignalFd::new(set).map_err(Error::sys("signalfd"))?;
    let mut master_file = std::fs::File::from(master);
    let mut out = std::io::stdout();
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    let mut code = None;
    loop {
        if let Some(c) = reap(init) {
            code = Some(c);
        }
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master_file.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        // Once the init is gone, only drain what the pty still holds.
        let timeout = if code.is_some() {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll console")(e)),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if !sig_ready.is_empty() {
            if let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGWINCH) => {
                        if let Ok((rows, cols)) = berth_sys::process::window_size(stdin_fd) {
                            let _ = berth_sys::process::set_window_size(&master_file, rows, cols);
                        }
                    }
                    Ok(sig) => {
                        let _ = kill(init, sig);
                    }
                    Err(_) => {}
                }
            }
        }
        if master_ready.intersects(PollFlags::POLLIN) {
            match master_file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                _ => {
                    if code.is_some() {
                        break;
                    }
                }
            }
        } else if master_ready.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) && code.is_some()
        {
            break;
        }
        if stdin_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = master_file.write_all(&buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
    }
    Ok(code.unwrap_or(0))
}

fn reap(init: Pid) -> Option<i32> {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == init => return Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == init => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
