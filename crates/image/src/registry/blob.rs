//! Blob endpoints: streaming download resumed with `Range` after a transient failure, existence
//! checks, cross-repository mounts, monolithic and chunked uploads.
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::{
    api_error, header_str, strip_query, target_of, RegistryClient, RegistryError, Req, ReqBody,
    Scope,
};

/// A blob being downloaded. [`BlobDownload::chunk`] yields its bytes in order; when the connection
/// breaks mid-way the download is resumed from the current offset (`Range: bytes=N-`), up to the
/// client's retry budget. Digest verification is the caller's job (it hashes as it stores).
#[derive(Debug)]
pub struct BlobDownload<'c> {
    client: &'c RegistryClient,
    url: Url,
    scope: Scope,
    target: String,
    resp: Option<Response>,
    offset: u64,
    /// Bytes still to drop from the start of the current answer (a server that ignored Range).
    skip: u64,
    total: Option<u64>,
    resumes: u32,
}

/// What a mount request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The blob is now in the target repository.
    Mounted,
    /// The registry could not mount and opened an upload session at this location instead.
    Upload(Url),
}

/// How a blob got to the registry in [`RegistryClient::push_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPushOutcome {
    /// It was already there.
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Uploaded.
    Uploaded,
}

impl RegistryClient {
    /// Starts downloading `digest` from `repo`.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<BlobDownload<'_>, RegistryError> {
        let mut d = BlobDownload {
            client: self,
            url: self.url(&format!("{repo}/blobs/{digest}"))?,
            scope: Scope::pull(repo),
            target: target_of(repo, digest),
            resp: None,
            offset: 0,
            skip: 0,
            total: None,
            resumes: 0,
        };
        d.open().await?;
        Ok(d)
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: the blob's size when the registry has it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let target = target_of(repo, digest);
        let scope = Scope::push(repo);
        let resp = self
            .send(Req {
                method: Method::HEAD,
                url: self.url(&format!("{repo}/blobs/{digest}"))?,
                scope: &scope,
                headers: HeaderMap::new(),
                body: ReqBody::Empty,
                target: &target,
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                header_str(&resp, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(api_error(resp, &target).await),
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`.
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &str,
        from: &str,
    ) -> Result<MountOutcome, RegistryError> {
        let target = target_of(repo, digest);
        let scope = Scope::push(repo).with_pull(from);
        let mut url = self.url(&format!("{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let resp = self
            .send(Req {
                method: Method::POST,
                url,
                scope: &scope,
                headers: HeaderMap::new(),
                body: ReqBody::Empty,
                target: &target,
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => Ok(MountOutcome::Upload(self.location(&resp, &target)?)),
            _ => Err(api_error(resp, &target).await),
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/`: opens an upload session, returns its location.
    pub async fn start_upload(&self, repo: &str) -> Result<Url, RegistryError> {
        let target = format!("{repo} (upload)");
        let scope = Scope::push(repo);
        let resp = self
            .send(Req {
                method: Method::POST,
                url: self.url(&format!("{repo}/blobs/uploads/"))?,
                scope: &scope,
                headers: HeaderMap::new(),
                body: ReqBody::Empty,
                target: &target,
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(api_error(resp, &target).await);
        }
        self.location(&resp, &target)
    }

    /// Uploads the whole of `path` (`size` bytes) in one `PUT <location>?digest=`.
    pub async fn upload_monolithic(
        &self,
        repo: &str,
        location: Url,
        digest: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        let target = target_of(repo, digest);
        self.finish_upload(repo, location, digest, path, 0, size, &target)
            .await
    }

    /// Uploads `path` in `chunk_size` pieces (`PATCH` with `Content-Range: start-end`), then closes
    /// the session with `PUT <location>?digest=`. `progress` is told the bytes sent so far.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_chunked(
        &self,
        repo: &str,
        mut location: Url,
        digest: &str,
        path: &Path,
        size: u64,
        chunk_size: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let target = target_of(repo, digest);
        let scope = Scope::push(repo);
        let chunk_size = chunk_size.max(1);
        let mut offset = 0u64;
        while offset < size {
            let len = chunk_size.min(size - offset);
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(
                "content-range",
                HeaderValue::from_str(&format!("{}-{}", offset, offset + len - 1))
                    .expect("digits and a dash are a valid header value"),
            );
            let resp = self
                .send(Req {
                    method: Method::PATCH,
                    url: location.clone(),
                    scope: &scope,
                    headers,
                    body: ReqBody::File {
                        path: path.to_path_buf(),
                        offset,
                        len,
                    },
                    target: &target,
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(api_error(resp, &target).await);
            }
            location = self.location(&resp, &target)?;
            offset += len;
            progress(offset);
        }
        self.finish_upload(repo, location, digest, path, size, 0, &target)
            .await
    }

    /// `PUT <location>?digest=` carrying `len` bytes of `path` from `offset` (zero for a chunked close).
    #[allow(clippy::too_many_arguments)]
    async fn finish_upload(
        &self,
        repo: &str,
        mut location: Url,
        digest: &str,
        path: &Path,
        offset: u64,
        len: u64,
        target: &str,
    ) -> Result<(), RegistryError> {
        let scope = Scope::push(repo);
        location.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let body = if len == 0 {
            headers.insert(
                reqwest::header::CONTENT_LENGTH,
                HeaderValue::from_static("0"),
            );
            ReqBody::Empty
        } else {
            ReqBody::File {
                path: path.to_path_buf(),
                offset,
                len,
            }
        };
        let resp = self
            .send(Req {
                method: Method::PUT,
                url: location,
                scope: &scope,
                headers,
                body,
                target,
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(api_error(resp, target).await);
        }
        if let Some(sent) = header_str(&resp, "docker-content-digest") {
            if sent != digest {
                return Err(RegistryError::DigestMismatch {
                    target: target.to_string(),
                    expected: digest.to_string(),
                    actual: sent,
                });
            }
        }
        Ok(())
    }

    /// Gets blob `digest` (`size` bytes, content in `path`) into `repo`: nothing when it is already
    /// there, a mount when `mount_from` names a repository of this registry holding it, else an
    /// upload — chunked when `chunk_size` is set and smaller than the blob, monolithic otherwise.
    #[allow(clippy::too_many_arguments)]
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        path: &Path,
        mount_from: Option<&str>,
        chunk_size: Option<u64>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<BlobPushOutcome, RegistryError> {
        if self.blob_exists(repo, digest).await?.is_some() {
            return Ok(BlobPushOutcome::Exists);
        }
        let location = match mount_from.filter(|f| *f != repo) {
            Some(from) => match self.mount_blob(repo, digest, from).await? {
                MountOutcome::Mounted => {
                    return Ok(BlobPushOutcome::Mounted {
                        from: from.to_string(),
                    })
                }
                MountOutcome::Upload(location) => location,
            },
            None => self.start_upload(repo).await?,
        };
        match chunk_size {
            Some(c) if c < size => {
                self.upload_chunked(repo, location, digest, path, size, c, progress)
                    .await?
            }
            _ => {
                self.upload_monolithic(repo, location, digest, path, size)
                    .await?;
                progress(size);
            }
        }
        Ok(BlobPushOutcome::Uploaded)
    }

    fn location(&self, resp: &Response, target: &str) -> Result<Url, RegistryError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                target: target.to_string(),
                reason: format!("upload answer {} has no Location header", resp.status()),
            })?;
        resp.url().join(loc).map_err(|source| RegistryError::Url {
            url: loc.to_string(),
            source,
        })
    }
}

impl BlobDownload<'_> {
    /// Total size, when the registry said.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Bytes handed out so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many times the download was resumed after a broken connection.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    async fn open(&mut self) -> Result<(), RegistryError> {
        let mut headers = HeaderMap::new();
        if self.offset > 0 {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={}-", self.offset))
                    .expect("digits are a valid header value"),
            );
        }
        let resp = self
            .client
            .send(Req {
                method: Method::GET,
                url: self.url.clone(),
                scope: &self.scope,
                headers,
                body: ReqBody::Empty,
                target: &self.target,
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {
                self.skip = self.offset;
                if self.total.is_none() {
                    self.total = resp.content_length();
                }
            }
            StatusCode::PARTIAL_CONTENT if self.offset > 0 => {
                self.skip = 0;
                if self.total.is_none() {
                    self.total = resp.content_length().map(|l| l + self.offset);
                }
            }
            _ => return Err(api_error(resp, &self.target).await),
        }
        self.resp = Some(resp);
        Ok(())
    }

