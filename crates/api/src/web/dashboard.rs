//! The operator's dashboard: connections and their sync state, runs, the lifecycle actions,
//! link sessions, credits, and webhook deliveries with manual retry.
//!
//! The operator logs in with the management key and gets a session cookie (`__Host-` prefixed,
//! `Secure`, `HttpOnly`, `SameSite=Strict`) holding a random session id, its expiry and their
//! HMAC; nothing is stored server-side, so a session ends at its expiry or when the management
//! key changes. Every form carries a CSRF token bound to the session id. The connection pages
//! poll a JSON fragment (`.../live`) to follow running syncs without a reload.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use chrono::Utc;
use cookie::{Cookie, SameSite};
use millrace_model::{Connection, ConnectionStatus, DeliveryStatus, StreamState};
use millrace_store::ConnectionFilter;
use millrace_sync::hash_token;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{PageError, PageForm};
use crate::link::{create_session, public_base_url, random_secret, CreateLinkSession};
use crate::AppState;

const SESSION_COOKIE: &str = "__Host-millrace_session";
const LOGIN_COOKIE: &str = "__Host-millrace_login";
/// How long a dashboard session lasts.
const SESSION_HOURS: i64 = 8;

/// A logged-in operator; requests without a valid session are sent to the login page.
#[derive(Debug, Clone)]
pub struct Operator {
    session_id: String,
    csrf: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let login = || Redirect::to("/dashboard/login").into_response();
        let value = cookie_value(&parts.headers, SESSION_COOKIE).ok_or_else(login)?;
        let mut pieces = value.splitn(3, '.');
        let (Some(session_id), Some(expires), Some(signature)) =
            (pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(login());
        };
        let signed = format!("{session_id}.{expires}");
        let live = expires
            .parse::<i64>()
            .is_ok_and(|expires| expires > Utc::now().timestamp());
        if !live || !state.web.verify("session", &signed, signature) {
            return Err(login());
        }
        Ok(Operator {
            session_id: session_id.to_owned(),
            csrf: state.web.csrf_token(&format!("session:{session_id}")),
        })
    }
}

impl Operator {
    fn check(&self, state: &AppState, token: &str) -> Result<(), PageError> {
        state
            .web
            .check_csrf(&format!("session:{}", self.session_id), token)
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

fn set_cookie(name: &str, value: String, max_age: cookie::time::Duration) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values are header-safe")
}

/// A form that only carries its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    key: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").finish_non_exhaustive()
    }
}

/// The login page; it sets the pre-login cookie its CSRF token is bound to.
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render_login(&state, &headers, None, StatusCode::OK)
}

fn render_login(
    state: &AppState,
    headers: &HeaderMap,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = cookie_value(headers, LOGIN_COOKIE)
        .filter(|nonce| nonce.len() == 64)
        .unwrap_or_else(|| random_secret(""));
    let page = state.web.page(
        status,
        "login.html",
        minijinja::context! {
            title => "Log in",
            csrf => state.web.csrf_token(&format!("login:{nonce}")),
            error,
        },
    );
    match page {
        Ok(mut response) => {
            let cookie = set_cookie(LOGIN_COOKIE, nonce, cookie::time::Duration::hours(1));
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(err) => err.into_response(),
    }
}

/// Checks the management key and starts a session.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    let nonce = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    state
        .web
        .check_csrf(&format!("login:{nonce}"), &form.csrf)?;
    if state.limiter.check("dashboard-login").is_err() {
        let error = "Too many attempts; wait a moment and try again.";
        return Ok(render_login(
            &state,
            &headers,
            Some(error),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    if hash_token(form.key.trim()) != *state.admin_key_hash {
        tracing::warn!("dashboard login refused");
        let error = "That is not the management key.";
        return Ok(render_login(
            &state,
            &headers,
            Some(error),
            StatusCode::UNAUTHORIZED,
        ));
    }

    let session_id = random_secret("");
    let expires = Utc::now().timestamp() + SESSION_HOURS * 3600;
    let signed = format!("{session_id}.{expires}");
    let value = format!("{signed}.{}", state.web.sign("session", &signed));
    tracing::info!("dashboard login");
    let mut response = Redirect::to("/dashboard").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            value,
            cookie::time::Duration::hours(SESSION_HOURS),
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, String::new(), cookie::time::Duration::ZERO),
    );
    Ok(response)
}

/// Ends the session in this browser.
pub async fn logout(
    State(state): State<AppState>,
    operator: Operator,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    operator.check(&state, &form.csrf)?;
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, String::new(), cookie::time::Duration::ZERO),
    );
    Ok(response)
}

