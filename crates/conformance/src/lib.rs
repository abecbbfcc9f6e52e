//! berth-conformance: the pieces of berth's OCI runtime-spec conformance suite shared by the
//! in-container checker (`berth-checker`, src/main.rs) and the harness (tests/*.rs): the config
//! subset both read, a TAP writer, a mountinfo parser, cgroup read-back and the checks.

pub mod cgroups;
pub mod checks;
pub mod mountinfo;
pub mod procfs;
pub mod spec;
pub mod tap;
