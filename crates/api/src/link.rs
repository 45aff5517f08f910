//! Link sessions (management key): the operator invites one customer to connect a system on
//! the Link page, then exchanges the one-time code the page sent back for the connection's
//! token.
//!
//! A session's URL carries a random secret (`mrl_...`); the code sent to `redirect_uri` is
//! another (`mrlc_...`). The store keeps only their hashes. The connection token made on the
//! Link page waits sealed by the operator's key until the code is exchanged, once, by the same
//! management key that created the session.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::{Duration, Utc};
use millrace_model::{Connection, LinkSession, LinkSessionStatus};
use millrace_store::{CodeExchange, LinkCompletion, NewLinkSession};
use millrace_sync::{hash_token, ConnectRequest, Connected};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::management::{Created, DataList};
use crate::problem::{ApiError, ApiJson, ApiPath, Problem};
use crate::AppState;

/// Prefix of the secret in a link session's URL.
pub const LINK_URL_PREFIX: &str = "mrl_";
/// Prefix of a one-time code.
pub const LINK_CODE_PREFIX: &str = "mrlc_";

/// Bounds and default of a session's lifetime.
const EXPIRES_IN_SECONDS: std::ops::RangeInclusive<u32> = 60..=7 * 24 * 3600;
const DEFAULT_EXPIRES_IN_SECONDS: u32 = 24 * 3600;
/// How long a code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::minutes(10);

/// The body of `POST /v1/link-sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkSession {
    /// The operator's id of the customer; the connection is made for it.
    pub customer_id: String,
    /// Catalogue ids of the systems to offer; omitted: every system.
    pub systems: Option<Vec<String>>,
    /// An absolute `http` or `https` URL the customer's browser returns to, with `code` and
    /// `state` added to its query.
    pub redirect_uri: String,
    /// Any value of the caller's (at most 500 characters), returned unchanged as `state`.
    pub state: Option<String>,
    /// Seconds until the link stops working (60 to 604800, default 86400).
    pub expires_in_seconds: Option<u32>,
}

/// A new link session and its URL, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedLinkSession {
    pub link_session: LinkSession,
    /// The Link page to send the customer to. It holds a secret and appears in no later answer.
    pub url: String,
}

/// The body of `POST /v1/link/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeCode {
    /// The `code` the Link page added to `redirect_uri`.
    pub code: String,
}

/// Creates a link session for one customer; answers its URL this once.
#[utoipa::path(post, path = "/v1/link-sessions", tag = "link",
    request_body = CreateLinkSession,
    responses((status = 201, body = CreatedLinkSession), (status = 422, body = Problem)),
    security(("management_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateLinkSession>,
) -> Result<(StatusCode, Json<CreatedLinkSession>), ApiError> {
    let created = create_session(&state, &public_base_url(&headers), body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists link sessions, newest first (at most 200).
#[utoipa::path(get, path = "/v1/link-sessions", tag = "link",
    responses((status = 200, body = DataList<LinkSession>)), security(("management_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<DataList<LinkSession>>, ApiError> {
    let data = state.engine.store().link_sessions(200).await?;
    Ok(Json(DataList { data }))
}

/// Returns one link session.
#[utoipa::path(get, path = "/v1/link-sessions/{id}", tag = "link",
    responses((status = 200, body = LinkSession), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LinkSession>, ApiError> {
    let session = state.engine.store().link_session(&id).await?;
    session
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no link session `{id}`")))
}

/// Exchanges a Link page's one-time code for the connection and its token. A code works once,
/// for ten minutes, and only with the management key that created its session.
#[utoipa::path(post, path = "/v1/link/token", tag = "link", request_body = ExchangeCode,
    responses((status = 200, body = Created),
        (status = 403, body = Problem, description = "`forbidden`: another key's code"),
        (status = 409, body = Problem, description = "`code_used`"),
        (status = 410, body = Problem, description = "`code_expired`"),
        (status = 422, body = Problem, description = "`invalid_code`")),
    security(("management_key" = [])))]
pub async fn exchange(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<ExchangeCode>,
) -> Result<Json<Created>, ApiError> {
    let code = body.code.trim();
    if !code.starts_with(LINK_CODE_PREFIX) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
            format!("`code` must be the `{LINK_CODE_PREFIX}...` value sent to redirect_uri"),
        ));
    }
    let outcome = state
        .engine
        .store()
        .exchange_link_code(&hash_token(code), &state.admin_key_hash, Utc::now())
        .await?;
    let (session_id, connection_id, sealed_token) = match outcome {
        CodeExchange::Exchanged {
            session_id,
            connection_id,
            sealed_token,
        } => (session_id, connection_id, sealed_token),
        CodeExchange::Unknown => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_code",
                "no link session has this code",
            ))
        }
        CodeExchange::AlreadyExchanged => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "code_used",
                "this code was exchanged before; a code works once (rotate the connection's \
                 token if it was lost)",
            ))
        }
        CodeExchange::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "code_expired",
                "this code expired; a code must be exchanged within ten minutes (rotate the \
                 connection's token to get one)",
            ))
        }
        CodeExchange::OtherOperator => {
            return Err(ApiError::forbidden(
                "this code belongs to a link session of another management key",
            ))
        }
    };

    let token = state
        .engine
        .secrets()
        .open(&sealed_token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::internal(format!(
                "link session {session_id}: the sealed token is corrupt"
            ))
        })?;
    let connection: Connection = state.engine.connection(&connection_id).await?;
    tracing::info!(link_session_id = %session_id, connection_id = %connection.id, "link code exchanged");
    Ok(Json(Created { connection, token }))
}

