//! The six OCI hook kinds: each hook is spawned in order with the container state JSON on its
//! stdin (status set for the kind, as crun does), its `timeout` enforced by killing it, and a
//! failure reported with the tail of what it wrote.
//!
//! Runs from a single-threaded process (the container's init, for `createContainer` and
//! `startContainer`): `std::process::Command` forks and execs, and the hook's pipes are serviced
//! with `poll` on this thread — no helper threads. The hook inherits no descriptor but its stdio
//! ([`berth_sys::attr::spawn_without_inherited_fds`]). Where `path` resolves (runtime or
//! container namespace) is decided by who calls: this module just spawns.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::{ContainerState, Hook, Hooks, State};

/// How much of a failed hook's stderr (or stdout) the error message carries.
const OUTPUT_TAIL: usize = 1024;
/// How often a hook that exited while something it spawned holds its pipes is re-checked.
const EXIT_TICK: Duration = Duration::from_millis(10);

/// The hook kinds of config.json `hooks`, in lifecycle order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// Deprecated: in `create`, runtime namespace, after the container namespaces exist.
    Prestart,
    /// In `create`, runtime namespace, before `pivot_root`.
    CreateRuntime,
    /// In `create`, container namespace, before `pivot_root`.
    CreateContainer,
    /// In `start`, container namespace, right before the user process is executed.
    StartContainer,
    /// After `start` has started the user process, runtime namespace.
    Poststart,
    /// At `delete`, runtime namespace; every hook runs even when one fails.
    Poststop,
}

impl HookKind {
    /// The config.json name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// The `status` the state on the hook's stdin carries (runtime-spec runtime.md lifecycle;
    /// runtime-tools' hooks_stdin checks prestart `created`, poststart `running`, and poststop
    /// non-empty). `startContainer` runs before the user process exists: still `created`.
    pub fn status(self) -> ContainerState {
        match self {
            HookKind::CreateRuntime | HookKind::CreateContainer => ContainerState::Creating,
            HookKind::Prestart | HookKind::StartContainer => ContainerState::Created,
            HookKind::Poststart => ContainerState::Running,
            HookKind::Poststop => ContainerState::Stopped,
        }
    }

