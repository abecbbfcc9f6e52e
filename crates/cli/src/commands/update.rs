//! `berth update [OPTIONS] CONTAINER...`: change resource limits and the restart policy of
//! containers (`POST /containers/{id}/update`), running or not.

use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Map, Value};

use super::container::parse_bytes;
use crate::client::Client;

/// `berth update` flags.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// The update body, only with the fields given (docker's `UpdateConfig`).
pub fn body(a: &UpdateArgs) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    if let Some(w) = a.blkio_weight {
        if w != 0 && !(10..=1000).contains(&w) {
            anyhow::bail!("invalid argument {w:?} for \"--blkio-weight\" flag: range of blkio weight is from 10 to 1000");
        }
        put("BlkioWeight", json!(w));
    }
    if let Some(v) = a.cpu_period {
        put("CpuPeriod", json!(v));
    }
    if let Some(v) = a.cpu_quota {
        put("CpuQuota", json!(v));
    }
    if let Some(c) = a.cpus {
        if c < 0.0 {
            anyhow::bail!("invalid argument \"{c}\" for \"--cpus\" flag: range of CPUs is from 0.01 to the number of CPUs");
        }
        put("NanoCpus", json!((c * 1e9).round() as i64));
    }
    if let Some(v) = a.cpu_shares {
        put("CpuShares", json!(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        put("CpusetCpus", json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        put("CpusetMems", json!(v));
    }
    if let Some(v) = &a.memory {
        put("Memory", json!(parse_bytes(v)?));
    }
    if let Some(v) = &a.memory_reservation {
        put("MemoryReservation", json!(parse_bytes(v)?));
    }
    if let Some(v) = &a.memory_swap {
        let n = if v.trim() == "-1" {
            -1
        } else {
            parse_bytes(v)?
        };
        put("MemorySwap", json!(n));
    }
    if let Some(v) = a.pids_limit {
        put("PidsLimit", json!(v));
    }
    if let Some(r) = &a.restart {
        let (name, count) = match r.split_once(':') {
            Some((n, c)) => (
                n,
                c.parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("invalid restart policy format: {r}"))?,
            ),
            None => (r.as_str(), 0),
        };
        if !matches!(name, "no" | "always" | "on-failure" | "unless-stopped") {
            anyhow::bail!("invalid restart policy: {name}");
        }
        put(
            "RestartPolicy",
            json!({"Name": name, "MaximumRetryCount": count}),
        );
    }
    if m.is_empty() {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    Ok(Value::Object(m))
}

/// `berth update`: prints each updated container's name, docker-style errors for the others.
pub async fn run(client: &Client, a: UpdateArgs) -> anyhow::Result<bool> {
    let b = Bytes::from(serde_json::to_vec(&body(&a)?)?);
    let mut ok = true;
    for n in &a.containers {
        match client
            .call(
                Method::POST,
                &format!("/containers/{n}/update"),
                Some(b.clone()),
            )
            .await
        {
            Ok(_) => outln!("{n}"),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: UpdateArgs,
    }

    #[test]
    fn bodies_carry_only_given_flags() {
        let t = T::try_parse_from([
            "x",
            "--memory",
            "64m",
            "--cpus",
            "1.5",
            "--restart",
            "on-failure:3",
            "c1",
        ])
        .expect("parse");
        let b = body(&t.a).expect("body");
        assert_eq!(b["Memory"], 64 << 20);
        assert_eq!(b["NanoCpus"], 1_500_000_000i64);
        assert_eq!(b["RestartPolicy"]["MaximumRetryCount"], 3);
        assert!(b.get("PidsLimit").is_none());
        let t = T::try_parse_from(["x", "c1"]).expect("parse");
        assert!(body(&t.a).is_err());
        let t = T::try_parse_from(["x", "--blkio-weight", "5", "c1"]).expect("parse");
        assert!(body(&t.a).is_err());
    }
}
