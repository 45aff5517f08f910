//! Errors of the engine's operations, in terms the API maps to problem codes.

use millrace_connector::ConnectorError;
use millrace_store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("unknown system `{system}`; known systems: {known}")]
    UnknownSystem { system: String, known: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the source rejected the credentials: {0}")]
    CredentialsRejected(String),
    #[error("the source could not be reached: {0}")]
    SourceUnreachable(String),
    #[error("the source did not answer in time: {0}")]
    SourceTimedOut(String),
    #[error("the source answered with an error: {0}")]
    SourceFailed(String),
    #[error("no connection `{0}`")]
    ConnectionNotFound(String),
    #[error("connection `{0}` is not active")]
    ConnectionInactive(String),
    #[error("connection `{0}` is active; disconnect it before deleting its data")]
    ConnectionActive(String),
    #[error("not enough credits: {needed} needed, {available} available")]
    InsufficientCredits { needed: u32, available: u32 },
    #[error("stored credentials cannot be opened: {0}")]
    Secret(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SyncError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ConnectionNotFound(id) => SyncError::ConnectionNotFound(id),
            StoreError::ConnectionInactive(id) => SyncError::ConnectionInactive(id),
            StoreError::InsufficientCredits { needed, available } => {
                SyncError::InsufficientCredits { needed, available }
            }
            other => SyncError::Store(other),
        }
    }
}

impl SyncError {
    /// Maps a connector failure met while checking credentials at connect time.
    pub(crate) fn from_check(err: ConnectorError) -> Self {
        match err {
            ConnectorError::InvalidCredentials(detail) => SyncError::InvalidRequest(detail),
            ConnectorError::CredentialsRejected(detail) => SyncError::CredentialsRejected(detail),
            ConnectorError::Unreachable(detail) => SyncError::SourceUnreachable(detail),
            ConnectorError::Timeout(detail) => SyncError::SourceTimedOut(detail),
            other => SyncError::SourceFailed(other.to_string()),
        }
    }
}
