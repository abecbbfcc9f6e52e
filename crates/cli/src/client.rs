//! The API client: which daemon to talk to (`-H`, `BERTH_HOST`, `DOCKER_HOST`, or the default
//! socket), HTTP/1.1 over a Unix socket or mutual-TLS TCP, and Docker-style error decoding.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// Why a request failed; `Daemon` is the daemon's own answer, printed docker-style.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Error response from daemon: {message}")]
    Daemon { status: StatusCode, message: String },
    #[error("Cannot connect to the berth daemon at {host}. Is berthd running?")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid host {0:?}: expected unix:///path or tcp://host:port")]
    Host(String),
    #[error("{0} needs TLS: pass --tlsverify with --tlscacert, --tlscert, --tlskey (or DOCKER_CERT_PATH)")]
    NeedsTls(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("decode daemon response: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Client certificates for tcp:// hosts.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the daemon is.
#[derive(Debug, Clone)]
pub enum Target {
    Unix(PathBuf),
    Tcp { addr: String, tls: Option<TlsPaths> },
}

impl Target {
    pub fn parse(host: &str, tls: Option<TlsPaths>) -> Result<Self, ClientError> {
        if let Some(p) = host.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(ClientError::Host(host.to_string()));
            }
            return Ok(Target::Unix(PathBuf::from(p)));
        }
        if let Some(a) = host.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            if !a.contains(':') {
                return Err(ClientError::Host(host.to_string()));
            }
            return Ok(Target::Tcp {
                addr: a.to_string(),
                tls,
            });
        }
        Err(ClientError::Host(host.to_string()))
    }

    pub fn display(&self) -> String {
        match self {
            Target::Unix(p) => format!("unix://{}", p.display()),
            Target::Tcp { addr, .. } => format!("tcp://{addr}"),
        }
    }
}

/// A request body: whole, or streamed from a channel (volume import).
pub enum ReqBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl http_body::Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut *self {
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReqBody::Full(None))
    }
}

/// A connection factory for one daemon.
#[derive(Clone)]
pub struct Client {
    target: Target,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn tls_config(p: &TlsPaths) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let e = |what: &Path, err: &dyn std::fmt::Display| {
        ClientError::Tls(format!("{}: {err}", what.display()))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&p.ca).map_err(|x| e(&p.ca, &x))? {
        roots
            .add(c.map_err(|x| e(&p.ca, &x))?)
            .map_err(|x| e(&p.ca, &x))?;
    }
    let chain = CertificateDer::pem_file_iter(&p.cert)
        .map_err(|x| e(&p.cert, &x))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|x| e(&p.cert, &x))?;
    let key = PrivateKeyDer::from_pem_file(&p.key).map_err(|x| e(&p.key, &x))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| ClientError::Tls(x.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|x| e(&p.cert, &x))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl Client {
    pub fn new(target: Target) -> Result<Self, ClientError> {
        let tls = match &target {
            Target::Tcp { tls: Some(p), .. } => Some(tls_config(p)?),
            Target::Tcp { tls: None, .. } => return Err(ClientError::NeedsTls(target.display())),
            Target::Unix(_) => None,
        };
        Ok(Self { target, tls })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Send one request on a fresh connection.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.send_with(method, path_and_query, body, content_type, false, None)
            .await
    }

    /// Send asking for a connection upgrade (`Upgrade: tcp`, attach and exec start); the
    /// caller takes the raw stream with `hyper::upgrade::on` after a 101.
    pub async fn upgrade(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        let ct = body.as_ref().map(|_| "application/json");
        self.send_with(method, path_and_query, ReqBody::Full(body), ct, true, None)
            .await
    }

    async fn send_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: ReqBody,
        content_type: Option<&str>,
        upgrade: bool,
        registry_auth: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("Host", "berth")
            .header(
                "User-Agent",
                concat!("berth-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            b = b.header("Content-Type", ct);
        }
        if upgrade {
            b = b.header("Connection", "Upgrade").header("Upgrade", "tcp");
        }
        if let Some(a) = registry_auth {
            b = b.header("X-Registry-Auth", a);
        }
        let req = b.body(body).map_err(|e| ClientError::Host(e.to_string()))?;
        let connect_err = |source| ClientError::Connect {
            host: self.target.display(),
            source,
        };
        match &self.target {
            Target::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(connect_err)?;
                Self::exchange(s, req).await
            }
            Target::Tcp { addr, .. } => {
                let s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(connect_err)?;
                let cfg = self
                    .tls
                    .clone()
                    .expect("tcp targets always have TLS (checked in new)");
                let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let name = rustls_pki_types::ServerName::try_from(host)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, s)
                    .await
                    .map_err(connect_err)?;
                Self::exchange(tls, req).await
            }
        }
    }

    async fn exchange<IO>(io: IO, req: Request<ReqBody>) -> Result<Response<Incoming>, ClientError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(req).await?)
    }

    /// Send, and turn a non-2xx answer into [`ClientError::Daemon`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        let ct = body.as_ref().map(|_| "application/json");
        let resp = self.send(method, path, ReqBody::Full(body), ct).await?;
        check(resp).await
    }

    /// A bodiless [`Client::call`] carrying registry credentials (`X-Registry-Auth`, pull/push).
    pub async fn call_with_auth(
        &self,
        method: Method,
        path: &str,
        registry_auth: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let resp = self
            .send_with(
                method,
                path,
                ReqBody::Full(None),
                None,
                false,
                registry_auth,
            )
            .await?;
        check(resp).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.call(Method::GET, path, None).await?;
        read_json(resp).await
    }

    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(Method::GET, "/_ping", None).await.map(drop)
    }
}

/// Non-2xx → the daemon's `message`.
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.into_body().collect().await?.to_bytes();
    let message = serde_json::from_slice::<berth_api::ErrorResponse>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
    Err(ClientError::Daemon { status, message })
}

pub async fn read_json<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T, ClientError> {
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// `?k=v&...` with values percent-encoded; empty values are left out.
pub fn query(pairs: &[(&str, String)]) -> String {
    let mut s = form_urlencoded_serialize(pairs);
    if !s.is_empty() {
        s.insert(0, '?');
    }
    s
}

fn form_urlencoded_serialize(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert!(
            matches!(Target::parse("unix:///run/x.sock", None).unwrap(), Target::Unix(p) if p == Path::new("/run/x.sock"))
        );
        assert!(matches!(
            Target::parse("tcp://127.0.0.1:2376", None).unwrap(),
            Target::Tcp { .. }
        ));
        assert!(Target::parse("unix://rel", None).is_err());
        assert!(Target::parse("http://x", None).is_err());
        let plain = Target::parse("tcp://127.0.0.1:2375", None).unwrap();
        assert!(matches!(Client::new(plain), Err(ClientError::NeedsTls(_))));
    }

    #[test]
    fn encodes_queries() {
        assert_eq!(
            query(&[("filters", r#"{"a":1}"#.into()), ("force", String::new())]),
            "?filters=%7B%22a%22%3A1%7D"
        );
        assert_eq!(query(&[]), "");
    }
}
