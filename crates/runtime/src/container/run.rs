//! `run` = create + start + wait + delete in one process. Signals the runtime receives are
//! forwarded to the container's init; the exit code of the init is passed through (128+signal
//! when it was killed). `--detach` stops after start; `--keep` skips the delete.

use std::path::Path;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::{create, CreateOptions};
use super::delete::delete;
use super::start::start;
use crate::error::Error;

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
pub fn run(root: &Path, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32, Error> {
    if detach {
        create(root, opts)?;
        return start_or_clean(root, opts).map(|()| 0);
    }
    berth_sys::process::set_child_subreaper().map_err(Error::sys("become child subreaper"))?;
    let set = forwarded_signals();
    // Blocked before the clone so no signal is lost; the init unblocks everything before exec.
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(Error::sys("block signals"))?;
    let created = create(root, opts)?;
    start_or_clean(root, opts)?;
    let init = Pid::from_raw(created.state.pid);
    let code = wait_forwarding(init, &set);
    if !keep {
        delete(root, &opts.id, true)?;
    }
    Ok(code)
}

fn start_or_clean(root: &Path, opts: &CreateOptions) -> Result<(), Error> {
    if let Err(e) = start(root, &opts.id) {
        let _ = delete(root, &opts.id, true);
        return Err(e);
    }
    Ok(())
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
