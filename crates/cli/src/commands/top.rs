//! `berth top CONTAINER [ps OPTIONS]`: the container's processes from
//! `GET /containers/{id}/top`, as a table with ps's titles.

use serde_json::Value;

use crate::client::{query, Client};
use crate::template::align;

/// `berth top`.
pub async fn run(client: &Client, container: &str, ps_args: &[String]) -> anyhow::Result<bool> {
    let v: Value = client
        .get_json(&format!(
            "/containers/{container}/top{}",
            query(&[("ps_args", ps_args.join(" "))])
        ))
        .await?;
    let cells = |row: &Value| -> String {
        row.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .unwrap_or_default()
    };
    let mut text = cells(&v["Titles"]);
    text.push('\n');
    for p in v["Processes"].as_array().into_iter().flatten() {
        text.push_str(&cells(p));
        text.push('\n');
    }
    out!("{}", align(&text));
    Ok(true)
}
