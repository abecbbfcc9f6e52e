//! `berth pull`, `images`, `image inspect`, `tag`, `rmi`, `save`, `load`, `history`, `push`
//! (`image prune` and `import` live in [`super::archive`]).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use berth_api::filters::Filters;
use berth_api::image::{DeleteItem, ImageSummary};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::client::{check, query, read_json, Client, ReqBody};
use crate::template::{render_rows, Template};

/// `berth image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Download an image from a registry
    Pull(PullArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Show the history of an image
    History { name: String },
    /// Upload an image to a registry
    Push { name: String },
    /// Remove unused images
    Prune(super::archive::PruneArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(super::archive::ImportArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    pub name: String,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Pick this platform from a multi-platform image (os/arch[/variant]; default linux/amd64)
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Filter by repository
    pub repository: Option<String>,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Show all images
    #[arg(short, long)]
    pub all: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    #[arg(short, long)]
    pub quiet: bool,
}

/// Split `name[:tag]` the way the API wants it (a port colon is not a tag).
pub fn split_tag(name: &str) -> (String, String) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (name.to_string(), "latest".to_string()),
    }
}

/// Pull with progress: per-layer status lines; on a terminal the `Downloading` byte counts
/// update one line in place, elsewhere only state changes are printed.
pub async fn pull(
    client: &Client,
    name: &str,
    quiet: bool,
    platform: Option<&str>,
) -> anyhow::Result<bool> {
    let (repo, tag) = split_tag(name);
    let mut params = vec![("fromImage", repo), ("tag", tag)];
    if let Some(p) = platform {
        params.push(("platform", p.to_string()));
    }
    let path = format!("/images/create{}", query(&params));
    let auth = super::login::registry_auth_for(name)?;
    let resp = client
        .call_with_auth(Method::POST, &path, auth.as_deref())
        .await?;
    let tty = std::io::stderr().is_terminal();
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut last: std::collections::HashMap<String, String> = Default::default();
    let mut failed = None;
    let mut err = std::io::stderr().lock();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let Ok(m) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(e) = m["error"].as_str() {
                failed = Some(e.to_string());
                continue;
            }
            if quiet {
                continue;
            }
            let status = m["status"].as_str().unwrap_or_default().to_string();
            let id = m["id"].as_str().unwrap_or_default().to_string();
            let text = match m["progress"].as_str() {
                Some(p) if tty => format!("{status} {p}"),
                _ => status.clone(),
            };
            if id.is_empty() {
                writeln!(err, "{status}")?;
                continue;
            }
            if last.get(&id).is_some_and(|s| *s == status) && !tty {
                continue;
            }
            if tty && last.get(&id).is_some_and(|s| *s == status) {
                write!(err, "\r\x1b[2K{id}: {text}")?;
            } else {
                if tty && last.contains_key(&id) {
                    writeln!(err)?;
                }
                write!(err, "{id}: {text}")?;
                if !tty {
                    writeln!(err)?;
                }
            }
            last.insert(id, status);
        }
    }
    if tty && !last.is_empty() {
        writeln!(err)?;
    }
    if let Some(e) = failed {
        writeln!(err, "Error response from daemon: {e}")?;
        return Ok(false);
    }
    if quiet {
        outln!("{name}");
    }
    Ok(true)
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn human(n: i64) -> String {
    let n = n.max(0) as f64;
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v}{}", units[i])
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

/// "3 minutes ago" from Unix seconds.
pub fn since(secs: i64) -> String {
    let now = berth_api::time::Timestamp::now().unix_nanos() / 1_000_000_000;
    let d = (now - secs).max(0);
    let s = match d {
        0 => "Less than a second".to_string(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    };
    format!("{s} ago")
}

async fn images(client: &Client, a: ImagesArgs) -> anyhow::Result<bool> {
    let mut filters = Filters::from_args(a.filter.iter())?;
    if let Some(r) = &a.repository {
        filters.add("reference", r);
    }
    let mut pairs = vec![];
    if !filters.is_empty() {
        pairs.push(("filters", filters.to_json()));
    }
    if a.all {
        pairs.push(("all", "1".to_string()));
    }
    let list: Vec<ImageSummary> = client
        .get_json(&format!("/images/json{}", query(&pairs)))
        .await?;
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            let id = short_id(&i.id, a.no_trunc);
            if seen.insert(id.clone()) {
                outln!("{id}");
            }
        }
        return Ok(true);
    }
    let mut rows = Vec::new();
    for i in &list {
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((r, tg)) if !tg.contains('/') => (r.to_string(), tg.to_string()),
                    _ => (t.clone(), "<none>".into()),
                })
                .collect()
        };
        for (repo, tag) in tags {
            let digest = i
                .repo_digests
                .iter()
                .find(|d| d.starts_with(&format!("{repo}@")))
                .and_then(|d| d.split_once('@').map(|(_, g)| g.to_string()))
                .unwrap_or_else(|| "<none>".into());
            rows.push(json!({
                "Repository": repo, "Tag": tag, "Digest": digest,
                "ID": short_id(&i.id, a.no_trunc),
                "CreatedSince": since(i.created), "CreatedAt": i.created,
                "Size": human(i.size),
            }));
        }
    }
    let format = match a.format.as_deref() {
        None | Some("table") if a.digests => {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                .to_string()
        }
        None | Some("table") => {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_string()
        }
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let header = json!({"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"});
    let t = Template::parse(&format)?;
    out!("{}", render_rows(&t, &header, &rows)?);
    Ok(true)
}

