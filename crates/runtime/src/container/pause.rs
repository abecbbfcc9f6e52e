//! `pause` / `resume`: freeze and thaw the container's cgroup; the status is recorded so `state`
//! reports `paused`.

use std::path::Path;

use berth_cgroups::FreezerState;

use super::Container;
use crate::error::Error;
use crate::state::Status;

/// Freezes container `id`.
pub fn pause(root: &Path, id: &str) -> Result<(), Error> {
    let mut c = Container::load(root, id)?;
    c.check("pause", c.status.can_pause())?;
    c.cgroup()?
        .freeze(FreezerState::Frozen)
        .map_err(Error::Cgroup)?;
    c.state.status = Status::Paused;
    c.state.save(&c.dir).map_err(Error::from)
}

/// Thaws container `id`.
pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let mut c = Container::load(root, id)?;
    c.check("resume", c.status.can_resume())?;
    c.cgroup()?
        .freeze(FreezerState::Thawed)
        .map_err(Error::Cgroup)?;
    c.state.status = Status::Running;
    c.state.save(&c.dir).map_err(Error::from)
}
