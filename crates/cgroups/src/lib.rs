//! berth-cgroups: cgroups v1, v2 and hybrid behind one trait.
//!
//! [`create_manager`] detects the machine's layout ([`layout`]) and returns a [`Manager`] for a
//! container's cgroup: [`v1::V1Manager`] on v1 and hybrid machines (in hybrid mode the process
//! also joins the controller-less cgroup2 hierarchy, as runc does, which gives `cgroup.kill` and
//! a v2 freezer), [`v2::V2Manager`] on unified machines. Each controller is a pure
//! `apply(resources, dir)` function in its own file, tested on fixture directories.
//!
//! The default cgroup of a container without `linux.cgroupsPath` is `/berth/<id>`
//! ([`layout::default_path`]).
//!
//! Use from a runtime (`create`/`run`/`exec`):
//! 1. `let m = create_manager(cgroups_path, id, systemd)?; m.create()?; m.apply(&resources)?;`
//!    (limits are in place before the first instruction of the container runs);
//! 2. `let e = m.enter()?;` then fork — with `clone3(CLONE_INTO_CGROUP)` and `e.cgroup_fd()`
//!    when the fork can — then `e.finish(child_pid, cloned_into)?` in the parent: the child
//!    starts inside the v1 hierarchies without the ~10 ms `cgroup.procs` write ([`enter`]
//!    explains why); `finish` moves the caller back, and adds the child to the cgroup2
//!    directory the slow way only if it was not cloned into it. ([`Manager::add_task`] after a
//!    plain fork also works, at the full price.)
//! 3. `pause`/`resume`: [`Manager::freeze`]; `events --stats`: [`Manager::stats`]; `ps`:
//!    [`Manager::pids`]; `kill --all`/`delete --force`: [`Manager::kill_all`]; `delete`:
//!    [`Manager::destroy`] (after the processes are gone; it retries EBUSY briefly).

pub mod devices;
mod dir;
pub mod enter;
pub mod error;
mod file;
pub mod layout;
pub mod pids;
pub mod rdma;
pub mod stats;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod test_fixture;

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

pub use enter::Entered;
pub use error::{CgroupError, Result};
pub use layout::{default_path, Layout, Mode};
pub use stats::Stats;

/// Freezer state of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Frozen,
    Thawed,
}

/// A container's cgroup, whatever the cgroup version.
pub trait Manager: std::fmt::Debug + Send + Sync {
    /// The cgroup path as configured (`/berth/<id>` by default), relative to the hierarchy
    /// roots for an absolute path.
    fn path(&self) -> &Path;

    /// The directories of this cgroup, one per hierarchy.
    fn dirs(&self) -> Vec<PathBuf>;

    /// Creates the cgroup directories (`mkdir -p`); remembers the ancestors it created so
    /// [`Manager::destroy`] can remove them again when they are left empty.
    fn create(&self) -> Result<()>;

    /// Moves the process `pid` (all its threads) into the cgroup. This costs an RCU grace
    /// period in the kernel (~10 ms here); a runtime about to fork should use
    /// [`Manager::enter`] instead.
    fn add_task(&self, pid: Pid) -> Result<()>;

    /// Moves the *calling thread* into the container's v1 cgroups without the kernel's global
    /// lock, so that a process forked now starts inside them; the returned guard holds the
    /// cgroup2 directory to clone into (`CLONE_INTO_CGROUP`) and moves the caller back on
    /// [`Entered::finish`]. See the [`enter`](mod@crate::enter) module.
    fn enter(&self) -> Result<Entered>;

    /// Applies resource limits. Only set fields are written; asking for a controller that is
    /// not available is an error naming it.
    fn apply(&self, resources: &LinuxResources) -> Result<()>;

    /// Freezes or thaws every process of the cgroup, waiting until the state has settled.
    fn freeze(&self, state: FreezerState) -> Result<()>;

    /// The current freezer state.
    fn state(&self) -> Result<FreezerState>;

    /// Resource usage, in the shape of runc's `events --stats`.
    fn stats(&self) -> Result<Stats>;

