//! `berth rename CONTAINER NEW_NAME` over `POST /containers/{id}/rename`.

use hyper::Method;

use crate::client::{query, Client};

/// `berth rename`.
pub async fn run(client: &Client, container: &str, new_name: &str) -> anyhow::Result<bool> {
    client
        .call(
            Method::POST,
            &format!(
                "/containers/{container}/rename{}",
                query(&[("name", new_name.to_string())])
            ),
            None,
        )
        .await?;
    Ok(true)
}
