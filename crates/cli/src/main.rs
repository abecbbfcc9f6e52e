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
use commands::archive::{ExportArgs, ImportArgs, PruneArgs};
use commands::container::{CreateArgs, ExecArgs, LogsArgs, PsArgs, RunArgs};
use commands::events::EventsArgs;
use commands::image::{ImageCmd, ImagesArgs, LoadArgs, PullArgs, RmiArgs, SaveArgs};
use commands::login::LoginArgs;
use commands::network::NetworkCmd;
use commands::port::PortArgs;
use commands::volume::VolumeCmd;
use commands::{
    attach::AttachArgs, commit::CommitArgs, cp::CpArgs, debug::DebugArgs, stats::StatsArgs,
    update::UpdateArgs,
};

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
    /// Manage networks
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push { name: String },
    /// List images
    Images(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Show the history of an image
    History { name: String },
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout { server: Option<String> },
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start {
        #[arg(required = true)]
        names: Vec<String>,
        /// Attach STDOUT/STDERR
        #[arg(short, long)]
        attach: bool,
        /// Attach container's STDIN
        #[arg(short, long)]
        interactive: bool,
    },
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Return low-level information on containers or images
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Only inspect objects of this type (container or image)
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Stop one or more running containers
    Stop {
        #[arg(required = true)]
        names: Vec<String>,
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time")]
        time: Option<i64>,
        /// Signal to send
        #[arg(short = 's', long)]
        signal: Option<String>,
    },
    /// Kill one or more running containers
    Kill {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
    },
    /// Remove one or more containers
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short, long)]
        force: bool,
        /// Remove anonymous volumes associated with the container
        #[arg(short, long)]
        volumes: bool,
    },
    /// Restart one or more containers
    Restart {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(short = 't', long = "time")]
        time: Option<i64>,
    },
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Open a shell with host (or image) tools inside a running container's namespaces
    Debug(DebugArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Display the running processes of a container
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
}

