//! API errors: a status code and Docker's `{"message": ...}` body, built from engine errors by
//! their kind.

use berth_engine::ErrorKind;
use hyper::{Response, StatusCode};

use crate::http::{self, Body};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// From an engine error: status by kind, message with its causes (`a: b: c`).
    pub fn from_engine(kind: ErrorKind, err: &dyn std::error::Error) -> Self {
        let status = match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, chain(err))
    }

    pub fn into_response(self) -> Response<Body> {
        http::json(
            self.status,
            &berth_api::ErrorResponse {
                message: self.message,
            },
        )
    }
}

impl From<berth_engine::volumes::VolumeError> for ApiError {
    fn from(e: berth_engine::volumes::VolumeError) -> Self {
        Self::from_engine(e.kind(), &e)
    }
}

impl From<berth_api::filters::FilterError> for ApiError {
    fn from(e: berth_api::filters::FilterError) -> Self {
        Self::bad_request(chain(&e))
    }
}

/// `outer: inner: root`, skipping a cause whose text the outer message already contains.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
