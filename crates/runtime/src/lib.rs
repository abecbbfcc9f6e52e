//! berth-runtime: the libcontainer of berth.
//!
//! It turns an OCI bundle (rootfs + config.json) into a running container made straight from Linux
//! namespaces, cgroups, mounts, capabilities and seccomp, and drives it through the OCI state
//! machine (create, start, kill, delete, exec, pause/resume, update). The `berth-runtime` binary
//! (src/main.rs) is thin glue (with a small hand-written parser, src/cli.rs) over this library with runc's command line.
//!
//! Module map (see docs/ARCHITECTURE.md):
//! - `container`: one file per lifecycle verb, states checked before acting (`state.rs`).
//! - `init`: what runs in the cloned child: namespaces, user, rootfs, hooks, process attributes, exec.
//! - `rootfs`: mounts (resolved inside the rootfs), devices, pivot_root, masked/readonly paths.
//! - `process`: process attributes (capabilities, rlimits, user/groups, umask, oom, ioprio, no_new_privs).
//! - `seccomp`: OCI seccomp config -> kernel filter.
//! - `hooks`: the six OCI hook kinds, state on stdin, timeouts.
pub mod container;
pub mod error;
pub mod hooks;
pub mod init;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod state;
