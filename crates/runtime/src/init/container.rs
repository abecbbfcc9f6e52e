//! The container's init: runs in the cloned child (already in its new namespaces), finishes the
//! namespaces, builds the root filesystem, applies the process attributes, reports `Ready`, then
//! blocks on the exec fifo until `start` and execs the user process.
//!
//! Order (see docs/ARCHITECTURE.md): wait `Go` -> join/unshare namespaces -> setsid -> hostname
//! -> `rootfs::prepare` -> prestart/createRuntime hooks (in the parent) -> createContainer hooks
//! -> open the exec fifo O_PATH -> `rootfs::pivot` -> console -> `rootfs::finalize` -> cwd ->
//! process attributes -> resolve the command -> `Ready` -> exec fifo -> startContainer hooks ->
//! CLOEXEC every fd but stdio and the preserved ones -> execve.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use super::command::{Command, CommandError};
use super::namespaces::{self, NamespaceError, Plan};
use super::tty::{self, TtyError};
use super::{error_chain, Channel, ChannelError, Message};
use crate::hooks::{self, HookError, HookKind};
use crate::state::State;

/// Everything the child needs; it lives in the child's copy of the parent's memory.
#[derive(Debug)]
pub struct InitArgs<'a> {
    /// parsed config.json
    pub spec: &'a Spec,
    /// namespace plan (open ns files)
    pub plan: &'a Plan,
    /// absolute rootfs
    pub rootfs: &'a Path,
    /// absolute bundle
    pub bundle: &'a Path,
    /// `<root>/<id>/exec.fifo`
    pub fifo: &'a Path,
    /// child end of the channel
    pub chan: &'a Channel,
    /// connected console socket (`--console-socket`)
    pub console: Option<&'a OwnedFd>,
    /// `--no-pivot`
    pub no_pivot: bool,
    /// `--no-new-keyring`: keep the runtime's session keyring
    pub no_new_keyring: bool,
    /// container id (names the session keyring)
    pub id: &'a str,
    /// fds 3..3+n survive exec
    pub preserve_fds: u32,
    /// state template for createContainer/startContainer hooks
    pub hook_state: &'a State,
    /// seccomp program compiled by the parent (`linux.seccomp`), loaded by the init
    pub seccomp: Option<crate::seccomp::Program>,
}

