//! `berth commit [-a] [-c] [-m] [-p] CONTAINER [REPOSITORY[:TAG]]`: a new image from a
//! container's changes (`POST /commit`); prints the new image's id like docker.

use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{query, read_json, Client};

/// `berth commit` flags.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    pub container: String,
    pub reference: Option<String>,
}

/// `repo[:tag]` → (repo, tag); a `:` before the last `/` is a registry port, not a tag.
pub fn split_reference(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), String::new()),
    }
}

/// `berth commit`.
pub async fn run(client: &Client, a: CommitArgs) -> anyhow::Result<bool> {
    let (repo, tag) = a
        .reference
        .as_deref()
        .map(split_reference)
        .unwrap_or_default();
    let mut pairs = vec![
        ("container", a.container.clone()),
        ("repo", repo),
        ("tag", tag),
        ("comment", a.message.clone().unwrap_or_default()),
        ("author", a.author.clone().unwrap_or_default()),
        ("pause", if a.pause { "1" } else { "0" }.to_string()),
    ];
    for c in &a.change {
        pairs.push(("changes", c.clone()));
    }
    let resp = client
        .call(Method::POST, &format!("/commit{}", query(&pairs)), None)
        .await?;
    let v: Value = read_json(resp).await?;
    outln!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(split_reference("img:v1"), ("img".into(), "v1".into()));
        assert_eq!(
            split_reference("localhost:5000/img"),
            ("localhost:5000/img".into(), String::new())
        );
        assert_eq!(
            split_reference("localhost:5000/img:2"),
            ("localhost:5000/img".into(), "2".into())
        );
    }
}
