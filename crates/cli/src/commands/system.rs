//! `berth version`, `berth info` / `berth system info`.

use berth_api::system::{SystemInfo, SystemVersion};
use serde_json::{json, Value};

use super::format_one;
use crate::client::Client;

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
