//! OCI `linux.seccomp` -> kernel filter, compiled by libseccomp; the notify fd and its delivery
//! to the seccomp agent at `listenerPath`; and the seccomp part of `berth-runtime features`.
//!
//! Like runc: an unknown *syscall name* is skipped with a warning (profiles list syscalls of newer
//! kernels), while an action, architecture, operator or flag we can't honour is an error naming
//! it. libseccomp's own no_new_privs default is turned off: whether the process gets
//! no_new_privs is `process.noNewPrivileges`' decision (see `process` for the load order).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{
    Arch, ContainerProcessState, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, State, SECCOMP_FD_NAME,
};

/// Why a seccomp filter could not be built, loaded or handed to the agent.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyDefault,
    #[error("{action}: errno {value} is out of range (0..=65535)")]
    ErrnoRange { action: String, value: u32 },
    #[error("create filter with default action {action}")]
    Create {
        action: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("architecture {name} is not supported by libseccomp {version}")]
    Arch {
        name: String,
        version: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("flag {name}")]
    Flag {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("syscall {syscall}: argument index {index} is out of range (0..=5)")]
    ArgIndex { syscall: String, index: usize },
    #[error("syscall {syscall}: {op} needs valueTwo")]
    ArgValueTwo { syscall: String, op: String },
    #[error("add rule {action} for syscall {syscall}")]
    Rule {
        syscall: String,
        action: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("turn off libseccomp's implicit no_new_privs")]
    Nnp(#[source] libseccomp::error::SeccompError),
    #[error("load seccomp filter")]
    Load(#[source] libseccomp::error::SeccompError),
    #[error("get seccomp notify fd")]
    NotifyFd(#[source] libseccomp::error::SeccompError),
    #[error("take ownership of the seccomp notify fd")]
    AdoptFd(#[source] std::io::Error),
    #[error("container state for the seccomp agent is not valid state JSON")]
    State(#[source] serde_json::Error),
    #[error("connect to seccomp listener {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("send seccomp notify fd to {path}")]
    Send {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("encode container process state")]
    Encode(#[source] serde_json::Error),
}

/// A compiled filter, not yet loaded into the kernel.
pub struct Filter {
    ctx: ScmpFilterContext,
    uses_notify: bool,
    warnings: Vec<String>,
}

impl Filter {
    /// Non-fatal problems met while compiling (skipped syscalls, unsupported optional flags).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether any rule uses `SCMP_ACT_NOTIFY` (then [`Filter::load`] returns the notify fd).
    pub fn uses_notify(&self) -> bool {
        self.uses_notify
    }

    /// Loads the filter into the calling thread (all threads with `SECCOMP_FILTER_FLAG_TSYNC`).
    /// Returns the notify fd (close-on-exec) when a rule uses `SCMP_ACT_NOTIFY`.
    pub fn load(self) -> Result<Option<OwnedFd>, SeccompError> {
        self.ctx.load().map_err(SeccompError::Load)?;
        if !self.uses_notify {
            return Ok(None);
        }
        let raw = self.ctx.get_notify_fd().map_err(SeccompError::NotifyFd)?;
        berth_sys::attr::adopt_raw_fd(raw)
            .map(Some)
            .map_err(SeccompError::AdoptFd)
    }
}

/// Compiles and loads `seccomp`; returns the notify fd when any rule uses `SCMP_ACT_NOTIFY`
/// (the caller sends it to `listenerPath` with [`send_notify_fd`]).
pub fn load(seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>, SeccompError> {
    compile(seccomp)?.load()
}

fn libseccomp_version() -> String {
    ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "(unknown version)".to_string())
}

fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let ret = |default: u32| -> Result<u16, SeccompError> {
        let value = errno_ret.unwrap_or(default);
        u16::try_from(value).map_err(|_| SeccompError::ErrnoRange {
            action: action.to_string(),
            value,
        })
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret(libc::EPERM as u32)?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret(libc::EPERM as u32)?),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// All architectures of the spec, by their `SCMP_ARCH_*` names.
const ALL_ARCHS: [Arch; 24] = [
    Arch::ScmpArchNative,
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

fn arch_name(a: Arch) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{a:?}"))
}

fn compare(syscall: &str, arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, SeccompError> {
    let index = arg.index();
    if index > 5 {
        return Err(SeccompError::ArgIndex {
            syscall: syscall.to_string(),
            index,
        });
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // The spec's `value` is the mask and `valueTwo` the value compared after masking.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let datum = arg.value_two().ok_or_else(|| SeccompError::ArgValueTwo {
                syscall: syscall.to_string(),
                op: arg.op().to_string(),
            })?;
            (ScmpCompareOp::MaskedEqual(arg.value()), datum)
        }
    };
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

/// Condition sets for one rule: all args in one rule (AND) when their indexes differ; one rule
/// per arg (OR) when an index repeats, which libseccomp can't AND — runc does the same.
fn condition_sets(
    syscall: &str,
    args: &[LinuxSeccompArg],
) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let conds = args
        .iter()
        .map(|a| compare(syscall, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = [false; 6];
    let repeats = args
        .iter()
        .any(|a| std::mem::replace(&mut seen[a.index()], true));
    Ok(if repeats {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

fn set_flag(
    ctx: &mut ScmpFilterContext,
    flag: LinuxSeccompFilterFlag,
) -> Result<(), libseccomp::error::SeccompError> {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
    }
    .map(|_| ())
}

/// Builds the filter without loading it: every error of the profile shows up here, before
/// anything irreversible happens in the container's init.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let mut warnings = Vec::new();
    if spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyDefault);
    }
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|source| SeccompError::Create {
        action: spec.default_action().to_string(),
        source,
    })?;
    ctx.set_ctl_nnp(false).map_err(SeccompError::Nnp)?;

    for a in spec.architectures().iter().flatten() {
        ctx.add_arch(arch(*a))
            .map_err(|source| SeccompError::Arch {
                name: arch_name(*a),
                version: libseccomp_version(),
                source,
            })?;
    }
    for flag in spec.flags().iter().flatten() {
        if let Err(source) = set_flag(&mut ctx, *flag) {
            if *flag == LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv {
                // Only changes how a notified process reacts to fatal signals: safe to go without.
                warnings.push(format!(
                    "seccomp flag {flag} is not supported by libseccomp {}, ignored",
                    libseccomp_version()
                ));
                continue;
            }
            return Err(SeccompError::Flag {
                name: flag.to_string(),
                source,
            });
        }
    }

    let mut uses_notify = false;
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            // libseccomp refuses rules that repeat the default action; they change nothing.
            continue;
        }
        uses_notify |= act == ScmpAction::Notify;
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                warnings.push(format!("seccomp: unknown syscall {name:?} skipped"));
                continue;
            };
            let rule_err = |source| SeccompError::Rule {
                syscall: name.clone(),
                action: rule.action().to_string(),
                source,
            };
            let args = rule.args().as_deref().unwrap_or_default();
            for conds in condition_sets(name, args)? {
                ctx.add_rule_conditional(act, syscall, &conds)
                    .map_err(rule_err)?;
            }
        }
    }
    Ok(Filter {
        ctx,
        uses_notify,
        warnings,
    })
}

