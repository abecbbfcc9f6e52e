//! `docker commit` (`POST /commit`): a container's changes — its overlay upper directory —
//! become a new layer on top of its image's layers, and a new image whose config is the
//! container's (Cmd, Env, ... over the image's) with docker's `changes` instructions applied.
//!
//! The layer tar is written by walking the upper directory through directory fds
//! ([`super::archive::layer_of_upper`]: OCI whiteouts, no symlink followed), stored in the
//! content store (uncompressed: its digest is its diff id) and unpacked into the snapshot of
//! the new chain id, so the image runs like a pulled one. The container is paused meanwhile
//! (docker's default) when it runs.

use std::io::{BufWriter, Seek, Write};

use berth_api::container::ContainerConfig;
use berth_image::images::manifest::media_types;
use berth_image::images::ImageRecord;
use berth_image::layer::{self, Compression, UnpackOptions};
use serde_json::{json, Value};

use super::archive::{layer_of_upper, ArchiveError};
use super::{ContainerError, Containers, Record};
use crate::images::ImageError;
use crate::ErrorKind;

/// Errors of `commit`.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing the layer of container {id}")]
    Layer {
        id: String,
        #[source]
        source: ArchiveError,
    },
    #[error("storing the layer of container {id}")]
    Io {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unpacking the committed layer")]
    Unpack(#[source] layer::LayerError),
    #[error("snapshot of the committed layer")]
    Snapshot(#[source] berth_image::snapshot::SnapshotError),
    #[error("dockerfile parse error: {0}")]
    Change(String),
    #[error("commit needs the overlay snapshotter")]
    NotOverlay,
}

impl CommitError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommitError::Container(e) => e.kind(),
            CommitError::Image(e) => e.kind(),
            CommitError::Change(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

/// What `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `repo[:tag]` to name the image.
    pub reference: Option<String>,
    pub comment: String,
    pub author: String,
    /// Dockerfile instructions applied to the config (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`,
    /// `USER`, `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`).
    pub changes: Vec<String>,
    /// Pause a running container while its changes are read.
    pub pause: bool,
    /// A config sent with the request, overriding the container's.
    pub config: Option<ContainerConfig>,
}

/// A Dockerfile-style argument list: JSON array form, else the shell form (`/bin/sh -c`).
fn exec_form(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
    }
}

/// `KEY=VALUE ...` or `KEY VALUE` (ENV, LABEL).
fn pairs(rest: &str) -> Vec<(String, String)> {
    if !rest.contains('=')
        || rest
            .split_whitespace()
            .next()
            .is_some_and(|w| !w.contains('='))
    {
        return match rest.split_once(char::is_whitespace) {
            Some((k, v)) => vec![(k.to_string(), v.trim().to_string())],
            None => vec![],
        };
    }
    rest.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Apply one `changes` instruction to an image config's `config` object.
pub fn apply_change(c: &mut Value, change: &str) -> Result<(), CommitError> {
    let change = change.trim();
    let (instr, rest) = change
        .split_once(char::is_whitespace)
        .map(|(i, r)| (i, r.trim()))
        .unwrap_or((change, ""));
    if rest.is_empty() {
        return Err(CommitError::Change(format!(
            "{} requires at least one argument",
            instr.to_ascii_uppercase()
        )));
    }
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => c["Cmd"] = json!(exec_form(rest)),
        "ENTRYPOINT" => c["Entrypoint"] = json!(exec_form(rest)),
        "WORKDIR" => c["WorkingDir"] = json!(rest),
        "USER" => c["User"] = json!(rest),
        "STOPSIGNAL" => c["StopSignal"] = json!(rest),
        "ENV" => {
            let mut env: Vec<String> = c["Env"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in pairs(rest) {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
            c["Env"] = json!(env);
        }
        "LABEL" => {
            if !c["Labels"].is_object() {
                c["Labels"] = json!({});
            }
            for (k, v) in pairs(rest) {
                c["Labels"][k] = json!(v);
            }
        }
        "EXPOSE" => {
            if !c["ExposedPorts"].is_object() {
                c["ExposedPorts"] = json!({});
            }
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                c["ExposedPorts"][p] = json!({});
            }
        }
        "VOLUME" => {
            if !c["Volumes"].is_object() {
                c["Volumes"] = json!({});
            }
            let list = serde_json::from_str::<Vec<String>>(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect());
            for v in list {
                c["Volumes"][v] = json!({});
            }
        }
        other => {
            return Err(CommitError::Change(format!(
                "{other} is not a valid change command"
            )))
        }
    }
    Ok(())
}

/// The new image's `config`: the image's, with the container's settings laid over it.
fn merged_config(image: &Value, container: &ContainerConfig) -> Value {
    let mut c = if image.is_object() {
        image.clone()
    } else {
        json!({})
    };
    let ctr = serde_json::to_value(container).unwrap_or(Value::Null);
    for k in [
        "Cmd",
        "Entrypoint",
        "Env",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
    ] {
        match &ctr[k] {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            v => c[k] = v.clone(),
        }
    }
    c
}

impl Containers {
    /// `POST /commit`: returns the new image's id (`sha256:…`).
    pub async fn commit(&self, key: &str, o: CommitOptions) -> Result<String, CommitError> {
        let rec = self.get(key)?.record();
        let paused = o.pause
            && rec.state.status == super::Status::Running
            && self.pause(&rec.id).await.is_ok();
        let this = self.clone();
        let rec2 = rec.clone();
        let o2 = o.clone();
        let result = tokio::task::spawn_blocking(move || this.commit_blocking(&rec2, &o2))
            .await
            .map_err(|e| ContainerError::Invalid(format!("commit task: {e}")));
        if paused {
            let _ = self.unpause(&rec.id).await;
        }
        let id = result??;
        self.publish("commit", &rec, &[("comment", o.comment.clone())]);
        Ok(id)
    }

    fn commit_blocking(&self, rec: &Record, o: &CommitOptions) -> Result<String, CommitError> {
        let images = self.images().clone();
        let snaps = images.snapshots();
        let upper = rec
            .rootfs
            .parent()
            .map(|d| d.join("upper"))
            .filter(|u| u.is_dir())
            .ok_or(CommitError::NotOverlay)?;
        if snaps.mode() != berth_image::snapshot::Mode::Overlay {
            return Err(CommitError::NotOverlay);
        }
        // validate the changes before any work
        let mut probe = json!({});
        for ch in &o.changes {
            apply_change(&mut probe, ch)?;
        }
        let io = |source| CommitError::Io {
            id: rec.id.clone(),
            source,
        };
        let spool =
            super::archive::spool_file(&rec.rootfs).map_err(|source| CommitError::Layer {
                id: rec.id.clone(),
                source,
            })?;
        let mut file = layer_of_upper(&upper, BufWriter::new(spool))
            .map_err(|source| CommitError::Layer {
                id: rec.id.clone(),
                source,
            })?
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        file.flush().map_err(io)?;
        let layer_size = file.stream_position().map_err(io)?;
        file.rewind().map_err(io)?;
        let mut w = images
            .content()
            .writer(None, None)
            .map_err(ImageError::from)?;
        std::io::copy(&mut file, &mut w).map_err(io)?;
        let diff_id = w.commit().map_err(ImageError::from)?;

        let parent = images.resolve(&rec.image_id)?;
        let mut diff_ids = parent.diff_ids.clone();
        diff_ids.push(diff_id.clone());
        let chains = berth_image::snapshot::chain_ids(&diff_ids);
        let chain = chains.last().expect("at least the new layer").clone();
        if !snaps.exists(&chain) {
            let parent_chain = chains.len().checked_sub(2).map(|i| &chains[i]);
            let prepared = snaps
                .prepare(&chain, parent_chain)
                .map_err(CommitError::Snapshot)?;
            file.rewind().map_err(io)?;
            let stats = layer::unpack(
                &mut file,
                Compression::None,
                prepared.path(),
                &snaps.unpack_options(&UnpackOptions::default()),
            )
            .map_err(CommitError::Unpack)?;
            prepared
                .commit(stats.uncompressed_size)
                .map_err(CommitError::Snapshot)?;
        }

        let mut cfg: Value =
            serde_json::from_slice(&images.config_json(&parent)?).map_err(|source| {
                ImageError::Config {
                    id: parent.id.to_string(),
                    source,
                }
            })?;
        let created = berth_image::images::now_rfc3339();
        let container_cfg = o.config.as_ref().unwrap_or(&rec.config);
        let mut c = merged_config(&cfg["config"], container_cfg);
        for ch in &o.changes {
            apply_change(&mut c, ch)?;
        }
        cfg["config"] = c;
        cfg["created"] = json!(created);
        cfg["container"] = json!(rec.id);
        if !o.author.is_empty() {
            cfg["author"] = json!(o.author);
        }
        if !cfg["rootfs"]["diff_ids"].is_array() {
            cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        if let Some(a) = cfg["rootfs"]["diff_ids"].as_array_mut() {
            a.push(json!(diff_id.to_string()));
        }
        let mut h = json!({
            "created": created,
            "created_by": format!("{} {}", rec.path, rec.args.join(" ")).trim().to_string(),
        });
        if !o.author.is_empty() {
            h["author"] = json!(o.author);
        }
        if !o.comment.is_empty() {
            h["comment"] = json!(o.comment);
        }
        if !cfg["history"].is_array() {
            cfg["history"] = json!([]);
        }
        if let Some(a) = cfg["history"].as_array_mut() {
            a.push(h);
        }
        let config_bytes = serde_json::to_vec(&cfg).expect("a JSON value serializes");
        let config_digest = images
            .content()
            .write_bytes(&config_bytes)
            .map_err(ImageError::from)?;

        let mut m: Value = images
            .content()
            .read_json(&parent.manifest)
            .map_err(ImageError::from)?;
        let docker = parent.manifest_media_type == media_types::DOCKER_MANIFEST;
        m["config"]["digest"] = json!(config_digest.to_string());
        m["config"]["size"] = json!(config_bytes.len());
        if !m["layers"].is_array() {
            m["layers"] = json!([]);
        }
        if let Some(a) = m["layers"].as_array_mut() {
            a.push(json!({
                "mediaType": if docker { media_types::DOCKER_LAYER_TAR } else { media_types::OCI_LAYER_TAR },
                "digest": diff_id.to_string(),
                "size": layer_size,
            }));
        }
        if let Some(o) = m.as_object_mut() {
            o.remove("annotations");
        }
        let manifest = images
            .content()
            .write_bytes(&serde_json::to_vec(&m).expect("a JSON value serializes"))
            .map_err(ImageError::from)?;
        let mut layers = parent.layers.clone();
        layers.push(diff_id.clone());
        images
            .db()
            .put(ImageRecord {
                id: config_digest.clone(),
                manifest,
                manifest_media_type: parent.manifest_media_type.clone(),
                index: None,
                repo_tags: Vec::new(),
                repo_digests: Vec::new(),
                created: Some(created),
                size: parent.size + layer_size,
                layers,
                diff_ids,
                stored_at: None,
            })
            .map_err(ImageError::from)?;
        let id = config_digest.to_string();
        if let Some(r) = o.reference.as_deref().filter(|r| !r.is_empty()) {
            let reference = images.parse(r)?;
            images.tag(&id, &reference)?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker() {
        let mut c = json!({"Env": ["PATH=/bin", "A=1"]});
        apply_change(&mut c, "CMD [\"echo\", \"hi\"]").expect("cmd");
        apply_change(&mut c, "ENTRYPOINT /bin/sh").expect("entrypoint");
        apply_change(&mut c, "ENV A=2 B=3").expect("env");
        apply_change(&mut c, "ENV C four").expect("env");
        apply_change(&mut c, "WORKDIR /w").expect("workdir");
        apply_change(&mut c, "LABEL x=y").expect("label");
        apply_change(&mut c, "EXPOSE 80").expect("expose");
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/sh"]));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=2", "B=3", "C=four"]));
        assert_eq!(c["WorkingDir"], "/w");
        assert_eq!(c["Labels"]["x"], "y");
        assert!(c["ExposedPorts"]["80/tcp"].is_object());
        assert!(apply_change(&mut c, "RUN make").is_err());
        assert!(apply_change(&mut c, "CMD").is_err());
    }

    #[test]
    fn container_settings_override_the_image() {
        let img = json!({"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"});
        let ctr = ContainerConfig {
            cmd: Some(vec!["sleep".into(), "1".into()]),
            working_dir: String::new(),
            ..ContainerConfig::default()
        };
        let c = merged_config(&img, &ctr);
        assert_eq!(c["Cmd"], json!(["sleep", "1"]));
        assert_eq!(c["WorkingDir"], "/");
        assert_eq!(c["Env"], json!(["PATH=/bin"]));
    }
}
