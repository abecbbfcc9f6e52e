//! runc's command line, parsed by a small table-driven parser: global options, one subcommand,
//! its options (`--name value`, `--name=value`, `-n value`, `-nvalue`, `-n=value`, clusters of
//! boolean shorts like `-dt`), its positionals, and for `exec`/`ps` the trailing arguments taken
//! verbatim. `--` ends the options.
//!
//! Why not clap: its builder and the derive's command tree are ~450 KB of code that every call
//! runs and keeps resident, a third of the runtime's peak RSS budget (the target is crun's
//! 3.3 MiB for a whole `run`).

use std::path::PathBuf;

/// Everything before and including the subcommand.
#[derive(Debug)]
pub struct Cli {
    /// `--root`: state directory
    pub root: PathBuf,
    /// `--log`: errors (and warnings) are appended to it
    pub log: Option<PathBuf>,
    /// `--log-format`: text or json
    pub log_format: String,
    /// `--debug`
    pub debug: bool,
    /// `--systemd-cgroup`
    pub systemd_cgroup: bool,
    /// the verb
    pub cmd: Cmd,
}

/// Options of `create` (and of the create half of `run`).
#[derive(Debug)]
pub struct CreateArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// The verbs and their options.
#[derive(Debug)]
pub enum Cmd {
    Create(CreateArgs),
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: String,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    Run {
        create: CreateArgs,
        detach: bool,
        keep: bool,
    },
    Exec {
        id: String,
        command: Vec<String>,
        process: Option<PathBuf>,
        tty: bool,
        console_socket: Option<PathBuf>,
        detach: bool,
        env: Vec<String>,
        cwd: Option<PathBuf>,
        user: Option<String>,
        additional_gids: Vec<u32>,
        cap: Vec<String>,
        no_new_privs: bool,
        pid_file: Option<PathBuf>,
        process_label: Option<String>,
        apparmor: Option<String>,
        preserve_fds: u32,
        ignore_paused: bool,
    },
    Ps {
        id: String,
        format: String,
        ps_args: Vec<String>,
    },
    List {
        quiet: bool,
        format: String,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Events {
        id: String,
        stats: bool,
        interval: String,
    },
    Update {
        id: String,
        resources: Option<String>,
        memory: Option<String>,
        memory_swap: Option<String>,
        memory_reservation: Option<String>,
        kernel_memory: Option<String>,
        cpu_shares: Option<u64>,
        cpu_period: Option<u64>,
        cpu_quota: Option<i64>,
        cpuset_cpus: Option<String>,
        cpuset_mems: Option<String>,
        pids_limit: Option<i64>,
        blkio_weight: Option<u16>,
    },
    Spec {
        bundle: PathBuf,
        rootless: bool,
    },
    Features,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// run a verb
    Run(Box<Cli>),
    /// print this text on stdout and exit 0 (`--help`, `--version`)
    Print(String),
}

/// A command line that can't be parsed; the message names the option or argument.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// One option of a verb: long name, short letter, whether it takes a value.
struct Opt(&'static str, Option<char>, bool);

/// One verb: name, summary, options, positional names, whether more arguments trail.
struct Verb {
    name: &'static str,
    about: &'static str,
    opts: &'static [Opt],
    positionals: &'static [&'static str],
    required: usize,
    trailing: Option<&'static str>,
}

const CREATE_OPTS: &[Opt] = &[
    Opt("bundle", Some('b'), true),
    Opt("pid-file", None, true),
    Opt("console-socket", None, true),
    Opt("no-pivot", None, false),
    Opt("no-new-keyring", None, false),
    Opt("preserve-fds", None, true),
];

const RUN_OPTS: &[Opt] = &[
    Opt("bundle", Some('b'), true),
    Opt("pid-file", None, true),
    Opt("console-socket", None, true),
    Opt("no-pivot", None, false),
    Opt("no-new-keyring", None, false),
    Opt("preserve-fds", None, true),
    Opt("detach", Some('d'), false),
    Opt("keep", None, false),
];

const EXEC_OPTS: &[Opt] = &[
    Opt("process", Some('p'), true),
    Opt("tty", Some('t'), false),
    Opt("console-socket", None, true),
    Opt("detach", Some('d'), false),
    Opt("env", Some('e'), true),
    Opt("cwd", None, true),
    Opt("user", Some('u'), true),
    Opt("additional-gids", Some('g'), true),
    Opt("cap", Some('c'), true),
    Opt("no-new-privs", None, false),
    Opt("pid-file", None, true),
    Opt("process-label", None, true),
    Opt("apparmor", None, true),
    Opt("preserve-fds", None, true),
    Opt("ignore-paused", None, false),
];

const UPDATE_OPTS: &[Opt] = &[
    Opt("resources", Some('r'), true),
    Opt("memory", None, true),
    Opt("memory-swap", None, true),
    Opt("memory-reservation", None, true),
    Opt("kernel-memory", None, true),
    Opt("kernel-memory-tcp", None, true),
    Opt("cpu-shares", None, true),
    Opt("cpu-period", None, true),
    Opt("cpu-quota", None, true),
    Opt("cpu-rt-period", None, true),
    Opt("cpu-rt-runtime", None, true),
    Opt("cpuset-cpus", None, true),
    Opt("cpuset-mems", None, true),
    Opt("pids-limit", None, true),
    Opt("blkio-weight", None, true),
];

const ID: &[&str] = &["<id>"];

const VERBS: &[Verb] = &[
    Verb {
        name: "create",
        about: "create a container",
        opts: CREATE_OPTS,
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "start",
        about: "start a created container",
        opts: &[],
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "state",
        about: "output the state of a container",
        opts: &[],
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "kill",
        about: "send a signal to the container's init",
        opts: &[Opt("all", Some('a'), false)],
        positionals: &["<id>", "[signal]"],
        required: 1,
        trailing: None,
    },
    Verb {
        name: "delete",
        about: "delete a container",
        opts: &[Opt("force", Some('f'), false)],
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "run",
        about: "create and run a container",
        opts: RUN_OPTS,
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "exec",
        about: "run a process in a running container",
        opts: EXEC_OPTS,
        positionals: ID,
        required: 1,
        trailing: Some("[command]..."),
    },
    Verb {
        name: "ps",
        about: "list processes of a container",
        opts: &[Opt("format", Some('f'), true)],
        positionals: ID,
        required: 1,
        trailing: Some("[ps-args]..."),
    },
    Verb {
        name: "list",
        about: "list containers",
        opts: &[
            Opt("quiet", Some('q'), false),
            Opt("format", Some('f'), true),
        ],
        positionals: &[],
        required: 0,
        trailing: None,
    },
    Verb {
        name: "pause",
        about: "freeze a container",
        opts: &[],
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "resume",
        about: "thaw a container",
        opts: &[],
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "events",
        about: "container statistics",
        opts: &[Opt("stats", None, false), Opt("interval", None, true)],
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "update",
        about: "update cgroup resources",
        opts: UPDATE_OPTS,
        positionals: ID,
        required: 1,
        trailing: None,
    },
    Verb {
        name: "spec",
        about: "write a default config.json",
        opts: &[Opt("bundle", Some('b'), true), Opt("rootless", None, false)],
        positionals: &[],
        required: 0,
        trailing: None,
    },
    Verb {
        name: "features",
        about: "show the features this runtime implements",
        opts: &[],
        positionals: &[],
        required: 0,
        trailing: None,
    },
];

const GLOBAL_OPTS: &[Opt] = &[
    Opt("root", None, true),
    Opt("log", None, true),
    Opt("log-format", None, true),
    Opt("debug", None, false),
    Opt("systemd-cgroup", None, false),
    Opt("criu", None, true),
    Opt("help", Some('h'), false),
    Opt("version", Some('v'), false),
];

/// The options and positionals given to one verb (or the globals).
#[derive(Default)]
struct Given {
    opts: Vec<(&'static str, Option<String>)>,
    positionals: Vec<String>,
    trailing: Vec<String>,
    help: bool,
}

impl Given {
    fn flag(&self, long: &str) -> bool {
        self.opts.iter().any(|(l, _)| *l == long)
    }

