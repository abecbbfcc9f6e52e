//! The OCI state machine of one container and its crash-safe persistence (`<root>/<id>/state.json`).
//!
//! The stored status is a hint; the live status is derived when loading: a dead init (or one whose
//! pid was reused: start time differs) is `stopped`, a live init with the exec fifo still present
//! is `created`, otherwise `running` or `paused` (recorded by pause/resume).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the persisted state inside the container's state dir.
pub const STATE_FILE: &str = "state.json";
/// File name of the exec fifo inside the container's state dir.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Errors of state persistence.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file could not be read.
    #[error("read state {path}: {source}")]
    Read {
        /// state.json path
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid JSON for [`State`].
    #[error("parse state {path}: {source}")]
    Parse {
        /// state.json path
        path: PathBuf,
        /// cause
        #[source]
        source: serde_json::Error,
    },
    /// The state file could not be written.
    #[error("write state {path}: {source}")]
    Write {
        /// state.json path
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
}

/// Lifecycle status of a container (runtime-spec "status" values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// create is in progress.
    Creating,
    /// init waits on the exec fifo.
    Created,
    /// the user process runs.
    Running,
    /// the cgroup is frozen.
    Paused,
    /// the init process is gone.
    Stopped,
}

impl Status {
    /// The lowercase name used in state JSON and `list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    /// `start` only releases a created container.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    /// Signals make sense while the init exists.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// Without `--force`, only stopped or never-started containers are deleted.
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created | Status::Creating)
    }
    /// `exec` needs a live container: created or running (paused with `--ignore-paused`).
    pub fn can_exec(self, ignore_paused: bool) -> bool {
        matches!(self, Status::Created | Status::Running)
            || (ignore_paused && self == Status::Paused)
    }
    /// Only running containers are frozen.
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    /// Only paused containers are thawed.
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// runc's state output shape.
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    /// spec version
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    /// id
    pub id: &'a str,
    /// init pid, 0 when stopped
    pub pid: i32,
    /// live status
    pub status: &'static str,
    /// bundle
    pub bundle: &'a Path,
    /// rootfs
    pub rootfs: &'a Path,
    /// creation time
    pub created: &'a str,
    /// owner
    pub owner: &'a str,
    /// annotations
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

/// What `<root>/<id>/state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// runtime-spec version of the config.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// container id.
    pub id: String,
    /// status when last written.
    pub status: Status,
    /// pid of the init (host pid namespace), 0 before clone.
    pub pid: i32,
    /// start time of the init in clock ticks since boot (/proc/<pid>/stat field 22).
    pub pid_start_time: u64,
    /// absolute bundle path.
    pub bundle: PathBuf,
    /// absolute rootfs path.
    pub rootfs: PathBuf,
    /// creation time, RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// owner (uid) of the container, empty for root like runc.
    #[serde(default)]
    pub owner: String,
    /// config annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// cgroup path as given to the cgroup manager.
    #[serde(default)]
    pub cgroup_path: Option<PathBuf>,
    /// whether the systemd cgroup driver was asked for.
    #[serde(default)]
    pub systemd_cgroup: bool,
}

impl State {
    /// Reads `dir/state.json`.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let path = dir.join(STATE_FILE);
        let data = std::fs::read(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Parse { path, source })
    }

    /// Writes `dir/state.json` crash-safely: temp file, fsync, rename.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        self.save_with(dir, true)
    }

    /// Like [`State::save`]; without `durable` the file is still replaced atomically but not
    /// fsynced (a foreground `run`: the container can't outlive a power loss anyway).
    pub fn save_with(&self, dir: &Path, durable: bool) -> Result<(), StateError> {
        let path = dir.join(STATE_FILE);
        let data = serde_json::to_vec(self).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        write_replace(&path, &data, durable).map_err(|source| StateError::Write { path, source })
    }

    /// The live status: checks the init's pid (with start time) and the exec fifo.
    pub fn live_status(&self, dir: &Path) -> Status {
        if self.status == Status::Creating && self.pid == 0 {
            return Status::Creating;
        }
        if self.pid <= 0 || !pid_alive(self.pid, self.pid_start_time) {
            return Status::Stopped;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if self.status == Status::Paused {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The OCI state `state`/`list` print, in runc's field order (pid 0 when stopped).
    pub fn to_oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }

    /// The runtime-spec state handed to hooks on stdin.
    pub fn to_hook_state(&self, status: Status) -> oci_spec::runtime::State {
        let mut s = oci_spec::runtime::State::default();
        s.set_version(self.oci_version.clone());
        s.set_id(self.id.clone());
        s.set_status(match status {
            Status::Creating => oci_spec::runtime::ContainerState::Creating,
            Status::Created => oci_spec::runtime::ContainerState::Created,
            Status::Running | Status::Paused => oci_spec::runtime::ContainerState::Running,
            Status::Stopped => oci_spec::runtime::ContainerState::Stopped,
        });
        s.set_pid(if self.pid > 0 { Some(self.pid) } else { None });
        s.set_bundle(self.bundle.clone());
        if !self.annotations.is_empty() {
            s.set_annotations(Some(self.annotations.clone()));
        }
        s
    }
}

/// Writes `data` to `path` via a temp file in the same directory, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replace(path, data, true)
}

/// Writes `data` to a temp file and renames it over `path` (readers never see a partial file);
/// `durable` adds an fsync before the rename (state.json; a pid file doesn't need it).
pub fn write_replace(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Start time (clock ticks since boot) of `pid`, from /proc/<pid>/stat field 22.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // comm (field 2) may hold spaces and parens: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22 -> index 19.
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` exists, is not a zombie, and (when `start_time` != 0) started at `start_time`.
pub fn pid_alive(pid: i32, start_time: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let rest = &stat[close + 2..];
    if rest.starts_with('Z') || rest.starts_with('X') {
        return false;
    }
    start_time == 0 || parse_start_time(&stat) == Some(start_time)
}

/// Formats a UNIX time as RFC 3339 UTC with nanoseconds (`2026-11-27T07:25:44.123456789Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_follow_the_state_machine() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(!Status::Stopped.can_kill());
        assert!(Status::Paused.can_kill());
        assert!(!Status::Running.can_delete());
        assert!(Status::Stopped.can_delete());
        assert!(!Status::Paused.can_exec(false));
        assert!(Status::Paused.can_exec(true));
        assert!(Status::Running.can_pause() && !Status::Paused.can_pause());
        assert!(Status::Paused.can_resume());
    }

    #[test]
    fn start_time_parses_comm_with_parens() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_time(stat), Some(98765));
    }

    #[test]
    fn own_pid_is_alive_and_start_time_guards_reuse() {
        let me = std::process::id() as i32;
        let st = pid_start_time(me).expect("own stat");
        assert!(pid_alive(me, st));
        assert!(!pid_alive(me, st + 1));
    }

    #[test]
    fn rfc3339_formats_known_instant() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = State {
            oci_version: "1.0.2".into(),
            id: "x".into(),
            status: Status::Created,
            pid: 1,
            pid_start_time: 2,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: rfc3339(std::time::SystemTime::now()),
            owner: String::new(),
            annotations: HashMap::new(),
            cgroup_path: None,
            systemd_cgroup: false,
        };
        s.save(dir.path()).expect("save");
        let l = State::load(dir.path()).expect("load");
        assert_eq!(l.id, "x");
        assert_eq!(l.status, Status::Created);
    }
}
