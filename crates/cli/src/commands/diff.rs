//! `berth diff CONTAINER`: changes to the container's filesystem
//! (`GET /containers/{id}/changes`), one `C|A|D path` line each, like docker.

use serde_json::Value;

use crate::client::Client;

/// `berth diff`.
pub async fn run(client: &Client, container: &str) -> anyhow::Result<bool> {
    let list: Vec<Value> = client
        .get_json(&format!("/containers/{container}/changes"))
        .await?;
    for c in list {
        let kind = match c["Kind"].as_u64() {
            Some(1) => "A",
            Some(2) => "D",
            _ => "C",
        };
        outln!("{kind} {}", c["Path"].as_str().unwrap_or_default());
    }
    Ok(true)
}
