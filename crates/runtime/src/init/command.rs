//! The user process's executable: PATH lookup against the *container's* environment (done before
//! `create` reports ready, so a missing command fails `create` like runc), and the final execve.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;

/// Default PATH when the process env has none (runc's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors of finding and executing the user command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// process.args is missing or empty.
    #[error("process.args must name a command")]
    NoArgs,
    /// Not found / not executable.
    #[error("exec {name:?}: {reason}")]
    NotFound {
        /// args[0]
        name: String,
        /// the errno's text, lowercase like runc ("no such file or directory")
        reason: String,
    },
    /// An argument or env entry holds a NUL byte.
    #[error("process argument or env {0:?} holds a NUL byte")]
    Nul(String),
    /// execve itself failed.
    #[error("exec {name:?}: {source}")]
    Exec {
        /// resolved path
        name: String,
        /// cause
        #[source]
        source: nix::Error,
    },
}

/// A resolved command, ready for execve.
#[derive(Debug)]
pub struct Command {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn cstr(s: &str) -> Result<CString, CommandError> {
    CString::new(s).map_err(|_| CommandError::Nul(s.to_owned()))
}

impl Command {
    /// Resolves `args[0]` against PATH from `env` (in the current root, i.e. after pivot).
    pub fn resolve(args: &[String], env: &[String]) -> Result<Command, CommandError> {
        let name = args.first().ok_or(CommandError::NoArgs)?;
        let path = find(name, env)?;
        Ok(Command {
            path: CString::new(path.as_os_str().as_bytes())
                .map_err(|_| CommandError::Nul(name.clone()))?,
            argv: args.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?,
            envp: env.iter().map(|e| cstr(e)).collect::<Result<_, _>>()?,
        })
    }

    /// execve; returns only on failure.
    pub fn exec(&self) -> CommandError {
        berth_sys::process::reset_signals_for_exec();
        let err = match nix::unistd::execve(&self.path, &self.argv, &self.envp) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        CommandError::Exec {
            name: self.path.to_string_lossy().into_owned(),
            source: err,
        }
    }
}

fn find(name: &str, env: &[String]) -> Result<PathBuf, CommandError> {
    let not_found = |e: nix::errno::Errno| CommandError::NotFound {
        name: name.to_owned(),
        reason: e.desc().to_lowercase(),
    };
    if name.is_empty() {
        return Err(not_found(nix::errno::Errno::ENOENT));
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        check_exec(&p).map_err(not_found)?;
        return Ok(p);
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut last = nix::errno::Errno::ENOENT;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        match check_exec(&p) {
            Ok(()) => return Ok(p),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {}
            Err(e) => last = e,
        }
    }
    Err(not_found(last))
}

fn check_exec(p: &Path) -> Result<(), nix::errno::Errno> {
    let meta = std::fs::metadata(p)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
    if meta.is_dir() {
        return Err(nix::errno::Errno::EACCES);
    }
    nix::unistd::access(p, AccessFlags::X_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_in_path_and_reports_missing_command() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_owned()];
        assert!(Command::resolve(&["sh".into()], &env).is_ok());
        let e = Command::resolve(&["nosuch-berth".into()], &env).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "exec \"nosuch-berth\": no such file or directory"
        );
        assert!(matches!(
            Command::resolve(&[], &env),
            Err(CommandError::NoArgs)
        ));
    }
}