    /// The last value given for `long`.
    fn value(&self, long: &str) -> Option<String> {
        self.opts
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.clone())
    }

    fn values(&self, long: &str) -> Vec<String> {
        self.opts
            .iter()
            .filter(|(l, _)| *l == long)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }

    fn parsed<T: std::str::FromStr>(&self, long: &str) -> Result<Option<T>, UsageError>
    where
        T::Err: std::fmt::Display,
    {
        self.value(long)
            .map(|v| {
                v.parse()
                    .map_err(|e| usage(format!("invalid value {v:?} for --{long}: {e}")))
            })
            .transpose()
    }

    fn all_parsed<T: std::str::FromStr>(&self, long: &str) -> Result<Vec<T>, UsageError>
    where
        T::Err: std::fmt::Display,
    {
        self.values(long)
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|e| usage(format!("invalid value {v:?} for --{long}: {e}")))
            })
            .collect()
    }

    fn path(&self, long: &str) -> Option<PathBuf> {
        self.value(long).map(PathBuf::from)
    }

    fn positional(&mut self, i: usize) -> String {
        std::mem::take(&mut self.positionals[i])
    }
}

/// Reads the options of `verb` (`None`: the global options, which stop at the first
/// non-option, the verb's name) from `args`.
fn read_opts(
    what: &str,
    table: &[Opt],
    verb: Option<&Verb>,
    args: &mut std::iter::Peekable<std::vec::IntoIter<String>>,
) -> Result<Given, UsageError> {
    let mut g = Given::default();
    let mut only_positionals = false;
    while let Some(arg) = args.peek().cloned() {
        let max = verb.map_or(0, |v| v.positionals.len());
        if only_positionals || arg == "-" || !arg.starts_with('-') {
            let Some(v) = verb else { break };
            args.next();
            if g.positionals.len() < max {
                g.positionals.push(arg);
            } else if v.trailing.is_some() {
                // The command (or ps arguments): everything from here on, verbatim.
                g.trailing.push(arg);
                g.trailing.extend(args.by_ref());
            } else {
                return Err(usage(format!("{what}: unexpected argument {arg:?}")));
            }
            continue;
        }
        args.next();
        if arg == "--" {
            only_positionals = true;
            continue;
        }
        if arg == "--help" || arg == "-h" {
            g.help = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            // accepted for runc compatibility: --rootless[=true|false|auto]
            if verb.is_none() && name == "rootless" {
                if inline.is_none()
                    && args
                        .peek()
                        .is_some_and(|v| matches!(v.as_str(), "true" | "false" | "auto"))
                {
                    args.next();
                }
                continue;
            }
            let opt = table
                .iter()
                .find(|o| o.0 == name)
                .ok_or_else(|| usage(format!("{what}: unknown option --{name}")))?;
            let value = take_value(what, opt, inline, args)?;
            g.opts.push((opt.0, value));
            continue;
        }
        // Shorts: -x, -xVALUE, -x=VALUE, -abc (booleans).
        let shorts: Vec<char> = arg[1..].chars().collect();
        let mut i = 0;
        while i < shorts.len() {
            let c = shorts[i];
            if c == 'h' {
                g.help = true;
                i += 1;
                continue;
            }
            let opt = table
                .iter()
                .find(|o| o.1 == Some(c))
                .ok_or_else(|| usage(format!("{what}: unknown option -{c}")))?;
            if opt.2 {
                let rest: String = shorts[i + 1..].iter().collect();
                let inline = match rest.strip_prefix('=') {
                    Some(v) => Some(v.to_string()),
                    None if rest.is_empty() => None,
                    None => Some(rest),
                };
                let value = take_value(what, opt, inline, args)?;
                g.opts.push((opt.0, value));
                break;
            }
            g.opts.push((opt.0, None));
            i += 1;
        }
    }
    if let Some(v) = verb {
        if !g.help && g.positionals.len() < v.required {
            return Err(usage(format!(
                "{what}: missing argument {}",
                v.positionals[g.positionals.len()]
            )));
        }
    }
    Ok(g)
}

