//! The client side of the shim contract, for berthd: spawn a shim, tell a live shim from an
//! exited container after a restart, wait for the exit, start a `--no-start` shim, attach.
//! Blocking std I/O; async callers can use [`crate::protocol`] on their own sockets.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::config::{Config, LogDriver};
pub use crate::logfile::Rotation;
use crate::protocol::{self, Decoder, Frame, ProtocolError};
use crate::sockpath;
pub use crate::state::ExitRecord;
use crate::state::{self, StateError};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The shim binary could not be run.
    #[error("run {bin}: {source}")]
    Spawn {
        /// the shim binary
        bin: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The shim could not start the container; the first line is the runtime's message.
    #[error("{message}")]
    Failed {
        /// the shim's stderr
        message: String,
    },
    /// Talking to a shim socket failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// what was being done
        op: &'static str,
        /// the socket
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The shim sent something that is not a frame.
    #[error("shim at {path}: {source}")]
    Protocol {
        /// the socket
        path: PathBuf,
        /// cause
        #[source]
        source: ProtocolError,
    },
    /// The shim answered a control request with an error.
    #[error("{message}")]
    Refused {
        /// the shim's (or runtime's) message
        message: String,
    },
    /// The state files could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// Waiting for the exit timed out.
    #[error("shim {pid} in {dir} still running after {after:?}")]
    Timeout {
        /// the shim's pid
        pid: i32,
        /// its state dir
        dir: PathBuf,
        /// how long was waited
        after: Duration,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ClientError + 'a {
    move |source| ClientError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Runs `shim` with `cfg` and waits until the container is started (or, with `no_start`,
/// created). On failure the error's first line is the runtime's message.
pub fn spawn(shim: &Path, cfg: &Config) -> Result<(), ClientError> {
    let out = Command::new(shim)
        .args(cfg.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ClientError::Spawn {
            bin: shim.to_owned(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut message = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    if message.is_empty() {
        message = format!("berth-shim for {} failed ({})", cfg.id, out.status);
    }
    Err(ClientError::Failed { message })
}

/// What a state dir says about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimStatus {
    /// The shim is alive: the container is created or running.
    Running {
        /// the shim's pid
        pid: i32,
    },
    /// The container exited; the shim is gone or finishing.
    Exited(ExitRecord),
    /// No live shim and no exit record (the shim was killed, or never ran).
    Lost,
}

/// Reads the state dir (after a berthd restart: re-adoption).
pub fn status(state_dir: &Path) -> Result<ShimStatus, ClientError> {
    if let Some(r) = ExitRecord::load(state_dir)? {
        return Ok(ShimStatus::Exited(r));
    }
    if let Some(pid) = state::load_pid(state_dir)? {
        if is_shim(pid, state_dir) {
            return Ok(ShimStatus::Running { pid });
        }
    }
    // the shim may have written exit.json and removed shim.pid between the two reads
    Ok(match ExitRecord::load(state_dir)? {
        Some(r) => ShimStatus::Exited(r),
        None => ShimStatus::Lost,
    })
}

/// Whether `pid` is a berth-shim serving `state_dir` (not a recycled pid).
pub fn is_shim(pid: i32, state_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let named = args
        .first()
        .is_some_and(|a| a.rsplit(|&b| b == b'/').next() == Some(b"berth-shim".as_slice()));
    let dir = state_dir.as_os_str().as_encoded_bytes();
    let serves = args
        .windows(2)
        .any(|w| w[0] == b"--state-dir" && w[1] == dir)
        || args
            .iter()
            .any(|a| a.strip_prefix(b"--state-dir=".as_slice()) == Some(dir));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false);
    named && serves && !zombie
}

/// Waits until the shim of `state_dir` is gone (exit.json written, container deleted) and
/// returns the exit record; `timeout` `None` waits forever.
pub fn wait_exit(state_dir: &Path, timeout: Option<Duration>) -> Result<ExitRecord, ClientError> {
    let start = Instant::now();
    if let Some(pid) = state::load_pid(state_dir)? {
        if let Ok(pidfd) = berth_sys::process::pidfd_open(nix::unistd::Pid::from_raw(pid)) {
            loop {
                if !is_shim(pid, state_dir) {
                    break;
                }
                let left = match timeout {
                    Some(t) => match t.checked_sub(start.elapsed()) {
                        Some(l) => l,
                        None => {
                            return Err(ClientError::Timeout {
                                pid,
                                dir: state_dir.to_owned(),
                                after: t,
                            })
                        }
                    },
                    None => Duration::from_secs(60),
                };
                let ms = u16::try_from(left.as_millis().min(60_000) + 1).unwrap_or(u16::MAX);
                let mut fds = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(&pidfd),
                    nix::poll::PollFlags::POLLIN,
                )];
                match nix::poll::poll(&mut fds, ms) {
                    Ok(n) if n > 0 => break,
                    _ => {}
                }
            }
        }
    }
    ExitRecord::load(state_dir)?.ok_or_else(|| ClientError::Refused {
        message: format!(
            "no exit record in {}: the shim died without one",
            state_dir.display()
        ),
    })
}

/// One control request; returns the reply text.
fn control(state_dir: &Path, kind: u8) -> Result<String, ClientError> {
    let path = state_dir.join(state::CONTROL_SOCK);
    let mut s = sockpath::connect(&path).map_err(io_err("connect", &path))?;
    s.write_all(&protocol::header(kind, 0))
        .map_err(io_err("write", &path))?;
    let mut d = Decoder::default();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = d.next_frame().map_err(|source| ClientError::Protocol {
            path: path.clone(),
            source,
        })? {
            let text = String::from_utf8_lossy(&f.payload).into_owned();
            return match f.kind {
                protocol::REPLY_OK => Ok(text),
                _ => Err(ClientError::Refused { message: text }),
            };
        }
        let n = s.read(&mut buf).map_err(io_err("read", &path))?;
        if n == 0 {
            return Err(io_err("read", &path)(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        d.push(&buf[..n]);
    }
}

/// Starts the created container of a `--no-start` shim; the error is the runtime's message.
pub fn start(state_dir: &Path) -> Result<(), ClientError> {
    control(state_dir, protocol::CTL_START).map(drop)
}

/// The protocol version the shim speaks.
pub fn version(state_dir: &Path) -> Result<u32, ClientError> {
    let text = control(state_dir, protocol::CTL_VERSION)?;
    text.trim().parse().map_err(|_| ClientError::Refused {
        message: format!("bad version reply {text:?}"),
    })
}

/// An attach connection.
#[derive(Debug)]
pub struct Attach {
    sock: UnixStream,
    path: PathBuf,
    decoder: Decoder,
}

impl Attach {
    /// Connects to `<state_dir>/attach.sock`.
    pub fn connect(state_dir: &Path) -> Result<Attach, ClientError> {
        let path = state_dir.join(state::ATTACH_SOCK);
        let sock = sockpath::connect(&path).map_err(io_err("connect", &path))?;
        Ok(Attach {
            sock,
            path,
            decoder: Decoder::default(),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.sock
            .write_all(bytes)
            .map_err(io_err("write", &self.path))
    }

    /// Sends bytes to the container's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) -> Result<(), ClientError> {
        for chunk in data.chunks(protocol::MAX_FRAME) {
            let mut f = Vec::with_capacity(chunk.len() + protocol::HEADER_LEN);
            protocol::encode(&mut f, protocol::IN_STDIN, chunk);
            self.send(&f)?;
        }
        Ok(())
    }

    /// Closes the container's stdin (no effect with a TTY).
    pub fn close_stdin(&mut self) -> Result<(), ClientError> {
        self.send(&protocol::header(protocol::IN_STDIN_CLOSE, 0))
    }

    /// Resizes the container's terminal.
    pub fn resize(&mut self, rows: u16, cols: u16) -> Result<(), ClientError> {
        self.send(&protocol::resize_frame(rows, cols))
    }

    /// The next output frame (without a TTY); `None` at the end of the stream.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        let mut buf = [0u8; 16 << 10];
        loop {
            if let Some(f) = self
                .decoder
                .next_frame()
                .map_err(|source| ClientError::Protocol {
                    path: self.path.clone(),
                    source,
                })?
            {
                return Ok(Some(f));
            }
            let n = self
                .sock
                .read(&mut buf)
                .map_err(io_err("read", &self.path))?;
            if n == 0 {
                return Ok(None);
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// Raw output bytes (with a TTY); 0 at the end of the stream.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> Result<usize, ClientError> {
        self.sock.read(buf).map_err(io_err("read", &self.path))
    }

    /// The socket, e.g. to set timeouts.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }

    /// The socket itself, e.g. to hand it to an async runtime (frames already read but not
    /// returned by [`Attach::read_frame`] are lost: convert before reading).
    pub fn into_socket(self) -> UnixStream {
        self.sock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_empty_and_exited_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(status(dir.path()).expect("status"), ShimStatus::Lost);
        // a pid that is not a shim (ours) is not mistaken for one
        state::save_pid(dir.path(), std::process::id() as i32).expect("pid");
        assert_eq!(status(dir.path()).expect("status"), ShimStatus::Lost);
        let r = ExitRecord {
            exit_code: 7,
            signal: None,
            oom_killed: None,
            started_at: None,
            finished_at: "2026-11-27T08:00:00.000000000Z".into(),
        };
        r.save(dir.path()).expect("save");
        assert_eq!(status(dir.path()).expect("status"), ShimStatus::Exited(r));
    }
}
