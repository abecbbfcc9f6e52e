//! The error of a lifecycle verb: what went wrong, naming the container id / path / field, with
//! the cause kept as `source` (main prints the chain on one line).

use std::path::PathBuf;

use crate::init::namespaces::NamespaceError;
use crate::init::ChannelError;
use crate::state::{StateError, Status};

/// Errors of berth-runtime's verbs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container id is not acceptable.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// the id
        id: String,
        /// why
        reason: &'static str,
    },
    /// config.json can't be read.
    #[error("read {path}: {source}")]
    ConfigRead {
        /// config path
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// config.json isn't a valid runtime spec.
    #[error("parse {path}: {source}")]
    ConfigParse {
        /// config path
        path: PathBuf,
        /// cause
        #[source]
        source: serde_json::Error,
    },
    /// config.json parses but asks for something impossible or misses a field.
    #[error("invalid config.json: {0}")]
    ConfigInvalid(String),
    /// A container with this id exists.
    #[error("container with id {0:?} already exists")]
    Exists(String),
    /// No container with this id.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// The verb is not allowed in the container's status.
    #[error("cannot {op} container {id:?}: container is {status}")]
    BadState {
        /// verb
        op: &'static str,
        /// id
        id: String,
        /// live status
        status: Status,
    },
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// what was being done
        what: &'static str,
        /// path
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// A syscall failed.
    #[error("{what}: {source}")]
    Sys {
        /// what was being done
        what: &'static str,
        /// cause
        #[source]
        source: nix::Error,
    },
    /// state.json.
    #[error(transparent)]
    State(#[from] StateError),
    /// Namespace setup (parent side).
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// The parent/child channel.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The container's init (or exec child) reported a failure.
    #[error("container init: {0}")]
    Init(String),
    /// cgroup management.
    #[error("cgroup")]
    Cgroup(#[source] berth_cgroups::CgroupError),
    /// A hook failed.
    #[error("{kind} hook: {msg}")]
    Hook {
        /// hook kind
        kind: &'static str,
        /// cause chain
        msg: String,
    },
    /// A flag value is not acceptable.
    #[error("{0}")]
    Usage(String),
    /// The systemd cgroup driver was asked for and can't be honoured.
    #[error("systemd cgroup driver is not supported")]
    SystemdUnsupported,
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
    /// Shorthand for [`Error::Sys`].
    pub fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> Error {
        move |source| Error::Sys { what, source }
    }
}
