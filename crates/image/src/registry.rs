//! OCI distribution-spec client: one [`RegistryClient`] per registry endpoint.
//!
//! Owns the wire: manifests (GET/HEAD/PUT with the OCI and docker schema 2 media types, indexes and
//! manifest lists included), blobs (streaming GET resumed with `Range` after a transient failure,
//! HEAD, cross-repository mount, monolithic and chunked uploads), tag lists, and authentication
//! (`WWW-Authenticate: Bearer …` tokens fetched anonymously or with credentials and cached per scope;
//! Basic). Connection errors, 5xx and 429 answers are retried a bounded number of times with
//! exponential backoff. Plain http is used only for loopback registries or ones configured insecure.
//! Errors carry the registry's JSON error body (`manifest unknown: library/busybox:nosuch`).
mod blob;
mod challenge;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use url::Url;

pub use blob::{BlobDownload, BlobPushOutcome, MountOutcome};
pub use challenge::Challenge;

use crate::auth::Credentials;
use crate::reference::{RegistrySettings, DOCKER_HUB};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What berth accepts from manifest endpoints, most wanted first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";
/// Manifests bigger than this are refused (the distribution spec suggests 4 MiB).
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// One entry of a registry's JSON error body.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `UNAUTHORIZED`, …
    #[serde(default)]
    pub code: String,
    /// Human text (`manifest unknown`).
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct ApiErrors {
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error status; `message` comes from its JSON error body when
    /// there was one (`manifest unknown: library/busybox:nosuch`).
    #[error("{message}: {target}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Registry error code (`MANIFEST_UNKNOWN`), empty when the body had none.
        code: String,
        /// Registry message, or the status line.
        message: String,
        /// What was asked for (`repo:tag`, `repo@digest`, the registry host).
        target: String,
    },
    /// The request could not be made or its answer not read.
    #[error("{method} {url}")]
    Http {
        /// HTTP method.
        method: String,
        /// URL without query.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// Still failing after the bounded retries.
    #[error("{target}: giving up after {attempts} attempts")]
    RetriesExhausted {
        /// What was asked for.
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: Box<RegistryError>,
    },
    /// The token endpoint refused or answered nonsense.
    #[error("token request to {realm} for scope {scope:?} failed: {reason}")]
    Token {
        /// Token endpoint.
        realm: String,
        /// Scopes asked for.
        scope: String,
        /// Why.
        reason: String,
    },
    /// A 401 without a challenge berth can answer, or still 401 after answering it.
    #[error("unauthorized: {target}: {reason}")]
    Unauthorized {
        /// What was asked for.
        target: String,
        /// Why.
        reason: String,
    },
    /// An URL (registry endpoint, Location header, token realm) did not parse.
    #[error("invalid url {url:?}")]
    Url {
        /// The text.
        url: String,
        /// Cause.
        #[source]
        source: url::ParseError,
    },
    /// The registry answered something the protocol does not allow.
    #[error("{target}: {reason}")]
    Protocol {
        /// What was asked for.
        target: String,
        /// What was wrong.
        reason: String,
    },
    /// Content did not hash to the digest it was asked for by.
    #[error("{target}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        target: String,
        /// Digest asked for.
        expected: String,
        /// Digest of what arrived.
        actual: String,
    },
    /// A local file to upload could not be read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Whether retrying the same request may succeed (connection trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { source, .. } => is_transient_reqwest(source),
            RegistryError::Api { status, .. } => *status >= 500 || *status == 429,
            // retries already spent, or errors a retry cannot fix
            _ => false,
        }
    }
}

fn is_transient_reqwest(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// How many times and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (≥ 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub initial_backoff: Duration,
    /// Cap on one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A manifest (or index) as fetched: raw bytes (the digest covers exactly these), media type, digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// `Content-Type` of the answer (or the `mediaType` field when the registry sent none).
    pub media_type: String,
    /// `sha256:…` of `bytes`, verified.
    pub digest: String,
    /// The manifest as sent.
    pub bytes: Bytes,
}

/// What a HEAD on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Content-Type`.
    pub media_type: String,
    /// `Docker-Content-Digest`, when sent.
    pub digest: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

/// Auth scopes for one request: `repository:<name>:<actions>` entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    fn pull(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull")])
    }
    fn push(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }
    fn with_pull(mut self, repo: &str) -> Scope {
        self.0.push(format!("repository:{repo}:pull"));
        self
    }
    fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// A request body that can be rebuilt for each attempt.
