//! The shim's on-disk state in `<state-dir>`, the part berthd reads to re-adopt containers after
//! a restart: `shim.pid` (the monitor's pid, present while it runs) and `exit.json` (how the
//! container ended). Both are written crash-safely: temp file, fsync, rename, fsync of the dir.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The monitor's pid file.
pub const PID_FILE: &str = "shim.pid";
/// The exit record.
pub const EXIT_FILE: &str = "exit.json";
/// The attach socket.
pub const ATTACH_SOCK: &str = "attach.sock";
/// The control socket.
pub const CONTROL_SOCK: &str = "control.sock";
/// The console socket (TTY mode, only while the runtime creates the container).
pub const CONSOLE_SOCK: &str = "console.sock";
/// The container init's pid (written by `berth-runtime create --pid-file`).
pub const INIT_PID_FILE: &str = "init.pid";
/// The runtime's error log (`berth-runtime --log`).
pub const RUNTIME_LOG: &str = "runtime.log";
/// The shim's own diagnostics (failed log writes, failed delete), appended.
pub const SHIM_LOG: &str = "shim.log";

/// Errors reading or writing the state files.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// what was being done
        op: &'static str,
        /// the file
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// exit.json is not valid.
    #[error("parse {path}: {source}")]
    Parse {
        /// the file
        path: PathBuf,
        /// cause
        #[source]
        source: serde_json::Error,
    },
    /// shim.pid holds no pid.
    #[error("{path} holds no pid: {text:?}")]
    BadPid {
        /// the file
        path: PathBuf,
        /// its content
        text: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// How the container's init process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// the exit status, or 128 + signal number when killed by a signal (docker's convention)
    pub exit_code: i32,
    /// the killing signal's name (`"SIGKILL"`), null when the process exited
    pub signal: Option<String>,
    /// whether the kernel's OOM killer fired in the container's memory cgroup; null when the
    /// cgroup could not be read
    pub oom_killed: Option<bool>,
    /// when the container was started (RFC 3339), null when it never was
    pub started_at: Option<String>,
    /// when the exit was seen (RFC 3339)
    pub finished_at: String,
}

impl ExitRecord {
    /// Writes `<dir>/exit.json` crash-safely.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let json = serde_json::to_vec(self).expect("exit record always serializes");
        write_atomic(&dir.join(EXIT_FILE), &json)
    }

    /// Reads `<dir>/exit.json`; `None` when there is none (yet).
    pub fn load(dir: &Path) -> Result<Option<ExitRecord>, StateError> {
        let path = dir.join(EXIT_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StateError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }
}

/// Writes `data` to `path` so that a reader (or a crash) sees either the old or the whole new
/// content: `path.tmp`, fsync, rename over `path`, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(data).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    if let Some(dir) = path.parent() {
        let d = File::open(dir).map_err(io("open", dir))?;
        d.sync_all().map_err(io("fsync", dir))?;
    }
    Ok(())
}

/// Writes `<dir>/shim.pid`.
pub fn save_pid(dir: &Path, pid: i32) -> Result<(), StateError> {
    write_atomic(&dir.join(PID_FILE), pid.to_string().as_bytes())
}

/// Reads `<dir>/shim.pid`; `None` when there is none.
pub fn load_pid(dir: &Path) -> Result<Option<i32>, StateError> {
    read_pid_file(&dir.join(PID_FILE))
}

/// Reads a file holding a decimal pid; `None` when the file does not exist.
pub fn read_pid_file(path: &Path) -> Result<Option<i32>, StateError> {
    match std::fs::read_to_string(path) {
        Ok(t) => match t.trim().parse::<i32>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(StateError::BadPid {
                path: path.to_owned(),
                text: t,
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_round_trips_with_documented_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ExitRecord::load(dir.path()).expect("load"), None);
        let r = ExitRecord {
            exit_code: 137,
            signal: Some("SIGKILL".into()),
            oom_killed: Some(false),
            started_at: Some("2026-11-27T08:00:00.000000000Z".into()),
            finished_at: "2026-11-27T08:00:01.000000000Z".into(),
        };
        r.save(dir.path()).expect("save");
        assert_eq!(ExitRecord::load(dir.path()).expect("load"), Some(r));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(EXIT_FILE)).expect("read"))
                .expect("json");
        assert_eq!(v["exit_code"], 137);
        assert_eq!(v["signal"], "SIGKILL");
        assert!(!dir.path().join("exit.json.tmp").exists());
    }

    #[test]
    fn pid_file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load_pid(dir.path()).expect("load"), None);
        save_pid(dir.path(), 4242).expect("save");
        assert_eq!(load_pid(dir.path()).expect("load"), Some(4242));
        std::fs::write(dir.path().join(PID_FILE), "x").expect("write");
        assert!(matches!(
            load_pid(dir.path()),
            Err(StateError::BadPid { .. })
        ));
    }
}
