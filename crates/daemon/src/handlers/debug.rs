//! `POST /containers/{id}/debug` (a berth extension, not in Docker's API): create a debug
//! session — a shell with host or image tools inside the container's namespaces — answered
//! with an exec-like id that `POST /exec/{id}/start` starts and attaches, `/exec/{id}/resize`
//! resizes and `/exec/{id}/json` inspects.

use std::sync::Arc;

use berth_engine::containers::debug::DebugRequest;
use berth_engine::Engine;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::{self, Body};

/// The request body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DebugConfig {
    /// Tools from this image instead of the host's.
    pub image: Option<String>,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub attach_stdin: bool,
    pub env: Vec<String>,
    pub console_size: Option<[u16; 2]>,
}

/// `POST /containers/{id}/debug`.
pub async fn create(
    engine: &Arc<Engine>,
    id: &str,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let c: DebugConfig = http::read_json(body).await?;
    let exec_id = engine.containers().debug_create(
        id,
        DebugRequest {
            image: c.image.filter(|i| !i.is_empty()),
            cmd: c.cmd,
            tty: c.tty,
            attach_stdin: c.attach_stdin,
            env: c.env,
            console_size: c.console_size,
        },
    )?;
    Ok(http::json(StatusCode::CREATED, &json!({"Id": exec_id})))
}
