//! Paths resolved and created strictly inside a root directory (CVE-2021-30465 class).
//!
//! Every lookup goes through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to an
//! `O_PATH` fd of the root, so `..` and absolute symlinks are clamped to the root. Missing
//! components are created with `mkdirat`/`openat` relative to a parent fd itself resolved that
//! way; a dangling symlink is followed (inside the root) to create its target. Mounts then go onto
//! `/proc/self/fd/<fd>` (or `move_mount` onto the fd): the object that was checked is the object
//! that gets mounted on, whatever the rootfs content does in between.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use berth_sys::mount::{fd_path, open_in_root};

use super::RootfsError;

/// What to create when the destination is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (mode 0755 before umask).
    Dir,
    /// An empty regular file (mode 0644 before umask), e.g. for a bind mount of a file.
    File,
}

/// An `O_PATH` fd of a root directory, and its canonical path for messages and checks.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// More symlinks than this while creating a path is a loop (as the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// Lexically clean `path` into components below the root (`..` stops at the root).
pub fn clean(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn join(components: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    p.extend(components);
    p
}

impl Root {
    /// Open `path` (which must be a directory) as a root.
    pub fn open(path: &Path) -> Result<Self, RootfsError> {
        let canonical = std::fs::canonicalize(path).map_err(|e| RootfsError::Rootfs {
            path: path.to_path_buf(),
            what: "canonicalize",
            source: errno_of(&e),
        })?;
        let fd = nix::fcntl::open(
            &canonical,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| RootfsError::Rootfs {
            path: path.to_path_buf(),
            what: "open",
            source,
        })?;
        Ok(Root {
            fd,
            path: canonical,
        })
    }

    /// The root's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `O_PATH` fd of `path` inside the root; `None` if it doesn't exist.
    pub fn lookup(&self, path: &Path) -> Result<Option<OwnedFd>, RootfsError> {
        match open_in_root(self.fd(), &join(&clean(path)), OFlag::O_PATH) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(source) => Err(RootfsError::Resolve {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// `O_PATH` fd of `path` inside the root, which must exist.
    pub fn resolve(&self, path: &Path) -> Result<OwnedFd, RootfsError> {
        self.lookup(path)?.ok_or_else(|| RootfsError::Resolve {
            path: path.to_path_buf(),
            source: Errno::ENOENT,
        })
    }

    /// `O_PATH` fd of `path` inside the root, created (with its parents) when missing.
    pub fn ensure(&self, path: &Path, kind: Kind) -> Result<OwnedFd, RootfsError> {
        let create_err = |source| RootfsError::Create {
            path: path.to_path_buf(),
            source,
        };
        let mut comps = clean(path);
        let mut hops = 0;
        'restart: loop {
            if let Some(fd) = self.lookup(&join(&comps))? {
                return Ok(fd);
            }
            if comps.is_empty() {
                return self.resolve(Path::new("/"));
            }
            // The deepest existing ancestor, searched from the end: usually the parent.
            let mut first_missing = comps.len() - 1;
            let mut parent = loop {
                if first_missing == 0 {
                    break self.resolve(Path::new("/"))?;
                }
                if let Some(fd) = self.lookup(&join(&comps[..first_missing]))? {
                    break fd;
                }
                first_missing -= 1;
            };
            for i in first_missing..comps.len() {
                let name = &comps[i];
                let last = i + 1 == comps.len();
                let created = if last && kind == Kind::File {
                    nix::fcntl::openat(
                        parent.as_fd(),
                        name.as_os_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                } else {
                    nix::sys::stat::mkdirat(
                        parent.as_fd(),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                };
                match created {
                    Ok(()) => {}
                    // It exists but didn't resolve: a dangling symlink. Follow the link
                    // (inside the root) to create what it points to.
                    Err(Errno::EEXIST) => {
                        if let Ok(target) = nix::fcntl::readlinkat(parent.as_fd(), name.as_os_str())
                        {
                            hops += 1;
                            if hops > MAX_SYMLINKS {
                                return Err(create_err(Errno::ELOOP));
                            }
                            let target = Path::new(&target);
                            let mut next = if target.is_absolute() {
                                PathBuf::from("/")
                            } else {
                                join(&comps[..i])
                            };
                            next.push(target);
                            next.extend(&comps[i + 1..]);
                            comps = clean(&next);
                            continue 'restart;
                        }
                        // Not a symlink: created meanwhile; resolve it below.
                    }
                    Err(e) => return Err(create_err(e)),
                }
                parent = self.resolve(&join(&comps[..=i]))?;
            }
            return Ok(parent);
        }
    }

    /// Where `fd` really is, as a path inside this root (`None` if it's outside, which
    /// in-root resolution makes impossible unless the root itself moved).
    pub fn path_in_root(&self, fd: BorrowedFd<'_>) -> Option<PathBuf> {
        let real = std::fs::read_link(fd_path(fd)).ok()?;
        let rel = real.strip_prefix(&self.path).ok()?;
        Some(Path::new("/").join(rel))
    }
}

/// The errno of an io error (EIO when it has none).
pub fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_at_root() {
        assert_eq!(
            clean(Path::new("/a/./b/../../../c")),
            vec![OsString::from("c")]
        );
        assert_eq!(
            clean(Path::new("rel/x")),
            vec![OsString::from("rel"), "x".into()]
        );
        assert!(clean(Path::new("/")).is_empty());
    }

    #[test]
    fn ensure_creates_inside_through_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root_dir = tmp.path().join("root");
        let victim = tmp.path().join("victim");
        std::fs::create_dir_all(&root_dir).expect("mkdir");
        std::fs::create_dir_all(&victim).expect("mkdir");
        std::os::unix::fs::symlink(&victim, root_dir.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../victim", root_dir.join("rel")).expect("symlink");
        std::os::unix::fs::symlink("/nonexistent/deeper", root_dir.join("dangling"))
            .expect("symlink");
        let root = Root::open(&root_dir).expect("open root");

        let fd = root
            .ensure(Path::new("/abs/x/y"), Kind::Dir)
            .expect("ensure");
        assert_eq!(root.path_in_root(fd.as_fd()), Some(victim.join("x/y")));
        root.ensure(Path::new("/rel/f"), Kind::File)
            .expect("ensure file");
        assert!(root_dir.join("victim/f").is_file());
        let fd = root
            .ensure(Path::new("/dangling/z"), Kind::Dir)
            .expect("dangling");
        assert_eq!(
            root.path_in_root(fd.as_fd()),
            Some(PathBuf::from("/nonexistent/deeper/z"))
        );
        assert_eq!(
            std::fs::read_dir(&victim).expect("read victim").count(),
            0,
            "something was created outside the root"
        );
    }
}