/// Validates a request and stores a new session; `base_url` is this server as the browser
/// reaches it (scheme and host, no trailing slash).
pub(crate) async fn create_session(
    state: &AppState,
    base_url: &str,
    request: CreateLinkSession,
) -> Result<CreatedLinkSession, ApiError> {
    let customer_id = request.customer_id.trim();
    if customer_id.is_empty() || customer_id.chars().count() > 200 {
        return Err(ApiError::invalid(
            "`customer_id` must be a non-empty string of at most 200 characters",
        ));
    }
    let systems = request
        .systems
        .map(|systems| validate_systems(state, systems))
        .transpose()?;
    let redirect_uri = validate_redirect_uri(&request.redirect_uri)?;
    let link_state = request.state.filter(|value| !value.is_empty());
    if link_state
        .as_ref()
        .is_some_and(|value| value.chars().count() > 500)
    {
        return Err(ApiError::invalid("`state` must be at most 500 characters"));
    }
    let expires_in = request
        .expires_in_seconds
        .unwrap_or(DEFAULT_EXPIRES_IN_SECONDS);
    if !EXPIRES_IN_SECONDS.contains(&expires_in) {
        return Err(ApiError::invalid(format!(
            "`expires_in_seconds` must be between {} and {}, not {expires_in}",
            EXPIRES_IN_SECONDS.start(),
            EXPIRES_IN_SECONDS.end()
        )));
    }

    let url_secret = random_secret(LINK_URL_PREFIX);
    let now = Utc::now();
    let session = state
        .engine
        .store()
        .create_link_session(NewLinkSession {
            id: format!("ls_{}", uuid::Uuid::now_v7().simple()),
            url_token_hash: hash_token(&url_secret),
            operator_key_hash: state.admin_key_hash.as_ref().clone(),
            customer_id: customer_id.to_owned(),
            systems,
            redirect_uri,
            state: link_state,
            created_at: now,
            expires_at: now + Duration::seconds(i64::from(expires_in)),
        })
        .await?;
    tracing::info!(link_session_id = %session.id, customer_id = %session.customer_id, "link session created");
    Ok(CreatedLinkSession {
        link_session: session,
        url: format!("{base_url}/link/{url_secret}"),
    })
}

fn validate_systems(state: &AppState, systems: Vec<String>) -> Result<Vec<String>, ApiError> {
    if systems.is_empty() {
        return Err(ApiError::invalid(
            "`systems` must name at least one system; omit it to offer every system",
        ));
    }
    let registry = state.engine.registry();
    let mut chosen: Vec<String> = Vec::new();
    for system in systems {
        if registry.get(&system).is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_system",
                format!(
                    "unknown system `{system}`; known systems: {}",
                    registry.system_ids().join(", ")
                ),
            ));
        }
        if !chosen.contains(&system) {
            chosen.push(system);
        }
    }
    Ok(chosen)
}

