//! `kill`: send a signal to the init (through a pidfd, checked against the recorded start time so
//! a reused pid is never hit) or, with `--all`, to every process of the container's cgroup.

use std::path::Path;
use std::str::FromStr;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Container;
use crate::error::Error;
use crate::state::{self, Status};

/// Parses `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal, Error> {
    let bad = || Error::Usage(format!("unknown signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

/// Sends `sig` to container `id` (every process of its cgroup with `all`).
pub fn kill(root: &Path, id: &str, sig: Signal, all: bool) -> Result<(), Error> {
    let c = Container::load(root, id)?;
    c.check(
        "kill",
        c.status.can_kill() || (all && c.status == Status::Stopped),
    )?;
    if all {
        return signal_all(&c, sig);
    }
    signal_init(&c, sig)
}

/// Signals the init through a pidfd after checking it is still our init.
pub fn signal_init(c: &Container, sig: Signal) -> Result<(), Error> {
    let pid = Pid::from_raw(c.state.pid);
    let fd =
        berth_sys::process::pidfd_open(pid).map_err(Error::sys("open pidfd of container init"))?;
    // The pidfd pins the process: if the start time still matches now, it is our init.
    if !state::pid_alive(c.state.pid, c.state.pid_start_time) {
        return Err(Error::BadState {
            op: "kill",
            id: c.state.id.clone(),
            status: Status::Stopped,
        });
    }
    berth_sys::process::pidfd_send_signal(&fd, sig as i32)
        .map_err(Error::sys("signal container init"))
}

/// Signals every process in the container's cgroup (thawing a paused one so SIGKILL lands).
pub fn signal_all(c: &Container, sig: Signal) -> Result<(), Error> {
    let cg = c.cgroup()?;
    cg.kill_all(sig).map_err(Error::Cgroup)?;
    if c.status == Status::Paused && sig == Signal::SIGKILL {
        cg.freeze(berth_cgroups::FreezerState::Thawed)
            .map_err(Error::Cgroup)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers_parse() {
        assert_eq!(parse_signal("KILL").expect("KILL"), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGTERM").expect("SIGTERM"), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").expect("hup"), Signal::SIGHUP);
        assert_eq!(parse_signal("9").expect("9"), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
