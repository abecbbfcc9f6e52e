//! Unix socket paths longer than `sun_path` (108 bytes): berthd's state dirs (`/run/berth/
//! containers/<64 hex id>/attach.sock`) come close to the limit, so a long path is reached
//! through `/proc/<pid>/fd/<dirfd>/<name>` with the directory held open.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest path that fits `sun_path` with its NUL.
const SUN_PATH_MAX: usize = 107;

/// A path usable with bind/connect, valid while this value lives.
#[derive(Debug)]
pub struct SocketPath {
    path: PathBuf,
    _dir: Option<File>,
}

impl SocketPath {
    /// `path` itself when short enough, else a `/proc/<pid>/fd/N/<name>` alias. `pid` is the
    /// process that will use the alias (`None`: `self`).
    pub fn new(path: &Path, pid: Option<u32>) -> io::Result<SocketPath> {
        if path.as_os_str().len() <= SUN_PATH_MAX {
            return Ok(SocketPath {
                path: path.to_owned(),
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket path {} has no file name", path.display()),
            ));
        };
        let d = File::open(dir)?;
        let who = pid.map_or_else(|| "self".to_owned(), |p| p.to_string());
        let alias = Path::new(&format!("/proc/{who}/fd/{}", d.as_raw_fd())).join(name);
        if alias.as_os_str().len() > SUN_PATH_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket name in {} is too long", path.display()),
            ));
        }
        Ok(SocketPath {
            path: alias,
            _dir: Some(d),
        })
    }

    /// The path to bind or connect to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds a listening socket at `path`, replacing a stale socket file.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let sp = SocketPath::new(path, None)?;
    UnixListener::bind(sp.path())
}

/// Connects to the socket at `path`.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let sp = SocketPath::new(path, None)?;
    UnixStream::connect(sp.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn long_paths_bind_and_connect() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let path = deep.join("attach.sock");
        assert!(path.as_os_str().len() > SUN_PATH_MAX);
        let l = bind(&path).expect("bind long path");
        assert!(path.exists());
        let mut c = connect(&path).expect("connect long path");
        let (mut s, _) = l.accept().expect("accept");
        c.write_all(b"x").expect("write");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("read");
        assert_eq!(&b, b"x");
        // a second bind replaces the stale file
        drop(l);
        bind(&path).expect("rebind");
    }
}
