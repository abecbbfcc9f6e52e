//! Reading and writing cgroup control files.
//!
//! Every write is one `open(O_WRONLY|O_CLOEXEC)` plus one `write(2)` of the whole value (the
//! kernel parses each write on its own), and every error names the file and the value.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{CgroupError, Result};

/// Writes `value` to `dir/name` with a single write.
pub(crate) fn write(dir: &Path, name: &str, value: &str) -> Result<()> {
    write_path(&dir.join(name), value)
}

/// Writes `value` to `path` with a single write.
pub(crate) fn write_path(path: &Path, value: &str) -> Result<()> {
    let res = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Reads `dir/name` whole.
pub(crate) fn read(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// Reads `dir/name`, `None` when the file does not exist.
pub(crate) fn read_opt(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Whether `dir/name` exists.
pub(crate) fn exists(dir: &Path, name: &str) -> bool {
    dir.join(name).exists()
}

/// Parses a single number; `max` reads as `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, content: &str) -> Result<u64> {
    let t = content.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_string(),
    })
}

/// Reads `dir/name` as a number (`max` → `u64::MAX`); a missing file reads as 0.
pub(crate) fn read_u64(dir: &Path, name: &str) -> Result<u64> {
    match read_opt(dir, name)? {
        Some(s) => parse_u64(&dir.join(name), &s),
        None => Ok(0),
    }
}

/// Reads `dir/name` as space-separated numbers (`cpuacct.usage_percpu`); missing → empty.
pub(crate) fn read_u64_list(dir: &Path, name: &str) -> Result<Vec<u64>> {
    let Some(s) = read_opt(dir, name)? else {
        return Ok(Vec::new());
    };
    s.split_whitespace()
        .map(|v| parse_u64(&dir.join(name), v))
        .collect()
}

/// Reads a flat-keyed file (`key value` per line, like `memory.stat` or `cpu.stat`); missing →
/// empty. Lines whose value is not a number are skipped.
pub(crate) fn read_flat_keyed(dir: &Path, name: &str) -> Result<BTreeMap<String, u64>> {
    let Some(s) = read_opt(dir, name)? else {
        return Ok(BTreeMap::new());
    };
    Ok(parse_flat_keyed(&s))
}

/// Parses `key value` lines.
pub(crate) fn parse_flat_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// A control file opened once for several writes (`devices.allow`, `io.max`, throttle files):
/// each `write` is still one `write(2)` the kernel parses on its own.
pub(crate) struct MultiWriter {
    file: File,
    path: PathBuf,
}

impl MultiWriter {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        match OpenOptions::new().write(true).open(&path) {
            Ok(file) => Ok(MultiWriter { file, path }),
            Err(source) => Err(CgroupError::Write {
                path,
                value: String::new(),
                source,
            }),
        }
    }

    pub(crate) fn write(&mut self, value: &str) -> Result<()> {
        self.file
            .write_all(value.as_bytes())
            .map_err(|source| CgroupError::Write {
                path: self.path.clone(),
                value: value.to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_names_file_and_value_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), "missing/pids.max", "max").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"max\""), "{msg}");
        assert!(msg.contains("pids.max"), "{msg}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn parses_numbers_and_max() {
        let p = Path::new("/x");
        assert_eq!(parse_u64(p, "42\n").unwrap(), 42);
        assert_eq!(parse_u64(p, "max\n").unwrap(), u64::MAX);
        assert!(parse_u64(p, "nope").is_err());
        let m = parse_flat_keyed("cache 10\nrss 20\nbad x\n");
        assert_eq!(m.get("cache"), Some(&10));
        assert_eq!(m.get("rss"), Some(&20));
        assert!(!m.contains_key("bad"));
    }

    #[test]
    fn missing_files_read_as_zero_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_u64(dir.path(), "nope").unwrap(), 0);
        assert!(read_u64_list(dir.path(), "nope").unwrap().is_empty());
        std::fs::write(dir.path().join("l"), "1 2 3\n").unwrap();
        assert_eq!(read_u64_list(dir.path(), "l").unwrap(), vec![1, 2, 3]);
    }
}
