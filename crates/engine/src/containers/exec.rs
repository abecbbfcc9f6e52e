//! Exec: extra processes in a running container (`docker exec`), run by
//! `berth-runtime exec --process FILE ID` as a child of berthd whose stdio the API bridges.
//! The process JSON is the container's own `process` with the exec's args, env, cwd, user and
//! terminal laid over it, so capabilities, seccomp and rlimits match the container's.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use berth_api::container::ExecConfig;

use super::{random_hex, ContainerError, Containers};

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
    /// Set for `berth debug` sessions: run in a debug container, not `berth-runtime exec`.
    pub debug: Option<super::debug::DebugSetup>,
}

/// What `GET /exec/{id}/json` reports.
#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
    /// With a TTY, while running: a handle on the pty master, for resize.
    pub pty: Option<Arc<std::os::fd::OwnedFd>>,
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.lock().expect("exec lock poisoned").clone()
    }
}

/// A started exec process; the caller copies its stdio and then calls [`Containers::exec_finished`].
pub struct Started {
    pub child: tokio::process::Child,
    pub tty: bool,
    /// With a TTY: the pty master the runtime sent over the console socket.
    pub pty: Option<std::os::fd::OwnedFd>,
}

impl Containers {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, cfg: ExecConfig) -> Result<String, ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        if !rec.state.status.is_alive() {
            return Err(ContainerError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        if rec.state.status == super::Status::Paused {
            return Err(ContainerError::Conflict(format!(
                "container {} is paused, unpause the container before exec",
                rec.id
            )));
        }
        if cfg.cmd.is_empty() {
            return Err(ContainerError::Invalid("no exec command specified".into()));
        }
        let id = random_hex(32);
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: rec.id.clone(),
            config: cfg,
            state: Mutex::new(ExecState::default()),
            debug: None,
        });
        self.execs()
            .lock()
            .expect("exec map lock poisoned")
            .insert(id.clone(), exec);
        let cmd = self
            .exec_get(&id)
            .map(|e| e.config.cmd.join(" "))
            .unwrap_or_default();
        self.publish_event(
            &format!("exec_create: {cmd}"),
            &rec,
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    pub fn exec_get(&self, id: &str) -> Result<Arc<Exec>, ContainerError> {
        self.execs()
            .lock()
            .expect("exec map lock poisoned")
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(format!("exec instance {id}")))
    }

    /// Start an exec; with `detach` its stdio is /dev/null and it is reaped in the background.
    /// `console_size` (`[height, width]`, else the one given at create) sizes its terminal
    /// before the process runs.
    pub async fn exec_start(
        &self,
        id: &str,
        detach: bool,
        console_size: Option<[u16; 2]>,
    ) -> Result<Started, ContainerError> {
        let exec = self.exec_get(id)?;
        {
            let mut s = exec.state.lock().expect("exec lock poisoned");
            if s.started {
                return Err(ContainerError::Conflict(format!(
                    "exec instance {id} has already been started"
                )));
            }
            s.started = true;
            s.running = true;
        }
        let rec = self.get(&exec.container_id)?.record();
        if let Some(d) = &exec.debug {
            let cmd = self.debug_command(&rec, &exec, d, console_size)?;
            return self.spawn_session(&exec, &rec, cmd, detach).await;
        }
        let bundle = self.bundle_dir(&rec.id);
        let spec: serde_json::Value = std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                ContainerError::Invalid(format!("container {} has no bundle", rec.id))
            })?;
        let mut process = spec["process"].clone();
        let c = &exec.config;
        process["args"] = serde_json::json!(c.cmd);
        process["terminal"] = serde_json::json!(c.tty);
        // the container's own size is no default for an exec's terminal
        if let Some(o) = process.as_object_mut() {
            o.remove("consoleSize");
        }
        if let Some([height, width]) = console_size
            .or(c.console_size)
            .filter(|s| c.tty && s[0] > 0 && s[1] > 0)
        {
            process["consoleSize"] = serde_json::json!({"height": height, "width": width});
        }
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(extra) = &c.env {
            env = berth_image::config::merge_env(&env, extra)
                .map_err(super::spec::SpecError::from)?;
        }
        process["env"] = serde_json::json!(env);
        if !c.working_dir.is_empty() {
            process["cwd"] = serde_json::json!(c.working_dir);
        }
        if !c.user.is_empty() {
            let (uid, gid, groups) =
                berth_image::config::resolve_user(&c.user, Some(rec.rootfs.as_path()))
                    .map_err(super::spec::SpecError::from)?;
            process["user"] = serde_json::json!({"uid": uid, "gid": gid, "additionalGids": groups});
        }
        if c.privileged {
            let all = super::spec::capabilities(&berth_api::container::HostConfig {
                privileged: true,
                ..Default::default()
            })?;
            for set in ["bounding", "effective", "permitted"] {
                process["capabilities"][set] = serde_json::json!(all);
            }
        }
        let pfile = self.shim_dir(&rec.id).join(format!("exec-{id}.json"));
        std::fs::write(&pfile, serde_json::to_vec(&process).unwrap_or_default()).map_err(
            |source| ContainerError::Io {
                id: rec.id.clone(),
                op: format!("write {}", pfile.display()),
                source,
            },
        )?;
        let mut cmd = tokio::process::Command::new(&self.paths().runtime);
        cmd.arg("--root")
            .arg(self.runtime_root_path())
            .arg("exec")
            .arg("--process")
            .arg(&pfile);
        self.spawn_session(&exec, &rec, cmd, detach).await
    }

    /// Run `cmd` (a `berth-runtime` call taking its process's stdio, and `--console-socket`
    /// plus the container id appended here) for the exec session `exec`: stdio piped, or a
    /// TTY whose master comes back over the console socket.
    pub(crate) async fn spawn_session(
        &self,
        exec: &Exec,
        rec: &super::Record,
        mut cmd: tokio::process::Command,
        detach: bool,
    ) -> Result<Started, ContainerError> {
        let id = exec.id.as_str();
        let c = &exec.config;
        let console = if c.tty && !detach {
            // short path: a unix socket path is limited to 108 bytes
            let path = self
                .paths()
                .exec_root
                .join(format!("exec-{}.sock", &id[..16]));
            let _ = std::fs::remove_file(&path);
            let l = std::os::unix::net::UnixListener::bind(&path).map_err(|source| {
                ContainerError::Io {
                    id: rec.id.clone(),
                    op: format!("bind console socket {}", path.display()),
                    source,
                }
            })?;
            Some((l, path))
        } else {
            None
        };
        if let Some((_, path)) = &console {
            cmd.arg("--console-socket").arg(path);
        }
        cmd.arg(
            exec.debug
                .as_ref()
                .map_or(rec.id.as_str(), |d| d.runtime_id.as_str()),
        );
        if detach || console.is_some() {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(if console.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
        } else {
            cmd.stdin(if c.attach_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|source| ContainerError::Io {
            id: rec.id.clone(),
            op: "run berth-runtime exec".into(),
            source,
        })?;
        let mut pty = None;
        if let Some((listener, path)) = console {
            let got = tokio::task::spawn_blocking(move || {
                listener.set_nonblocking(false)?;
                let (conn, _) = listener.accept()?;
                berth_sys::fdpass::recv_fd(std::os::fd::AsFd::as_fd(&conn))
                    .map(|(fd, _)| fd)
                    .map_err(std::io::Error::from)
            });
            let got = tokio::select! {
                r = got => r.map_err(|e| std::io::Error::other(e.to_string())).and_then(|r| r),
                st = child.wait() => Err(std::io::Error::other(format!("berth-runtime exec exited ({st:?}) before sending the terminal"))),
            };
            let _ = std::fs::remove_file(&path);
            match got {
                Ok(fd) => pty = Some(fd),
                Err(e) => {
                    let mut msg = e.to_string();
                    if let Some(mut err) = child.stderr.take() {
                        let mut s = String::new();
                        let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut s).await;
                        if !s.trim().is_empty() {
                            msg = s.trim().to_string();
                        }
                    }
                    let _ = child.start_kill();
                    self.exec_finished(id, 126);
                    return Err(ContainerError::Runtime {
                        id: rec.id.clone(),
                        op: "exec",
                        message: msg,
                    });
                }
            }
        }
        {
            let mut s = exec.state.lock().expect("exec lock poisoned");
            s.pid = child.id().map(i64::from).unwrap_or(0);
            s.pty = pty.as_ref().and_then(|p| p.try_clone().ok()).map(Arc::new);
        }
        self.publish_event(
            &format!("exec_start: {}", c.cmd.join(" ")),
            rec,
            &[("execID", id.to_string())],
        );
        Ok(Started {
            child,
            tty: c.tty,
            pty,
        })
    }

    /// `POST /exec/{id}/resize`: sets the window size of a running exec's terminal (none
    /// without a TTY: nothing to do).
    pub fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), ContainerError> {
        let exec = self.exec_get(id)?;
        let s = exec.state();
        if !s.running {
            return Err(ContainerError::Conflict(format!(
                "exec instance {id} is not running"
            )));
        }
        if let Some(pty) = s.pty {
            berth_sys::process::set_window_size(&*pty, rows, cols).map_err(|e| {
                ContainerError::Io {
                    id: exec.container_id.clone(),
                    op: format!("resize the terminal of exec {id} to {rows}x{cols}"),
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }

    /// Record how an exec ended.
    pub fn exec_finished(&self, id: &str, code: i64) {
        let Ok(exec) = self.exec_get(id) else {
            return;
        };
        {
            let mut s = exec.state.lock().expect("exec lock poisoned");
            s.running = false;
            s.exit_code = Some(code);
            s.pty = None;
        }
        if let Some(d) = &exec.debug {
            self.debug_cleanup(d);
        }
        if let Ok(entry) = self.get(&exec.container_id) {
            self.publish_event(
                "exec_die",
                &entry.record(),
                &[("execID", id.to_string()), ("exitCode", code.to_string())],
            );
        }
    }
}
