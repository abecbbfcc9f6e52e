//! CVE-2019-5736 defence: make sure the running runtime executes from a file that can't be opened
//! for writing through `/proc/<pid>/exe`.
//!
//! Preferred: a *detached read-only bind mount* of our own binary (`open_tree(OPEN_TREE_CLONE)` +
//! `mount_setattr(MOUNT_ATTR_RDONLY)`), executed with `execveat(AT_EMPTY_PATH)`. No copy is made,
//! so this costs one exec instead of youki's ~5 ms memfd copy. Fallback: a sealed memfd copy.
//! An environment marker makes the re-exec happen once.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// How the runtime binary was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMethod {
    /// Detached read-only mount clone.
    ReadOnlyMount,
    /// Sealed memfd copy.
    Memfd,
}

/// Errors of sealing.
#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    /// Neither the read-only mount nor the memfd copy could be made.
    #[error("seal runtime binary: {0}")]
    Seal(#[source] Errno),
    /// execveat of the sealed binary failed.
    #[error("re-exec sealed runtime binary: {0}")]
    Exec(#[source] Errno),
}

/// Opens a detached, read-only mount clone of `/proc/self/exe`'s file.
pub fn open_readonly_clone() -> nix::Result<OwnedFd> {
    let path = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    open_readonly_clone_of(&path)
}

/// Opens a detached, read-only (and nosuid, nodev) bind-mount clone of the file at `path`.
pub fn open_readonly_clone_of(path: &std::path::Path) -> nix::Result<OwnedFd> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_tree takes a dirfd, a NUL-terminated path alive for the call, and flags; it
    // returns a new fd or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            cpath.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh fd returned by the kernel, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(ret as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr (size passed) alive for the call; path "" with
    // AT_EMPTY_PATH refers to the fd itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(fd)
}

/// Copies `/proc/self/exe` into a memfd and seals it against any write.
pub fn sealed_memfd_copy() -> nix::Result<OwnedFd> {
    let mut src = std::fs::File::open("/proc/self/exe")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    let mfd = memfd_create(
        c"berth-runtime",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut dst = std::fs::File::from(mfd);
    // std::io::copy uses copy_file_range between two files: an in-kernel copy.
    std::io::copy(&mut src, &mut dst)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    let mfd = OwnedFd::from(dst);
    fcntl(
        &mfd,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SEAL
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE,
        ),
    )?;
    Ok(mfd)
}

/// Re-executes the current program from a sealed copy unless `marker` is already in the
/// environment (then returns `Ok(None)` after removing the marker). On success never returns.
pub fn ensure_sealed(marker: &str) -> Result<Option<SealMethod>, ExeError> {
    if let Some(v) = std::env::var_os(marker) {
        std::env::remove_var(marker);
        return Ok(match v.as_encoded_bytes() {
            b"memfd" => Some(SealMethod::Memfd),
            _ => Some(SealMethod::ReadOnlyMount),
        });
    }
    let (fd, method) = match open_readonly_clone() {
        Ok(fd) => (fd, SealMethod::ReadOnlyMount),
        Err(_) => (
            sealed_memfd_copy().map_err(ExeError::Seal)?,
            SealMethod::Memfd,
        ),
    };
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()).map_err(|_| ExeError::Exec(Errno::EINVAL)))
        .collect::<Result<_, _>>()?;
    let tag = if method == SealMethod::Memfd {
        "memfd"
    } else {
        "mount"
    };
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.into_vec()).ok()
        })
        .collect();
    envp.push(CString::new(format!("{marker}={tag}")).map_err(|_| ExeError::Exec(Errno::EINVAL))?);
    Err(ExeError::Exec(crate::process::execveat_fd(
        &fd, &argv, &envp,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_clone_refuses_write_open() {
        let dir = std::env::temp_dir().join(format!("berth-sys-exe-{}", std::process::id()));
        std::fs::write(&dir, b"#!/bin/sh\n").expect("write temp file");
        let res = open_readonly_clone_of(&dir);
        let _ = std::fs::remove_file(&dir);
        let fd = match res {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("SKIP: open_tree/mount_setattr unavailable: {e}");
                return;
            }
        };
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect_err("must be read-only");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    }

    #[test]
    fn memfd_copy_is_sealed() {
        let fd = sealed_memfd_copy().expect("memfd");
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let res = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(b"x")
            });
        assert!(res.is_err(), "sealed memfd accepted a write");
    }
}
