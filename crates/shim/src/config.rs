//! The shim's command line as a typed [`Config`]: parsed (and validated) by `berth-shim`, and
//! rendered back into arguments by berthd through [`Config::to_args`], so both sides of the
//! contract use one definition. Hand-written parsing keeps the resident binary small.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::logfile::Rotation;

/// Errors of the command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An option that is not part of the contract.
    #[error("unknown option {0:?}")]
    Unknown(String),
    /// An option given without its value.
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    /// A required option is absent.
    #[error("option {0} is required")]
    Required(&'static str),
    /// A value that does not parse.
    #[error("invalid value {value:?} for {option}: {why}")]
    Invalid {
        /// the option
        option: &'static str,
        /// the value given
        value: String,
        /// what is wrong with it
        why: &'static str,
    },
}

/// Where the container's output is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDriver {
    /// docker's json-file format at `path`, rotated
    JsonFile {
        /// the live log file
        path: PathBuf,
        /// size/count limits
        rotation: Rotation,
    },
    /// no log: output only reaches attached clients
    None,
}

/// Everything berthd tells one shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// container id (as given to berth-runtime)
    pub id: String,
    /// OCI bundle directory
    pub bundle: PathBuf,
    /// the berth-runtime binary
    pub runtime: PathBuf,
    /// berth-runtime's `--root`
    pub runtime_root: PathBuf,
    /// the shim's state directory (shim.pid, exit.json, sockets)
    pub state_dir: PathBuf,
    /// the container has a terminal (config.json `process.terminal` must be true)
    pub tty: bool,
    /// keep the container's stdin open for attach clients
    pub stdin: bool,
    /// the log driver
    pub log: LogDriver,
    /// extra global arguments for berth-runtime (before the verb), e.g. `--systemd-cgroup`
    pub runtime_args: Vec<OsString>,
    /// return once the container is created; a client starts it with the `start` control request
    pub no_start: bool,
}

const USAGE: &str = "usage: berth-shim --id ID --bundle DIR --runtime PATH --runtime-root DIR \
--state-dir DIR [--tty] [--stdin] [--no-start] [--log-driver json-file|none] [--log-path FILE] \
[--log-max-size BYTES[k|m|g]] [--log-max-files N] [--runtime-arg ARG]...";

/// The usage line.
pub fn usage() -> &'static str {
    USAGE
}

impl Config {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Config, ConfigError> {
        let mut it = args.into_iter();
        let mut id = None;
        let mut bundle = None;
        let mut runtime = None;
        let mut runtime_root = None;
        let mut state_dir = None;
        let mut tty = false;
        let mut stdin = false;
        let mut no_start = false;
        let mut driver = None;
        let mut log_path = None;
        let mut max_size = None;
        let mut max_files = None;
        let mut runtime_args = Vec::new();
        while let Some(arg) = it.next() {
            let (name, inline) = split_eq(&arg);
            let mut value = |opt: &'static str| -> Result<OsString, ConfigError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it.next().ok_or(ConfigError::MissingValue(opt)),
                }
            };
            match name.as_bytes() {
                b"--id" => id = Some(value("--id")?),
                b"--bundle" => bundle = Some(value("--bundle")?),
                b"--runtime" => runtime = Some(value("--runtime")?),
                b"--runtime-root" => runtime_root = Some(value("--runtime-root")?),
                b"--state-dir" => state_dir = Some(value("--state-dir")?),
                b"--tty" => tty = true,
                b"--stdin" => stdin = true,
                b"--no-start" => no_start = true,
                b"--log-driver" => driver = Some(value("--log-driver")?),
                b"--log-path" => log_path = Some(value("--log-path")?),
                b"--log-max-size" => max_size = Some(value("--log-max-size")?),
                b"--log-max-files" => max_files = Some(value("--log-max-files")?),
                b"--runtime-arg" => runtime_args.push(value("--runtime-arg")?),
                _ => return Err(ConfigError::Unknown(arg.to_string_lossy().into_owned())),
            }
        }
        let id = id.ok_or(ConfigError::Required("--id"))?;
        let id = id
            .into_string()
            .map_err(|v| invalid("--id", &v, "not UTF-8"))?;
        if id.is_empty()
            || id.starts_with('.')
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(invalid("--id", OsStr::new(&id), "want [A-Za-z0-9_.-]+"));
        }
        let rotation = Rotation {
            max_size: match max_size {
                Some(v) => Some(parse_size(&v)?),
                None => None,
            },
            max_files: match max_files {
                Some(v) => {
                    let n = v
                        .to_str()
                        .and_then(|s| s.parse::<u32>().ok())
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid("--log-max-files", &v, "want an integer >= 1"))?;
                    n
                }
                None => 1,
            },
        };
        let log = match driver.as_deref().map(OsStr::as_bytes) {
            None | Some(b"json-file") => LogDriver::JsonFile {
                path: PathBuf::from(log_path.ok_or(ConfigError::Required("--log-path"))?),
                rotation,
            },
            Some(b"none") => LogDriver::None,
            Some(_) => {
                return Err(invalid(
                    "--log-driver",
                    driver.as_deref().unwrap_or_default(),
                    "want json-file or none",
                ))
            }
        };
        let state_dir = PathBuf::from(state_dir.ok_or(ConfigError::Required("--state-dir"))?);
        if !state_dir.is_absolute() {
            // berthd recognises a live shim by this argument in its /proc cmdline
            return Err(invalid(
                "--state-dir",
                state_dir.as_os_str(),
                "want an absolute path",
            ));
        }
        Ok(Config {
            id,
            bundle: bundle.ok_or(ConfigError::Required("--bundle"))?.into(),
            runtime: runtime.ok_or(ConfigError::Required("--runtime"))?.into(),
            runtime_root: runtime_root
                .ok_or(ConfigError::Required("--runtime-root"))?
                .into(),
            state_dir,
            tty,
            stdin,
            log,
            runtime_args,
            no_start,
        })
    }

    /// The arguments that [`Config::parse`] turns back into this config.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::with_capacity(20);
        let mut kv = |k: &str, v: &OsStr| {
            a.push(k.into());
            a.push(v.to_owned());
        };
        kv("--id", OsStr::new(&self.id));
        kv("--bundle", self.bundle.as_os_str());
        kv("--runtime", self.runtime.as_os_str());
        kv("--runtime-root", self.runtime_root.as_os_str());
        kv("--state-dir", self.state_dir.as_os_str());
        match &self.log {
            LogDriver::JsonFile { path, rotation } => {
                kv("--log-driver", OsStr::new("json-file"));
                kv("--log-path", path.as_os_str());
                if let Some(s) = rotation.max_size {
                    kv("--log-max-size", OsStr::new(&s.to_string()));
                }
                kv(
                    "--log-max-files",
                    OsStr::new(&rotation.max_files.to_string()),
                );
            }
            LogDriver::None => kv("--log-driver", OsStr::new("none")),
        }
        for r in &self.runtime_args {
            kv("--runtime-arg", r);
        }
        for (on, flag) in [
            (self.tty, "--tty"),
            (self.stdin, "--stdin"),
            (self.no_start, "--no-start"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        a
    }
}

