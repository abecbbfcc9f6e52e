//! A berthd on a private socket and roots (no bridge of its own, host forwarding untouched),
//! pulling from a test registry, and the `berth` CLI pointed at it with its credentials kept
//! in the test's directory. Shared by the berth CLI tests; killed on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::{ensure_siblings, Registry};

pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(reg: &Registry) -> Daemon {
        let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
        ensure_siblings(&berth);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("berthd.log")).expect("log");
        let child = Command::new(berth.with_file_name("berthd"))
            .arg("-H")
            .arg(format!("unix://{}", dir.path().join("b.sock").display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--default-registry")
            .arg(format!("127.0.0.1:{}", reg.port))
            .args(["--bridge", "none", "--ip-forward=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        let d = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(d.dir.path().join("b.sock")).is_err() {
            assert!(
                Instant::now() < deadline,
                "berthd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("b.sock").display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// `berth ARGS` against this daemon, `stdin` fed to it when given.
    pub fn berth(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("-H")
            .arg(self.host())
            // credentials stay in this test's directory, never root's ~/.berth or ~/.docker
            .env("BERTH_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = c.spawn().expect("spawn berth");
        if let Some(data) = stdin {
            use std::io::Write;
            let mut i = child.stdin.take().expect("stdin");
            i.write_all(data).expect("write stdin");
        }
        child.wait_with_output().expect("berth output")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    /// Runs and expects success; returns stdout (berthd's log in the failure message).
    pub fn ok_in(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.berth(args, stdin);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}{}\nberthd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
            .trim()
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
