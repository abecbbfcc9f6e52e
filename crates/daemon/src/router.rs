//! Routing: berth's own `/berth/v1/...` namespace, then Docker's API with its optional `/vX.Y`
//! prefix (versions outside the supported range get Docker's 400), and the headers every
//! response carries.

use std::convert::Infallible;
use std::sync::Arc;

use berth_api::version::{self, ApiVersion, MAX_API_VERSION};
use berth_engine::Engine;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response};

use crate::error::ApiError;
use crate::handlers::{
    archive, backup, commit, containers, debug, events, images, networks, system, volumes,
};
use crate::http::{Body, Query};

/// `Server` header value.
pub fn server_header() -> String {
    format!("Berth/{} (linux)", system::VERSION)
}

/// Serve one request; never fails at the HTTP level (errors become Docker error bodies).
pub async fn handle(
    engine: Arc<Engine>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut resp = match route(&engine, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, status = %e.status, message = %e.message, "request failed");
            e.into_response()
        }
    };
    tracing::debug!(%method, %path, status = %resp.status(), "request");
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_str(&MAX_API_VERSION.to_string()).expect("version is ascii"),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_str(&server_header()).expect("version is ascii"),
    );
    Ok(resp)
}

fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

async fn route(engine: &Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = Query::parse(req.uri().query());
    if let Some(rest) = path.strip_prefix("/berth/v1/") {
        return route_berth(engine, &method, rest, req).await;
    }
    let vp = match version::split_path(&path) {
        Ok(Some(vp)) => vp,
        Ok(None) => return Err(page_not_found()),
        Err(e) => return Err(ApiError::bad_request(e.to_string())),
    };
    let segs: Vec<&str> = vp.route.trim_start_matches('/').split('/').collect();
    route_docker(engine, &method, &segs, vp.version, &q, req).await
}

async fn route_docker(
    engine: &Arc<Engine>,
    method: &Method,
    segs: &[&str],
    version: ApiVersion,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    match (method, segs) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(system::ping(method)),
        (&Method::GET, ["version"]) => Ok(system::version()),
        (&Method::GET, ["info"]) => Ok(system::info(engine)),
        (&Method::GET, ["events"]) => events::events(engine, q),
        (&Method::GET, ["system", "df"]) => system::disk_usage(engine, q),
        (&Method::GET, ["networks"]) => networks::list(engine, q),
        (&Method::POST, ["networks", "create"]) => networks::create(engine, req.into_body()).await,
        (&Method::POST, ["networks", "prune"]) => networks::prune(engine, q).await,
        (&Method::GET, ["networks", id]) => networks::inspect(engine, id),
        (&Method::DELETE, ["networks", id]) => networks::remove(engine, id).await,
        (&Method::POST, ["networks", id, "connect"]) => {
            networks::connect(engine, id, req.into_body()).await
        }
        (&Method::POST, ["networks", id, "disconnect"]) => {
            networks::disconnect(engine, id, req.into_body()).await
        }
        (&Method::POST, ["volumes", "create"]) => volumes::create(engine, req.into_body()).await,
        (&Method::POST, ["volumes", "prune"]) => volumes::prune(engine, q, version),
        (&Method::GET, ["volumes"]) => volumes::list(engine, q),
        (&Method::GET, ["volumes", name]) => volumes::inspect(engine, name),
        (&Method::DELETE, ["volumes", name]) => volumes::remove(engine, name, q),
        (&Method::POST, ["images", "create"]) => {
            let (parts, body) = req.into_parts();
            images::create(engine, q, &parts.headers, body).await
        }
        (&Method::POST, ["auth"]) => images::login(engine, req.into_body()).await,
        (&Method::GET, ["images", "json"]) => images::list(engine, q),
        (&Method::POST, ["images", "prune"]) => images::prune(engine, q),
        (&Method::POST, ["commit"]) => commit::commit(engine, q, req.into_body()).await,
        (&Method::POST, ["containers", "prune"]) => containers::prune(engine, q).await,
        (&Method::GET, ["images", "get"]) => images::save(engine, q.all("names")),
        (&Method::POST, ["images", "load"]) => images::load(engine, req.into_body()).await,
        (&Method::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            images::inspect(engine, &name.join("/"))
        }
        (&Method::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            images::history(engine, &name.join("/"))
        }
        (&Method::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            images::save(engine, vec![name.join("/")])
        }
        (&Method::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(engine, &name.join("/"), q)
        }
        (&Method::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            images::push(engine, &name.join("/"), q, req.headers()).await
        }
        (&Method::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images::remove(engine, &name.join("/"), q)
        }
        (&Method::POST, ["containers", "create"]) => {
            containers::create(engine, q, req.into_body()).await
        }
        (&Method::GET, ["containers", "json"]) => containers::list(engine, q),
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(engine, id),
        (&Method::GET, ["containers", id, "logs"]) => containers::logs(engine, id, q),
        (&Method::GET, ["containers", id, "top"]) => containers::top(engine, id, q).await,
        (&Method::GET, ["containers", id, "stats"]) => containers::stats(engine, id, q).await,
        (&Method::POST, ["containers", id, "start"]) => containers::start(engine, id).await,
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(engine, id, q).await,
        (&Method::POST, ["containers", id, "restart"]) => containers::restart(engine, id, q).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(engine, id, q).await,
        (&Method::POST, ["containers", id, "pause"]) => containers::pause(engine, id, true).await,
        (&Method::POST, ["containers", id, "unpause"]) => {
            containers::pause(engine, id, false).await
        }
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(engine, id, q).await,
        (&Method::POST, ["containers", id, "attach"]) => {
            containers::attach(engine, id, q, req).await
        }
        (&Method::POST, ["containers", id, "resize"]) => containers::resize(engine, id, q).await,
        (&Method::POST, ["containers", id, "rename"]) => containers::rename(engine, id, q),
        (&Method::POST, ["containers", id, "update"]) => {
            containers::update(engine, id, req.into_body()).await
        }
        (&Method::GET, ["containers", id, "export"]) => containers::export(engine, id),
        (&Method::GET, ["containers", id, "changes"]) => containers::changes(engine, id),
        (&Method::HEAD | &Method::GET | &Method::PUT, ["containers", id, "archive"]) => {
            archive::route(engine, method, id, q, req.into_body()).await
        }
        (&Method::POST, ["containers", id, "debug"]) => {
            debug::create(engine, id, req.into_body()).await
        }
        (&Method::POST, ["containers", id, "exec"]) => {
            containers::exec_create(engine, id, req.into_body()).await
        }
        (&Method::DELETE, ["containers", id]) => containers::remove(engine, id, q).await,
        (&Method::POST, ["exec", id, "start"]) => containers::exec_start(engine, id, req).await,
        (&Method::GET, ["exec", id, "json"]) => containers::exec_inspect(engine, id),
        (&Method::POST, ["exec", id, "resize"]) => containers::exec_resize(engine, id, q),
        _ => Err(page_not_found()),
    }
}

async fn route_berth(
    engine: &Arc<Engine>,
    method: &Method,
    rest: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = rest.split('/').collect();
    match (method, segs.as_slice()) {
        (&Method::GET, ["volumes", name, "export"]) => backup::export(engine, name),
        (&Method::PUT | &Method::POST, ["volumes", name, "import"]) => {
            backup::import(engine, name, req.into_body()).await
        }
        _ => Err(page_not_found()),
    }
}
