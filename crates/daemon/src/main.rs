//! berthd: parse flags, validate the configuration, take the daemon locks, open the engine and
//! serve the Docker Engine API until told to stop.

mod error;
mod handlers;
mod http;
mod router;
mod server;
mod tls;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use berth_engine::config::{ConfigInput, FileConfig};
use berth_engine::Engine;
use clap::Parser;
use nix::fcntl::{Flock, FlockArg};

/// Read when `--config-file` isn't given and the file exists (like dockerd's /etc/docker/daemon.json).
const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

/// berth's daemon: serves the Docker Engine API.
#[derive(Debug, Parser)]
#[command(name = "berthd", version)]
struct Args {
    /// Address to serve: unix:///path or tcp://host:port (TCP needs --tlsverify); repeatable.
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Where persistent state lives.
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Where runtime state (socket, pid file, logs) lives.
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// Require clients to present a certificate signed by --tlscacert.
    #[arg(long)]
    tlsverify: bool,
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    #[arg(long)]
    tlscert: Option<PathBuf>,
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// daemon.json-style configuration (flags win); default /etc/berth/daemon.json when it exists.
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'D', long)]
    debug: bool,
    /// Registry for image names without a host (default docker.io; `BERTH_DEFAULT_REGISTRY`).
    #[arg(long)]
    default_registry: Option<String>,
    /// Registry (host:port) spoken to over plain http; repeatable. Loopback always is.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Interface of the default `bridge` network (default berth0); `none`: no default bridge.
    #[arg(short = 'b', long, overrides_with = "bridge")]
    bridge: Option<String>,
    /// The default bridge's address and subnet (CIDR), e.g. 10.66.0.1/24.
    #[arg(long, overrides_with = "bip")]
    bip: Option<String>,
    /// Pool for networks created without a subnet: base=CIDR,size=N; repeatable.
    #[arg(long = "default-address-pool")]
    default_address_pools: Vec<String>,
    /// Turn on net.ipv4.ip_forward at startup (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", overrides_with = "ip_forward")]
    ip_forward: Option<bool>,
    /// nftables table for berth's rules (default berth).
    #[arg(long, overrides_with = "firewall_table")]
    firewall_table: Option<String>,
    /// MTU of the default bridge and its containers' interfaces (default 1500, like dockerd).
    #[arg(long, overrides_with = "mtu")]
    mtu: Option<u32>,
}

/// A berth binary next to this one, else on PATH.
fn find_sibling(name: &str) -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)));
    if let Some(s) = sibling.as_ref().filter(|s| s.exists()) {
        return s.clone();
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.exists())
    {
        return p;
    }
    sibling.unwrap_or_else(|| PathBuf::from(name))
}

/// The OCI runtime reported in `/info`: `berth-runtime` next to this binary, else on PATH.
fn find_runtime() -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("berth-runtime")));
    if let Some(s) = sibling.as_ref().filter(|s| s.exists()) {
        return s.clone();
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("berth-runtime"))
        .find(|p| p.exists())
    {
        return p;
    }
    sibling.unwrap_or_else(|| PathBuf::from("berth-runtime"))
}

/// Exclusive lock on `<dir>/<name>` holding our pid: one daemon per data root and exec root.
fn lock(dir: &Path, name: &str) -> anyhow::Result<Flock<File>> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
        .with_context(|| format!("chmod {}", dir.display()))?;
    let path = dir.join(name);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let mut f = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another berthd (pid {}) is using {}",
                pid.trim(),
                dir.display()
            );
        }
        Err((_, e)) => return Err(e).with_context(|| format!("lock {}", path.display())),
    };
    f.set_len(0)
        .with_context(|| format!("truncate {}", path.display()))?;
    write!(f, "{}", std::process::id()).with_context(|| format!("write {}", path.display()))?;
    Ok(f)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = if args.debug { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTHD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut input = ConfigInput {
        data_root: args.data_root,
        exec_root: args.exec_root,
        hosts: args.hosts,
        tlsverify: args.tlsverify,
        tlscacert: args.tlscacert,
        tlscert: args.tlscert,
        tlskey: args.tlskey,
        debug: args.debug,
        runtime_path: Some(find_runtime()),
        shim_path: Some(find_sibling("berth-shim")),
        default_registry: args.default_registry,
        insecure_registries: args.insecure_registries,
        bridge: args.bridge,
        bip: args.bip,
        default_address_pools: args.default_address_pools,
        ip_forward: args.ip_forward,
        firewall_table: args.firewall_table,
        mtu: args.mtu,
    };
    let default_file = Path::new(DEFAULT_CONFIG_FILE);
    let file = args
        .config_file
        .as_deref()
        .or_else(|| default_file.exists().then_some(default_file));
    if let Some(p) = file {
        input.merge_file(FileConfig::load(p)?);
    }
    let config = input.validate()?;
    let _exec_lock = lock(&config.exec_root, "berthd.pid")?;
    let _data_lock = lock(&config.data_root, "berthd.lock")?;
    let engine = Arc::new(Engine::open(config.clone()).context("open engine")?);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
        .context("start tokio runtime")?;
    rt.block_on(async move {
        engine.containers().adopt();
        let listeners = server::bind_all(&config).await?;
        for h in &config.hosts {
            tracing::info!(host = %h, data_root = %config.data_root.display(), "berthd listening");
        }
        server::serve(engine, listeners).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}