fn take_value(
    what: &str,
    opt: &Opt,
    inline: Option<String>,
    args: &mut std::iter::Peekable<std::vec::IntoIter<String>>,
) -> Result<Option<String>, UsageError> {
    match (opt.2, inline) {
        (false, None) => Ok(None),
        (false, Some(v)) => match v.as_str() {
            // urfave/cli (runc) accepts --flag=true|false
            "true" => Ok(None),
            _ => Err(usage(format!("{what}: --{} takes no value", opt.0))),
        },
        (true, Some(v)) => Ok(Some(v)),
        (true, None) => args
            .next()
            .map(Some)
            .ok_or_else(|| usage(format!("{what}: --{} needs a value", opt.0))),
    }
}

fn help_text(verb: Option<&Verb>) -> String {
    let mut s = String::new();
    let opts = |s: &mut String, table: &[Opt]| {
        for o in table {
            let short = o.1.map(|c| format!("-{c}, ")).unwrap_or_default();
            let value = if o.2 { " <value>" } else { "" };
            s.push_str(&format!("  {short}--{}{value}\n", o.0));
        }
    };
    match verb {
        None => {
            s.push_str("OCI runtime with runc's command line\n\n");
            s.push_str("usage: berth-runtime [options] <command> [command options] [args]\n\n");
            s.push_str("commands:\n");
            for v in VERBS {
                s.push_str(&format!("  {:<10}{}\n", v.name, v.about));
            }
            s.push_str("\noptions:\n  --rootless [true|false|auto]\n");
            opts(&mut s, GLOBAL_OPTS);
        }
        Some(v) => {
            s.push_str(&format!("{}\n\nusage: berth-runtime {}", v.about, v.name));
            if !v.opts.is_empty() {
                s.push_str(" [options]");
            }
            for p in v.positionals {
                s.push_str(&format!(" {p}"));
            }
            if let Some(t) = v.trailing {
                s.push_str(&format!(" {t}"));
            }
            s.push('\n');
            if !v.opts.is_empty() {
                s.push_str("\noptions:\n");
                opts(&mut s, v.opts);
            }
        }
    }
    s
}

