//! `berth cp [-a] [-L] SRC DEST`: copy between a container and the local filesystem with
//! docker's rules (`CONTAINER:PATH` on either side, `-` for a tar on stdin or stdout), over
//! `HEAD|GET|PUT /containers/{id}/archive`. What comes from the container is unpacked with
//! `berth_image::layer::unpack` into a staging directory first (hostile entries — `..`,
//! absolute names, links out — stay inside it) and then moved into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use berth_image::layer::{self, Compression, UnpackOptions, WhiteoutMode};
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::volume::human_size;
use crate::client::{check, query, Client, ClientError, ReqBody};

/// `berth cp` flags.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub src: String,
    pub dest: String,
}

/// docker's `ContainerPathStat` from the `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Clone, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub mode: u32,
    #[serde(rename = "linkTarget", default)]
    pub link_target: String,
}

const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;

impl PathStat {
    fn is_dir(&self) -> bool {
        self.mode & GO_DIR != 0
    }
    fn is_symlink(&self) -> bool {
        self.mode & GO_SYMLINK != 0
    }
}

/// `CONTAINER:PATH` → (Some(container), path); a local path → (None, path). Like docker, a
/// path starting with `/` or `.` is always local.
pub fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

/// Copying the contents of a directory (`dir/.`) rather than the directory itself.
fn contents_only(p: &str) -> bool {
    p.ends_with("/.") || p == "."
}

fn decode_stat(h: Option<&hyper::header::HeaderValue>) -> anyhow::Result<PathStat> {
    let raw = h.ok_or_else(|| anyhow::anyhow!("the daemon sent no path stat"))?;
    let json = base64::engine::general_purpose::STANDARD.decode(raw.as_bytes())?;
    Ok(serde_json::from_slice(&json)?)
}

/// `HEAD .../archive`: None when the path doesn't exist.
async fn stat(client: &Client, ctr: &str, path: &str) -> anyhow::Result<Option<PathStat>> {
    let p = format!(
        "/containers/{ctr}/archive{}",
        query(&[("path", path.to_string())])
    );
    let resp = client
        .send(Method::HEAD, &p, ReqBody::Full(None), None)
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        // a missing container answers 404 too: tell them apart
        client
            .get_json::<serde_json::Value>(&format!("/containers/{ctr}/json"))
            .await?;
        return Ok(None);
    }
    let resp = check(resp).await?;
    Ok(Some(decode_stat(
        resp.headers().get("X-Docker-Container-Path-Stat"),
    )?))
}

/// `berth cp`.
pub async fn run(client: &Client, a: CpArgs) -> anyhow::Result<bool> {
    match (split_arg(&a.src), split_arg(&a.dest)) {
        ((Some(_), _), (Some(_), _)) => {
            anyhow::bail!("copying between containers is not supported")
        }
        ((None, _), (None, _)) => {
            anyhow::bail!("must specify at least one container source")
        }
        ((Some(ctr), src), (None, dst)) => from_container(client, &a, ctr, src, dst).await,
        ((None, src), (Some(ctr), dst)) => to_container(client, &a, src, ctr, dst).await,
    }
}

