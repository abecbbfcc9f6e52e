//! The process the runtime started: args, env, cwd, user and groups, umask, noNewPrivileges,
//! capability sets, rlimits, oomScoreAdj, ioPriority and the AppArmor profile.

use crate::procfs::{self, Status};
use crate::spec::{Capabilities, Process};
use crate::tap::{Outcome, Tap};
use nix::sys::resource::{getrlimit, Resource};
use std::collections::BTreeSet;
use std::io::Write;

pub fn check<W: Write>(p: &Process, tap: &mut Tap<W>) {
    tap.record("process.args", args(p));
    tap.record("process.env", env(p));
    if !p.cwd.is_empty() {
        tap.record(&format!("process.cwd is {}", p.cwd), cwd(p));
    }
    let status = match Status::read_self() {
        Ok(s) => s,
        Err(why) => {
            tap.fail("read /proc/self/status", why);
            return;
        }
    };
    tap.record("process.user.uid and gid", user(p, &status));
    tap.record("process.user.additionalGids", groups(p, &status));
    if let Some(umask) = p.user.umask {
        let r = status.number("Umask").and_then(|got| {
            if got == u64::from(umask) {
                Ok(())
            } else {
                Err(format!("umask is {got:04o}, expected {umask:04o}"))
            }
        });
        tap.record("process.user.umask", r);
    }
    let r = status.number("NoNewPrivs").and_then(|got| {
        if (got == 1) == p.no_new_privileges {
            Ok(())
        } else {
            Err(format!(
                "NoNewPrivs is {got}, expected {}",
                p.no_new_privileges
            ))
        }
    });
    tap.record("process.noNewPrivileges", r);
    capabilities(p, &status, tap);
    for rl in &p.rlimits {
        tap.record(
            &format!("process.rlimits {}", rl.kind),
            rlimit(&rl.kind, rl.soft, rl.hard),
        );
    }
    if let Some(adj) = p.oom_score_adj {
        let r = procfs::read_trimmed("/proc/self/oom_score_adj").and_then(|got| {
            if got == adj.to_string() {
                Ok(())
            } else {
                Err(format!("oom_score_adj is {got}, expected {adj}"))
            }
        });
        tap.record("process.oomScoreAdj", r);
    }
    if let Some(io) = &p.io_priority {
        tap.record("process.ioPriority", io_priority(&io.class, io.priority));
    }
    // execCPUAffinity is not applicable to the init process: tests/cli.rs checks it on exec.
    if let Some(sched) = &p.scheduler {
        tap.record("process.scheduler", scheduler(sched));
    }
    if p.terminal {
        tap.record(
            "process.terminal: stdio is the container's terminal",
            terminal(),
        );
    }
    tap.record("no file descriptors leaked beyond stdio", leaked_fds());
    if let Some(profile) = p.apparmor_profile.as_deref().filter(|s| !s.is_empty()) {
        tap.record("process.apparmorProfile", apparmor(profile));
    }
}

