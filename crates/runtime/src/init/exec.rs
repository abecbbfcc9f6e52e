//! The `exec` child: forked by the runtime after it entered the container's pid (and time)
//! namespace for its children; joins the remaining namespaces of the container's init (user
//! first, mount last), sets up the terminal, cwd and process attributes and execs. Success is
//! seen by the parent as EOF on the close-on-exec channel.

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use oci_spec::runtime::Process;

use super::command::Command;
use super::container::{enter_cwd, seal_fds, InitError};
use super::{error_chain, tty, Channel, Message};

/// A namespace of the container's init to join.
#[derive(Debug)]
pub struct NsFile {
    /// `CLONE_NEW*` type
    pub flag: CloneFlags,
    /// name under /proc/<pid>/ns
    pub name: &'static str,
    /// the open file
    pub file: File,
}

/// What the exec child needs.
#[derive(Debug)]
pub struct ExecArgs<'a> {
    /// the process to run
    pub process: &'a Process,
    /// the container's `linux` section (seccomp, personality)
    pub linux: Option<&'a oci_spec::runtime::Linux>,
    /// namespaces to join, ordered (user first, mnt last)
    pub namespaces: &'a [NsFile],
    /// child end of the channel
    pub chan: &'a Channel,
    /// connected console socket
    pub console: Option<&'a OwnedFd>,
    /// `--preserve-fds`
    pub preserve_fds: u32,
    /// `linux.seccomp` compiled by the parent (None: none, or compiled here)
    pub seccomp: Option<crate::seccomp::Program>,
}

/// Entry of the exec child: never returns.
pub fn run(a: ExecArgs<'_>) -> ! {
    let err = match exec(&a) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = a.chan.send(&Message::Error(error_chain(&err)));
    berth_sys::process::exit_now(127)
}

fn exec(a: &ExecArgs<'_>) -> Result<Infallible, InitError> {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    match a.chan.recv()? {
        Message::Go { .. } => {}
        other => return Err(InitError::Protocol(format!("{other:?}"))),
    }
    for ns in a.namespaces {
        setns(ns.file.as_fd(), ns.flag).map_err(|source| InitError::Sys {
            what: format!("join {} namespace", ns.name),
            source,
        })?;
        if ns.flag == CloneFlags::CLONE_NEWUSER {
            super::namespaces::become_root_in_userns();
        }
    }
    if a.process.terminal().unwrap_or(false) {
        let console = a.console.ok_or(InitError::NoConsole)?;
        let size = a
            .process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup_console(console, size, false)?;
    }
    enter_cwd(a.process.cwd())?;
    let env = crate::process::exec_env(a.process, std::path::Path::new("/"))?;
    let args = a.process.args().clone().unwrap_or_default();
    // In every cgroup of the container by now (cloned into them): the final affinity, set
    // before seccomp and capabilities are applied.
    if let Some(aff) = a.process.exec_cpu_affinity() {
        crate::process::set_exec_cpu_affinity(aff, crate::process::AffinityStage::Final)?;
    }
    let prepared = crate::process::apply_process(a.process, a.linux, a.seccomp.clone())?;
    let cmd = Command::resolve(&args, &env)?;
    drop(prepared.finalize()?);
    seal_fds(a.preserve_fds)?;
    Err(cmd.exec().into())
}
