//! The one error type of this crate: every variant names the file, value or controller involved,
//! and keeps the OS error as its source.

use std::io;
use std::path::PathBuf;

/// An error from a cgroup operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing a value to a cgroup file failed.
    #[error("write {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("parse {}: unexpected content {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    /// Creating a cgroup directory failed.
    #[error("create cgroup directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("remove cgroup directory {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Inspecting the cgroup mounts (statfs, mountinfo, /proc/self/cgroup) failed.
    #[error("detect cgroup layout at {}", path.display())]
    Detect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `/sys/fs/cgroup` (or the injected root) is neither a cgroup2 mount nor a tmpfs of v1 mounts.
    #[error("no cgroup hierarchy found at {}", path.display())]
    NoCgroupFs { path: PathBuf },
    /// The resources ask for a controller that is not mounted (v1) or not enabled (v2).
    #[error("cgroup controller {controller} is not available ({needed_for})")]
    ControllerMissing {
        controller: &'static str,
        needed_for: &'static str,
    },
    /// A resource setting that this cgroup version cannot express.
    #[error("{setting} is not supported on cgroup {version}")]
    Unsupported {
        setting: String,
        version: &'static str,
    },
    /// A resource value outside what the spec or the kernel accepts.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The cgroupsPath is not usable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The freezer did not settle in time.
    #[error("freezer in {} did not reach {wanted} in time (last state {last:?})", path.display())]
    FreezeTimeout {
        path: PathBuf,
        wanted: &'static str,
        last: String,
    },
    /// `enter` on a frozen cgroup would freeze the caller.
    #[error("cgroup {} is frozen: refusing to move the caller into it", path.display())]
    Frozen { path: PathBuf },
    /// The cgroup still had processes or children after the retries of `destroy`.
    #[error("cgroup {} still busy after retries", path.display())]
    Busy {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Sending a signal to a process of the cgroup failed.
    #[error("signal {signal} to pid {pid}")]
    Kill {
        pid: i32,
        signal: nix::sys::signal::Signal,
        #[source]
        source: nix::errno::Errno,
    },
    /// A bpf(2) step of the v2 device controller failed.
    #[error("device controller bpf {step} on {}", path.display())]
    Bpf {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CgroupError>;