    /// How many processes the kernel's OOM killer has killed in this cgroup so far (v1
    /// `memory.oom_control` `oom_kill`, v2 `memory.events` `oom_kill`): `events` reports an
    /// `oom` event when it grows.
    fn oom_kills(&self) -> Result<u64>;

    /// Every process in the cgroup and its sub-cgroups.
    fn pids(&self) -> Result<Vec<Pid>>;

    /// Sends `signal` to every process in the cgroup (frozen while signalling so no process
    /// escapes by forking; `SIGKILL` uses `cgroup.kill` where the kernel has it).
    fn kill_all(&self, signal: Signal) -> Result<()>;

    /// Removes the cgroup directories (sub-cgroups first), and the ancestors this manager
    /// created if they are empty. Missing directories are not an error.
    fn destroy(&self) -> Result<()>;
}

/// The manager for a container's cgroup on this machine.
///
/// `cgroups_path` is `linux.cgroupsPath` (see [`layout`] for the rules). With `systemd` (the
/// runtime's `--systemd-cgroup`), the path must have systemd's `slice:prefix:name` form and is
/// mapped to the cgroupfs path systemd would use (`/system.slice/prefix-name.scope`, nested
/// slices expanded); there is no systemd on these machines, so no unit is created: the
/// directories are managed like any other path.
pub fn create_manager(
    cgroups_path: Option<&Path>,
    container_id: &str,
    systemd: bool,
) -> Result<Box<dyn Manager>> {
    let layout = Layout::detect()?;
    if systemd {
        let p = layout::systemd_path(cgroups_path, container_id)?;
        return create_manager_with(&layout, Some(&p), container_id);
    }
    create_manager_with(&layout, cgroups_path, container_id)
}

/// [`create_manager`] over a given layout (a fixture in tests, or a layout detected once and
/// reused by a long-running engine).
pub fn create_manager_with(
    layout: &Layout,
    cgroups_path: Option<&Path>,
    container_id: &str,
) -> Result<Box<dyn Manager>> {
    let path = layout::CgroupPath::new(cgroups_path, container_id)?;
    Ok(match layout.mode {
        Mode::Unified => Box::new(v2::V2Manager::new(layout, &path)?),
        Mode::Legacy | Mode::Hybrid => Box::new(v1::V1Manager::new(layout, &path)?),
    })
}

/// Signals every process of `m`: freezes the cgroup (when a freezer is there) so nothing forks
/// while the list is read, signals each process (ones already gone are skipped), and thaws.
pub(crate) fn signal_all(m: &dyn Manager, signal: Signal) -> Result<()> {
    let frozen = m.freeze(FreezerState::Frozen).is_ok();
    let res = (|| {
        for pid in m.pids()? {
            match nix::sys::signal::kill(pid, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Kill {
                        pid: pid.as_raw(),
                        signal,
                        source,
                    })
                }
            }
        }
        Ok(())
    })();
    if frozen {
        let thawed = m.freeze(FreezerState::Thawed);
        res?;
        return thawed;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths_need_the_slice_form() {
        let e = create_manager(Some(Path::new("/not/systemd")), "x", true).unwrap_err();
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        let m = create_manager(Some(Path::new("system.slice:berth:x")), "x", true).unwrap();
        assert_eq!(m.path(), Path::new("/system.slice/berth-x.scope"));
    }

    #[test]
    fn managers_over_fixtures() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("memory")).unwrap();
        let l = Layout::v1_fixture(t.path(), None).unwrap();
        let m = create_manager_with(&l, None, "c1").unwrap();
        assert_eq!(m.path(), Path::new("/berth/c1"));
        assert_eq!(m.dirs(), vec![t.path().join("memory/berth/c1")]);
        let l = Layout::unified_at(t.path());
        let m = create_manager_with(&l, Some(Path::new("/a/b")), "c1").unwrap();
        assert_eq!(m.dirs(), vec![t.path().join("a/b")]);
    }
}
