//! Process attributes nix does not cover: ioprio_set, sched_setattr, adopting a raw fd that a
//! C library handed us (the seccomp notify fd) as an `OwnedFd`, and making sure a spawned helper
//! (an OCI hook) inherits no descriptor beyond stdio.
//!
//! Everything here acts on the calling thread/process only and is async-signal-safe enough to run
//! in a freshly forked child (plain syscalls, no allocation).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `IOPRIO_CLASS_*` from linux/ioprio.h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoprioClass {
    /// Real time: always first access to the disk.
    Realtime = 1,
    /// Best effort: the default class.
    BestEffort = 2,
    /// Idle: only when nobody else needs the disk.
    Idle = 3,
}

const IOPRIO_CLASS_SHIFT: u32 = 13;
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// The `ioprio` value packed as the kernel wants it: class in the top bits, level below.
pub fn ioprio_value(class: IoprioClass, level: u16) -> libc::c_int {
    ((class as u32) << IOPRIO_CLASS_SHIFT | u32::from(level)) as libc::c_int
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class|level)`: sets the I/O priority of the calling process.
pub fn ioprio_set(class: IoprioClass, level: u16) -> io::Result<()> {
    let value = ioprio_value(class, level);
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioprio_get(IOPRIO_WHO_PROCESS, 0)`: the calling process' packed I/O priority.
pub fn ioprio_get() -> io::Result<libc::c_int> {
    // SAFETY: ioprio_get takes two integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as libc::c_int)
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1, 56 bytes) from linux/sched/types.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    /// Size of this struct; filled in by [`sched_setattr`].
    pub size: u32,
    /// `SCHED_OTHER` (0), `SCHED_FIFO` (1), `SCHED_RR` (2), `SCHED_BATCH` (3), `SCHED_IDLE` (5),
    /// `SCHED_DEADLINE` (6).
    pub sched_policy: u32,
    /// `SCHED_FLAG_*` bits.
    pub sched_flags: u64,
    /// Nice value for SCHED_OTHER/SCHED_BATCH.
    pub sched_nice: i32,
    /// Static priority for SCHED_FIFO/SCHED_RR.
    pub sched_priority: u32,
    /// SCHED_DEADLINE runtime, nanoseconds.
    pub sched_runtime: u64,
    /// SCHED_DEADLINE deadline, nanoseconds.
    pub sched_deadline: u64,
    /// SCHED_DEADLINE period, nanoseconds.
    pub sched_period: u64,
    /// Utilization clamp minimum (with `SCHED_FLAG_UTIL_CLAMP_MIN`).
    pub sched_util_min: u32,
    /// Utilization clamp maximum (with `SCHED_FLAG_UTIL_CLAMP_MAX`).
    pub sched_util_max: u32,
}

/// `sched_setattr(0, attr, 0)`: sets the scheduling policy and attributes of the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a valid, initialised `struct sched_attr` whose `size` field says how many
    // bytes the kernel may read; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sched_getattr(0, attr, size, 0)`: the calling thread's scheduling attributes.
pub fn sched_getattr() -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
    // SAFETY: the kernel writes at most `size` bytes into `attr`, which is exactly that big.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            size,
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr)
}

