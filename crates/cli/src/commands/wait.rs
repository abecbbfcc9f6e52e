//! `berth wait CONTAINER...`: blocks until each stops and prints its exit code
//! (`POST /containers/{id}/wait`).

use hyper::Method;
use serde_json::Value;

use crate::client::{read_json, Client};

/// `berth wait`.
pub async fn run(client: &Client, names: &[String]) -> anyhow::Result<bool> {
    let mut ok = true;
    for n in names {
        let r = async {
            let resp = client
                .call(Method::POST, &format!("/containers/{n}/wait"), None)
                .await?;
            let v: Value = read_json(resp).await?;
            if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
                anyhow::bail!("{m}");
            }
            anyhow::Ok(v["StatusCode"].as_i64().unwrap_or(-1))
        }
        .await;
        match r {
            Ok(code) => outln!("{code}"),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}
