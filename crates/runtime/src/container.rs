//! A container as the lifecycle verbs see it: its state dir `<root>/<id>/`, its persisted
//! [`State`], its cgroup. One file per verb under `container/`, each checking the state guard
//! (`state.rs`) before acting.

pub mod console;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod update;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::Error;
use crate::state::{State, Status};

/// Default state root, like runc's /run/runc.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// Checks a container id: non-empty, not `.`/`..`, only `[A-Za-z0-9_.+-]` (so never a `/`).
pub fn validate_id(id: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." {
        return bad("must not be . or ..");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
    {
        return bad("only letters, digits and _ . + - are allowed");
    }
    Ok(())
}

/// Reads and parses `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec, Error> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| Error::ConfigRead {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| Error::ConfigParse { path, source })
}

/// A container found in the state root.
#[derive(Debug)]
pub struct Container {
    /// `<root>/<id>`
    pub dir: PathBuf,
    /// persisted state
    pub state: State,
    /// live status derived at load
    pub status: Status,
}

impl Container {
    /// Loads container `id` from `root`.
    pub fn load(root: &Path, id: &str) -> Result<Container, Error> {
        validate_id(id)?;
        let dir = root.join(id);
        let state = match State::load(&dir) {
            Ok(s) => s,
            Err(crate::state::StateError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(Error::NotFound(id.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        let status = state.live_status(&dir);
        Ok(Container { dir, state, status })
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> Result<Box<dyn berth_cgroups::Manager>, Error> {
        // The recorded path is enough to find the cgroup again; the driver flag only matters
        // at create.
        berth_cgroups::create_manager(self.state.cgroup_path.as_deref(), &self.state.id, false)
            .map_err(Error::Cgroup)
    }

    /// Errors with [`Error::BadState`] unless `ok`.
    pub fn check(&self, op: &'static str, ok: bool) -> Result<(), Error> {
        if ok {
            Ok(())
        } else {
            Err(Error::BadState {
                op,
                id: self.state.id.clone(),
                status: self.status,
            })
        }
    }

    /// Reads the container's config.json from its bundle.
    pub fn spec(&self) -> Result<Spec, Error> {
        load_spec(&self.state.bundle)
    }
}

/// `linux.seccomp` compiled in the runtime's own process, before it forks the container's init
/// or an exec (the child then only loads it), through the cache under the state root so
/// containers with the same profile compile it once.
pub(crate) fn seccomp_program(
    linux: Option<&oci_spec::runtime::Linux>,
    root: &Path,
) -> Result<Option<crate::seccomp::Program>, Error> {
    let Some(s) = linux.and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    crate::seccomp::program_cached(s, &root.join(".seccomp-cache"))
        .map(Some)
        .map_err(|e| {
            Error::ConfigInvalid(format!("linux.seccomp: {}", crate::init::error_chain(&e)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for bad in ["", ".", "..", "../x", "a/b", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "abc-1.2_3+4", "A9"] {
            validate_id(good).expect(good);
        }
    }
}