/// Takes ownership of a file descriptor that a C library returned as a plain integer (e.g.
/// libseccomp's notify fd) by duplicating it with `F_DUPFD_CLOEXEC` into a fresh `OwnedFd` and
/// closing the original number. The library's copy of the number must not be used afterwards.
pub fn adopt_raw_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor table; an invalid `fd` is EBADF.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` was just returned by the kernel, is open, and nothing else refers to it.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: the caller hands the original number over to us; closing it ends its only use.
    unsafe { libc::close(fd) };
    Ok(owned)
}

/// `SECCOMP_FILTER_FLAG_*` bits of seccomp(2).
pub mod seccomp_flags {
    /// Synchronize all threads of the process to the new filter.
    pub const TSYNC: u32 = 1 << 0;
    /// Log every action but `SECCOMP_RET_ALLOW`.
    pub const LOG: u32 = 1 << 1;
    /// Disable the speculative store bypass mitigation.
    pub const SPEC_ALLOW: u32 = 1 << 2;
    /// Return a user-notification listener fd.
    pub const NEW_LISTENER: u32 = 1 << 3;
    /// With TSYNC and NEW_LISTENER: fail with ESRCH instead of returning a thread id.
    pub const TSYNC_ESRCH: u32 = 1 << 4;
    /// A notified task waits killably once the agent received the notification.
    pub const WAIT_KILLABLE_RECV: u32 = 1 << 5;
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
/// Size of one classic BPF instruction (`struct sock_filter`).
pub const BPF_INSTRUCTION_SIZE: usize = 8;

/// Loads a classic-BPF seccomp program (as libseccomp exports it: `struct sock_filter` array in
/// native byte order) into the calling thread with `seccomp(SECCOMP_SET_MODE_FILTER, flags)`.
/// Needs no_new_privs or `CAP_SYS_ADMIN`. With [`seccomp_flags::NEW_LISTENER`] the kernel
/// returns the notify fd (close-on-exec), given back here.
pub fn seccomp_set_filter(program: &[u8], flags: u32) -> io::Result<Option<OwnedFd>> {
    if program.is_empty() || !program.len().is_multiple_of(BPF_INSTRUCTION_SIZE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "seccomp program of {} bytes is not a whole number of instructions",
                program.len()
            ),
        ));
    }
    let insns: Vec<libc::sock_filter> = program
        .chunks_exact(BPF_INSTRUCTION_SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let len = u16::try_from(insns.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "seccomp program longer than 65535 instructions",
        )
    })?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `len` initialised instructions in `insns`, which outlives the
    // call; the kernel copies the program and only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & seccomp_flags::NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER a non-negative return value is a new fd owned by nobody else.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as RawFd) }));
    }
    Ok(None)
}

/// Whether the running kernel knows seccomp filter flag `flag`: probed the way libseccomp does,
/// with a NULL program (EFAULT: flag known; EINVAL: unknown). Installs nothing.
pub fn seccomp_flag_supported(flag: u32) -> bool {
    // SAFETY: a NULL program makes the kernel fail with EFAULT after validating `flag`; nothing
    // of ours is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flag,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// Drops from the bounding set every capability numbered above `highest_known` up to the
/// kernel's `/proc/sys/kernel/cap_last_cap`: capabilities newer than the `caps` crate knows
/// can't be named, but must not stay in a container's bounding set. Returns how many it
/// dropped. Needs `CAP_SETPCAP`.
pub fn drop_unnamed_bounding_caps(highest_known: u32) -> io::Result<u32> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unreadable cap_last_cap"))?;
    let mut dropped = 0;
    for cap in highest_known.saturating_add(1)..=last {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        dropped += 1;
    }
    Ok(dropped)
}

/// Makes `cmd`'s child mark every descriptor above stdio close-on-exec right before it execs
/// (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`), so nothing the runtime holds open — state dir,
/// exec fifo, sockets, a leaked non-CLOEXEC fd — reaches the program (CVE-2024-21626 class).
pub fn spawn_without_inherited_fds(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let hook = || {
        // SAFETY: close_range takes three integers; it only changes the descriptor table of
        // this (forked, about to exec) child and is async-signal-safe.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec; it performs one raw syscall, allocates
    // nothing and takes no lock, which is what `pre_exec` requires.
    unsafe { cmd.pre_exec(hook) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn ioprio_packs_class_and_level() {
        assert_eq!(ioprio_value(IoprioClass::BestEffort, 4), (2 << 13) | 4);
        assert_eq!(ioprio_value(IoprioClass::Idle, 0), 3 << 13);
    }

    #[test]
    fn ioprio_set_then_get_round_trips() {
        // With who = 0 ioprio applies to the calling thread only: this test thread.
        ioprio_set(IoprioClass::BestEffort, 6).expect("ioprio_set best-effort 6");
        assert_eq!(
            ioprio_get().expect("ioprio_get"),
            ioprio_value(IoprioClass::BestEffort, 6)
        );
    }

    #[test]
    fn sched_attr_is_ver1_sized() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn sched_setattr_batch_nice_applies_to_calling_thread() {
        // This test thread is discarded at the end, so changing its policy is harmless.
        let attr = SchedAttr {
            sched_policy: 3,
            sched_nice: 5,
            ..Default::default()
        };
        sched_setattr(&attr).expect("sched_setattr SCHED_BATCH nice 5");
        let got = sched_getattr().expect("sched_getattr");
        assert_eq!(got.sched_policy, 3);
        assert_eq!(got.sched_nice, 5);
    }

    #[test]
    fn adopt_raw_fd_moves_the_descriptor() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let raw = std::os::fd::IntoRawFd::into_raw_fd(file);
        let owned = adopt_raw_fd(raw).expect("adopt");
        assert_ne!(owned.as_raw_fd(), raw);
        // The new one is close-on-exec.
        // SAFETY: F_GETFD on an open descriptor we own.
        let flags = unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn spawned_child_inherits_only_stdio() {
        let leaked = std::fs::File::open("/dev/null").expect("open");
        let raw = leaked.as_raw_fd();
        // Clear CLOEXEC so the fd would leak without the helper.
        // SAFETY: F_SETFD on a descriptor we own.
        unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args([
            "-c",
            &format!("test -e /proc/self/fd/{raw} && echo leaked || echo clean"),
        ]);
        let plain = cmd.output().expect("spawn sh");
        assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "leaked");
        spawn_without_inherited_fds(&mut cmd);
        let out = cmd.output().expect("spawn sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "clean");
        drop(leaked);
    }

    /// `ret SECCOMP_RET_ALLOW` as one exported instruction.
    fn allow_all() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&0x06u16.to_ne_bytes()); // BPF_RET | BPF_K
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&0x7fff_0000u32.to_ne_bytes());
        p
    }

    #[test]
    fn seccomp_program_loads_and_new_listener_returns_an_fd() {
        // An allow-all filter on this (throw-away) test thread changes nothing it does.
        std::thread::spawn(|| {
            assert!(seccomp_set_filter(&allow_all(), 0)
                .expect("load allow-all")
                .is_none());
            let fd = seccomp_set_filter(&allow_all(), seccomp_flags::NEW_LISTENER)
                .expect("load with listener")
                .expect("listener fd");
            // SAFETY: F_GETFD on a descriptor we own.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn seccomp_program_must_be_whole_instructions() {
        let err = seccomp_set_filter(&[0u8; 7], 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn seccomp_flag_probe() {
        assert!(seccomp_flag_supported(seccomp_flags::TSYNC));
        assert!(!seccomp_flag_supported(1 << 30));
    }

    #[test]
    fn unnamed_bounding_caps_above_the_last_are_none() {
        // Nothing above cap_last_cap exists: dropping "above the last" drops nothing.
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("cap_last_cap")
            .trim()
            .parse()
            .expect("number");
        assert_eq!(drop_unnamed_bounding_caps(last).expect("drop"), 0);
    }
}
