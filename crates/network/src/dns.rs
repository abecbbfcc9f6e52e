//! Name resolution on user networks through aardvark-dns (podman's DNS server, run as its own
//! process so it outlives berthd like the shims do). berth writes aardvark's config directory
//! — one file per network named after it: the gateway address on the first line, then one
//! line per container `<id> <ipv4> <ipv6> <name,alias,...>` — and sends SIGHUP after each
//! change; aardvark listens on every network's gateway, port 53, answers names of containers
//! sharing a network with the asker, and forwards other names to the host's resolvers.
//! A network keeps its file while it exists; when no file is left the server is stopped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The aardvark-dns binary podman ships on Debian.
pub const DEFAULT_AARDVARK: &str = "/usr/lib/podman/aardvark-dns";

/// Why the DNS server could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("aardvark-dns ({binary}) failed to start: {message}")]
    Start { binary: PathBuf, message: String },
}

/// One container's names on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub container: String,
    pub ip: Ipv4Addr,
    pub names: Vec<String>,
    /// The container's own upstream servers (`--dns`) for names aardvark forwards.
    pub dns_servers: Vec<std::net::IpAddr>,
}

/// berth's aardvark-dns instance.
#[derive(Debug, Clone)]
pub struct Aardvark {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
}

/// The text of one network's config file.
pub fn config_text(gateway: Ipv4Addr, entries: &[Entry]) -> String {
    let mut s = format!("{gateway}\n");
    for e in entries {
        let mut names: Vec<String> = Vec::new();
        for n in &e.names {
            let n = n.to_ascii_lowercase();
            if !n.is_empty() && !n.contains([' ', ',']) && !names.contains(&n) {
                names.push(n);
            }
        }
        if names.is_empty() {
            continue;
        }
        // the IPv6 column stays empty; a fifth column names the container's upstream servers
        s.push_str(&format!("{} {}  {}", e.container, e.ip, names.join(",")));
        if !e.dns_servers.is_empty() {
            let servers: Vec<String> = e.dns_servers.iter().map(|d| d.to_string()).collect();
            s.push_str(&format!(" {}", servers.join(",")));
        }
        s.push('\n');
    }
    s
}

impl Aardvark {
    /// `dir`: aardvark's config directory (under the exec root: it holds runtime state).
    pub fn new(binary: &Path, dir: &Path) -> Self {
        Self {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            port: 53,
        }
    }

    /// The config directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DnsError {
        let path = path.to_path_buf();
        move |source| DnsError::Io { op, path, source }
    }

    /// Write one network's file (a network without containers keeps its gateway line, so the
    /// server stays up and the next container costs a reload, not a start), then make the
    /// server follow: started when needed, else reloaded.
    pub fn set_network(
        &self,
        network: &str,
        gateway: Ipv4Addr,
        entries: &[Entry],
    ) -> Result<(), DnsError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io("create", &self.dir))?;
        let path = self.dir.join(network);
        let tmp = self.dir.join(format!(".{network}.tmp"));
        std::fs::write(&tmp, config_text(gateway, entries)).map_err(Self::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::io("rename", &path))?;
        self.sync()
    }

    /// Forget a removed network; the server stops when no network is left.
    pub fn remove_network(&self, network: &str) -> Result<(), DnsError> {
        let path = self.dir.join(network);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io("remove", &path)(e)),
        }
        self.sync()
    }

    fn networks_configured(&self) -> bool {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten().any(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n != "aardvark.pid" && !n.starts_with('.')
                })
            })
            .unwrap_or(false)
    }

    /// The running server's pid, if any.
    pub fn pid(&self) -> Option<Pid> {
        let text = std::fs::read_to_string(self.dir.join("aardvark.pid")).ok()?;
        let pid = Pid::from_raw(text.trim().parse().ok()?);
        // signal 0: is it alive? (the pid file outlives a killed server)
        kill(pid, None).ok().map(|_| pid)
    }

    /// Start, reload or stop the server to match the config directory.
    pub fn sync(&self) -> Result<(), DnsError> {
        let wanted = self.networks_configured();
        match (self.pid(), wanted) {
            (Some(pid), true) => {
                let _ = kill(pid, Signal::SIGHUP);
                Ok(())
            }
            (Some(_), false) => {
                self.stop();
                Ok(())
            }
            (None, true) => self.start(),
            (None, false) => Ok(()),
        }
    }

    fn start(&self) -> Result<(), DnsError> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        berth_sys::attr::spawn_without_inherited_fds(&mut cmd);
        // `run` forks the server and returns once it listens
        let out = cmd.output().map_err(|e| DnsError::Start {
            binary: self.binary.clone(),
            message: e.to_string(),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message: Vec<&str> = stderr.lines().filter(|l| !l.contains("syslog")).collect();
            return Err(DnsError::Start {
                binary: self.binary.clone(),
                message: format!("{}: {}", out.status, message.join("; ")),
            });
        }
        Ok(())
    }

    /// Stop the server (no-op when none runs).
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGTERM);
            for _ in 0..100 {
                if kill(pid, None).is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_file(self.dir.join("aardvark.pid"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_format() {
        let t = config_text(
            Ipv4Addr::new(10, 9, 0, 1),
            &[
                Entry {
                    container: "abc".into(),
                    ip: Ipv4Addr::new(10, 9, 0, 2),
                    names: vec![
                        "Web".into(),
                        "web".into(),
                        "alias".into(),
                        "bad name".into(),
                    ],
                    dns_servers: vec![],
                },
                Entry {
                    container: "def".into(),
                    ip: Ipv4Addr::new(10, 9, 0, 3),
                    names: vec![],
                    dns_servers: vec![],
                },
                Entry {
                    container: "ghi".into(),
                    ip: Ipv4Addr::new(10, 9, 0, 4),
                    names: vec!["db".into()],
                    dns_servers: vec!["1.1.1.1".parse().expect("ip")],
                },
            ],
        );
        assert_eq!(
            t,
            "10.9.0.1\nabc 10.9.0.2  web,alias\nghi 10.9.0.4  db 1.1.1.1\n"
        );
    }
}
