//! `create`: validate id and config, make the state dir, the exec fifo and the cgroup, clone the
//! init into its namespaces, drive it to `Ready`, write state.json and the pid file. On any
//! failure nothing is left behind (state dir, cgroup, process): see [`Cleanup`].

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{load_spec, validate_id};
use crate::error::Error;
use crate::hooks::{self, HookKind};
use crate::init::container::InitArgs;
use crate::init::namespaces::{self, ParentNs, Plan};
use crate::init::{error_chain, Channel, ChannelError, Message};
use crate::state::{self, State, Status, EXEC_FIFO};

/// Options of `create` (and of the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// container id
    pub id: String,
    /// bundle directory
    pub bundle: PathBuf,
    /// `--pid-file`
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`
    pub console_socket: Option<PathBuf>,
    /// `--no-pivot`
    pub no_pivot: bool,
    /// `--no-new-keyring`: don't give the container its own session keyring
    pub no_new_keyring: bool,
    /// `--preserve-fds`
    pub preserve_fds: u32,
    /// `--systemd-cgroup`
    pub systemd_cgroup: bool,
    /// set by a foreground `run`: the runtime waits for the container and deletes it, so
    /// state.json needn't survive a power loss (no fsync)
    pub foreground: bool,
}

/// A container left in `created` by [`create`].
#[derive(Debug)]
pub struct Created {
    /// `<root>/<id>`
    pub dir: PathBuf,
    /// state as written
    pub state: State,
    /// the parsed config.json
    pub spec: Spec,
    /// non-fatal problems the init met (shown with `--debug`)
    pub warnings: Vec<String>,
}

impl Created {
    /// The container as the other verbs see it (status `created`).
    pub fn into_container(self) -> (super::Container, Spec) {
        let c = super::Container {
            dir: self.dir,
            state: self.state,
            status: Status::Created,
        };
        (c, self.spec)
    }
}

/// Undoes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: Option<PathBuf>,
    cgroup: Option<&'a dyn berth_cgroups::Manager>,
    child: Option<Pid>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Cleanup<'_> {
    fn disarm(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
    }
}

/// `ociVersion` must be a SemVer 2.0 version (`1.0.2`, `1.2.0-dev`, `1.1.0+build`) of major 1,
/// the only major this runtime implements.
fn check_oci_version(v: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::ConfigInvalid(format!("ociVersion {v:?} {why}"));
    let core = v.split_once('+').map_or(v, |(c, _)| c);
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| number(p)) {
        return Err(bad("is not a semantic version (MAJOR.MINOR.PATCH)"));
    }
    let ident_ok = |s: &str| {
        s.split('.')
            .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if pre.is_some_and(|p| !ident_ok(p)) || v.split_once('+').is_some_and(|(_, b)| !ident_ok(b)) {
        return Err(bad("is not a semantic version (bad pre-release or build)"));
    }
    if parts[0] != "1" {
        return Err(bad(
            "has an unsupported major version (this runtime implements 1.x)",
        ));
    }
    Ok(())
}

/// Checks what runc checks before creating anything; returns the absolute rootfs.
pub fn validate_spec(spec: &Spec, bundle: &Path) -> Result<PathBuf, Error> {
    let invalid = |m: &str| Error::ConfigInvalid(m.to_owned());
    check_oci_version(spec.version())?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process is missing"))?;
    match process.args().as_deref() {
        Some([first, ..]) if !first.is_empty() => {}
        _ => {
            return Err(invalid(
                "process.args must have at least one entry (args[0])",
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(Error::ConfigInvalid(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root is missing"))?;
    let rootfs = bundle.join(root.path());
    let meta = std::fs::metadata(&rootfs).map_err(|source| Error::Io {
        what: "root.path",
        path: rootfs.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(Error::ConfigInvalid(format!(
            "root.path {} is not a directory",
            rootfs.display()
        )));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux is missing"))?;
    let has_mnt = linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount);
    if !has_mnt {
        return Err(invalid("linux.namespaces must include a mount namespace"));
    }
    Ok(rootfs)
}

/// Creates container `opts.id` under `root`. The init is a child of the calling process.
pub fn create(root: &Path, opts: &CreateOptions) -> Result<Created, Error> {
    let (bundle, spec) = read_bundle(opts)?;
    create_from(root, opts, bundle, spec)
}

/// Validates the id, then reads `opts.bundle` (canonical path) and its config.json.
pub fn read_bundle(opts: &CreateOptions) -> Result<(PathBuf, Spec), Error> {
    validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(Error::io("bundle", &opts.bundle))?;
    let spec = load_spec(&bundle)?;
    Ok((bundle, spec))
}

/// [`create`] with the bundle already read by [`read_bundle`].
pub fn create_from(
    root: &Path,
    opts: &CreateOptions,
    bundle: PathBuf,
    spec: Spec,
) -> Result<Created, Error> {
    let rootfs = validate_spec(&spec, &bundle)?;
    let plan = Plan::from_spec(&spec)?;
    let linux = spec.linux().as_ref().expect("validate_spec checked linux");

    let cgroup_box = berth_cgroups::create_manager(
        linux.cgroups_path().as_deref(),
        &opts.id,
        opts.systemd_cgroup,
    )
    .map_err(Error::Cgroup)?;
    let cgroup: &dyn berth_cgroups::Manager = cgroup_box.as_ref();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(Error::io("create state root", root))?;
    let dir = root.join(&opts.id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(opts.id.clone()))
        }
        Err(e) => return Err(Error::io("create state dir", &dir)(e)),
    }
    let mut cleanup = Cleanup {
        dir: Some(dir.clone()),
        cgroup: None,
        child: None,
    };

    let fifo = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .map_err(Error::sys("create exec fifo"))?;
    // mkfifo is subject to umask; the init may run as any user.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(Error::io("chmod exec fifo", &fifo))?;

    cgroup.create().map_err(Error::Cgroup)?;
    cleanup.cgroup = Some(cgroup);

    let console: Option<OwnedFd> = match &opts.console_socket {
        Some(p) => Some(
            UnixStream::connect(p)
                .map_err(Error::io("connect console socket", p))?
                .into(),
        ),
        None => None,
    };

    let mut st = State {
        oci_version: spec.version().clone(),
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: state::rfc3339(std::time::SystemTime::now()),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup_path: linux.cgroups_path().clone(),
        systemd_cgroup: opts.systemd_cgroup,
    };

    // Compiled here (cached under the state root) so the init only loads it.
    let mut seccomp = super::seccomp_program(Some(linux), root)?;
    // With noNewPrivileges too: then the init loads a notify filter during `create` (see
    // crate::process), while this process is there to forward the fd.
    if let (Some(program), Some(cfg)) = (&seccomp, linux.seccomp()) {
        if program.uses_notify() && cfg.listener_path().is_none() {
            return Err(Error::ConfigInvalid(
                "linux.seccomp uses SCMP_ACT_NOTIFY but has no listenerPath".into(),
            ));
        }
    }
    let (parent_chan, child_chan) = Channel::pair()?;
    let parent_ns = ParentNs::enter(&plan, &spec)?;
    // The caller steps into the container's v1 cgroups and the child is cloned straight into
    // its cgroup2 dir: no cgroup.procs write (the costliest step of a create).
    let entered = match cgroup.enter() {
        Ok(e) => e,
        Err(e) => {
            let _ = parent_ns.restore();
            return Err(Error::Cgroup(e));
        }
    };
    let forked = berth_sys::process::fork_into_cgroup(plan.clone_flags, entered.cgroup_fd());
    let pid = match forked {
        Ok((berth_sys::process::Forked::Child, _)) => {
            drop(parent_chan);
            crate::init::container::run(InitArgs {
                spec: &spec,
                plan: &plan,
                rootfs: &rootfs,
                bundle: &bundle,
                fifo: &fifo,
                chan: &child_chan,
                console: console.as_ref(),
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                id: &opts.id,
                preserve_fds: opts.preserve_fds,
                hook_state: &st,
                seccomp: seccomp.take(),
            })
        }
        Ok((berth_sys::process::Forked::Parent(pid), cloned_into)) => {
            cleanup.child = Some(pid);
            if let Err(e) = entered.finish(pid, cloned_into) {
                let _ = parent_ns.restore();
                return Err(Error::Cgroup(e));
            }
            pid
        }
        Err(e) => {
            drop(entered);
            let _ = parent_ns.restore();
            return Err(Error::Sys {
                what: "clone container init",
                source: e,
            });
        }
    };
    cleanup.child = Some(pid);
    parent_ns.restore()?;
    drop(child_chan);
    drop(console);

    if let Some(res) = linux.resources() {
        cgroup.apply(res).map_err(Error::Cgroup)?;
    }
    if plan.new_user {
        namespaces::write_id_maps(pid, &spec)?;
    }
    st.pid = pid.as_raw();
    st.pid_start_time = state::pid_start_time(pid.as_raw()).unwrap_or(0);
    parent_chan.send(&Message::Go { pid: pid.as_raw() })?;
    let warnings;
    loop {
        match parent_chan.recv_with_fd() {
            Ok((Message::Ready { warnings: w }, _)) => {
                warnings = w;
                break;
            }
            Ok((Message::SeccompNotify, Some(fd))) => {
                let seccomp = linux
                    .seccomp()
                    .as_ref()
                    .expect("notify fd only with linux.seccomp");
                let listener = seccomp
                    .listener_path()
                    .as_deref()
                    .expect("checked before clone");
                crate::seccomp::send_notify_fd(
                    listener,
                    fd.as_fd(),
                    pid.as_raw(),
                    &st.to_hook_state(Status::Creating),
                    seccomp.listener_metadata().as_deref(),
                )
                .map_err(|e| Error::Init(format!("seccomp notify: {}", error_chain(&e))))?;
            }
            Ok((Message::RunRuntimeHooks, _)) => {
                run_runtime_hooks(&spec, &st)?;
                parent_chan.send(&Message::HooksDone)?;
            }
            Ok((Message::Error(msg), _)) => return Err(Error::Init(msg)),
            Ok((other, _)) => return Err(Error::Init(format!("unexpected message {other:?}"))),
            Err(ChannelError::Closed) => {
                let why = match waitpid(pid, None) {
                    Ok(ws) => format!("init exited before it was ready: {ws:?}"),
                    Err(e) => format!("init exited before it was ready: {e}"),
                };
                cleanup.child = None;
                return Err(Error::Init(why));
            }
            Err(e) => return Err(e.into()),
        }
    }
    st.status = Status::Created;
    st.save_with(&dir, !opts.foreground)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid.as_raw())?;
    }
    cleanup.disarm();
    Ok(Created {
        dir,
        state: st,
        spec,
        warnings,
    })
}

/// prestart (deprecated, still honoured) then createRuntime, in the runtime's namespaces.
fn run_runtime_hooks(spec: &Spec, st: &State) -> Result<(), Error> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let hs = st.to_hook_state(Status::Creating);
    #[allow(deprecated)]
    if let Some(v) = h.prestart() {
        hooks::run(HookKind::Prestart, v, &hs).map_err(|e| Error::Hook {
            kind: "prestart",
            msg: error_chain(&e),
        })?;
    }
    if let Some(v) = h.create_runtime() {
        hooks::run(HookKind::CreateRuntime, v, &hs).map_err(|e| Error::Hook {
            kind: "createRuntime",
            msg: error_chain(&e),
        })?;
    }
    Ok(())
}

/// Writes the pid file atomically (temp + rename), like runc.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(Error::io("getcwd", "."))?
            .join(path)
    };
    state::write_replace(&abs, pid.to_string().as_bytes(), false)
        .map_err(Error::io("write pid file", abs))
}

#[cfg(test)]
mod tests {
    use super::check_oci_version;

    #[test]
    fn oci_version_must_be_semver_of_major_1() {
        for ok in [
            "1.0.0",
            "1.0.2-dev",
            "1.2.0",
            "1.1.0-rc.1",
            "1.0.2+git.abc",
            "1.10.20",
        ] {
            assert!(check_oci_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "invalid", "", "1", "1.0", "1.0.0.0", "01.0.0", "2.0.0", "0.9.0", "1.0.x", "1.0.0-",
        ] {
            let err = check_oci_version(bad).expect_err(bad).to_string();
            assert!(err.contains("ociVersion"), "{bad}: {err}");
        }
    }
}
