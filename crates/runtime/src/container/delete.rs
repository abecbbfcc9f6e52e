//! `delete`: a stopped (or never started) container is cleaned up; a running one only with
//! `--force`, which SIGKILLs its whole cgroup and waits for the init. Cleanup removes the cgroup
//! and the state dir, then runs every `poststop` hook (all of them, even after a failure).

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use oci_spec::runtime::Spec;

use super::Container;
use crate::error::Error;
use crate::init::error_chain;
use crate::state::{self, Status};

/// Deletes container `id`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), Error> {
    let c = match Container::load(root, id) {
        // A create that died before writing state.json, or a state file that can't be read:
        // with --force, remove what is there.
        Err(Error::NotFound(_) | Error::State(_)) if force => {
            let dir = root.join(id);
            return match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("remove state dir", dir)(e))
                }
                _ => Ok(()),
            };
        }
        r => r?,
    };
    if !c.status.can_delete() && !force {
        return Err(Error::BadState {
            op: "delete",
            id: id.to_owned(),
            status: c.status,
        });
    }
    destroy(&c, None)
}

/// Kills whatever is left, waits for the init, removes cgroup and state dir, runs poststop hooks
/// (from `spec` when the caller has it, else from the bundle's config.json).
pub fn destroy(c: &Container, spec: Option<&Spec>) -> Result<(), Error> {
    let cg = c.cgroup()?;
    if c.status != Status::Stopped {
        cg.kill_all(Signal::SIGKILL).map_err(Error::Cgroup)?;
        if c.status == Status::Paused {
            cg.freeze(berth_cgroups::FreezerState::Thawed)
                .map_err(Error::Cgroup)?;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(c.state.pid), Signal::SIGKILL);
        wait_gone(c.state.pid, c.state.pid_start_time, Duration::from_secs(10));
    }
    // Without a pid namespace, processes outlive the init: kill them too (cheap check first).
    if cg.pids().is_ok_and(|p| !p.is_empty()) {
        let _ = cg.kill_all(Signal::SIGKILL);
    }
    cg.destroy().map_err(Error::Cgroup)?;
    std::fs::remove_dir_all(&c.dir).map_err(Error::io("remove state dir", &c.dir))?;
    let loaded;
    let spec = match spec {
        Some(s) => Some(s),
        None => {
            loaded = c.spec().ok();
            loaded.as_ref()
        }
    };
    let hooks = spec.and_then(|s| s.hooks().as_ref().and_then(|h| h.poststop().as_ref()));
    if let Some(hooks) = hooks {
        let errs: Vec<String> =
            crate::hooks::run_all_poststop(hooks, &c.state.to_hook_state(Status::Stopped))
                .iter()
                .map(|e| error_chain(e))
                .collect();
        if !errs.is_empty() {
            return Err(Error::Hook {
                kind: "poststop",
                msg: errs.join("; "),
            });
        }
    }
    Ok(())
}

/// Waits until `pid` (with `start_time`) has exited, reaping it if it is our child.
pub fn wait_gone(pid: i32, start_time: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let p = Pid::from_raw(pid);
    let pidfd = berth_sys::process::pidfd_open(p).ok();
    loop {
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if !state::pid_alive(pid, start_time) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match &pidfd {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
