//! `/images`: pull and import (`POST /images/create`, streamed JSON progress), list, inspect, tag,
//! delete, history, save (`GET /images/get`, `GET /images/{name}/get`), load, push, and the
//! credential check `POST /auth`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use berth_api::filters::Filters;
use berth_api::image::{DeleteItem, HistoryItem, ImageInspect, ImageSummary, RootFs};
use berth_engine::images::{Deleted, ImageError};
use berth_engine::Engine;
use berth_image::archive::ImportOptions;
use berth_image::auth::Credentials;
use berth_image::images::ImageRecord;
use berth_image::progress::{JsonMessage, ProgressEvent};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::{chain, ApiError};
use crate::http::{self, Body, ChannelWriter, Query};

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        Self::from_engine(e.kind(), &e)
    }
}

#[derive(Deserialize, Default)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default)]
    auth: String,
}

/// `X-Registry-Auth`: base64url JSON `{"username","password"}` (or `identitytoken`, or `auth`).
fn registry_auth(headers: &HeaderMap) -> Option<Credentials> {
    let raw = headers.get("X-Registry-Auth")?.to_str().ok()?.trim();
    if raw.is_empty() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    let a: AuthConfig = serde_json::from_slice(&bytes).ok()?;
    let (mut user, mut pass) = (a.username, a.password);
    if user.is_empty() && !a.auth.is_empty() {
        let dec = base64::engine::general_purpose::STANDARD
            .decode(&a.auth)
            .ok()?;
        let s = String::from_utf8(dec).ok()?;
        let (u, p) = s.split_once(':')?;
        user = u.to_string();
        pass = p.to_string();
    }
    if user.is_empty() && a.identity_token.is_empty() {
        return None;
    }
    let mut c = Credentials::basic(&user, &pass);
    if !a.identity_token.is_empty() {
        c.identity_token = Some(a.identity_token);
    }
    Some(c)
}

