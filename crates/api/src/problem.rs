//! Problem documents (RFC 9457): the one place errors become HTTP statuses and stable codes.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use millrace_sync::SyncError;
use serde::Serialize;
use utoipa::ToSchema;

/// An API error: a status, a stable machine code and a human detail.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds a rate-limited client should wait.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

/// The JSON body of a problem response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the problem is named by the HTTP status and `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code, e.g. `invalid_cursor`.
    pub code: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// The `x-request-id` of the request.
    pub request_id: Option<String>,
}

impl IntoResponse for ApiError {
    /// Renders without the request id; [`attach_request_id`] fills it in on the way out.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Middleware that renders an [`ApiError`] left in a response's extensions as a problem
/// document carrying the request's id.
pub async fn attach_request_id(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<ApiError>().cloned() else {
        return response;
    };

    let problem = Problem {
        problem_type: "about:blank".to_owned(),
        title: error.title().to_owned(),
        status: error.status.as_u16(),
        code: error.code.to_owned(),
        detail: error.detail.clone(),
        request_id,
    };
    let (mut parts, _empty) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> Self {
        let detail = err.to_string();
        match err {
            SyncError::UnknownSystem { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_system", detail)
            }
            SyncError::InvalidRequest(_) => ApiError::invalid(detail),
            SyncError::CredentialsRejected(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credentials_rejected",
                detail,
            ),
            SyncError::SourceUnreachable(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "source_unreachable", detail)
            }
            SyncError::SourceTimedOut(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "source_timeout", detail)
            }
            SyncError::SourceFailed(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "source_error", detail)
            }
            SyncError::ConnectionNotFound(_) => ApiError::not_found(detail),
            SyncError::ConnectionInactive(_) => {
                ApiError::new(StatusCode::CONFLICT, "connection_inactive", detail)
            }
            SyncError::ConnectionActive(_) => {
                ApiError::new(StatusCode::CONFLICT, "connection_active", detail)
            }
            SyncError::InsufficientCredits { .. } => {
                ApiError::new(StatusCode::CONFLICT, "insufficient_credits", detail)
            }
            SyncError::Secret(_) | SyncError::Store(_) => ApiError::internal(detail),
        }
    }
}

impl From<millrace_store::StoreError> for ApiError {
    fn from(err: millrace_store::StoreError) -> Self {
        ApiError::from(SyncError::from(err))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the 2 MB this endpoint takes",
            );
        }
        ApiError::invalid(format!(
            "the request body is not valid: {}",
            rejection.body_text()
        ))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(format!(
            "the query string is not valid: {}",
            rejection.body_text()
        ))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid(format!("the path is not valid: {}", rejection.body_text()))
    }
}

/// JSON body extractor whose rejections are problem documents.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query extractor whose rejections are problem documents.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are problem documents.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Answers any route that does not exist.
pub async fn no_such_route() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

/// Answers a method a route does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}
