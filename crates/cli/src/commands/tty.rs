//! Terminal sizing for interactive sessions (`run -it`, `exec -it`, `start -ai`, `attach`,
//! `debug`): the terminal's size sent once, then every SIGWINCH forwarded as
//! `POST .../resize?h=&w=` for the life of the session.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use hyper::Method;
use tokio::signal::unix::{signal, SignalKind};

use crate::client::{query, Client};

/// A background task of a session (resize forwarding, signal proxying), stopped when dropped.
pub struct TaskGuard(tokio::task::JoinHandle<()>);

impl TaskGuard {
    pub fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        TaskGuard(tokio::spawn(f))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Send the size of the terminal on stdout to `path` (`/containers/{id}/resize`,
/// `/exec/{id}/resize`); nothing when stdout is no terminal.
pub async fn send_size(client: &Client, path: &str) {
    let Ok((rows, cols)) = berth_sys::process::window_size(std::io::stdout().as_fd()) else {
        return;
    };
    if rows == 0 || cols == 0 {
        return;
    }
    let _ = client
        .call(
            Method::POST,
            &format!(
                "{path}{}",
                query(&[("h", rows.to_string()), ("w", cols.to_string())])
            ),
            None,
        )
        .await;
}

/// Forward every SIGWINCH to `path` while the returned guard lives (None when stdout is no
/// terminal: there is no window to follow).
pub fn forward_resizes(client: &Client, path: &str) -> Option<TaskGuard> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut winch = signal(SignalKind::window_change()).ok()?;
    let client = client.clone();
    let path = path.to_string();
    Some(TaskGuard::spawn(async move {
        while winch.recv().await.is_some() {
            send_size(&client, &path).await;
        }
    }))
}
