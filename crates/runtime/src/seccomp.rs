//! OCI `linux.seccomp` -> kernel filter, compiled by libseccomp; the notify fd and its delivery
//! to the seccomp agent at `listenerPath`; and the seccomp part of `berth-runtime features`.
//!
//! Two steps: [`compile`] (libseccomp builds the rules) then [`Filter::program`] (the classic-BPF
//! program plus the `seccomp(2)` flags, a plain serializable [`Program`]); [`Program::load`]
//! installs it with one syscall. Generating the BPF for a real engine profile costs ~10 ms, so
//! [`program_cached`] keeps programs in a directory keyed by the profile: a container created
//! with a profile already seen pays ~0.1 ms. The parent can build the program before cloning
//! and hand it to the init, which only loads it.
//!
//! Like runc: an unknown *syscall name* is skipped with a warning (profiles list syscalls of newer
//! kernels), while an action, architecture, operator or flag we can't honour is an error naming
//! it. libseccomp's own no_new_privs default is turned off: whether the process gets
//! no_new_privs is `process.noNewPrivileges`' decision (see `process` for the load order).

use std::hash::{Hash, Hasher};
use std::io::{IoSlice, Read, Seek};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_sys::attr::seccomp_flags;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{
    Arch, ContainerProcessState, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, State, SECCOMP_FD_NAME,
};
use serde::{Deserialize, Serialize};

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
    #[error("syscall {syscall}: argument index {index} is out of range (0..=5)")]
    ArgIndex { syscall: String, index: usize },
    #[error("add rule {action} for syscall {syscall}")]
    Rule {
        syscall: String,
        action: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("set libseccomp filter attribute: {what}")]
    Attribute {
        what: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("export seccomp filter as BPF")]
    Export(#[source] libseccomp::error::SeccompError),
    #[error("read exported BPF")]
    ExportRead(#[source] std::io::Error),
    #[error("load seccomp filter ({instructions} instructions, flags {flags:#x})")]
    Load {
        instructions: usize,
        flags: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp flag {0} is not supported by the running kernel")]
    FlagUnsupported(String),
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

/// A compiled filter (libseccomp's rules), not yet turned into BPF.
pub struct Filter {
    ctx: ScmpFilterContext,
    flags: u32,
    uses_notify: bool,
    warnings: Vec<String>,
}

impl Filter {
    /// Non-fatal problems met while compiling (skipped syscalls).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether any rule uses `SCMP_ACT_NOTIFY` (then loading returns the notify fd).
    pub fn uses_notify(&self) -> bool {
        self.uses_notify
    }

    /// Generates the BPF program (the expensive step) with its load flags.
    pub fn program(&self) -> Result<Program, SeccompError> {
        let memfd =
            nix::sys::memfd::memfd_create(c"berth-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .map_err(|e| SeccompError::ExportRead(e.into()))?;
        self.ctx.export_bpf(&memfd).map_err(SeccompError::Export)?;
        let mut file = std::fs::File::from(memfd);
        let mut bpf = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut bpf))
            .map_err(SeccompError::ExportRead)?;
        Ok(Program {
            bpf,
            flags: self.flags,
            uses_notify: self.uses_notify,
            warnings: self.warnings.clone(),
        })
    }

    /// Generates and loads the program; see [`Program::load`].
    pub fn load(self) -> Result<Option<OwnedFd>, SeccompError> {
        self.program()?.load()
    }
}

/// A seccomp filter ready for the kernel: classic BPF as libseccomp exports it, and the
/// `SECCOMP_FILTER_FLAG_*` bits to load it with. Serializable, to cross the fork or be cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    bpf: Vec<u8>,
    flags: u32,
    uses_notify: bool,
    warnings: Vec<String>,
}

impl Program {
    /// Non-fatal problems met while compiling (skipped syscalls).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether loading returns a notify fd.
    pub fn uses_notify(&self) -> bool {
        self.uses_notify
    }

    /// Number of BPF instructions.
    pub fn instructions(&self) -> usize {
        self.bpf.len() / berth_sys::attr::BPF_INSTRUCTION_SIZE
    }

    /// Installs the filter on the calling thread (on every thread with
    /// `SECCOMP_FILTER_FLAG_TSYNC`). Needs no_new_privs or `CAP_SYS_ADMIN`. Returns the notify
    /// fd (close-on-exec) when a rule uses `SCMP_ACT_NOTIFY`.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        berth_sys::attr::seccomp_set_filter(&self.bpf, self.flags).map_err(|source| {
            SeccompError::Load {
                instructions: self.instructions(),
                flags: self.flags,
                source,
            }
        })
    }
}

/// Compiles `seccomp` into a loadable [`Program`] (uncached).
pub fn program(seccomp: &LinuxSeccomp) -> Result<Program, SeccompError> {
    compile(seccomp)?.program()
}

/// Like [`program`], through a cache directory (created if missing) of programs keyed by the
/// profile, libseccomp's version and this build. A hit is checked against the full profile
/// text, so a hash collision can never load another profile's filter. Cache trouble (unwritable
/// directory, corrupt entry) only costs a recompilation.
pub fn program_cached(seccomp: &LinuxSeccomp, cache_dir: &Path) -> Result<Program, SeccompError> {
    let key_text = serde_json::to_string(seccomp).map_err(SeccompError::Encode)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        key_text.as_str(),
        libseccomp_version(),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
    )
        .hash(&mut hasher);
    let path = cache_dir.join(format!("{:016x}.json", hasher.finish()));

    #[derive(Serialize, Deserialize)]
    struct Entry {
        profile: String,
        program: Program,
    }
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) {
            if entry.profile == key_text {
                return Ok(entry.program);
            }
        }
    }
    let program = program(seccomp)?;
    let entry = Entry {
        profile: key_text,
        program,
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        // Write-then-rename so a concurrent reader never sees half an entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(cache_dir)
            .and_then(|_| std::fs::write(&tmp, bytes))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(entry.program)
}