    /// The next piece of the blob, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        loop {
            let Some(resp) = self.resp.as_mut() else {
                self.open().await?;
                continue;
            };
            let failure = match resp.chunk().await {
                Ok(Some(mut b)) => {
                    if self.skip > 0 {
                        let drop = (self.skip as usize).min(b.len());
                        self.skip -= drop as u64;
                        b = b.slice(drop..);
                        if b.is_empty() {
                            continue;
                        }
                    }
                    self.offset += b.len() as u64;
                    return Ok(Some(b));
                }
                Ok(None) => match self.total {
                    Some(t) if self.offset < t => RegistryError::Protocol {
                        target: self.target.clone(),
                        reason: format!("connection closed at byte {} of {t}", self.offset),
                    },
                    _ => return Ok(None),
                },
                Err(source) => RegistryError::Http {
                    method: "GET".into(),
                    url: strip_query(&self.url),
                    source,
                },
            };
            // a body that breaks off mid-way (reqwest reports it as a decode or body error) is resumable
            let resumable = matches!(
                &failure,
                RegistryError::Protocol { .. } | RegistryError::Http { .. }
            );
            self.resp = None;
            if !resumable || self.resumes + 1 >= self.client.retry.max_attempts {
                return Err(RegistryError::RetriesExhausted {
                    target: self.target.clone(),
                    attempts: self.resumes + 1,
                    source: Box::new(failure),
                });
            }
            tracing::debug!(target = %self.target, offset = self.offset, error = %failure, "blob download broke, resuming");
            self.resumes += 1;
            let wait: Duration = self.client.retry.backoff(self.resumes - 1);
            tokio::time::sleep(wait).await;
        }
    }
}
