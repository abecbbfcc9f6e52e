//! berth's own endpoints, outside Docker's API and versioning, under `/berth/v1/`:
//! `GET /berth/v1/volumes/{name}/export` streams the volume as a tar;
//! `PUT|POST /berth/v1/volumes/{name}/import` restores a tar body into a new or empty volume.

use std::io::Write;
use std::sync::Arc;

use berth_engine::Engine;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::{chain, ApiError};
use crate::http::{self, Body, ChannelWriter};

/// Answer of a successful import.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportResponse {
    pub name: String,
    pub entries: u64,
    pub bytes: u64,
}

/// `GET /berth/v1/volumes/{name}/export`.
pub fn export(engine: &Arc<Engine>, name: &str) -> Result<Response<Body>, ApiError> {
    // Refuse a missing volume with a proper status before the 200 goes out.
    engine.volumes().get(name)?;
    let (tx, body) = Body::channel(8);
    let engine = Arc::clone(engine);
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut writer = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter::new(tx));
        let result = engine.volumes().export(&name, &mut writer).map(|_| ());
        match result
            .map_err(|e| chain(&e))
            .and_then(|()| writer.flush().map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            Err(msg) => {
                tracing::warn!(volume = %name, error = %msg, "export failed mid-stream");
                // Cut the stream instead of ending it cleanly: a truncated tar must not look whole.
                writer.get_ref().abort(msg);
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/x-tar")
        .body(body)
        .expect("static headers are valid"))
}

/// `PUT|POST /berth/v1/volumes/{name}/import`.
pub async fn import(
    engine: &Arc<Engine>,
    name: &str,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let reader = http::body_reader(body);
    let engine = Arc::clone(engine);
    let name = name.to_string();
    let result = tokio::task::spawn_blocking(move || engine.volumes().import(&name, reader))
        .await
        .map_err(|e| ApiError::internal(format!("import task: {e}")))?;
    let (volume, stats) = result?;
    Ok(http::json(
        StatusCode::OK,
        &ImportResponse {
            name: volume.name,
            entries: stats.entries,
            bytes: stats.bytes,
        },
    ))
}
