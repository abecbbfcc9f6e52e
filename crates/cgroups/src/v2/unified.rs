//! `linux.resources.unified`: raw `file → value` writes into the v2 cgroup, after every other
//! controller so they can override. Keys must name a file in the cgroup directory itself.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{CgroupError, Result};
use crate::file;

/// Writes each entry of `u` (in key order) into `dir`.
pub fn apply(u: &HashMap<String, String>, dir: &Path) -> Result<()> {
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        if k.is_empty() || k.contains('/') || k == "." || k == ".." {
            return Err(CgroupError::Invalid {
                field: format!("linux.resources.unified[{k:?}]"),
                reason: "must name a file of the cgroup directory".into(),
            });
        }
        file::write(dir, k, &u[k])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;

    #[test]
    fn writes_and_refuses_paths() {
        let f = Fixture::new(&["memory.high", "pids.max"]);
        let mut u = HashMap::new();
        u.insert("memory.high".to_string(), "1000".to_string());
        u.insert("pids.max".to_string(), "9".to_string());
        apply(&u, f.path()).unwrap();
        assert_eq!(f.get("memory.high"), "1000");
        assert_eq!(f.get("pids.max"), "9");
        let mut bad = HashMap::new();
        bad.insert("../x".to_string(), "1".to_string());
        assert!(apply(&bad, f.path()).is_err());
        let mut missing = HashMap::new();
        missing.insert("nope.max".to_string(), "1".to_string());
        let e = apply(&missing, f.path()).unwrap_err().to_string();
        assert!(e.contains("nope.max"), "{e}");
    }
}
