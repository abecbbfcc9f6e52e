//! `berth attach CONTAINER`: the terminal joined to a running container's stdio over
//! `POST /containers/{id}/attach` (HTTP upgrade), docker's detach keys (default ctrl-p ctrl-q)
//! recognised in the input, SIGINT/SIGTERM proxied without a TTY, window size followed with
//! one, and the container's exit code returned when it stops.

use std::io::{IsTerminal, Write};

use clap::Args;
use hyper::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::container::{upgrade, RawTerminal};
use super::tty;
use crate::client::{query, read_json, Client};

/// `berth attach` flags.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub container: String,
}

/// docker's detach key syntax: `ctrl-p,ctrl-q`, `a`, `ctrl-@`, `ctrl-[` ...
pub fn parse_detach_keys(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for k in s.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b @ b'['..=b'_'] => b - b'[' + 27,
                _ => anyhow::bail!("Unknown character: '{k}'"),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            anyhow::bail!("Unknown character: '{k}'");
        }
    }
    Ok(out)
}

/// Finds the detach sequence in a byte stream; bytes that only looked like its start are given
/// back when the match fails.
pub struct DetachScanner {
    keys: Vec<u8>,
    held: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, held: 0 }
    }

    /// Bytes to forward for `input`, and whether the sequence was completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// `berth attach`; returns the container's exit code (0 after a detach).
pub async fn run(client: &Client, a: AttachArgs) -> anyhow::Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", a.container))
        .await?;
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    if info["State"]["Paused"].as_bool() == Some(true) {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if info["State"]["Running"].as_bool() != Some(true) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let keys = parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let path = format!(
        "/containers/{id}/attach{}",
        query(&[
            ("stream", "1".into()),
            ("stdout", "1".into()),
            ("stderr", "1".into()),
            ("stdin", if stdin { "1".into() } else { String::new() }),
        ])
    );
    let conn = upgrade(client, &path, None).await?;
    let waiter = {
        let client = client.clone();
        let path = format!("/containers/{id}/wait");
        tokio::spawn(async move {
            let resp = client.call(Method::POST, &path, None).await?;
            let v: Value = read_json(resp).await?;
            anyhow::Ok(v["StatusCode"].as_i64().unwrap_or(-1))
        })
    };
    let _raw = (tty && stdin && std::io::stdin().is_terminal()).then(RawTerminal::enter);
    let resize_path = format!("/containers/{id}/resize");
    let _winch = if tty {
        tty::send_size(client, &resize_path).await;
        tty::forward_resizes(client, &resize_path)
    } else {
        None
    };
    let _proxy = (a.sig_proxy && !tty).then(|| proxy_signals(client, &id));
    let (mut r, mut w) = tokio::io::split(conn);
    let (detach_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
    let input = stdin.then(|| {
        tokio::spawn(async move {
            let mut scan = DetachScanner::new(keys);
            let mut i = tokio::io::stdin();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                match i.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (fwd, done) = scan.feed(&buf[..n]);
                        if !fwd.is_empty() && w.write_all(&fwd).await.is_err() {
                            break;
                        }
                        if done {
                            let _ = detach_tx.send(());
                            return;
                        }
                    }
                }
            }
            let _ = w.shutdown().await;
        })
    });
    let mut buf = vec![0u8; 32 << 10];
    let mut pending: Vec<u8> = Vec::new();
    let mut was_detached = false;
    // the detach signal stays pending while stdin is open; once its sender is gone it's done
    let mut detach_open = stdin;
    loop {
        let n = tokio::select! {
            n = r.read(&mut buf) => n?,
            d = &mut detached, if detach_open => {
                if d.is_ok() {
                    was_detached = true;
                    break;
                }
                detach_open = false;
                continue;
            }
        };
        if n == 0 {
            break;
        }
        if tty {
            let mut o = std::io::stdout().lock();
            o.write_all(&buf[..n])?;
            o.flush()?;
        } else {
            pending.extend_from_slice(&buf[..n]);
            demux(&mut pending)?;
        }
    }
    if let Some(i) = input {
        i.abort();
    }
    if was_detached {
        waiter.abort();
        return Ok(0);
    }
    Ok(i32::try_from(waiter.await??).unwrap_or(125))
}

/// Write the complete multiplexed frames at the front of `pending` to stdout (stream 1) or
/// stderr (stream 2); keep the incomplete rest.
fn demux(pending: &mut Vec<u8>) -> std::io::Result<()> {
    let mut off = 0;
    while pending.len() - off >= 8 {
        let h = &pending[off..off + 8];
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if pending.len() - off < 8 + len {
            break;
        }
        let data = &pending[off + 8..off + 8 + len];
        if h[0] == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(data)?;
            e.flush()?;
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(data)?;
            o.flush()?;
        }
        off += 8 + len;
    }
    pending.drain(..off);
    Ok(())
}

/// Proxy SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the container while the guard lives.
fn proxy_signals(client: &Client, id: &str) -> tty::TaskGuard {
    use tokio::signal::unix::{signal, SignalKind};
    let client = client.clone();
    let id = id.to_string();
    tty::TaskGuard::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(8);
        for (k, name) in kinds {
            let Ok(mut s) = signal(k) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(name).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        while let Some(name) = rx.recv().await {
            let _ = client
                .call(
                    Method::POST,
                    &format!("/containers/{id}/kill{}", query(&[("signal", name.into())])),
                    None,
                )
                .await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").expect("keys"),
            vec![16, 17]
        );
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-[").expect("keys"),
            vec![b'a', 0, 27]
        );
        assert!(parse_detach_keys("ctrl-").is_err());
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
    }
}