/// Sends the seccomp notify `fd` to the agent listening on `listener_path` (the spec's
/// "container process state" message: JSON with `fds: ["seccompFd"]`, `pid`, `metadata` and the
/// container `state`, the fd attached with SCM_RIGHTS).
pub fn send_notify_fd(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    pid: i32,
    state_json: &[u8],
    metadata: Option<&str>,
) -> Result<(), SeccompError> {
    let state: State = serde_json::from_slice(state_json).map_err(SeccompError::State)?;
    let mut message = ContainerProcessState::default();
    message.set_version(state.version().clone());
    message.set_fds(vec![SECCOMP_FD_NAME.to_string()]);
    message.set_pid(pid);
    message.set_metadata(metadata.map(str::to_string));
    message.set_state(state);
    let payload = serde_json::to_vec(&message).map_err(SeccompError::Encode)?;

    let stream = UnixStream::connect(listener_path).map_err(|source| SeccompError::Connect {
        path: listener_path.to_path_buf(),
        source,
    })?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&payload)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(|source| SeccompError::Send {
        path: listener_path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// The `linux.seccomp` object of `berth-runtime features`: what this build and the running
/// kernel/libseccomp accept.
pub fn features() -> serde_json::Value {
    let actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    let operators = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    let known_flags = [
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
    ];
    let probe = || ScmpFilterContext::new(ScmpAction::Allow).ok();
    let archs: Vec<String> = ALL_ARCHS
        .iter()
        .filter(|a| probe().is_some_and(|mut ctx| ctx.add_arch(arch(**a)).is_ok()))
        .map(|a| arch_name(*a))
        .collect();
    let supported_flags: Vec<String> = known_flags
        .iter()
        .filter(|f| probe().is_some_and(|mut ctx| set_flag(&mut ctx, **f).is_ok()))
        .map(|f| f.to_string())
        .collect();
    serde_json::json!({
        "enabled": true,
        "actions": actions,
        "operators": operators,
        "archs": archs,
        "knownFlags": known_flags.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        "supportedFlags": supported_flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).expect("valid seccomp json")
    }

    #[test]
    fn unknown_syscalls_are_warnings_not_errors() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .expect("compiles");
        assert_eq!(
            f.warnings(),
            ["seccomp: unknown syscall \"no_such_syscall_xyz\" skipped"]
        );
        assert!(!f.uses_notify());
    }

    #[test]
    fn unknown_action_or_op_is_refused_at_parse_naming_it() {
        let err = serde_json::from_value::<LinuxSeccomp>(serde_json::json!({
            "defaultAction": "SCMP_ACT_EXPLODE"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_ACT_EXPLODE"), "{err}");
        let err = serde_json::from_value::<LinuxSeccomp>(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_CMP_ALMOST"), "{err}");
    }

    #[test]
    fn arch_unsupported_by_libseccomp_is_an_error_naming_it() {
        // libseccomp < 2.6 has no LoongArch64; on newer ones this arch is accepted.
        let result = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]
        })));
        match result {
            Err(e) => assert!(e.to_string().contains("SCMP_ARCH_LOONGARCH64"), "{e}"),
            Ok(_) => println!("libseccomp {} knows LoongArch64", libseccomp_version()),
        }
        compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        })))
        .expect("x86 family");
    }

    #[test]
    fn notify_default_and_errno_range_are_refused() {
        let err = compile(&spec(
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
        ));
        assert!(matches!(err, Err(SeccompError::NotifyDefault)));
        let err = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000
        })));
        assert!(matches!(
            err,
            Err(SeccompError::ErrnoRange { value: 70000, .. })
        ));
    }

    #[test]
    fn arg_index_and_masked_eq_are_checked() {
        let err = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        })));
        assert!(matches!(err, Err(SeccompError::ArgIndex { index: 6, .. })));
        let err = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]}]
        })));
        assert!(matches!(err, Err(SeccompError::ArgValueTwo { .. })));
    }

    #[test]
    fn repeated_index_becomes_one_rule_per_arg() {
        let args: Vec<LinuxSeccompArg> = serde_json::from_value(serde_json::json!([
            {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}
        ]))
        .expect("args");
        assert_eq!(condition_sets("x", &args).expect("sets").len(), 2);
        assert_eq!(condition_sets("x", &args[..1]).expect("sets").len(), 1);
    }

    #[test]
    fn features_lists_actions_operators_and_native_arch() {
        let f = features();
        assert_eq!(f["enabled"], true);
        assert_eq!(f["actions"].as_array().map(Vec::len), Some(9));
        assert_eq!(f["operators"].as_array().map(Vec::len), Some(7));
        let archs = f["archs"].as_array().expect("archs");
        assert!(archs.iter().any(|a| a == "SCMP_ARCH_X86_64"), "{archs:?}");
        let supported = f["supportedFlags"].as_array().expect("flags");
        assert!(
            supported.iter().any(|a| a == "SECCOMP_FILTER_FLAG_TSYNC"),
            "{supported:?}"
        );
    }
}
