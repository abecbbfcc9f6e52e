//! `berth stats`: docker's live resource table, from `GET /containers/{id}/stats` (one
//! sample per container per refresh; on a terminal the table is redrawn in place, else
//! printed once per refresh; `--no-stream` prints one table and exits).

use std::io::IsTerminal;

use berth_api::container::ContainerSummary;
use clap::Args;
use serde_json::{json, Value};

use super::volume::human_size;
use crate::client::{query, Client};
use crate::template::{render_rows, Template};

/// `berth stats` flags.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// docker's `units.BytesSize`: binary units, 4 significant digits (`1.5MiB`).
pub fn bytes_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// One table row from one stats sample, computed the way the docker CLI computes it.
pub fn row(s: &Value, no_trunc: bool) -> Value {
    let id = s["id"].as_str().unwrap_or_default();
    let short: String = if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    };
    let cpu_delta = u(&s["cpu_stats"]["cpu_usage"]["total_usage"]) as f64
        - u(&s["precpu_stats"]["cpu_usage"]["total_usage"]) as f64;
    let sys_delta = u(&s["cpu_stats"]["system_cpu_usage"]) as f64
        - u(&s["precpu_stats"]["system_cpu_usage"]) as f64;
    let cpus = match u(&s["cpu_stats"]["online_cpus"]) {
        0 => s["cpu_stats"]["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(1, |a| a.len().max(1)) as f64,
        n => n as f64,
    };
    let cpu = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let inactive = ["total_inactive_file", "inactive_file"]
        .iter()
        .map(|k| u(&mem["stats"][k]))
        .find(|&v| v > 0)
        .unwrap_or(0);
    let usage = u(&mem["usage"]).saturating_sub(inactive);
    let limit = u(&mem["limit"]);
    let mem_perc = if limit > 0 {
        usage as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0, 0);
    if let Some(nets) = s["networks"].as_object() {
        for n in nets.values() {
            rx += u(&n["rx_bytes"]);
            tx += u(&n["tx_bytes"]);
        }
    }
    let (mut rd, mut wr) = (0, 0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => rd += u(&e["value"]),
            Some("write") => wr += u(&e["value"]),
            _ => {}
        }
    }
    let name = s["name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/');
    json!({
        "ID": short,
        "Container": short,
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
        "BlockIO": format!("{} / {}", human_size(rd), human_size(wr)),
        "PIDs": u(&s["pids_stats"]["current"]).to_string(),
    })
}

fn header() -> Value {
    json!({"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS"})
}

/// The containers to show: the named ones, else every running one (`-a`: every one).
async fn targets(client: &Client, a: &StatsArgs) -> anyhow::Result<Vec<String>> {
    if !a.containers.is_empty() {
        return Ok(a.containers.clone());
    }
    let all = if a.all {
        "1".to_string()
    } else {
        String::new()
    };
    let list: Vec<ContainerSummary> = client
        .get_json(&format!("/containers/json{}", query(&[("all", all)])))
        .await?;
    Ok(list.into_iter().map(|c| c.id).collect())
}

async fn sample(client: &Client, c: &str, a: &StatsArgs) -> anyhow::Result<Value> {
    let s: Value = client
        .get_json(&format!("/containers/{c}/stats?stream=0"))
        .await?;
    Ok(row(&s, a.no_trunc))
}

/// `berth stats`.
pub async fn run(client: &Client, a: StatsArgs) -> anyhow::Result<bool> {
    let format = match a.format.as_deref() {
        None | Some("table") => DEFAULT_FORMAT.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let t = Template::parse(&format)?;
    let tty = std::io::stdout().is_terminal();
    let named = !a.containers.is_empty();
    loop {
        let mut rows = Vec::new();
        for c in targets(client, &a).await? {
            match sample(client, &c, &a).await {
                Ok(r) => rows.push(r),
                // a named container must exist; a listed one may just have stopped
                Err(e) if named => return Err(e),
                Err(_) => {}
            }
        }
        let table = render_rows(&t, &header(), &rows)?;
        if a.no_stream {
            out!("{table}");
            return Ok(true);
        }
        if tty {
            // cursor home, the table, then clear what an older, longer table left below
            out!("\x1b[H\x1b[2J{table}");
        } else {
            out!("{table}");
        }
        {
            use std::io::Write as _;
            std::io::stdout().flush()?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_compute_like_docker() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000u64}, "system_cpu_usage": 20_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000u64}, "system_cpu_usage": 10_000_000u64},
            "memory_stats": {"usage": 3u64 << 20, "limit": 1u64 << 30, "stats": {"total_inactive_file": 1u64 << 20}},
            "pids_stats": {"current": 3},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 20}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}, {"op": "Write", "value": 8192}]},
        });
        let r = row(&s, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "2MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.20%");
        assert_eq!(r["NetIO"], "1.5kB / 20B");
        assert_eq!(r["BlockIO"], "4.096kB / 8.192kB");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(bytes_size(1536), "1.5KiB");
    }
}
