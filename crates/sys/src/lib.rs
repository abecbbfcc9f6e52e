//! berth-sys: the only crate in berth allowed to use `unsafe`.
//!
//! It wraps the Linux system calls the rest of berth needs and that safe crates (`nix`) don't cover,
//! or cover in a way that can't be used after `fork` in a multithreaded program: clone/fork,
//! setns, the new mount API and openat2, pidfds, SCM_RIGHTS fd passing, exec, and the
//! CVE-2019-5736 defence. Every `unsafe` block carries a `// SAFETY:` comment.

pub mod attr;
pub mod bpf;
pub mod exe;
pub mod fdpass;
pub mod mem;
pub mod mount;
pub mod netns;
pub mod process;
