//! Driving berth-runtime (runc's command line): `create`, `start`, `delete --force`. Errors carry
//! the runtime's own message, taken from its `--log` (JSON lines) because during `create` its
//! stderr is the container's stderr.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Errors of a runtime call.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime binary could not be run.
    #[error("run {bin} {verb}: {source}")]
    Spawn {
        /// the verb
        verb: &'static str,
        /// the binary
        bin: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The runtime ran and failed.
    #[error("berth-runtime {verb} {id}: {message} ({status})")]
    Failed {
        /// the verb
        verb: &'static str,
        /// the container id
        id: String,
        /// the runtime's own error text
        message: String,
        /// how it exited
        status: ExitStatus,
    },
}

impl RuntimeError {
    /// The runtime's message alone (what berthd shows the user).
    pub fn message(&self) -> String {
        match self {
            RuntimeError::Failed { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }
}

/// The container's stdio for `create`.
#[derive(Debug)]
pub struct CreateIo {
    /// the init's stdin
    pub stdin: Stdio,
    /// the init's stdout
    pub stdout: Stdio,
    /// the init's stderr
    pub stderr: Stdio,
}

/// One runtime: binary, root and global arguments.
#[derive(Debug, Clone)]
pub struct Runtime {
    bin: PathBuf,
    root: PathBuf,
    global: Vec<OsString>,
    log: PathBuf,
}

impl Runtime {
    /// A runtime writing its error log to `log`.
    pub fn new(bin: &Path, root: &Path, global: &[OsString], log: &Path) -> Runtime {
        Runtime {
            bin: bin.to_owned(),
            root: root.to_owned(),
            global: global.to_vec(),
            log: log.to_owned(),
        }
    }

    fn command(&self) -> Command {
        let _ = std::fs::remove_file(&self.log);
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json")
            .args(&self.global);
        c
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID` with the container's stdio.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        io: CreateIo,
    ) -> Result<(), RuntimeError> {
        let mut c = self.command();
        c.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id)
            .stdin(io.stdin)
            .stdout(io.stdout)
            .stderr(io.stderr);
        let status = c.status().map_err(|source| RuntimeError::Spawn {
            verb: "create",
            bin: self.bin.clone(),
            source,
        })?;
        self.check("create", id, status, "")
    }

    /// `start ID`.
    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("start", &["start"], id)
    }

    /// `delete --force ID`.
    pub fn delete_force(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("delete", &["delete", "--force"], id)
    }

    fn simple(&self, verb: &'static str, args: &[&str], id: &str) -> Result<(), RuntimeError> {
        let out = self
            .command()
            .args(args)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                verb,
                bin: self.bin.clone(),
                source,
            })?;
        self.check(verb, id, out.status, &String::from_utf8_lossy(&out.stderr))
    }

    fn check(
        &self,
        verb: &'static str,
        id: &str,
        status: ExitStatus,
        stderr: &str,
    ) -> Result<(), RuntimeError> {
        let logged = self.last_error();
        let _ = std::fs::remove_file(&self.log);
        if status.success() {
            return Ok(());
        }
        let message = logged.unwrap_or_else(|| {
            let s = stderr.trim();
            s.strip_prefix("error: ").unwrap_or(s).to_owned()
        });
        Err(RuntimeError::Failed {
            verb,
            id: id.to_owned(),
            message,
            status,
        })
    }

    /// The `msg` of the last JSON line of the runtime's log.
    fn last_error(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => v.get("msg")?.as_str().map(str::to_owned),
            Err(_) => Some(line.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake "runtime" script: logs like berth-runtime and fails.
    #[test]
    fn failure_carries_the_logged_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("rt");
        std::fs::write(
            &bin,
            "#!/bin/sh\nwhile [ \"$1\" != --log ]; do shift; done\n\
             echo '{\"level\":\"error\",\"msg\":\"exec \\\"nosuch\\\": no such file\"}' >> \"$2\"\n\
             echo 'error: noise' >&2\nexit 1\n",
        )
        .expect("write script");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let log = dir.path().join("runtime.log");
        let rt = Runtime::new(&bin, dir.path(), &[], &log);
        let e = rt.start("c1").expect_err("fails");
        assert_eq!(e.message(), "exec \"nosuch\": no such file");
        assert!(e.to_string().starts_with("berth-runtime start c1: exec"));
        assert!(!log.exists());
    }

    #[test]
    fn failure_without_log_uses_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("rt");
        std::fs::write(&bin, "#!/bin/sh\necho 'error: boom' >&2\nexit 3\n").expect("write");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let rt = Runtime::new(&bin, dir.path(), &[], &dir.path().join("log"));
        let e = rt.delete_force("c1").expect_err("fails");
        assert_eq!(e.message(), "boom");
        assert!(e.to_string().contains("exit status: 3"), "{e}");
    }
}
