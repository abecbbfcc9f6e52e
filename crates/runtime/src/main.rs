//! `berth-runtime`: runc's command line over the berth_runtime library. Thin glue: parse, call one
//! library function, print the error chain on stderr (and as a JSON line to `--log` with
//! `--log-format json`, which is where containerd and podman look for it).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::container::{
    self, create::CreateOptions, exec::ExecOptions, update::UpdateFlags,
};

mod cli;

use cli::{Cli, Cmd, CreateArgs, Parsed};

impl CreateArgs {
    fn options(&self, systemd: bool) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds + listen_fds(),
            systemd_cgroup: systemd,
            foreground: false,
        }
    }
}

/// Socket-activation fds (LISTEN_FDS) pass through like `--preserve-fds`, as in runc.
fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("invalid interval {s:?}"),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn size(s: &Option<String>) -> anyhow::Result<Option<i64>> {
    s.as_deref()
        .map(container::update::parse_size)
        .transpose()
        .map_err(Into::into)
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let root = cli.root.as_path();
    let (log, json) = (cli.log.clone(), cli.log_format == "json");
    let mut warn = |msg: &str| {
        eprintln!("warning: {msg}");
        log_line(log.as_deref(), json, "warning", msg);
    };
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Create(a) => {
            let created = container::create::create(root, &a.options(cli.systemd_cgroup))?;
            if cli.debug {
                for w in created.warnings {
                    eprintln!("warning: {w}");
                }
            }
        }
        Cmd::Start { id } => container::start::start(root, &id, &mut warn)?,
        Cmd::State { id } => {
            let c = container::Container::load(root, &id)?;
            serde_json::to_writer_pretty(&mut out, &c.state.to_oci(c.status))?;
            writeln!(out)?;
        }
        Cmd::Kill { id, signal, all } => {
            container::kill::kill(root, &id, container::kill::parse_signal(&signal)?, all)?
        }
        Cmd::Delete { id, force } => container::delete::delete(root, &id, force)?,
        Cmd::Run {
            create,
            detach,
            keep,
        } => {
            return Ok(container::run::run(
                root,
                &create.options(cli.systemd_cgroup),
                detach,
                keep,
                &mut warn,
            )?);
        }
        Cmd::Exec {
            id,
            command,
            process,
            tty,
            console_socket,
            detach,
            env,
            cwd,
            user,
            additional_gids,
            cap,
            no_new_privs,
            pid_file,
            process_label,
            apparmor,
            preserve_fds,
            ignore_paused,
        } => {
            let o = ExecOptions {
                id,
                process,
                args: command,
                tty,
                console_socket,
                detach,
                env,
                cwd,
                user,
                additional_gids,
                caps: cap,
                no_new_privs,
                pid_file,
                process_label,
                apparmor,
                preserve_fds: preserve_fds + listen_fds(),
                ignore_paused,
            };
            return Ok(container::exec::exec(root, &o)?);
        }
        Cmd::Ps {
            id,
            format,
            ps_args,
        } => {
            let pids = container::ps::pids(root, &id)?;
            match format.as_str() {
                "json" => {
                    serde_json::to_writer(&mut out, &pids)?;
                    writeln!(out)?;
                }
                "table" => container::ps::print_table(&mut out, &pids, &ps_args)?,
                f => anyhow::bail!("invalid format {f:?} (want table or json)"),
            }
        }
        Cmd::List { quiet, format } => {
            let cs = container::list::list(root)?;
            let json = match format.as_str() {
                "json" => true,
                "table" => false,
                f => anyhow::bail!("invalid format {f:?} (want table or json)"),
            };
            container::list::print(&mut out, &cs, quiet, json)?;
        }
        Cmd::Pause { id } => container::pause::pause(root, &id)?,
        Cmd::Resume { id } => container::pause::resume(root, &id)?,
        Cmd::Events {
            id,
            stats,
            interval,
        } => container::events::events(&mut out, root, &id, stats, parse_duration(&interval)?)?,
        Cmd::Update {
            id,
            resources,
            memory,
            memory_swap,
            memory_reservation,
            kernel_memory,
            cpu_shares,
            cpu_period,
            cpu_quota,
            cpuset_cpus,
            cpuset_mems,
            pids_limit,
            blkio_weight,
        } => {
            let res = match resources.as_deref() {
                Some("-") => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                    container::update::resources_from_json(&buf)?
                }
                Some(p) => container::update::resources_from_json(
                    &std::fs::read(p).with_context(|| format!("read resources file {p}"))?,
                )?,
                None => container::update::resources_from_flags(&UpdateFlags {
                    memory: size(&memory)?,
                    memory_swap: size(&memory_swap)?,
                    memory_reservation: size(&memory_reservation)?,
                    kernel_memory: size(&kernel_memory)?,
                    cpu_shares,
                    cpu_period,
                    cpu_quota,
                    cpuset_cpus,
                    cpuset_mems,
                    pids_limit,
                    blkio_weight,
                })?,
            };
            container::update::update(root, &id, &res)?
        }
        Cmd::Spec { bundle, rootless } => container::spec::write_spec(&bundle, rootless)?,
        Cmd::Features => writeln!(out, "{}", container::features::features_json())?,
    }
    Ok(0)
}

fn log_line(log: Option<&Path>, json: bool, level: &str, msg: &str) {
    let Some(path) = log else { return };
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let time = berth_runtime::state::rfc3339(std::time::SystemTime::now());
    let line = if json {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}")
    };
    let _ = writeln!(f, "{line}");
}

fn main() -> ExitCode {
    // CVE-2019-5736: verbs that put processes into a container run from a read-only clone of
    // our binary (re-exec once). Decided before clap parses, so the first image does no more
    // than it must; a stray match (an id named "run") only costs the re-exec.
    if std::env::args_os()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec")
    {
        if let Err(e) = berth_sys::exe::ensure_sealed("_BERTH_RUNTIME_SEALED") {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        eprintln!("error: an argument is not valid UTF-8");
        return ExitCode::from(2);
    };
    let cli = match cli::parse(args) {
        Ok(Parsed::Run(cli)) => cli,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let log = cli.log.clone();
    let json = cli.log_format == "json";
    match dispatch(*cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            let msg = berth_runtime::init::error_chain(e.as_ref());
            eprintln!("error: {msg}");
            log_line(log.as_deref(), json, "error", &msg);
            ExitCode::from(1)
        }
    }
}