fn split_eq(arg: &OsStr) -> (&OsStr, Option<OsString>) {
    let b = arg.as_bytes();
    if b.starts_with(b"--") {
        if let Some(i) = b.iter().position(|&c| c == b'=') {
            return (
                OsStr::from_bytes(&b[..i]),
                Some(OsStr::from_bytes(&b[i + 1..]).to_owned()),
            );
        }
    }
    (arg, None)
}

fn invalid(option: &'static str, value: &OsStr, why: &'static str) -> ConfigError {
    ConfigError::Invalid {
        option,
        value: value.to_string_lossy().into_owned(),
        why,
    }
}

/// A byte size: digits with an optional `k`, `m` or `g` suffix (1024-based, as docker's
/// `max-size`).
pub fn parse_size(v: &OsStr) -> Result<u64, ConfigError> {
    let bad = || invalid("--log-max-size", v, "want BYTES[k|m|g] > 0");
    let s = v.to_str().ok_or_else(bad)?.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mul) = match s.as_bytes().last() {
        Some(b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|n| *n > 0)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    fn base() -> Vec<&'static str> {
        vec![
            "--id",
            "c1",
            "--bundle",
            "/b",
            "--runtime",
            "/bin/berth-runtime",
            "--runtime-root",
            "/run/r",
            "--state-dir",
            "/run/s",
        ]
    }

    #[test]
    fn full_config_round_trips() {
        let mut a = base();
        a.extend([
            "--tty",
            "--stdin",
            "--log-path=/l/c.log",
            "--log-max-size",
            "10m",
            "--log-max-files",
            "3",
            "--runtime-arg",
            "--systemd-cgroup",
            "--no-start",
        ]);
        let c = Config::parse(args(&a)).expect("parse");
        assert!(c.tty && c.stdin && c.no_start);
        assert_eq!(
            c.log,
            LogDriver::JsonFile {
                path: "/l/c.log".into(),
                rotation: Rotation {
                    max_size: Some(10 << 20),
                    max_files: 3
                }
            }
        );
        assert_eq!(c.runtime_args, vec![OsString::from("--systemd-cgroup")]);
        assert_eq!(Config::parse(c.to_args()).expect("reparse"), c);
    }

    #[test]
    fn log_driver_none_needs_no_path() {
        let mut a = base();
        a.extend(["--log-driver", "none"]);
        let c = Config::parse(args(&a)).expect("parse");
        assert_eq!(c.log, LogDriver::None);
        assert_eq!(Config::parse(c.to_args()).expect("reparse"), c);
    }

    #[test]
    fn bad_command_lines_name_the_option() {
        assert_eq!(
            Config::parse(args(&base())),
            Err(ConfigError::Required("--log-path"))
        );
        let mut a = base();
        a.push("--log-path");
        assert_eq!(
            Config::parse(args(&a)),
            Err(ConfigError::MissingValue("--log-path"))
        );
        let mut a = base();
        a.push("--frob");
        assert_eq!(
            Config::parse(args(&a)),
            Err(ConfigError::Unknown("--frob".into()))
        );
        let mut a = base();
        a[1] = "../x";
        a.extend(["--log-driver", "none"]);
        assert!(matches!(
            Config::parse(args(&a)),
            Err(ConfigError::Invalid { option: "--id", .. })
        ));
        let mut a = base();
        a[9] = "rel/state";
        a.extend(["--log-driver", "none"]);
        assert!(matches!(
            Config::parse(args(&a)),
            Err(ConfigError::Invalid {
                option: "--state-dir",
                ..
            })
        ));
        let mut a = base();
        a.extend(["--log-path", "/l", "--log-max-files", "0"]);
        assert!(matches!(
            Config::parse(args(&a)),
            Err(ConfigError::Invalid {
                option: "--log-max-files",
                ..
            })
        ));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(OsStr::new("1024")), Ok(1024));
        assert_eq!(parse_size(OsStr::new("2k")), Ok(2048));
        assert_eq!(parse_size(OsStr::new("1MB")), Ok(1 << 20));
        assert!(parse_size(OsStr::new("0")).is_err());
        assert!(parse_size(OsStr::new("x")).is_err());
    }
}
