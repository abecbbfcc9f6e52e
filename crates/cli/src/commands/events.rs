//! `berth events` / `berth system events`: stream events until interrupted (or `--until`).

use std::io::Write;

use berth_api::filters::Filters;
use berth_api::time::{parse_client_time, Timestamp};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use crate::client::{query, Client};
use crate::template::Template;

/// Flags of `berth events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Show events created since this timestamp or duration (e.g. 10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp or duration
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (type=volume, event=create, label=k=v, ...)
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go-like template
    #[arg(long)]
    pub format: Option<String>,
}

/// docker's default line: `time type action id (k=v, ...)`.
pub fn default_line(v: &Value) -> String {
    let nanos = v["timeNano"]
        .as_i64()
        .unwrap_or_else(|| v["time"].as_i64().unwrap_or(0) * 1_000_000_000);
    let t = Timestamp::from_unix_nanos(nanos).rfc3339_nano();
    let kind = v["Type"].as_str().unwrap_or("");
    let action = v["Action"].as_str().unwrap_or("");
    let id = v["Actor"]["ID"].as_str().unwrap_or("");
    let mut attrs: Vec<String> = v["Actor"]["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" ({})", attrs.join(", "))
    };
    format!("{t} {kind} {action} {id}{attrs}")
}

pub async fn run(client: &Client, a: &EventsArgs) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let time = |s: &Option<String>| -> anyhow::Result<String> {
        Ok(match s {
            Some(s) => parse_client_time(s, now)?.to_query(),
            None => String::new(),
        })
    };
    let filters = Filters::from_args(&a.filter)?;
    let filters = if filters.is_empty() {
        String::new()
    } else {
        filters.to_json()
    };
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let path = format!(
        "/events{}",
        query(&[
            ("since", time(&a.since)?),
            ("until", time(&a.until)?),
            ("filters", filters)
        ])
    );
    let resp = client.call(Method::GET, &path, None).await?;
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let stdout = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line)?;
            let text = match &template {
                Some(t) => t.render(&v)?,
                None => default_line(&v),
            };
            let mut out = stdout.lock();
            writeln!(out, "{text}")?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_line_like_docker() {
        let v = json!({"Type":"volume","Action":"create","Actor":{"ID":"data","Attributes":{"driver":"local","a":"b"}},
                       "scope":"local","time":1700000000,"timeNano":1700000000120000000i64});
        assert_eq!(
            default_line(&v),
            "2023-11-14T22:13:20.12Z volume create data (a=b, driver=local)"
        );
        let v = json!({"Type":"volume","Action":"prune","Actor":{"ID":"","Attributes":{}},"time":1700000000});
        assert_eq!(default_line(&v), "2023-11-14T22:13:20Z volume prune ");
    }
}