fn json_line(v: &impl serde::Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

fn error_line(message: &str) -> Bytes {
    json_line(&json!({"errorDetail": {"message": message}, "error": message}))
}

/// A progress stream: events go through an unbounded channel (the library's callback is
/// synchronous) into the response body.
fn progress_stream() -> (
    Arc<dyn Fn(ProgressEvent) + Send + Sync>,
    tokio::sync::mpsc::UnboundedReceiver<JsonMessage>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<JsonMessage>();
    let cb = Arc::new(move |ev: ProgressEvent| {
        let _ = tx.send(ev.to_json_message());
    });
    (cb, rx)
}

/// One `changes` instruction of an import (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`) applied to
/// `opts`; the argument is a JSON array or, for CMD/ENTRYPOINT, shell form (`sh -c ...`).
fn apply_change(opts: &mut ImportOptions, change: &str) -> Result<(), ApiError> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    let list = || -> Vec<String> {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => v,
            Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
        }
    };
    match word.to_ascii_uppercase().as_str() {
        "CMD" => opts.cmd = Some(list()),
        "ENTRYPOINT" => opts.entrypoint = Some(list()),
        "ENV" => {
            let (k, v) = rest
                .split_once('=')
                .or_else(|| rest.split_once(char::is_whitespace))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("changes: ENV needs KEY=VALUE, got {rest:?}"))
                })?;
            opts.env.push(format!("{}={}", k.trim(), v.trim()));
        }
        "WORKDIR" if !rest.is_empty() => opts.working_dir = Some(rest.to_string()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "changes: unsupported instruction {change:?} (CMD, ENTRYPOINT, ENV, WORKDIR)"
            )))
        }
    }
    Ok(())
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=`: the request body is a root filesystem
/// tarball; answers docker's `{"status":"sha256:…"}` line.
async fn import(
    engine: &Arc<Engine>,
    q: &Query,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    // Taken first: a request refused below still has its upload read (and discarded), so the
    // client sees the error instead of a broken pipe.
    let reader = http::body_reader(body);
    let src = q.get("fromSrc").unwrap_or_default().to_string();
    let mut opts = ImportOptions::default();
    if let Some(repo) = q.get("repo").filter(|r| !r.is_empty()) {
        let tag = q.get("tag").filter(|t| !t.is_empty());
        opts.tag = Some(match tag {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        });
    }
    for c in q.all("changes") {
        apply_change(&mut opts, &c)?;
    }
    if let Some(m) = q.get("message").filter(|m| !m.is_empty()) {
        opts.comment = Some(m.to_string());
    }
    let images = engine.images().clone();
    let rec = if src == "-" {
        tokio::task::spawn_blocking(move || images.import(reader, &opts))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
    } else {
        // `docker import URL`: the daemon fetches the tarball (docker's "source" URL)
        images.import_url(&src, &opts).await?
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(Body::from_bytes(
            json_line(&json!({"status": rec.id.to_string()})).to_vec(),
        ))
        .expect("static headers are valid"))
}

/// `POST /images/create?fromImage=&tag=` (pull) or `?fromSrc=-` (import).
pub async fn create(
    engine: &Arc<Engine>,
    q: &Query,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let Some(from) = q.get("fromImage").filter(|f| !f.is_empty()) else {
        if q.get("fromSrc").is_some() {
            return import(engine, q, body).await;
        }
        return Err(ApiError::bad_request("fromImage is required"));
    };
    let images = engine.images().clone();
    let mut reference = images.parse(from)?;
    if let Some(tag) = q.get("tag").filter(|t| !t.is_empty()) {
        reference = if tag.starts_with("sha256:") {
            reference.with_digest(tag)
        } else {
            reference.with_tag(tag)
        }
        .map_err(|e| ApiError::bad_request(chain(&e)))?;
    }
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(p.parse::<berth_image::pull::Platform>().map_err(|_| {
            ApiError::bad_request(format!("invalid platform {p:?}: want os/arch[/variant]"))
        })?),
        None => None,
    };
    let creds = registry_auth(headers);
    let (tx, body) = Body::channel(64);
    let (cb, mut rx) = progress_stream();
    tokio::spawn(async move {
        let forward_tx = tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if forward_tx.send(Ok(json_line(&m))).await.is_err() {
                    break;
                }
            }
        });
        let res = images.pull(&reference, platform, creds, &*cb).await;
        drop(cb);
        let _ = forward.await;
        if let Err(e) = res {
            let _ = tx.send(Ok(error_line(&chain(&e)))).await;
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("static headers are valid"))
}

#[derive(Deserialize, Default)]
struct LoginRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    serveraddress: String,
}

/// `POST /auth`: checks credentials against the registry (nothing is stored: clients keep
/// them and send `X-Registry-Auth`). Refused credentials answer 401 with the registry's reason.
pub async fn login(engine: &Arc<Engine>, body: Incoming) -> Result<Response<Body>, ApiError> {
    let req: LoginRequest = http::read_json(body).await?;
    if req.username.is_empty() {
        return Err(ApiError::bad_request("username is required"));
    }
    match engine
        .images()
        .verify_login(&req.serveraddress, &req.username, &req.password)
        .await
    {
        Ok(_) => Ok(http::json(
            StatusCode::OK,
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(e) if berth_engine::images::Images::is_unauthorized(&e) => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, chain(&e)))
        }
        Err(e) => Err(ApiError::from(e)),
    }
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(
    engine: &Arc<Engine>,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let images = engine.images().clone();
    let mut reference = images.parse(name)?;
    if let Some(tag) = q.get("tag").filter(|t| !t.is_empty()) {
        reference = reference
            .with_tag(tag)
            .map_err(|e| ApiError::bad_request(chain(&e)))?;
    }
    if reference.tag().is_none() {
        reference = reference
            .with_tag("latest")
            .map_err(|e| ApiError::bad_request(chain(&e)))?;
    }
    images.resolve(&reference.to_string())?;
    let creds = registry_auth(headers);
    let (tx, body) = Body::channel(64);
    let (cb, mut rx) = progress_stream();
    tokio::spawn(async move {
        let forward_tx = tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if forward_tx.send(Ok(json_line(&m))).await.is_err() {
                    break;
                }
            }
        });
        let res = images.push(&reference, creds, &*cb).await;
        drop(cb);
        let _ = forward.await;
        if let Err(e) = res {
            let _ = tx.send(Ok(error_line(&chain(&e)))).await;
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("static headers are valid"))
}

/// A prune's `until` filter (timestamp or duration ago) in unix seconds: only older objects go.
pub(crate) fn until_secs(filters: &berth_api::filters::Filters) -> Result<Option<i64>, ApiError> {
    match filters.get("until").first() {
        Some(u) => berth_api::time::parse_client_time(u, berth_api::time::Timestamp::now())
            .map(|t| Some(t.secs))
            .map_err(|e| ApiError::bad_request(format!("invalid until {u:?}: {e}"))),
        None => Ok(None),
    }
}

fn created_nanos(rec: &ImageRecord) -> i64 {
    rec.created
        .as_deref()
        .and_then(|c| berth_api::time::parse_timestamp(c).ok())
        .map(|t| t.unix_nanos())
        .unwrap_or(0)
}

fn created_secs(rec: &ImageRecord) -> i64 {
    created_nanos(rec) / 1_000_000_000
}

fn labels_of(engine: &Engine, rec: &ImageRecord) -> HashMap<String, String> {
    engine
        .images()
        .config_json(rec)
        .ok()
        .and_then(|raw| berth_image::config::ImageDefaults::from_config_json(&raw).ok())
        .map(|d| d.labels.into_iter().collect())
        .unwrap_or_default()
}

/// `GET /images/json`.
pub fn list(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = Filters::parse(q.get("filters").unwrap_or(""))?;
    filters.validate(&["reference", "dangling", "label", "before", "since"])?;
    let images = engine.images();
    // before/since name an image: only those created before / after it
    let created_of = |key: &str| -> Result<Option<i64>, ApiError> {
        match filters.get(key).first() {
            Some(name) => Ok(Some(created_nanos(&images.resolve(name)?))),
            None => Ok(None),
        }
    };
    let (before, since) = (created_of("before")?, created_of("since")?);
    let mut out = Vec::new();
    let recs = images.list()?;
    for rec in recs {
        let created = created_nanos(&rec);
        if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
            continue;
        }
        let tags: Vec<String> = rec.repo_tags.iter().map(|t| images.familiar(t)).collect();
        let dangling = tags.is_empty();
        if let Some(d) = filters.bool_value("dangling")? {
            if d != dangling {
                continue;
            }
        }
        if filters.contains("reference") {
            let ok = filters.get("reference").iter().any(|pat| {
                tags.iter().any(|t| {
                    let repo = t.rsplit_once(':').map(|(r, _)| r).unwrap_or(t);
                    glob(pat, t) || glob(pat, repo)
                })
            });
            if !ok {
                continue;
            }
        }
        let labels = labels_of(engine, &rec);
        if filters.contains("label") && !filters.labels_match("label", &labels) {
            continue;
        }
        out.push(ImageSummary {
            id: rec.id.to_string(),
            parent_id: String::new(),
            repo_tags: tags,
            repo_digests: rec
                .repo_digests
                .iter()
                .map(|d| images.familiar(d))
                .collect(),
            created: created_secs(&rec),
            size: rec.size as i64,
            shared_size: -1,
            virtual_size: rec.size as i64,
            labels,
            containers: -1,
        });
    }
    out.sort_by_key(|i| std::cmp::Reverse(i.created));
    Ok(http::json(StatusCode::OK, &out))
}

/// Go's `path.Match` subset docker uses for `reference` (`*`, `?`).
fn glob(pat: &str, s: &str) -> bool {
    let re = format!(
        "^{}$",
        regex::escape(pat)
            .replace("\\*", "[^/]*")
            .replace("\\?", "[^/]")
    );
    regex::Regex::new(&re)
        .map(|r| r.is_match(s))
        .unwrap_or(false)
}

/// `GET /images/{name}/json`.
pub fn inspect(engine: &Arc<Engine>, name: &str) -> Result<Response<Body>, ApiError> {
    let images = engine.images();
    let rec = images.resolve(name)?;
    let raw: serde_json::Value = serde_json::from_slice(&images.config_json(&rec)?)
        .map_err(|e| ApiError::internal(format!("image config {}: {e}", rec.id)))?;
    let out = ImageInspect {
        id: rec.id.to_string(),
        repo_tags: rec.repo_tags.iter().map(|t| images.familiar(t)).collect(),
        repo_digests: rec
            .repo_digests
            .iter()
            .map(|d| images.familiar(d))
            .collect(),
        parent: String::new(),
        comment: raw["comment"].as_str().unwrap_or_default().to_string(),
        created: rec.created.clone().unwrap_or_default(),
        docker_version: raw["docker_version"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        author: raw["author"].as_str().unwrap_or_default().to_string(),
        config: raw.get("config").cloned().unwrap_or(json!({})),
        architecture: raw["architecture"].as_str().unwrap_or_default().to_string(),
        os: raw["os"].as_str().unwrap_or_default().to_string(),
        size: rec.size as i64,
        virtual_size: rec.size as i64,
        graph_driver: json!({"Name": "overlay2", "Data": null}),
        root_fs: RootFs {
            kind: "layers".into(),
            layers: rec.diff_ids.iter().map(|d| d.to_string()).collect(),
        },
        metadata: json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
    };
    Ok(http::json(StatusCode::OK, &out))
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub fn tag(engine: &Arc<Engine>, name: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repository name (repo) is required"))?;
    let images = engine.images();
    let mut target = images.parse(repo)?;
    let tag = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
    if target.tag().is_none() || q.get("tag").is_some_and(|t| !t.is_empty()) {
        target = target
            .with_tag(tag)
            .map_err(|e| ApiError::bad_request(chain(&e)))?;
    }
    images.tag(name, &target)?;
    Ok(http::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=`.
