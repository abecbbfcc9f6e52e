//! Putting a process that is about to be forked into the container's cgroup cheaply.
//!
//! Writing a pid to `cgroup.procs` takes the kernel's global `cgroup_threadgroup_rwsem` for
//! writing, which waits for an RCU grace period: about 10 ms on these machines, the single most
//! expensive step of every runtime's `create`. Two kernel paths avoid that lock:
//! - a thread moving *itself* (`0`) through a v1 `tasks` file (a single-thread move: the kernel
//!   skips the global lock, see `cgroup_procs_write_start`), ~15 µs per hierarchy;
//! - `clone3(CLONE_INTO_CGROUP)` for the cgroup2 hierarchy (only a read lock).
//!
//! So the runtime calls [`crate::Manager::enter`] right before forking: the calling thread
//! moves into the container's v1 cgroups, the fork inherits them and is cloned into the cgroup2
//! directory given by [`Entered::cgroup_fd`], and [`Entered::finish`] moves the caller back to
//! where it was (and adds the child to the cgroup2 directory the slow way if the fork could not
//! use `CLONE_INTO_CGROUP`). In a forked child the guard does nothing (it checks the pid).
//!
//! While entered, the calling thread counts in the container's cgroups: against `pids.max` (a
//! limit of 1 leaves no room for the child; apply such a limit after `finish`), and a frozen
//! cgroup would freeze the caller (`enter` refuses a frozen cgroup).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use crate::error::Result;
use crate::file;

/// The calling thread is inside the container's v1 cgroups until [`Entered::finish`] or
/// [`Entered::leave`] (or drop).
#[derive(Debug)]
pub struct Entered {
    pid: nix::unistd::Pid,
    /// The v1 directories the thread came from.
    back: Vec<PathBuf>,
    /// The container's cgroup2 directory (path and an fd for `CLONE_INTO_CGROUP`).
    cgroup2: Option<(PathBuf, File)>,
    left: bool,
}

impl Entered {
    /// Moves the calling thread into each of `dirs` (v1) after remembering where it was in
    /// each (`from`, same order); opens `cgroup2` for `CLONE_INTO_CGROUP`.
    pub(crate) fn enter(
        dirs: &[PathBuf],
        from: Vec<PathBuf>,
        cgroup2: Option<&std::path::Path>,
    ) -> Result<Entered> {
        let cgroup2 = match cgroup2 {
            Some(d) => {
                let f = File::open(d).map_err(|source| crate::CgroupError::Read {
                    path: d.to_path_buf(),
                    source,
                })?;
                Some((d.to_path_buf(), f))
            }
            None => None,
        };
        let mut e = Entered {
            pid: nix::unistd::getpid(),
            back: Vec::with_capacity(from.len()),
            cgroup2,
            left: false,
        };
        for (dir, from) in dirs.iter().zip(from) {
            file::write(dir, "tasks", "0")?;
            e.back.push(from);
        }
        Ok(e)
    }

    /// The container's cgroup2 directory: pass it as `clone_args.cgroup` with
    /// `CLONE_INTO_CGROUP` so the child starts there (hybrid and unified machines).
    pub fn cgroup_fd(&self) -> Option<BorrowedFd<'_>> {
        self.cgroup2.as_ref().map(|(_, f)| f.as_fd())
    }

    /// After the fork: moves the caller back, and when the child was *not* cloned with
    /// `CLONE_INTO_CGROUP` into [`Entered::cgroup_fd`], adds it to the cgroup2 directory the
    /// classic (slow) way so it is in every hierarchy.
    pub fn finish(mut self, child: nix::unistd::Pid, cloned_into_cgroup2: bool) -> Result<()> {
        let back = self.go_back();
        if !cloned_into_cgroup2 {
            if let Some((dir, _)) = &self.cgroup2 {
                file::write(dir, "cgroup.procs", &child.as_raw().to_string())?;
            }
        }
        back
    }

    /// Moves the calling thread back to the cgroups it was in before `enter`.
    pub fn leave(mut self) -> Result<()> {
        self.go_back()
    }

    fn go_back(&mut self) -> Result<()> {
        if self.left || nix::unistd::getpid() != self.pid {
            return Ok(());
        }
        self.left = true;
        let mut first = None;
        for dir in self.back.iter().rev() {
            if let Err(e) = file::write(dir, "tasks", "0") {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = self.go_back();
    }
}
