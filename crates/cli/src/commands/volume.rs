//! `berth volume create|ls|inspect|rm|prune|export|import`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use berth_api::filters::Filters;
use berth_api::volume::{Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse};
use bytes::Bytes;
use clap::Subcommand;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::client::{check, query, read_json, Client, ClientError, ReqBody};
use crate::template::{render_rows, Template};

/// `berth volume ...`
#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create {
        /// Volume name (random when absent)
        name_arg: Option<String>,
        #[arg(long = "name")]
        name: Option<String>,
        /// Volume driver name
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume (key=value)
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// Set driver specific options (type=tmpfs, device=tmpfs, o=size=10m)
        #[arg(short = 'o', long = "opt")]
        opts: Vec<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. dangling=true, label=k=v, name=x, driver=local)
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format output using a Go-like template ('table', 'json' or a template)
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        /// Format output using a Go-like template
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused local volumes (only anonymous ones unless --all)
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. label=k=v, label!=k)
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
    /// Write a volume's content as a tar archive (berth)
    Export {
        name: String,
        /// Write to a file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Restore a tar archive into a new or empty volume (berth)
    Import {
        name: String,
        /// Tar file to read ('-' or absent: stdin)
        file: Option<PathBuf>,
    },
}

fn kv(list: &[String], what: &str) -> anyhow::Result<HashMap<String, String>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None if what == "label" => Ok((s.clone(), String::new())),
            None => anyhow::bail!("invalid {what} {s:?}: expected key=value"),
        })
        .collect()
}

/// The row docker's volume formatter exposes (`{{.Name}}`, `{{.Labels}}` as `k=v,...`).
fn row(v: &Volume) -> Value {
    let mut labels: Vec<String> = v
        .labels
        .iter()
        .flatten()
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    labels.sort();
    json!({
        "Name": v.name, "Driver": v.driver, "Scope": v.scope, "Mountpoint": v.mountpoint,
        "Labels": labels.join(","), "Links": "N/A", "Size": "N/A",
        "Availability": "N/A", "Group": "N/A", "Status": "N/A",
    })
}

fn header() -> Value {
    json!({
        "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
        "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE",
        "Availability": "AVAILABILITY", "Group": "GROUP", "Status": "STATUS",
    })
}