/// Policy, nice and real-time priority from /proc/self/stat (fields 41, 19 and 40).
fn scheduler(want: &crate::spec::Scheduler) -> Result<(), String> {
    let policy = match want.policy.as_str() {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_ISO" => 4,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        other => return Err(format!("unknown scheduler policy {other}")),
    };
    let stat = procfs::read_trimmed("/proc/self/stat")?;
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // f[0] is field 3 (state).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    let mut wrong = Vec::new();
    if field(41) != Some(policy) {
        wrong.push(format!(
            "policy {:?}, expected {policy} ({})",
            field(41),
            want.policy
        ));
    }
    if let Some(nice) = want.nice {
        if field(19) != Some(i64::from(nice)) {
            wrong.push(format!("nice {:?}, expected {nice}", field(19)));
        }
    }
    if let Some(prio) = want.priority.filter(|_| policy == 1 || policy == 2) {
        if field(40) != Some(i64::from(prio)) {
            wrong.push(format!("rt_priority {:?}, expected {prio}", field(40)));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// With `process.terminal` the three stdio fds are a tty, and it is the controlling terminal
/// (tty_nr, field 7 of /proc/self/stat, is set).
fn terminal() -> Result<(), String> {
    use std::io::IsTerminal;
    let ttys = [
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    ];
    if let Some(fd) = ttys.iter().position(|t| !t) {
        return Err(format!("fd {fd} is not a terminal"));
    }
    let stat = procfs::read_trimmed("/proc/self/stat")?;
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // Fields after the comm: state(3) ppid(4) pgrp(5) session(6) tty_nr(7).
    let tty_nr = after_comm.split_whitespace().nth(4).unwrap_or("0");
    if tty_nr == "0" {
        return Err("no controlling terminal (tty_nr 0)".into());
    }
    Ok(())
}

/// A CPU list (`0-2,4`) as a sorted set.
pub fn cpu_set(list: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                out.extend(a.trim().parse::<u32>().ok()?..=b.trim().parse::<u32>().ok()?)
            }
            None => {
                out.insert(part.trim().parse().ok()?);
            }
        }
    }
    Some(out)
}

/// Every fd above 2 (other than the one listing /proc/self/fd) was opened by the runtime and
/// leaked into the container (the CVE-2024-21626 class of bugs).
fn leaked_fds() -> Result<(), String> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
    let mut leaked = Vec::new();
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if fd <= 2 {
            continue;
        }
        match std::fs::read_link(e.path()) {
            // The directory being listed.
            Ok(t) if t.to_string_lossy().ends_with("/fd") && t.starts_with("/proc") => {}
            // Gone by now: it was the read_dir fd itself.
            Err(_) => {}
            Ok(t) => leaked.push(format!("{fd} -> {}", t.display())),
        }
    }
    if leaked.is_empty() {
        Ok(())
    } else {
        Err(format!("open fds: {}", leaked.join(", ")))
    }
}

fn args(p: &Process) -> Result<(), String> {
    let raw =
        std::fs::read("/proc/self/cmdline").map_err(|e| format!("/proc/self/cmdline: {e}"))?;
    let got: Vec<String> = raw
        .strip_suffix(&[0])
        .unwrap_or(&raw)
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if got == p.args {
        Ok(())
    } else {
        Err(format!("args are {got:?}, expected {:?}", p.args))
    }
}

fn env(p: &Process) -> Result<(), String> {
    let mut wrong = Vec::new();
    for kv in &p.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        match std::env::var_os(k) {
            Some(got) if got == v => {}
            got => wrong.push(format!("{k}={got:?}, expected {v:?}")),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

fn cwd(p: &Process) -> Result<(), String> {
    // readlink, not getcwd(2): a seccomp scenario may deny getcwd.
    let got = std::fs::read_link("/proc/self/cwd").map_err(|e| format!("/proc/self/cwd: {e}"))?;
    let want = super::fs::clean(&p.cwd);
    if got.as_os_str() == want.as_str() {
        Ok(())
    } else {
        Err(format!("cwd is {}, expected {want}", got.display()))
    }
}

fn user(p: &Process, status: &Status) -> Result<(), String> {
    let uids = status.ids("Uid")?;
    let gids = status.ids("Gid")?;
    if uids.iter().any(|u| *u != p.user.uid) {
        return Err(format!(
            "Uid (real, effective, saved, fs) is {uids:?}, expected {}",
            p.user.uid
        ));
    }
    if gids.iter().any(|g| *g != p.user.gid) {
        return Err(format!(
            "Gid (real, effective, saved, fs) is {gids:?}, expected {}",
            p.user.gid
        ));
    }
    Ok(())
}

fn groups(p: &Process, status: &Status) -> Result<(), String> {
    let got: BTreeSet<u32> = status
        .get("Groups")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    let want: BTreeSet<u32> = p.user.additional_gids.iter().copied().collect();
    // The primary gid may also be listed as a supplementary group; nothing else may be.
    let extra: Vec<_> = got
        .difference(&want)
        .filter(|g| **g != p.user.gid)
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    if extra.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(format!("groups are {got:?}, expected {want:?}"))
    }
}

/// Capability names in kernel bit order (include/uapi/linux/capability.h).
pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The mask of a list of capability names; names this kernel doesn't know are an error.
pub fn cap_mask(names: &[String], last_cap: u32) -> Result<u64, String> {
    let mut mask = 0u64;
    for n in names {
        let bit = CAP_NAMES
            .iter()
            .position(|c| c == n)
            .ok_or_else(|| format!("unknown capability {n}"))?;
        if bit as u32 <= last_cap {
            mask |= 1 << bit;
        }
    }
    Ok(mask)
}

pub fn mask_names(mask: u64) -> Vec<&'static str> {
    (0..CAP_NAMES.len())
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| CAP_NAMES[b])
        .collect()
}