pub fn remove(engine: &Arc<Engine>, name: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let containers = engine.containers().clone();
    let deleted = engine
        .images()
        .remove(name, q.bool("force"), &|id| containers.using_image(id))?;
    let out: Vec<DeleteItem> = deleted
        .into_iter()
        .map(|d| match d {
            Deleted::Untagged(t) => DeleteItem {
                untagged: Some(t),
                deleted: None,
            },
            Deleted::Deleted(id) => DeleteItem {
                untagged: None,
                deleted: Some(id),
            },
        })
        .collect();
    Ok(http::json(StatusCode::OK, &out))
}

/// `GET /images/{name}/history`.
pub fn history(engine: &Arc<Engine>, name: &str) -> Result<Response<Body>, ApiError> {
    let items: Vec<HistoryItem> = engine
        .images()
        .history(name)?
        .into_iter()
        .map(|h| HistoryItem {
            id: h.id,
            created: h.created,
            created_by: h.created_by,
            tags: h.tags,
            size: h.size,
            comment: h.comment,
        })
        .collect();
    Ok(http::json(StatusCode::OK, &items))
}

/// `GET /images/get?names=a&names=b` and `GET /images/{name}/get`: a tar stream.
pub fn save(engine: &Arc<Engine>, names: Vec<String>) -> Result<Response<Body>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let images = engine.images().clone();
    for n in &names {
        images.resolve(n)?;
    }
    let (tx, body) = Body::channel(16);
    tokio::task::spawn_blocking(move || {
        let abort = ChannelWriter::new(tx.clone());
        let w = ChannelWriter::new(tx);
        if let Err(e) = images.save(&names, std::io::BufWriter::with_capacity(1 << 20, w)) {
            abort.abort(chain(&e));
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/x-tar")
        .body(body)
        .expect("static headers are valid"))
}

/// `POST /images/load?quiet=`: a tar body; answers docker's JSON stream lines.
pub async fn load(engine: &Arc<Engine>, body: Incoming) -> Result<Response<Body>, ApiError> {
    let images = engine.images().clone();
    let reader = http::body_reader(body);
    let res = tokio::task::spawn_blocking(move || images.load(reader))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out = Vec::new();
    match res {
        Ok(lines) => {
            for l in lines {
                out.extend_from_slice(&json_line(&json!({"stream": format!("{l}\n")})));
            }
        }
        Err(e) => {
            return Err(ApiError::from(e));
        }
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(Body::from_bytes(out))
        .expect("static headers are valid"))
}

/// `POST /images/prune?filters=`: removes dangling images (with `dangling=false`, every image
/// no container uses).
pub fn prune(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = Filters::parse(q.get("filters").unwrap_or(""))?;
    filters.validate(&["dangling", "label", "until"])?;
    let all = filters.bool_value("dangling")? == Some(false);
    let until = until_secs(&filters)?;
    let images = engine.images();
    let containers = engine.containers().clone();
    let mut deleted: Vec<DeleteItem> = Vec::new();
    let mut reclaimed = 0u64;
    for rec in images.list()? {
        if !all && !rec.repo_tags.is_empty() {
            continue;
        }
        let id = rec.id.to_string();
        if containers.using_image(&id).is_some() || until.is_some_and(|u| created_secs(&rec) >= u) {
            continue;
        }
        let labels = labels_of(engine, &rec);
        if filters.contains("label") && !filters.labels_match("label", &labels) {
            continue;
        }
        if let Ok(items) = images.remove(&id, true, &|_| None) {
            reclaimed += rec.size;
            deleted.extend(items.into_iter().map(|d| match d {
                Deleted::Untagged(t) => DeleteItem {
                    untagged: Some(t),
                    deleted: None,
                },
                Deleted::Deleted(x) => DeleteItem {
                    untagged: None,
                    deleted: Some(x),
                },
            }));
        }
    }
    Ok(http::json(
        StatusCode::OK,
        &json!({"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_changes_parse_like_docker() {
        let mut o = ImportOptions::default();
        apply_change(&mut o, "CMD [\"cat\", \"/x\"]").expect("json cmd");
        apply_change(&mut o, "ENTRYPOINT echo hi").expect("shell entrypoint");
        apply_change(&mut o, "ENV A=1").expect("env");
        apply_change(&mut o, "env B 2").expect("env with space");
        apply_change(&mut o, "WORKDIR /w").expect("workdir");
        assert_eq!(o.cmd, Some(vec!["cat".to_string(), "/x".to_string()]));
        assert_eq!(
            o.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(o.env, vec!["A=1".to_string(), "B=2".to_string()]);
        assert_eq!(o.working_dir.as_deref(), Some("/w"));
        assert!(apply_change(&mut o, "EXPOSE 80").is_err());
        assert!(apply_change(&mut o, "ENV novalue").is_err());
    }

    #[test]
    fn registry_auth_header_decodes() {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::URL_SAFE
            .encode(br#"{"username":"u","password":"p","serveraddress":"r"}"#);
        h.insert("X-Registry-Auth", v.parse().expect("header"));
        let c = registry_auth(&h).expect("creds");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        h.insert("X-Registry-Auth", "e30=".parse().expect("header"));
        assert!(registry_auth(&h).is_none());
    }

    #[test]
    fn reference_globs() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox"));
        assert!(!glob("busy*", "library/busybox"));
    }
}
