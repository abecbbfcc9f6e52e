//! The json-file log driver, byte for byte docker's: one JSON object per line
//! (`{"log":"hi\n","stream":"stdout","time":"2026-11-27T08:00:00.123456789Z"}`), lines split at
//! `\n`, a line longer than 16 KiB written as 16 KiB partial entries without the trailing `\n`,
//! and rotation by size and count (`FILE`, `FILE.1`, ... `FILE.<max-files - 1>`): before an entry
//! is written, a file that already holds `max-size` bytes or more is rotated.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::timefmt::write_rfc3339;

/// Docker's copier buffer: a line that fills it without a newline is logged as a partial entry.
pub const PARTIAL_LIMIT: usize = 16 * 1024;

/// Errors of the log file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Opening the log file failed.
    #[error("open log file {path}: {source}")]
    Open {
        /// the log file
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// Writing an entry failed (the entry is lost; the shim keeps going).
    #[error("write log file {path}: {source}")]
    Write {
        /// the log file
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// Renaming a file during rotation failed.
    #[error("rotate log file {path}: {source}")]
    Rotate {
        /// the file being renamed
        path: PathBuf,
        /// cause
        #[source]
        source: std::io::Error,
    },
}

/// Where a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// the container's stdout (and a TTY's output)
    Stdout,
    /// the container's stderr
    Stderr,
}

impl Stream {
    /// The json-file `stream` value.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Appends one json-file entry (the JSON object and its trailing newline) to `out`; `newline`
/// adds the line's `\n` back into the `log` string (complete lines; partial entries have none).
pub fn encode_entry(
    out: &mut Vec<u8>,
    line: &[u8],
    newline: bool,
    stream: Stream,
    time: SystemTime,
) {
    out.push(b'{');
    if !line.is_empty() || newline {
        out.extend_from_slice(b"\"log\":");
        write_json_string(out, line);
        if newline {
            out.pop();
            out.extend_from_slice(b"\\n\"");
        }
        out.push(b',');
    }
    out.extend_from_slice(b"\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    write_rfc3339(out, time, true);
    out.extend_from_slice(b"\"}\n");
}

/// JSON string escaping exactly as docker's `ffjsonWriteJSONBytesAsString`: `"` `\` `\n` `\r`
/// escaped, other control bytes and `<` `>` `&` as `\u00XX`, invalid UTF-8 as `\ufffd`, U+2028
/// and U+2029 escaped.
fn write_json_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if b >= 0x20 && !matches!(b, b'\\' | b'"' | b'<' | b'>' | b'&') {
                i += 1;
                continue;
            }
            out.extend_from_slice(&s[start..i]);
            match b {
                b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]),
            }
            i += 1;
            start = i;
            continue;
        }
        match utf8_char_len(&s[i..]) {
            None => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
            Some(3) if s[i] == 0xe2 && s[i + 1] == 0x80 && matches!(s[i + 2], 0xa8 | 0xa9) => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(if s[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            }
            Some(n) => i += n,
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// The length of the valid UTF-8 sequence starting `s` (whose first byte is ≥ 0x80), or `None`
/// when it is invalid (Go's `utf8.DecodeRune` returning `RuneError, 1`).
fn utf8_char_len(s: &[u8]) -> Option<usize> {
    let n = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let seq = s.get(..n)?;
    std::str::from_utf8(seq).ok().map(|_| n)
}

/// Splits one stream's output into lines the way docker's copier does, keeping the unfinished
/// tail between reads.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`; calls `emit(line, complete)` for every complete line (without its `\n`;
    /// `complete` true) and for every 16 KiB run without a newline (`complete` false).
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) if self.partial.len() + nl <= PARTIAL_LIMIT => {
                    if self.partial.is_empty() {
                        emit(&data[..nl], true);
                    } else {
                        self.partial.extend_from_slice(&data[..nl]);
                        emit(&self.partial, true);
                        self.partial.clear();
                    }
                    data = &data[nl + 1..];
                }
                _ => {
                    let take = (PARTIAL_LIMIT - self.partial.len()).min(data.len());
                    self.partial.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.partial.len() == PARTIAL_LIMIT {
                        emit(&self.partial, false);
                        self.partial.clear();
                    }
                }
            }
        }
        if self.partial.capacity() > PARTIAL_LIMIT && self.partial.is_empty() {
            self.partial = Vec::new();
        }
    }

    /// At end of stream: emits the unfinished tail as a partial entry.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            emit(&self.partial, false);
            self.partial = Vec::new();
        }
    }
}

/// Size and count limits of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// rotate when the file holds this many bytes (`None`: never)
    pub max_size: Option<u64>,
    /// files kept, the live one included (≥ 1; 1 truncates instead of rotating)
    pub max_files: u32,
}

/// An open json-file log.
#[derive(Debug)]
pub struct JsonFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    buf: Vec<u8>,
}

