//! Healthchecks: docker's `HEALTHCHECK` (from the image, or `--health-*` at create) run as a
//! probe process inside the running container every interval (`berth-runtime exec` with the
//! container's own process settings), with a timeout; the result drives `State.Health`
//! (`starting` → `healthy` / `unhealthy` after `Retries` consecutive failures outside the start
//! period), kept in the record, shown by inspect and ps, and announced as `health_status`
//! events. The loop ends with the container's run.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{now, Containers, Entry};

/// Docker's `Config.Healthcheck` (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

impl HealthConfig {
    /// The probe's argv, `None` when disabled or empty.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") => Some(self.test[1..].to_vec()).filter(|a| !a.is_empty()),
            Some("CMD-SHELL") => Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                self.test[1..].join(" "),
            ]),
            _ => None,
        }
    }

    fn interval(&self) -> Duration {
        dur(self.interval, 30)
    }

    fn timeout(&self) -> Duration {
        dur(self.timeout, 30)
    }

    fn retries(&self) -> i64 {
        if self.retries > 0 {
            self.retries
        } else {
            3
        }
    }
}

fn dur(ns: i64, default_secs: u64) -> Duration {
    if ns > 0 {
        Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
    } else {
        Duration::from_secs(default_secs)
    }
}

/// From the image's HEALTHCHECK.
pub fn from_image(h: &berth_image::config::Healthcheck) -> HealthConfig {
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    HealthConfig {
        test: h.test.clone(),
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        start_interval: ns(h.start_interval),
        retries: i64::from(h.retries),
    }
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthLog>,
}

/// One probe result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

impl Containers {
    /// Start the probe loop for a container that just started (no-op without a check).
    pub(crate) fn spawn_health(&self, entry: Arc<Entry>) {
        let rec = entry.record();
        let Some(cfg) = rec
            .config
            .healthcheck
            .as_ref()
            .and_then(|v| serde_json::from_value::<HealthConfig>(v.clone()).ok())
        else {
            return;
        };
        let Some(argv) = cfg.argv() else { return };
        {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            r.state.health = Some(Health {
                status: "starting".into(),
                ..Health::default()
            });
        }
        let this = self.clone();
        let mut rx = entry.phase.subscribe();
        let exits = rx.borrow().exits;
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let start_period = Duration::from_nanos(u64::try_from(cfg.start_period).unwrap_or(0));
            loop {
                // ends (Ok) when the run is over or the container is gone
                let stopped = tokio::time::timeout(
                    cfg.interval(),
                    rx.wait_for(|p| p.exits != exits || !p.running || p.removed),
                )
                .await
                .is_ok();
                if stopped {
                    return;
                }
                let (code, output, begin) = this.probe(&entry, &argv, cfg.timeout()).await;
                let in_start = started.elapsed() < start_period;
                let (changed, rec) = {
                    let mut r = entry.rec.lock().expect("record lock poisoned");
                    let h = r.state.health.get_or_insert_with(Health::default);
                    let before = h.status.clone();
                    if code == 0 {
                        h.status = "healthy".into();
                        h.failing_streak = 0;
                    } else if !in_start {
                        h.failing_streak += 1;
                        if h.failing_streak >= cfg.retries() {
                            h.status = "unhealthy".into();
                        }
                    }
                    h.log.push(HealthLog {
                        start: begin,
                        end: now(),
                        exit_code: code,
                        output,
                    });
                    if h.log.len() > MAX_LOG {
                        h.log.remove(0);
                    }
                    (before != h.status, r.clone())
                };
                if changed {
                    let status = rec
                        .state
                        .health
                        .as_ref()
                        .map(|h| h.status.clone())
                        .unwrap_or_default();
                    this.publish_event(&format!("health_status: {status}"), &rec, &[]);
                    if let Err(e) = this.save_record(&rec) {
                        tracing::warn!(container = %rec.id, error = %e, "saving health");
                    }
                }
            }
        });
    }

    /// One probe: exit code (-1 on timeout or failure to run), output, start time.
    async fn probe(
        &self,
        entry: &Entry,
        argv: &[String],
        timeout: Duration,
    ) -> (i64, String, String) {
        let begin = now();
        let rec = entry.record();
        let bundle = self.bundle_dir(&rec.id);
        let spec: Option<serde_json::Value> = std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(spec) = spec else {
            return (-1, "container has no bundle".into(), begin);
        };
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(argv);
        process["terminal"] = serde_json::json!(false);
        let pfile = self.shim_dir(&rec.id).join("health.json");
        if let Err(e) = std::fs::write(&pfile, serde_json::to_vec(&process).unwrap_or_default()) {
            return (-1, format!("write {}: {e}", pfile.display()), begin);
        }
        let child = tokio::process::Command::new(&self.paths().runtime)
            .arg("--root")
            .arg(self.runtime_root_path())
            .arg("exec")
            .arg("--process")
            .arg(&pfile)
            .arg(&rec.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return (-1, format!("run berth-runtime exec: {e}"), begin),
        };
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                if text.len() > MAX_OUTPUT {
                    let mut cut = MAX_OUTPUT;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                (i64::from(out.status.code().unwrap_or(-1)), text, begin)
            }
            Ok(Err(e)) => (-1, e.to_string(), begin),
            Err(_) => (
                -1,
                format!("Health check exceeded timeout ({timeout:?})"),
                begin,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_commands_follow_docker() {
        let h = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            ..HealthConfig::default()
        };
        assert_eq!(
            h.argv().expect("argv"),
            vec!["/bin/sh", "-c", "test -f /ok"]
        );
        assert_eq!(h.interval(), Duration::from_secs(30));
        assert_eq!(h.retries(), 3);
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        };
        assert!(none.argv().is_none());
        let cmd = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 1_000_000,
            ..HealthConfig::default()
        };
        assert_eq!(cmd.argv().expect("argv"), vec!["true"]);
        assert_eq!(cmd.interval(), Duration::from_millis(1));
    }
}
