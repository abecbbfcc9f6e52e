//! Becoming the monitor. The process berthd spawns forks once: the parent waits on a report pipe
//! and exits 0 once the container is started (or 1 with the runtime's message on stderr); the
//! child leaves berthd's session (setsid), becomes a child subreaper, points its stdio at
//! /dev/null, makes the container's stdio (pipes, or a console socket for the pty master), runs
//! `berth-runtime create` + `start`, and then runs the [`Monitor`] until the container is gone.
//! On any failure before the report, everything the shim made is removed again.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_sys::process::{fork_with_flags, Forked};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe2, setsid, Pid};

use crate::config::{Config, LogDriver};
use crate::logfile::{JsonFile, LogError, Stream};
use crate::monitor::{Monitor, MonitorError, MonitorInit, OomCounter, Output};
use crate::runtime::{CreateIo, Runtime, RuntimeError};
use crate::sockpath::{self, SocketPath};
use crate::state::{self, StateError};

/// Errors before the container runs.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// the step
        what: &'static str,
        /// cause
        #[source]
        source: Errno,
    },
    /// A socket could not be made.
    #[error("socket {path}: {source}")]
    Socket {
        /// the socket file
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The state files.
    #[error(transparent)]
    State(#[from] StateError),
    /// The log file.
    #[error(transparent)]
    Log(#[from] LogError),
    /// berth-runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// `start` failed (the message is the runtime's).
    #[error("berth-runtime start {id}: {message}")]
    Start {
        /// container id
        id: String,
        /// the runtime's message
        message: String,
    },
    /// The runtime sent no terminal over the console socket.
    #[error("berth-runtime sent no terminal over {path}: {source}")]
    Console {
        /// the console socket
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The runtime wrote no init pid.
    #[error("berth-runtime wrote no pid to {0}")]
    NoInitPid(PathBuf),
    /// The event loop could not be set up.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}

impl SetupError {
    /// The text for berthd: the runtime's own message first, then the shim's context.
    pub fn report(&self) -> String {
        match self {
            SetupError::Runtime(e) => format!("{}\nberth-shim: {e}", e.message()),
            SetupError::Start { message, .. } => format!("{message}\nberth-shim: {self}"),
            e => {
                let mut s = format!("berth-shim: {e}");
                let mut src = std::error::Error::source(e);
                while let Some(c) = src {
                    if !s.ends_with(&c.to_string()) {
                        s.push_str(&format!(": {c}"));
                    }
                    src = c.source();
                }
                s
            }
        }
    }
}

fn sys(what: &'static str) -> impl FnOnce(Errno) -> SetupError {
    move |source| SetupError::Sys { what, source }
}

/// Runs the shim for `cfg`: returns in the process berthd spawned (0: started, 1: failed), and
/// in the monitor only when the container is gone (it ends the process itself).
pub fn run(mut cfg: Config) -> i32 {
    // the monitor leaves berthd's cwd for /: relative paths are resolved before that
    for p in [&mut cfg.bundle, &mut cfg.state_dir, &mut cfg.runtime_root] {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    if cfg.runtime.components().count() > 1 {
        if let Ok(abs) = std::path::absolute(&cfg.runtime) {
            cfg.runtime = abs;
        }
    }
    if let LogDriver::JsonFile { path, .. } = &mut cfg.log {
        if let Ok(abs) = std::path::absolute(&*path) {
            *path = abs;
        }
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.state_dir) {
        eprintln!(
            "berth-shim: create state dir {}: {e}",
            cfg.state_dir.display()
        );
        return 1;
    }
    let (rd, wr) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth-shim: pipe: {e}");
            return 1;
        }
    };
    match fork_with_flags(0) {
        Err(e) => {
            eprintln!("berth-shim: fork: {e}");
            1
        }
        Ok(Forked::Parent(child)) => {
            drop(wr);
            wait_report(rd, child)
        }
        Ok(Forked::Child) => {
            drop(rd);
            let code = monitor_main(&cfg, wr);
            berth_sys::process::exit_now(code)
        }
    }
}

/// In the spawned process: relays the monitor's report.
fn wait_report(rd: OwnedFd, child: Pid) -> i32 {
    let mut buf = Vec::new();
    let _ = File::from(rd).read_to_end(&mut buf);
    if buf == b"ok" {
        return 0;
    }
    // the monitor exits right after a failure report: reap it so nothing is left
    let _ = waitpid(child, None);
    let msg = String::from_utf8_lossy(buf.strip_prefix(b"err\n").unwrap_or(&buf)).into_owned();
    if msg.trim().is_empty() {
        eprintln!("berth-shim: the monitor exited before the container started");
    } else {
        eprintln!("{}", msg.trim_end());
    }
    1
}

fn monitor_main(cfg: &Config, report: OwnedFd) -> i32 {
    let mut report = File::from(report);
    // fds berthd leaked without CLOEXEC must not reach the runtime or the container
    let _ = berth_sys::process::cloexec_from(3);
    // don't keep berthd's cwd (a mount) busy
    let _ = std::env::set_current_dir("/");
    let prepared = setsid()
        .map_err(sys("setsid"))
        .and_then(|_| berth_sys::process::set_child_subreaper().map_err(sys("set child subreaper")))
        .and_then(|()| null_stdio().map_err(sys("stdio to /dev/null")));
    match prepared.and_then(|()| setup(cfg)) {
        Ok(monitor) => {
            let _ = report.write_all(b"ok");
            drop(report);
            monitor.run()
        }
        Err(e) => {
            let _ = report.write_all(format!("err\n{}", e.report()).as_bytes());
            1
        }
    }
}

fn null_stdio() -> nix::Result<()> {
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty())?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Files removed again unless setup succeeds.
#[derive(Default)]
struct Leftovers {
    paths: Vec<PathBuf>,
}

impl Leftovers {
    fn add(&mut self, p: PathBuf) -> PathBuf {
        self.paths.push(p.clone());
        p
    }

    fn keep(mut self) {
        self.paths.clear();
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Deletes the created container unless setup succeeds.
struct Created<'a> {
    runtime: &'a Runtime,
    id: &'a str,
    armed: bool,
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.runtime.delete_force(self.id);
        }
    }
}

fn nonblocking<F: AsFd>(fd: F) -> Result<F, SetupError> {
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(sys("set O_NONBLOCK"))?;
    Ok(fd)
}

fn listen(path: &Path) -> Result<std::os::unix::net::UnixListener, SetupError> {
    let l = sockpath::bind(path).map_err(|source| SetupError::Socket {
        path: path.to_owned(),
        source,
    })?;
    l.set_nonblocking(true)
        .map_err(|source| SetupError::Socket {
            path: path.to_owned(),
            source,
        })?;
    Ok(l)
}

/// Everything up to a started container and a ready monitor.
fn setup(cfg: &Config) -> Result<Monitor, SetupError> {
    let dir = &cfg.state_dir;
    let mut left = Leftovers::default();

    // SIGCHLD is blocked before any child exists, so the init's exit can't be missed
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys("block SIGCHLD"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("signalfd"))?;

    // a stale record from an earlier run in this dir must not be mistaken for this one's
    let _ = std::fs::remove_file(dir.join(state::EXIT_FILE));
    left.add(dir.join(state::PID_FILE));
    state::save_pid(dir, getpid().as_raw())?;

    let attach = listen(&left.add(dir.join(state::ATTACH_SOCK)))?;
    let control = listen(&left.add(dir.join(state::CONTROL_SOCK)))?;
    let pid_file = left.add(dir.join(state::INIT_PID_FILE));
    let _ = std::fs::remove_file(&pid_file);
    let runtime = Runtime::new(
        &cfg.runtime,
        &cfg.runtime_root,
        &cfg.runtime_args,
        &dir.join(state::RUNTIME_LOG),
    );

    let mut outputs = Vec::new();
    let mut stdin = None;
    let mut console = None;
    let io = if cfg.tty {
        let path = left.add(dir.join(state::CONSOLE_SOCK));
        console = Some((listen(&path)?, path));
        CreateIo {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    } else {
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("stdout pipe"))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("stderr pipe"))?;
        outputs.push(Output::new(nonblocking(out_r)?, Stream::Stdout));
        outputs.push(Output::new(nonblocking(err_r)?, Stream::Stderr));
        let stdin_io = if cfg.stdin {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("stdin pipe"))?;
            stdin = Some(nonblocking(w)?);
            Stdio::from(r)
        } else {
            Stdio::null()
        };
        CreateIo {
            stdin: stdin_io,
            stdout: Stdio::from(out_w),
            stderr: Stdio::from(err_w),
        }
    };

    let console_arg = match &console {
        Some((_, path)) => Some(SocketPath::new(path, Some(std::process::id())).map_err(
            |source| SetupError::Socket {
                path: path.clone(),
                source,
            },
        )?),
        None => None,
    };
    runtime.create(
        &cfg.id,
        &cfg.bundle,
        &pid_file,
        console_arg.as_ref().map(SocketPath::path),
        io,
    )?;
    let mut created = Created {
        runtime: &runtime,
        id: &cfg.id,
        armed: true,
    };

    // opened once the container exists, so a failed create leaves no log file behind
    let log = match &cfg.log {
        LogDriver::JsonFile { path, rotation } => Some(JsonFile::open(path, *rotation)?),
        LogDriver::None => None,
    };
    let mut pty = None;
    if let Some((listener, path)) = console {
        let master = receive_pty(&listener).map_err(|source| SetupError::Console {
            path: path.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&path);
        let master = nonblocking(master)?;
        let clone = |m: &OwnedFd| {
            m.try_clone().map_err(|source| SetupError::Console {
                path: path.clone(),
                source,
            })
        };
        outputs.push(Output::new(clone(&master)?, Stream::Stdout));
        if cfg.stdin {
            stdin = Some(clone(&master)?);
        }
        pty = Some(master);
    }

    let init = state::read_pid_file(&pid_file)?
        .map(Pid::from_raw)
        .ok_or_else(|| SetupError::NoInitPid(pid_file.clone()))?;
    let oom = OomCounter::for_pid(init);

    let mut monitor = Monitor::new(MonitorInit {
        id: cfg.id.clone(),
        state_dir: dir.clone(),
        tty: cfg.tty,
        runtime: runtime.clone(),
        signals,
        attach,
        control,
        outputs,
        stdin,
        pty,
        log,
        init,
        started_at: None,
        oom,
    })?;
    if !cfg.no_start {
        monitor.start_now().map_err(|message| SetupError::Start {
            id: cfg.id.clone(),
            message,
        })?;
    }
    created.armed = false;
    left.keep();
    Ok(monitor)
}

/// Accepts the runtime's connection on the console socket and takes the pty master from it.
fn receive_pty(listener: &std::os::unix::net::UnixListener) -> std::io::Result<OwnedFd> {
    // the runtime connected and sent before `create` returned: both are queued already
    let (conn, _) = listener.accept()?;
    let (fd, _name) = berth_sys::fdpass::recv_fd(conn.as_fd()).map_err(std::io::Error::from)?;
    Ok(fd)
}