/// A stream as the pages show it.
#[derive(Serialize)]
struct StreamView {
    object: String,
    state: StreamState,
    record_count: u64,
    last_successful_sync_at: Option<String>,
    last_error: Option<String>,
    records_read: Option<u64>,
    records_expected: Option<u64>,
    percent: Option<u64>,
}

/// A connection as the pages show it.
#[derive(Serialize)]
struct ConnectionView {
    #[serde(flatten)]
    connection: Connection,
    system_name: String,
    streams_view: Vec<StreamView>,
    running: usize,
    failed: usize,
    idle: usize,
    records: u64,
}

fn view(state: &AppState, connection: Connection) -> ConnectionView {
    let system_name = state
        .engine
        .registry()
        .get(&connection.system)
        .map_or_else(|| connection.system.clone(), |c| c.system().name.clone());
    let streams_view: Vec<StreamView> = connection
        .streams
        .iter()
        .map(|stream| {
            let progress = stream.progress.as_ref();
            let records_read = progress.map(|progress| progress.records_read);
            let records_expected = progress.and_then(|progress| progress.records_expected);
            let percent = records_read
                .zip(records_expected)
                .filter(|(_, expected)| *expected > 0)
                .map(|(read, expected)| (read * 100 / expected).min(100));
            StreamView {
                object: stream.object.clone(),
                state: stream.state,
                record_count: stream.record_count,
                last_successful_sync_at: stream.last_successful_sync_at.map(|at| at.to_rfc3339()),
                last_error: stream.last_error.clone(),
                records_read,
                records_expected,
                percent,
            }
        })
        .collect();
    let count = |state: StreamState| {
        connection
            .streams
            .iter()
            .filter(|stream| stream.state == state)
            .count()
    };
    ConnectionView {
        system_name,
        running: count(StreamState::Running),
        failed: count(StreamState::Failed),
        idle: count(StreamState::Idle),
        records: connection.streams.iter().map(|s| s.record_count).sum(),
        streams_view,
        connection,
    }
}

async fn connection_views(state: &AppState) -> Result<Vec<ConnectionView>, PageError> {
    let connections = state
        .engine
        .store()
        .list_connections(&ConnectionFilter::default())
        .await?;
    Ok(connections
        .into_iter()
        .map(|connection| view(state, connection))
        .collect())
}

