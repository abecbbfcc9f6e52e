//! Tar streams between files and the API: `berth export` (a container's filesystem to a file),
//! `berth import` (a rootfs tarball to an image), and the `container prune` / `image prune`
//! verbs with their confirmation prompt.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use berth_api::filters::Filters;
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::volume::human_size;
use crate::client::{check, query, read_json, Client, ReqBody};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Tarball to import: a file, an http(s) URL (fetched by the daemon), or '-' for stdin
    pub file: String,
    /// Name of the new image (REPO[:TAG])
    pub reference: Option<String>,
    /// Apply Dockerfile instructions to the image (CMD, ENTRYPOINT, ENV, WORKDIR)
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Set commit message for the imported image
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub container: String,
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones (image prune only)
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. until=24h, label=k=v)
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

/// `berth export CONTAINER [-o FILE]`; a half-written file is removed on failure.
pub async fn export(client: &Client, a: ExportArgs) -> anyhow::Result<bool> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = client
        .call(
            Method::GET,
            &format!("/containers/{}/export", a.container),
            None,
        )
        .await?;
    let mut sink: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut body = resp.into_body();
    let result: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| anyhow::anyhow!("export of {} was cut short: {e}", a.container))?;
            if let Ok(d) = frame.into_data() {
                sink.write_all(&d)?;
            }
        }
        sink.flush()?;
        Ok(())
    }
    .await;
    if result.is_err() {
        if let Some(p) = &a.output {
            let _ = std::fs::remove_file(p);
        }
    }
    result.map(|()| true)
}

/// Streams `file` (or stdin for `-`) as a request body.
async fn file_body(file: &str) -> anyhow::Result<ReqBody> {
    let mut input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(Path::new(file))
                .await
                .map_err(|e| anyhow::anyhow!("open {file}: {e}"))?,
        )
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match input.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    Ok(ReqBody::Stream(rx))
}

/// `berth import FILE|URL|- [REPO[:TAG]]`: prints the new image id like docker. A URL is
/// fetched by the daemon (docker's behaviour), not by the CLI.
pub async fn import(client: &Client, a: ImportArgs) -> anyhow::Result<bool> {
    let url = a.file.starts_with("http://") || a.file.starts_with("https://");
    let src = if url { a.file.clone() } else { "-".to_string() };
    let mut pairs = vec![("fromSrc", src)];
    if let Some(r) = &a.reference {
        let (repo, tag) = super::image::split_tag(r);
        pairs.push(("repo", repo));
        pairs.push(("tag", tag));
    }
    for c in &a.change {
        pairs.push(("changes", c.clone()));
    }
    if let Some(m) = &a.message {
        pairs.push(("message", m.clone()));
    }
    let body = if url {
        ReqBody::Full(None)
    } else {
        file_body(&a.file).await?
    };
    let resp = client
        .send(
            Method::POST,
            &format!("/images/create{}", query(&pairs)),
            body,
            Some("application/x-tar"),
        )
        .await?;
    let resp = check(resp).await?;
    let bytes = resp.into_body().collect().await?.to_bytes();
    let mut ok = true;
    for line in bytes.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if let Some(e) = v["error"].as_str() {
            eprintln!("{e}");
            ok = false;
        } else if let Some(s) = v["status"].as_str() {
            outln!("{s}");
        }
    }
    Ok(ok)
}

/// docker's prune prompt; `true` when the user agreed (or `-f`).
fn confirm(force: bool, warning: &str) -> anyhow::Result<bool> {
    if force {
        return Ok(true);
    }
    eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn filters_query(f: &Filters) -> String {
    query(&[(
        "filters",
        if f.is_empty() {
            String::new()
        } else {
            f.to_json()
        },
    )])
}

/// `berth container prune [-f] [--filter]`.
pub async fn prune_containers(client: &Client, a: PruneArgs) -> anyhow::Result<bool> {
    if a.all {
        anyhow::bail!("unknown flag: --all (container prune removes every stopped container)");
    }
    if !confirm(a.force, "This will remove all stopped containers.")? {
        return Ok(true);
    }
    let f = Filters::from_args(&a.filter)?;
    let resp = client
        .call(
            Method::POST,
            &format!("/containers/prune{}", filters_query(&f)),
            None,
        )
        .await?;
    let r: Value = read_json(resp).await?;
    let deleted = r["ContainersDeleted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !deleted.is_empty() {
        outln!("Deleted Containers:");
        for d in &deleted {
            outln!("{}", d.as_str().unwrap_or_default());
        }
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        human_size(r["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(true)
}

/// `berth image prune [-a] [-f] [--filter]`.
pub async fn prune_images(client: &Client, a: PruneArgs) -> anyhow::Result<bool> {
    let warning = if a.all {
        "This will remove all images without at least one container associated to them."
    } else {
        "This will remove all dangling images."
    };
    if !confirm(a.force, warning)? {
        return Ok(true);
    }
    let mut f = Filters::from_args(&a.filter)?;
    if a.all {
        f.add("dangling", "false");
    }
    let resp = client
        .call(
            Method::POST,
            &format!("/images/prune{}", filters_query(&f)),
            None,
        )
        .await?;
    let r: Value = read_json(resp).await?;
    let deleted = r["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        outln!("Deleted Images:");
        for d in &deleted {
            if let Some(u) = d["Untagged"].as_str() {
                outln!("untagged: {u}");
            }
            if let Some(x) = d["Deleted"].as_str() {
                outln!("deleted: {x}");
            }
        }
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        human_size(r["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(true)
}
