//! Pull and push progress: the events the library emits, their 1:1 mapping onto docker's JSON
//! progress stream (`{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"…"}`,
//! what the engine streams to clients), and a renderer for people: one indicatif bar per layer on a
//! terminal, plain lines (one per state change) otherwise.
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// The callback pull and push report through. Called from the pulling task; must be cheap.
pub type ProgressFn<'a> = &'a (dyn Fn(ProgressEvent) + Send + Sync);

/// A progress callback that drops everything.
pub fn ignore(_: ProgressEvent) {}

/// One thing that happened during a pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// Pull started: `Pulling from <repository>`, id = tag (or digest).
    Resolving {
        /// Repository path (`library/busybox`).
        repository: String,
        /// Tag or digest asked for.
        reference: String,
    },
    /// Push started: `The push refers to repository [<name>]`.
    PushTarget {
        /// Full repository name.
        name: String,
    },
    /// A layer changed state; `id` is the short (12 hex) layer digest.
    Layer {
        /// Short layer id.
        id: String,
        /// What happened.
        state: LayerState,
    },
    /// `Digest: sha256:…` after a pull; after a push `<tag>: digest: sha256:… size: N`.
    Digest {
        /// Tag the digest belongs to (push only).
        tag: Option<String>,
        /// The manifest digest.
        digest: String,
        /// Manifest size (push only).
        size: Option<u64>,
    },
    /// Free text: `Status: Downloaded newer image for busybox:latest`.
    Status {
        /// The message.
        message: String,
    },
}

/// Per-layer states, named as docker names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    /// `Pulling fs layer`
    PullingFsLayer,
    /// `Waiting` (queued behind the concurrency limit)
    Waiting,
    /// `Downloading` with byte counts
    Downloading {
        /// Bytes so far.
        current: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// `Verifying Checksum`
    VerifyingChecksum,
    /// `Download complete`
    DownloadComplete,
    /// `Extracting` with compressed bytes consumed so far
    Extracting {
        /// Bytes so far.
        current: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// `Pull complete`
    Complete,
    /// `Already exists` (its snapshot was already there)
    AlreadyExists,
    /// `Preparing` (push)
    Preparing,
    /// `Pushing` with byte counts
    Pushing {
        /// Bytes so far.
        current: u64,
        /// Total.
        total: Option<u64>,
    },
    /// `Pushed`
    Pushed,
    /// `Layer already exists` (push: the registry had it)
    LayerAlreadyExists,
    /// `Mounted from <repo>` (push: cross-repository mount)
    MountedFrom {
        /// Repository it was mounted from.
        repository: String,
    },
}

/// docker's `jsonmessage.JSONMessage` as the pull/push endpoints stream it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JsonMessage {
    /// Status text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Byte counts.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// The rendered bar docker sends for old clients (`[==>   ]  1.2MB/3MB`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Layer id or tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `progressDetail`: empty object for states without counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProgressDetail {
    /// Bytes so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Total bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl LayerState {
    /// docker's status text for this state.
    pub fn status(&self) -> String {
        match self {
            LayerState::PullingFsLayer => "Pulling fs layer".into(),
            LayerState::Waiting => "Waiting".into(),
            LayerState::Downloading { .. } => "Downloading".into(),
            LayerState::VerifyingChecksum => "Verifying Checksum".into(),
            LayerState::DownloadComplete => "Download complete".into(),
            LayerState::Extracting { .. } => "Extracting".into(),
            LayerState::Complete => "Pull complete".into(),
            LayerState::AlreadyExists => "Already exists".into(),
            LayerState::Preparing => "Preparing".into(),
            LayerState::Pushing { .. } => "Pushing".into(),
            LayerState::Pushed => "Pushed".into(),
            LayerState::LayerAlreadyExists => "Layer already exists".into(),
            LayerState::MountedFrom { repository } => format!("Mounted from {repository}"),
        }
    }

    fn counts(&self) -> Option<(u64, Option<u64>)> {
        match self {
            LayerState::Downloading { current, total }
            | LayerState::Extracting { current, total }
            | LayerState::Pushing { current, total } => Some((*current, *total)),
            _ => None,
        }
    }
}

