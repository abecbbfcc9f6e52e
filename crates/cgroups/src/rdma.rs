//! rdma controller (the same `rdma.max` file on v1 and v2): per-device HCA handle and object
//! limits, one line per device.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::LinuxRdma;

use crate::error::Result;
use crate::file::MultiWriter;

/// Whether any device has a limit.
pub fn is_requested(r: &HashMap<String, LinuxRdma>) -> bool {
    r.values()
        .any(|l| l.hca_handles().is_some() || l.hca_objects().is_some())
}

/// Writes `rdma.max` in `dir`, devices in name order.
pub fn apply(r: &HashMap<String, LinuxRdma>, dir: &Path) -> Result<()> {
    let mut names: Vec<&String> = r.keys().collect();
    names.sort();
    let mut w: Option<MultiWriter> = None;
    for name in names {
        let l = &r[name];
        let mut line = name.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line.len() == name.len() {
            continue;
        }
        if w.is_none() {
            w = Some(MultiWriter::open(dir.join("rdma.max"))?);
        }
        if let Some(w) = w.as_mut() {
            w.write(&line)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::LinuxRdmaBuilder;

    #[test]
    fn writes_rdma_max() {
        let f = Fixture::new(&["rdma.max"]);
        let mut r = HashMap::new();
        r.insert(
            "mlx5_1".to_string(),
            LinuxRdmaBuilder::default()
                .hca_handles(3u32)
                .hca_objects(10000u32)
                .build()
                .unwrap(),
        );
        assert!(is_requested(&r));
        apply(&r, f.path()).unwrap();
        assert_eq!(f.get("rdma.max"), "mlx5_1 hca_handle=3 hca_object=10000");
    }
}
