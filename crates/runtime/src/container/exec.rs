//! `exec`: run a new process inside a running container: the process comes from `--process`
//! JSON or from args + flags over the container's own `process` (runc's rules); the child joins
//! every namespace of the init that differs from ours and the container's cgroup.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::SigmaskHow;
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, Process};

use super::create::write_pid_file;
use super::run::wait_forwarding;
use super::Container;
use crate::error::Error;
use crate::init::exec::{ExecArgs, NsFile};
use crate::init::{Channel, Message};

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// container id
    pub id: String,
    /// `--process` file
    pub process: Option<PathBuf>,
    /// command and args
    pub args: Vec<String>,
    /// `--tty`
    pub tty: bool,
    /// `--console-socket`
    pub console_socket: Option<PathBuf>,
    /// `--detach`
    pub detach: bool,
    /// `--env`
    pub env: Vec<String>,
    /// `--cwd`
    pub cwd: Option<PathBuf>,
    /// `--user uid[:gid]`
    pub user: Option<String>,
    /// `--additional-gids`
    pub additional_gids: Vec<u32>,
    /// `--cap`
    pub caps: Vec<String>,
    /// `--no-new-privs`
    pub no_new_privs: bool,
    /// `--pid-file`
    pub pid_file: Option<PathBuf>,
    /// `--process-label`
    pub process_label: Option<String>,
    /// `--apparmor`
    pub apparmor: Option<String>,
    /// `--preserve-fds`
    pub preserve_fds: u32,
    /// `--ignore-paused`
    pub ignore_paused: bool,
}

/// Builds the process to run (runc's `getProcess`).
pub fn build_process(base: Option<&Process>, o: &ExecOptions) -> Result<Process, Error> {
    if let Some(p) = &o.process {
        let data = std::fs::read(p).map_err(Error::io("read process file", p))?;
        return serde_json::from_slice(&data).map_err(|source| Error::ConfigParse {
            path: p.clone(),
            source,
        });
    }
    if o.args.is_empty() {
        return Err(Error::Usage("exec needs a command (or --process)".into()));
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if !o.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(o.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::Usage(format!("--user {u:?}: want uid[:gid] as numbers")))
        };
        let user = p.user_mut();
        user.set_uid(num(uid)?);
        if let Some(g) = gid {
            user.set_gid(num(g)?);
        }
    }
    if !o.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(o.additional_gids.clone()));
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add: Vec<Capability> = o
            .caps
            .iter()
            .map(|c| {
                let name = if c.starts_with("CAP_") {
                    c.clone()
                } else {
                    format!("CAP_{c}")
                };
                serde_json::from_value(serde_json::Value::String(name))
                    .map_err(|_| Error::Usage(format!("unknown capability {c:?}")))
            })
            .collect::<Result<_, _>>()?;
        let ext = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.extend(add.iter().copied());
            Some(s)
        };
        caps.set_bounding(ext(caps.bounding()));
        caps.set_effective(ext(caps.effective()));
        caps.set_permitted(ext(caps.permitted()));
        caps.set_ambient(ext(caps.ambient()));
        p.set_capabilities(Some(caps));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &o.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &o.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

const NS_ORDER: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
];

fn same_ns(pid: i32, name: &str) -> bool {
    let a = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let b = std::fs::metadata(format!("/proc/self/ns/{name}"));
    matches!((a, b), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

/// Runs the exec; returns the exit code (0 when detached).
pub fn exec(root: &Path, o: &ExecOptions) -> Result<i32, Error> {
    let c = Container::load(root, &o.id)?;
    c.check("exec in", c.status.can_exec(o.ignore_paused))?;
    let spec = c.spec()?;
    let process = build_process(spec.process().as_ref(), o)?;
    let pid = c.state.pid;
    let mut nss = Vec::new();
    for (name, flag) in NS_ORDER {
        if same_ns(pid, name) {
            continue;
        }
        let path = format!("/proc/{pid}/ns/{name}");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open namespace", path)(e)),
        };
        if flag == CloneFlags::CLONE_NEWPID {
            // applies to our children only
            setns(&file, flag).map_err(Error::sys("join container pid namespace"))?;
        } else {
            nss.push(NsFile { flag, name, file });
        }
    }
    if !same_ns(pid, "time") {
        if let Ok(f) = File::open(format!("/proc/{pid}/ns/time")) {
            setns(&f, CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
                .map_err(Error::sys("join container time namespace"))?;
        }
    }
    // Compiled (or found in the cache `create` filled) before forking, as `create` does: the
    // child then only loads it. Compiling in the child cost ~13 ms of every exec.
    let seccomp = super::seccomp_program(spec.linux().as_ref(), root)?;
    let console: Option<OwnedFd> = match &o.console_socket {
        Some(p) => Some(
            UnixStream::connect(p)
                .map_err(Error::io("connect console socket", p))?
                .into(),
        ),
        None => None,
    };
    let set = super::run::forwarded_signals();
    if !o.detach {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(Error::sys("block signals"))?;
    }
    let (parent_chan, child_chan) = Channel::pair()?;
    // execCPUAffinity.initial: the child inherits it from us, before it is in the container's
    // cgroups (we step into the v1 ones just below; `final` is applied by the child after).
    if let Some(aff) = process.exec_cpu_affinity() {
        crate::process::set_exec_cpu_affinity(aff, crate::process::AffinityStage::Initial)
            .map_err(|e| Error::ConfigInvalid(format!("process.execCPUAffinity: {e}")))?;
    }
    let cgroup = c.cgroup()?;
    let entered = cgroup.enter().map_err(Error::Cgroup)?;
    let (forked, cloned_into) = berth_sys::process::fork_into_cgroup(0, entered.cgroup_fd())
        .map_err(Error::sys("fork exec process"))?;
    let child = match forked {
        berth_sys::process::Forked::Child => {
            drop(parent_chan);
            crate::init::exec::run(ExecArgs {
                process: &process,
                linux: spec.linux().as_ref(),
                namespaces: &nss,
                chan: &child_chan,
                console: console.as_ref(),
                preserve_fds: o.preserve_fds,
                seccomp: seccomp.clone(),
            })
        }
        berth_sys::process::Forked::Parent(p) => p,
    };
    drop(child_chan);
    drop(console);
    let fail = |e: Error| {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        e
    };
    entered
        .finish(child, cloned_into)
        .map_err(|e| fail(Error::Cgroup(e)))?;
    parent_chan
        .send(&Message::Go {
            pid: child.as_raw(),
        })
        .map_err(|e| fail(e.into()))?;
    match parent_chan.recv_or_eof().map_err(|e| fail(e.into()))? {
        None => {}
        Some(Message::Error(m)) => {
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(Error::Init(m));
        }
        Some(other) => return Err(fail(Error::Init(format!("unexpected message {other:?}")))),
    }
    if let Some(p) = &o.pid_file {
        write_pid_file(p, child.as_raw())?;
    }
    if o.detach {
        return Ok(0);
    }
    Ok(wait_forwarding(Pid::from_raw(child.as_raw()), &set))
}
