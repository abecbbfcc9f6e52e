//! Namespaces of a new container: which are created by `clone3`, which are joined by path, which
//! the child unshares itself; the parent-side dance for pid and time namespaces (they apply to
//! *children* of the caller, so the parent enters them just around the clone and restores its
//! own); uid/gid maps and time offsets.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// Errors of namespace setup.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// A namespace path could not be opened.
    #[error("open namespace {kind} path {path}: {source}")]
    Open {
        /// namespace type
        kind: &'static str,
        /// path from config.json
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// setns failed.
    #[error("join {kind} namespace {path}: {source}")]
    Join {
        /// namespace type
        kind: &'static str,
        /// path from config.json
        path: PathBuf,
        /// cause
        #[source]
        source: nix::Error,
    },
    /// unshare failed.
    #[error("unshare namespaces {flags:?}: {source}")]
    Unshare {
        /// flags asked for
        flags: CloneFlags,
        /// cause
        #[source]
        source: nix::Error,
    },
    /// A namespace type appears twice.
    #[error("namespace {0} is listed twice in linux.namespaces")]
    Duplicate(&'static str),
    /// Writing uid_map/gid_map/setgroups/timens_offsets failed.
    #[error("write {path}: {source}")]
    Write {
        /// file written
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// timeOffsets names a clock other than monotonic/boottime.
    #[error("linux.timeOffsets: unknown clock {0:?} (want monotonic or boottime)")]
    BadClock(String),
    /// timeOffsets without a time namespace.
    #[error("linux.timeOffsets needs a new time namespace")]
    OffsetsWithoutTimeNs,
}

/// Short name of a namespace type (as in /proc/<pid>/ns/).
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as i32)
}

/// Order in which namespaces are joined: user first (it grants the rights to join the rest),
/// mount last (earlier paths are resolved in the runtime's mount namespace).
fn join_rank(t: LinuxNamespaceType) -> u8 {
    match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 9,
        _ => 5,
    }
}

/// A namespace joined by path, opened before any setns.
#[derive(Debug)]
pub struct Join {
    /// namespace type
    pub kind: LinuxNamespaceType,
    /// path from config.json
    pub path: PathBuf,
    /// the open namespace file
    pub file: File,
}

/// Everything the parent and the child need to know about namespaces.
#[derive(Debug)]
pub struct Plan {
    /// flags given to clone3.
    pub clone_flags: u64,
    /// flags the child unshares after joining (cgroup; everything new when the user ns is joined).
    pub child_unshare: CloneFlags,
    /// namespaces the child joins (sorted: user, ..., mnt).
    pub joins: Vec<Join>,
    /// pid namespace to join (entered by the parent around clone).
    pub pid_join: Option<Join>,
    /// time namespace to join (entered by the parent around clone).
    pub time_join: Option<Join>,
    /// a new user namespace is made: the parent writes id maps.
    pub new_user: bool,
    /// a new time namespace is made: the parent unshares it around clone and writes offsets.
    pub new_time: bool,
    /// a new or joined uts namespace (hostname may be set).
    pub has_uts: bool,
    /// a new mount namespace.
    pub new_mount: bool,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            clone_flags: 0,
            child_unshare: CloneFlags::empty(),
            joins: Vec::new(),
            pid_join: None,
            time_join: None,
            new_user: false,
            new_time: false,
            has_uts: false,
            new_mount: false,
        }
    }
}

impl Plan {
    /// Builds the plan from `linux.namespaces`; opens every path (so a bad path fails before
    /// anything is created).
    pub fn from_spec(spec: &Spec) -> Result<Plan, NamespaceError> {
        let mut plan = Plan::default();
        let Some(nss) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) else {
            return Ok(plan);
        };
        let mut seen = CloneFlags::empty();
        let user_joined = nss
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
        for ns in nss {
            let t = ns.typ();
            if seen.contains(flag(t)) {
                return Err(NamespaceError::Duplicate(ns_name(t)));
            }
            seen |= flag(t);
            match t {
                LinuxNamespaceType::Uts => plan.has_uts = true,
                LinuxNamespaceType::Mount => plan.new_mount = ns.path().is_none(),
                _ => {}
            }
            if let Some(path) = ns.path() {
                let file = File::open(path).map_err(|source| NamespaceError::Open {
                    kind: ns_name(t),
                    path: path.clone(),
                    source,
                })?;
                let j = Join {
                    kind: t,
                    path: path.clone(),
                    file,
                };
                match t {
                    LinuxNamespaceType::Pid => plan.pid_join = Some(j),
                    LinuxNamespaceType::Time => plan.time_join = Some(j),
                    _ => plan.joins.push(j),
                }
                continue;
            }
            match t {
                LinuxNamespaceType::User => {
                    plan.new_user = true;
                    plan.clone_flags |= t as u64;
                }
                LinuxNamespaceType::Time => plan.new_time = true,
                // cgroup ns is made after the parent put the child in its cgroup, so the
                // container sees its own cgroup as root.
                LinuxNamespaceType::Cgroup => plan.child_unshare |= flag(t),
                LinuxNamespaceType::Pid => plan.clone_flags |= t as u64,
                _ if user_joined => plan.child_unshare |= flag(t),
                _ => plan.clone_flags |= t as u64,
            }
        }
        plan.joins.sort_by_key(|j| join_rank(j.kind));
        let has_offsets = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref())
            .is_some_and(|o| !o.is_empty());
        if has_offsets && !plan.new_time {
            return Err(NamespaceError::OffsetsWithoutTimeNs);
        }
        Ok(plan)
    }
}