/// Errors inside the init (sent to the parent as text).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// channel
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// parent sent something unexpected
    #[error("unexpected message from runtime: {0}")]
    Protocol(String),
    /// namespaces
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// root filesystem
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// process attributes and seccomp
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    /// terminal
    #[error(transparent)]
    Tty(#[from] TtyError),
    /// createContainer / startContainer hooks
    #[error(transparent)]
    Hook(#[from] HookError),
    /// the command
    #[error(transparent)]
    Command(#[from] CommandError),
    /// a syscall
    #[error("{what}: {source}")]
    Sys {
        /// step
        what: String,
        /// cause
        #[source]
        source: nix::Error,
    },
    /// cwd not inside the container
    #[error("process.cwd {0:?} is not inside the container's root")]
    CwdEscape(PathBuf),
    /// terminal without console socket
    #[error("process.terminal is true but no --console-socket was given")]
    NoConsole,
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let what = what.into();
    move |source| InitError::Sys { what, source }
}

/// Entry point of the init child: never returns.
pub fn run(mut args: InitArgs<'_>) -> ! {
    let mut started = None;
    let err = match init(&mut args, &mut started) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = error_chain(&err);
    if let Some(mut fifo) = started {
        // `start` is reading the exec fifo to EOF: the error is its answer.
        let _ = fifo.write_all(msg.as_bytes());
    } else if args.chan.send(&Message::Error(msg.clone())).is_err() {
        // After Ready the parent is gone: stderr is the container's.
        let _ = writeln!(std::io::stderr(), "berth-runtime init: {msg}");
    }
    berth_sys::process::exit_now(127)
}

/// `started` receives the exec fifo's write end once `start` has read the go byte: it stays open
/// (close-on-exec) until `execve`, so `start` sees EOF exactly when the user process runs, or
/// reads the error written to it if the init fails first.
fn init(a: &mut InitArgs<'_>, started: &mut Option<File>) -> Result<Infallible, InitError> {
    let process = a
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| InitError::Protocol("no process".into()))?;
    // `run` blocks signals around the clone; the container starts with a clean mask.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    let mut hook_state = a.hook_state.clone();
    hook_state.pid = match a.chan.recv()? {
        Message::Go { pid } => pid,
        other => return Err(InitError::Protocol(format!("{other:?}"))),
    };
    namespaces::join_and_unshare(a.plan)?;
    if a.plan.new_user {
        namespaces::become_root_in_userns();
    }
    namespaces::unshare_cgroup(a.plan)?;
    nix::unistd::setsid().map_err(sys("setsid"))?;
    if !a.no_new_keyring {
        // Like runc: a private session keyring per container; kernels without keyrings are fine.
        let name = std::ffi::CString::new(format!("_ses.{}", a.id))
            .map_err(|_| InitError::Protocol("id".into()))?;
        match berth_sys::process::join_session_keyring(&name) {
            Ok(_) | Err(nix::errno::Errno::ENOSYS) => {}
            Err(source) => {
                return Err(InitError::Sys {
                    what: "join session keyring".into(),
                    source,
                })
            }
        }
    }
    if a.plan.has_uts {
        if let Some(h) = a.spec.hostname() {
            nix::unistd::sethostname(h).map_err(sys(format!("sethostname {h:?}")))?;
        }
        if let Some(d) = a.spec.domainname() {
            std::fs::write("/proc/sys/kernel/domainname", d).map_err(|e| InitError::Sys {
                what: format!("setdomainname {d:?}"),
                source: errno(e),
            })?;
        }
    }
    crate::rootfs::prepare(a.spec, a.rootfs, a.bundle)?;
    let hooks = a.spec.hooks().as_ref();
    #[allow(deprecated)]
    let runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if runtime_hooks {
        a.chan.send(&Message::RunRuntimeHooks)?;
        match a.chan.recv()? {
            Message::HooksDone => {}
            other => return Err(InitError::Protocol(format!("{other:?}"))),
        }
    }
    if let Some(h) = hooks.and_then(|h| h.create_container().as_ref()) {
        hooks::run(
            HookKind::CreateContainer,
            h,
            &hook_state.to_hook_state(crate::state::Status::Created),
        )?;
    }
    let fifo: OwnedFd = open(a.fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(format!("open exec fifo {}", a.fifo.display())))?;
    crate::rootfs::pivot(a.rootfs, a.no_pivot)?;
    if process.terminal().unwrap_or(false) {
        let console = a.console.ok_or(InitError::NoConsole)?;
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup_console(console, size, true)?;
    }
    crate::rootfs::finalize(a.spec)?;
    enter_cwd(process.cwd())?;
    let env = crate::process::exec_env(process, Path::new("/"))?;
    let args = process.args().clone().unwrap_or_default();
    let mut prepared =
        crate::process::apply_process(process, a.spec.linux().as_ref(), a.seccomp.take())?;
    if let Some(fd) = prepared.notify_fd.take() {
        a.chan
            .send_with_fd(&Message::SeccompNotify, std::os::fd::AsFd::as_fd(&fd))?;
    }
    let cmd = Command::resolve(&args, &env)?;
    a.chan.send(&Message::Ready {
        warnings: std::mem::take(&mut prepared.warnings),
    })?;

    // Blocks until `start` opens the fifo for reading.
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let opened = open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open exec fifo for writing"))?;
    // Above the preserved fds, which `seal_fds` makes inheritable: this one must close at exec.
    let min = 3 + a.preserve_fds as i32;
    let w = if opened.as_raw_fd() < min {
        File::from(
            berth_sys::process::dup_cloexec_at_least(&opened, min)
                .map_err(sys("move exec fifo fd"))?,
        )
    } else {
        File::from(opened)
    };
    let w = started.insert(w);
    w.write_all(b"0").map_err(|e| InitError::Sys {
        what: "write exec fifo".into(),
        source: errno(e),
    })?;
    drop(fifo);
    if let Some(h) = hooks.and_then(|h| h.start_container().as_ref()) {
        hooks::run(
            HookKind::StartContainer,
            h,
            &hook_state.to_hook_state(crate::state::Status::Created),
        )?;
    }
    // A notify fd was already sent to the parent (loaded in apply_process); none comes from here.
    drop(prepared.finalize()?);
    seal_fds(a.preserve_fds)?;
    Err(cmd.exec().into())
}

fn errno(e: std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// chdir to the process cwd (after pivot, so it resolves in the container) and refuse a cwd the
/// kernel reports as unreachable from our root (CVE-2024-21626: a leaked host fd as cwd).
pub fn enter_cwd(cwd: &Path) -> Result<(), InitError> {
    if !cwd.is_absolute() {
        return Err(InitError::CwdEscape(cwd.to_path_buf()));
    }
    nix::unistd::chdir(cwd).map_err(sys(format!("chdir to cwd {}", cwd.display())))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(InitError::CwdEscape(cwd.to_path_buf())),
    }
}

/// Marks every fd above stdio close-on-exec except `3..3+preserve` (which are made inheritable).
pub fn seal_fds(preserve: u32) -> Result<(), InitError> {
    for fd in 3..3 + preserve {
        let _ = berth_sys::process::clear_cloexec(fd as i32);
    }
    berth_sys::process::cloexec_from(3 + preserve).map_err(sys("mark fds close-on-exec"))
}
