//! The user side of the process: switching uid/gid/groups while keeping capabilities, and reading
//! the container's `/etc/passwd` and `/etc/group` (for `exec --user name` and for `HOME`).
//!
//! The databases are opened with `openat2(RESOLVE_IN_ROOT)` under the container root, so a
//! symlinked `/etc/passwd` in an image resolves inside the container, never on the host.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{Process, User};

use super::{set_umask, ProcessError, Warnings};

/// The umask a process gets when `user.umask` is absent (what crun and Docker use).
const DEFAULT_UMASK: u32 = 0o022;

/// Sets supplementary groups, gid and uid of the calling process, then the umask.
///
/// The permitted capability set survives the uid change (`PR_SET_KEEPCAPS`), so
/// [`super::apply_capabilities`] can then set the requested sets; the kernel clears effective
/// and ambient on the change, which `apply_capabilities` sets again.
///
/// In a user namespace whose `/proc/self/setgroups` says `deny` (rootless), `setgroups` is
/// skipped with a warning instead of failing.
pub fn apply_user(user: &User) -> Result<Warnings, ProcessError> {
    let mut warnings = Warnings::new();
    let gids: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    if setgroups_denied() {
        if !gids.is_empty() {
            warnings.push(format!(
                "additionalGids {gids:?} not applied: setgroups is denied in this user namespace \
                 (/proc/self/setgroups is \"deny\")"
            ));
        }
    } else {
        let list: Vec<Gid> = gids.iter().copied().map(Gid::from_raw).collect();
        setgroups(&list).map_err(|source| ProcessError::Setgroups {
            gids: gids.clone(),
            source,
        })?;
    }

    nix::sys::prctl::set_keepcaps(true).map_err(|e| ProcessError::KeepCaps(true, e))?;
    let (uid, gid) = (user.uid(), user.gid());
    let g = Gid::from_raw(gid);
    setresgid(g, g, g).map_err(|e| ProcessError::Setresgid(gid, e))?;
    let u = Uid::from_raw(uid);
    setresuid(u, u, u).map_err(|e| ProcessError::Setresuid(uid, e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| ProcessError::KeepCaps(false, e))?;

    set_umask(user.umask().unwrap_or(DEFAULT_UMASK))?;
    Ok(warnings)
}

fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// A user resolved from the container's databases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Groups of `/etc/group` that list the user as a member.
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd`, `/` when the user has no entry.
    pub home: PathBuf,
}

#[derive(Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads `<root>/<rel>` resolved inside `root`; a missing file reads as empty.
fn read_in_root(root: &Path, rel: &str) -> Result<String, ProcessError> {
    let path = root.join(rel);
    let io_err = |source: std::io::Error| ProcessError::ReadUserDb {
        path: path.clone(),
        source,
    };
    let dir = std::fs::File::open(root).map_err(io_err)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&dir, rel, how) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) | Err(nix::Error::ENOTDIR) => return Ok(String::new()),
        Err(e) => return Err(io_err(e.into())),
    };
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .map_err(io_err)?;
    Ok(text)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`, any mix) against the container's