impl ProgressEvent {
    /// The docker JSON stream message for this event.
    pub fn to_json_message(&self) -> JsonMessage {
        match self {
            ProgressEvent::Resolving {
                repository,
                reference,
            } => JsonMessage {
                status: Some(format!("Pulling from {repository}")),
                id: Some(reference.clone()),
                ..Default::default()
            },
            ProgressEvent::PushTarget { name } => JsonMessage {
                status: Some(format!("The push refers to repository [{name}]")),
                ..Default::default()
            },
            ProgressEvent::Layer { id, state } => {
                let (detail, bar) = match state.counts() {
                    Some((current, total)) => (
                        ProgressDetail {
                            current: Some(current),
                            total,
                        },
                        Some(text_bar(current, total)),
                    ),
                    None => (ProgressDetail::default(), None),
                };
                JsonMessage {
                    status: Some(state.status()),
                    progress_detail: Some(detail),
                    progress: bar,
                    id: Some(id.clone()),
                }
            }
            ProgressEvent::Digest { tag, digest, size } => JsonMessage {
                status: Some(match (tag, size) {
                    (Some(t), Some(s)) => format!("{t}: digest: {digest} size: {s}"),
                    _ => format!("Digest: {digest}"),
                }),
                ..Default::default()
            },
            ProgressEvent::Status { message } => JsonMessage {
                status: Some(message.clone()),
                ..Default::default()
            },
        }
    }
}

/// docker's `[=====>     ]  1.2MB/3.4MB` text.
fn text_bar(current: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => {
            let width = 50u64;
            let filled = (current.min(t) * width / t) as usize;
            let mut bar = "=".repeat(filled);
            if filled < width as usize {
                bar.push('>');
            }
            format!("[{bar:<50}] {:>7}/{}", human_size(current), human_size(t))
        }
        _ => human_size(current),
    }
}

/// `1.2MB`-style decimal sizes, as docker prints.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{n}B");
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{}", UNITS[i])
}

/// Shows progress events to a person: bars on a terminal, plain lines elsewhere.
pub struct Renderer {
    mode: Mode,
}

enum Mode {
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
    Lines {
        out: Mutex<Box<dyn Write + Send>>,
        last: Mutex<HashMap<String, String>>,
    },
}

