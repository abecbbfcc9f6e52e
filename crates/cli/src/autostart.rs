//! Starting berthd on demand: when no host was chosen (no `-H`, `BERTH_HOST`, `DOCKER_HOST`) and
//! nothing answers on the default socket, start `berthd` from next to this binary in the
//! background, wait for `/_ping`, and say so in one line on stderr.
//!
//! The default socket is `<exec-root>/berth.sock` with exec root `$BERTH_EXEC_ROOT` or
//! `/run/berth`; `$BERTH_DATA_ROOT` (when set) is passed on as `--data-root`.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError, Target};

/// Why berthd couldn't be started.
#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    #[error("berthd not found next to {0} (looked for {1})")]
    NotFound(PathBuf, PathBuf),
    #[error("start {path}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("berthd (pid {pid}) exited with {status} before answering; see {log}")]
    Exited {
        pid: u32,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("berthd (pid {pid}) did not answer within {secs}s; see {log}")]
    Timeout { pid: u32, secs: u64, log: String },
}

/// The exec root the default socket lives in.
pub fn exec_root() -> PathBuf {
    std::env::var_os("BERTH_EXEC_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/berth"))
}

/// `unix://<exec-root>/berth.sock`.
pub fn default_host() -> String {
    format!("unix://{}", exec_root().join("berth.sock").display())
}

/// Whether a connect error means "nobody is listening" (as opposed to e.g. permission denied).
pub fn nobody_home(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ),
        _ => false,
    }
}

/// Start berthd and wait until `client` gets an answer.
pub async fn start(client: &Client) -> Result<(), AutostartError> {
    let me = std::env::current_exe().map_err(|source| AutostartError::Prepare {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let berthd = me.with_file_name("berthd");
    if !berthd.exists() {
        return Err(AutostartError::NotFound(me, berthd));
    }
    let root = exec_root();
    let prep = |path: &PathBuf| {
        let path = path.clone();
        move |source| AutostartError::Prepare { path, source }
    };
    fs::create_dir_all(&root).map_err(prep(&root))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o711)).map_err(prep(&root))?;
    let log = root.join("berthd.log");
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(prep(&log))?;
    let err = out.try_clone().map_err(prep(&log))?;
    let mut cmd = Command::new(&berthd);
    cmd.arg("--exec-root").arg(&root);
    if let Some(d) = std::env::var_os("BERTH_DATA_ROOT").filter(|v| !v.is_empty()) {
        cmd.arg("--data-root").arg(d);
    }
    // Own process group: a Ctrl-C aimed at this CLI must not reach the daemon.
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| AutostartError::Spawn {
        path: berthd.clone(),
        source,
    })?;
    let pid = child.id();
    let logs = log.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if client.ping().await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(AutostartError::Exited {
                pid,
                status,
                log: logs,
            });
        }
        if Instant::now() > deadline {
            return Err(AutostartError::Timeout {
                pid,
                secs: 10,
                log: logs,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("berth: started berthd (pid {pid}), logs in {logs}");
    Ok(())
}

/// Is `target` the default socket (the only one berth starts a daemon for)?
pub fn is_default(target: &Target) -> bool {
    matches!(target, Target::Unix(p) if *p == exec_root().join("berth.sock"))
}