fn last_name(p: &str) -> String {
    Path::new(p.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

async fn from_container(
    client: &Client,
    a: &CpArgs,
    ctr: &str,
    src: &str,
    dst: &str,
) -> anyhow::Result<bool> {
    let src = if src.is_empty() { "/" } else { src };
    let mut path = src.to_string();
    let name = last_name(src);
    if a.follow_link {
        if let Some(st) = stat(client, ctr, src).await? {
            if st.is_symlink() && !st.link_target.is_empty() {
                path = st.link_target.clone();
            }
        }
    }
    let p = format!(
        "/containers/{ctr}/archive{}",
        query(&[("path", path.clone())])
    );
    let resp = match client.call(Method::GET, &p, None).await {
        Ok(r) => r,
        Err(ClientError::Daemon { status, message }) if status == StatusCode::NOT_FOUND => {
            anyhow::bail!("Error response from daemon: {message}")
        }
        Err(e) => return Err(e.into()),
    };
    let st = decode_stat(resp.headers().get("X-Docker-Container-Path-Stat"))?;
    let mut body = resp.into_body();
    if dst == "-" {
        let mut out = std::io::stdout().lock();
        while let Some(f) = body.frame().await {
            if let Ok(d) = f?.into_data() {
                out.write_all(&d)?;
            }
        }
        out.flush()?;
        return Ok(true);
    }
    // where the copied resource ends up
    let dst_path = Path::new(dst);
    let dst_meta = std::fs::metadata(dst_path).ok();
    let target: PathBuf = match &dst_meta {
        Some(m) if m.is_dir() => {
            if contents_only(src) {
                dst_path.to_path_buf()
            } else {
                dst_path.join(&name)
            }
        }
        Some(_) => {
            if st.is_dir() {
                anyhow::bail!("cannot copy a directory to a file: {dst}");
            }
            dst_path.to_path_buf()
        }
        None => {
            if dst.ends_with('/') && !st.is_dir() {
                anyhow::bail!("destination directory {dst} does not exist");
            }
            let parent = dst_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                anyhow::bail!("no such directory: {}", parent.display());
            }
            dst_path.to_path_buf()
        }
    };
    let stage_parent = if target.is_dir() {
        target.clone()
    } else {
        target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    let stage = Stage::new(&stage_parent)?;
    // the body flows into the unpacker on a blocking thread
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(16);
    let dir = stage.0.clone();
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Delete,
        preserve_owner: a.archive,
        allow_devices: a.archive,
        ..UnpackOptions::default()
    };
    let unpacker = tokio::task::spawn_blocking(move || {
        let r = ChanReader {
            rx,
            cur: Bytes::new(),
        };
        layer::unpack(r, Compression::Detect, &dir, &opts)
    });
    let mut total = 0u64;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f?.into_data() {
            total += d.len() as u64;
            if tx.send(d).is_err() {
                break;
            }
        }
    }
    drop(tx);
    unpacker.await??;
    let from = if st.name == "." || st.name == "/" {
        stage.0.clone()
    } else {
        stage.0.join(&st.name)
    };
    place(&from, &target)?;
    drop(stage);
    if !a.quiet {
        eprintln!("Successfully copied {} to {dst}", human_size(total));
    }
    Ok(true)
}

/// Move `from` to `to`: a directory onto an existing directory merges into it.
fn place(from: &Path, to: &Path) -> anyhow::Result<()> {
    let from_meta = std::fs::symlink_metadata(from)
        .map_err(|e| anyhow::anyhow!("copied resource {}: {e}", from.display()))?;
    let to_meta = std::fs::symlink_metadata(to).ok();
    match to_meta {
        Some(t) if t.is_dir() && from_meta.is_dir() => {
            for e in std::fs::read_dir(from)? {
                let e = e?;
                place(&e.path(), &to.join(e.file_name()))?;
            }
            Ok(())
        }
        Some(t) if t.is_dir() => {
            anyhow::bail!(
                "cannot overwrite directory {} with non-directory",
                to.display()
            )
        }
        _ => {
            std::fs::rename(from, to)
                .map_err(|e| anyhow::anyhow!("move into {}: {e}", to.display()))?;
            Ok(())
        }
    }
}

/// A staging directory, removed when dropped.
struct Stage(PathBuf);

