//! `/containers` and `/exec`: create, start, stop, kill, restart, pause, wait, attach (HTTP
//! upgrade bridged to the shim's socket), logs, inspect, list, top, rename, delete, and exec
//! create/start/inspect/resize. Wire ↔ domain conversion lives here; the work is in
//! `berth_engine::containers`.

use std::sync::Arc;

use berth_api::container::{
    ContainerCreateRequest, ContainerInspect, ContainerState, ContainerSummary, CreateResponse,
    ExecConfig, ExecInspect, ExecProcessConfig, ExecStartConfig, TopResponse, WaitError,
    WaitResponse,
};
use berth_api::filters::Filters;
use berth_engine::containers::logs::{self, LogOptions};
use berth_engine::containers::{
    ContainerError, CreateRequest, ListOptions, Record, Status, WaitCondition,
};
use berth_engine::Engine;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::ApiError;
use crate::http::{self, Body, ChannelWriter, Query};

impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> Self {
        Self::from_engine(e.kind(), &e)
    }
}

/// `POST /containers/create?name=`.
pub async fn create(
    engine: &Arc<Engine>,
    q: &Query,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let req: ContainerCreateRequest = http::read_json(body).await?;
    let containers = engine.containers().clone();
    let name = q.get("name").map(String::from);
    let (id, warnings) = tokio::task::spawn_blocking(move || {
        containers.create(CreateRequest {
            name,
            config: req.config,
            host_config: req.host_config,
            networking_config: req.networking_config,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(http::json(
        StatusCode::CREATED,
        &CreateResponse { id, warnings },
    ))
}

/// `POST /containers/{id}/start`.
pub async fn start(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let started = engine.containers().start(id).await?;
    Ok(http::empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

fn timeout_param(q: &Query) -> Result<Option<i64>, ApiError> {
    q.get("t")
        .or_else(|| q.get("timeout"))
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeout {t:?}")))
        })
        .transpose()
}

/// `POST /containers/{id}/stop?t=&signal=`.
pub async fn stop(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let t = timeout_param(q)?;
    let stopped = engine
        .containers()
        .stop(id, t, q.get("signal").filter(|s| !s.is_empty()))
        .await?;
    Ok(http::empty(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(
    engine: &Arc<Engine>,
    id: &str,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    engine.containers().restart(id, timeout_param(q)?).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    engine
        .containers()
        .kill(id, q.get("signal").unwrap_or("SIGKILL"))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` and `/unpause`.
pub async fn pause(
    engine: &Arc<Engine>,
    id: &str,
    pause: bool,
) -> Result<Response<Body>, ApiError> {
    if pause {
        engine.containers().pause(id).await?;
    } else {
        engine.containers().unpause(id).await?;
    }
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=`: headers go out at once, the body when the
/// condition holds (like docker, so clients know the wait is registered).
pub async fn wait(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let cond = WaitCondition::parse(q.get("condition").unwrap_or(""))?;
    // fail early for an unknown container
    engine.containers().get(id)?;
    let containers = engine.containers().clone();
    let id = id.to_string();
    let (tx, body) = Body::channel(1);
    tokio::spawn(async move {
        let resp = match containers.wait(&id, cond).await {
            Ok(code) => WaitResponse {
                status_code: code,
                error: None,
            },
            Err(e) => WaitResponse {
                status_code: -1,
                error: Some(WaitError {
                    message: e.to_string(),
                }),
            },
        };
        let mut b = serde_json::to_vec(&resp).unwrap_or_default();
        b.push(b'\n');
        let _ = tx.send(Ok(Bytes::from(b))).await;
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("static headers are valid"))
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    engine
        .containers()
        .remove(id, q.bool("force"), q.bool("v"))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename?name=`.
pub fn rename(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    engine.containers().rename(id, name)?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

fn created_secs(rec: &Record) -> i64 {
    berth_api::time::parse_timestamp(&rec.created)
        .map(|t| t.unix_nanos() / 1_000_000_000)
        .unwrap_or(0)
}

fn ago(ts: &str) -> String {
    let Ok(t) = berth_api::time::parse_timestamp(ts) else {
        return String::new();
    };
    let secs = (berth_api::time::Timestamp::now().unix_nanos() - t.unix_nanos()) / 1_000_000_000;
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 86400 * 2 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

/// docker's `Status` column text.
fn status_text(rec: &Record) -> String {
    match rec.state.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let health = match rec.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) if !s.is_empty() => format!(" ({s})"),
                _ => String::new(),
            };
            format!("Up {}{health}", ago(&rec.state.started_at))
        }
        Status::Paused => format!("Up {} (Paused)", ago(&rec.state.started_at)),
        Status::Restarting => "Restarting".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            rec.state.exit_code,
            ago(&rec.state.finished_at)
        ),
    }
}

/// `GET /containers/json?all=&limit=&filters=`.
pub fn list(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = Filters::parse(q.get("filters").unwrap_or(""))?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let recs = engine.containers().list(&ListOptions {
        all: q.bool("all") || limit.is_some(),
        limit,
        filters,
    })?;
    let out: Vec<ContainerSummary> = recs
        .iter()
        .map(|r| ContainerSummary {
            id: r.id.clone(),
            names: vec![r.name.clone()],
            image: r.image.clone(),
            image_id: r.image_id.clone(),
            command: std::iter::once(r.path.clone())
                .chain(r.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            created: created_secs(r),
            ports: engine.containers().list_ports(r),
            labels: r.config.labels.clone().unwrap_or_default(),
            state: r.state.status.as_str().to_string(),
            status: status_text(r),
            host_config: json!({"NetworkMode": r.host_config.network_mode}),
            network_settings: json!({
                "Networks": engine.containers().network_settings(r)["Networks"]
            }),
            mounts: r.mounts.clone(),
        })
        .collect();
    Ok(http::json(StatusCode::OK, &out))
}

/// `GET /containers/{id}/json`.
pub fn inspect(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let c = engine.containers();
    let r = c.inspect(id)?;
    let dir = r
        .log_path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let execs = c.exec_ids(&r.id);
    let out = ContainerInspect {
        id: r.id.clone(),
        created: r.created.clone(),
        path: r.path.clone(),
        args: r.args.clone(),
        state: ContainerState {
            status: r.state.status.as_str().to_string(),
            running: r.state.status.is_alive(),
            paused: r.state.status == Status::Paused,
            restarting: r.state.status == Status::Restarting,
            oom_killed: r.state.oom_killed,
            dead: r.state.status == Status::Dead,
            pid: r.state.pid,
            exit_code: r.state.exit_code,
            error: r.state.error.clone(),
            started_at: r.state.started_at.clone(),
            finished_at: r.state.finished_at.clone(),
            health: r
                .state
                .health
                .as_ref()
                .and_then(|h| serde_json::to_value(h).ok()),
        },
        image: r.image_id.clone(),
        resolv_conf_path: dir.join("resolv.conf").display().to_string(),
        hostname_path: dir.join("hostname").display().to_string(),
        hosts_path: dir.join("hosts").display().to_string(),
        log_path: r.log_path.display().to_string(),
        name: r.name.clone(),
        restart_count: r.restart_count,
        driver: "overlay2".into(),
        platform: "linux".into(),
        mount_label: String::new(),
        process_label: String::new(),
        app_armor_profile: String::new(),
        exec_ids: (!execs.is_empty()).then_some(execs),
        host_config: r.host_config.clone(),
        graph_driver: json!({"Name": "overlay2", "Data": {"MergedDir": r.rootfs}}),
        mounts: r.mounts.clone(),
        config: r.config.clone(),
        network_settings: c.network_settings(&r),
    };
    Ok(http::json(StatusCode::OK, &out))
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let (titles, processes) = engine
        .containers()
        .top(id, q.get("ps_args").unwrap_or(""))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &TopResponse { titles, processes },
    ))
}

fn time_param(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty() && *v != "0") {
        None => Ok(None),
        Some(v) => berth_api::time::parse_client_time(v, berth_api::time::Timestamp::now())
            .map(|t| Some(t.unix_nanos()))
            .map_err(|e| ApiError::bad_request(format!("invalid {key} {v:?}: {e}"))),
    }
}

/// `GET /containers/{id}/logs`.
pub fn logs(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let (path, tty, running) = engine.containers().log_source(id)?;
    let mut o = LogOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: time_param(q, "since")?,
        until: time_param(q, "until")?,
        tail: None,
        timestamps: q.bool("timestamps"),
        follow: q.bool("follow"),
        tty,
    };
    if !o.stdout && !o.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    if let Some(t) = q.get("tail").filter(|t| !t.is_empty() && *t != "all") {
        o.tail = Some(
            t.parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| ApiError::bad_request(format!("invalid tail {t:?}")))?,
        );
    }
    let (tx, body) = Body::channel(32);
    tokio::task::spawn_blocking(move || {
        let mut w = std::io::BufWriter::with_capacity(64 << 10, ChannelWriter::new(tx));
        let _ = logs::write_logs(&path, &o, &mut w, &running);
    });
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", ct)
        .body(body)
        .expect("static headers are valid"))
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| !v.is_empty())
}

fn upgrade_response(tty: bool) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .body(Body::empty())
        .expect("static headers are valid");
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    r.headers_mut()
        .insert("Content-Type", HeaderValue::from_static(ct));
    r
}

/// Wrap client bytes into shim stdin frames. The client's EOF closes the container's stdin
/// only for StdinOnce containers (`docker run -i`); others (`run -d -i`) keep it open for the
/// next attach, like docker.
async fn pump_stdin<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    close_on_eof: bool,
) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) if !close_on_eof => return,
            Ok(0) | Err(_) => {
                let _ = to
                    .write_all(&berth_shim::protocol::header(
                        berth_shim::protocol::IN_STDIN_CLOSE,
                        0,
                    ))
                    .await;
                return;
            }
            Ok(n) => {
                let mut f = Vec::with_capacity(n + 8);
                berth_shim::protocol::encode(&mut f, berth_shim::protocol::IN_STDIN, &buf[..n]);
                if to.write_all(&f).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=`.
pub async fn attach(
    engine: &Arc<Engine>,
    id: &str,
    q: &Query,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let containers = engine.containers().clone();
    let rec = containers.inspect(id)?;
    let tty = rec.config.tty;
    let stdin_once = rec.config.stdin_once;
    let stdin = q.bool("stdin");
    let want_stdout = q.bool("stdout");
    let want_stderr = q.bool("stderr");
    let want_logs = q.bool("logs");
    let stream = q.bool("stream") || !want_logs;
    let id = rec.id.clone();
    if !wants_upgrade(&req) {
        // plain streamed output (old clients)
        let conn = containers.attach(&id).await?;
        let (tx, body) = Body::channel(32);
        tokio::spawn(async move {
            let mut s = conn.stream;
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", "application/vnd.docker.raw-stream")
            .body(body)
            .expect("static headers are valid"));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "attach upgrade failed");
                return;
            }
        };
        let io = TokioIo::new(upgraded);
        let (client_r, mut client_w) = tokio::io::split(io);
        if want_logs {
            if let Ok((path, tty, _)) = containers.log_source(&id) {
                let o = LogOptions {
                    stdout: true,
                    stderr: true,
                    tty,
                    ..LogOptions::default()
                };
                let mut buf = Vec::new();
                if logs::write_logs(&path, &o, &mut buf, &|| false).is_ok() {
                    let _ = client_w.write_all(&buf).await;
                }
            }
        }
        if !stream {
            let _ = client_w.shutdown().await;
            return;
        }
        let conn = match containers.attach(&id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "attach");
                let _ = client_w.shutdown().await;
                return;
            }
        };
        let (shim_r, shim_w) = conn.stream.into_split();
        let input = if stdin {
            Some(tokio::spawn(pump_stdin(client_r, shim_w, stdin_once)))
        } else {
            drop(shim_w);
            None
        };
        let mut shim_r = shim_r;
        if tty || (want_stdout && want_stderr) {
            let _ = tokio::io::copy(&mut shim_r, &mut client_w).await;
        } else {
            // only some streams asked for: pass their frames, drop the others
            let mut d = berth_shim::protocol::Decoder::default();
            let mut buf = vec![0u8; 32 << 10];
            'copy: loop {
                let n = match shim_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                d.push(&buf[..n]);
                while let Ok(Some(f)) = d.next_frame() {
                    let keep = match f.kind {
                        berth_shim::protocol::OUT_STDOUT => want_stdout,
                        berth_shim::protocol::OUT_STDERR => want_stderr,
                        _ => false,
                    };
                    if keep {
                        let mut out = Vec::with_capacity(f.payload.len() + 8);
                        berth_shim::protocol::encode(&mut out, f.kind, &f.payload);
                        if client_w.write_all(&out).await.is_err() {
                            break 'copy;
                        }
                    }
                }
            }
        }
        let _ = client_w.shutdown().await;
        if let Some(i) = input {
            i.abort();
        }
    });
    Ok(upgrade_response(tty))
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let h: u16 = q.get("h").and_then(|v| v.parse().ok()).unwrap_or(0);
    let w: u16 = q.get("w").and_then(|v| v.parse().ok()).unwrap_or(0);
    let containers = engine.containers().clone();
    let rec = containers.inspect(id)?;
    if !rec.state.status.is_alive() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("container {} is not running", rec.id),
        ));
    }
    let dir = containers.shim_dir(&rec.id);
    let _ = tokio::task::spawn_blocking(move || {
        berth_shim::client::Attach::connect(&dir).and_then(|mut a| a.resize(h, w))
    })
    .await;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub fn exec_resize(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let h: u16 = q.get("h").and_then(|v| v.parse().ok()).unwrap_or(0);
    let w: u16 = q.get("w").and_then(|v| v.parse().ok()).unwrap_or(0);
    engine.containers().exec_resize(id, h, w)?;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /containers/{id}/exec`.
pub async fn exec_create(
    engine: &Arc<Engine>,
    id: &str,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let cfg: ExecConfig = http::read_json(body).await?;
    let exec_id = engine.containers().exec_create(id, cfg)?;
    Ok(http::json(StatusCode::CREATED, &json!({"Id": exec_id})))
}

/// `GET /exec/{id}/json`.
pub fn exec_inspect(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let e = engine.containers().exec_get(id)?;
    let s = e.state();
    let c = &e.config;
    let out = ExecInspect {
        id: e.id.clone(),
        running: s.running,
        exit_code: s.exit_code,
        process_config: ExecProcessConfig {
            tty: c.tty,
            entrypoint: c.cmd.first().cloned().unwrap_or_default(),
            arguments: c.cmd.iter().skip(1).cloned().collect(),
            privileged: c.privileged,
            user: c.user.clone(),
        },
        open_stdin: c.attach_stdin,
        open_stderr: c.attach_stderr,
        open_stdout: c.attach_stdout,
        container_id: e.container_id.clone(),
        pid: s.pid,
    };
    Ok(http::json(StatusCode::OK, &out))
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s
            .code()
            .map(i64::from)
            .or_else(|| s.signal().map(|n| 128 + i64::from(n)))
            .unwrap_or(-1),
        Err(_) => -1,
    }
}

async fn copy_framed<R: AsyncRead + Unpin>(
    mut from: R,
    kind: u8,
    tty: bool,
    to: tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let chunk = if tty {
                    Bytes::copy_from_slice(&buf[..n])
                } else {
                    let mut f = Vec::with_capacity(n + 8);
                    berth_shim::protocol::encode(&mut f, kind, &buf[..n]);
                    Bytes::from(f)
                };
                if to.send(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `POST /exec/{id}/start`.
pub async fn exec_start(
    engine: &Arc<Engine>,
    id: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let upgrade = wants_upgrade(&req);
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let cfg: ExecStartConfig = http::read_json(req.into_body()).await?;
    let containers = engine.containers().clone();
    let exec = containers.exec_get(id)?;
    let mut started = containers
        .exec_start(id, cfg.detach, cfg.console_size)
        .await?;
    let exec_id = exec.id.clone();
    if cfg.detach {
        tokio::spawn(async move {
            let code = exit_code(started.child.wait().await);
            containers.exec_finished(&exec_id, code);
        });
        return Ok(http::empty(StatusCode::OK));
    }
    let tty = started.tty || cfg.tty;
    if let Some(pty) = started.pty.take() {
        let Some(on_upgrade) = on_upgrade else {
            return Err(ApiError::bad_request(
                "exec with a TTY needs an upgraded connection (Upgrade: tcp)",
            ));
        };
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                let _ = started.child.start_kill();
                let code = exit_code(started.child.wait().await);
                containers.exec_finished(&exec_id, code);
                return;
            };
            let (mut client_r, mut client_w) = tokio::io::split(TokioIo::new(upgraded));
            let master = std::fs::File::from(pty);
            let writer = master.try_clone();
            // the pty master is read and written by two plain threads: blocking I/O on a
            // character device, no unsafe registration with the reactor
            let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            std::thread::spawn(move || {
                use std::io::Read;
                let mut m = master;
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match m.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if out_tx
                                .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            });
            let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            if let Ok(mut w) = writer {
                std::thread::spawn(move || {
                    use std::io::Write;
                    while let Some(b) = in_rx.blocking_recv() {
                        if w.write_all(&b).is_err() {
                            return;
                        }
                    }
                });
            }
            let input = tokio::spawn(async move {
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match client_r.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if in_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            let mut child = started.child;
            loop {
                tokio::select! {
                    b = out_rx.recv() => match b {
                        Some(b) => {
                            if client_w.write_all(&b).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    st = child.wait() => {
                        // drain what the process wrote before it exited
                        while let Ok(Some(b)) = tokio::time::timeout(
                            std::time::Duration::from_millis(50),
                            out_rx.recv(),
                        )
                        .await
                        {
                            let _ = client_w.write_all(&b).await;
                        }
                        containers.exec_finished(&exec_id, exit_code(st));
                        let _ = client_w.shutdown().await;
                        input.abort();
                        return;
                    }
                }
            }
            let code = exit_code(child.wait().await);
            containers.exec_finished(&exec_id, code);
            let _ = client_w.shutdown().await;
            input.abort();
        });
        return Ok(upgrade_response(true));
    }
    let stdout = started.child.stdout.take();
    let stderr = started.child.stderr.take();
    let stdin = started.child.stdin.take();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    if let Some(o) = stdout {
        tokio::spawn(copy_framed(o, 1, tty, tx.clone()));
    }
    if let Some(e) = stderr {
        tokio::spawn(copy_framed(e, 2, tty, tx.clone()));
    }
    drop(tx);
    let Some(on_upgrade) = on_upgrade else {
        let (btx, body) = Body::channel(16);
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if btx.send(Ok(b)).await.is_err() {
                    break;
                }
            }
            let code = exit_code(started.child.wait().await);
            containers.exec_finished(&exec_id, code);
        });
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", "application/vnd.docker.raw-stream")
            .body(body)
            .expect("static headers are valid"));
    };
    tokio::spawn(async move {
        let upgraded = on_upgrade.await;
        let Ok(upgraded) = upgraded else {
            let _ = started.child.start_kill();
            let code = exit_code(started.child.wait().await);
            containers.exec_finished(&exec_id, code);
            return;
        };
        let (mut client_r, mut client_w) = tokio::io::split(TokioIo::new(upgraded));
        let input = stdin.map(|mut si| {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_r, &mut si).await;
                let _ = si.shutdown().await;
            })
        });
        while let Some(b) = rx.recv().await {
            if client_w.write_all(&b).await.is_err() {
                break;
            }
        }
        let code = exit_code(started.child.wait().await);
        containers.exec_finished(&exec_id, code);
        let _ = client_w.shutdown().await;
        if let Some(i) = input {
            i.abort();
        }
    });
    Ok(upgrade_response(tty))
}

/// `POST /containers/prune?filters=`: removes stopped containers (filters `label`, `label!`,
/// `until`).
pub async fn prune(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = Filters::parse(q.get("filters").unwrap_or(""))?;
    filters.validate(&["label", "label!", "until"])?;
    let until = match filters.get("until").first() {
        Some(u) => Some(
            berth_api::time::parse_client_time(u, berth_api::time::Timestamp::now())
                .map_err(|e| ApiError::bad_request(format!("invalid until {u:?}: {e}")))?
                .unix_nanos(),
        ),
        None => None,
    };
    let c = engine.containers();
    let recs = c.list(&ListOptions {
        all: true,
        ..ListOptions::default()
    })?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for r in recs {
        if r.state.status.is_alive() {
            continue;
        }
        let labels = r.config.labels.clone().unwrap_or_default();
        if filters.contains("label") && !filters.labels_match("label", &labels) {
            continue;
        }
        if filters.contains("label!") && filters.labels_match("label!", &labels) {
            continue;
        }
        if let Some(u) = until {
            let created = berth_api::time::parse_timestamp(&r.created)
                .map(|t| t.unix_nanos())
                .unwrap_or(0);
            if created >= u {
                continue;
            }
        }
        reclaimed += engine.images().snapshots().usage(&r.id).unwrap_or(0);
        if c.remove(&r.id, false, false).await.is_ok() {
            deleted.push(r.id.clone());
        }
    }
    Ok(http::json(
        StatusCode::OK,
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}

fn stats_json(
    id: &str,
    name: &str,
    cur: &berth_engine::containers::stats::Sample,
    pre: Option<&berth_engine::containers::stats::Sample>,
) -> serde_json::Value {
    let cpu = |s: &berth_engine::containers::stats::Sample| {
        json!({
            "cpu_usage": {
                "total_usage": s.cpu_total,
                "percpu_usage": s.cpu_percpu,
                "usage_in_kernelmode": s.cpu_kernel,
                "usage_in_usermode": s.cpu_user,
            },
            "system_cpu_usage": s.system_cpu,
            "online_cpus": s.online_cpus,
            "throttling_data": {
                "periods": s.periods,
                "throttled_periods": s.throttled_periods,
                "throttled_time": s.throttled_time,
            },
        })
    };
    let ts = |n: i64| berth_api::time::Timestamp::from_unix_nanos(n).rfc3339_nano();
    json!({
        "read": ts(cur.read_nanos),
        "preread": pre.map(|p| ts(p.read_nanos)).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "id": id,
        "name": name,
        "pids_stats": {"current": cur.pids_current, "limit": cur.pids_limit},
        "cpu_stats": cpu(cur),
        "precpu_stats": pre.map(cpu).unwrap_or_else(|| json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}})),
        "memory_stats": {
            "usage": cur.mem_usage,
            "max_usage": cur.mem_max,
            "limit": cur.mem_limit,
            "stats": cur.mem_raw,
        },
        "blkio_stats": {},
        "networks": {},
    })
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: one JSON sample per second while the
/// container runs (`stream=false`: one sample with a `precpu_stats` taken just before).
pub async fn stats(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let containers = engine.containers().clone();
    let rec = containers.inspect(id)?;
    let stream = q.get("stream").is_none() || q.bool("stream");
    let one_shot = q.bool("one-shot");
    let first = containers.stats(&rec.id)?;
    if !stream {
        let (pre, cur) = if one_shot {
            (None, first)
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let cur = containers.stats(&rec.id)?;
            (Some(first), cur)
        };
        return Ok(http::json(
            StatusCode::OK,
            &stats_json(&rec.id, &rec.name, &cur, pre.as_ref()),
        ));
    }
    let (tx, body) = Body::channel(4);
    tokio::spawn(async move {
        let mut pre: Option<berth_engine::containers::stats::Sample> = None;
        let mut cur = first;
        loop {
            let mut line = serde_json::to_vec(&stats_json(&rec.id, &rec.name, &cur, pre.as_ref()))
                .unwrap_or_default();
            line.push(b'\n');
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match containers.stats(&rec.id) {
                Ok(s) => {
                    pre = Some(std::mem::replace(&mut cur, s));
                }
                Err(_) => return,
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("static headers are valid"))
}

/// `POST /containers/{id}/update`.
pub async fn update(
    engine: &Arc<Engine>,
    id: &str,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let u: berth_api::container::HostConfig = http::read_json(body).await?;
    engine.containers().update(id, &u).await?;
    Ok(http::json(StatusCode::OK, &json!({"Warnings": []})))
}

/// `GET /containers/{id}/export`.
pub fn export(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let containers = engine.containers().clone();
    let rec = containers.inspect(id)?;
    let (tx, body) = Body::channel(16);
    tokio::task::spawn_blocking(move || {
        let abort = ChannelWriter::new(tx.clone());
        let w = std::io::BufWriter::with_capacity(1 << 20, ChannelWriter::new(tx));
        if let Err(e) = containers.export(&rec.id, w) {
            abort.abort(crate::error::chain(&e));
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/x-tar")
        .body(body)
        .expect("static headers are valid"))
}

/// `GET /containers/{id}/changes`.
pub fn changes(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let list: Vec<serde_json::Value> = engine
        .containers()
        .changes(id)?
        .into_iter()
        .map(|(path, kind)| json!({"Path": path, "Kind": kind}))
        .collect();
    Ok(http::json(StatusCode::OK, &list))
}
