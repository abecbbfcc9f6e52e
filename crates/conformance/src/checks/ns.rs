//! Namespaces (new, joined by path, or inherited), hostname and domainname, user namespace id
//! mappings and time namespace offsets.

use crate::procfs;
use crate::spec::{proc_ns_name, Expect, IdMapping, Spec};
use crate::tap::{Outcome, Tap};
use std::io::Write;

/// Every namespace kind the spec knows, by its `/proc/self/ns` name.
const KINDS: [&str; 8] = ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time"];

pub fn check<W: Write>(spec: &Spec, expect: &Expect, tap: &mut Tap<W>) {
    let empty = Vec::new();
    let namespaces = spec.linux.as_ref().map(|l| &l.namespaces).unwrap_or(&empty);
    for kind in KINDS {
        let entry = namespaces.iter().find(|n| proc_ns_name(&n.kind) == kind);
        tap.record(
            &format!("namespace {kind}"),
            namespace(kind, entry.map(|e| e.path.as_deref()), expect),
        );
    }
    if namespaces
        .iter()
        .any(|n| n.kind == "pid" && n.path.is_none())
    {
        let pid = std::process::id();
        let r = if pid == 1 {
            Ok(())
        } else {
            Err(format!("pid is {pid}"))
        };
        tap.record("process is pid 1 of its new pid namespace", r);
    }
    if let Some(h) = &spec.hostname {
        // procfs, not gethostname(3): glibc asks uname(2), which a seccomp scenario may deny.
        let r = procfs::read_trimmed("/proc/sys/kernel/hostname").and_then(|got| {
            if &got == h {
                Ok(())
            } else {
                Err(format!("hostname is {got:?}, expected {h:?}"))
            }
        });
        tap.record("hostname", r);
    }
    if let Some(d) = &spec.domainname {
        let r = procfs::read_trimmed("/proc/sys/kernel/domainname").and_then(|got| {
            if &got == d {
                Ok(())
            } else {
                Err(format!("domainname is {got:?}, expected {d:?}"))
            }
        });
        tap.record("domainname", r);
    }
    if let Some(linux) = &spec.linux {
        if !linux.uid_mappings.is_empty() {
            tap.record(
                "linux.uidMappings",
                id_map("/proc/self/uid_map", &linux.uid_mappings),
            );
        }
        if !linux.gid_mappings.is_empty() {
            tap.record(
                "linux.gidMappings",
                id_map("/proc/self/gid_map", &linux.gid_mappings),
            );
        }
        if !linux.time_offsets.is_empty() {
            tap.record("linux.timeOffsets", time_offsets(spec));
        }
    }
}

/// `entry`: None = not in the config (inherited), Some(None) = new, Some(Some(path)) = joined.
fn namespace(kind: &str, entry: Option<Option<&str>>, expect: &Expect) -> Outcome {
    let got = match procfs::ns_inode(kind) {
        Ok(i) => i,
        Err(why) => return Outcome::Skip(format!("kernel has no {kind} namespace file: {why}")),
    };
    match entry {
        Some(Some(path)) => match expect.ns_path.get(kind) {
            Some(want) if *want == got => Outcome::Pass,
            Some(want) => Outcome::Fail(format!("inode {got}, expected {want} of {path}")),
            None => Outcome::Skip(format!("harness gave no inode for {path}")),
        },
        Some(None) => match expect.host_ns.get(kind) {
            Some(host) if *host != got => Outcome::Pass,
            Some(_) => Outcome::Fail(format!(
                "inode {got} is the host's: no new {kind} namespace"
            )),
            None => Outcome::Skip("harness gave no host inode".into()),
        },
        None => match expect.host_ns.get(kind) {
            Some(host) if *host == got => Outcome::Pass,
            Some(host) => Outcome::Fail(format!(
                "{kind} not in config but inode {got} differs from the host's {host}"
            )),
            None => Outcome::Skip("harness gave no host inode".into()),
        },
    }
}

pub fn parse_id_map(text: &str) -> Result<Vec<IdMapping>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .map(|x| x.parse().map_err(|_| format!("bad id map line {l:?}")))
                .collect::<Result<_, _>>()?;
            match f.as_slice() {
                [c, h, s] => Ok(IdMapping {
                    container_id: *c,
                    host_id: *h,
                    size: *s,
                }),
                _ => Err(format!("bad id map line {l:?}")),
            }
        })
        .collect()
}

fn id_map(path: &str, want: &[IdMapping]) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut got = parse_id_map(&text)?;
    let mut want: Vec<_> = want
        .iter()
        .map(|m| (m.container_id, m.host_id, m.size))
        .collect();
    got.sort_by_key(|m| m.container_id);
    want.sort();
    let got: Vec<_> = got
        .iter()
        .map(|m| (m.container_id, m.host_id, m.size))
        .collect();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{path} is {got:?}, expected {want:?} (container, host, size)"
        ))
    }
}

fn time_offsets(spec: &Spec) -> Result<(), String> {
    let text = std::fs::read_to_string("/proc/self/timens_offsets")
        .map_err(|e| format!("/proc/self/timens_offsets: {e}"))?;
    let offsets = &spec
        .linux
        .as_ref()
        .expect("caller checked linux")
        .time_offsets;
    for (clock, want) in offsets {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(clock.as_str()))
            .ok_or_else(|| format!("no {clock} line in timens_offsets"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let got = (
            f.get(1).and_then(|s| s.parse::<i64>().ok()),
            f.get(2).and_then(|s| s.parse::<u32>().ok()),
        );
        if got != (Some(want.secs), Some(want.nanosecs)) {
            return Err(format!(
                "{clock} offset is {line:?}, expected {} {}",
                want.secs, want.nanosecs
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_id_maps() {
        let m = parse_id_map("         0       1000          1\n 1 100000 65536\n").expect("parse");
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].host_id, 100000);
        assert!(parse_id_map("0 1\n").is_err());
    }

    #[test]
    fn namespace_expectations() {
        let own = procfs::ns_inode("net").expect("net ns");
        let mut e = Expect::default();
        e.host_ns.insert("net".into(), own);
        assert_eq!(namespace("net", None, &e), Outcome::Pass);
        assert!(matches!(namespace("net", Some(None), &e), Outcome::Fail(_)));
        e.ns_path.insert("net".into(), own);
        assert_eq!(
            namespace("net", Some(Some("/proc/1/ns/net")), &e),
            Outcome::Pass
        );
    }
}
