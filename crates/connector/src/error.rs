//! Errors a connector reports, each telling the engine what to do next.

use std::time::Duration;

/// A failure talking to a source or making sense of its answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// A credential field is missing or malformed; nothing was sent to the source.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    /// The source rejected the credentials (401, or its own equivalent).
    #[error("the source rejected the credentials: {0}")]
    CredentialsRejected(String),
    /// The source could not be reached (DNS, refused connection, TLS).
    #[error("the source is unreachable: {0}")]
    Unreachable(String),
    /// The source did not answer in time.
    #[error("the source timed out: {0}")]
    Timeout(String),
    /// The source asked us to slow down and we ran out of patience.
    #[error("the source is rate limiting (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// The source answered with an error status that retrying did not cure.
    #[error("the source answered {status}: {detail}")]
    Status { status: u16, detail: String },
    /// The source's answer could not be read (truncated, not JSON, unexpected shape).
    #[error("the source sent an answer that could not be read: {0}")]
    Malformed(String),
    /// A native record could not be mapped to the unified model.
    #[error("a record could not be mapped: {0}")]
    Mapping(String),
    /// A sandbox server could not start (its data, its address).
    #[error("{0}")]
    Sandbox(String),
    /// The object type is not offered by this system.
    #[error("this system does not offer {0}")]
    Unsupported(String),
}

impl ConnectorError {
    /// Returns whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectorError::Unreachable(_)
            | ConnectorError::Timeout(_)
            | ConnectorError::RateLimited { .. } => true,
            ConnectorError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
