//! `run` = create + start + wait + delete in one process. Signals the runtime receives are
//! forwarded to the container's init; the exit code of the init is passed through (128+signal
//! when it was killed). `--detach` stops after start; `--keep` skips the delete.

use std::path::Path;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::console::ConsoleListener;
use super::create::{create_from, read_bundle, CreateOptions};
use super::delete::destroy;
use super::start::start_loaded;
use crate::error::Error;
use crate::state::Status;

/// The signals `run`/`exec` forward (plus SIGCHLD, which they handle).
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGABRT,
    ] {
        set.remove(s);
    }
    set
}

/// Runs the container; returns the exit code to exit with.
/// Failing `poststart` hooks are passed to `warn` (see [`super::start::start`]).
pub fn run(
    root: &Path,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
    warn: &mut dyn FnMut(&str),
) -> Result<i32, Error> {
    if !detach {
        berth_sys::process::set_child_subreaper().map_err(Error::sys("become child subreaper"))?;
    }
    let set = forwarded_signals();
    if !detach {
        // Blocked before the clone so no signal is lost; the init unblocks all before exec.
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(Error::sys("block signals"))?;
    }
    let (bundle, spec) = read_bundle(opts)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // `run` in the foreground with a terminal and no console socket: we hold the pty ourselves.
    let console = if terminal && !detach && opts.console_socket.is_none() {
        Some(ConsoleListener::bind(root, &opts.id)?)
    } else {
        None
    };
    let mut local = opts.clone();
    local.foreground = !detach;
    if let Some(l) = &console {
        local.console_socket = Some(l.path().to_path_buf());
    }
    let (mut c, spec) = create_from(root, &local, bundle, spec)?.into_container();
    let master = match &console {
        Some(l) => match l.receive_master() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = destroy(&c, Some(&spec));
                return Err(e);
            }
        },
        None => None,
    };
    if let Err(e) = start_loaded(&c, Some(&spec), warn) {
        let _ = destroy(&c, Some(&spec));
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let init = Pid::from_raw(c.state.pid);
    let code = match master {
        Some(m) => {
            let mut set = set;
            set.add(Signal::SIGWINCH);
            super::console::proxy(m, init, &set)?
        }
        None => wait_forwarding(init, &set),
    };
    if !keep {
        // The init is reaped: everything in its pid namespace died with it.
        c.status = Status::Stopped;
        destroy(&c, Some(&spec))?;
    }
    Ok(code)
}

/// Waits for `init`, forwarding every signal in `set` to it; reaps orphans (we are a subreaper).
pub fn wait_forwarding(init: Pid, set: &SigSet) -> i32 {
    loop {
        // Reap first: the init may have exited before we got here.
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == init => return code,
                Ok(WaitStatus::Signaled(p, sig, _)) if p == init => return 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                let _ = kill(init, sig);
            }
            Err(_) => {}
        }
    }
}