/// `/etc/passwd` and `/etc/group` under `root` (`/` once inside the container).
///
/// A numeric uid without a passwd entry is accepted (gid 0 unless given, home `/`), as runc does;
/// an unknown *name* is an error.
pub fn resolve_user(root: &Path, spec: &str) -> Result<ResolvedUser, ProcessError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = parse_passwd(&read_in_root(root, "etc/passwd")?);
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| ProcessError::UnknownUser(user_part.to_string()))?,
        ),
    };
    let uid = match (entry, user_part.parse::<u32>()) {
        (_, Ok(uid)) => uid,
        (Some(e), Err(_)) => e.uid,
        (None, Err(_)) => return Err(ProcessError::UnknownUser(user_part.to_string())),
    };
    let groups = parse_group(&read_in_root(root, "etc/group")?);
    let gid = match group_part {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| ProcessError::UnknownGroup(g.to_string()))?,
        },
        None => entry.map_or(0, |e| e.gid),
    };
    let additional_gids = match entry {
        Some(e) => groups
            .iter()
            .filter(|g| g.gid != gid && g.members.contains(&e.name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    let home = entry
        .map(|e| PathBuf::from(&e.home))
        .filter(|h| !h.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/"));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Home directory of `uid` in the container's `/etc/passwd` under `root`; `/` if it has none.
pub fn lookup_home(root: &Path, uid: u32) -> Result<PathBuf, ProcessError> {
    Ok(resolve_user(root, &uid.to_string())?.home)
}

/// The environment for execve: `process.env`, plus `HOME` from `/etc/passwd` (under `root`)
/// when `process.env` doesn't set it, like runc.
pub fn exec_env(process: &Process, root: &Path) -> Result<Vec<String>, ProcessError> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = lookup_home(root, process.user().uid())?;
        env.push(format!("HOME={}", home.display()));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir etc");
        std::fs::write(dir.path().join("etc/passwd"), passwd).expect("passwd");
        std::fs::write(dir.path().join("etc/group"), group).expect("group");
        dir
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # comment\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          alice:x:1000:1000:Alice:/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:alice,bob\nalice:x:1000:\naudio:x:29:alice\n";

    #[test]
    fn named_user_gets_uid_gid_groups_and_home() {
        let root = root_with(PASSWD, GROUP);
        let u = resolve_user(root.path(), "alice").expect("alice");
        assert_eq!(
            u,
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 29],
                home: PathBuf::from("/home/alice"),
            }
        );
    }

    #[test]
    fn user_and_group_mix_names_and_numbers() {
        let root = root_with(PASSWD, GROUP);
        let u = resolve_user(root.path(), "daemon:wheel").expect("daemon:wheel");
        assert_eq!((u.uid, u.gid), (1, 10));
        let u = resolve_user(root.path(), "1000:29").expect("1000:29");
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 29, vec![10]));
    }

    #[test]
    fn numeric_uid_without_entry_is_accepted_with_home_slash() {
        let root = root_with(PASSWD, GROUP);
        let u = resolve_user(root.path(), "4242").expect("4242");
        assert_eq!((u.uid, u.gid, u.home), (4242, 0, PathBuf::from("/")));
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let root = root_with(PASSWD, GROUP);
        let e = resolve_user(root.path(), "mallory")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "user \"mallory\" not found in the container's /etc/passwd"
        );
        let e = resolve_user(root.path(), "alice:nogroup")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "group \"nogroup\" not found in the container's /etc/group"
        );
    }

    #[test]
    fn passwd_symlink_resolves_inside_the_root() {
        // An absolute symlink is resolved against the container root, not the host.
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc")).expect("etc");
        std::fs::create_dir_all(root.path().join("real")).expect("real");
        std::fs::write(
            root.path().join("real/passwd"),
            "bob:x:7:7::/home/bob:/bin/sh\n",
        )
        .expect("passwd");
        std::os::unix::fs::symlink("/real/passwd", root.path().join("etc/passwd")).expect("ln");
        let u = resolve_user(root.path(), "bob").expect("bob via in-root symlink");
        assert_eq!(u.uid, 7);
        // A link climbing out with `..` stays clamped at the root (<root>/etc/shadow, missing):
        // the host's /etc/shadow (whose root line would parse) never is.
        std::fs::remove_file(root.path().join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink("/../../../../../etc/shadow", root.path().join("etc/passwd"))
            .expect("ln");
        assert!(matches!(
            resolve_user(root.path(), "root"),
            Err(ProcessError::UnknownUser(_))
        ));
    }

    #[test]
    fn exec_env_adds_home_only_when_unset() {
        let root = root_with(PASSWD, GROUP);
        let mut process = Process::default();
        let mut user = User::default();
        user.set_uid(1000);
        process.set_user(user);
        process.set_env(Some(vec!["PATH=/bin".to_string()]));
        let env = exec_env(&process, root.path()).expect("env");
        assert_eq!(
            env,
            vec!["PATH=/bin".to_string(), "HOME=/home/alice".to_string()]
        );
        process.set_env(Some(vec!["HOME=/x".to_string()]));
        assert_eq!(
            exec_env(&process, root.path()).expect("env"),
            vec!["HOME=/x".to_string()]
        );
    }
}
