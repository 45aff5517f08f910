//! Link sessions: the operator's invitations to connect a system, the connection each one
//! made, and the one-time code that hands its token to the operator's back end.
//!
//! Neither the secret of a session's URL nor its code is stored: only their SHA-256 hashes.
//! The connection token waits, sealed by the operator's key, until the code is exchanged, and
//! is erased in the same statement that marks the code used, so it can be handed out once.

use chrono::{DateTime, Utc};
use millrace_model::{LinkSession, LinkSessionStatus};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::convert::{json, micros, opt_time, time};
use crate::{Store, StoreError};

const COLUMNS: &str = "id, customer_id, systems, redirect_uri, state, created_at, expires_at, \
     connection_id, completed_at, exchanged_at";

/// What `create_link_session` stores.
#[derive(Debug, Clone)]
pub struct NewLinkSession {
    pub id: String,
    /// SHA-256 hex of the secret carried in the session's URL.
    pub url_token_hash: String,
    /// SHA-256 hex of the management key that asked for the session.
    pub operator_key_hash: String,
    pub customer_id: String,
    /// `None` offers every system.
    pub systems: Option<Vec<String>>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What `complete_link_session` records: the connection made and the code that reveals it.
#[derive(Debug, Clone)]
pub struct LinkCompletion {
    pub connection_id: String,
    /// SHA-256 hex of the one-time code.
    pub code_hash: String,
    pub code_expires_at: DateTime<Utc>,
    /// The connection token sealed by [`crate::secrets::SecretBox`].
    pub sealed_token: Vec<u8>,
    pub completed_at: DateTime<Utc>,
}

/// The outcome of exchanging a one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeExchange {
    /// The code was good: here is the sealed token, now erased from the store.
    Exchanged {
        session_id: String,
        connection_id: String,
        sealed_token: Vec<u8>,
    },
    /// No session has this code.
    Unknown,
    /// The code was exchanged before.
    AlreadyExchanged,
    /// The code's time ran out before it was exchanged.
    Expired,
    /// The code belongs to a session another management key created.
    OtherOperator,
}

impl Store {
    /// Stores a new link session, `pending` until it is completed or expires.
    #[tracing::instrument(skip(self, new), fields(link_session_id = %new.id))]
    pub async fn create_link_session(
        &self,
        new: NewLinkSession,
    ) -> Result<LinkSession, StoreError> {
        let systems = new
            .systems
            .as_ref()
            .map(|systems| serde_json::to_string(systems).expect("a list of ids serialises"));
        sqlx::query(
            "INSERT INTO link_sessions (id, url_token_hash, operator_key_hash, customer_id, \
             systems, redirect_uri, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&new.id)
        .bind(&new.url_token_hash)
        .bind(&new.operator_key_hash)
        .bind(&new.customer_id)
        .bind(systems)
        .bind(&new.redirect_uri)
        .bind(&new.state)
        .bind(micros(new.created_at))
        .bind(micros(new.expires_at))
        .execute(&self.write)
        .await?;
        self.link_session(&new.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("link session {} vanished", new.id)))
    }

    /// Returns one link session by id.
    pub async fn link_session(&self, id: &str) -> Result<Option<LinkSession>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM link_sessions WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(session_row)
            .transpose()
    }

    /// Returns the link session whose URL secret hashes to `url_token_hash`.
    pub async fn link_session_by_url_token(
        &self,
        url_token_hash: &str,
    ) -> Result<Option<LinkSession>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM link_sessions WHERE url_token_hash = $1");
        sqlx::query(&sql)
            .bind(url_token_hash)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(session_row)
            .transpose()
    }

    /// Lists link sessions, newest first.
    pub async fn link_sessions(&self, limit: u32) -> Result<Vec<LinkSession>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM link_sessions ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(session_row)
            .collect()
    }

    /// Records the connection a pending, unexpired session made, with its one-time code.
    /// Returns `false`, changing nothing, when the session was completed before or has expired:
    /// a session makes one connection at most.
    #[tracing::instrument(skip(self, completion), fields(connection_id = %completion.connection_id))]
    pub async fn complete_link_session(
        &self,
        id: &str,
        completion: LinkCompletion,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE link_sessions SET connection_id = $2, code_hash = $3, code_expires_at = $4, \
             sealed_token = $5, completed_at = $6 \
             WHERE id = $1 AND completed_at IS NULL AND expires_at > $6",
        )
        .bind(id)
        .bind(&completion.connection_id)
        .bind(&completion.code_hash)
        .bind(micros(completion.code_expires_at))
        .bind(&completion.sealed_token)
        .bind(micros(completion.completed_at))
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Exchanges a one-time code at `now` for the operator holding the key whose hash is
    /// `operator_key_hash`. The first good exchange takes the sealed token and erases it; every
    /// later one, and concurrent ones that lose the race, get `AlreadyExchanged`.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_link_code(
        &self,
        code_hash: &str,
        operator_key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeExchange, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, operator_key_hash, connection_id, code_expires_at, sealed_token, \
             exchanged_at FROM link_sessions WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(CodeExchange::Unknown);
        };

        let session_id: String = row.try_get("id")?;
        let owner: String = row.try_get("operator_key_hash")?;
        let exchanged_at: Option<i64> = row.try_get("exchanged_at")?;
        let code_expires_at: Option<i64> = row.try_get("code_expires_at")?;
        if owner != operator_key_hash {
            return Ok(CodeExchange::OtherOperator);
        }
        if exchanged_at.is_some() {
            return Ok(CodeExchange::AlreadyExchanged);
        }
        if code_expires_at.is_none_or(|expires| expires <= micros(now)) {
            return Ok(CodeExchange::Expired);
        }
        let connection_id: Option<String> = row.try_get("connection_id")?;
        let sealed_token: Option<Vec<u8>> = row.try_get("sealed_token")?;
        let (Some(connection_id), Some(sealed_token)) = (connection_id, sealed_token) else {
            return Err(StoreError::Corrupt(format!(
                "link session {session_id} has a code but no connection or token"
            )));
        };

        let taken = sqlx::query(
            "UPDATE link_sessions SET exchanged_at = $2, sealed_token = NULL \
             WHERE id = $1 AND exchanged_at IS NULL",
        )
        .bind(&session_id)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if taken != 1 {
            return Ok(CodeExchange::AlreadyExchanged);
        }
        Ok(CodeExchange::Exchanged {
            session_id,
            connection_id,
            sealed_token,
        })
    }
}

fn session_row(row: &AnyRow) -> Result<LinkSession, StoreError> {
    let systems: Option<String> = row.try_get("systems")?;
    let expires_at = time(row.try_get("expires_at")?)?;
    let completed_at = opt_time(row.try_get("completed_at")?)?;
    let status = if completed_at.is_some() {
        LinkSessionStatus::Completed
    } else if expires_at <= Utc::now() {
        LinkSessionStatus::Expired
    } else {
        LinkSessionStatus::Pending
    };
    Ok(LinkSession {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        systems: systems.as_deref().map(json).transpose()?,
        redirect_uri: row.try_get("redirect_uri")?,
        state: row.try_get("state")?,
        status,
        connection_id: row.try_get("connection_id")?,
        created_at: time(row.try_get("created_at")?)?,
        expires_at,
        completed_at,
        exchanged_at: opt_time(row.try_get("exchanged_at")?)?,
    })
}
