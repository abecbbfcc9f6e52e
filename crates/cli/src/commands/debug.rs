//! `berth debug CONTAINER [--image IMG] [-- CMD...]`: a shell with the host's tools (or an
//! image's) inside a running container's pid, network, ipc, uts and cgroup namespaces, over
//! berth's `POST /containers/{id}/debug` and the exec start/resize/inspect endpoints.

use std::io::IsTerminal;

use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use super::container::{console_size, stream_io, upgrade, RawTerminal};
use super::tty;
use crate::client::{read_json, Client, ClientError};

/// `berth debug` flags.
#[derive(Debug, Args)]
pub struct DebugArgs {
    /// Take the tools from this image instead of the host
    #[arg(long)]
    pub image: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY (default: when stdin and stdout are terminals)
    #[arg(short = 't', long)]
    pub tty: bool,
    pub container: String,
    /// The command to run (default: /bin/sh)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `berth debug`; returns the command's exit code.
pub async fn run(client: &Client, a: DebugArgs) -> anyhow::Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", a.container))
        .await?;
    let name = info["Name"]
        .as_str()
        .unwrap_or(&a.container)
        .trim_start_matches('/')
        .to_string();
    let tty = a.tty || (std::io::stdin().is_terminal() && std::io::stdout().is_terminal());
    let size = if tty { console_size() } else { None };
    let body = json!({
        "Image": a.image,
        "Cmd": a.cmd,
        "Tty": tty,
        "AttachStdin": true,
        "Env": a.env,
        "ConsoleSize": size,
    });
    let body = Bytes::from(serde_json::to_vec(&body)?);
    let path = format!("/containers/{}/debug", a.container);
    let resp = match client.call(Method::POST, &path, Some(body.clone())).await {
        // tools from an image not here yet: pull it once, like run does
        Err(ClientError::Daemon { status, message })
            if status == 404 && message.starts_with("No such image") =>
        {
            let Some(image) = &a.image else {
                anyhow::bail!("Error response from daemon: {message}");
            };
            eprintln!("Unable to find image '{image}' locally");
            if !super::image::pull(client, image, false, None).await? {
                anyhow::bail!("pull of {image} failed");
            }
            client.call(Method::POST, &path, Some(body)).await?
        }
        r => r?,
    };
    let v: Value = read_json(resp).await?;
    let id = v["Id"].as_str().unwrap_or_default().to_string();
    eprintln!("debug shell in {name}'s namespaces; its files are at /proc/1/root");
    let start = Bytes::from(serde_json::to_vec(
        &json!({"Detach": false, "Tty": tty, "ConsoleSize": size}),
    )?);
    let conn = upgrade(client, &format!("/exec/{id}/start"), Some(start)).await?;
    let _raw = (tty && std::io::stdin().is_terminal()).then(RawTerminal::enter);
    let _winch = tty
        .then(|| tty::forward_resizes(client, &format!("/exec/{id}/resize")))
        .flatten();
    stream_io(conn, tty, true).await?;
    let info: Value = client.get_json(&format!("/exec/{id}/json")).await?;
    Ok(info["ExitCode"].as_i64().map(|c| c as i32).unwrap_or(0))
}