/// Compiles and loads `seccomp`; returns the notify fd when any rule uses `SCMP_ACT_NOTIFY`
/// (the caller sends it to `listenerPath` with [`send_notify_fd`]).
pub fn load(seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>, SeccompError> {
    program(seccomp)?.load()
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
        // The spec's `value` is the mask and `valueTwo` the value compared after masking;
        // `valueTwo` is optional and defaults to 0 (dockerd's default profile omits it).
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
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

fn flag_bit(flag: LinuxSeccompFilterFlag) -> u32 {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => seccomp_flags::TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => seccomp_flags::LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => seccomp_flags::SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            seccomp_flags::WAIT_KILLABLE_RECV
        }
    }
}

/// Whether the running kernel accepts filter flag `bit` (WAIT_KILLABLE_RECV is only valid, and
/// so only probed, together with NEW_LISTENER).
fn kernel_supports(bit: u32) -> bool {
    let probe = if bit == seccomp_flags::WAIT_KILLABLE_RECV {
        bit | seccomp_flags::NEW_LISTENER
    } else {
        bit
    };
    berth_sys::attr::seccomp_flag_supported(probe)
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
    let attr = |what| move |source| SeccompError::Attribute { what, source };
    ctx.set_ctl_nnp(false)
        .map_err(attr("no implicit no_new_privs"))?;
    // A binary tree of syscall numbers instead of a linear list: for a ~400-syscall engine
    // profile the kernel attaches it 2-5x faster (its per-syscall action cache emulates the
    // filter) and evaluates it in log time.
    ctx.set_ctl_optimize(2)
        .map_err(attr("optimize level 2 (binary tree)"))?;

    for a in spec.architectures().iter().flatten() {
        ctx.add_arch(arch(*a))
            .map_err(|source| SeccompError::Arch {
                name: arch_name(*a),
                version: libseccomp_version(),
                source,
            })?;
    }
    let mut flags = 0;
    for flag in spec.flags().iter().flatten() {
        let bit = flag_bit(*flag);
        if !kernel_supports(bit) {
            return Err(SeccompError::FlagUnsupported(flag.to_string()));
        }
        flags |= bit;
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
    if uses_notify {
        flags |= seccomp_flags::NEW_LISTENER;
        if flags & seccomp_flags::TSYNC != 0 {
            // TSYNC alone reports a thread id on failure, which is ambiguous with a listener fd.
            flags |= seccomp_flags::TSYNC_ESRCH;
        }
    } else {
        // The kernel accepts WAIT_KILLABLE_RECV only with a listener; without one it means
        // nothing.
        flags &= !seccomp_flags::WAIT_KILLABLE_RECV;
    }
    Ok(Filter {
        ctx,
        flags,
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
    state: &State,
    metadata: Option<&str>,
) -> Result<(), SeccompError> {
    let mut message = ContainerProcessState::default();
    message.set_version(state.version().clone());
    message.set_fds(vec![SECCOMP_FD_NAME.to_string()]);
    message.set_pid(pid);
    message.set_metadata(metadata.map(str::to_string));
    message.set_state(state.clone());
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
        .filter(|f| kernel_supports(flag_bit(**f)))
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
    fn arg_index_is_checked_and_masked_eq_value_two_defaults_to_0() {
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
        assert!(err.is_ok(), "{:?}", err.err());
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

    #[test]
    fn cached_programs_are_reused_and_checked_against_the_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let a = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "bogus_call"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let b = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_KILL"}]
        }));
        let first = program_cached(&a, &cache).expect("miss");
        assert_eq!(first, program(&a).expect("uncached"));
        assert_eq!(first.warnings().len(), 1, "warnings survive the cache");
        let entries: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").collect();
        assert_eq!(entries.len(), 1);
        let entry = entries[0].as_ref().expect("entry").path();
        assert_eq!(program_cached(&a, &cache).expect("hit"), first);

        // An entry holding another profile under this key (a collision) is not used.
        let other = program(&b).expect("b");
        let forged = serde_json::json!({
            "profile": serde_json::to_string(&b).expect("b json"),
            "program": other,
        });
        std::fs::write(&entry, serde_json::to_vec(&forged).expect("json")).expect("forge");
        assert_eq!(program_cached(&a, &cache).expect("recompiled"), first);
        // A corrupt entry only costs a recompilation.
        std::fs::write(&entry, b"garbage").expect("corrupt");
        assert_eq!(program_cached(&a, &cache).expect("recompiled"), first);
        // An unwritable cache location still yields the program.
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("file");
        assert_eq!(
            program_cached(&a, &file.join("sub")).expect("no cache"),
            first
        );
    }

    #[test]
    fn notify_sets_new_listener_and_waitkill_needs_it() {
        let with = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .expect("compiles");
        assert_eq!(
            with.flags,
            seccomp_flags::TSYNC
                | seccomp_flags::WAIT_KILLABLE_RECV
                | seccomp_flags::NEW_LISTENER
                | seccomp_flags::TSYNC_ESRCH
        );
        let without = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        })))
        .expect("compiles");
        assert_eq!(without.flags, seccomp_flags::LOG);
    }
}
