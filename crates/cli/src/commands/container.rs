//! Container commands: `run`, `create`, `start`, `ps`, `logs`, `inspect`, `stop`, `kill`,
//! `rm`, `restart`, `exec`. `run` follows the docker CLI's sequence (create — pulling on
//! "No such image" — attach, wait, start), so what berth does on the wire is what docker does.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use berth_api::container::{
    ContainerConfig, ContainerCreateRequest, ContainerSummary, CreateResponse, ExecConfig,
    HostConfig, Mount, RestartPolicy, TmpfsOptions,
};
use berth_api::filters::Filters;
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::image::since;
use super::print_inspect;
use crate::client::{query, read_json, Client, ClientError};
use crate::template::{render_rows, Template};

/// Flags shared by `run` and `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a volume (SRC:DST[:ro])
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=,target=,readonly)
    #[arg(long = "mount")]
    pub mounts: Vec<String>,
    /// Mount volumes from the specified container(s) (NAME[:ro|rw])
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs directory (DST[:opts])
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Security options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Connect a container to a network (bridge, none, host, container:NAME, or a network)
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address on the network (user networks)
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Container MAC address (e.g. 02:42:0a:00:00:05)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip, host-gateway for the gateway)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Restart policy (no, on-failure[:N], always, unless-stopped)
    #[arg(long)]
    pub restart: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Print help (-h is the hostname, as with docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (e.g. 30s)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period during which failures don't count
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto])
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Image
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `berth run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `12m`, `1g`, `1024` → bytes.
pub(crate) fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last() {
        Some('k') => (&s[..s.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&s[..s.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&s[..s.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (s.trim_end_matches('b'), 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: {s:?}"))?;
    Ok((n * mult as f64) as i64)
}

fn parse_mount(spec: &str) -> anyhow::Result<Mount> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Mount::default()
    };
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, "true"));
        match k {
            "type" => m.kind = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => m.read_only = v != "false" && v != "0",
            "tmpfs-size" => {
                m.tmpfs_options
                    .get_or_insert_with(TmpfsOptions::default)
                    .size_bytes = Some(parse_bytes(v)?)
            }
            "tmpfs-mode" => {
                m.tmpfs_options
                    .get_or_insert_with(TmpfsOptions::default)
                    .mode = Some(u32::from_str_radix(v, 8)?)
            }
            other => anyhow::bail!("invalid field '{other}' in --mount {spec}"),
        }
    }
    if m.target.is_empty() {
        anyhow::bail!("invalid argument \"{spec}\" for \"--mount\" flag: target is required");
    }
    Ok(m)
}

fn env_list(a: &CreateArgs) -> anyhow::Result<Vec<String>> {
    let mut env = Vec::new();
    let resolve = |e: &str| -> Option<String> {
        if e.contains('=') {
            Some(e.to_string())
        } else {
            std::env::var(e).ok().map(|v| format!("{e}={v}"))
        }
    };
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("open {}: {e}", f.display()))?;
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            env.extend(resolve(l));
        }
    }
    for e in &a.env {
        env.extend(resolve(e));
    }
    Ok(env)
}

fn create_body(a: &CreateArgs) -> anyhow::Result<ContainerCreateRequest> {
    let labels: HashMap<String, String> = a
        .labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let restart = match a.restart.as_deref() {
        None => RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        },
        Some(r) => match r.split_once(':') {
            Some((n, c)) => RestartPolicy {
                name: n.into(),
                maximum_retry_count: c.parse()?,
            },
            None => RestartPolicy {
                name: r.into(),
                maximum_retry_count: 0,
            },
        },
    };
    if a.rm && restart.name != "no" {
        anyhow::bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let tmpfs: HashMap<String, String> = a
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((d, o)) => (d.to_string(), o.to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect();
    let attach = !a.interactive || a.tty;
    let ns = |d: &Option<String>| -> anyhow::Result<i64> {
        match d {
            None => Ok(0),
            Some(v) => Ok(
                i64::try_from(berth_api::time::parse_go_duration(v)?.as_nanos())
                    .unwrap_or(i64::MAX),
            ),
        }
    };
    let healthcheck = if a.no_healthcheck {
        Some(json!({"Test": ["NONE"]}))
    } else if a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_retries.is_some()
        || a.health_start_period.is_some()
    {
        let test: Vec<String> = a
            .health_cmd
            .as_ref()
            .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
            .unwrap_or_default();
        Some(json!({
            "Test": test,
            "Interval": ns(&a.health_interval)?,
            "Timeout": ns(&a.health_timeout)?,
            "StartPeriod": ns(&a.health_start_period)?,
            "Retries": a.health_retries.unwrap_or(0),
        }))
    } else {
        None
    };
    let (exposed_ports, port_bindings) = super::port::parse_ports(&a.publish, &a.expose)?;
    Ok(ContainerCreateRequest {
        config: ContainerConfig {
            exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
            hostname: a.hostname.clone().unwrap_or_default(),
            user: a.user.clone().unwrap_or_default(),
            attach_stdin: a.interactive,
            attach_stdout: attach,
            attach_stderr: attach,
            tty: a.tty,
            open_stdin: a.interactive,
            stdin_once: a.interactive,
            env: Some(env_list(a)?),
            cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
            image: a.image.clone(),
            working_dir: a.workdir.clone().unwrap_or_default(),
            entrypoint: a.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    vec![]
                } else {
                    vec![e.clone()]
                }
            }),
            labels: Some(labels),
            stop_signal: a.stop_signal.clone(),
            healthcheck,
            ..ContainerConfig::default()
        },
        host_config: HostConfig {
            binds: Some(a.volumes.clone()),
            mounts: Some(
                a.mounts
                    .iter()
                    .map(|m| parse_mount(m))
                    .collect::<anyhow::Result<_>>()?,
            ),
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            port_bindings: Some(port_bindings),
            volumes_from: (!a.volumes_from.is_empty()).then(|| a.volumes_from.clone()),
            network_mode: a.network.clone().unwrap_or_else(|| "default".into()),
            dns: (!a.dns.is_empty()).then(|| a.dns.clone()),
            dns_search: (!a.dns_search.is_empty()).then(|| a.dns_search.clone()),
            dns_options: (!a.dns_option.is_empty()).then(|| a.dns_option.clone()),
            extra_hosts: (!a.add_host.is_empty()).then(|| a.add_host.clone()),
            publish_all_ports: a.publish_all,
            restart_policy: restart,
            auto_remove: a.rm,
            cap_add: Some(a.cap_add.clone()),
            cap_drop: Some(a.cap_drop.clone()),
            privileged: a.privileged,
            readonly_rootfs: a.read_only,
            security_opt: Some(a.security_opt.clone()),
            init: a.init.then_some(true),
            memory: a
                .memory
                .as_deref()
                .map(parse_bytes)
                .transpose()?
                .unwrap_or(0),
            nano_cpus: a.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            cpu_shares: a.cpu_shares.unwrap_or(0),
            pids_limit: a.pids_limit,
            console_size: if a.tty { console_size() } else { None },
            ..HostConfig::default()
        },
        networking_config: endpoints_config(a),
    })
}

/// `NetworkingConfig` for `--network NET --network-alias A --ip IP --mac-address M`.
fn endpoints_config(a: &CreateArgs) -> Option<serde_json::Value> {
    if a.network_alias.is_empty() && a.ip.is_none() && a.mac_address.is_none() {
        return None;
    }
    let net = a.network.clone().unwrap_or_else(|| "default".into());
    let mut ep = serde_json::json!({"Aliases": a.network_alias});
    if let Some(ip) = &a.ip {
        ep["IPAMConfig"] = serde_json::json!({"IPv4Address": ip});
    }
    if let Some(m) = &a.mac_address {
        ep["MacAddress"] = serde_json::json!(m);
    }
    Some(serde_json::json!({"EndpointsConfig": {net: ep}}))
}

/// Create, pulling the image once when the daemon doesn't have it (like docker). `detach`
/// (`run -d`): nothing is attached and stdin (with `-i`) stays open across attach clients
/// instead of closing after the first one (StdinOnce), as the docker CLI sends it.
async fn create(client: &Client, a: &CreateArgs, detach: bool) -> anyhow::Result<String> {
    let mut body = serde_json::to_value(create_body(a)?)?;
    body["HostConfig"]["PublishAllPorts"] = Value::Bool(a.publish_all);
    if detach {
        for k in ["AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"] {
            body[k] = Value::Bool(false);
        }
    }
    let body = serde_json::to_vec(&body)?;
    let path = format!(
        "/containers/create{}",
        query(&[("name", a.name.clone().unwrap_or_default())])
    );
    for attempt in 0..2 {
        match client
            .call(Method::POST, &path, Some(Bytes::from(body.clone())))
            .await
        {
            Ok(resp) => {
                let r: CreateResponse = read_json(resp).await?;
                for w in r.warnings {
                    eprintln!("WARNING: {w}");
                }
                return Ok(r.id);
            }
            Err(ClientError::Daemon { status, message })
                if attempt == 0 && status == 404 && message.starts_with("No such image") =>
            {
                let name = message.trim_start_matches("No such image: ").to_string();
                eprintln!("Unable to find image '{name}' locally");
                if !super::image::pull(client, &a.image, false, None).await? {
                    anyhow::bail!("pull of {} failed", a.image);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns on its second attempt")
}

/// POST with `Upgrade: tcp`; returns the raw connection.
pub(crate) async fn upgrade(
    client: &Client,
    path: &str,
    body: Option<Bytes>,
) -> anyhow::Result<TokioIo<hyper::upgrade::Upgraded>> {
    let resp: Response<Incoming> = client.upgrade(Method::POST, path, body).await?;
    let resp = if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
        resp
    } else {
        crate::client::check(resp).await?
    };
    Ok(TokioIo::new(hyper::upgrade::on(resp).await?))
}

/// Put the terminal in raw mode for the guard's life.
pub(crate) struct RawTerminal {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawTerminal {
    pub(crate) fn enter() -> RawTerminal {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(s) = &saved {
            let mut raw = s.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(
                stdin.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &raw,
            );
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(s) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                s,
            );
        }
    }
}

/// Write every complete multiplexed frame at the front of `pending` to `out` (kind 1) or `err`
/// (kind 2) and keep the incomplete rest. Consecutive frames of one stream go out in one write
/// (a log of 100k lines is ~80 frames per 64 KiB chunk: a write(2) per frame dominated `berth
/// logs`), the order between the two streams is kept, and both are flushed before returning.
fn write_frames(
    pending: &mut Vec<u8>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let mut put = |kind: u8, data: &[u8]| -> std::io::Result<()> {
        let w: &mut dyn Write = if kind == 2 { &mut *err } else { &mut *out };
        w.write_all(data)?;
        w.flush()
    };
    let mut off = 0;
    let mut run: Vec<u8> = Vec::new();
    let mut run_kind = 1;
    while pending.len() - off >= 8 {
        let h = &pending[off..off + 8];
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if pending.len() - off < 8 + len {
            break;
        }
        let kind = if h[0] == 2 { 2 } else { 1 };
        if kind != run_kind && !run.is_empty() {
            put(run_kind, &run)?;
            run.clear();
        }
        run_kind = kind;
        run.extend_from_slice(&pending[off + 8..off + 8 + len]);
        off += 8 + len;
    }
    if !run.is_empty() {
        put(run_kind, &run)?;
    }
    pending.drain(..off);
    Ok(())
}

