//! Every check the checker runs inside the container, grouped by what they look at. Each group
//! reads the config and records one TAP line per configured item.

pub mod fs;
pub mod kernel;
pub mod ns;
pub mod process;

use crate::spec::{Expect, Spec};
use crate::tap::Tap;
use std::io::Write;

/// Runs every group in an order that keeps probes from disturbing later checks
/// (seccomp probes last: they may change nothing, but they run denied syscalls).
pub fn run_all<W: Write>(spec: &Spec, expect: &Expect, tap: &mut Tap<W>) {
    if let Some(p) = &spec.process {
        process::check(p, tap);
    }
    ns::check(spec, expect, tap);
    fs::check(spec, expect, tap);
    cgroups(spec, tap);
    kernel::check(spec, tap);
}

/// Resources read back from inside, through the container's own cgroup mounts.
fn cgroups<W: Write>(spec: &Spec, tap: &mut Tap<W>) {
    let Some(res) = spec.linux.as_ref().and_then(|l| l.resources.as_ref()) else {
        return;
    };
    let proc_cgroup = match std::fs::read_to_string("/proc/self/cgroup") {
        Ok(s) => s,
        Err(e) => {
            tap.fail("read /proc/self/cgroup", e.to_string());
            return;
        }
    };
    let mounts = crate::mountinfo::read_self().unwrap_or_default();
    let locate = |ctrl: &str| crate::cgroups::locate(&proc_cgroup, &mounts, ctrl);
    for (desc, outcome) in crate::cgroups::check(res, &locate) {
        tap.record(&format!("{desc} (inside)"), outcome);
    }
}