/// The parent's own pid/time namespaces, saved while it points its children elsewhere.
#[derive(Debug, Default)]
pub struct ParentNs {
    saved_pid: Option<File>,
    saved_time: Option<File>,
}

impl ParentNs {
    /// Points the parent's *children* at the planned pid/time namespaces (joined, or a new time
    /// namespace with its offsets written).
    pub fn enter(plan: &Plan, spec: &Spec) -> Result<ParentNs, NamespaceError> {
        let mut saved = ParentNs::default();
        if let Some(j) = &plan.pid_join {
            saved.saved_pid = Some(open_own("pid")?);
            setns(j.file.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|source| {
                NamespaceError::Join {
                    kind: "pid",
                    path: j.path.clone(),
                    source,
                }
            })?;
        }
        if plan.new_time || plan.time_join.is_some() {
            saved.saved_time = Some(open_own("time")?);
        }
        if let Some(j) = &plan.time_join {
            setns(
                j.file.as_fd(),
                CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            )
            .map_err(|source| NamespaceError::Join {
                kind: "time",
                path: j.path.clone(),
                source,
            })?;
        } else if plan.new_time {
            let f = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
            unshare(f).map_err(|source| NamespaceError::Unshare { flags: f, source })?;
            write_time_offsets(spec)?;
        }
        Ok(saved)
    }

    /// Restores the parent's own pid/time namespaces for its later children (hooks).
    pub fn restore(self) -> Result<(), NamespaceError> {
        if let Some(f) = self.saved_pid {
            setns(f.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|source| NamespaceError::Join {
                kind: "pid",
                path: "/proc/self/ns/pid".into(),
                source,
            })?;
        }
        if let Some(f) = self.saved_time {
            setns(f.as_fd(), CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)).map_err(
                |source| NamespaceError::Join {
                    kind: "time",
                    path: "/proc/self/ns/time".into(),
                    source,
                },
            )?;
        }
        Ok(())
    }
}

fn open_own(kind: &'static str) -> Result<File, NamespaceError> {
    let path = PathBuf::from(format!("/proc/self/ns/{kind}"));
    File::open(&path).map_err(|source| NamespaceError::Open { kind, path, source })
}

fn write_time_offsets(spec: &Spec) -> Result<(), NamespaceError> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(NamespaceError::BadClock(clock.clone()));
        }
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    write_file(Path::new("/proc/self/timens_offsets"), &text)
}