/// Accepts absolute `http`/`https` URLs with a host, no credentials and no fragment.
fn validate_redirect_uri(text: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::invalid(format!("`redirect_uri` {why}"));
    let url =
        url::Url::parse(text.trim()).map_err(|err| invalid(&format!("is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an absolute http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    if url
        .query_pairs()
        .any(|(name, _)| name == "code" || name == "state")
    {
        return Err(invalid(
            "must not already have `code` or `state` in its query",
        ));
    }
    Ok(url.to_string())
}

/// Returns `prefix` followed by 256 random bits in hex.
pub(crate) fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Returns this server's base URL as the caller reached it: the `Host` header, over https when
/// a proxy in front says so with `X-Forwarded-Proto`.
pub(crate) fn public_base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Why a Link page submission did not make a connection.
#[derive(Debug)]
pub(crate) enum LinkFailure {
    /// The session can no longer make a connection (used, or expired).
    Closed(LinkSessionStatus),
    /// Connecting failed (credentials, reachability, credits...).
    Connect(millrace_sync::SyncError),
    /// Millrace itself failed.
    Internal(ApiError),
}

/// Connects a system for a pending session, records the connection with a new one-time code,
/// and returns the URL to send the browser to (`redirect_uri` with `code` and `state`).
pub(crate) async fn connect_for_session(
    state: &AppState,
    session: &LinkSession,
    request: ConnectRequest,
) -> Result<String, LinkFailure> {
    let Connected { connection, token } = state
        .engine
        .connect(request)
        .await
        .map_err(LinkFailure::Connect)?;

    let code = random_secret(LINK_CODE_PREFIX);
    let now = Utc::now();
    let completion = LinkCompletion {
        connection_id: connection.id.clone(),
        code_hash: hash_token(&code),
        code_expires_at: now + CODE_LIFETIME,
        sealed_token: state.engine.secrets().seal(token.as_bytes()),
        completed_at: now,
    };
    let completed = state
        .engine
        .store()
        .complete_link_session(&session.id, completion)
        .await
        .map_err(|err| LinkFailure::Internal(err.into()))?;
    if !completed {
        // Another submission of the same link won, or the link expired meanwhile: this
        // connection is nobody's, so its credits go back at once.
        tracing::warn!(link_session_id = %session.id, connection_id = %connection.id,
            "link session closed while connecting; disconnecting the extra connection");
        state
            .engine
            .disconnect(&connection.id)
            .await
            .map_err(|err| LinkFailure::Internal(err.into()))?;
        let status = state
            .engine
            .store()
            .link_session(&session.id)
            .await
            .ok()
            .flatten()
            .map_or(LinkSessionStatus::Expired, |session| session.status);
        return Err(LinkFailure::Closed(status));
    }
    tracing::info!(link_session_id = %session.id, connection_id = %connection.id,
        "link session completed");

    let mut target = url::Url::parse(&session.redirect_uri)
        .map_err(|err| LinkFailure::Internal(ApiError::internal(err)))?;
    {
        let mut query = target.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(value) = &session.state {
            query.append_pair("state", value);
        }
    }
    Ok(target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn redirect_uris_must_be_absolute_web_urls_without_code_or_state() {
        let good = validate_redirect_uri(" https://app.example.com/cb?tenant=7 ").unwrap();
        assert_eq!(good, "https://app.example.com/cb?tenant=7");
        for bad in [
            "",
            "/relative",
            "javascript:alert(1)",
            "ftp://host/x",
            "https://user:pw@host/x",
            "https://host/x#fragment",
            "https://host/x?state=1",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_public_base_url_comes_from_a_well_formed_host_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(public_base_url(&headers), "http://localhost");
        headers.insert(
            header::HOST,
            HeaderValue::from_static("millrace.example:8443"),
        );
        assert_eq!(public_base_url(&headers), "http://millrace.example:8443");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert_eq!(public_base_url(&headers), "https://millrace.example:8443");
        headers.insert(header::HOST, HeaderValue::from_static("evil.example/path?"));
        assert_eq!(public_base_url(&headers), "https://localhost");
    }

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let first = random_secret(LINK_CODE_PREFIX);
        assert!(first.starts_with(LINK_CODE_PREFIX));
        assert_eq!(first.len(), LINK_CODE_PREFIX.len() + 64);
        assert_ne!(first, random_secret(LINK_CODE_PREFIX));
    }
}
