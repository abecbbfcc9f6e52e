//! The error body every failing Docker API call answers with: `{"message": "..."}`.

use serde::{Deserialize, Serialize};

/// `{"message": "..."}`, sent with a 4xx/5xx status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}
