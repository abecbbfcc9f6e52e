//! `GET /events`: the backlog since `since`, then live events until `until` (or until the client
//! goes away), one JSON object per line, filtered like Docker filters them.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::event::{EventActor, EventMessage};
use berth_api::filters::Filters;
use berth_api::time::{parse_timestamp, Timestamp};
use berth_engine::events::Event;
use berth_engine::Engine;
use bytes::Bytes;
use hyper::{Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::http::{Body, Query};

const FILTER_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// Engine event → wire event (containers and images also carry the legacy `status/id/from`).
pub fn to_wire(e: &Event) -> EventMessage {
    let legacy = matches!(e.kind.as_str(), "container" | "image");
    EventMessage {
        status: legacy.then(|| e.action.clone()),
        id: legacy.then(|| e.actor_id.clone()),
        from: if e.kind == "container" {
            e.attributes.get("image").cloned()
        } else {
            None
        },
        kind: e.kind.clone(),
        action: e.action.clone(),
        actor: EventActor {
            id: e.actor_id.clone(),
            attributes: e
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        scope: e.scope.clone(),
        time: Timestamp::from_unix_nanos(e.time_nano).secs,
        time_nano: e.time_nano,
    }
}

/// Docker's `FuzzyMatch`: absent → true; else the source equals or starts with a value.
fn fuzzy(f: &Filters, key: &str, source: &str) -> bool {
    !f.contains(key) || f.get(key).iter().any(|v| source.starts_with(v))
}

/// Whether `e` passes `f` (Docker's `events.Filter.Include`).
pub fn include(f: &Filters, e: &Event) -> bool {
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    let by_name = |kind: &str| {
        !f.contains(kind)
            || (e.kind == kind
                && (fuzzy(f, kind, &e.actor_id) || (!name.is_empty() && fuzzy(f, kind, name))))
    };
    let labels: HashMap<String, String> = e
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    f.exact_match("scope", &e.scope)
        && f.exact_match("type", &e.kind)
        && [
            "container",
            "image",
            "volume",
            "network",
            "plugin",
            "daemon",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| by_name(k))
        && f.labels_match("label", &labels)
        && f.exact_match("event", &e.action)
}

fn line(e: &Event) -> Bytes {
    let mut v = serde_json::to_vec(&to_wire(e)).expect("event serializes");
    v.push(b'\n');
    Bytes::from(v)
}

/// `GET /events`.
pub fn events(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = Filters::parse(q.get("filters").unwrap_or(""))?;
    filters.validate(FILTER_KEYS)?;
    let time = |key: &str| -> Result<Option<Timestamp>, ApiError> {
        match q.get(key).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_timestamp(s)
                .map(Some)
                .map_err(|e| ApiError::bad_request(e.to_string())),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request("`since` time is after `until` time"));
        }
    }
    let until_nano = until.map(|u| u.unix_nanos());
    let (past, mut rx) = engine.events().subscribe(since.map(|s| s.unix_nanos()));
    let (tx, body) = Body::channel(64);
    tokio::spawn(async move {
        let due = |e: &Event| until_nano.is_none_or(|u| e.time_nano <= u);
        for e in past.iter().filter(|e| due(e) && include(&filters, e)) {
            if tx.send(Ok(line(e))).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = Timestamp::now().unix_nanos();
            let wait = u64::try_from(u.unix_nanos().saturating_sub(now)).unwrap_or(0);
            tokio::time::Instant::now() + std::time::Duration::from_nanos(wait)
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                got = next => match got {
                    None => return, // until reached
                    Some(Ok(e)) => {
                        if due(&e) && include(&filters, &e) && tx.send(Ok(line(&e))).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(RecvError::Lagged(n))) => tracing::warn!(skipped = n, "events subscriber lagged"),
                    Some(Err(RecvError::Closed)) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("static headers are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let attributes: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Event::now(kind, action, id, attributes)
    }

    fn f(args: &[&str]) -> Filters {
        Filters::from_args(args).unwrap()
    }

    #[test]
    fn filters_like_docker() {
        let vol = ev("volume", "create", "data", &[("driver", "local")]);
        let ctr = ev(
            "container",
            "start",
            "abc123",
            &[("name", "web"), ("image", "busybox"), ("tier", "front")],
        );
        assert!(include(&Filters::new(), &vol));
        assert!(include(&f(&["type=volume"]), &vol));
        assert!(!include(&f(&["type=volume"]), &ctr));
        assert!(include(&f(&["volume=data"]), &vol));
        assert!(!include(&f(&["volume=other"]), &vol));
        assert!(
            !include(&f(&["volume=data"]), &ctr),
            "a volume filter excludes other types"
        );
        assert!(include(&f(&["container=web"]), &ctr), "by name attribute");
        assert!(include(&f(&["container=abc"]), &ctr), "by id prefix");
        assert!(include(&f(&["event=create"]), &vol));
        assert!(!include(&f(&["event=destroy"]), &vol));
        assert!(include(&f(&["label=tier=front"]), &ctr));
        assert!(!include(&f(&["label=tier=back"]), &ctr));
        assert!(include(&f(&["type=volume", "type=container"]), &ctr));
    }

    #[test]
    fn wire_form() {
        let ctr = ev("container", "die", "abc", &[("image", "busybox")]);
        let w = serde_json::to_value(to_wire(&ctr)).unwrap();
        assert_eq!(w["status"], "die");
        assert_eq!(w["from"], "busybox");
        assert_eq!(w["Type"], "container");
        assert_eq!(w["Actor"]["ID"], "abc");
        let vol = serde_json::to_value(to_wire(&ev("volume", "create", "v", &[]))).unwrap();
        assert!(vol.get("status").is_none());
        assert_eq!(vol["scope"], "local");
        assert!(vol["timeNano"].as_i64().unwrap() > vol["time"].as_i64().unwrap());
    }
}