    /// The hooks of this kind in `hooks` (empty when absent).
    #[allow(deprecated)] // prestart is deprecated in the spec but still honoured, like runc/crun
    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which hook: its path, kind and position, as every error names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookId {
    pub path: PathBuf,
    pub kind: HookKind,
    pub index: usize,
}

impl std::fmt::Display for HookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hook {:?} ({} #{})", self.path, self.kind, self.index)
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("encode the state for {kind} hooks")]
    State {
        kind: HookKind,
        #[source]
        source: serde_json::Error,
    },
    #[error("{hook}: timeout must be greater than zero, got {timeout}")]
    InvalidTimeout { hook: HookId, timeout: i64 },
    #[error("{hook}: start")]
    Spawn {
        hook: HookId,
        #[source]
        source: std::io::Error,
    },
    #[error("{hook}: {what}")]
    Io {
        hook: HookId,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{hook} timed out after {secs}s")]
    Timeout { hook: HookId, secs: i64 },
    #[error("{hook} {status}{}", output_suffix(.output))]
    Failed {
        hook: HookId,
        status: String,
        output: String,
    },
}

fn output_suffix(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

/// Runs `hooks` in order, stopping at the first failure. `state` is the container state; its
/// `status` is set to [`HookKind::status`] before it is written to each hook's stdin.
pub fn run(kind: HookKind, hooks: &[Hook], state: &State) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let state = state_for(kind, state)?;
    for (index, hook) in hooks.iter().enumerate() {
        run_one(
            HookId {
                path: hook.path().clone(),
                kind,
                index,
            },
            hook,
            &state,
        )?;
    }
    Ok(())
}

/// Runs every hook even when some fail (what `poststop` needs) and returns all the failures.
pub fn run_all(kind: HookKind, hooks: &[Hook], state: &State) -> Vec<HookError> {
    if hooks.is_empty() {
        return Vec::new();
    }
    let state = match state_for(kind, state) {
        Ok(state) => state,
        Err(e) => return vec![e],
    };
    hooks
        .iter()
        .enumerate()
        .filter_map(|(index, hook)| {
            run_one(
                HookId {
                    path: hook.path().clone(),
                    kind,
                    index,
                },
                hook,
                &state,
            )
            .err()
        })
        .collect()
}

/// [`run_all`] for `poststop` (the name docs/ARCHITECTURE.md uses).
pub fn run_all_poststop(hooks: &[Hook], state: &State) -> Vec<HookError> {
    run_all(HookKind::Poststop, hooks, state)
}

fn state_for(kind: HookKind, state: &State) -> Result<Vec<u8>, HookError> {
    let mut state = state.clone();
    state.set_status(kind.status());
    serde_json::to_vec(&state).map_err(|source| HookError::State { kind, source })
}

fn command(hook: &Hook) -> Command {
    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    // With `env` the hook's environment is exactly that list; without it the hook inherits
    // the runtime's environment (runc's behaviour, which hooks such as GPU/network plugins
    // written without `env` rely on for PATH).
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for entry in env {
            match entry.split_once('=') {
                Some((k, v)) => cmd.env(k, v),
                None => cmd.env(entry, ""),
            };
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    berth_sys::attr::spawn_without_inherited_fds(&mut cmd);
    // Its own process group, so a timeout kills what the hook started too.
    cmd.process_group(0);
    cmd
}

fn run_one(id: HookId, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => {
            return Err(HookError::InvalidTimeout {
                hook: id,
                timeout: t,
            })
        }
        Some(t) => Some(t),
        None => None,
    };
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
    let mut child = command(hook).spawn().map_err(|source| HookError::Spawn {
        hook: id.clone(),
        source,
    })?;
    let outcome = pump(&mut child, state, deadline);
    let io = |what, source| HookError::Io {
        hook: id.clone(),
        what,
        source,
    };
    let (status, out, err) = match outcome {
        Ok(Some(done)) => done,
        Ok(None) => {
            // Timed out: kill it with everything it started, and reap it (no zombie left).
            kill_group(&child);
            let _ = child.wait();
            return Err(HookError::Timeout {
                hook: id,
                secs: timeout.unwrap_or_default(),
            });
        }
        Err((what, source)) => {
            kill_group(&child);
            let _ = child.wait();
            return Err(io(what, source));
        }
    };
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => status.to_string(),
    };
    let output = if err.iter().any(|b| !b.is_ascii_whitespace()) {
        err
    } else {
        out
    };
    Err(HookError::Failed {
        hook: id,
        status,
        output: tail(&output),
    })
}

/// SIGKILL to the hook's process group (its pid: see `process_group(0)`).
fn kill_group(child: &Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().rev().nth(OUTPUT_TAIL) {
        Some((cut, _)) => format!("...{}", &text[cut..]),
        None => text.to_string(),
    }
}