/// The sets the kernel leaves after `execve` (capabilities(7)), given what the runtime set before
/// it. For uid 0 the file sets count as full, so permitted = inheritable | bounding and
/// effective = permitted; for any other uid only the ambient set survives in permitted/effective.
pub fn expected_after_exec(
    c: &Capabilities,
    uid: u32,
    last_cap: u32,
) -> Result<[(&'static str, u64); 5], String> {
    let bnd = cap_mask(&c.bounding, last_cap)?;
    let inh = cap_mask(&c.inheritable, last_cap)?;
    let amb = cap_mask(&c.ambient, last_cap)? & inh & cap_mask(&c.permitted, last_cap)?;
    let (prm, eff) = if uid == 0 {
        let prm = inh | bnd | amb;
        (prm, prm)
    } else {
        (amb, amb)
    };
    Ok([
        ("CapBnd", bnd),
        ("CapInh", inh),
        ("CapAmb", amb),
        ("CapPrm", prm),
        ("CapEff", eff),
    ])
}

fn capabilities<W: Write>(p: &Process, status: &Status, tap: &mut Tap<W>) {
    let Some(c) = &p.capabilities else { return };
    let last_cap = procfs::read_trimmed("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let expected = match expected_after_exec(c, p.user.uid, last_cap) {
        Ok(e) => e,
        Err(why) => {
            tap.fail("process.capabilities", why);
            return;
        }
    };
    for (field, want) in expected {
        let r = status.hex(field).and_then(|got| {
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "{field} is {got:016x}, expected {want:016x}; missing {:?}, extra {:?}",
                    mask_names(want & !got),
                    mask_names(got & !want)
                ))
            }
        });
        tap.record(&format!("process.capabilities {field}"), r);
    }
}

pub fn rlimit_resource(name: &str) -> Option<Resource> {
    Some(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => return None,
    })
}

fn rlimit(name: &str, soft: u64, hard: u64) -> Result<(), String> {
    let res = rlimit_resource(name).ok_or_else(|| format!("unknown rlimit {name}"))?;
    let (s, h) = getrlimit(res).map_err(|e| format!("getrlimit({name}): {e}"))?;
    if (s, h) == (soft, hard) {
        Ok(())
    } else {
        Err(format!(
            "{name} is soft {s} hard {h}, expected soft {soft} hard {hard}"
        ))
    }
}

