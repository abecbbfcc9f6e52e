//! bpf(2): load and attach the cgroup v2 device-filter program.
//!
//! Only what the cgroup v2 device controller needs: load a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program from raw instructions, attach it to a cgroup directory fd with `BPF_F_ALLOW_MULTI`,
//! list the programs already attached there, get an fd for one of them by id, and detach it.
//! The program itself is generated (and unit tested) in `berth-cgroups`; this module only moves
//! bytes across the syscall boundary.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode (class | size/op | mode/source).
    pub code: u8,
    /// Destination register in the low nibble, source register in the high nibble.
    pub regs: u8,
    /// Signed offset (jumps, memory accesses).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// Builds an instruction from its fields; `dst` and `src` are register numbers 0..=10.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// Destination register.
    pub const fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    /// Source register.
    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` attach type.
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: several programs may be attached to one cgroup; all must allow.
pub const F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The `BPF_*_GET_FD_BY_ID` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls bpf(2) with one of the attr structs above.
///
/// # Safety
/// `attr` must be the struct the kernel expects for `cmd`, and every pointer stored in it must
/// be valid for the access the kernel makes during the call.
unsafe fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: the caller guarantees `attr` matches `cmd` and its embedded pointers are valid;
    // `attr` itself is a live, exclusively borrowed value of `size_of::<T>()` bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    Errno::result(ret)
}

/// Why loading a program failed: the errno and, when the verifier said something, its log.
#[derive(Debug, thiserror::Error)]
#[error("bpf prog load: {errno}{}", if log.is_empty() { String::new() } else { format!(": verifier: {log}") })]
pub struct LoadError {
    /// The errno of the failed `BPF_PROG_LOAD`.
    #[source]
    pub errno: Errno,
    /// The verifier log (empty if the kernel gave none).
    pub log: String,
}

fn prog_load_raw(insns: &[Insn], license: &CStr, log: Option<&mut [u8]>) -> nix::Result<OwnedFd> {
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| Errno::E2BIG)?;
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).map_err(|_| Errno::E2BIG)?;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: `attr` is a ProgLoadAttr for BPF_PROG_LOAD; `insns`, `license` and the optional log
    // buffer are borrowed for the whole call and their lengths are the ones stored in `attr`.
    let fd = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr)? };
    let fd = libc::c_int::try_from(fd).map_err(|_| Errno::EOVERFLOW)?;
    // SAFETY: on success BPF_PROG_LOAD returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program; the fd is close-on-exec.
///
/// On failure the load is retried once with the verifier log enabled, so the error carries the
/// verifier's reason.
pub fn prog_load_cgroup_device(insns: &[Insn], license: &CStr) -> Result<OwnedFd, LoadError> {
    match prog_load_raw(insns, license, None) {
        Ok(fd) => Ok(fd),
        Err(errno) => {
            let mut buf = vec![0u8; 64 * 1024];
            match prog_load_raw(insns, license, Some(&mut buf)) {
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    let log = String::from_utf8_lossy(&buf[..end]).trim().to_string();
                    Err(LoadError { errno, log })
                }
            }
        }
    }
}

/// Attaches a loaded device program to the cgroup directory `cgroup` (`BPF_CGROUP_DEVICE`).
pub fn prog_attach_cgroup_device(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
) -> nix::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(cgroup)?,
        attach_bpf_fd: fd_u32(prog)?,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is an AttachAttr for BPF_PROG_ATTACH and holds no pointers.
    unsafe { sys_bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// Detaches the device program `prog` from the cgroup directory `cgroup`.
pub fn prog_detach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(cgroup)?,
        attach_bpf_fd: fd_u32(prog)?,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is an AttachAttr for BPF_PROG_DETACH and holds no pointers.
    unsafe { sys_bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// Ids of the device programs attached directly to the cgroup directory `cgroup`.
pub fn prog_query_cgroup_device(cgroup: BorrowedFd<'_>) -> nix::Result<Vec<u32>> {
    let target_fd = fd_u32(cgroup)?;
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd,
            attach_type: ATTACH_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).map_err(|_| Errno::E2BIG)?,
            ..Default::default()
        };
        // SAFETY: `attr` is a QueryAttr for BPF_PROG_QUERY; `prog_ids` points to `ids`, which is
        // borrowed for the call and has room for `prog_cnt` u32s.
        match unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(Errno::ENOSPC) => ids.resize(attr.prog_cnt as usize + 16, 0),
            Err(e) => return Err(e),
        }
    }
}

/// Opens a close-on-exec fd for the loaded program with id `id`.
pub fn prog_get_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: `attr` is a GetIdAttr for BPF_PROG_GET_FD_BY_ID and holds no pointers.
    let fd = unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)? };
    let fd = libc::c_int::try_from(fd).map_err(|_| Errno::EOVERFLOW)?;
    // SAFETY: on success the kernel returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: BorrowedFd<'_>) -> nix::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| Errno::EBADF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insn_layout_matches_struct_bpf_insn() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let i = Insn::new(0x61, 2, 1, 4, -1);
        assert_eq!(i.dst(), 2);
        assert_eq!(i.src(), 1);
        assert_eq!(i.regs, 0x12);
    }

    #[test]
    fn attr_sizes_match_the_kernel_abi() {
        // Offsets from include/uapi/linux/bpf.h: expected_attach_type ends at byte 72.
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 20);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
    }

    #[test]
    fn loads_a_trivial_allow_program() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: loading bpf programs needs root");
            return;
        }
        // r0 = 1; exit
        let prog = [Insn::new(0xb4, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)];
        let fd = prog_load_cgroup_device(&prog, c"GPL").expect("load allow-all program");
        assert!(fd.as_raw_fd() > 2);
        // An invalid program (no exit) is refused with the verifier's reason.
        let err = prog_load_cgroup_device(&prog[..1], c"GPL").expect_err("program without exit");
        assert!(!err.log.is_empty(), "verifier log expected: {err}");
    }
}