/// The overview: every connection with its state, and the credit pool.
pub async fn overview(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Response, PageError> {
    let connections = connection_views(&state).await?;
    let credits = state
        .engine
        .store()
        .credits(state.engine.config().credit_pool)
        .await?;
    state.web.page(
        StatusCode::OK,
        "dashboard.html",
        minijinja::context! {
            title => "Connections",
            nav => "connections",
            script => "dashboard.js",
            csrf => operator.csrf,
            connections,
            credits,
        },
    )
}

/// The overview's live part, for the page's script.
pub async fn overview_live(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<serde_json::Value>, PageError> {
    let connections = connection_views(&state).await?;
    let html = state
        .web
        .render("connections_live.html", minijinja::context! { connections })?;
    Ok(Json(json!({ "html": html })))
}

/// What `?done=` says after an action.
#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
    deleted: Option<u64>,
}

async fn connection_context(
    state: &AppState,
    id: &str,
) -> Result<(ConnectionView, Vec<millrace_model::SyncRun>), PageError> {
    let connection = state.engine.connection(id).await.map_err(|err| match err {
        millrace_sync::SyncError::ConnectionNotFound(_) => PageError::new(
            StatusCode::NOT_FOUND,
            "No such connection",
            format!("There is no connection {id}."),
        ),
        other => other.into(),
    })?;
    let runs = state.engine.store().runs(id, 20).await?;
    Ok((view(state, connection), runs))
}

/// One connection: its streams with progress, its runs with errors, and the actions.
pub async fn connection(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let (connection, runs) = connection_context(&state, &id).await?;
    let notice = match done.done.as_deref() {
        Some("sync") => Some("A sync was queued; it starts within seconds.".to_owned()),
        Some("disconnected") => Some(
            "Disconnected: its token is refused from now on and its credits are back in the \
             pool. Its data stays until you delete it."
                .to_owned(),
        ),
        Some("deleted") => Some(format!(
            "Deleted the synced data ({} records).",
            done.deleted.unwrap_or_default()
        )),
        _ => None,
    };
    state.web.page(
        StatusCode::OK,
        "connection.html",
        minijinja::context! {
            title => connection.connection.name.clone(),
            nav => "connections",
            script => "dashboard.js",
            csrf => operator.csrf,
            live => format!("/dashboard/connections/{id}/live"),
            active => connection.connection.status == ConnectionStatus::Active,
            disconnected => connection.connection.status == ConnectionStatus::Disconnected,
            connection,
            runs,
            notice,
        },
    )
}

/// A connection's live part, for the page's script.
pub async fn connection_live(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, PageError> {
    let (connection, runs) = connection_context(&state, &id).await?;
    let html = state.web.render(
        "connection_live.html",
        minijinja::context! { connection, runs },
    )?;
    Ok(Json(json!({ "html": html })))
}

/// Queues a sync of the connection.
pub async fn sync_now(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    operator.check(&state, &form.csrf)?;
    state.engine.sync_now(&id).await?;
    Ok(Redirect::to(&format!("/dashboard/connections/{id}?done=sync")).into_response())
}

/// Rotates the connection's token and shows the new one, this once.
pub async fn rotate(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    operator.check(&state, &form.csrf)?;
    let token = state.engine.rotate_token(&id).await?;
    state.web.page(
        StatusCode::OK,
        "secret.html",
        minijinja::context! {
            title => "New token",
            nav => "connections",
            script => "dashboard.js",
            csrf => operator.csrf,
            heading => "The connection's new token",
            explanation => "The old token is refused from now on. Copy this one into the \
                application that reads this connection: it is shown only this once.",
            label => "Token",
            secret => token,
            back => format!("/dashboard/connections/{id}"),
            back_label => "Back to the connection",
        },
    )
}

/// The confirmation before a disconnect or a deletion of data.
pub async fn confirm(
    State(state): State<AppState>,
    operator: Operator,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (connection, _runs) = connection_context(&state, &id).await?;
    render_confirm(&state, &operator, &connection.connection, &action, None)
}

fn render_confirm(
    state: &AppState,
    operator: &Operator,
    connection: &Connection,
    action: &str,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let (heading, explanation, button, typed) = match action {
        "disconnect" => (
            format!("Disconnect {}?", connection.name),
            "Its token is refused at once, a running sync stops, scheduled syncs end and its \
             credits return to the pool. The synced data stays until you delete it. The \
             customer must connect again to resume.",
            "Disconnect",
            false,
        ),
        "delete-data" => (
            format!("Delete the data of {}?", connection.name),
            "Every record synced for this connection is deleted for good. To confirm, type the \
             connection's id.",
            "Delete the data",
            true,
        ),
        _ => {
            return Err(PageError::new(
                StatusCode::NOT_FOUND,
                "No such action",
                "Go back to the connection.",
            ))
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    state.web.page(
        status,
        "confirm.html",
        minijinja::context! {
            title => heading.clone(),
            nav => "connections",
            csrf => operator.csrf,
            heading,
            explanation,
            button,
            typed,
            error,
            connection,
            action => format!("/dashboard/connections/{}/{action}", connection.id),
            back => format!("/dashboard/connections/{}", connection.id),
        },
    )
}

/// The confirmed form of a disconnect or a deletion.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    confirm: Option<String>,
}

/// Carries out a confirmed disconnect or deletion of data.
pub async fn confirmed(
    State(state): State<AppState>,
    operator: Operator,
    Path((id, action)): Path<(String, String)>,
    PageForm(form): PageForm<ConfirmForm>,
) -> Result<Response, PageError> {
    operator.check(&state, &form.csrf)?;
    let (connection, _runs) = connection_context(&state, &id).await?;
    match action.as_str() {
        "disconnect" => {
            state.engine.disconnect(&id).await?;
            Ok(
                Redirect::to(&format!("/dashboard/connections/{id}?done=disconnected"))
                    .into_response(),
            )
        }
        "delete-data" => {
            if form.confirm.as_deref().map(str::trim) != Some(id.as_str()) {
                let error = format!("Type {id} to confirm.");
                return render_confirm(
                    &state,
                    &operator,
                    &connection.connection,
                    &action,
                    Some(&error),
                );
            }
            let deleted = state.engine.delete_data(&id).await?;
            Ok(Redirect::to(&format!(
                "/dashboard/connections/{id}?done=deleted&deleted={deleted}"
            ))
            .into_response())
        }
        _ => Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such action",
            "Go back to the connection.",
        )),
    }
}

/// Link sessions: the form that creates one, and the latest ones.
pub async fn link_sessions(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Response, PageError> {
    render_link_sessions(&state, &operator, None, &LinkSessionInput::default()).await
}

/// What the link session form keeps after an error.
#[derive(Debug, Default, Serialize)]
struct LinkSessionInput {
    customer_id: String,
    systems: Vec<String>,
    redirect_uri: String,
    state: String,
    expires_hours: String,
}

async fn render_link_sessions(
    state: &AppState,
    operator: &Operator,
    error: Option<&str>,
    input: &LinkSessionInput,
) -> Result<Response, PageError> {
    let systems: Vec<_> = state
        .engine
        .registry()
        .iter()
        .map(|connector| connector.system().clone())
        .collect();
    let sessions = state.engine.store().link_sessions(50).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    state.web.page(
        status,
        "link_sessions.html",
        minijinja::context! {
            title => "Link sessions",
            nav => "link",
            script => "dashboard.js",
            csrf => operator.csrf,
            systems,
            sessions,
            error,
            input,
        },
    )
}

/// Creates a link session from the form and shows its URL, this once.
pub async fn create_link_session(
    State(state): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    };
    operator.check(&state, &field("csrf"))?;
    let input = LinkSessionInput {
        customer_id: field("customer_id"),
        systems: fields
            .iter()
            .filter(|(key, _)| key == "systems")
            .map(|(_, value)| value.clone())
            .collect(),
        redirect_uri: field("redirect_uri"),
        state: field("state"),
        expires_hours: field("expires_hours"),
    };
    let expires_in_seconds = match input.expires_hours.as_str() {
        "" => None,
        hours => match hours.parse::<u32>() {
            Ok(hours) => Some(hours.saturating_mul(3600)),
            Err(_) => {
                let error = "The lifetime must be a whole number of hours.";
                return render_link_sessions(&state, &operator, Some(error), &input).await;
            }
        },
    };
    let request = CreateLinkSession {
        customer_id: input.customer_id.clone(),
        systems: (!input.systems.is_empty()).then(|| input.systems.clone()),
        redirect_uri: input.redirect_uri.clone(),
        state: Some(input.state.clone()).filter(|value| !value.is_empty()),
        expires_in_seconds,
    };
    let created = match create_session(&state, &public_base_url(&headers), request).await {
        Ok(created) => created,
        Err(err) if err.status.is_client_error() => {
            return render_link_sessions(&state, &operator, Some(&err.detail), &input).await;
        }
        Err(err) => return Err(err.into()),
    };
    state.web.page(
        StatusCode::CREATED,
        "secret.html",
        minijinja::context! {
            title => "Link session created",
            nav => "link",
            script => "dashboard.js",
            csrf => operator.csrf,
            heading => format!("Link for {}", created.link_session.customer_id),
            explanation => "Send this link to the customer. It works once, until it expires, \
                and is shown only this once.",
            label => "Link URL",
            secret => created.url,
            back => "/dashboard/link-sessions",
            back_label => "Back to link sessions",
        },
    )
}

/// The credit pool and its ledger.
pub async fn credits(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Response, PageError> {
    let credits = state
        .engine
        .store()
        .credits(state.engine.config().credit_pool)
        .await?;
    state.web.page(
        StatusCode::OK,
        "credits.html",
        minijinja::context! {
            title => "Credits",
            nav => "credits",
            csrf => operator.csrf,
            credits,
        },
    )
}

/// Webhook endpoints with their latest deliveries.
pub async fn webhooks(
    State(state): State<AppState>,
    operator: Operator,
    Query(done): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let endpoints = state
        .webhooks
        .endpoints()
        .await
        .map_err(PageError::internal)?;
    let mut listed = Vec::new();
    for endpoint in endpoints {
        let deliveries = state
            .webhooks
            .deliveries(&endpoint.id)
            .await
            .map_err(PageError::internal)?;
        let deliveries: Vec<_> = deliveries
            .into_iter()
            .take(20)
            .map(|delivery| {
                let retry = delivery.status != DeliveryStatus::Succeeded;
                let last_error = delivery
                    .attempts
                    .last()
                    .and_then(|attempt| attempt.error.clone());
                json!({
                    "delivery": delivery,
                    "retry": retry,
                    "last_error": last_error,
                    "attempt_count": delivery.attempts.len(),
                })
            })
            .collect();
        listed.push(json!({ "endpoint": endpoint, "deliveries": deliveries }));
    }
    state.web.page(
        StatusCode::OK,
        "webhooks.html",
        minijinja::context! {
            title => "Webhooks",
            nav => "webhooks",
            csrf => operator.csrf,
            endpoints => listed,
            retried => done.get("retried"),
        },
    )
}

/// Queues a webhook delivery again.
pub async fn retry_delivery(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    operator.check(&state, &form.csrf)?;
    state
        .webhooks
        .retry_delivery(&id)
        .await
        .map_err(|err| PageError::from(crate::problem::ApiError::from(err)))?;
    Ok(Redirect::to(&format!("/dashboard/webhooks?retried={id}")).into_response())
}
