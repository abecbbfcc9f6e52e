//! Reading the checker's own process attributes from procfs: `/proc/self/status` fields
//! (capability masks, NoNewPrivs, Seccomp, Umask, Uid/Gid) and small single-value files.

use std::collections::BTreeMap;

/// `/proc/self/status` as key → value (value trimmed).
pub struct Status(BTreeMap<String, String>);

impl Status {
    pub fn read_self() -> Result<Status, String> {
        let text = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
        Ok(Status::parse(&text))
    }

    pub fn parse(text: &str) -> Status {
        Status(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("/proc/self/status has no {key} field"))
    }

    /// A hexadecimal mask field such as `CapEff`.
    pub fn hex(&self, key: &str) -> Result<u64, String> {
        let v = self.get(key)?;
        u64::from_str_radix(v, 16).map_err(|_| format!("{key} is not hexadecimal: {v}"))
    }

    /// A decimal or octal number field such as `NoNewPrivs` or `Umask` (octal with leading 0).
    pub fn number(&self, key: &str) -> Result<u64, String> {
        let v = self.get(key)?;
        let parsed = if v.len() > 1 && v.starts_with('0') {
            u64::from_str_radix(&v[1..], 8)
        } else {
            v.parse()
        };
        parsed.map_err(|_| format!("{key} is not a number: {v}"))
    }

    /// The four ids of a `Uid:`/`Gid:` line: real, effective, saved, filesystem.
    pub fn ids(&self, key: &str) -> Result<Vec<u32>, String> {
        self.get(key)?
            .split_whitespace()
            .map(|s| s.parse().map_err(|_| format!("{key} has a bad id: {s}")))
            .collect()
    }
}

/// Reads a small text file and trims it.
pub fn read_trimmed(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// The inode number of a `/proc/self/ns/<name>` link (`net:[4026531992]`).
pub fn ns_inode(name: &str) -> Result<u64, String> {
    let path = format!("/proc/self/ns/{name}");
    let target = std::fs::read_link(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let text = target.to_string_lossy();
    text.rsplit_once('[')
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{path} points to unexpected {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = Status::parse(
            "Umask:\t0022\nUid:\t0\t1\t2\t3\nCapEff:\t000001ffffffffff\nNoNewPrivs:\t1\n",
        );
        assert_eq!(s.number("Umask"), Ok(0o22));
        assert_eq!(s.number("NoNewPrivs"), Ok(1));
        assert_eq!(s.hex("CapEff"), Ok(0x1ff_ffff_ffff));
        assert_eq!(s.ids("Uid"), Ok(vec![0, 1, 2, 3]));
        assert!(s.get("Seccomp").is_err());
    }

    #[test]
    fn reads_own_namespace_inode() {
        assert!(ns_inode("net").expect("net ns link") > 0);
    }
}
