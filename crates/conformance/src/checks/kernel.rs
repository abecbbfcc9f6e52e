//! Kernel-side settings of the container: `linux.sysctl` values and the seccomp filter (mode in
//! /proc/self/status, and the configured errno of the syscalls the checker knows how to probe).

use crate::procfs::{self, Status};
use crate::spec::{Seccomp, Spec};
use crate::tap::{Outcome, Tap};
use nix::errno::Errno;
use std::io::Write;

pub fn check<W: Write>(spec: &Spec, tap: &mut Tap<W>) {
    let Some(linux) = &spec.linux else { return };
    for (key, want) in &linux.sysctl {
        tap.record(&format!("linux.sysctl {key}"), sysctl(key, want));
    }
    if let Some(p) = &linux.personality {
        tap.record("linux.personality", personality(&p.domain));
    }
    if let Some(seccomp) = &linux.seccomp {
        let mode = Status::read_self().and_then(|s| s.number("Seccomp"));
        let r = match mode {
            Ok(2) => Ok(()),
            Ok(m) => Err(format!("Seccomp mode is {m}, expected 2 (filter)")),
            Err(e) => Err(e),
        };
        tap.record("linux.seccomp: a filter is installed", r);
        probes(seccomp, tap);
    }
}

/// The execution domain in /proc/self/personality (low byte: PER_LINUX 0, PER_LINUX32 8).
fn personality(domain: &str) -> Result<(), String> {
    let want = match domain {
        "LINUX" => 0,
        "LINUX32" => 8,
        other => return Err(format!("unknown personality domain {other}")),
    };
    let text = procfs::read_trimmed("/proc/self/personality")?;
    let got =
        u64::from_str_radix(&text, 16).map_err(|_| format!("personality {text:?} is not hex"))?;
    if got & 0xff == want {
        Ok(())
    } else {
        Err(format!("personality is {text}, expected domain {domain}"))
    }
}

fn sysctl(key: &str, want: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let got = procfs::read_trimmed(&path)?;
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    if norm(&got) == norm(want) {
        Ok(())
    } else {
        Err(format!("{path} is {got:?}, expected {want:?}"))
    }
}

/// The errno a syscall gets under `seccomp`, if the filter answers it with an errno
/// (`None` = allowed or not answered with an errno, so not probed).
pub fn expected_errno(seccomp: &Seccomp, syscall: &str) -> Option<i32> {
    let rule = seccomp
        .syscalls
        .iter()
        .find(|r| r.args.is_empty() && r.names.iter().any(|n| n == syscall));
    let (action, errno) = match rule {
        Some(r) => (r.action.as_str(), r.errno_ret),
        None => (seccomp.default_action.as_str(), seccomp.default_errno_ret),
    };
    (action == "SCMP_ACT_ERRNO").then(|| errno.unwrap_or(Errno::EPERM as i32))
}

/// Makes one syscall and returns its errno, or None when it succeeded.
type Probe = fn() -> Option<i32>;

/// Calls every denied syscall the checker can call safely and compares its errno.
fn probes<W: Write>(seccomp: &Seccomp, tap: &mut Tap<W>) {
    let probes: [(&str, Probe); 2] = [
        ("getcwd", || {
            std::env::current_dir().err().and_then(|e| e.raw_os_error())
        }),
        ("uname", || {
            nix::sys::utsname::uname().err().map(|e| e as i32)
        }),
    ];
    for (name, call) in probes {
        let Some(want) = expected_errno(seccomp, name) else {
            continue;
        };
        let desc = format!("linux.seccomp: {name} fails with errno {want}");
        let outcome = match call() {
            Some(got) if got == want => Outcome::Pass,
            Some(got) => Outcome::Fail(format!("{name} failed with errno {got}")),
            None => Outcome::Fail(format!("{name} succeeded")),
        };
        tap.record(&desc, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_rules_and_defaults() {
        let s: Seccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"},
                {"names":["uname"],"action":"SCMP_ACT_ERRNO","errnoRet":22}]}"#,
        )
        .expect("json");
        assert_eq!(expected_errno(&s, "getcwd"), Some(1));
        assert_eq!(expected_errno(&s, "uname"), Some(22));
        assert_eq!(expected_errno(&s, "read"), None);
    }

    #[test]
    fn sysctl_compares_normalised_whitespace() {
        let got = procfs::read_trimmed("/proc/sys/net/ipv4/ip_local_port_range").expect("read");
        let spaced = got.split_whitespace().collect::<Vec<_>>().join("  ");
        assert!(sysctl("net.ipv4.ip_local_port_range", &spaced).is_ok());
        assert!(sysctl("net.ipv4.ip_local_port_range", "1 2").is_err());
    }
}