/// Copy a (multiplexed unless `tty`) output stream to stdout/stderr; stdin to the stream.
pub(crate) async fn stream_io(
    conn: TokioIo<hyper::upgrade::Upgraded>,
    tty: bool,
    stdin: bool,
) -> anyhow::Result<()> {
    let (mut r, mut w) = tokio::io::split(conn);
    let input = if stdin {
        Some(tokio::spawn(async move {
            let mut i = tokio::io::stdin();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                match i.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = w.shutdown().await;
        }))
    } else {
        None
    };
    let mut buf = vec![0u8; 32 << 10];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if tty {
            let mut o = std::io::stdout().lock();
            o.write_all(&buf[..n])?;
            o.flush()?;
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        write_frames(
            &mut pending,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
    }
    if let Some(i) = input {
        i.abort();
    }
    Ok(())
}

/// `[height, width]` of the terminal on stdout, sent at create/start so the container's
/// terminal has its size before the process runs (a resize after start races with it).
pub(crate) fn console_size() -> Option<[u16; 2]> {
    berth_sys::process::window_size(std::io::stdout().as_fd())
        .ok()
        .filter(|&(rows, cols)| rows > 0 && cols > 0)
        .map(|(rows, cols)| [rows, cols])
}

async fn resize(client: &Client, path: &str) {
    if let Ok((rows, cols)) = berth_sys::process::window_size(std::io::stdout().as_fd()) {
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
}

/// `berth run`; returns the container's exit code.
pub async fn run(client: &Client, a: RunArgs) -> anyhow::Result<i32> {
    let c = &a.create;
    let id = create(client, c, a.detach).await?;
    if a.detach {
        client
            .call(Method::POST, &format!("/containers/{id}/start"), None)
            .await?;
        outln!("{id}");
        return Ok(0);
    }
    let attach_path = format!(
        "/containers/{id}/attach{}",
        query(&[
            ("stream", "1".into()),
            ("stdout", "1".into()),
            ("stderr", "1".into()),
            (
                "stdin",
                if c.interactive {
                    "1".into()
                } else {
                    String::new()
                }
            ),
        ])
    );
    let conn = upgrade(client, &attach_path, None).await?;
    let cond = if c.rm { "removed" } else { "next-exit" };
    let waiter = {
        let client = client.clone();
        let path = format!(
            "/containers/{id}/wait{}",
            query(&[("condition", cond.into())])
        );
        tokio::spawn(async move {
            let resp = client.call(Method::POST, &path, None).await?;
            let v: Value = read_json(resp).await?;
            anyhow::Ok(v["StatusCode"].as_i64().unwrap_or(-1))
        })
    };
    let _raw = (c.tty && c.interactive && std::io::stdin().is_terminal()).then(RawTerminal::enter);
    client
        .call(Method::POST, &format!("/containers/{id}/start"), None)
        .await?;
    if c.tty {
        resize(client, &format!("/containers/{id}/resize")).await;
    }
    let resize_path = format!("/containers/{id}/resize");
    let _winch = c
        .tty
        .then(|| super::tty::forward_resizes(client, &resize_path))
        .flatten();
    stream_io(conn, c.tty, c.interactive).await?;
    let code = waiter.await??;
    Ok(i32::try_from(code).unwrap_or(125))
}

/// `berth create`.
pub async fn create_cmd(client: &Client, a: CreateArgs) -> anyhow::Result<bool> {
    let id = create(client, &a, false).await?;
    outln!("{id}");
    Ok(true)
}

/// `berth ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers
    #[arg(short = 'n', long = "last")]
    pub last: Option<i64>,
    /// Show the latest created container
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

pub async fn ps(client: &Client, a: PsArgs) -> anyhow::Result<bool> {
    let filters = Filters::from_args(a.filter.iter())?;
    let mut pairs = vec![];
    if a.all {
        pairs.push(("all", "1".to_string()));
    }
    if !filters.is_empty() {
        pairs.push(("filters", filters.to_json()));
    }
    let limit = if a.latest { Some(1) } else { a.last };
    if let Some(l) = limit {
        pairs.push(("limit", l.to_string()));
    }
    let list: Vec<ContainerSummary> = client
        .get_json(&format!("/containers/json{}", query(&pairs)))
        .await?;
    let short = |id: &str| -> String {
        if a.no_trunc {
            id.to_string()
        } else {
            id.chars().take(12).collect()
        }
    };
    if a.quiet {
        for c in &list {
            outln!("{}", short(&c.id));
        }
        return Ok(true);
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|c| {
            let mut cmd = c.command.clone();
            if !a.no_trunc && cmd.chars().count() > 20 {
                cmd = cmd.chars().take(19).collect::<String>() + "…";
            }
            let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            json!({
                "ID": short(&c.id),
                "Image": c.image,
                "Command": format!("\"{cmd}\""),
                "CreatedAt": c.created,
                "RunningFor": since(c.created),
                "Status": c.status,
                "State": c.state,
                "Ports": super::port::displayable(&c.ports),
                "Names": c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                "Labels": labels.join(","),
                "Mounts": c.mounts.iter().map(|m| m.name.clone().unwrap_or_else(|| m.source.clone())).collect::<Vec<_>>().join(","),
            })
        })
        .collect();
    let format = match a.format.as_deref() {
        None | Some("table") => {
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
                .to_string()
        }
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let header = json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
        "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE",
        "Ports": "PORTS", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS"});
    let t = Template::parse(&format)?;
    out!("{}", render_rows(&t, &header, &rows)?);
    Ok(true)
}

/// `berth logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    pub container: String,
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative
    #[arg(long)]
    pub until: Option<String>,
}

pub async fn logs(client: &Client, a: LogsArgs) -> anyhow::Result<bool> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", a.container))
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let flag = |b: bool| if b { "1".to_string() } else { String::new() };
    let path = format!(
        "/containers/{}/logs{}",
        a.container,
        query(&[
            ("stdout", "1".into()),
            ("stderr", "1".into()),
            ("follow", flag(a.follow)),
            ("timestamps", flag(a.timestamps)),
            ("tail", a.tail.clone()),
            ("since", a.since.clone().unwrap_or_default()),
            ("until", a.until.clone().unwrap_or_default()),
        ])
    );
    let resp = client.call(Method::GET, &path, None).await?;
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(f) = body.frame().await {
        let Ok(d) = f?.into_data() else { continue };
        if tty {
            out!("{}", String::from_utf8_lossy(&d));
            continue;
        }
        pending.extend_from_slice(&d);
        write_frames(
            &mut pending,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
    }
    Ok(true)
}

/// `berth inspect`: containers first, then images.
pub async fn inspect(
    client: &Client,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
) -> anyhow::Result<bool> {
    let mut found = Vec::new();
    let mut ok = true;
    for n in names {
        let mut got = None;
        if kind != Some("image") {
            got = client
                .get_json::<Value>(&format!("/containers/{n}/json"))
                .await
                .ok();
        }
        if got.is_none() && kind != Some("container") {
            got = client
                .get_json::<Value>(&format!("/images/{n}/json"))
                .await
                .ok();
        }
        match got {
            Some(v) => found.push(v),
            None => {
                eprintln!("Error: No such object: {n}");
                ok = false;
            }
        }
    }
    print_inspect(&found, format)?;
    Ok(ok)
}

/// stop / kill / rm / start / restart / pause / unpause on each name; prints the name.
pub async fn each(
    client: &Client,
    names: &[String],
    method: Method,
    path: impl Fn(&str) -> String,
) -> anyhow::Result<bool> {
    let mut ok = true;
    for n in names {
        match client.call(method.clone(), &path(n), None).await {
            Ok(_) => outln!("{n}"),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// `berth exec` flags.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub cmd: Vec<String>,
}

pub async fn exec(client: &Client, a: ExecArgs) -> anyhow::Result<i32> {
    let cfg = ExecConfig {
        attach_stdin: a.interactive && !a.detach,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        tty: a.tty,
        env: Some(a.env.clone()),
        cmd: a.cmd.clone(),
        privileged: a.privileged,
        user: a.user.clone().unwrap_or_default(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        console_size: if a.tty { console_size() } else { None },
        ..ExecConfig::default()
    };
    let resp = client
        .call(
            Method::POST,
            &format!("/containers/{}/exec", a.container),
            Some(Bytes::from(serde_json::to_vec(&cfg)?)),
        )
        .await?;
    let v: Value = read_json(resp).await?;
    let id = v["Id"].as_str().unwrap_or_default().to_string();
    let start = Bytes::from(serde_json::to_vec(
        &json!({"Detach": a.detach, "Tty": a.tty, "ConsoleSize": cfg.console_size}),
    )?);
    if a.detach {
        client
            .call(Method::POST, &format!("/exec/{id}/start"), Some(start))
            .await?;
        return Ok(0);
    }
    let conn = upgrade(client, &format!("/exec/{id}/start"), Some(start)).await?;
    let _raw = (a.tty && a.interactive && std::io::stdin().is_terminal()).then(RawTerminal::enter);
    let resize_path = format!("/exec/{id}/resize");
    let _winch = a
        .tty
        .then(|| super::tty::forward_resizes(client, &resize_path))
        .flatten();
    stream_io(conn, a.tty, a.interactive).await?;
    let info: Value = client.get_json(&format!("/exec/{id}/json")).await?;
    Ok(info["ExitCode"].as_i64().map(|c| c as i32).unwrap_or(0))
}

/// `berth start [-a]`.
pub async fn start(
    client: &Client,
    names: &[String],
    attach: bool,
    interactive: bool,
) -> anyhow::Result<i32> {
    if !attach {
        let ok = each(client, names, Method::POST, |n| {
            format!("/containers/{n}/start")
        })
        .await?;
        return Ok(if ok { 0 } else { 1 });
    }
    let n = names.first().cloned().unwrap_or_default();
    let info: Value = client.get_json(&format!("/containers/{n}/json")).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let path = format!(
        "/containers/{n}/attach{}",
        query(&[
            ("stream", "1".into()),
            ("stdout", "1".into()),
            ("stderr", "1".into()),
            (
                "stdin",
                if interactive {
                    "1".into()
                } else {
                    String::new()
                }
            ),
        ])
    );
    let conn = upgrade(client, &path, None).await?;
    let waiter = {
        let client = client.clone();
        let path = format!("/containers/{n}/wait?condition=next-exit");
        tokio::spawn(async move {
            let resp = client.call(Method::POST, &path, None).await?;
            let v: Value = read_json(resp).await?;
            anyhow::Ok(v["StatusCode"].as_i64().unwrap_or(-1))
        })
    };
    client
        .call(Method::POST, &format!("/containers/{n}/start"), None)
        .await?;
    let _raw = (tty && interactive && std::io::stdin().is_terminal()).then(RawTerminal::enter);
    let resize_path = format!("/containers/{n}/resize");
    let _winch = if tty {
        super::tty::send_size(client, &resize_path).await;
        super::tty::forward_resizes(client, &resize_path)
    } else {
        None
    };
    stream_io(conn, tty, interactive).await?;
    Ok(i32::try_from(waiter.await??).unwrap_or(125))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_mounts_parse() {
        assert_eq!(parse_bytes("64m").expect("64m"), 64 << 20);
        assert_eq!(parse_bytes("1g").expect("1g"), 1 << 30);
        assert_eq!(parse_bytes("512").expect("512"), 512);
        assert!(parse_bytes("lots").is_err());
        let m = parse_mount("type=bind,source=/tmp,target=/t,readonly").expect("mount");
        assert_eq!(
            (
                m.kind.as_str(),
                m.source.as_str(),
                m.target.as_str(),
                m.read_only
            ),
            ("bind", "/tmp", "/t", true)
        );
        assert!(parse_mount("type=tmpfs").is_err());
    }

    #[test]
    fn frames_are_demultiplexed_in_order_and_the_incomplete_rest_kept() {
        let frame = |k: u8, d: &[u8]| {
            let mut v = vec![k, 0, 0, 0];
            v.extend_from_slice(&(d.len() as u32).to_be_bytes());
            v.extend_from_slice(d);
            v
        };
        // what the writers saw, call by call: (stream, bytes)
        struct Rec<'a>(u8, &'a std::cell::RefCell<Vec<(u8, Vec<u8>)>>);
        impl Write for Rec<'_> {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.1.borrow_mut().push((self.0, b.to_vec()));
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let calls = std::cell::RefCell::new(Vec::new());
        let mut pending = [
            frame(1, b"a\n"),
            frame(1, b"b\n"),
            frame(2, b"oops\n"),
            frame(1, b"c\n"),
        ]
        .concat();
        let last = frame(1, b"partial");
        pending.extend_from_slice(&last[..6]);
        write_frames(&mut pending, &mut Rec(1, &calls), &mut Rec(2, &calls)).unwrap();
        assert_eq!(
            *calls.borrow(),
            vec![
                (1, b"a\nb\n".to_vec()),
                (2, b"oops\n".to_vec()),
                (1, b"c\n".to_vec())
            ]
        );
        assert_eq!(pending, last[..6]);
        calls.borrow_mut().clear();
        pending.extend_from_slice(&last[6..]);
        write_frames(&mut pending, &mut Rec(1, &calls), &mut Rec(2, &calls)).unwrap();
        assert_eq!(*calls.borrow(), vec![(1, b"partial".to_vec())]);
        assert!(pending.is_empty());
    }
}