impl Stage {
    fn new(parent: &Path) -> anyhow::Result<Stage> {
        for i in 0..100u32 {
            let p = parent.join(format!(".berth-cp-{}-{i}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(Stage(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => anyhow::bail!("create a staging directory in {}: {e}", parent.display()),
            }
        }
        anyhow::bail!("no free staging directory name in {}", parent.display())
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `Read` over body chunks sent from the async side.
struct ChanReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// A `Write` feeding a streamed request body.
struct ChanWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    n: u64,
}

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload ended"))?;
        self.n += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn to_container(
    client: &Client,
    a: &CpArgs,
    src: &str,
    ctr: &str,
    dst: &str,
) -> anyhow::Result<bool> {
    let dst = if dst.is_empty() { "/" } else { dst };
    let mut dst_path = dst.to_string();
    let mut dst_stat = stat(client, ctr, dst).await?;
    if let Some(st) = &dst_stat {
        if st.is_symlink() && !st.link_target.is_empty() {
            dst_path = st.link_target.clone();
            dst_stat = stat(client, ctr, &dst_path).await?;
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let (put_dir, producer): (String, std::thread::JoinHandle<std::io::Result<u64>>) = if src == "-"
    {
        match &dst_stat {
            Some(st) if st.is_dir() => {}
            _ => anyhow::bail!("destination \"{ctr}:{dst}\" must be a directory"),
        }
        let h = std::thread::spawn(move || {
            let mut w = ChanWriter { tx, n: 0 };
            std::io::copy(&mut std::io::stdin().lock(), &mut w)?;
            Ok(w.n)
        });
        (dst_path.clone(), h)
    } else {
        let src_path = PathBuf::from(src);
        let meta = if a.follow_link {
            std::fs::metadata(&src_path)
        } else {
            std::fs::symlink_metadata(&src_path)
        }
        .map_err(|e| anyhow::anyhow!("lstat {src}: {e}"))?;
        let (put_dir, name) = match &dst_stat {
            Some(st) if st.is_dir() => {
                let name = if contents_only(src) {
                    ".".to_string()
                } else {
                    last_name(src)
                };
                (dst_path.clone(), name)
            }
            Some(_) => {
                if meta.is_dir() {
                    anyhow::bail!("cannot copy a directory to a file: {ctr}:{dst}");
                }
                (parent_of(&dst_path), last_name(&dst_path))
            }
            None => {
                if dst.ends_with('/') && !meta.is_dir() {
                    anyhow::bail!("destination directory {ctr}:{dst} does not exist");
                }
                (parent_of(&dst_path), last_name(&dst_path))
            }
        };
        let follow = a.follow_link;
        let h = std::thread::spawn(move || {
            let mut b = tar::Builder::new(ChanWriter { tx, n: 0 });
            b.mode(tar::HeaderMode::Complete);
            b.follow_symlinks(false);
            let real = if follow {
                std::fs::canonicalize(&src_path)?
            } else {
                src_path.clone()
            };
            if meta.is_dir() {
                b.append_dir_all(&name, &real)?;
            } else {
                b.append_path_with_name(&real, &name)?;
            }
            let w = b.into_inner()?;
            Ok(w.n)
        });
        (put_dir, h)
    };
    let p = format!(
        "/containers/{ctr}/archive{}",
        query(&[
            ("path", put_dir),
            ("noOverwriteDirNonDir", "true".into()),
            (
                "copyUIDGID",
                if a.archive {
                    "true".into()
                } else {
                    String::new()
                }
            ),
        ])
    );
    let resp = client
        .send(
            Method::PUT,
            &p,
            ReqBody::Stream(rx),
            Some("application/x-tar"),
        )
        .await;
    let produced = tokio::task::spawn_blocking(move || producer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the archive writer panicked"))?;
    check(resp?).await?;
    let total = produced.map_err(|e| anyhow::anyhow!("archive {src}: {e}"))?;
    if !a.quiet && src != "-" {
        eprintln!("Successfully copied {} to {ctr}:{dst}", human_size(total));
    }
    Ok(true)
}

fn parent_of(p: &str) -> String {
    match Path::new(p.trim_end_matches('/')).parent() {
        Some(pp) if !pp.as_os_str().is_empty() => pp.display().to_string(),
        _ => "/".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_docker() {
        assert_eq!(split_arg("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_arg("/tmp/x"), (None, "/tmp/x"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(split_arg("-"), (None, "-"));
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(last_name("/a/b/"), "b");
        assert!(contents_only("/a/."));
    }
}
