//! Parser for `/proc/self/mountinfo` (proc(5)): one entry per mount with its per-mount options,
//! propagation (optional fields) and filesystem type, source and superblock options.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    /// The path inside the filesystem that is mounted (`/` for a whole filesystem).
    pub root: String,
    pub mount_point: String,
    /// Per-mount options: rw/ro, nosuid, nodev, noexec, relatime, noatime, ...
    pub options: Vec<String>,
    /// Optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }

    /// The propagation type as the spec names it: shared, slave, private or unbindable.
    pub fn propagation(&self) -> &'static str {
        let has = |p: &str| self.optional.iter().any(|o| o.starts_with(p));
        if has("unbindable") {
            "unbindable"
        } else if has("master:") {
            // A mount can be shared and slave at once; the spec's "slave" is the master link.
            "slave"
        } else if has("shared:") {
            "shared"
        } else {
            "private"
        }
    }

    /// Value of a `key=value` superblock option.
    pub fn super_option(&self, key: &str) -> Option<&str> {
        self.super_options
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }
}

/// Parses the whole file; lines that don't have the documented shape are returned as errors.
pub fn parse(text: &str) -> Result<Vec<MountInfo>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

pub fn read_self() -> Result<Vec<MountInfo>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    parse(&text)
}

/// The mount that is visible at `path`: the last (topmost) entry with that mount point.
pub fn topmost<'a>(mounts: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

/// The mount that contains `path`: the topmost entry whose mount point is the longest prefix.
pub fn containing<'a>(mounts: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        let mp = m.mount_point.as_str();
        let inside = path == mp
            || mp == "/"
            || (path.starts_with(mp) && path.as_bytes().get(mp.len()) == Some(&b'/'));
        if inside && best.is_none_or(|b| mp.len() >= b.mount_point.len()) {
            best = Some(m);
        }
    }
    best
}

fn parse_line(line: &str) -> Result<MountInfo, String> {
    let bad = || format!("malformed mountinfo line: {line}");
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-").ok_or_else(bad)?;
    if sep < 6 || fields.len() < sep + 4 {
        return Err(bad());
    }
    Ok(MountInfo {
        id: fields[0].parse().map_err(|_| bad())?,
        parent: fields[1].parse().map_err(|_| bad())?,
        root: unescape(fields[3]),
        mount_point: unescape(fields[4]),
        options: split_opts(fields[5]),
        optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
        fstype: fields[sep + 1].to_string(),
        source: unescape(fields[sep + 2]),
        super_options: split_opts(fields[sep + 3]),
    })
}

fn split_opts(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:5 / /dev rw,nosuid,noexec master:2 shared:7 - tmpfs tmpfs rw,size=65536k,mode=755
24 23 0:6 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
25 22 0:7 /a\\040b /mnt/with\\040space ro,nodev unbindable - ext4 /dev/vda1 rw
26 22 0:8 / /mnt rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_fields_propagation_and_escapes() {
        let m = parse(SAMPLE).expect("parse");
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].propagation(), "shared");
        assert_eq!(m[1].propagation(), "slave");
        assert_eq!(m[2].propagation(), "private");
        assert_eq!(m[3].propagation(), "unbindable");
        assert_eq!(m[3].mount_point, "/mnt/with space");
        assert_eq!(m[3].root, "/a b");
        assert!(m[3].has_option("ro") && m[3].has_option("nodev"));
        assert_eq!(m[2].super_option("ptmxmode"), Some("666"));
        assert_eq!(m[1].fstype, "tmpfs");
    }

    #[test]
    fn finds_topmost_and_containing_mounts() {
        let m = parse(SAMPLE).expect("parse");
        assert_eq!(topmost(&m, "/dev/pts").map(|x| x.id), Some(24));
        assert_eq!(containing(&m, "/dev/pts/0").map(|x| x.id), Some(24));
        assert_eq!(containing(&m, "/devices").map(|x| x.id), Some(22));
        assert_eq!(containing(&m, "/mnt/x").map(|x| x.id), Some(26));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("1 2 3\n").is_err());
    }
}
