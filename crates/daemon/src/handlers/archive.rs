//! `docker cp` over the API: `HEAD|GET|PUT /containers/{id}/archive?path=...` (stat header,
//! tar of a path, extraction of a tar into a directory). The work is in
//! `berth_engine::containers::archive`; this is the wire.

use std::io::Write;
use std::sync::Arc;

use base64::Engine as _;
use berth_engine::containers::archive::{ArchiveError, PathStat, PutOptions};
use berth_engine::Engine;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};

use crate::error::{chain, ApiError};
use crate::http::{self, Body, ChannelWriter, Query};

/// The header docker clients read the stat from.
const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        Self::from_engine(e.kind(), &e)
    }
}

fn path_param(q: &Query) -> Result<String, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("path is required")),
    }
}

fn stat_header(stat: &PathStat) -> Result<String, ApiError> {
    let json =
        serde_json::to_vec(stat).map_err(|e| ApiError::internal(format!("encode stat: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

/// `HEAD .../archive`: the stat header only.
pub async fn stat(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let path = path_param(q)?;
    let c = engine.containers().clone();
    let id = id.to_string();
    let stat = tokio::task::spawn_blocking(move || c.archive_stat(&id, &path))
        .await
        .map_err(|e| ApiError::internal(format!("stat task: {e}")))??;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(STAT_HEADER, stat_header(&stat)?)
        .body(Body::empty())
        .expect("base64 is a valid header value"))
}

/// `GET .../archive`: the stat header and the tar.
pub async fn get(engine: &Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let path = path_param(q)?;
    let c = engine.containers().clone();
    let id = id.to_string();
    let source = tokio::task::spawn_blocking(move || c.archive_get(&id, &path))
        .await
        .map_err(|e| ApiError::internal(format!("archive task: {e}")))??;
    let header = stat_header(&source.stat)?;
    let (tx, body) = Body::channel(16);
    tokio::task::spawn_blocking(move || {
        let abort = ChannelWriter::new(tx.clone());
        let w = std::io::BufWriter::with_capacity(256 << 10, ChannelWriter::new(tx));
        let result = source
            .write_tar(w)
            .map_err(|e| chain(&e))
            .and_then(|mut w| {
                w.flush().map_err(|e| e.to_string())?;
                Ok(w)
            });
        match result {
            Ok(_) => {}
            Err(msg) => {
                tracing::warn!(error = %msg, "archive failed mid-stream");
                // a truncated tar must not look whole: cut the stream
                abort.abort(msg);
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/x-tar")
        .header(STAT_HEADER, header)
        .body(body)
        .expect("static headers are valid"))
}

/// `PUT .../archive`: extract the body into the directory `path`.
pub async fn put(
    engine: &Arc<Engine>,
    id: &str,
    q: &Query,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let path = path_param(q)?;
    let opts = PutOptions {
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
        copy_uid_gid: q.bool("copyUIDGID"),
    };
    let reader = http::body_reader(body);
    let c = engine.containers().clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || c.archive_put(&id, &path, reader, opts))
        .await
        .map_err(|e| ApiError::internal(format!("extract task: {e}")))??;
    Ok(http::empty(StatusCode::OK))
}

/// Dispatch by method (`HEAD` and `GET` share the route).
pub async fn route(
    engine: &Arc<Engine>,
    method: &Method,
    id: &str,
    q: &Query,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    match *method {
        Method::HEAD => stat(engine, id, q).await,
        Method::GET => get(engine, id, q).await,
        _ => put(engine, id, q, body).await,
    }
}
