//! The container's terminal: a pty made inside the container (its devpts), the slave becomes the
//! controlling terminal and stdio, the master goes to the `--console-socket` with SCM_RIGHTS.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// Errors of terminal setup.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// openpty failed.
    #[error("open pty: {0}")]
    Open(#[source] nix::Error),
    /// Sending the master fd failed.
    #[error("send pty master to console socket: {0}")]
    Send(#[source] nix::Error),
    /// Making the slave the controlling terminal / stdio failed.
    #[error("set up pty slave as {what}: {source}")]
    Slave {
        /// which step
        what: &'static str,
        /// cause
        #[source]
        source: nix::Error,
    },
}

/// Makes a pty, sends its master over `console` (the connected `--console-socket`), and makes
/// the slave the caller's controlling terminal and stdin/stdout/stderr. Binds the slave onto
/// /dev/console when `bind_console` (init: after pivot, like runc).
pub fn setup_console(
    console: &OwnedFd,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> Result<(), TtyError> {
    let pty = nix::pty::openpty(None, None).map_err(TtyError::Open)?;
    if let Some((rows, cols)) = size {
        let _ = berth_sys::process::set_window_size(&pty.master, rows, cols);
    }
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).ok();
    let name = slave_path
        .as_deref()
        .and_then(Path::to_str)
        .unwrap_or("/dev/console")
        .to_owned();
    berth_sys::fdpass::send_fd(console.as_fd(), pty.master.as_fd(), name.as_bytes())
        .map_err(TtyError::Send)?;
    drop(pty.master);
    if bind_console {
        if let Some(p) = &slave_path {
            if !Path::new("/dev/console").exists() {
                let _ = std::fs::File::create("/dev/console");
            }
            let _ = nix::mount::mount(
                Some(p.as_path()),
                "/dev/console",
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            );
        }
    }
    let _ = nix::unistd::setsid();
    berth_sys::process::set_controlling_terminal(&pty.slave).map_err(|source| TtyError::Slave {
        what: "controlling terminal",
        source,
    })?;
    let stdio = |r: nix::Result<()>| {
        r.map_err(|source| TtyError::Slave {
            what: "stdio",
            source,
        })
    };
    stdio(nix::unistd::dup2_stdin(&pty.slave))?;
    stdio(nix::unistd::dup2_stdout(&pty.slave))?;
    stdio(nix::unistd::dup2_stderr(&pty.slave))?;
    Ok(())
}
