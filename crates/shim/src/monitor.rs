//! The monitor's event loop: one epoll, no threads. It copies the container's output to the
//! json-file log and to attach clients, feeds attach clients' stdin to the container, answers
//! control requests, reaps the container's init (the shim is its subreaper), and on exit drains
//! the output, writes exit.json, deletes the container and goes.
//!
//! The container never waits for a client: output goes to the log first, then into each
//! client's bounded buffer; a client whose buffer would grow past [`CLIENT_BUFFER_MAX`] is
//! disconnected (a visible end, not a silent gap in its stream).

use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::logfile::{JsonFile, LineSplitter, Stream};
use crate::protocol;
use crate::runtime::Runtime;
use crate::state::{self, ExitRecord};
use crate::timefmt::rfc3339;

/// Output a client may have queued before it is disconnected.
pub const CLIENT_BUFFER_MAX: usize = 1 << 20;
/// Stdin bytes queued for the container before clients stop being read.
const STDIN_BUFFER_MAX: usize = 64 << 10;
/// How long to keep reading output after the init exited (daemons of a container without a pid
/// namespace may hold the pipes open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to keep flushing clients' buffers before closing them.
const FLUSH_TIMEOUT: Duration = Duration::from_millis(500);
/// Quiet time after which the monitor gives back the code pages its last activity faulted in
/// (see [`berth_sys::mem::drop_clean_exe_pages`]): an idle shim keeps ~0.3 MiB resident
/// instead of its whole binary.
const IDLE_TRIM: Duration = Duration::from_secs(1);
/// Bytes read from an output per read(2).
const READ_SIZE: usize = 16 << 10;
/// Reads per output per wakeup (fairness between stdout, stderr and clients).
const READS_PER_WAKE: usize = 4;

const T_SIGNAL: u64 = 0;
const T_ATTACH: u64 = 1;
const T_CONTROL: u64 = 2;
const T_STDIN: u64 = 3;
const T_OUTPUT: u64 = 4; // + index (2 at most)
const T_CLIENT: u64 = 16; // + slot

/// Errors that stop the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// epoll failed.
    #[error("epoll {op}: {source}")]
    Epoll {
        /// the operation
        op: &'static str,
        /// cause
        #[source]
        source: Errno,
    },
    /// Reading the signalfd failed.
    #[error("read signalfd: {0}")]
    Signal(#[source] Errno),
}

fn ep(op: &'static str) -> impl FnOnce(Errno) -> MonitorError {
    move |source| MonitorError::Epoll { op, source }
}

/// One of the container's output streams.
#[derive(Debug)]
pub struct Output {
    file: File,
    stream: Stream,
    split: LineSplitter,
    open: bool,
}