pub async fn run(client: &Client, cmd: ImageCmd) -> anyhow::Result<bool> {
    match cmd {
        ImageCmd::Pull(a) => pull(client, &a.name, a.quiet, a.platform.as_deref()).await,
        ImageCmd::Ls(a) => images(client, a).await,
        ImageCmd::Inspect { names, format } => {
            super::inspect_each(client, &names, format.as_deref(), |n| {
                format!("/images/{n}/json")
            })
            .await
        }
        ImageCmd::Tag { source, target } => {
            let (repo, tag) = split_tag(&target);
            client
                .call(
                    Method::POST,
                    &format!(
                        "/images/{source}/tag{}",
                        query(&[("repo", repo), ("tag", tag)])
                    ),
                    None,
                )
                .await?;
            Ok(true)
        }
        ImageCmd::Rm(a) => {
            let mut ok = true;
            for n in &a.names {
                let path = format!(
                    "/images/{n}{}",
                    query(&[("force", if a.force { "1".into() } else { String::new() })])
                );
                match client.call(Method::DELETE, &path, None).await {
                    Ok(resp) => {
                        let items: Vec<DeleteItem> = read_json(resp).await?;
                        for i in items {
                            if let Some(u) = i.untagged {
                                outln!("Untagged: {u}");
                            }
                            if let Some(d) = i.deleted {
                                outln!("Deleted: {d}");
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
            Ok(ok)
        }
        ImageCmd::Save(a) => {
            let names: Vec<(&str, String)> = a.names.iter().map(|n| ("names", n.clone())).collect();
            let resp = client
                .call(Method::GET, &format!("/images/get{}", query(&names)), None)
                .await?;
            let mut out: Box<dyn Write> = match &a.output {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => {
                    if std::io::stdout().is_terminal() {
                        anyhow::bail!(
                            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        );
                    }
                    Box::new(std::io::stdout().lock())
                }
            };
            let mut body = resp.into_body();
            while let Some(f) = body.frame().await {
                if let Ok(d) = f?.into_data() {
                    out.write_all(&d)?;
                }
            }
            out.flush()?;
            Ok(true)
        }
        ImageCmd::Load(a) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
            let input = a.input.clone();
            let feeder = tokio::spawn(async move {
                let mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match input {
                    Some(p) => match tokio::fs::File::open(&p).await {
                        Ok(f) => Box::new(f),
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    },
                    None => Box::new(tokio::io::stdin()),
                };
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) => return,
                        Ok(n) => {
                            if tx
                                .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            });
            let resp = client
                .send(
                    Method::POST,
                    "/images/load",
                    ReqBody::Stream(rx),
                    Some("application/x-tar"),
                )
                .await?;
            let resp = check(resp).await?;
            let _ = feeder.await;
            let body = resp.into_body().collect().await?.to_bytes();
            for line in body.split(|&b| b == b'\n') {
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    if let Some(s) = v["stream"].as_str() {
                        if !a.quiet {
                            out!("{s}");
                        }
                    }
                }
            }
            Ok(true)
        }
        ImageCmd::History { name } => {
            let items: Vec<Value> = client.get_json(&format!("/images/{name}/history")).await?;
            let rows: Vec<Value> = items
                .iter()
                .map(|h| {
                    let id = h["Id"].as_str().unwrap_or_default();
                    json!({
                        "ID": if id.starts_with("sha256:") { short_id(id, false) } else { id.to_string() },
                        "CreatedSince": since(h["Created"].as_i64().unwrap_or(0)),
                        "CreatedBy": h["CreatedBy"].as_str().unwrap_or_default().chars().take(45).collect::<String>(),
                        "Size": human(h["Size"].as_i64().unwrap_or(0)),
                        "Comment": h["Comment"],
                    })
                })
                .collect();
            let header = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
            let t = Template::parse(
                "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
            )?;
            out!("{}", render_rows(&t, &header, &rows)?);
            Ok(true)
        }
        ImageCmd::Prune(a) => super::archive::prune_images(client, a).await,
        ImageCmd::Import(a) => super::archive::import(client, a).await,
        ImageCmd::Push { name } => {
            let (repo, tag) = split_tag(&name);
            let path = format!("/images/{repo}/push{}", query(&[("tag", tag)]));
            let auth = super::login::registry_auth_for(&name)?;
            let resp = client
                .call_with_auth(Method::POST, &path, auth.as_deref())
                .await?;
            let body = resp.into_body().collect().await?.to_bytes();
            let mut ok = true;
            for line in body.split(|&b| b == b'\n') {
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    if let Some(e) = v["error"].as_str() {
                        eprintln!("{e}");
                        ok = false;
                    } else if let Some(s) = v["status"].as_str() {
                        match v["id"].as_str() {
                            Some(id) => outln!("{id}: {s}"),
                            None => outln!("{s}"),
                        }
                    }
                }
            }
            Ok(ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_docker() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_tag("b:1.36"), ("b".into(), "1.36".into()));
        assert_eq!(
            split_tag("127.0.0.1:5000/busybox"),
            ("127.0.0.1:5000/busybox".into(), "latest".into())
        );
        assert_eq!(split_tag("r@sha256:ab"), ("r".into(), "sha256:ab".into()));
        assert_eq!(human(2_130_000), "2.13MB");
        assert_eq!(human(999), "999B");
    }
}
