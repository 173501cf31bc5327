//! API errors and their Kubernetes-style Status objects.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use catalyst_schemas::watch::{Status, StatusDetails};
use catalyst_schemas::{Cause, ValidationError};

use crate::store::StoreError;

/// Why an API request failed; each maps to a Status object with a reason and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The kind (plural).
        kind: String,
        /// The name.
        name: String,
    },
    /// 409 on create.
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// The kind (plural).
        kind: String,
        /// The name.
        name: String,
    },
    /// 409: stale resourceVersion, apply conflicts, illegal transitions.
    #[error("{message}")]
    Conflict {
        /// For people.
        message: String,
        /// Fields at fault.
        causes: Vec<Cause>,
    },
    /// 422: the object fails validation.
    #[error("{kind} {name:?} is invalid: {source}")]
    Invalid {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// Every problem.
        #[source]
        source: ValidationError,
    },
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 400 about one field of the request (a path's namespace or name, a query parameter).
    #[error("{field}: {message}")]
    BadField {
        /// The field at fault, e.g. `metadata.name`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 410: the resourceVersion is too old.
    #[error("{0}")]
    Gone(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
    /// 503: a node is not connected (to this server: another may reach it); `Retry-After: 1`.
    #[error("{0}")]
    Unavailable(String),
    /// 413: a request body over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429: a limit on concurrent work; retry after `retry_after_seconds`.
    #[error("{message}")]
    TooManyRequests {
        /// For people.
        message: String,
        /// The `Retry-After` header and `details.retryAfterSeconds`.
        retry_after_seconds: u64,
    },
    /// 504: a node did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// 416: a byte range past the end of a file.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// 507: a server's disk is full (its quota).
    #[error("{0}")]
    InsufficientStorage(String),
    /// 502: something this server fetched from failed (a URL pulled into a server's files).
    #[error("{0}")]
    BadGateway(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) | ApiError::BadField { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The Status `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) | ApiError::BadField { .. } => "BadRequest",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Gone(_) => "Gone",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Internal(_) => "InternalError",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::PayloadTooLarge(_) => "RequestEntityTooLarge",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Timeout(_) => "Timeout",
            ApiError::RangeNotSatisfiable(_) => "RequestedRangeNotSatisfiable",
            ApiError::InsufficientStorage(_) => "InsufficientStorage",
            ApiError::BadGateway(_) => "BadGateway",
        }
    }

    /// The Status object, typed.
    pub fn status_object(&self) -> Status {
        let causes: Vec<Cause> = match self {
            ApiError::Invalid { source, .. } => source.causes.clone(),
            ApiError::Conflict { causes, .. } => causes.clone(),
            ApiError::BadField { field, message } => vec![Cause {
                field: field.clone(),
                message: message.clone(),
            }],
            _ => Vec::new(),
        };
        let mut details = StatusDetails {
            causes,
            ..Default::default()
        };
        match self {
            ApiError::NotFound { kind, name }
            | ApiError::AlreadyExists { kind, name }
            | ApiError::Invalid { kind, name, .. } => {
                details.kind = Some(kind.clone());
                details.name = Some(name.clone());
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => details.retry_after_seconds = Some(*retry_after_seconds),
            _ => {}
        }
        let mut status = Status::failure(self.code().as_u16(), self.reason(), self.to_string());
        if details != StatusDetails::default() {
            status.details = Some(details);
        }
        status
    }

    /// The Status object.
    pub fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.status_object()).expect("a Status encodes")
    }

    /// Maps a store error about `kind`/`name`.
    pub fn from_store(e: StoreError, kind: &str, name: &str) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound {
                kind: kind.to_owned(),
                name: name.to_owned(),
            },
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists {
                kind: kind.to_owned(),
                name: name.to_owned(),
            },
            StoreError::Conflict { .. } => ApiError::Conflict {
                message: format!(
                    "Operation cannot be fulfilled on {kind} {name:?}: the object has been modified; apply your changes to the latest version and try again"
                ),
                causes: vec![],
            },
            // 409 like a conflict, but the writer's leadership term is over: retrying cannot help
            StoreError::Fenced { .. } | StoreError::NoTerm { .. } => ApiError::Conflict {
                message: format!("Operation cannot be fulfilled on {kind} {name:?}: {e}"),
                causes: vec![],
            },
            StoreError::Compacted { .. } => ApiError::Gone(format!("too old resource version: {e}")),
            StoreError::FutureRevision { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal(_)) {
            tracing::error!(error = %self, "internal error");
        }
        let mut response = (self.code(), axum::Json(self.status())).into_response();
        if let ApiError::TooManyRequests {
            retry_after_seconds,
            ..
        } = self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_seconds),
            );
        }
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(1),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(e, "object", "")
    }
}

/// The result type of API operations.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fenced_write_is_a_409_that_names_the_fence() {
        let e = ApiError::from_store(
            StoreError::Fenced {
                key: "/leases/catalyst-system/catalyst-controllers".into(),
                expected: 7,
                current: 9,
            },
            "GameServer",
            "gs1",
        );
        assert_eq!(e.code(), axum::http::StatusCode::CONFLICT);
        assert!(e.to_string().contains("fenced"), "{e}");
    }

    #[test]
    fn a_node_without_a_tunnel_here_is_a_503_to_retry_in_a_second() {
        let r = ApiError::from(crate::tunnel::TunnelError::NotConnected { node: "n1".into() })
            .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "1");
        let r = ApiError::NotFound {
            kind: "gameservers".into(),
            name: "x".into(),
        }
        .into_response();
        assert!(r.headers().get(axum::http::header::RETRY_AFTER).is_none());
    }
}
