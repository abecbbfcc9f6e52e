//! The real docker CLI pointed at a test berthd (`DOCKER_HOST` = its socket, a private
//! `DOCKER_CONFIG`, no context), shared by the docker_* end-to-end tests. Include with
//! `#[path = "support/docker.rs"] mod docker;` next to `mod common;`.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::Daemon;

pub struct Docker {
    pub host: String,
    pub config: tempfile::TempDir,
}

impl Docker {
    /// A client of `d` with an empty config dir of its own.
    pub fn new(d: &Daemon) -> Docker {
        Docker {
            host: d.host(),
            config: tempfile::tempdir().expect("docker config dir"),
        }
    }

    /// `docker ARGS` with the environment set and stdin/stdout/stderr not yet chosen.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// Runs with stdin closed, capturing output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// Runs with `input` on stdin, capturing output.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker");
        let mut stdin = child.stdin.take().expect("docker stdin");
        // docker may refuse before reading everything; its exit status says so
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("docker output")
    }

    /// Runs and expects success; returns stdout (berthd's log in the failure message).
    pub fn ok(&self, args: &[&str], d: &Daemon) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}\nberthd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "docker {args:?} should fail: {out:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
