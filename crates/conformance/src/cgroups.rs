//! Reading `linux.resources` back from a process's cgroup files (v1 hierarchies or cgroup2).
//! Used inside the container by the checker (own /proc/self/cgroup + the container's cgroup mounts)
//! and outside by the harness (/proc/<pid>/cgroup + the host's mounts).

use crate::mountinfo::MountInfo;
use crate::spec::{DeviceRule, Resources};
use crate::tap::Outcome;
use std::path::{Path, PathBuf};

/// The directory holding a controller's files for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    pub path: PathBuf,
    pub v2: bool,
}

/// Resolves a controller name (`memory`, `cpu`, `cpuset`, `pids`, `hugetlb`, `devices`) to the
/// directory of the process whose `/proc/<pid>/cgroup` is `proc_cgroup`, through `mounts`.
pub fn locate(proc_cgroup: &str, mounts: &[MountInfo], controller: &str) -> Option<CgroupDir> {
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.is_empty() || !ctrls.split(',').any(|c| c == controller) {
            continue;
        }
        let m = mounts
            .iter()
            .rev()
            .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == controller))?;
        return under_mount(m, path).map(|path| CgroupDir { path, v2: false });
    }
    // cgroup2: "0::/path", controller enabled in the group's cgroup.controllers.
    let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    for m in mounts.iter().rev().filter(|m| m.fstype == "cgroup2") {
        let Some(dir) = under_mount(m, path) else {
            continue;
        };
        let enabled = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        if enabled.split_whitespace().any(|c| c == controller) {
            return Some(CgroupDir {
                path: dir,
                v2: true,
            });
        }
    }
    None
}