impl JsonFile {
    /// Opens (appending to) or creates the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> Result<JsonFile, LogError> {
        let file = open_log(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonFile {
            path: path.to_owned(),
            file,
            size,
            rotation,
            buf: Vec::new(),
        })
    }

    /// Queues one entry (`complete` lines get their `\n` back); entries reach the file at the
    /// next [`JsonFile::flush`] (one write per read of container output). When the file is full
    /// the queued entries are written and the file rotated before this entry.
    pub fn write_line(
        &mut self,
        line: &[u8],
        complete: bool,
        stream: Stream,
        time: SystemTime,
    ) -> Result<(), LogError> {
        if let Some(max) = self.rotation.max_size {
            if self.size + self.buf.len() as u64 >= max {
                self.flush()?;
                self.rotate()?;
            }
        }
        encode_entry(&mut self.buf, line, complete, stream, time);
        Ok(())
    }

    /// Writes the queued entries.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        let written = self.buf.len() as u64;
        self.buf.clear();
        if self.buf.capacity() > 4 * PARTIAL_LIMIT {
            self.buf = Vec::new();
        }
        match r {
            Ok(()) => {
                self.size += written;
                Ok(())
            }
            Err(source) => {
                // a short write may have left part of an entry: trust the file's size
                self.size = self.file.metadata().map(|m| m.len()).unwrap_or(self.size);
                Err(LogError::Write {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let n = self.rotation.max_files;
        if n >= 2 {
            for i in (1..n - 1).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    let to = numbered(&self.path, i + 1);
                    std::fs::rename(&from, &to)
                        .map_err(|source| LogError::Rotate { path: from, source })?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(|source| {
                LogError::Rotate {
                    path: self.path.clone(),
                    source,
                }
            })?;
            self.file = open_log(&self.path)?;
        } else {
            self.file.set_len(0).map_err(|source| LogError::Rotate {
                path: self.path.clone(),
                source,
            })?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_log(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })
}

/// `FILE.i`.
pub fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(line: &[u8], stream: Stream) -> String {
        let mut v = Vec::new();
        let (line, nl) = match line.strip_suffix(b"\n") {
            Some(l) => (l, true),
            None => (line, false),
        };
        encode_entry(
            &mut v,
            line,
            nl,
            stream,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_780),
        );
        String::from_utf8(v).expect("json is utf-8")
    }

    #[test]
    fn entry_matches_docker_bytes() {
        assert_eq!(
            entry(b"hi\n", Stream::Stdout),
            "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2023-11-14T22:13:20.12345678Z\"}\n"
        );
        assert_eq!(
            entry(b"<a&b> \"q\" \\ \t\r\x01", Stream::Stderr),
            "{\"log\":\"\\u003ca\\u0026b\\u003e \\\"q\\\" \\\\ \\u0009\\r\\u0001\",\"stream\":\"stderr\",\"time\":\"2023-11-14T22:13:20.12345678Z\"}\n"
        );
        // valid UTF-8 stays, invalid bytes and U+2028 are escaped
        assert_eq!(
            entry("é\u{2028}".as_bytes(), Stream::Stdout)
                .split(',')
                .next(),
            Some("{\"log\":\"é\\u2028\"")
        );
        assert_eq!(
            entry(b"\xff\xc3", Stream::Stdout).split(',').next(),
            Some("{\"log\":\"\\ufffd\\ufffd\"")
        );
        // an empty partial has no log field, as docker's omitempty
        assert!(entry(b"", Stream::Stdout).starts_with("{\"stream\""));
    }

    #[test]
    fn entries_parse_as_json() {
        let s = entry(b"x\xff\x00y\n", Stream::Stdout);
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid json");
        assert_eq!(v["log"], "x\u{fffd}\u{0}y\n");
    }

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        for c in chunks {
            s.feed(c, |l, complete| got.push((l.to_vec(), complete)));
        }
        s.finish(|l, complete| got.push((l.to_vec(), complete)));
        got
    }

    #[test]
    fn lines_split_across_reads() {
        let got = split(&[b"a\nb", b"c\n\nd"]);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), true),
                (b"bc".to_vec(), true),
                (b"".to_vec(), true),
                (b"d".to_vec(), false)
            ]
        );
    }

    #[test]
    fn long_line_is_cut_at_16k() {
        let long = vec![b'x'; PARTIAL_LIMIT * 2 + 10];
        let mut data = long.clone();
        data.push(b'\n');
        let got = split(&[&data[..100], &data[100..]]);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0.len(), got[0].1), (PARTIAL_LIMIT, false));
        assert_eq!((got[1].0.len(), got[1].1), (PARTIAL_LIMIT, false));
        assert_eq!((got[2].0.len(), got[2].1), (10, true));
        // exactly 16 KiB followed by a newline is one complete line
        let mut exact = vec![b'y'; PARTIAL_LIMIT];
        exact.push(b'\n');
        assert_eq!(split(&[&exact]), vec![(vec![b'y'; PARTIAL_LIMIT], true)]);
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let rot = Rotation {
            max_size: Some(1000),
            max_files: 3,
        };
        let mut log = JsonFile::open(&path, rot).expect("open");
        let line = [b'z'; 100];
        for _ in 0..100 {
            log.write_line(&line, true, Stream::Stdout, SystemTime::now())
                .expect("write");
            log.flush().expect("flush");
        }
        assert!(path.exists());
        assert!(numbered(&path, 1).exists());
        assert!(numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists());
        for p in [path.clone(), numbered(&path, 1)] {
            let len = std::fs::metadata(&p).expect("stat").len();
            assert!(len < 1000 + 200, "{} is {len} bytes", p.display());
            for l in std::fs::read_to_string(&p).expect("read").lines() {
                let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                assert_eq!(v["log"].as_str().map(str::len), Some(101));
            }
        }
    }

    #[test]
    fn one_file_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let rot = Rotation {
            max_size: Some(300),
            max_files: 1,
        };
        let mut log = JsonFile::open(&path, rot).expect("open");
        for _ in 0..20 {
            log.write_line(b"0123456789", true, Stream::Stderr, SystemTime::now())
                .expect("write");
        }
        log.flush().expect("flush");
        assert!(std::fs::metadata(&path).expect("stat").len() < 400);
        assert!(!numbered(&path, 1).exists());
    }
}
