//! Process attributes of the container process: rlimits, oom_score_adj, I/O priority, scheduler,
//! personality, user and groups, capabilities, umask, no_new_privs, CPU affinity; and the order in
//! which they must be applied.
//!
//! Everything here acts on the *calling* process and is meant to run in the container's init
//! (single threaded, after `pivot_root`, right before `execve`) or in the `exec` child.
//!
//! # Order (what `init` calls, and why)
//!
//! [`apply_process`] does steps 1–7 in this order; [`Prepared::finalize`] does step 8.
//!
//! 1. [`set_rlimits`]: while we are still root with every capability (raising a hard limit needs
//!    `CAP_SYS_RESOURCE`; note the root of this machine lacks it, see [`ProcessError::Rlimit`]).
//! 2. [`set_oom_score_adj`]: lowering it needs `CAP_SYS_RESOURCE` too.
//! 3. [`set_scheduler`] (`SCHED_FIFO`/`RR`/`DEADLINE` need `CAP_SYS_NICE`), [`set_io_priority`]
//!    (`IOPRIO_CLASS_RT` needs `CAP_SYS_ADMIN`), [`set_personality`].
//! 4. seccomp, **if `noNewPrivileges` is false**: loading a filter without no_new_privs needs
//!    `CAP_SYS_ADMIN`, so it must happen before capabilities are dropped (as runc does). The
//!    syscalls of steps 5–8 and `execve` must then be allowed by the filter.
//! 5. [`apply_user`]: `setgroups`, `setresgid`, `setresuid` with `PR_SET_KEEPCAPS` so the permitted
//!    set survives the switch to a non-zero uid; then the umask.
//! 6. [`apply_capabilities`]: bounding (needs `CAP_SETPCAP`, which is why it raises effective from
//!    permitted first), inheritable, effective, permitted, ambient last.
//! 7. [`set_no_new_privs`] when `noNewPrivileges` is true.
//! 8. seccomp, **if `noNewPrivileges` is true**: as late as possible, right before `execve` (after
//!    the exec fifo and the `startContainer` hooks), so the filter constrains as little of the
//!    runtime as possible. [`Prepared::finalize`] loads it. Except a filter using
//!    `SCMP_ACT_NOTIFY`: it is loaded at the end of [`apply_process`], during `create`, so the
//!    parent can still forward the notify fd to `listenerPath` (runc does the same). What the init
//!    does after that (channel and exec fifo reads/writes, `startContainer` hooks' fork/exec,
//!    `close_range`, `execve`) must then be allowed by the profile, as runc documents.
//!
//! The environment for `execve` comes from [`exec_env`] (adds `HOME` from the container's
//! `/etc/passwd` when unset, like runc). `exec --user name[:group]` resolves through
//! [`resolve_user`].

mod caps;
mod sched;
mod user;

pub use self::caps::apply_capabilities;
pub use self::sched::{
    parse_cpu_list, set_cpu_affinity, set_exec_cpu_affinity, set_io_priority, set_personality,
    set_scheduler, AffinityStage,
};
pub use self::user::{apply_user, exec_env, lookup_home, resolve_user, ResolvedUser};

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Linux, PosixRlimit, PosixRlimitType, Process};

use crate::seccomp::{self, SeccompError};

/// Warnings collected while applying attributes (skipped capabilities, skipped `setgroups`...).
/// They are returned rather than printed: in `init` stderr belongs to the container.
pub type Warnings = Vec<String>;

