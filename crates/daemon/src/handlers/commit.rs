//! `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`: a container's changes
//! as a new image (`docker commit`); the body, when present, is a container config replacing
//! the container's own. The work is `berth_engine::containers::commit`.

use std::sync::Arc;

use berth_api::container::ContainerConfig;
use berth_engine::containers::commit::{CommitError, CommitOptions};
use berth_engine::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::error::ApiError;
use crate::http::{self, Body, Query};

impl From<CommitError> for ApiError {
    fn from(e: CommitError) -> Self {
        Self::from_engine(e.kind(), &e)
    }
}

/// `POST /commit`.
pub async fn commit(
    engine: &Arc<Engine>,
    q: &Query,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("container is required"))?
        .to_string();
    let bytes = http_body_util::Limited::new(body, http::MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("read body: {e}")))?
        .to_bytes();
    let config = if bytes.iter().all(u8::is_ascii_whitespace) || bytes.as_ref() == b"null" {
        None
    } else {
        Some(
            serde_json::from_slice::<ContainerConfig>(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?,
        )
    };
    let repo = q.get("repo").unwrap_or_default();
    let reference = match (repo, q.get("tag").unwrap_or_default()) {
        ("", _) => None,
        (r, "") => Some(r.to_string()),
        (r, t) => Some(format!("{r}:{t}")),
    };
    let opts = CommitOptions {
        reference,
        comment: q.get("comment").unwrap_or_default().to_string(),
        author: q.get("author").unwrap_or_default().to_string(),
        changes: q
            .all("changes")
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
        // docker pauses unless told not to
        pause: q.get("pause").is_none() || q.bool("pause"),
        config,
    };
    let id = engine.containers().commit(&container, opts).await?;
    Ok(http::json(StatusCode::CREATED, &json!({"Id": id})))
}