/// Parses `args` (without the program name).
pub fn parse(args: Vec<String>) -> Result<Parsed, UsageError> {
    let mut it = args.into_iter().peekable();
    let global = read_opts("berth-runtime", GLOBAL_OPTS, None, &mut it)?;
    if global.help {
        return Ok(Parsed::Print(help_text(None)));
    }
    if global.flag("version") {
        return Ok(Parsed::Print(format!(
            "berth-runtime version {}\nspec: 1.2.0\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let name = it
        .next()
        .ok_or_else(|| usage("missing command (see berth-runtime --help)"))?;
    let verb = VERBS.iter().find(|v| v.name == name).ok_or_else(|| {
        usage(format!(
            "unknown command {name:?} (see berth-runtime --help)"
        ))
    })?;
    let mut g = read_opts(verb.name, verb.opts, Some(verb), &mut it)?;
    if g.help {
        return Ok(Parsed::Print(help_text(Some(verb))));
    }
    let cmd = build(verb.name, &mut g)?;
    Ok(Parsed::Run(Box::new(Cli {
        root: global
            .path("root")
            .unwrap_or_else(|| PathBuf::from(berth_runtime::container::DEFAULT_ROOT)),
        log: global.path("log"),
        log_format: global.value("log-format").unwrap_or_else(|| "text".into()),
        debug: global.flag("debug"),
        systemd_cgroup: global.flag("systemd-cgroup"),
        cmd,
    })))
}

fn create_args(g: &mut Given) -> Result<CreateArgs, UsageError> {
    Ok(CreateArgs {
        id: g.positional(0),
        bundle: g.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
        pid_file: g.path("pid-file"),
        console_socket: g.path("console-socket"),
        no_pivot: g.flag("no-pivot"),
        no_new_keyring: g.flag("no-new-keyring"),
        preserve_fds: g.parsed("preserve-fds")?.unwrap_or(0),
    })
}

fn build(name: &str, g: &mut Given) -> Result<Cmd, UsageError> {
    Ok(match name {
        "create" => Cmd::Create(create_args(g)?),
        "start" => Cmd::Start {
            id: g.positional(0),
        },
        "state" => Cmd::State {
            id: g.positional(0),
        },
        "kill" => Cmd::Kill {
            signal: g
                .positionals
                .get(1)
                .cloned()
                .unwrap_or_else(|| "SIGTERM".into()),
            all: g.flag("all"),
            id: g.positional(0),
        },
        "delete" => Cmd::Delete {
            force: g.flag("force"),
            id: g.positional(0),
        },
        "run" => Cmd::Run {
            detach: g.flag("detach"),
            keep: g.flag("keep"),
            create: create_args(g)?,
        },
        "exec" => Cmd::Exec {
            command: std::mem::take(&mut g.trailing),
            process: g.path("process"),
            tty: g.flag("tty"),
            console_socket: g.path("console-socket"),
            detach: g.flag("detach"),
            env: g.values("env"),
            cwd: g.path("cwd"),
            user: g.value("user"),
            additional_gids: g.all_parsed("additional-gids")?,
            cap: g.values("cap"),
            no_new_privs: g.flag("no-new-privs"),
            pid_file: g.path("pid-file"),
            process_label: g.value("process-label"),
            apparmor: g.value("apparmor"),
            preserve_fds: g.parsed("preserve-fds")?.unwrap_or(0),
            ignore_paused: g.flag("ignore-paused"),
            id: g.positional(0),
        },
        "ps" => Cmd::Ps {
            format: g.value("format").unwrap_or_else(|| "table".into()),
            ps_args: std::mem::take(&mut g.trailing),
            id: g.positional(0),
        },
        "list" => Cmd::List {
            quiet: g.flag("quiet"),
            format: g.value("format").unwrap_or_else(|| "table".into()),
        },
        "pause" => Cmd::Pause {
            id: g.positional(0),
        },
        "resume" => Cmd::Resume {
            id: g.positional(0),
        },
        "events" => Cmd::Events {
            stats: g.flag("stats"),
            interval: g.value("interval").unwrap_or_else(|| "5s".into()),
            id: g.positional(0),
        },
        "update" => Cmd::Update {
            resources: g.value("resources"),
            memory: g.value("memory"),
            memory_swap: g.value("memory-swap"),
            memory_reservation: g.value("memory-reservation"),
            kernel_memory: g.value("kernel-memory"),
            cpu_shares: g.parsed("cpu-shares")?,
            cpu_period: g.parsed("cpu-period")?,
            cpu_quota: g.parsed("cpu-quota")?,
            cpuset_cpus: g.value("cpuset-cpus"),
            cpuset_mems: g.value("cpuset-mems"),
            pids_limit: g.parsed("pids-limit")?,
            blkio_weight: g.parsed("blkio-weight")?,
            id: g.positional(0),
        },
        "spec" => Cmd::Spec {
            bundle: g.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
            rootless: g.flag("rootless"),
        },
        "features" => Cmd::Features,
        other => return Err(usage(format!("unknown command {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Cli {
        match parse(args.iter().map(|s| s.to_string()).collect()) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse(args.iter().map(|s| s.to_string()).collect()) {
            Err(e) => e.to_string(),
            Ok(other) => panic!("{args:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn containerd_create_line() {
        let c = run(&[
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/b",
            "--pid-file=/p",
            "--preserve-fds",
            "2",
            "abc",
        ]);
        assert_eq!(c.root, PathBuf::from("/r"));
        assert_eq!(c.log_format, "json");
        assert!(c.systemd_cgroup && !c.debug);
        let Cmd::Create(a) = c.cmd else {
            panic!("{:?}", c.cmd)
        };
        assert_eq!(
            (a.id.as_str(), a.bundle, a.pid_file, a.preserve_fds),
            ("abc", PathBuf::from("/b"), Some(PathBuf::from("/p")), 2)
        );
    }

    #[test]
    fn defaults_and_short_forms() {
        let c = run(&["run", "-d", "-b/x", "id1"]);
        assert_eq!(
            c.root,
            PathBuf::from(berth_runtime::container::DEFAULT_ROOT)
        );
        let Cmd::Run { create, detach, .. } = c.cmd else {
            panic!()
        };
        assert!(detach);
        assert_eq!(create.bundle, PathBuf::from("/x"));
        let Cmd::Kill { signal, all, .. } = run(&["kill", "-a", "id", "9"]).cmd else {
            panic!()
        };
        assert_eq!((signal.as_str(), all), ("9", true));
        let Cmd::Kill { signal, .. } = run(&["kill", "id"]).cmd else {
            panic!()
        };
        assert_eq!(signal, "SIGTERM");
    }

    #[test]
    fn exec_takes_the_command_verbatim_and_repeats_options() {
        let c = run(&[
            "exec",
            "-t",
            "-e",
            "A=1",
            "--env=B=2",
            "-g",
            "10",
            "-g",
            "11",
            "--cap",
            "CAP_X",
            "id",
            "sh",
            "-c",
            "echo --x -t",
        ]);
        let Cmd::Exec {
            id,
            command,
            tty,
            env,
            additional_gids,
            cap,
            ..
        } = c.cmd
        else {
            panic!()
        };
        assert_eq!(id, "id");
        assert_eq!(command, ["sh", "-c", "echo --x -t"]);
        assert!(tty);
        assert_eq!(env, ["A=1", "B=2"]);
        assert_eq!(additional_gids, [10, 11]);
        assert_eq!(cap, ["CAP_X"]);
        let Cmd::Exec { command, .. } = run(&["exec", "id", "--", "ls", "-l"]).cmd else {
            panic!()
        };
        assert_eq!(command, ["ls", "-l"]);
    }

    #[test]
    fn rootless_compat_flag_and_bool_equals_true() {
        let c = run(&["--rootless", "false", "delete", "--force=true", "x"]);
        assert!(matches!(c.cmd, Cmd::Delete { force: true, .. }));
        let c = run(&["--rootless=auto", "state", "x"]);
        assert!(matches!(c.cmd, Cmd::State { .. }));
    }

    #[test]
    fn errors_name_what_was_wrong() {
        assert!(err(&["start"]).contains("missing argument <id>"));
        assert!(err(&["create", "--bogus", "x"]).contains("--bogus"));
        assert!(err(&["create", "x", "y"]).contains("\"y\""));
        assert!(err(&["frobnicate"]).contains("frobnicate"));
        assert!(err(&["create", "--bundle"]).contains("needs a value"));
        assert!(err(&["update", "--cpu-shares", "x", "id"]).contains("--cpu-shares"));
        assert!(err(&[]).contains("missing command"));
    }

    #[test]
    fn help_and_version_print() {
        for args in [
            &["--help"][..],
            &["-h"],
            &["exec", "--help"],
            &["--version"],
            &["-v"],
        ] {
            match parse(args.iter().map(|s| s.to_string()).collect()) {
                Ok(Parsed::Print(t)) => assert!(!t.is_empty()),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }
}