fn write_file(path: &Path, text: &str) -> Result<(), NamespaceError> {
    std::fs::write(path, text).map_err(|source| NamespaceError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Parent side: writes `/proc/<pid>/{uid_map,setgroups,gid_map}` for a child in a new user ns.
/// With no mappings in the config, maps root to the caller's ids.
pub fn write_id_maps(pid: nix::unistd::Pid, spec: &Spec) -> Result<(), NamespaceError> {
    let linux = spec.linux().as_ref();
    let uid = linux
        .and_then(|l| l.uid_mappings().as_ref())
        .map(|m| map_text(m));
    let gid = linux
        .and_then(|l| l.gid_mappings().as_ref())
        .map(|m| map_text(m));
    let uid = uid.unwrap_or_else(|| format!("0 {} 1\n", nix::unistd::geteuid()));
    let gid = gid.unwrap_or_else(|| format!("0 {} 1\n", nix::unistd::getegid()));
    let base = PathBuf::from(format!("/proc/{pid}"));
    write_file(&base.join("uid_map"), &uid)?;
    if !nix::unistd::geteuid().is_root() {
        write_file(&base.join("setgroups"), "deny")?;
    }
    write_file(&base.join("gid_map"), &gid)
}

/// Child side: joins every path namespace (user first), then unshares what the child makes
/// itself except the cgroup namespace (see [`unshare_cgroup`]).
pub fn join_and_unshare(plan: &Plan) -> Result<(), NamespaceError> {
    for j in &plan.joins {
        if j.kind == LinuxNamespaceType::User {
            join(j)?;
            become_root_in_userns();
            let f = plan.child_unshare - CloneFlags::CLONE_NEWCGROUP;
            if !f.is_empty() {
                unshare(f).map_err(|source| NamespaceError::Unshare { flags: f, source })?;
            }
        }
    }
    for j in plan
        .joins
        .iter()
        .filter(|j| j.kind != LinuxNamespaceType::User)
    {
        join(j)?;
    }
    Ok(())
}

/// Child side, after the parent placed us in the cgroup: a new cgroup namespace if planned.
pub fn unshare_cgroup(plan: &Plan) -> Result<(), NamespaceError> {
    if plan.child_unshare.contains(CloneFlags::CLONE_NEWCGROUP) {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|source| NamespaceError::Unshare {
            flags: CloneFlags::CLONE_NEWCGROUP,
            source,
        })?;
    }
    Ok(())
}

fn join(j: &Join) -> Result<(), NamespaceError> {
    setns(j.file.as_fd(), flag(j.kind)).map_err(|source| NamespaceError::Join {
        kind: ns_name(j.kind),
        path: j.path.clone(),
        source,
    })
}

/// In a fresh user namespace, take uid/gid 0 (mapped by the parent).
pub fn become_root_in_userns() {
    let root_u = nix::unistd::Uid::from_raw(0);
    let root_g = nix::unistd::Gid::from_raw(0);
    // Failure means 0 isn't mapped; the user switch later reports the real problem.
    let _ = nix::unistd::setresgid(root_g, root_g, root_g);
    let _ = nix::unistd::setresuid(root_u, root_u, root_u);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(ns: serde_json::Value) -> Spec {
        serde_json::from_value(
            serde_json::json!({"ociVersion": "1.0.2", "linux": {"namespaces": ns}}),
        )
        .expect("spec")
    }

    #[test]
    fn plan_puts_cgroup_in_child_and_pid_in_clone() {
        let s = spec_with(
            serde_json::json!([{"type":"pid"},{"type":"mount"},{"type":"cgroup"},{"type":"network"}]),
        );
        let p = Plan::from_spec(&s).expect("plan");
        assert_eq!(
            p.clone_flags,
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET) as u64
        );
        assert!(p.child_unshare.contains(CloneFlags::CLONE_NEWCGROUP));
        assert!(p.new_mount && !p.new_user);
    }

    #[test]
    fn plan_rejects_duplicates_and_bad_paths() {
        let s = spec_with(serde_json::json!([{"type":"pid"},{"type":"pid"}]));
        assert!(matches!(
            Plan::from_spec(&s),
            Err(NamespaceError::Duplicate("pid"))
        ));
        let s = spec_with(serde_json::json!([{"type":"network","path":"/nonexistent/ns"}]));
        assert!(matches!(
            Plan::from_spec(&s),
            Err(NamespaceError::Open { kind: "net", .. })
        ));
    }

    #[test]
    fn plan_joins_user_first_and_mount_last() {
        let s = spec_with(serde_json::json!([
            {"type":"mount","path":"/proc/self/ns/mnt"},
            {"type":"network","path":"/proc/self/ns/net"},
            {"type":"user","path":"/proc/self/ns/user"},
            {"type":"uts"}
        ]));
        let p = Plan::from_spec(&s).expect("plan");
        let kinds: Vec<_> = p.joins.iter().map(|j| ns_name(j.kind)).collect();
        assert_eq!(kinds, ["user", "net", "mnt"]);
        // user joined: the new uts ns is unshared by the child, after setns(user).
        assert!(p.child_unshare.contains(CloneFlags::CLONE_NEWUTS));
        assert_eq!(p.clone_flags, 0);
    }

    #[test]
    fn id_map_text_is_one_line_per_mapping() {
        let m: Vec<LinuxIdMapping> =
            serde_json::from_value(serde_json::json!([{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]))
                .expect("maps");
        assert_eq!(map_text(&m), "0 1000 1\n1 100000 65536\n");
    }
}
