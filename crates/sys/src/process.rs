//! Process creation and exec primitives for the runtime: `clone3` used as a fork that can enter
//! new namespaces, `_exit`, `execveat(AT_EMPTY_PATH)`, `close_range(CLOSE_RANGE_CLOEXEC)`,
//! pidfds, the controlling terminal ioctl and the parent-death signal.
//!
//! These are the calls `nix` either lacks or only offers as `unsafe` closures-on-a-stack; each
//! wrapper here is a plain function returning `nix::Result`.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// Which side of a fork the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the pid of the child (in the parent's pid namespace).
    Parent(Pid),
    /// In the child.
    Child,
}

/// Forks with `clone3`, passing `flags` (`CLONE_NEW*`, `CLONE_PARENT`, ...), exit signal SIGCHLD.
///
/// The child gets a copy of the address space like `fork(2)`, so the caller must be single
/// threaded. Falls back to the legacy `clone` syscall on kernels without `clone3` (when
/// `CLONE_NEWTIME` is not asked for, which only `clone3` can carry).
pub fn fork_with_flags(flags: u64) -> nix::Result<Forked> {
    clone3_fork(flags, None)
}

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`fork_with_flags`], and when `cgroup` is given the child starts in that cgroup2
/// directory (`CLONE_INTO_CGROUP`: no `cgroup.procs` write, no global lock). Returns whether the
/// child was cloned into the cgroup; when the kernel refuses that (old kernel, cgroup rules), it
/// forks without it and the caller must add the child itself.
pub fn fork_into_cgroup<F: AsFd>(flags: u64, cgroup: Option<F>) -> nix::Result<(Forked, bool)> {
    if let Some(fd) = &cgroup {
        let raw = fd.as_fd().as_raw_fd();
        match clone3_fork(flags | CLONE_INTO_CGROUP, Some(raw)) {
            Ok(f) => return Ok((f, true)),
            Err(
                Errno::ENOSYS | Errno::EINVAL | Errno::EBUSY | Errno::EOPNOTSUPP | Errno::EPERM,
            ) => {}
            Err(e) => return Err(e),
        }
    }
    clone3_fork(flags, None).map(|f| (f, false))
}

fn clone3_fork(flags: u64, cgroup: Option<i32>) -> nix::Result<Forked> {
    let mut args = libc::clone_args {
        flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
    };
    // SAFETY: clone3 with a null stack behaves like fork: the child continues on a copy of the
    // caller's stack. `args` is a valid, fully initialised clone_args that lives across the call,
    // and its size is passed. The runtime calls this only while single threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    let ret = if ret == -1
        && Errno::last() == Errno::ENOSYS
        && flags & (libc::CLONE_NEWTIME as u64 | CLONE_INTO_CGROUP) == 0
    {
        // SAFETY: legacy clone with a null stack is fork-like, same reasoning as above; the
        // remaining pointer arguments (parent_tid, child_tid, tls) are null and unused.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags | libc::SIGCHLD as u64,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_int>(),
                std::ptr::null_mut::<libc::c_int>(),
                0u64,
            )
        }
    } else {
        ret
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Ends the calling process at once with `code`, without running exit handlers or flushing the
/// parent's stdio buffers inherited over fork.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: executes the file `fd` refers to. Returns only
/// on failure.
pub fn execveat_fd<F: AsFd>(fd: F, argv: &[CString], envp: &[CString]) -> Errno {
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_p: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let empty: &CStr = c"";
    // SAFETY: argv_p/envp_p are NULL-terminated arrays of pointers to NUL-terminated strings
    // owned by `argv`/`envp`, alive for the call; `fd` is a valid open fd; the path is "".
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_fd().as_raw_fd(),
            empty.as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Errno::last()
}

/// Marks every fd from `first` upwards close-on-exec (`close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`),
/// falling back to walking /proc/self/fd on kernels without it.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags, it closes nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::last())?;
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
        // SAFETY: F_SETFD on an fd number only changes its flags; an fd that vanished (the
        // directory's own fd) yields EBADF, which is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Clears close-on-exec on `fd` so it survives execve (used for `--preserve-fds`).
pub fn clear_cloexec(fd: i32) -> nix::Result<()> {
    // SAFETY: F_SETFD only changes the flags of the fd number given; an invalid fd is EBADF.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    Errno::result(ret).map(drop)
}

/// Duplicates `fd` close-on-exec to the lowest free number `>= min` (`F_DUPFD_CLOEXEC`).
pub fn dup_cloexec_at_least<F: AsFd>(fd: F, min: i32) -> nix::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a borrowed, valid fd returns a new fd or -1.
    let ret = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    let ret = Errno::result(ret)?;
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub fn pidfd_send_signal<F: AsFd>(pidfd: F, sig: i32) -> nix::Result<()> {
    // SAFETY: a valid pidfd, a signal number and a null siginfo are all pidfd_send_signal needs.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_fd().as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Makes the terminal `fd` the controlling terminal of the calling session leader (TIOCSCTTY).
pub fn set_controlling_terminal<F: AsFd>(fd: F) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: don't steal) and touches no user memory.
    let ret = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Sets the window size of the terminal `fd` (TIOCSWINSZ).
pub fn set_window_size<F: AsFd>(fd: F, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct from the pointer, which is valid for the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    Errno::result(ret).map(drop)
}

/// The window size (rows, cols) of the terminal `fd` (TIOCGWINSZ).
pub fn window_size<F: AsFd>(fd: F) -> nix::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize struct through the pointer, valid for the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    Errno::result(ret).map(|_| (ws.ws_row, ws.ws_col))
}

/// Joins a new session keyring named `name` (`keyctl(KEYCTL_JOIN_SESSION_KEYRING)`), so the
/// container doesn't share the caller's session keyring. Returns the keyring's serial.
pub fn join_session_keyring(name: &CStr) -> nix::Result<i64> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: keyctl JOIN_SESSION_KEYRING takes a NUL-terminated name valid for the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(ret)
}

