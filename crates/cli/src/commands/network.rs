//! `berth network create|ls|inspect|rm|connect|disconnect|prune`, with docker's flags.

use std::collections::HashMap;
use std::io::Write;

use berth_api::filters::Filters;
use berth_api::network::{
    Ipam, IpamConfig, NetworkCreateRequest, NetworkCreateResponse, NetworkPruneResponse,
    NetworkResource,
};
use bytes::Bytes;
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{query, read_json, Client};
use crate::template::{render_rows, Template};

/// `berth network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    Create {
        name: String,
        /// Driver to manage the network (bridge)
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 gateway for the subnet
        #[arg(long)]
        gateway: Option<String>,
        /// Allocate container addresses from a sub-range
        #[arg(long = "ip-range")]
        ip_range: Option<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Set metadata on a network (key=value)
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Set driver specific options (com.docker.network.bridge.name=...)
        #[arg(short = 'o', long = "opt")]
        opts: Vec<String>,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. driver=bridge, name=x, label=k=v, type=custom)
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format output using a Go-like template ('table', 'json' or a template)
        #[arg(long)]
        format: Option<String>,
        /// Do not truncate the output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        /// Format output using a Go-like template
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        network: String,
        container: String,
        /// Add network-scoped alias for the container
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// IPv4 address
        #[arg(long)]
        ip: Option<String>,
    },
    /// Disconnect a container from a network
    Disconnect {
        network: String,
        container: String,
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. label=k=v, label!=k)
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
}

fn kv(list: &[String], what: &str) -> anyhow::Result<HashMap<String, String>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None if what == "label" => Ok((s.clone(), String::new())),
            None => anyhow::bail!("invalid {what} {s:?}: expected key=value"),
        })
        .collect()
}

/// The row docker's network formatter exposes.
fn row(n: &NetworkResource, no_trunc: bool) -> Value {
    let mut labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let id = if no_trunc {
        n.id.clone()
    } else {
        n.id.chars().take(12).collect()
    };
    json!({
        "ID": id, "Name": n.name, "Driver": n.driver, "Scope": n.scope,
        "IPv6": n.enable_ipv6.to_string(), "Internal": n.internal.to_string(),
        "Labels": labels.join(","), "CreatedAt": n.created,
    })
}

fn header() -> Value {
    json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
    })
}

fn body(v: &impl serde::Serialize) -> anyhow::Result<Option<Bytes>> {
    Ok(Some(Bytes::from(serde_json::to_vec(v)?)))
}

/// Run one network command; the exit status is non-zero when any item failed.
pub async fn run(client: &Client, cmd: NetworkCmd) -> anyhow::Result<bool> {
    match cmd {
        NetworkCmd::Create {
            name,
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            attachable,
            labels,
            opts,
        } => {
            if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
                anyhow::bail!("--gateway and --ip-range need --subnet");
            }
            let config = subnet.map(|s| {
                vec![IpamConfig {
                    subnet: Some(s),
                    ip_range,
                    gateway,
                }]
            });
            let req = NetworkCreateRequest {
                name,
                check_duplicate: Some(true),
                driver,
                internal,
                attachable,
                ipam: Some(Ipam {
                    driver: "default".into(),
                    config,
                    options: None,
                }),
                options: Some(kv(&opts, "option")?),
                labels: Some(kv(&labels, "label")?),
                ..NetworkCreateRequest::default()
            };
            let resp = client
                .call(Method::POST, "/networks/create", body(&req)?)
                .await?;
            let r: NetworkCreateResponse = read_json(resp).await?;
            outln!("{}", r.id);
            Ok(true)
        }
        NetworkCmd::Ls {
            quiet,
            filter,
            format,
            no_trunc,
        } => {
            let f = Filters::from_args(&filter)?;
            let fq = if f.is_empty() {
                String::new()
            } else {
                f.to_json()
            };
            let mut nets: Vec<NetworkResource> = client
                .get_json(&format!("/networks{}", query(&[("filters", fq)])))
                .await?;
            nets.sort_by(|a, b| a.name.cmp(&b.name));
            let format = match (quiet, format.as_deref()) {
                (true, _) => "{{.ID}}".to_string(),
                (false, None | Some("table")) => {
                    "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string()
                }
                (false, Some("json")) => "{{json .}}".to_string(),
                (false, Some(f)) => f.to_string(),
            };
            let t = Template::parse(&format)?;
            let rows: Vec<Value> = nets.iter().map(|n| row(n, no_trunc)).collect();
            out!("{}", render_rows(&t, &header(), &rows)?);
            Ok(true)
        }
        NetworkCmd::Inspect { names, format } => {
            super::inspect_each(client, &names, format.as_deref(), |n| {
                format!("/networks/{n}")
            })
            .await
        }
        NetworkCmd::Rm { names } => {
            let mut ok = true;
            for n in &names {
                match client
                    .call(Method::DELETE, &format!("/networks/{n}"), None)
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
        NetworkCmd::Connect {
            network,
            container,
            aliases,
            ip,
        } => {
            let mut ep = json!({"Aliases": aliases});
            if let Some(ip) = ip {
                ep["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            let req = json!({"Container": container, "EndpointConfig": ep});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{network}/connect"),
                    body(&req)?,
                )
                .await?;
            Ok(true)
        }
        NetworkCmd::Disconnect {
            network,
            container,
            force,
        } => {
            let req = json!({"Container": container, "Force": force});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{network}/disconnect"),
                    body(&req)?,
                )
                .await?;
            Ok(true)
        }
        NetworkCmd::Prune { force, filter } => {
            if !force {
                eprint!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    return Ok(true);
                }
            }
            let f = Filters::from_args(&filter)?;
            let fq = if f.is_empty() {
                String::new()
            } else {
                f.to_json()
            };
            let resp = client
                .call(
                    Method::POST,
                    &format!("/networks/prune{}", query(&[("filters", fq)])),
                    None,
                )
                .await?;
            let r: NetworkPruneResponse = read_json(resp).await?;
            if !r.networks_deleted.is_empty() {
                outln!("Deleted Networks:");
                for d in &r.networks_deleted {
                    outln!("{d}");
                }
            }
            Ok(true)
        }
    }
}
