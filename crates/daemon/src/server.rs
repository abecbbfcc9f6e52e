//! Listeners and connections: the Unix socket (dir 0711, socket 0660, a stale socket replaced,
//! a live one refused), TCP only behind mutual TLS, one HTTP/1.1 connection task per client, and
//! shutdown on SIGTERM/SIGINT that removes the sockets it made.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_engine::config::{DaemonConfig, Host};
use berth_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::router;
use crate::tls::{self, TlsError};

/// Why a listener couldn't be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("socket {0} is in use by a running daemon")]
    SocketInUse(PathBuf),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tcp host {0} without TLS configuration")]
    NoTls(String),
    #[error("TLS for {host}")]
    Tls {
        host: String,
        #[source]
        source: Box<TlsError>,
    },
}

fn io_err(
    op: &'static str,
    path: impl std::fmt::Display,
) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_string();
    move |source| ServerError::Io { op, path, source }
}

/// A bound listener.
pub enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
    Tls {
        listener: TcpListener,
        acceptor: TlsAcceptor,
        addr: String,
    },
}

/// Bind the Unix socket at `path`: parent created 0711 when missing, a stale socket file
/// removed, a socket something still answers on refused; the socket is 0660 (owner root).
pub fn bind_unix(path: &Path) -> Result<Listener, ServerError> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io_err("create", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
                .map_err(io_err("chmod", dir.display()))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::SocketInUse(path.to_path_buf()));
        }
        fs::remove_file(path).map_err(io_err("remove stale socket", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(io_err("bind", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
        .map_err(io_err("chmod", path.display()))?;
    Ok(Listener::Unix {
        listener,
        path: path.to_path_buf(),
    })
}

/// Bind every configured host.
pub async fn bind_all(config: &DaemonConfig) -> Result<Vec<Listener>, ServerError> {
    let mut out = Vec::new();
    for h in &config.hosts {
        match h {
            Host::Unix(p) => out.push(bind_unix(p)?),
            Host::Tcp(addr) => {
                let files = config
                    .tls
                    .as_ref()
                    .ok_or_else(|| ServerError::NoTls(addr.clone()))?;
                let cfg = tls::server_config(files).map_err(|source| ServerError::Tls {
                    host: addr.clone(),
                    source: Box::new(source),
                })?;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(io_err("bind", addr))?;
                out.push(Listener::Tls {
                    listener,
                    acceptor: TlsAcceptor::from(cfg),
                    addr: addr.clone(),
                });
            }
        }
    }
    Ok(out)
}

fn serve_conn<IO>(engine: Arc<Engine>, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| router::handle(Arc::clone(&engine), req));
        let conn = http1::Builder::new()
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

async fn accept_loop(engine: Arc<Engine>, l: Listener) {
    match l {
        Listener::Unix { listener, path } => loop {
            match listener.accept().await {
                Ok((s, _)) => serve_conn(Arc::clone(&engine), s),
                Err(e) => {
                    tracing::warn!(socket = %path.display(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        },
        Listener::Tls {
            listener,
            acceptor,
            addr,
        } => loop {
            match listener.accept().await {
                Ok((s, peer)) => {
                    let acceptor = acceptor.clone();
                    let engine = Arc::clone(&engine);
                    tokio::spawn(async move {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s))
                            .await
                        {
                            Ok(Ok(tls)) => serve_conn(engine, tls),
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "TLS handshake refused")
                            }
                            Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        },
    }
}

/// Serve until SIGTERM or SIGINT, then remove the Unix sockets.
pub async fn serve(engine: Arc<Engine>, listeners: Vec<Listener>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let sockets: Vec<PathBuf> = listeners
        .iter()
        .filter_map(|l| match l {
            Listener::Unix { path, .. } => Some(path.clone()),
            Listener::Tls { .. } => None,
        })
        .collect();
    for l in listeners {
        tokio::spawn(accept_loop(Arc::clone(&engine), l));
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    for s in sockets {
        let _ = fs::remove_file(s);
    }
    Ok(())
}
