//! A misbehaving TCP proxy in front of a registry, for retry and resume tests: per connection it
//! either drops the connection at once, passes only the first N bytes of the answer then closes,
//! or passes everything. Bound to 127.0.0.1; the accept loop stops when the proxy is dropped.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Close without answering.
    Drop,
    /// Forward the answer's first N bytes, then close.
    Truncate(usize),
    /// Forward everything.
    Pass,
    /// Answer with this HTTP status (empty body, `Retry-After: 0`) without asking the registry.
    Status(u16),
}

pub struct Proxy {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// `plan(i)` decides what happens to the i-th connection (0-based).
    pub async fn start(
        upstream: u16,
        plan: impl Fn(usize) -> Action + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let plan = Arc::new(plan);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let i = count.fetch_add(1, Ordering::SeqCst);
                let action = plan(i);
                tokio::spawn(handle(client, upstream, action));
            }
        });
        Proxy {
            port,
            connections,
            task,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut client: TcpStream, upstream: u16, action: Action) {
    if let Action::Drop = action {
        let mut buf = [0u8; 1024];
        let _ = client.read(&mut buf).await;
        return;
    }
    if let Action::Status(code) = action {
        let mut buf = [0u8; 4096];
        let _ = client.read(&mut buf).await;
        let resp = format!(
            "HTTP/1.1 {code} Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = client.write_all(resp.as_bytes()).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async {
        match action {
            Action::Truncate(limit) => {
                let mut left = limit;
                let mut buf = vec![0u8; 16 * 1024];
                while left > 0 {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = n.min(left);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    left -= n;
                }
            }
            _ => {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
}
