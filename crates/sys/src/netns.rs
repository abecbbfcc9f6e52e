//! Network namespaces held open by a bind mount (like `ip netns add`), made and entered without
//! ever forking: berthd is multithreaded, so the work happens on a short-lived dedicated thread
//! that `unshare`s or `setns`es only itself. Whatever that thread creates (a netlink socket, for
//! instance) stays bound to the namespace after the thread is gone, which is how the caller
//! configures a namespace from its own threads.
//!
//! Every function returns `io::Error`s naming the path it was working on.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

fn err(path: &Path, what: &str, e: impl Into<io::Error>) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Run `f` on a new thread that lives in the namespace `path` and return what it returns.
/// The caller's threads never change namespace.
pub fn run_in<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = File::open(path).map_err(|e| err(path, "open network namespace", e))?;
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| err(&p, "enter network namespace", e))?;
            Ok(f())
        })
        .map_err(|e| err(path, "spawn thread for", e))?
        .join()
        .map_err(|_| io::Error::other(format!("thread in {} panicked", path.display())))?
}

/// Create a new network namespace and pin it at `path` (an empty file is created and the
/// namespace bind-mounted onto it), then run `f` inside it. On any error nothing is left at
/// `path`.
pub fn create<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, "create", e))?;
    }
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| err(path, "create namespace file", e))?;
    let p: PathBuf = path.to_path_buf();
    let joined = std::thread::Builder::new()
        .name("berth-netns-new".into())
        .spawn(move || -> io::Result<T> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| err(&p, "unshare network namespace for", e))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err(&p, "bind-mount network namespace on", e))?;
            Ok(f())
        });
    let result = match joined {
        Ok(h) => h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("network namespace thread panicked"))),
        Err(e) => Err(err(path, "spawn thread for", e)),
    };
    if result.is_err() {
        let _ = remove(path);
    }
    result
}

/// Unmount and delete a pinned namespace. Absent is fine; the namespace itself goes when its
/// last user (process, socket, mount) does.
pub fn remove(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err(path, "unmount network namespace", e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path, "remove", e)),
    }
}

/// Is `path` a pinned network namespace (a mounted nsfs file)?
pub fn is_pinned(path: &Path) -> bool {
    // nsfs files answer NS_GET_NSTYPE; a cheaper test that needs no ioctl: the inode of a
    // namespace file lives on the nsfs filesystem (magic 0x6e736673)
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == 0x6e73_6673)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn create_enter_remove() {
        if !root() {
            eprintln!("SKIP: needs root");
            return;
        }
        let dir = tempfile_dir();
        let p = dir.join("ns1");
        let inode_inside = create(&p, || {
            std::fs::metadata("/proc/thread-self/ns/net").map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.ino()
            })
        })
        .expect("create")
        .expect("stat inside");
        assert!(is_pinned(&p), "namespace file is pinned");
        let host = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self/ns/net").expect("stat").ino()
        };
        assert_ne!(inode_inside, host, "a new namespace");
        let again = run_in(&p, || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino())
        })
        .expect("enter")
        .expect("stat");
        assert_eq!(again, inode_inside, "run_in enters the same namespace");
        // creating over an existing file is refused and leaves the first in place
        assert!(create(&p, || ()).is_err());
        remove(&p).expect("remove");
        assert!(!p.exists());
        remove(&p).expect("remove twice");
        let _ = std::fs::remove_dir(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-netns-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }
}