impl Output {
    /// A non-blocking fd the container writes `stream` to.
    pub fn new(fd: OwnedFd, stream: Stream) -> Output {
        Output {
            file: File::from(fd),
            stream,
            split: LineSplitter::default(),
            open: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Attach,
    Control,
}

#[derive(Debug)]
struct Client {
    sock: UnixStream,
    kind: Kind,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    read_closed: bool,
    interest: EpollFlags,
}

impl Client {
    fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes queued output; `false` when the client is gone.
    fn flush(&mut self) -> bool {
        while self.out_pos < self.out.len() {
            match self.sock.write(&self.out[self.out_pos..]) {
                Ok(0) => return false,
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 64 << 10 {
                self.out = Vec::new();
            }
        }
        true
    }

    /// Sends `head` + `body` without copying when the client keeps up; `false` when the client
    /// is gone or too slow.
    fn send(&mut self, head: &[u8], body: &[u8]) -> bool {
        let total = head.len() + body.len();
        let mut done = 0;
        if self.pending() == 0 {
            loop {
                let r = self
                    .sock
                    .write_vectored(&[IoSlice::new(head), IoSlice::new(body)]);
                match r {
                    Ok(n) => {
                        done = n;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
        }
        if done == total {
            return true;
        }
        if self.pending() + total - done > CLIENT_BUFFER_MAX {
            return false;
        }
        if done < head.len() {
            self.out.extend_from_slice(&head[done..]);
            self.out.extend_from_slice(body);
        } else {
            self.out.extend_from_slice(&body[done - head.len()..]);
        }
        true
    }
}

/// How the init process ended.
#[derive(Debug, Clone, Copy)]
struct Exit {
    code: i32,
    signal: Option<nix::sys::signal::Signal>,
    at: SystemTime,
    seen: Instant,
}

/// The kernel's OOM-kill counter of the container's memory cgroup.
#[derive(Debug)]
pub struct OomCounter {
    file: PathBuf,
    at_start: u64,
}

impl OomCounter {
    /// Finds the memory cgroup of `pid` (v1 `memory.oom_control`, or v2 `memory.events` on a
    /// pure cgroup2 host) and remembers its current count.
    pub fn for_pid(pid: Pid) -> Option<OomCounter> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v1 = text.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == "memory")
                .then(|| format!("/sys/fs/cgroup/memory{path}/memory.oom_control"))
        });
        let file = match v1 {
            Some(f) => PathBuf::from(f),
            None if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
                let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
                PathBuf::from(format!("/sys/fs/cgroup{path}/memory.events"))
            }
            None => return None,
        };
        let at_start = read_oom_kill(&file)?;
        Some(OomCounter { file, at_start })
    }

    fn fired(&self) -> Option<bool> {
        read_oom_kill(&self.file).map(|n| n > self.at_start)
    }
}

fn read_oom_kill(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// What the monitor is given once the container exists.
#[derive(Debug)]
pub struct MonitorInit {
    /// container id
    pub id: String,
    /// the shim's state dir
    pub state_dir: PathBuf,
    /// TTY mode: raw output to clients, resize allowed
    pub tty: bool,
    /// the runtime (for start and delete)
    pub runtime: Runtime,
    /// SIGCHLD (blocked) as a non-blocking signalfd
    pub signals: SignalFd,
    /// attach.sock, non-blocking
    pub attach: UnixListener,
    /// control.sock, non-blocking
    pub control: UnixListener,
    /// output streams, non-blocking
    pub outputs: Vec<Output>,
    /// the container's stdin (pipe write end or pty master), non-blocking
    pub stdin: Option<OwnedFd>,
    /// the pty master, for resize
    pub pty: Option<OwnedFd>,
    /// the json-file log
    pub log: Option<JsonFile>,
    /// the container's init
    pub init: Pid,
    /// when it was started (None: created only)
    pub started_at: Option<SystemTime>,
    /// OOM detection
    pub oom: Option<OomCounter>,
}

/// The running monitor.
#[derive(Debug)]
pub struct Monitor {
    m: MonitorInit,
    epoll: Epoll,
    stdin_pending: Vec<u8>,
    stdin_close: bool,
    stdin_registered: bool,
    clients: Vec<Option<Client>>,
    exit: Option<Exit>,
    outputs_done_at: Option<Instant>,
    diag: PathBuf,
}

impl Monitor {
    /// Registers everything with a new epoll.
    pub fn new(m: MonitorInit) -> Result<Monitor, MonitorError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(ep("create"))?;
        let inn = EpollFlags::EPOLLIN;
        epoll
            .add(&m.signals, EpollEvent::new(inn, T_SIGNAL))
            .map_err(ep("add signalfd"))?;
        epoll
            .add(&m.attach, EpollEvent::new(inn, T_ATTACH))
            .map_err(ep("add attach socket"))?;
        epoll
            .add(&m.control, EpollEvent::new(inn, T_CONTROL))
            .map_err(ep("add control socket"))?;
        for (i, o) in m.outputs.iter().enumerate() {
            epoll
                .add(&o.file, EpollEvent::new(inn, T_OUTPUT + i as u64))
                .map_err(ep("add output"))?;
        }
        let diag = m.state_dir.join(state::SHIM_LOG);
        Ok(Monitor {
            m,
            epoll,
            stdin_pending: Vec::new(),
            stdin_close: false,
            stdin_registered: false,
            clients: Vec::new(),
            exit: None,
            outputs_done_at: None,
            diag,
        })
    }

    /// Runs until the container has exited and is deleted; returns the process exit code.
    pub fn run(mut self) -> i32 {
        if let Err(e) = self.event_loop() {
            self.note(&format!(
                "event loop failed: {e}; waiting for the init without serving output"
            ));
            self.wait_init_blocking();
        }
        self.finish()
    }

    fn event_loop(&mut self) -> Result<(), MonitorError> {
        // a SIGCHLD that arrived before the signalfd was polled is still pending; reap anyway
        self.reap();
        let mut events = [EpollEvent::empty(); 16];
        // false once the resident code was given back, until the next event
        let mut trim_due = true;
        // false after a failed trim (noted once; the shim works the same without it)
        let mut trim_works = true;
        loop {
            let idle_wait = |d: Duration| {
                EpollTimeout::try_from(d.as_millis().min(60_000) as u32)
                    .unwrap_or(EpollTimeout::MAX)
            };
            let (timeout, trim_on_timeout) = match self.next_deadline() {
                Step::Wait(None) if trim_due => (idle_wait(IDLE_TRIM), true),
                Step::Wait(None) => (EpollTimeout::NONE, false),
                Step::Wait(Some(d)) => (
                    idle_wait(
                        d.saturating_duration_since(Instant::now()) + Duration::from_millis(1),
                    ),
                    false,
                ),
                Step::Done => return Ok(()),
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(ep("wait")(e)),
            };
            if n == 0 && trim_on_timeout {
                // quiet: the next wait is entered right after this, with little code in between
                trim_due = false;
                if let Err(e) = berth_sys::mem::drop_clean_exe_pages() {
                    self.note(&format!("dropping resident code pages: {e}"));
                    trim_works = false;
                }
                continue;
            }
            if n > 0 {
                trim_due = trim_works;
            }
            for ev in &events[..n] {
                let (tok, fl) = (ev.data(), ev.events());
                match tok {
                    T_SIGNAL => self.on_signal()?,
                    T_ATTACH => self.accept(Kind::Attach),
                    T_CONTROL => self.accept(Kind::Control),
                    T_STDIN => self.flush_stdin(),
                    t if (T_OUTPUT..T_CLIENT).contains(&t) => {
                        self.on_output((t - T_OUTPUT) as usize)
                    }
                    t => self.on_client((t - T_CLIENT) as usize, fl),
                }
            }
            self.update_interest();
        }
    }

    fn next_deadline(&mut self) -> Step {
        let Some(exit) = self.exit else {
            return Step::Wait(None);
        };
        let now = Instant::now();
        let outputs_open = self.m.outputs.iter().any(|o| o.open);
        if outputs_open && now < exit.seen + DRAIN_TIMEOUT {
            return Step::Wait(Some(exit.seen + DRAIN_TIMEOUT));
        }
        let done_at = *self.outputs_done_at.get_or_insert(now);
        let pending = self.clients.iter().flatten().any(|c| c.pending() > 0);
        if pending && now < done_at + FLUSH_TIMEOUT {
            return Step::Wait(Some(done_at + FLUSH_TIMEOUT));
        }
        Step::Done
    }

    fn on_signal(&mut self) -> Result<(), MonitorError> {
        loop {
            match self.m.signals.read_signal() {
                Ok(Some(_)) => {}
                Ok(None) | Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(MonitorError::Signal(e)),
            }
        }
        self.reap();
        Ok(())
    }

    /// Reaps every exited child (the init and orphans reparented to the subreaper).
    fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(WaitStatus::Exited(pid, code)) if pid == self.m.init => {
                    self.record_exit(code, None)
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == self.m.init => {
                    self.record_exit(128 + sig as i32, Some(sig))
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    self.note(&format!("waitpid: {e}"));
                    break;
                }
            }
        }
    }

    /// Last resort when epoll fails: the exit status still gets recorded.
    fn wait_init_blocking(&mut self) {
        while self.exit.is_none() {
            match waitpid(None::<Pid>, None) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.m.init => {
                    self.record_exit(code, None)
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == self.m.init => {
                    self.record_exit(128 + sig as i32, Some(sig))
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }

    fn record_exit(&mut self, code: i32, signal: Option<nix::sys::signal::Signal>) {
        if self.exit.is_none() {
            self.exit = Some(Exit {
                code,
                signal,
                at: SystemTime::now(),
                seen: Instant::now(),
            });
        }
    }

    fn on_output(&mut self, i: usize) {
        let mut buf = [0u8; READ_SIZE];
        for _ in 0..READS_PER_WAKE {
            let Some(out) = self.m.outputs.get_mut(i) else {
                return;
            };
            if !out.open {
                return;
            }
            match out.file.read(&mut buf) {
                Ok(0) => return self.close_output(i),
                Ok(n) => self.output(i, &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EIO: the pty's slave side is closed everywhere
                Err(e) => {
                    if e.raw_os_error() != Some(Errno::EIO as i32) {
                        self.note(&format!("read container output: {e}"));
                    }
                    return self.close_output(i);
                }
            }
        }
    }

    fn output(&mut self, i: usize, data: &[u8]) {
        let now = SystemTime::now();
        let stream = self.m.outputs[i].stream;
        if let Some(log) = self.m.log.as_mut() {
            let mut err = None;
            self.m.outputs[i].split.feed(data, |line, complete| {
                if let Err(e) = log.write_line(line, complete, stream, now) {
                    err = Some(e);
                }
            });
            if let Err(e) = log.flush() {
                err = Some(e);
            }
            if let Some(e) = err {
                self.note(&e.to_string());
            }
        }
        let head = if self.m.tty {
            [0u8; protocol::HEADER_LEN]
        } else {
            let kind = match stream {
                Stream::Stdout => protocol::OUT_STDOUT,
                Stream::Stderr => protocol::OUT_STDERR,
            };
            protocol::header(kind, data.len())
        };
        let head: &[u8] = if self.m.tty { &[] } else { &head };
        for slot in 0..self.clients.len() {
            let alive = match &mut self.clients[slot] {
                Some(c) if c.kind == Kind::Attach => c.send(head, data),
                _ => continue,
            };
            if !alive {
                self.drop_client(slot);
            }
        }
    }

    fn close_output(&mut self, i: usize) {
        let out = &mut self.m.outputs[i];
        out.open = false;
        let _ = self.epoll.delete(&out.file);
        let stream = out.stream;
        if let Some(log) = self.m.log.as_mut() {
            let now = SystemTime::now();
            let mut err = None;
            out.split.finish(|line, complete| {
                if let Err(e) = log.write_line(line, complete, stream, now) {
                    err = Some(e);
                }
            });
            if let Err(e) = log.flush() {
                err = Some(e);
            }
            if let Some(e) = err {
                self.note(&e.to_string());
            }
        }
    }

    fn accept(&mut self, kind: Kind) {
        let listener = match kind {
            Kind::Attach => &self.m.attach,
            Kind::Control => &self.m.control,
        };
        loop {
            let sock = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let slot = match self.clients.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    self.clients.push(None);
                    self.clients.len() - 1
                }
            };
            let interest = EpollFlags::EPOLLIN;
            if self
                .epoll
                .add(&sock, EpollEvent::new(interest, T_CLIENT + slot as u64))
                .is_err()
            {
                continue;
            }
            self.clients[slot] = Some(Client {
                sock,
                kind,
                inbuf: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                read_closed: false,
                interest,
            });
        }
    }

    fn drop_client(&mut self, slot: usize) {
        if let Some(c) = self.clients.get_mut(slot).and_then(Option::take) {
            let _ = self.epoll.delete(&c.sock);
        }
        while matches!(self.clients.last(), Some(None)) {
            self.clients.pop();
        }
    }

    fn on_client(&mut self, slot: usize, fl: EpollFlags) {
        let Some(Some(c)) = self.clients.get_mut(slot) else {
            return;
        };
        if fl.contains(EpollFlags::EPOLLOUT) && !c.flush() {
            return self.drop_client(slot);
        }
        if fl.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            && !c.read_closed
        {
            let mut buf = [0u8; 4096];
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        c.read_closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.inbuf.extend_from_slice(&buf[..n]);
                        if c.inbuf.len() >= STDIN_BUFFER_MAX {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return self.drop_client(slot),
                }
            }
            if !self.handle_frames(slot) {
                return self.drop_client(slot);
            }
        }
        let Some(Some(c)) = self.clients.get_mut(slot) else {
            return;
        };
        let hung_up = fl.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
        let finished = c.read_closed && (c.kind == Kind::Control || c.pending() == 0);
        if (hung_up && c.read_closed) || (finished && c.kind == Kind::Control) {
            self.drop_client(slot);
        }
    }

    /// Acts on the complete frames a client sent; `false` on a protocol error.
    fn handle_frames(&mut self, slot: usize) -> bool {
        let Some(Some(c)) = self.clients.get_mut(slot) else {
            return false;
        };
        let mut inbuf = std::mem::take(&mut c.inbuf);
        let kind = c.kind;
        let mut used = 0;
        let ok = loop {
            match protocol::parse(&inbuf[used..]) {
                Ok(None) => break true,
                Err(e) => {
                    self.note(&format!("client protocol error: {e}"));
                    break false;
                }
                Ok(Some((k, range, n))) => {
                    let payload = &inbuf[used + range.start..used + range.end];
                    let ok = match kind {
                        Kind::Attach => self.attach_frame(k, payload),
                        Kind::Control => self.control_frame(slot, k, payload),
                    };
                    used += n;
                    if !ok {
                        break false;
                    }
                }
            }
        };
        inbuf.drain(..used);
        if let Some(Some(c)) = self.clients.get_mut(slot) {
            c.inbuf = inbuf;
        }
        ok
    }

    fn attach_frame(&mut self, kind: u8, payload: &[u8]) -> bool {
        match kind {
            protocol::IN_STDIN => {
                if self.m.stdin.is_some() && !self.stdin_close {
                    self.stdin_pending.extend_from_slice(payload);
                    self.flush_stdin();
                }
                true
            }
            protocol::IN_STDIN_CLOSE => {
                // a terminal has no half-close: closing it would hang up the session
                if !self.m.tty {
                    self.stdin_close = true;
                    self.flush_stdin();
                }
                true
            }
            protocol::IN_RESIZE => match protocol::parse_resize(payload) {
                Ok((rows, cols)) => {
                    if let Some(pty) = &self.m.pty {
                        if let Err(e) = berth_sys::process::set_window_size(pty, rows, cols) {
                            self.note(&format!("resize terminal to {rows}x{cols}: {e}"));
                        }
                    }
                    true
                }
                Err(e) => {
                    self.note(&e.to_string());
                    false
                }
            },
            _ => true,
        }
    }

    fn control_frame(&mut self, slot: usize, kind: u8, _payload: &[u8]) -> bool {
        let (code, text) = match kind {
            protocol::CTL_START => match self.start_now() {
                Ok(()) => (protocol::REPLY_OK, String::new()),
                Err(e) => (protocol::REPLY_ERR, e),
            },
            protocol::CTL_VERSION => (protocol::REPLY_OK, protocol::VERSION.to_string()),
            k => (protocol::REPLY_ERR, format!("unknown control request {k}")),
        };
        let Some(Some(c)) = self.clients.get_mut(slot) else {
            return false;
        };
        let head = protocol::header(code, text.len());
        c.send(&head, text.as_bytes())
    }

    /// Runs `berth-runtime start`; on failure the created container is deleted and the
    /// runtime's message returned.
    pub fn start_now(&mut self) -> Result<(), String> {
        if self.exit.is_some() {
            return Err(format!("container {} has exited", self.m.id));
        }
        if self.m.started_at.is_some() {
            return Err(format!("container {} is already started", self.m.id));
        }
        match self.m.runtime.start(&self.m.id) {
            Ok(()) => {
                self.m.started_at = Some(SystemTime::now());
                Ok(())
            }
            Err(e) => {
                // the created init would wait on its fifo forever: remove it; its death is
                // then recorded like any other exit
                if let Err(d) = self.m.runtime.delete_force(&self.m.id) {
                    self.note(&d.to_string());
                }
                Err(e.message())
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.m.stdin else {
            self.stdin_pending = Vec::new();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match nix::unistd::write(fd, &self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    // the container closed its stdin (EPIPE): nothing more can be delivered
                    self.stdin_pending = Vec::new();
                    self.stdin_close = true;
                }
            }
        }
        if self.stdin_pending.is_empty() && self.stdin_pending.capacity() > STDIN_BUFFER_MAX {
            self.stdin_pending = Vec::new();
        }
        if self.stdin_pending.is_empty() && self.stdin_close {
            if let Some(fd) = self.m.stdin.take() {
                if self.stdin_registered {
                    let _ = self.epoll.delete(&fd);
                    self.stdin_registered = false;
                }
            }
        }
    }

    /// Brings every fd's epoll interest in line with the buffers.
    fn update_interest(&mut self) {
        let want_out = !self.stdin_pending.is_empty();
        if let Some(fd) = &self.m.stdin {
            if want_out != self.stdin_registered {
                let r = if want_out {
                    self.epoll
                        .add(fd, EpollEvent::new(EpollFlags::EPOLLOUT, T_STDIN))
                } else {
                    self.epoll.delete(fd)
                };
                if r.is_ok() {
                    self.stdin_registered = want_out;
                }
            }
        }
        let read_clients = self.stdin_pending.len() < STDIN_BUFFER_MAX;
        for (slot, c) in self.clients.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            let mut want = EpollFlags::empty();
            if read_clients && !c.read_closed {
                want |= EpollFlags::EPOLLIN;
            }
            if c.pending() > 0 {
                want |= EpollFlags::EPOLLOUT;
            }
            if want != c.interest {
                let mut ev = EpollEvent::new(want, T_CLIENT + slot as u64);
                if self.epoll.modify(&c.sock, &mut ev).is_ok() {
                    c.interest = want;
                }
            }
        }
    }

    /// Exit bookkeeping: exit.json, delete the container, close everything. The log is not
    /// fsynced (as docker's json-file): its lines are in the page cache, safe from a berthd
    /// crash, and an fsync here sat on every `run --rm`'s exit path (5–20 ms under write load).
    fn finish(mut self) -> i32 {
        for i in 0..self.m.outputs.len() {
            if self.m.outputs[i].open {
                self.close_output(i);
            }
        }
        let exit = self.exit.unwrap_or(Exit {
            code: -1,
            signal: None,
            at: SystemTime::now(),
            seen: Instant::now(),
        });
        let record = ExitRecord {
            exit_code: exit.code,
            signal: exit.signal.map(|s| s.as_str().to_owned()),
            oom_killed: self.m.oom.as_ref().and_then(OomCounter::fired),
            started_at: self.m.started_at.map(rfc3339),
            finished_at: rfc3339(exit.at),
        };
        let mut code = 0;
        if let Err(e) = record.save(&self.m.state_dir) {
            self.note(&e.to_string());
            code = 1;
        }
        if let Err(e) = self.m.runtime.delete_force(&self.m.id) {
            self.note(&e.to_string());
        }
        for name in [
            state::ATTACH_SOCK,
            state::CONTROL_SOCK,
            state::INIT_PID_FILE,
            state::PID_FILE,
        ] {
            let _ = std::fs::remove_file(self.m.state_dir.join(name));
        }
        self.clients.clear();
        code
    }

    /// Appends a diagnostic line to `<state-dir>/shim.log` (the shim has no stderr).
    fn note(&self, msg: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.diag)
        {
            let _ = writeln!(f, "{} {msg}", rfc3339(SystemTime::now()));
        }
    }
}