fn under_mount(m: &MountInfo, path: &str) -> Option<PathBuf> {
    let root = m.root.trim_end_matches('/');
    let rel = if root.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(root)
    }?;
    if !rel.is_empty() && !rel.starts_with('/') {
        return None;
    }
    let dir = Path::new(&m.mount_point).join(rel.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// One named check per configured resource, each comparing a cgroup file with the config.
pub fn check(
    res: &Resources,
    locate: &dyn Fn(&str) -> Option<CgroupDir>,
) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    let mut want = |ctrl: &str, desc: &str, v1: &str, v2: Option<&str>, expected: Expect| {
        let outcome = match locate(ctrl) {
            None => Outcome::Skip(format!("{ctrl} controller not visible")),
            Some(dir) => match if dir.v2 { v2 } else { Some(v1) } {
                None => Outcome::Skip(format!("{desc} has no cgroup2 file")),
                Some(file) => compare(&dir.path.join(file), &expected),
            },
        };
        out.push((format!("linux.resources.{desc}"), outcome));
    };
    if let Some(m) = &res.memory {
        if let Some(l) = m.limit {
            want(
                "memory",
                "memory.limit",
                "memory.limit_in_bytes",
                Some("memory.max"),
                Expect::Limit(l),
            );
        }
        if let Some(r) = m.reservation {
            want(
                "memory",
                "memory.reservation",
                "memory.soft_limit_in_bytes",
                Some("memory.low"),
                Expect::Limit(r),
            );
        }
        if let Some(s) = m.swap {
            let v2 = if m.limit.is_some() {
                None
            } else {
                Some("memory.swap.max")
            };
            want(
                "memory",
                "memory.swap",
                "memory.memsw.limit_in_bytes",
                v2,
                Expect::Limit(s),
            );
        }
        if let Some(k) = m.kernel_tcp {
            want(
                "memory",
                "memory.kernelTCP",
                "memory.kmem.tcp.limit_in_bytes",
                None,
                Expect::Limit(k),
            );
        }
        if let Some(s) = m.swappiness {
            want(
                "memory",
                "memory.swappiness",
                "memory.swappiness",
                None,
                Expect::Exact(s.to_string()),
            );
        }
        if let Some(d) = m.disable_oom_killer {
            let line = format!("oom_kill_disable {}", u8::from(d));
            want(
                "memory",
                "memory.disableOOMKiller",
                "memory.oom_control",
                None,
                Expect::Line(line),
            );
        }
    }
    if let Some(c) = &res.cpu {
        if let Some(s) = c.shares {
            want(
                "cpu",
                "cpu.shares",
                "cpu.shares",
                None,
                Expect::Exact(s.to_string()),
            );
        }
        if let Some(q) = c.quota {
            // cgroup2 keeps quota and period together in cpu.max: compared through v1 only.
            want(
                "cpu",
                "cpu.quota",
                "cpu.cfs_quota_us",
                None,
                Expect::Exact(q.to_string()),
            );
        }
        if let Some(p) = c.period {
            want(
                "cpu",
                "cpu.period",
                "cpu.cfs_period_us",
                None,
                Expect::Exact(p.to_string()),
            );
        }
        if let Some(cpus) = &c.cpus {
            want(
                "cpuset",
                "cpu.cpus",
                "cpuset.cpus",
                Some("cpuset.cpus"),
                Expect::Exact(cpus.clone()),
            );
        }
        if let Some(mems) = &c.mems {
            want(
                "cpuset",
                "cpu.mems",
                "cpuset.mems",
                Some("cpuset.mems"),
                Expect::Exact(mems.clone()),
            );
        }
    }
    if let Some(p) = &res.pids {
        let v = if p.limit <= 0 {
            "max".to_string()
        } else {
            p.limit.to_string()
        };
        want(
            "pids",
            "pids.limit",
            "pids.max",
            Some("pids.max"),
            Expect::Exact(v),
        );
    }
    for h in &res.hugepage_limits {
        let v1 = format!("hugetlb.{}.limit_in_bytes", h.page_size);
        let v2 = format!("hugetlb.{}.max", h.page_size);
        let desc = format!("hugepageLimits {}", h.page_size);
        want(
            "hugetlb",
            &desc,
            &v1,
            Some(&v2),
            Expect::Limit(h.limit as i64),
        );
    }
    if let Some(c) = res.network.as_ref().and_then(|n| n.class_id) {
        want(
            "net_cls",
            "network.classID",
            "net_cls.classid",
            None,
            Expect::Exact(c.to_string()),
        );
    }
    // CFQ's blkio.weight is gone from current kernels; BFQ's blkio.bfq.weight replaces it (read
    // back as "N" or "default N").
    if let Some(w) = res.block_io.as_ref().and_then(|b| b.weight) {
        let outcome = match locate("blkio") {
            None => Outcome::Skip("blkio controller not visible".into()),
            Some(d) if d.v2 => Outcome::Skip("blockIO.weight is checked on v1 only".into()),
            Some(d) => blkio_weight(&d.path, w),
        };
        out.push(("linux.resources.blockIO.weight".into(), outcome));
    }
    if !res.devices.is_empty() {
        let outcome = match locate("devices") {
            None => Outcome::Skip("devices controller not visible".into()),
            Some(d) if d.v2 => Outcome::Skip("cgroup2 device rules are eBPF, not readable".into()),
            Some(d) => match std::fs::read_to_string(d.path.join("devices.list")) {
                Ok(list) => devices_match(&res.devices, &list).into(),
                Err(e) => Outcome::Fail(format!("devices.list: {e}")),
            },
        };
        out.push(("linux.resources.devices".into(), outcome));
    }
    out
}

fn blkio_weight(dir: &Path, want: u16) -> Outcome {
    let Some(file) = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
    else {
        return Outcome::Skip("no blkio weight file".into());
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let first = text.lines().next().unwrap_or("").trim();
            if first.strip_prefix("default ").unwrap_or(first) == want.to_string() {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("{} is {text:?}, expected {want}", file.display()))
            }
        }
        Err(e) => Outcome::Fail(format!("{}: {e}", file.display())),
    }
}

/// What a cgroup file must hold.
enum Expect {
    /// The exact trimmed content.
    Exact(String),
    /// One line of the file.
    Line(String),
    /// A byte limit: -1 means unlimited (v1 reads back a huge number, v2 "max").
    Limit(i64),
}

fn compare(path: &Path, want: &Expect) -> Outcome {
    let got = match std::fs::read_to_string(path) {
        Ok(s) => s.trim().to_string(),
        Err(e) => return Outcome::Fail(format!("{}: {e}", path.display())),
    };
    let ok = match want {
        Expect::Exact(w) => &got == w,
        Expect::Line(w) => got.lines().any(|l| l.trim() == w),
        Expect::Limit(-1) => got == "max" || got.parse::<u64>().is_ok_and(|v| v >= 1 << 62),
        Expect::Limit(w) => got.parse::<i64>().is_ok_and(|v| v == *w),
    };
    if ok {
        Outcome::Pass
    } else {
        let w = match want {
            Expect::Exact(w) | Expect::Line(w) => w.clone(),
            Expect::Limit(l) => l.to_string(),
        };
        Outcome::Fail(format!("{} is {got:?}, expected {w:?}", path.display()))
    }
}

