//! v1 blkio controller: weight, leaf weight, per-device weights and throttling; and the I/O
//! statistics. Weight files exist under CFQ (`blkio.weight`) or BFQ (`blkio.bfq.weight`); the
//! first is tried, then the second, and the error names the first when both are missing.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::error::{CgroupError, Result};
use crate::file::{self, MultiWriter};
use crate::stats::{Blkio, BlkioEntry};

/// Whether `b` asks for anything.
/// Weights of 0 mean "unset" (dockerd sends them; the kernel refuses them), as runc treats them.
pub fn is_requested(b: &LinuxBlockIo) -> bool {
    set(b.weight()).is_some()
        || set(b.leaf_weight()).is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ]
        .iter()
        .any(|t| t.as_ref().is_some_and(|v| !v.is_empty()))
}

/// A weight, unless it is absent or 0 ("unset").
pub(crate) fn set(w: Option<u16>) -> Option<u16> {
    w.filter(|&w| w != 0)
}

/// Writes to `name`, or to `alias` when `name` does not exist.
fn write_or_alias(dir: &Path, name: &str, alias: &str, value: &str) -> Result<()> {
    if !file::exists(dir, name) && file::exists(dir, alias) {
        return file::write(dir, alias, value);
    }
    file::write(dir, name, value)
}

fn open_or_alias(dir: &Path, name: &str, alias: &str) -> Result<MultiWriter> {
    if !file::exists(dir, name) && file::exists(dir, alias) {
        return MultiWriter::open(dir.join(alias));
    }
    MultiWriter::open(dir.join(name))
}