#[derive(Debug, Subcommand)]
enum ContainerCmd {
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
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

fn code(ok: bool) -> i32 {
    if ok {
        0
    } else {
        1
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    use commands::container as c;
    use hyper::Method;
    let client = connect(&cli).await?;
    let flag = |b: bool| if b { "1".to_string() } else { String::new() };
    match cli.cmd {
        Cmd::Version { format } => commands::system::version(&client, format.as_deref())
            .await
            .map(|()| 0),
        Cmd::Info { format }
        | Cmd::System {
            cmd: SystemCmd::Info { format },
        } => commands::system::info(&client, format.as_deref())
            .await
            .map(|()| 0),
        Cmd::Events(a)
        | Cmd::System {
            cmd: SystemCmd::Events(a),
        } => commands::events::run(&client, &a).await.map(|()| 0),
        Cmd::System {
            cmd: SystemCmd::Df { verbose, format },
        } => commands::system::df(&client, verbose, format.as_deref())
            .await
            .map(|()| 0),
        Cmd::Network { cmd } => commands::network::run(&client, cmd).await.map(code),
        Cmd::Volume { cmd } => commands::volume::run(&client, cmd).await.map(code),
        Cmd::Image { cmd } => commands::image::run(&client, cmd).await.map(code),
        Cmd::Pull(a) => commands::image::run(&client, ImageCmd::Pull(a))
            .await
            .map(code),
        Cmd::Push { name } => commands::image::run(&client, ImageCmd::Push { name })
            .await
            .map(code),
        Cmd::Images(a) => commands::image::run(&client, ImageCmd::Ls(a))
            .await
            .map(code),
        Cmd::Tag { source, target } => {
            commands::image::run(&client, ImageCmd::Tag { source, target })
                .await
                .map(code)
        }
        Cmd::Rmi(a) => commands::image::run(&client, ImageCmd::Rm(a))
            .await
            .map(code),
        Cmd::Save(a) => commands::image::run(&client, ImageCmd::Save(a))
            .await
            .map(code),
        Cmd::Load(a) => commands::image::run(&client, ImageCmd::Load(a))
            .await
            .map(code),
        Cmd::History { name } => commands::image::run(&client, ImageCmd::History { name })
            .await
            .map(code),
        Cmd::Login(a) => commands::login::login(&client, a).await.map(code),
        Cmd::Logout { server } => commands::login::logout(server).map(code),
        Cmd::Import(a) => commands::archive::import(&client, a).await.map(code),
        Cmd::Export(a)
        | Cmd::Container {
            cmd: ContainerCmd::Export(a),
        } => commands::archive::export(&client, a).await.map(code),
        Cmd::Container {
            cmd: ContainerCmd::Prune(a),
        } => commands::archive::prune_containers(&client, a)
            .await
            .map(code),
        Cmd::Run(a) => c::run(&client, a).await,
        Cmd::Create(a) => c::create_cmd(&client, a).await.map(code),
        Cmd::Start {
            names,
            attach,
            interactive,
        } => c::start(&client, &names, attach, interactive).await,
        Cmd::Ps(a) => c::ps(&client, a).await.map(code),
        Cmd::Logs(a) => c::logs(&client, a).await.map(code),
        Cmd::Inspect {
            names,
            format,
            kind,
        } => c::inspect(&client, &names, format.as_deref(), kind.as_deref())
            .await
            .map(code),
        Cmd::Stop {
            names,
            time,
            signal,
        } => c::each(&client, &names, Method::POST, |n| {
            format!(
                "/containers/{n}/stop{}",
                client::query(&[
                    ("t", time.map(|t| t.to_string()).unwrap_or_default()),
                    ("signal", signal.clone().unwrap_or_default()),
                ])
            )
        })
        .await
        .map(code),
        Cmd::Kill { names, signal } => c::each(&client, &names, Method::POST, |n| {
            format!(
                "/containers/{n}/kill{}",
                client::query(&[("signal", signal.clone())])
            )
        })
        .await
        .map(code),
        Cmd::Rm {
            names,
            force,
            volumes,
        } => c::each(&client, &names, Method::DELETE, |n| {
            format!(
                "/containers/{n}{}",
                client::query(&[("force", flag(force)), ("v", flag(volumes))])
            )
        })
        .await
        .map(code),
        Cmd::Restart { names, time } => c::each(&client, &names, Method::POST, |n| {
            format!(
                "/containers/{n}/restart{}",
                client::query(&[("t", time.map(|t| t.to_string()).unwrap_or_default())])
            )
        })
        .await
        .map(code),
        Cmd::Pause { names } => c::each(&client, &names, Method::POST, |n| {
            format!("/containers/{n}/pause")
        })
        .await
        .map(code),
        Cmd::Unpause { names } => c::each(&client, &names, Method::POST, |n| {
            format!("/containers/{n}/unpause")
        })
        .await
        .map(code),
        Cmd::Exec(a) => c::exec(&client, a).await,
        Cmd::Cp(a) => commands::cp::run(&client, a).await.map(code),
        Cmd::Commit(a) => commands::commit::run(&client, a).await.map(code),
        Cmd::Debug(a) => commands::debug::run(&client, a).await,
        Cmd::Stats(a) => commands::stats::run(&client, a).await.map(code),
        Cmd::Update(a) => commands::update::run(&client, a).await.map(code),
        Cmd::Top { container, ps_args } => commands::top::run(&client, &container, &ps_args)
            .await
            .map(code),
        Cmd::Rename {
            container,
            new_name,
        } => commands::rename::run(&client, &container, &new_name)
            .await
            .map(code),
        Cmd::Wait { names } => commands::wait::run(&client, &names).await.map(code),
        Cmd::Attach(a) => commands::attach::run(&client, a).await,
        Cmd::Diff { container } => commands::diff::run(&client, &container).await.map(code),
        Cmd::Port(a) => commands::port::run(&client, a).await.map(code),
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
    let result = rt.block_on(run(cli));
    // a session's stdin reader may still sit in a blocking read() of the terminal after the
    // container's output ended (tokio::io::stdin): don't wait for a keypress to exit
    rt.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "berth", "run", "--rm", "-e", "A=1", "busybox", "sh", "-c", "exit 3",
        ])
        .expect("parse run");
        match c.cmd {
            Cmd::Run(r) => {
                assert!(r.create.rm);
                assert_eq!(r.create.cmd, vec!["sh", "-c", "exit 3"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        // docker's -h is the hostname on run/create; --help still helps
        match Cli::try_parse_from(["berth", "create", "-h", "web", "busybox"])
            .expect("parse create -h")
            .cmd
        {
            Cmd::Create(a) => assert_eq!(a.hostname.as_deref(), Some("web")),
            other => panic!("parsed as {other:?}"),
        }
        let help = Cli::try_parse_from(["berth", "run", "--help"]).expect_err("help");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
