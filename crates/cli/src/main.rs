//! berth: the command line client of berthd. Parses docker-style commands, finds the daemon
//! (`-H`, `BERTH_HOST`, `DOCKER_HOST`, else the default socket, starting berthd when nothing
//! answers there), runs the command, and exits non-zero with docker's one-line error.

mod autostart;
mod client;
#[macro_use]
mod commands;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::{Client, Target, TlsPaths};
use commands::events::EventsArgs;
use commands::volume::VolumeCmd;

/// A docker-compatible container engine client.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long = "host", global = true)]
    host: Option<String>,
    /// Use TLS and verify the remote (tcp:// hosts)
    #[arg(long, global = true)]
    tlsverify: bool,
    /// Trust certs signed only by this CA
    #[arg(long, global = true)]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long, global = true)]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long, global = true)]
    tlskey: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the berth version information
    Version {
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Manage berth
    System {
        #[command(subcommand)]
        cmd: SystemCmd,
    },
    /// Get real time events from the server
    Events(EventsArgs),
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
}

#[derive(Debug, Subcommand)]
enum SystemCmd {
    /// Display system-wide information
    Info {
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Get real time events from the server
    Events(EventsArgs),
    /// Show disk usage
    Df {
        /// Show detailed information on space usage
        #[arg(short, long)]
        verbose: bool,
        #[arg(long)]
        format: Option<String>,
    },
}

/// The host to use and whether it is the default (the only case where berthd is started).
fn choose_host(flag: Option<String>) -> (String, bool) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match flag
        .or_else(|| env("BERTH_HOST"))
        .or_else(|| env("DOCKER_HOST"))
    {
        Some(h) => (h, false),
        None => (autostart::default_host(), true),
    }
}

/// TLS material from flags, else docker's `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH`.
fn choose_tls(cli: &Cli) -> Option<TlsPaths> {
    let env_verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
    if !cli.tlsverify && !env_verify && cli.tlscacert.is_none() {
        return None;
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH").map(PathBuf::from);
    let pick = |flag: &Option<PathBuf>, file: &str| {
        flag.clone()
            .or_else(|| dir.as_ref().map(|d| d.join(file)))
            .unwrap_or_else(|| PathBuf::from(file))
    };
    Some(TlsPaths {
        ca: pick(&cli.tlscacert, "ca.pem"),
        cert: pick(&cli.tlscert, "cert.pem"),
        key: pick(&cli.tlskey, "key.pem"),
    })
}

async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let (host, is_default) = choose_host(cli.host.clone());
    let client = Client::new(Target::parse(&host, choose_tls(cli))?)?;
    match client.ping().await {
        Ok(()) => Ok(client),
        Err(e)
            if is_default
                && autostart::is_default(client.target())
                && autostart::nobody_home(&e) =>
        {
            autostart::start(&client).await?;
            Ok(client)
        }
        Err(e) => Err(e.into()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let client = connect(&cli).await?;
    match cli.cmd {
        Cmd::Version { format } => commands::system::version(&client, format.as_deref())
            .await
            .map(|()| true),
        Cmd::Info { format }
        | Cmd::System {
            cmd: SystemCmd::Info { format },
        } => commands::system::info(&client, format.as_deref())
            .await
            .map(|()| true),
        Cmd::Events(a)
        | Cmd::System {
            cmd: SystemCmd::Events(a),
        } => commands::events::run(&client, &a).await.map(|()| true),
        Cmd::System {
            cmd: SystemCmd::Df { verbose, format },
        } => commands::system::df(&client, verbose, format.as_deref())
            .await
            .map(|()| true),
        Cmd::Volume { cmd } => commands::volume::run(&client, cmd).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            // The reader went away (`berth info | head`): nothing more to say.
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut cur = e.source();
            while let Some(c) = cur {
                let s = c.to_string();
                if !msg.contains(&s) {
                    msg.push_str(": ");
                    msg.push_str(&s);
                }
                cur = c.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