/// Asks the kernel to send `sig` to the caller when its parent dies (PR_SET_PDEATHSIG).
pub fn set_parent_death_signal(sig: i32) -> nix::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and no pointers.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Marks the caller a child subreaper (PR_SET_CHILD_SUBREAPER) so orphans of the container's
/// init reparent to it (used by `run`).
pub fn set_child_subreaper() -> nix::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Gives the process a clean signal state for the program it is about to exec: every catchable
/// signal back to its default action and an empty signal mask. Ignored dispositions and the mask
/// survive execve, and the Rust runtime ignores SIGPIPE (glibc's posix_spawn in a parent may leave
/// 32/33 ignored too); runc and crun reset them the same way, so a container's `yes | head` dies of
/// SIGPIPE as it would anywhere else.
pub fn reset_signals_for_exec() {
    /// The kernel's `struct sigaction` for rt_sigaction(2) (x86_64 layout; no restorer needed
    /// for SIG_DFL).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads `dfl` (a valid, live struct of the kernel's layout) and
        // writes nothing (old action pointer is null). The raw syscall, unlike glibc's wrapper,
        // also resets 32/33, which glibc reserves but an ignoring parent can leave SIG_IGN.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    let empty = nix::sys::signal::SigSet::empty();
    // Failing to unblock can only mean an invalid `how`, which this call doesn't pass.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};

    #[test]
    fn dup_cloexec_at_least_lands_above_min_and_is_cloexec() {
        let f = std::fs::File::open("/proc/self/stat").expect("open");
        let d = dup_cloexec_at_least(&f, 100).expect("dup");
        assert!(d.as_raw_fd() >= 100);
        // SAFETY: F_GETFD on an fd we own.
        let flags = unsafe { libc::fcntl(d.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn fork_with_no_flags_runs_child_and_reports_exit() {
        match fork_with_flags(0).expect("clone3") {
            Forked::Child => exit_now(7),
            Forked::Parent(pid) => {
                assert_eq!(
                    waitpid(pid, None).expect("wait"),
                    WaitStatus::Exited(pid, 7)
                );
            }
        }
    }

    #[test]
    fn pidfd_signal_kills_child() {
        match fork_with_flags(0).expect("clone3") {
            Forked::Child => {
                std::thread::sleep(std::time::Duration::from_secs(10));
                exit_now(0)
            }
            Forked::Parent(pid) => {
                let fd = pidfd_open(pid).expect("pidfd_open");
                pidfd_send_signal(&fd, libc::SIGKILL).expect("signal");
                assert_eq!(
                    waitpid(pid, None).expect("wait"),
                    WaitStatus::Signaled(pid, nix::sys::signal::Signal::SIGKILL, false)
                );
            }
        }
    }
}