type Pumped = (ExitStatus, Vec<u8>, Vec<u8>);
type PumpError = (&'static str, std::io::Error);

fn set_nonblocking<F: AsFd>(fd: F) -> Result<(), PumpError> {
    let err = |e: nix::Error| ("set hook pipes non-blocking", std::io::Error::from(e));
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(err)?;
    fcntl(
        fd.as_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(err)?;
    Ok(())
}

fn poll_timeout(wait: Option<Duration>) -> PollTimeout {
    match wait {
        // Round up so we never spin with a 0 ms timeout before the deadline.
        Some(w) => {
            PollTimeout::try_from(w.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
        }
        None => PollTimeout::NONE,
    }
}

/// Feeds `state` to the child's stdin and collects its stdout/stderr until it exits, on this
/// thread with `poll`. `Ok(None)` when `deadline` passed first.
///
/// The usual hook ends with EOF on both pipes right when it exits, which wakes us at once. A
/// hook that leaves a background process holding the pipes is noticed by re-checking its exit
/// every [`EXIT_TICK`] while it runs.
fn pump(
    child: &mut Child,
    state: &[u8],
    deadline: Option<Instant>,
) -> Result<Option<Pumped>, PumpError> {
    let mut stdin: Option<ChildStdin> = child.stdin.take().filter(|_| !state.is_empty());
    let mut stdout: Option<ChildStdout> = child.stdout.take();
    let mut stderr: Option<ChildStderr> = child.stderr.take();
    if let Some(p) = &stdin {
        set_nonblocking(p)?;
    }
    if let Some(p) = &stdout {
        set_nonblocking(p)?;
    }
    if let Some(p) = &stderr {
        set_nonblocking(p)?;
    }
    let (mut written, mut out, mut err) = (0usize, Vec::new(), Vec::new());
    let mut backoff = Duration::from_micros(200);
    loop {
        let exited = child.try_wait().map_err(|e| ("wait", e))?;
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if stdout.is_none() && stderr.is_none() {
            // Output closed: the hook is exiting (or closed it on purpose). Wait for the exit.
            match (exited, remaining) {
                (Some(status), _) => return Ok(Some((status, out, err))),
                (None, None) => {
                    let status = child.wait().map_err(|e| ("wait", e))?;
                    return Ok(Some((status, out, err)));
                }
                (None, Some(r)) if r.is_zero() => return Ok(None),
                (None, Some(r)) => {
                    std::thread::sleep(r.min(backoff));
                    backoff = (backoff * 2).min(EXIT_TICK);
                    continue;
                }
            }
        }
        if remaining.is_some_and(|r| r.is_zero()) {
            return Ok(None);
        }
        // Once it exited, only take what is already buffered (timeout 0), then stop listening.
        let wait = if exited.is_some() {
            Some(Duration::ZERO)
        } else {
            Some(remaining.map_or(EXIT_TICK, |r| r.min(EXIT_TICK)))
        };
        let mut ready = [false; 3];
        {
            let slots = [
                stdin.as_ref().map(|p| (p.as_fd(), PollFlags::POLLOUT)),
                stdout.as_ref().map(|p| (p.as_fd(), PollFlags::POLLIN)),
                stderr.as_ref().map(|p| (p.as_fd(), PollFlags::POLLIN)),
            ];
            let mut fds = Vec::with_capacity(3);
            let mut which = Vec::with_capacity(3);
            for (i, (fd, flags)) in slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| (i, s)))
            {
                fds.push(PollFd::new(fd, flags));
                which.push(i);
            }
            let timeout = if wait == Some(Duration::ZERO) {
                PollTimeout::ZERO
            } else {
                poll_timeout(wait)
            };
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(("poll hook pipes", e.into())),
            }
            for (pfd, i) in fds.iter().zip(which) {
                ready[i] = pfd.revents().is_some_and(|r| !r.is_empty());
            }
        }
        if ready[0] {
            if let Some(pipe) = stdin.as_mut() {
                match pipe.write(&state[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    // The hook doesn't read its stdin (or exited): fine, as in runc.
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => written = state.len(),
                    Err(e) => return Err(("write state to stdin", e)),
                }
                if written >= state.len() {
                    stdin = None; // close: the hook sees EOF
                }
            }
        }
        if ready[1] && drain(&mut stdout, &mut out).map_err(|e| ("read stdout", e))? {
            stdout = None;
        }
        if ready[2] && drain(&mut stderr, &mut err).map_err(|e| ("read stderr", e))? {
            stderr = None;
        }
        if exited.is_some() {
            stdin = None;
            stdout = None;
            stderr = None;
        }
    }
}

/// Reads what is available; `Ok(true)` at EOF. Keeps only the last bytes of a chatty hook.
fn drain<R: Read>(pipe: &mut Option<R>, into: &mut Vec<u8>) -> std::io::Result<bool> {
    let Some(reader) = pipe.as_mut() else {
        return Ok(true);
    };
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                if into.len() > 16 * OUTPUT_TAIL {
                    into.drain(..into.len() - 4 * OUTPUT_TAIL);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_lifecycle() {
        assert_eq!(HookKind::CreateRuntime.status(), ContainerState::Creating);
        assert_eq!(HookKind::Prestart.status(), ContainerState::Created);
        assert_eq!(HookKind::Poststart.status(), ContainerState::Running);
        assert_eq!(HookKind::Poststop.status(), ContainerState::Stopped);
    }

    #[test]
    fn state_status_is_overridden_and_fields_kept() {
        let state: State = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","id":"c1","status":"created","pid":7,"bundle":"/b"}"#,
        )
        .expect("state");
        let out = state_for(HookKind::Poststart, &state).expect("encode");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["status"], "running");
        assert_eq!(v["id"], "c1");
        assert_eq!(v["pid"], 7);
        assert_eq!(v["bundle"], "/b");
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = "x".repeat(5000) + "END";
        let t = tail(long.as_bytes());
        assert!(t.starts_with("...") && t.ends_with("END") && t.len() <= OUTPUT_TAIL + 4);
    }
}