/// docker's `units.HumanSize`: decimal units, 4 significant digits.
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// Run one volume command; the exit status is non-zero when any item failed.
pub async fn run(client: &Client, cmd: VolumeCmd) -> anyhow::Result<bool> {
    match cmd {
        VolumeCmd::Create {
            name_arg,
            name,
            driver,
            labels,
            opts,
        } => {
            if let (Some(a), Some(b)) = (&name_arg, &name) {
                if a != b {
                    anyhow::bail!("conflicting options: either specify --name or provide positional arg, not both");
                }
            }
            let body = VolumeCreateOptions {
                name: name_arg.or(name),
                driver: Some(driver),
                driver_opts: Some(kv(&opts, "option")?),
                labels: Some(kv(&labels, "label")?),
                cluster_volume_spec: None,
            };
            let resp = client
                .call(
                    Method::POST,
                    "/volumes/create",
                    Some(Bytes::from(serde_json::to_vec(&body)?)),
                )
                .await?;
            let v: Volume = read_json(resp).await?;
            outln!("{}", v.name);
            Ok(true)
        }
        VolumeCmd::Ls {
            quiet,
            filter,
            format,
        } => {
            let f = Filters::from_args(&filter)?;
            let fq = if f.is_empty() {
                String::new()
            } else {
                f.to_json()
            };
            let list: VolumeListResponse = client
                .get_json(&format!("/volumes{}", query(&[("filters", fq)])))
                .await?;
            let mut vols = list.volumes.unwrap_or_default();
            vols.sort_by(|a, b| a.name.cmp(&b.name));
            for w in list.warnings.unwrap_or_default() {
                eprintln!("{w}");
            }
            let format = match (quiet, format.as_deref()) {
                (true, _) => "{{.Name}}".to_string(),
                (false, None | Some("table")) => "table {{.Driver}}\t{{.Name}}".to_string(),
                (false, Some("json")) => "{{json .}}".to_string(),
                (false, Some(f)) => f.to_string(),
            };
            let t = Template::parse(&format)?;
            let rows: Vec<Value> = vols.iter().map(row).collect();
            out!("{}", render_rows(&t, &header(), &rows)?);
            Ok(true)
        }
        VolumeCmd::Inspect { names, format } => {
            super::inspect_each(client, &names, format.as_deref(), |n| {
                format!("/volumes/{n}")
            })
            .await
        }
        VolumeCmd::Rm { names, force } => {
            let mut ok = true;
            for n in &names {
                let path = format!(
                    "/volumes/{n}{}",
                    query(&[("force", if force { "1".into() } else { String::new() })])
                );
                match client.call(Method::DELETE, &path, None).await {
                    Ok(_) => outln!("{n}"),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
            Ok(ok)
        }
        VolumeCmd::Prune { all, force, filter } => {
            if !force {
                let what = if all {
                    "all local volumes"
                } else {
                    "anonymous local volumes"
                };
                eprint!("WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    return Ok(true);
                }
            }
            let mut f = Filters::from_args(&filter)?;
            if all {
                f.add("all", "true");
            }
            let fq = if f.is_empty() {
                String::new()
            } else {
                f.to_json()
            };
            let resp = client
                .call(
                    Method::POST,
                    &format!("/volumes/prune{}", query(&[("filters", fq)])),
                    None,
                )
                .await?;
            let r: VolumePruneResponse = read_json(resp).await?;
            let deleted = r.volumes_deleted.unwrap_or_default();
            if !deleted.is_empty() {
                outln!("Deleted Volumes:");
                for d in &deleted {
                    outln!("{d}");
                }
                outln!();
            }
            outln!("Total reclaimed space: {}", human_size(r.space_reclaimed));
            Ok(true)
        }
        VolumeCmd::Export { name, output } => export(client, &name, output).await.map(|()| true),
        VolumeCmd::Import { name, file } => import(client, &name, file).await.map(|()| true),
    }
}

async fn export(client: &Client, name: &str, output: Option<PathBuf>) -> anyhow::Result<()> {
    if output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write a tar archive to a terminal: use -o FILE or redirect stdout"
        );
    }
    let resp = client
        .call(
            Method::GET,
            &format!("/berth/v1/volumes/{name}/export"),
            None,
        )
        .await?;
    let mut sink: Box<dyn Write> = match &output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut body = resp.into_body();
    let result: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| anyhow::anyhow!("export of {name} was cut short: {e}"))?;
            if let Ok(d) = frame.into_data() {
                sink.write_all(&d)?;
            }
        }
        sink.flush()?;
        Ok(())
    }
    .await;
    if result.is_err() {
        if let Some(p) = &output {
            let _ = std::fs::remove_file(p);
        }
    }
    result
}

async fn import(client: &Client, name: &str, file: Option<PathBuf>) -> anyhow::Result<()> {
    let mut input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match file.as_deref() {
        None => Box::new(tokio::io::stdin()),
        Some(p) if p.as_os_str() == "-" => Box::new(tokio::io::stdin()),
        Some(p) => Box::new(
            tokio::fs::File::open(p)
                .await
                .map_err(|e| anyhow::anyhow!("open {}: {e}", p.display()))?,
        ),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
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
    let resp = client
        .send(
            Method::PUT,
            &format!("/berth/v1/volumes/{name}/import"),
            ReqBody::Stream(rx),
            Some("application/x-tar"),
        )
        .await?;
    let resp = check(resp).await?;
    let r: Value = read_json(resp)
        .await
        .map_err(|e: ClientError| anyhow::anyhow!(e))?;
    outln!("{}", r["Name"].as_str().unwrap_or(name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(123_456), "123.5kB");
        assert_eq!(human_size(5_000_000_000), "5GB");
    }

    #[test]
    fn rows_expose_dockers_fields() {
        let v = Volume {
            name: "v".into(),
            driver: "local".into(),
            labels: Some(
                [
                    ("b".to_string(), "2".to_string()),
                    ("a".to_string(), "1".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let r = row(&v);
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Name"], "v");
        assert!(kv(&["novalue".into()], "option").is_err());
        assert_eq!(kv(&["flag".into()], "label").unwrap()["flag"], "");
    }
}
