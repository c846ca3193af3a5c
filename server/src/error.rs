//! Every error the API answers: `{"kind": "Error", "error": "..."}` with the right status, as the
//! original chainr did; compile errors carry their diagnostics too.

use crate::diagnostics::Diagnostics;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chainr_runtime::store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `Error`.
    #[schema(example = "Error")]
    pub kind: &'static str,
    /// What went wrong, in words.
    pub error: String,
    /// The compiler's findings, when the problem is the pipeline itself.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
}

/// An error answer: a status and the words.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub diagnostics: Option<Diagnostics>,
    /// Extra headers (`WWW-Authenticate`, `Allow`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            diagnostics: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> ApiError {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError::not_found(format!("no run has uid {id}")),
            StoreError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, why),
            StoreError::Exists(_) | StoreError::LeaseLost(_) | StoreError::OutOfOrder { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "the store is unavailable");
                crate::metrics::store_error();
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    .with_header(header::RETRY_AFTER, "1")
            }
            StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "the store holds unreadable data");
                crate::metrics::store_error();
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            kind: "Error",
            error: self.message,
            diagnostics: self.diagnostics,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
