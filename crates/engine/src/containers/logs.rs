//! Reading a container's json-file log (written by berth-shim, rotated as `FILE.N` … `FILE.1`,
//! `FILE`) for `GET /containers/{id}/logs`: stream selection, since/until, tail, timestamps,
//! docker's 8-byte multiplex framing (none with a TTY), and follow.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// Unix nanoseconds; entries before are skipped.
    pub since: Option<i64>,
    /// Unix nanoseconds; entries after are skipped (and follow stops there).
    pub until: Option<i64>,
    /// Last N lines; `None` = all.
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub follow: bool,
    /// Raw output (container has a TTY): no multiplex headers.
    pub tty: bool,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

struct Entry {
    stream: u8,
    nanos: i64,
    time: String,
    log: String,
}

fn parse(line: &str) -> Option<Entry> {
    let l: Line = serde_json::from_str(line).ok()?;
    let nanos = berth_api::time::parse_timestamp(&l.time)
        .map(|t| t.unix_nanos())
        .unwrap_or(0);
    Some(Entry {
        stream: if l.stream == "stderr" { 2 } else { 1 },
        nanos,
        time: l.time,
        log: l.log,
    })
}

/// The rotated files, oldest first, then the live one.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1.. {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

fn wanted(e: &Entry, o: &LogOptions) -> bool {
    (if e.stream == 2 { o.stderr } else { o.stdout })
        && o.since.is_none_or(|s| e.nanos >= s)
        && o.until.is_none_or(|u| e.nanos <= u)
}

fn emit<W: Write>(out: &mut W, e: &Entry, o: &LogOptions) -> std::io::Result<()> {
    let mut payload = Vec::with_capacity(e.log.len() + 40);
    if o.timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(e.log.as_bytes());
    if !o.tty {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let mut h = [e.stream, 0, 0, 0, 0, 0, 0, 0];
        h[4..].copy_from_slice(&len.to_be_bytes());
        out.write_all(&h)?;
    }
    out.write_all(&payload)
}

/// Write the log at `path` to `out`; with `follow`, keep reading new entries until `running()`
/// says the container stopped (and the file is drained) or `until` passes.
pub fn write_logs<W: Write>(
    path: &Path,
    o: &LogOptions,
    out: &mut W,
    running: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let mut tail: VecDeque<Entry> = VecDeque::new();
    let list = files(path);
    let mut live_pos = 0u64;
    for (i, f) in list.iter().enumerate() {
        let Ok(file) = std::fs::File::open(f) else {
            continue;
        };
        let mut r = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            if i + 1 == list.len() {
                live_pos += n as u64;
            }
            let Some(e) = parse(line.trim_end()) else {
                continue;
            };
            if !wanted(&e, o) {
                continue;
            }
            match o.tail {
                Some(0) => {}
                Some(t) => {
                    if tail.len() == t {
                        tail.pop_front();
                    }
                    tail.push_back(e);
                }
                None => emit(out, &e, o)?,
            }
        }
    }
    for e in &tail {
        emit(out, e, o)?;
    }
    out.flush()?;
    if !o.follow {
        return Ok(());
    }
    let mut pos = live_pos;
    let mut pending = String::new();
    loop {
        let alive = running();
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(_) if alive => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(_) => return Ok(()),
        };
        let len = file.metadata()?.len();
        if len < pos {
            // rotated: start over on the new live file
            pos = 0;
            pending.clear();
        }
        let mut got_any = false;
        if len > pos {
            file.seek(SeekFrom::Start(pos))?;
            let mut r = BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r.read_line(&mut line)?;
                if n == 0 {
                    break;
                }
                pos += n as u64;
                got_any = true;
                pending.push_str(&line);
                if !pending.ends_with('\n') {
                    continue;
                }
                if let Some(e) = parse(pending.trim_end()) {
                    if o.until.is_some_and(|u| e.nanos > u) {
                        return Ok(());
                    }
                    if wanted(&e, o) {
                        emit(out, &e, o)?;
                    }
                }
                pending.clear();
            }
            out.flush()?;
        }
        if !alive && !got_any {
            return Ok(());
        }
        if let Some(u) = o.until {
            if berth_api::time::Timestamp::now().unix_nanos() > u {
                return Ok(());
            }
        }
        if !got_any {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_streams_and_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c-json.log");
        std::fs::write(
            format!("{}.1", p.display()),
            "{\"log\":\"old\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00.000000001Z\"}\n",
        )
        .expect("write");
        std::fs::write(
            &p,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:01Z\"}\n\
             {\"log\":\"e\\n\",\"stream\":\"stderr\",\"time\":\"2026-01-01T00:00:02Z\"}\n\
             {\"log\":\"b\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:03Z\"}\n",
        )
        .expect("write");
        let read = |o: LogOptions| {
            let mut out = Vec::new();
            write_logs(&p, &o, &mut out, &|| false).expect("logs");
            out
        };
        let all = LogOptions {
            stdout: true,
            stderr: true,
            tty: true,
            ..LogOptions::default()
        };
        assert_eq!(read(all.clone()), b"old\na\ne\nb\n");
        let out = read(LogOptions {
            stderr: false,
            tail: Some(1),
            ..all.clone()
        });
        assert_eq!(out, b"b\n");
        let framed = read(LogOptions {
            stdout: false,
            tty: false,
            ..all.clone()
        });
        assert_eq!(framed, [&[2u8, 0, 0, 0, 0, 0, 0, 2][..], b"e\n"].concat());
        let since = berth_api::time::parse_timestamp("2026-01-01T00:00:02Z")
            .expect("ts")
            .unix_nanos();
        let out = read(LogOptions {
            since: Some(since),
            timestamps: true,
            ..all
        });
        assert_eq!(
            String::from_utf8_lossy(&out),
            "2026-01-01T00:00:02Z e\n2026-01-01T00:00:03Z b\n"
        );
    }
}