/// Why a process attribute could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A limit whose soft value is above its hard value.
    #[error("rlimit {name}: soft limit {soft} is greater than hard limit {hard}")]
    RlimitOrder { name: String, soft: u64, hard: u64 },
    /// setrlimit failed; `hint` says why when it's the usual missing `CAP_SYS_RESOURCE`.
    #[error("setrlimit {name} (soft {soft}, hard {hard}){hint}")]
    Rlimit {
        name: String,
        soft: u64,
        hard: u64,
        hint: String,
        #[source]
        source: nix::Error,
    },
    #[error("write oom_score_adj {value} to /proc/self/oom_score_adj")]
    OomScoreAdj {
        value: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("oom_score_adj {0} is outside -1000..=1000")]
    OomScoreAdjRange(i32),
    #[error("ioPriority: priority {0} is outside 0..=7")]
    IoPriorityRange(i64),
    #[error("ioprio_set {class} priority {priority}")]
    IoPriority {
        class: String,
        priority: i64,
        #[source]
        source: std::io::Error,
    },
    #[error("scheduler: {0}")]
    SchedulerInvalid(String),
    #[error("sched_setattr policy {policy}")]
    Scheduler {
        policy: String,
        #[source]
        source: std::io::Error,
    },
    #[error("personality flag {0:?} is not supported (the runtime spec defines none)")]
    PersonalityFlag(String),
    #[error("personality {domain}")]
    Personality {
        domain: String,
        #[source]
        source: nix::Error,
    },
    #[error("cpu list {list:?}: {reason}")]
    CpuList { list: String, reason: String },
    #[error("sched_setaffinity {list:?}")]
    CpuAffinity {
        list: String,
        #[source]
        source: nix::Error,
    },
    #[error("umask {0:#o} has bits outside 0o777")]
    UmaskRange(u32),
    #[error("prctl PR_SET_NO_NEW_PRIVS")]
    NoNewPrivs(#[source] nix::Error),
    #[error("prctl PR_SET_KEEPCAPS {0}")]
    KeepCaps(bool, #[source] nix::Error),
    #[error("setgroups {gids:?}")]
    Setgroups {
        gids: Vec<u32>,
        #[source]
        source: nix::Error,
    },
    #[error("setresgid {0}")]
    Setresgid(u32, #[source] nix::Error),
    #[error("setresuid {0}")]
    Setresuid(u32, #[source] nix::Error),
    #[error("read {path}")]
    ReadUserDb {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("user {0:?} not found in the container's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in the container's /etc/group")]
    UnknownGroup(String),
    #[error("capabilities: {what}")]
    Capabilities {
        what: String,
        #[source]
        source: ::caps::errors::CapsError,
    },
    #[error("drop capabilities newer than this build knows from the bounding set")]
    UnnamedBoundingCaps(#[source] std::io::Error),
    #[error("seccomp")]
    Seccomp(#[source] SeccompError),
}

/// What [`apply_process`] leaves for the last moment before `execve`.
#[derive(Debug)]
pub struct Prepared {
    /// Notify fd of a filter already loaded in step 4 (send it to the seccomp agent).
    pub notify_fd: Option<OwnedFd>,
    /// Non-fatal problems to report to the user (through the parent: not on stderr).
    pub warnings: Warnings,
    deferred: Option<seccomp::Program>,
}

impl Prepared {
    /// Step 8: loads the seccomp filter deferred because of `noNewPrivileges` (call it right
    /// before `execve`). Returns the notify fd, from this load or from step 4.
    pub fn finalize(self) -> Result<Option<OwnedFd>, ProcessError> {
        match self.deferred {
            Some(program) => program.load().map_err(ProcessError::Seccomp),
            None => Ok(self.notify_fd),
        }
    }
}

/// Applies every attribute of `process` (and `linux.personality`, `linux.seccomp`) in the
/// documented order, except the deferred seccomp load (see [`Prepared::finalize`]) and `execve`.
///
/// `seccomp` is the program for `linux.seccomp` when the caller already built it (the parent,
/// with [`seccomp::program_cached`], before cloning: the init then only loads it); with `None`
/// a `linux.seccomp` present is compiled here.
pub fn apply_process(
    process: &Process,
    linux: Option<&Linux>,
    seccomp: Option<seccomp::Program>,
) -> Result<Prepared, ProcessError> {
    let mut warnings = Warnings::new();
    let nnp = process.no_new_privileges().unwrap_or(false);

    // Compile first: a bad profile is reported before anything irreversible happens.
    let program = match (seccomp, linux.and_then(|l| l.seccomp().as_ref())) {
        (Some(program), _) => Some(program),
        (None, Some(spec)) => Some(seccomp::program(spec).map_err(ProcessError::Seccomp)?),
        (None, None) => None,
    };
    if let Some(program) = &program {
        warnings.extend(program.warnings().iter().cloned());
    }

    if let Some(rlimits) = process.rlimits() {
        set_rlimits(rlimits)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        set_oom_score_adj(adj)?;
    }
    if let Some(scheduler) = process.scheduler() {
        set_scheduler(scheduler)?;
    }
    if let Some(prio) = process.io_priority() {
        set_io_priority(prio)?;
    }
    if let Some(personality) = linux.and_then(|l| l.personality().as_ref()) {
        set_personality(personality)?;
    }

    let (notify_fd, deferred) = match program {
        Some(program) if !nnp => (program.load().map_err(ProcessError::Seccomp)?, None),
        other => (None, other),
    };

    warnings.extend(apply_user(process.user())?);
    // No `capabilities` at all means no capabilities (LinuxCapabilities::default() would be
    // Docker's three defaults, not the empty sets).
    let no_caps: oci_spec::runtime::LinuxCapabilities =
        serde_json::from_str("{}").expect("all five sets are optional");
    warnings.extend(apply_capabilities(
        process.capabilities().as_ref().unwrap_or(&no_caps),
    )?);
    if nnp {
        set_no_new_privs()?;
    }
    // A filter with SCMP_ACT_NOTIFY is loaded now rather than at step 8 (as runc does): its fd
    // must reach `listenerPath` through the parent, which is only there during `create`.
    let (notify_fd, deferred) = match deferred {
        Some(program) if program.uses_notify() => {
            (program.load().map_err(ProcessError::Seccomp)?, None)
        }
        other => (notify_fd, other),
    };
    Ok(Prepared {
        notify_fd,
        warnings,
        deferred,
    })
}

fn rlimit_resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Sets every rlimit of `process.rlimits` (all 16 `RLIMIT_*` types of the spec; an unknown name
/// is already refused when config.json is parsed, naming it).
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for rl in rlimits {
        let name = rl.typ().to_string();
        let (soft, hard) = (rl.soft(), rl.hard());
        if soft > hard {
            return Err(ProcessError::RlimitOrder { name, soft, hard });
        }
        let resource = rlimit_resource(rl.typ());
        if let Err(source) = setrlimit(resource, soft, hard) {
            let hint = match (source, nix::sys::resource::getrlimit(resource)) {
                (nix::Error::EPERM, Ok((_, cur_hard))) if hard > cur_hard => format!(
                    ": raising the hard limit above the current {cur_hard} needs CAP_SYS_RESOURCE"
                ),
                _ => String::new(),
            };
            return Err(ProcessError::Rlimit {
                name,
                soft,
                hard,
                hint,
                source,
            });
        }
    }
    Ok(())
}

/// Writes `/proc/self/oom_score_adj` (inherited by the container process across execve).
pub fn set_oom_score_adj(value: i32) -> Result<(), ProcessError> {
    if !(-1000..=1000).contains(&value) {
        return Err(ProcessError::OomScoreAdjRange(value));
    }
    std::fs::write("/proc/self/oom_score_adj", value.to_string())
        .map_err(|source| ProcessError::OomScoreAdj { value, source })
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: execve can no longer grant privileges (setuid, file caps).
pub fn set_no_new_privs() -> Result<(), ProcessError> {
    nix::sys::prctl::set_no_new_privs().map_err(ProcessError::NoNewPrivs)
}

/// Sets the file mode creation mask.
pub fn set_umask(mask: u32) -> Result<(), ProcessError> {
    if mask & !0o777 != 0 {
        return Err(ProcessError::UmaskRange(mask));
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(mask as nix::libc::mode_t));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::PosixRlimitBuilder;

    fn rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> PosixRlimit {
        PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
            .expect("rlimit")
    }

    #[test]
    fn every_spec_rlimit_name_maps_to_its_resource() {
        // Display of the oci type is the spec name; nix's Debug is the libc name.
        for name in [
            "RLIMIT_CPU",
            "RLIMIT_FSIZE",
            "RLIMIT_DATA",
            "RLIMIT_STACK",
            "RLIMIT_CORE",
            "RLIMIT_RSS",
            "RLIMIT_NPROC",
            "RLIMIT_NOFILE",
            "RLIMIT_MEMLOCK",
            "RLIMIT_AS",
            "RLIMIT_LOCKS",
            "RLIMIT_SIGPENDING",
            "RLIMIT_MSGQUEUE",
            "RLIMIT_NICE",
            "RLIMIT_RTPRIO",
            "RLIMIT_RTTIME",
        ] {
            let typ: PosixRlimitType = name.parse().expect(name);
            assert_eq!(format!("{:?}", rlimit_resource(typ)), name);
        }
    }

    #[test]
    fn soft_above_hard_is_refused_before_the_syscall() {
        let err = set_rlimits(&[rlimit(PosixRlimitType::RlimitCore, 10, 5)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rlimit RLIMIT_CORE: soft limit 10 is greater than hard limit 5"
        );
    }

    #[test]
    fn umask_outside_0777_is_refused() {
        assert!(matches!(
            set_umask(0o1022),
            Err(ProcessError::UmaskRange(0o1022))
        ));
    }

    #[test]
    fn oom_score_adj_range_is_checked() {
        assert!(matches!(
            set_oom_score_adj(1001),
            Err(ProcessError::OomScoreAdjRange(1001))
        ));
    }
}