fn throttle(dir: &Path, name: &str, devs: &Option<Vec<LinuxThrottleDevice>>) -> Result<()> {
    let Some(devs) = devs.as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let mut w = MultiWriter::open(dir.join(name))?;
    for d in devs {
        w.write(&format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
    }
    Ok(())
}

/// Applies `b` to the v1 blkio cgroup `dir`.
pub fn apply(b: &LinuxBlockIo, dir: &Path) -> Result<()> {
    if let Some(w) = set(b.weight()) {
        write_or_alias(dir, "blkio.weight", "blkio.bfq.weight", &w.to_string())?;
    }
    if let Some(w) = set(b.leaf_weight()) {
        file::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    if let Some(devs) = b.weight_device().as_ref().filter(|d| !d.is_empty()) {
        let mut weights: Option<MultiWriter> = None;
        let mut leaves: Option<MultiWriter> = None;
        for d in devs {
            if let Some(w) = set(d.weight()) {
                if weights.is_none() {
                    weights = Some(open_or_alias(
                        dir,
                        "blkio.weight_device",
                        "blkio.bfq.weight_device",
                    )?);
                }
                if let Some(f) = weights.as_mut() {
                    f.write(&format!("{}:{} {}", d.major(), d.minor(), w))?;
                }
            }
            if let Some(w) = set(d.leaf_weight()) {
                if leaves.is_none() {
                    leaves = Some(MultiWriter::open(dir.join("blkio.leaf_weight_device"))?);
                }
                if let Some(f) = leaves.as_mut() {
                    f.write(&format!("{}:{} {}", d.major(), d.minor(), w))?;
                }
            }
        }
    }
    throttle(
        dir,
        "blkio.throttle.read_bps_device",
        b.throttle_read_bps_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.write_bps_device",
        b.throttle_write_bps_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.read_iops_device",
        b.throttle_read_iops_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.write_iops_device",
        b.throttle_write_iops_device(),
    )?;
    Ok(())
}

/// Parses a v1 blkio statistics file: `MAJ:MIN Op value` lines (the `Total` line is skipped);
/// `MAJ:MIN value` lines (sectors, time) have no op.
pub(crate) fn parse_entries(path: &Path, s: &str) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dev, op, value) = match f.as_slice() {
            [dev, op, v] => (*dev, *op, *v),
            [dev, v] if dev.contains(':') => (*dev, "", *v),
            _ => continue,
        };
        let bad = || CgroupError::Parse {
            path: path.to_path_buf(),
            content: line.to_string(),
        };
        let (maj, min) = dev.split_once(':').ok_or_else(bad)?;
        out.push(BlkioEntry {
            major: maj.parse().map_err(|_| bad())?,
            minor: min.parse().map_err(|_| bad())?,
            op: op.to_string(),
            value: value.parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

fn entries(dir: &Path, names: &[&str]) -> Result<Vec<BlkioEntry>> {
    for name in names {
        if let Some(s) = file::read_opt(dir, name)? {
            let e = parse_entries(&dir.join(name), &s)?;
            if !e.is_empty() {
                return Ok(e);
            }
        }
    }
    Ok(Vec::new())
}

/// Reads the I/O statistics: the CFQ files, else BFQ's, else the throttle layer's (which counts
/// every I/O but has only bytes and ops).
pub fn stats(dir: &Path) -> Result<Blkio> {
    Ok(Blkio {
        io_service_bytes_recursive: entries(
            dir,
            &[
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ],
        )?,
        io_serviced_recursive: entries(
            dir,
            &[
                "blkio.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive",
            ],
        )?,
        io_queued_recursive: entries(
            dir,
            &["blkio.io_queued_recursive", "blkio.bfq.io_queued_recursive"],
        )?,
        io_service_time_recursive: entries(
            dir,
            &[
                "blkio.io_service_time_recursive",
                "blkio.bfq.io_service_time_recursive",
            ],
        )?,
        io_wait_time_recursive: entries(
            dir,
            &[
                "blkio.io_wait_time_recursive",
                "blkio.bfq.io_wait_time_recursive",
            ],
        )?,
        io_merged_recursive: entries(
            dir,
            &["blkio.io_merged_recursive", "blkio.bfq.io_merged_recursive"],
        )?,
        io_time_recursive: entries(dir, &["blkio.time_recursive", "blkio.bfq.time_recursive"])?,
        sectors_recursive: entries(
            dir,
            &["blkio.sectors_recursive", "blkio.bfq.sectors_recursive"],
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    fn throttle_dev(major: i64, minor: i64, rate: u64) -> LinuxThrottleDevice {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
            .unwrap()
    }

    #[test]
    fn writes_weights_and_throttles() {
        let f = Fixture::new(&[
            "blkio.weight",
            "blkio.leaf_weight",
            "blkio.weight_device",
            "blkio.leaf_weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ]);
        let b = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .leaf_weight(200u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(500u16)
                .leaf_weight(300u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![throttle_dev(8, 0, 1000), throttle_dev(8, 16, 2000)])
            .throttle_write_bps_device(vec![throttle_dev(8, 0, 3000)])
            .throttle_read_iops_device(vec![throttle_dev(8, 0, 4)])
            .throttle_write_iops_device(vec![throttle_dev(8, 0, 5)])
            .build()
            .unwrap();
        assert!(is_requested(&b));
        apply(&b, f.path()).unwrap();
        assert_eq!(f.get("blkio.weight"), "300");
        assert_eq!(f.get("blkio.leaf_weight"), "200");
        assert_eq!(f.get("blkio.weight_device"), "8:0 500");
        assert_eq!(f.get("blkio.leaf_weight_device"), "8:0 300");
        // Two writes on one fd: the fixture (a plain file) shows them concatenated.
        assert_eq!(f.get("blkio.throttle.read_bps_device"), "8:0 10008:16 2000");
        assert_eq!(f.get("blkio.throttle.write_bps_device"), "8:0 3000");
        assert_eq!(f.get("blkio.throttle.read_iops_device"), "8:0 4");
        assert_eq!(f.get("blkio.throttle.write_iops_device"), "8:0 5");
    }

    #[test]
    fn zero_weights_mean_unset() {
        // No weight files at all: writing any of them would fail with "missing file".
        let f = Fixture::new(&[]);
        let b = LinuxBlockIoBuilder::default()
            .weight(0u16)
            .leaf_weight(0u16)
            .build()
            .unwrap();
        assert!(!is_requested(&b));
        apply(&b, f.path()).unwrap();
    }

    #[test]
    fn bfq_alias_and_missing_weight_error() {
        let f = Fixture::new(&["blkio.bfq.weight"]);
        let b = LinuxBlockIoBuilder::default()
            .weight(100u16)
            .build()
            .unwrap();
        apply(&b, f.path()).unwrap();
        assert_eq!(f.get("blkio.bfq.weight"), "100");
        let f = Fixture::new(&[]);
        let e = apply(&b, f.path()).unwrap_err().to_string();
        assert!(e.contains("blkio.weight"), "{e}");
    }

    #[test]
    fn parses_stats() {
        let f = Fixture::new(&[]);
        f.set(
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\nTotal 12288\n",
        );
        f.set(
            "blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\nTotal 1\n",
        );
        let s = stats(f.path()).unwrap();
        assert_eq!(s.io_service_bytes_recursive.len(), 3);
        assert_eq!(
            s.io_service_bytes_recursive[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        assert_eq!(s.io_serviced_recursive.len(), 1);
        assert!(s.sectors_recursive.is_empty());
    }
}
