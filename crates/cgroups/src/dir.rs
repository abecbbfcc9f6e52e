//! The life of one cgroup directory: `mkdir -p` remembering what it created, adding a process,
//! listing processes (sub-cgroups included), and removal leaf-first with one short shared retry
//! while dying processes still hold directories busy.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::error::{CgroupError, Result};
use crate::file;

/// Creates `dir` and its missing ancestors below `mount`; pushes each directory it created
/// (parents first) to `created`.
pub(crate) fn mkdir_p(mount: &Path, dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::create_dir(&cur) {
            Ok(()) => created.push(cur.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: cur, source }),
        }
    }
    Ok(())
}

/// Writes `pid` (already formatted) to `dir/cgroup.procs`.
pub(crate) fn add_pid(dir: &Path, pid: &str) -> Result<()> {
    file::write(dir, "cgroup.procs", pid)
}

/// The processes in `dir` and all its sub-cgroups.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<Pid>) -> Result<()> {
    if let Some(s) = file::read_opt(dir, "cgroup.procs")? {
        for l in s.lines() {
            if let Ok(p) = l.trim().parse::<i32>() {
                out.push(Pid::from_raw(p));
            }
        }
    }
    for sub in subdirs(dir)? {
        procs_recursive(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Read {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes `dir` and its sub-cgroups, deepest first, once: `Ok(false)` when a directory was
/// still busy (EBUSY: tasks still exiting). A missing directory counts as removed.
fn remove_tree_once(dir: &Path) -> Result<bool> {
    for sub in subdirs(dir)? {
        if !remove_tree_once(&sub)? {
            return Ok(false);
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(false),
        Err(source) => Err(CgroupError::Remove {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes every directory of `dirs` with its sub-cgroups (deepest first). Directories still
/// busy are retried together for about half a second in all, then reported.
pub(crate) fn remove_trees(dirs: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut pending: Vec<&PathBuf> = dirs.iter().collect();
    let mut pause = Duration::from_millis(1);
    loop {
        let mut still = Vec::new();
        for d in pending {
            if !remove_tree_once(d)? {
                still.push(d);
            }
        }
        let Some(first) = still.first() else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(CgroupError::Busy {
                path: first.to_path_buf(),
                source: io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
        pending = still;
    }
}

/// Removes the now empty ancestors that this manager created (deepest first); ones still used
/// by other cgroups (EBUSY/ENOTEMPTY) are left in place.
pub(crate) fn remove_created(created: &[PathBuf], leaves: &[&Path]) {
    let mut v: Vec<&PathBuf> = created
        .iter()
        .filter(|p| !leaves.contains(&p.as_path()))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in v {
        let _ = std::fs::remove_dir(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_p_records_only_new_dirs() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        let mut created = Vec::new();
        mkdir_p(t.path(), &t.path().join("a/b/c"), &mut created).unwrap();
        assert_eq!(created, vec![t.path().join("a/b"), t.path().join("a/b/c")]);
    }

    #[test]
    fn remove_trees_is_leaf_first_and_tolerates_missing() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("x/y/z")).unwrap();
        std::fs::create_dir_all(t.path().join("x/w")).unwrap();
        std::fs::create_dir_all(t.path().join("v")).unwrap();
        remove_trees(&[t.path().join("x"), t.path().join("v")]).unwrap();
        assert!(!t.path().join("x").exists());
        assert!(!t.path().join("v").exists());
        remove_trees(&[t.path().join("x")]).unwrap();
    }

    #[test]
    fn lists_procs_recursively() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.procs"), "1\n2\n").unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::fs::write(t.path().join("sub/cgroup.procs"), "3\n").unwrap();
        let mut v = Vec::new();
        procs_recursive(t.path(), &mut v).unwrap();
        v.sort();
        assert_eq!(v, [1, 2, 3].map(Pid::from_raw));
    }
}
