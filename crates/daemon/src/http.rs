//! HTTP glue shared by every handler: the response body type (whole or streamed), JSON and
//! error responses, query-string access with Docker's boolean rules, and reading request bodies.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// A response body: a complete buffer, or chunks arriving on a channel (events, tar export).
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl Body {
    pub fn empty() -> Self {
        Body::Full(None)
    }

    pub fn from_bytes(b: impl Into<Bytes>) -> Self {
        Body::Full(Some(b.into()))
    }

    /// A streamed body and the sender that feeds it; dropping the sender ends the body, sending
    /// an `Err` aborts the connection (the client sees a truncated stream, not a clean end).
    pub fn channel(depth: usize) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Self) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, Body::Stream(rx))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut *self {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => http_body::SizeHint::with_exact(0),
            Body::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut v) => {
            v.push(b'\n');
            Response::builder()
                .status(status)
                .header("Content-Type", "application/json")
                .body(Body::from_bytes(v))
                .expect("static headers are valid")
        }
        Err(e) => ApiError::internal(format!("encode response: {e}")).into_response(),
    }
}

/// An empty response (`204 No Content` and friends).
pub fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("static headers are valid")
}

/// Query parameters of a request (`get`: first value, like Go's `r.Form.Get`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`type=a&type=b`).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's `BoolValue`: absent, empty, `0`, `no`, `false`, `none` are false; anything else true.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }
}

/// Largest JSON request body accepted.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Read a whole (JSON) request body; an empty body parses as `{}`-like default via `T`.
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(
    body: Incoming,
) -> Result<T, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("read request body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// A blocking `Read` over a request body, fed from the async side through a channel, so
/// engine code (tar extraction) can run on a blocking thread while the body streams in.
pub struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    cur: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Pump `body` into a [`ChannelReader`] from a task on the runtime.
///
/// When the reader is dropped before the end (the handler refused the upload half-way, e.g. an
/// import into a non-empty volume), the rest of the body is still read and discarded: dropping
/// it unread would close the connection under a client that is still sending, which then sees
/// "broken pipe" instead of the error response.
pub fn body_reader(mut body: Incoming) -> ChannelReader {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut receiver_gone = false;
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(f)) => {
                    if receiver_gone {
                        continue;
                    }
                    if let Ok(data) = f.into_data() {
                        if tx.send(Ok(data)).await.is_err() {
                            receiver_gone = true;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    break;
                }
            }
        }
    });
    ChannelReader {
        rx,
        cur: Bytes::new(),
    }
}

/// A blocking `Write` that sends what it is given as body chunks of a streamed response.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Result<Bytes, std::io::Error>>) -> Self {
        Self { tx }
    }

    /// Abort the response (the client sees the connection cut).
    pub fn abort(&self, why: String) {
        let _ = self.tx.blocking_send(Err(std::io::Error::other(why)));
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bools_follow_docker() {
        let q = Query::parse(Some("a=1&b=false&c=True&d=&e=none&f=no&g=0&name=x%2Fy"));
        assert!(q.bool("a"));
        assert!(q.bool("c"));
        for k in ["b", "d", "e", "f", "g", "missing"] {
            assert!(!q.bool(k), "{k}");
        }
        assert_eq!(q.get("name"), Some("x/y"));
        assert_eq!(Query::parse(None).get("a"), None);
        assert_eq!(Query::parse(Some("t=a&t=b")).all("t"), vec!["a", "b"]);
        assert_eq!(Query::parse(Some("t=a&t=b")).get("t"), Some("a"));
    }
}
