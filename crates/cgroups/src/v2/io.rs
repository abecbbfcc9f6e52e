//! v2 io controller: weight (`io.bfq.weight` when BFQ is there, else `io.weight` converted from
//! the v1 range [10, 1000] to [1, 10000]), per-device weights, throttling in `io.max`; the
//! statistics of `io.stat`. leafWeight has no v2 file and is refused.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::error::{CgroupError, Result};
use crate::file::{self, MultiWriter};
use crate::stats::{Blkio, BlkioEntry};
use crate::v1::blkio::set;

/// v1 blkio weight [10, 1000] to v2 io.weight [1, 10000], as crun converts.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// Whether `b` asks for anything.
pub fn is_requested(b: &LinuxBlockIo) -> bool {
    crate::v1::blkio::is_requested(b)
}

fn throttle(
    w: &mut Option<MultiWriter>,
    dir: &Path,
    key: &str,
    devs: &Option<Vec<LinuxThrottleDevice>>,
) -> Result<()> {
    for d in devs.iter().flatten() {
        if w.is_none() {
            *w = Some(MultiWriter::open(dir.join("io.max"))?);
        }
        if let Some(w) = w.as_mut() {
            w.write(&format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()))?;
        }
    }
    Ok(())
}

/// Applies `b` to the v2 cgroup `dir`.
pub fn apply(b: &LinuxBlockIo, dir: &Path) -> Result<()> {
    // Weights of 0 mean "unset" (dockerd sends them), as in v1.
    if set(b.leaf_weight()).is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| set(d.leaf_weight()).is_some() && set(d.weight()).is_none())
    {
        return Err(CgroupError::Unsupported {
            setting: "linux.resources.blockIO.leafWeight".into(),
            version: "v2",
        });
    }
    let bfq = file::exists(dir, "io.bfq.weight");
    if let Some(w) = set(b.weight()) {
        if bfq {
            file::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            file::write(dir, "io.weight", &blkio_to_io_weight(w).to_string())?;
        }
    }
    let mut weights: Option<MultiWriter> = None;
    for d in b.weight_device().iter().flatten() {
        let Some(w) = set(d.weight()) else { continue };
        if weights.is_none() {
            weights = Some(MultiWriter::open(dir.join(if bfq {
                "io.bfq.weight"
            } else {
                "io.weight"
            }))?);
        }
        let w = if bfq {
            u64::from(w)
        } else {
            blkio_to_io_weight(w)
        };
        if let Some(f) = weights.as_mut() {
            f.write(&format!("{}:{} {w}", d.major(), d.minor()))?;
        }
    }
    let mut max: Option<MultiWriter> = None;
    throttle(&mut max, dir, "rbps", b.throttle_read_bps_device())?;
    throttle(&mut max, dir, "wbps", b.throttle_write_bps_device())?;
    throttle(&mut max, dir, "riops", b.throttle_read_iops_device())?;
    throttle(&mut max, dir, "wiops", b.throttle_write_iops_device())?;
    Ok(())
}

/// Parses `io.stat` (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`) into
/// runc's v1-shaped entries: bytes and ops, Read and Write per device.
pub fn stats(dir: &Path) -> Result<Blkio> {
    let mut out = Blkio::default();
    let Some(s) = file::read_opt(dir, "io.stat")? else {
        return Ok(out);
    };
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    fn t(major: i64, minor: i64, rate: u64) -> LinuxThrottleDevice {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
            .unwrap()
    }

    #[test]
    fn converts_weight_without_bfq_and_writes_io_max() {
        let f = Fixture::new(&["io.weight", "io.max"]);
        let b = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .throttle_read_bps_device(vec![t(8, 0, 100)])
            .throttle_write_iops_device(vec![t(8, 0, 7)])
            .build()
            .unwrap();
        apply(&b, f.path()).unwrap();
        assert_eq!(f.get("io.weight"), blkio_to_io_weight(500).to_string());
        assert_eq!(f.get("io.max"), "8:0 rbps=1008:0 wiops=7");
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }

    #[test]
    fn zero_weights_mean_unset() {
        let f = Fixture::new(&[]);
        let b = LinuxBlockIoBuilder::default()
            .weight(0u16)
            .leaf_weight(0u16)
            .build()
            .unwrap();
        apply(&b, f.path()).unwrap();
    }

    #[test]
    fn bfq_weight_is_written_as_is() {
        let f = Fixture::new(&["io.bfq.weight"]);
        let b = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .build()
            .unwrap();
        apply(&b, f.path()).unwrap();
        assert_eq!(f.get("io.bfq.weight"), "300");
        let f = Fixture::new(&["io.bfq.weight"]);
        let b = LinuxBlockIoBuilder::default()
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(200u16)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        apply(&b, f.path()).unwrap();
        assert_eq!(f.get("io.bfq.weight"), "8:0 200");
        let b = LinuxBlockIoBuilder::default()
            .leaf_weight(10u16)
            .build()
            .unwrap();
        assert!(apply(&b, f.path()).is_err());
    }

    #[test]
    fn parses_io_stat() {
        let f = Fixture::new(&[]);
        f.set(
            "io.stat",
            "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        );
        let s = stats(f.path()).unwrap();
        assert_eq!(s.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.io_service_bytes_recursive[0].value, 4096);
        assert_eq!(s.io_serviced_recursive[0].op, "Read");
    }
}