#[derive(Debug, Clone)]
pub(crate) enum ReqBody {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of `path` from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: Url,
    pub scope: &'a Scope,
    pub headers: HeaderMap,
    pub body: ReqBody,
    /// For error messages: `repo:tag`, `repo@digest`.
    pub target: &'a str,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// scope key → (token, valid until)
    tokens: HashMap<String, (String, Instant)>,
}

/// A client for one registry endpoint (the registry itself or a mirror of it).
pub struct RegistryClient {
    http: reqwest::Client,
    /// The registry's name as in references (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    base: Url,
    credentials: Option<Credentials>,
    retry: RetryPolicy,
    auth: Mutex<AuthState>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .field("base", &self.base.as_str())
            .field("authenticated", &self.credentials.is_some())
            .finish()
    }
}

impl RegistryClient {
    /// A client for `endpoint` (`host[:port]`, a registry or one of its mirrors). http is used for
    /// loopback hosts and those `settings` lists insecure, https otherwise.
    pub fn new(
        endpoint: &str,
        settings: &RegistrySettings,
        credentials: Option<Credentials>,
    ) -> Result<Self, RegistryError> {
        let registry = crate::reference::normalize_registry(endpoint);
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_ENDPOINT.to_string()
        } else {
            registry.clone()
        };
        let scheme = if settings.is_insecure(&registry) {
            "http"
        } else {
            "https"
        };
        let text = format!("{scheme}://{host}/v2/");
        let base = Url::parse(&text).map_err(|source| RegistryError::Url { url: text, source })?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| RegistryError::Http {
                method: "build".into(),
                url: base.to_string(),
                source,
            })?;
        Ok(RegistryClient {
            http,
            registry,
            base,
            credentials,
            retry: RetryPolicy::default(),
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// Replaces the retry policy (tests make it fast).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The registry name this client talks to.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `/v2/` base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|source| RegistryError::Url {
            url: path.to_string(),
            source,
        })
    }

    /// `GET /v2/`: checks the registry speaks the API and that the credentials (if any) are
    /// accepted. A Bearer registry is asked for a token without scope, as `docker login` does.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = self.base.clone();
        let scope = Scope::default();
        let target = self.registry.clone();
        let resp = self
            .send(Req {
                method: Method::GET,
                url,
                scope: &scope,
                headers: HeaderMap::new(),
                body: ReqBody::Empty,
                target: &target,
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(api_error(resp, &target).await)
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`; the digest of the bytes is verified against a digest
    /// reference and against `Docker-Content-Digest`.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let target = target_of(repo, reference);
        let scope = Scope::pull(repo);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self
            .send(Req {
                method: Method::GET,
                url: self.url(&format!("{repo}/manifests/{reference}"))?,
                scope: &scope,
                headers,
                body: ReqBody::Empty,
                target: &target,
            })
            .await?;
        if !resp.status().is_success() {
            return Err(api_error(resp, &target).await);
        }
        let header_digest = header_str(&resp, "docker-content-digest");
        let content_type = header_str(&resp, CONTENT_TYPE.as_str());
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_MANIFEST_BYTES as u64)
        {
            return Err(RegistryError::Protocol {
                target,
                reason: "manifest larger than 4 MiB".into(),
            });
        }
        let url = resp.url().clone();
        let bytes = resp.bytes().await.map_err(|source| RegistryError::Http {
            method: "GET".into(),
            url: strip_query(&url),
            source,
        })?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::Protocol {
                target,
                reason: "manifest larger than 4 MiB".into(),
            });
        }
        let digest = sha256_digest(&bytes);
        let expected = if reference.contains(':') {
            Some(reference.to_string())
        } else {
            header_digest
        };
        if let Some(expected) = expected {
            if expected.starts_with("sha256:") && expected != digest {
                return Err(RegistryError::DigestMismatch {
                    target,
                    expected,
                    actual: digest,
                });
            }
        }
        let media_type = match content_type {
            Some(ct) if is_manifest_type(&ct) => ct,
            _ => media_type_field(&bytes).unwrap_or_else(|| OCI_MANIFEST.to_string()),
        };
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: `None` when the registry doesn't have it.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let target = target_of(repo, reference);
        let scope = Scope::pull(repo);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self
            .send(Req {
                method: Method::HEAD,
                url: self.url(&format!("{repo}/manifests/{reference}"))?,
                scope: &scope,
                headers,
                body: ReqBody::Empty,
                target: &target,
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(ManifestHead {
                media_type: header_str(&resp, CONTENT_TYPE.as_str()).unwrap_or_default(),
                digest: header_str(&resp, "docker-content-digest"),
                size: header_str(&resp, "content-length").and_then(|l| l.parse().ok()),
            })),
            _ => Err(api_error(resp, &target).await),
        }
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the manifest's digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String, RegistryError> {
        let target = target_of(repo, reference);
        let scope = Scope::push(repo);
        let digest = sha256_digest(&bytes);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::Protocol {
                target: target.clone(),
                reason: format!("media type {media_type:?} is not a valid header value"),
            })?,
        );
        let resp = self
            .send(Req {
                method: Method::PUT,
                url: self.url(&format!("{repo}/manifests/{reference}"))?,
                scope: &scope,
                headers,
                body: ReqBody::Bytes(bytes),
                target: &target,
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(api_error(resp, &target).await);
        }
        if let Some(sent) = header_str(&resp, "docker-content-digest") {
            if sent != digest {
                return Err(RegistryError::DigestMismatch {
                    target,
                    expected: digest,
                    actual: sent,
                });
            }
        }
        Ok(digest)
    }

    /// `GET /v2/<repo>/tags/list`, following `Link: <…>; rel="next"` pages.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let target = repo.to_string();
        let scope = Scope::pull(repo);
        let mut url = self.url(&format!("{repo}/tags/list"))?;
        let mut out = Vec::new();
        for _page in 0..1000 {
            let resp = self
                .send(Req {
                    method: Method::GET,
                    url: url.clone(),
                    scope: &scope,
                    headers: HeaderMap::new(),
                    body: ReqBody::Empty,
                    target: &target,
                })
                .await?;
            if !resp.status().is_success() {
                return Err(api_error(resp, &target).await);
            }
            let next = header_str(&resp, "link").and_then(|l| next_link(&l));
            let list: TagList = read_json(resp, &target).await?;
            out.extend(list.tags.unwrap_or_default());
            match next {
                Some(n) => url = self.url(&n)?,
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Sends `req`, answering auth challenges once and retrying transient failures (connection
    /// errors, 5xx, 429) with backoff. Returns the final answer whatever its status (except that a
    /// 5xx/429 after the last attempt is returned as is, for the caller's error message).
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<Response, RegistryError> {
        let mut attempt = 0u32;
        let mut answered_challenge = false;
        self.prefetch_token(req.scope).await?;
        loop {
            let mut rb = self
                .http
                .request(req.method.clone(), req.url.clone())
                .headers(req.headers.clone());
            if let Some(auth) = self.auth_header(req.scope) {
                rb = rb.header(AUTHORIZATION, auth);
            }
            rb = match &req.body {
                ReqBody::Empty => rb,
                ReqBody::Bytes(b) => rb.body(b.clone()),
                ReqBody::File { path, offset, len } => rb
                    .header(reqwest::header::CONTENT_LENGTH, *len)
                    .body(file_body(path, *offset, *len).await?),
            };
            let err = match rb.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !answered_challenge => {
                    answered_challenge = true;
                    let header = header_str(&resp, WWW_AUTHENTICATE.as_str());
                    let Some(challenge) = header.as_deref().and_then(Challenge::parse) else {
                        return Err(api_error(resp, req.target).await);
                    };
                    self.answer_challenge(challenge, req.scope).await?;
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(match api_error(resp, req.target).await {
                        RegistryError::Api { message, .. } => RegistryError::Unauthorized {
                            target: req.target.to_string(),
                            reason: message,
                        },
                        other => other,
                    });
                }
                Ok(resp)
                    if resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    if attempt + 1 >= self.retry.max_attempts {
                        return Ok(resp);
                    }
                    let retry_after = header_str(&resp, "retry-after")
                        .and_then(|s| s.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let e = api_error(resp, req.target).await;
                    tracing::debug!(target = req.target, error = %e, "transient registry answer, retrying");
                    let wait = retry_after
                        .unwrap_or_else(|| self.retry.backoff(attempt))
                        .min(self.retry.max_backoff);
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Ok(resp) => return Ok(resp),
                Err(source) => RegistryError::Http {
                    method: req.method.to_string(),
                    url: strip_query(&req.url),
                    source,
                },
            };
            if !err.is_transient() {
                return Err(err);
            }
            attempt += 1;
            if attempt >= self.retry.max_attempts {
                return Err(RegistryError::RetriesExhausted {
                    target: req.target.to_string(),
                    attempts: attempt,
                    source: Box::new(err),
                });
            }
            tracing::debug!(target = req.target, error = %err, attempt, "transient error, retrying");
            tokio::time::sleep(self.retry.backoff(attempt - 1)).await;
        }
    }

    /// Once the registry is known to want Bearer tokens, gets the token for a new scope before
    /// the request instead of after a 401 (saves a round trip per repository).
    async fn prefetch_token(&self, scope: &Scope) -> Result<(), RegistryError> {
        let pending = {
            let state = self.auth.lock().expect("auth state lock poisoned");
            match &state.challenge {
                Some(Challenge::Bearer { realm, service, .. }) => {
                    let fresh = state
                        .tokens
                        .get(&scope.key())
                        .is_some_and(|(_, until)| *until > Instant::now());
                    (!fresh).then(|| (realm.clone(), service.clone()))
                }
                _ => None,
            }
        };
        if let Some((realm, service)) = pending {
            let (token, lifetime) = self
                .fetch_token(&realm, service.as_deref(), scope, None)
                .await?;
            self.store_token(scope, token, lifetime);
        }
        Ok(())
    }

    fn store_token(&self, scope: &Scope, token: String, lifetime: Duration) {
        let mut state = self.auth.lock().expect("auth state lock poisoned");
        // keep a margin so a token never expires in flight
        let until = Instant::now()
            + lifetime
                .saturating_sub(Duration::from_secs(5))
                .max(Duration::from_secs(1));
        state.tokens.insert(scope.key(), (token, until));
    }

    fn auth_header(&self, scope: &Scope) -> Option<HeaderValue> {
        let state = self.auth.lock().expect("auth state lock poisoned");
        let value = match state.challenge.as_ref()? {
            Challenge::Basic => {
                let c = self.credentials.as_ref()?;
                let raw = format!("{}:{}", c.username, c.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Challenge::Bearer { .. } => {
                let (token, until) = state.tokens.get(&scope.key())?;
                if *until <= Instant::now() {
                    return None;
                }
                format!("Bearer {token}")
            }
        };
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    async fn answer_challenge(
        &self,
        challenge: Challenge,
        scope: &Scope,
    ) -> Result<(), RegistryError> {
        match &challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(RegistryError::Unauthorized {
                        target: self.registry.clone(),
                        reason:
                            "registry wants basic auth and no credentials are stored (berth login)"
                                .into(),
                    });
                }
            }
            Challenge::Bearer {
                realm,
                service,
                scope: asked,
            } => {
                let (token, lifetime) = self
                    .fetch_token(realm, service.as_deref(), scope, asked.as_deref())
                    .await?;
                self.store_token(scope, token, lifetime);
            }
        }
        self.auth
            .lock()
            .expect("auth state lock poisoned")
            .challenge = Some(challenge);
        Ok(())
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        asked: Option<&str>,
    ) -> Result<(String, Duration), RegistryError> {
        let mut scopes: Vec<String> = scope.0.clone();
        if let Some(asked) = asked {
            for s in asked.split(' ').filter(|s| !s.is_empty()) {
                if !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_string());
                }
            }
        }
        let scope_text = scopes.join(" ");
        let token_err = |reason: String| RegistryError::Token {
            realm: realm.to_string(),
            scope: scope_text.clone(),
            reason,
        };
        let mut url = Url::parse(realm).map_err(|source| RegistryError::Url {
            url: realm.to_string(),
            source,
        })?;
        let identity = self
            .credentials
            .as_ref()
            .and_then(|c| c.identity_token.clone());
        let mut last = None;
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.backoff(attempt - 1)).await;
            }
            let rb = if let Some(refresh) = &identity {
                // OAuth2 refresh-token grant, as docker does with an identity token
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "berth");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scope_text.is_empty() {
                    form.append_pair("scope", &scope_text);
                }
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish())
            } else {
                {
                    let mut q = url.query_pairs_mut();
                    q.clear();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scopes {
                        q.append_pair("scope", s);
                    }
                }
                let rb = self.http.get(url.clone());
                match &self.credentials {
                    Some(c) if !c.username.is_empty() => {
                        rb.basic_auth(&c.username, Some(&c.password))
                    }
                    _ => rb,
                }
            };
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) if is_transient_reqwest(&e) => {
                    last = Some(e.to_string());
                    continue;
                }
                Err(e) => return Err(token_err(e.to_string())),
            };
            let status = resp.status();
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                last = Some(format!("status {status}"));
                continue;
            }
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                let detail = serde_json::from_str::<ApiErrors>(&body)
                    .ok()
                    .and_then(|e| e.errors.into_iter().next())
                    .map(|e| e.message)
                    .unwrap_or_else(|| body.chars().take(200).collect());
                return Err(token_err(format!("status {status}: {detail}")));
            }
            let body = resp.bytes().await.map_err(|e| token_err(e.to_string()))?;
            let parsed: challenge::TokenResponse = serde_json::from_slice(&body)
                .map_err(|e| token_err(format!("invalid token answer: {e}")))?;
            let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(1));
            let token = parsed
                .into_token()
                .ok_or_else(|| token_err("answer has no token".into()))?;
            return Ok((token, lifetime));
        }
        Err(token_err(format!(
            "giving up after {} attempts: {}",
            self.retry.max_attempts,
            last.unwrap_or_default()
        )))
    }
}

async fn file_body(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<reqwest::Body, RegistryError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    f.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
    let stream = futures_util::stream::unfold(f.take(len), |mut r| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// `repo:tag` or `repo@sha256:…`.
pub(crate) fn target_of(repo: &str, reference: &str) -> String {
    if reference.contains(':') {
        format!("{repo}@{reference}")
    } else {
        format!("{repo}:{reference}")
    }
}

pub(crate) fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

pub(crate) fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn is_manifest_type(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or(ct).trim();
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ]
    .contains(&ct)
}

fn media_type_field(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct M {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let m: M = serde_json::from_slice(bytes).ok()?;
    m.media_type
        .or_else(|| m.manifests.map(|_| OCI_INDEX.to_string()))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        Some(url.to_string())
    })
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: Response,
    target: &str,
) -> Result<T, RegistryError> {
    let url = strip_query(resp.url());
    let body = resp.bytes().await.map_err(|source| RegistryError::Http {
        method: "GET".into(),
        url,
        source,
    })?;
    serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
        target: target.to_string(),
        reason: format!("invalid json answer: {e}"),
    })
}

/// Turns an error answer into [`RegistryError::Api`], using the JSON error body when present.
pub(crate) async fn api_error(resp: Response, target: &str) -> RegistryError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let first = serde_json::from_slice::<ApiErrors>(&body)
        .ok()
        .and_then(|e| e.errors.into_iter().next());
    let (code, message) = match first {
        Some(e) if !e.message.is_empty() => (e.code, e.message),
        Some(e) => (e.code.clone(), e.code.to_lowercase().replace('_', " ")),
        None => (String::new(), format!("registry answered {}", status)),
    };
    RegistryError::Api {
        status: status.as_u16(),
        code,
        message,
        target: target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_targets() {
        assert_eq!(
            next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(
            target_of("library/busybox", "latest"),
            "library/busybox:latest"
        );
        assert_eq!(target_of("a", "sha256:00"), "a@sha256:00");
    }

    #[test]
    fn scheme_follows_settings() {
        let s = RegistrySettings::default();
        let c = RegistryClient::new("127.0.0.1:5000", &s, None).expect("client");
        assert_eq!(c.base_url().as_str(), "http://127.0.0.1:5000/v2/");
        let c = RegistryClient::new("example.com", &s, None).expect("client");
        assert_eq!(c.base_url().as_str(), "https://example.com/v2/");
        let c = RegistryClient::new("docker.io", &s, None).expect("client");
        assert_eq!(c.base_url().as_str(), "https://registry-1.docker.io/v2/");
        let s = RegistrySettings {
            insecure_registries: vec!["example.com".into()],
            ..Default::default()
        };
        let c = RegistryClient::new("example.com", &s, None).expect("client");
        assert_eq!(c.base_url().as_str(), "http://example.com/v2/");
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(200));
        assert_eq!(p.backoff(1), Duration::from_millis(400));
        assert_eq!(p.backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn manifest_types() {
        assert!(is_manifest_type("application/vnd.oci.image.index.v1+json"));
        assert!(is_manifest_type(
            "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"
        ));
        assert!(!is_manifest_type("text/plain"));
        assert_eq!(
            media_type_field(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(OCI_INDEX)
        );
    }
}