enum Step {
    Wait(Option<Instant>),
    Done,
}

/// Whether `fd` is still usable (used by tests of the loop's fd handling).
#[cfg(test)]
fn is_open<F: std::os::fd::AsFd>(fd: F) -> bool {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_client_is_dropped_not_waited_for() {
        let (a, b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblock");
        let mut c = Client {
            sock: a,
            kind: Kind::Attach,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            read_closed: false,
            interest: EpollFlags::EPOLLIN,
        };
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        // nobody reads `b`: the socket buffer fills, then the client buffer, then it is refused
        while c.send(&protocol::header(1, chunk.len()), &chunk) {
            sent += chunk.len();
            assert!(sent < 64 << 20, "a never-reading client was never refused");
        }
        assert!(c.pending() <= CLIENT_BUFFER_MAX);
        assert!(is_open(&b));
    }

    #[test]
    fn buffered_output_is_delivered_in_order() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblock");
        let mut c = Client {
            sock: a,
            kind: Kind::Attach,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            read_closed: false,
            interest: EpollFlags::EPOLLIN,
        };
        let mut expect = Vec::new();
        for i in 0..40u8 {
            let body = vec![i; 10_000];
            let head = protocol::header(protocol::OUT_STDOUT, body.len());
            assert!(c.send(&head, &body));
            expect.extend_from_slice(&head);
            expect.extend_from_slice(&body);
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        b.set_nonblocking(true).expect("nonblock");
        while got.len() < expect.len() {
            assert!(c.flush());
            match b.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        assert!(got == expect, "stream reordered or corrupted");
    }
}
