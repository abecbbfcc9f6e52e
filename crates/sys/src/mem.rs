//! Giving back the resident code pages of a long-lived, mostly idle process (berth-shim: one per
//! running container). The kernel maps a binary's text by whole page-cache folios or 64 KiB
//! fault-around windows, so a process that ran its setup code once keeps nearly all of its
//! binary mapped for its whole life. [`drop_clean_exe_pages`] unmaps the never-written, read-only
//! pages of this process's own executable; the page cache keeps them, and the code that runs
//! afterwards faults back in only what it touches.

use std::fs::File;
use std::io::{self, BufRead, BufReader};

/// More read-only mappings than an executable has (ELF segments: rodata, text, a few more).
const MAX_RANGES: usize = 16;

/// A read-only mapping of this process's executable with no anonymous (written) pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CleanRange {
    start: usize,
    end: usize,
}

/// Parses `/proc/self/smaps` text: the mappings of `exe` that are not writable and hold no
/// anonymous pages (text, rodata; not the relocated RELRO segment, not .data/.bss).
fn clean_ranges<L: AsRef<str>>(smaps: impl Iterator<Item = L>, exe: &str) -> Vec<CleanRange> {
    let mut out = Vec::new();
    let mut cur: Option<CleanRange> = None;
    for line in smaps {
        let line = line.as_ref();
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // a mapping header: start-end perms offset dev inode [path]
            cur = None;
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            if path == exe && perms.starts_with('r') && perms.as_bytes().get(1) == Some(&b'-') {
                if let (Ok(start), Ok(end)) =
                    (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    cur = Some(CleanRange { start, end });
                }
            }
        } else if first == "Anonymous:" {
            if let Some(r) = cur.take() {
                if f.next() == Some("0") {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Unmaps (`MADV_DONTNEED`) every read-only mapping of this process's executable that holds no
/// anonymous pages; returns the bytes of address space covered. Their content stays in the page
/// cache and is faulted back in, unchanged, on the next access: only the resident set shrinks.
pub fn drop_clean_exe_pages() -> io::Result<usize> {
    // Everything is read, parsed and freed first: the code that runs after the first
    // madvise (and faults back in) is this loop, the madvise stub and the caller's.
    let mut ranges = [CleanRange { start: 0, end: 0 }; MAX_RANGES];
    let n = {
        let exe = std::fs::read_link("/proc/self/exe")?;
        // line by line: a long-lived caller's heap keeps its high-water mark
        let smaps = BufReader::with_capacity(4096, File::open("/proc/self/smaps")?);
        let found = clean_ranges(smaps.lines().map_while(Result::ok), &exe.to_string_lossy());
        let n = found.len().min(MAX_RANGES);
        ranges[..n].copy_from_slice(&found[..n]);
        n
    };
    let mut covered = 0;
    for r in &ranges[..n] {
        // SAFETY: the range is a private, non-writable mapping of the executable file (never
        // unmapped while the process runs) with no anonymous pages: MADV_DONTNEED only drops its
        // page-table entries, and a later access reads the identical bytes back from the page
        // cache. No memory Rust code owns or has written changes.
        let rc = unsafe {
            libc::madvise(
                r.start as *mut libc::c_void,
                r.end - r.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        covered += r.end - r.start;
    }
    Ok(covered)
}

/// Resident KiB of this process (`Rss:` of /proc/self/smaps_rollup).
pub fn resident_kib() -> io::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/smaps_rollup")?;
    s.lines()
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Rss in smaps_rollup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_read_only_mappings_of_the_exe_are_chosen() {
        let smaps = "\
5555000-5556000 r--p 00000000 fe:00 12 /usr/bin/shim
Rss: 4 kB
Anonymous: 0 kB
5556000-5560000 r-xp 00001000 fe:00 12 /usr/bin/shim
Anonymous:             0 kB
5560000-5561000 r--p 0000b000 fe:00 12 /usr/bin/shim
Anonymous: 4 kB
5561000-5562000 rw-p 0000c000 fe:00 12 /usr/bin/shim
Anonymous: 0 kB
7f00000-7f01000 r-xp 00000000 fe:00 99 /usr/lib/libc.so.6
Anonymous: 0 kB
7ffd000-7fff000 rw-p 00000000 00:00 0 [stack]
Anonymous: 8 kB
";
        assert_eq!(
            clean_ranges(smaps.lines(), "/usr/bin/shim"),
            vec![
                CleanRange {
                    start: 0x5555000,
                    end: 0x5556000
                },
                CleanRange {
                    start: 0x5556000,
                    end: 0x5560000
                },
            ]
        );
    }

    #[test]
    fn dropping_exe_pages_shrinks_the_resident_set_and_code_still_runs() {
        // touch a lot of this binary's code first (formatting, collections, the test harness)
        let warm: Vec<String> = (0..2000).map(|i| format!("{i:x}")).collect();
        assert_eq!(warm.len(), 2000);
        let before = resident_kib().expect("rss");
        let covered = drop_clean_exe_pages().expect("madvise");
        assert!(covered > 0, "no clean mapping of the test binary found");
        let after = resident_kib().expect("rss");
        assert!(after < before, "rss {before} KiB -> {after} KiB");
        // the dropped code and rodata come back on use, unchanged
        let again: Vec<String> = (0..2000).map(|i| format!("{i:x}")).collect();
        assert_eq!(warm, again);
    }
}
