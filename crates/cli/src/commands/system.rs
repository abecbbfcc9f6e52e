//! `berth version`, `berth info` / `berth system info`.

use berth_api::system::{DiskUsage, SystemInfo, SystemVersion};
use serde_json::{json, Value};

use super::format_one;
use super::volume::human_size;
use crate::client::Client;
use crate::template::{render_rows, Template};

/// `berth version [--format]`: client and server, like docker's two blocks.
pub async fn version(client: &Client, format: Option<&str>) -> anyhow::Result<()> {
    let client_part = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::version::MAX_API_VERSION.to_string(),
        "Os": "linux",
        "Arch": std::env::consts::ARCH,
    });
    let server: Result<Value, _> = client.get_json("/version").await;
    let data = json!({"Client": client_part, "Server": server.as_ref().ok()});
    if let Some(s) = format_one(format, &data)? {
        out!("{s}");
        return server.map(drop).map_err(Into::into);
    }
    outln!("Client:");
    outln!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    outln!(
        " API version:       {}",
        berth_api::version::MAX_API_VERSION
    );
    outln!(" OS/Arch:           linux/{}", std::env::consts::ARCH);
    let server = server?;
    let v: SystemVersion = serde_json::from_value(server)?;
    outln!();
    outln!("Server:");
    outln!(" Engine:");
    outln!("  Version:          {}", v.version);
    outln!(
        "  API version:      {} (minimum version {})",
        v.api_version,
        v.min_api_version.as_deref().unwrap_or("?")
    );
    outln!(
        "  Git commit:       {}",
        v.git_commit.as_deref().unwrap_or("")
    );
    outln!("  OS/Arch:          {}/{}", v.os, v.arch);
    outln!(
        "  Kernel version:   {}",
        v.kernel_version.as_deref().unwrap_or("")
    );
    Ok(())
}

fn bytes_gib(n: i64) -> String {
    format!("{:.2}GiB", n as f64 / f64::from(1u32 << 30))
}

/// `berth info [--format]`.
pub async fn info(client: &Client, format: Option<&str>) -> anyhow::Result<()> {
    let raw: Value = client.get_json("/info").await?;
    if let Some(s) = format_one(format, &raw)? {
        out!("{s}");
        return Ok(());
    }
    let i: SystemInfo = serde_json::from_value(raw)?;
    outln!("Server:");
    outln!(" Containers: {}", i.containers);
    outln!("  Running: {}", i.containers_running);
    outln!("  Paused: {}", i.containers_paused);
    outln!("  Stopped: {}", i.containers_stopped);
    outln!(" Images: {}", i.images);
    outln!(" Server Version: {}", i.server_version);
    outln!(" Storage Driver: {}", i.driver);
    for [k, v] in i.driver_status.unwrap_or_default() {
        outln!("  {k}: {v}");
    }
    outln!(" Logging Driver: {}", i.logging_driver);
    outln!(" Cgroup Driver: {}", i.cgroup_driver);
    outln!(" Cgroup Version: {}", i.cgroup_version);
    let mut runtimes: Vec<&String> = i.runtimes.keys().collect();
    runtimes.sort();
    outln!(
        " Runtimes: {}",
        runtimes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    outln!(" Default Runtime: {}", i.default_runtime);
    outln!(" Kernel Version: {}", i.kernel_version);
    outln!(" Operating System: {}", i.operating_system);
    outln!(" OSType: {}", i.os_type);
    outln!(" Architecture: {}", i.architecture);
    outln!(" CPUs: {}", i.ncpu);
    outln!(" Total Memory: {}", bytes_gib(i.mem_total));
    outln!(" Name: {}", i.name);
    outln!(" ID: {}", i.id);
    outln!(" Docker Root Dir: {}", i.docker_root_dir);
    outln!(" Debug Mode: {}", i.debug);
    for w in i.warnings.unwrap_or_default() {
        eprintln!("{w}");
    }
    Ok(())
}

fn reclaimable(size: u64, total: u64) -> String {
    if total == 0 {
        return human_size(size);
    }
    format!("{} ({}%)", human_size(size), size * 100 / total)
}

/// `berth system df [-v] [--format]`: docker's summary table (and the volume list with `-v`).
pub async fn df(client: &Client, verbose: bool, format: Option<&str>) -> anyhow::Result<()> {
    let du: DiskUsage = client.get_json("/system/df").await?;
    let vols = du.volumes.unwrap_or_default();
    let usage = |v: &berth_api::volume::Volume| {
        v.usage_data
            .map(|u| (u64::try_from(u.size).unwrap_or(0), u.ref_count))
            .unwrap_or((0, 0))
    };
    let vol_size: u64 = vols.iter().map(|v| usage(v).0).sum();
    let vol_active = vols.iter().filter(|v| usage(v).1 > 0).count();
    let vol_free: u64 = vols
        .iter()
        .filter(|v| usage(v).1 == 0)
        .map(|v| usage(v).0)
        .sum();
    let n = |o: &Option<Vec<Value>>| o.as_ref().map_or(0, Vec::len);
    let rows = vec![
        json!({"Type": "Images", "TotalCount": n(&du.images).to_string(), "Active": "0", "Size": human_size(u64::try_from(du.layers_size).unwrap_or(0)), "Reclaimable": "0B"}),
        json!({"Type": "Containers", "TotalCount": n(&du.containers).to_string(), "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Local Volumes", "TotalCount": vols.len().to_string(), "Active": vol_active.to_string(), "Size": human_size(vol_size), "Reclaimable": reclaimable(vol_free, vol_size)}),
        json!({"Type": "Build Cache", "TotalCount": n(&du.build_cache).to_string(), "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    let f = match format {
        None | Some("table") => {
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
        }
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    out!("{}", render_rows(&Template::parse(f)?, &header, &rows)?);
    if verbose {
        let t = Template::parse("table {{.Name}}\t{{.Links}}\t{{.Size}}")?;
        let header = json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"});
        let rows: Vec<Value> = vols
            .iter()
            .map(|v| json!({"Name": v.name, "Links": usage(v).1.to_string(), "Size": human_size(usage(v).0)}))
            .collect();
        outln!("\nLocal Volumes space usage:\n");
        out!("{}", render_rows(&t, &header, &rows)?);
    }
    Ok(())
}