impl Renderer {
    /// Bars when stderr is a terminal, plain lines on stderr otherwise.
    pub fn stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::bars(ProgressDrawTarget::stderr())
        } else {
            Self::lines(Box::new(std::io::stderr()))
        }
    }

    /// Bars drawn to `target` (the CLI passes stderr; tests a hidden target).
    pub fn bars(target: ProgressDrawTarget) -> Self {
        Renderer {
            mode: Mode::Bars {
                multi: MultiProgress::with_draw_target(target),
                bars: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Plain lines to `out`, one per layer state change (byte counts are not repeated).
    pub fn lines(out: Box<dyn Write + Send>) -> Self {
        Renderer {
            mode: Mode::Lines {
                out: Mutex::new(out),
                last: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Shows one event.
    pub fn handle(&self, ev: &ProgressEvent) {
        match &self.mode {
            Mode::Lines { out, last } => {
                let msg = ev.to_json_message();
                let status = msg.status.unwrap_or_default();
                let line = match (&msg.id, ev) {
                    (Some(id), ProgressEvent::Layer { .. }) => {
                        let mut last = last.lock().expect("renderer lock poisoned");
                        if last.get(id) == Some(&status) {
                            return;
                        }
                        last.insert(id.clone(), status.clone());
                        format!("{id}: {status}")
                    }
                    (Some(id), _) => format!("{id}: {status}"),
                    (None, _) => status,
                };
                let mut out = out.lock().expect("renderer lock poisoned");
                let _ = writeln!(out, "{line}");
            }
            Mode::Bars { multi, bars } => match ev {
                ProgressEvent::Layer { id, state } => {
                    let mut bars = bars.lock().expect("renderer lock poisoned");
                    let bar = bars.entry(id.clone()).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new(0));
                        b.set_style(
                            ProgressStyle::with_template(
                                "{prefix}: {msg:<20} [{bar:40.cyan/blue}] {bytes}/{total_bytes}",
                            )
                            .expect("static template is valid")
                            .progress_chars("=> "),
                        );
                        b.set_prefix(id.clone());
                        b
                    });
                    bar.set_message(state.status());
                    if let Some((current, total)) = state.counts() {
                        if let Some(t) = total {
                            bar.set_length(t);
                        }
                        bar.set_position(current);
                    }
                    if matches!(
                        state,
                        LayerState::Complete
                            | LayerState::AlreadyExists
                            | LayerState::Pushed
                            | LayerState::LayerAlreadyExists
                            | LayerState::MountedFrom { .. }
                    ) {
                        bar.finish();
                    }
                }
                other => {
                    let status = other.to_json_message().status.unwrap_or_default();
                    let _ = multi.println(status);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn maps_onto_docker_messages() {
        let ev = ProgressEvent::Layer {
            id: "a3ed95caeb02".into(),
            state: LayerState::Downloading {
                current: 500,
                total: Some(1000),
            },
        };
        let v = serde_json::to_value(ev.to_json_message()).expect("json");
        assert_eq!(v["status"], "Downloading");
        assert_eq!(v["id"], "a3ed95caeb02");
        assert_eq!(v["progressDetail"]["current"], 500);
        assert_eq!(v["progressDetail"]["total"], 1000);
        assert!(v["progress"]
            .as_str()
            .expect("bar")
            .starts_with("[=========================>"));
        let v = serde_json::to_value(
            ProgressEvent::Layer {
                id: "x".into(),
                state: LayerState::AlreadyExists,
            }
            .to_json_message(),
        )
        .expect("json");
        assert_eq!(
            v,
            serde_json::json!({"status":"Already exists","progressDetail":{},"id":"x"})
        );
        let v = serde_json::to_value(
            ProgressEvent::Resolving {
                repository: "library/busybox".into(),
                reference: "latest".into(),
            }
            .to_json_message(),
        )
        .expect("json");
        assert_eq!(
            v,
            serde_json::json!({"status":"Pulling from library/busybox","id":"latest"})
        );
        let m = ProgressEvent::Digest {
            tag: Some("latest".into()),
            digest: "sha256:ab".into(),
            size: Some(527),
        }
        .to_json_message();
        assert_eq!(
            m.status.as_deref(),
            Some("latest: digest: sha256:ab size: 527")
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(3_000_000), "3MB");
        assert_eq!(human_size(1_500), "1.5kB");
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bars_follow_layers() {
        let r = Renderer::bars(ProgressDrawTarget::hidden());
        let layer = |state| ProgressEvent::Layer {
            id: "abc".into(),
            state,
        };
        r.handle(&ProgressEvent::Resolving {
            repository: "library/busybox".into(),
            reference: "latest".into(),
        });
        r.handle(&layer(LayerState::Downloading {
            current: 10,
            total: Some(100),
        }));
        let Mode::Bars { bars, .. } = &r.mode else {
            panic!("bars mode expected");
        };
        {
            let bars = bars.lock().expect("lock");
            let bar = bars.get("abc").expect("a bar per layer");
            assert_eq!((bar.position(), bar.length()), (10, Some(100)));
            assert_eq!(bar.message(), "Downloading");
        }
        r.handle(&layer(LayerState::Complete));
        let bars = bars.lock().expect("lock");
        let bar = bars.get("abc").expect("bar");
        assert!(bar.is_finished());
        assert_eq!(bar.message(), "Pull complete");
    }

    #[test]
    fn plain_lines_once_per_state() {
        let buf = Buf::default();
        let r = Renderer::lines(Box::new(buf.clone()));
        for current in [1, 2, 3] {
            r.handle(&ProgressEvent::Layer {
                id: "abc".into(),
                state: LayerState::Downloading {
                    current,
                    total: Some(3),
                },
            });
        }
        r.handle(&ProgressEvent::Layer {
            id: "abc".into(),
            state: LayerState::Complete,
        });
        r.handle(&ProgressEvent::Status {
            message: "Status: done".into(),
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(text, "abc: Downloading\nabc: Pull complete\nStatus: done\n");
    }
}