/// Whether a v1 `devices.list` reflects the ordered rules: every specific device still allowed
/// after all rules must be listed with at least its access, and a deny-all that is not undone
/// must not leave `a *:* rwm`.
pub fn devices_match(rules: &[DeviceRule], list: &str) -> Result<(), String> {
    let key = |r: &DeviceRule| {
        (
            r.kind.clone().unwrap_or_else(|| "a".into()),
            r.major.map_or("*".into(), |m| m.to_string()),
            r.minor.map_or("*".into(), |m| m.to_string()),
        )
    };
    let covers = |wide: &(String, String, String), dev: &(String, String, String)| {
        (wide.0 == "a" || wide.0 == dev.0)
            && (wide.1 == "*" || wide.1 == dev.1)
            && (wide.2 == "*" || wide.2 == dev.2)
    };
    let mut allowed: Vec<((String, String, String), String)> = Vec::new();
    let mut allow_all = true;
    for r in rules {
        let k = key(r);
        let access = r.access.clone().unwrap_or_else(|| "rwm".into());
        let is_all = k.0 == "a" && k.1 == "*" && k.2 == "*";
        if r.allow {
            if is_all {
                allow_all = true;
                allowed.clear();
            } else {
                allowed.push((k, access));
            }
        } else {
            if is_all {
                allow_all = false;
            }
            allowed
                .retain(|(dev, acc)| !(covers(&k, dev) && acc.chars().all(|c| access.contains(c))));
        }
    }
    let lines: Vec<(String, String, String, String)> = list
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let t = f.next()?;
            let (ma, mi) = f.next()?.split_once(':')?;
            Some((
                t.to_string(),
                ma.to_string(),
                mi.to_string(),
                f.next().unwrap_or("").to_string(),
            ))
        })
        .collect();
    let has_all = lines.iter().any(|l| l.0 == "a" && l.1 == "*" && l.2 == "*");
    if !allow_all && has_all {
        return Err("devices.list still allows a *:* after a deny-all rule".into());
    }
    if allow_all {
        return if has_all {
            Ok(())
        } else {
            Err(format!("expected a *:* rwm in devices.list, got {list:?}"))
        };
    }
    for (dev, access) in &allowed {
        let listed = lines.iter().any(|l| {
            l.0 == dev.0 && l.1 == dev.1 && l.2 == dev.2 && access.chars().all(|c| l.3.contains(c))
        });
        if !listed {
            return Err(format!(
                "{} {}:{} {access} missing from devices.list",
                dev.0, dev.1, dev.2
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        t: Option<&str>,
        maj: Option<i64>,
        min: Option<i64>,
        acc: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind: t.map(str::to_string),
            major: maj,
            minor: min,
            access: Some(acc.to_string()),
        }
    }

    #[test]
    fn device_rules_in_order() {
        let rules = vec![
            rule(false, None, None, None, "rwm"),
            rule(true, Some("c"), Some(10), Some(229), "rwm"),
            rule(true, Some("b"), Some(8), Some(20), "rw"),
        ];
        let good = "c 1:3 rwm\nc 10:229 rwm\nb 8:20 rw\n";
        assert!(devices_match(&rules, good).is_ok());
        assert!(devices_match(&rules, "c 10:229 rwm\n").is_err());
        assert!(devices_match(&rules, "a *:* rwm\n").is_err());
        let mut later_deny = rules;
        later_deny.push(rule(false, Some("b"), Some(8), Some(20), "rw"));
        assert!(devices_match(&later_deny, "c 10:229 rwm\n").is_ok());
    }

    #[test]
    fn locates_v1_controller_dirs_through_mount_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mp = tmp.path().join("memory");
        std::fs::create_dir_all(mp.join("y")).expect("mkdir");
        let line = format!(
            "30 1 0:30 /x /{} rw - cgroup cgroup rw,memory",
            mp.display().to_string().trim_start_matches('/')
        );
        let mounts = crate::mountinfo::parse(&line).expect("parse");
        let dir = locate("4:memory:/x/y\n", &mounts, "memory").expect("found");
        assert_eq!(
            dir,
            CgroupDir {
                path: mp.join("y"),
                v2: false
            }
        );
        assert!(locate("4:memory:/z\n", &mounts, "memory").is_none());
        assert!(locate("4:memory:/x/y\n", &mounts, "pids").is_none());
    }
}