/// Asks busybox's `ionice -p` (the rootfs is busybox) for this process's I/O class and priority.
fn io_priority(class: &str, prio: i64) -> Outcome {
    let want = match class {
        "IOPRIO_CLASS_RT" => "realtime",
        "IOPRIO_CLASS_BE" => "best-effort",
        "IOPRIO_CLASS_IDLE" => "idle",
        other => return Outcome::Fail(format!("unknown ioPriority class {other}")),
    };
    let ionice = ["/bin/ionice", "/usr/bin/ionice", "/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(ionice) = ionice else {
        return Outcome::Skip("no ionice in the rootfs".into());
    };
    let mut cmd = std::process::Command::new(ionice);
    if ionice.ends_with("busybox") {
        cmd.arg("ionice");
    }
    let out = match cmd.arg("-p").arg(std::process::id().to_string()).output() {
        Ok(o) => o,
        Err(e) => return Outcome::Skip(format!("cannot run {ionice}: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // "best-effort: prio 4"
    let (got_class, got_prio) = match text.split_once(": prio ") {
        Some((c, p)) => (c.to_string(), p.trim().parse::<i64>().ok()),
        None => (text.clone(), None),
    };
    if got_class != want || (want != "idle" && got_prio != Some(prio)) {
        return Outcome::Fail(format!(
            "ionice says {text:?}, expected {want}: prio {prio}"
        ));
    }
    Outcome::Pass
}

fn apparmor(profile: &str) -> Outcome {
    let enabled = procfs::read_trimmed("/sys/module/apparmor/parameters/enabled");
    if enabled.as_deref() != Ok("Y") {
        return Outcome::Skip("AppArmor is not enabled on this kernel".into());
    }
    match procfs::read_trimmed("/proc/self/attr/current") {
        Ok(cur) if cur == profile || cur.starts_with(&format!("{profile} (")) => Outcome::Pass,
        Ok(cur) => Outcome::Fail(format!("profile is {cur}, expected {profile}")),
        Err(e) => Outcome::Fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(b: &[&str], e: &[&str], i: &[&str], p: &[&str], a: &[&str]) -> Capabilities {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Capabilities {
            bounding: v(b),
            effective: v(e),
            inheritable: v(i),
            permitted: v(p),
            ambient: v(a),
        }
    }

    #[test]
    fn masks_follow_kernel_bit_order() {
        assert_eq!(
            cap_mask(&["CAP_KILL".into(), "CAP_CHOWN".into()], 40),
            Ok(0b100001)
        );
        assert!(cap_mask(&["CAP_TEST".into()], 40).is_err());
        assert_eq!(cap_mask(&["CAP_CHECKPOINT_RESTORE".into()], 39), Ok(0));
        assert_eq!(mask_names(0b100001), vec!["CAP_CHOWN", "CAP_KILL"]);
    }

    #[test]
    fn root_gets_bounding_as_permitted_after_exec() {
        let c = caps(
            &["CAP_KILL", "CAP_CHOWN"],
            &["CAP_KILL"],
            &[],
            &["CAP_KILL"],
            &[],
        );
        let e = expected_after_exec(&c, 0, 40).expect("known caps");
        assert_eq!(e[3], ("CapPrm", 0b100001));
        assert_eq!(e[4], ("CapEff", 0b100001));
    }

    #[test]
    fn non_root_keeps_only_ambient() {
        let c = caps(
            &["CAP_KILL", "CAP_CHOWN"],
            &["CAP_KILL"],
            &["CAP_KILL"],
            &["CAP_KILL"],
            &["CAP_KILL"],
        );
        let e = expected_after_exec(&c, 1000, 40).expect("known caps");
        assert_eq!(e[2], ("CapAmb", 0b100000));
        assert_eq!(e[3], ("CapPrm", 0b100000));
        let c = caps(&["CAP_KILL"], &["CAP_KILL"], &[], &["CAP_KILL"], &[]);
        let e = expected_after_exec(&c, 1000, 40).expect("known caps");
        assert_eq!(e[4], ("CapEff", 0));
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(cpu_set("0-2,5"), Some([0, 1, 2, 5].into_iter().collect()));
        assert_eq!(cpu_set("1"), Some([1].into_iter().collect()));
        assert_eq!(cpu_set("x"), None);
    }

    #[test]
    fn own_rlimits_read_back() {
        let (s, h) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        assert!(rlimit("RLIMIT_NOFILE", s, h).is_ok());
        assert!(rlimit("RLIMIT_NOFILE", s, h.wrapping_add(1)).is_err());
        assert!(rlimit("RLIMIT_TEST", 1, 1).is_err());
    }
}
