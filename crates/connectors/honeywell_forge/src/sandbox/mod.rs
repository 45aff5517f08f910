//! A gateway like the one in front of Honeywell Forge's enterprise APIs, serving the JSON
//! shape of the connector's default mapping: an OAuth 2.0 client-credentials token endpoint,
//! and four collections (sites, assets, alarms and events, production figures) paged by a
//! continuation token and filtered by `updatedSince`. Forge's real schemas are not public; this
//! shape is Millrace's assumption, and the connector's mapping adapts it to a real gateway.
//!
//! The control API under `/_sandbox/` writes and deletes records with chosen change times
//! and switches faults (revoked credentials, expired tokens, a skewed clock, unreadable
//! records).

mod data;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use chrono_tz::Tz;
use millrace_connector::{RunningSandbox, SandboxOptions};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

/// The sandbox gateway's OAuth client id.
pub const CLIENT_ID: &str = "millrace-forge-sandbox";
/// Its client secret.
pub const CLIENT_SECRET: &str = "forge-sandbox-secret";
/// The collections, by the last segment of their path.
pub const COLLECTIONS: [&str; 4] = ["sites", "assets", "alarms-events", "production"];
const PREFIX: &str = "/sine/v1";

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {address}: {message}")]
    Bind { address: String, message: String },
    #[error("unknown time zone {0}")]
    TimeZone(String),
    #[error("cannot load the data sets: {0}")]
    Data(String),
}

#[derive(Default)]
struct Faults {
    reject_auth: bool,
    clock_offset_seconds: i64,
    corrupt: HashSet<(String, String)>,
}

pub(crate) struct Sandbox {
    zone: Tz,
    /// Collection → id → record (with `id`, `createdAt`, `updatedAt`).
    collections: Mutex<BTreeMap<String, BTreeMap<String, Value>>>,
    tokens: Mutex<HashSet<String>>,
    faults: Mutex<Faults>,
    logins: Mutex<u64>,
    next_id: Mutex<u64>,
}

type Shared = Arc<Sandbox>;

impl Sandbox {
    fn now(&self) -> DateTime<Utc> {
        let offset = self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clock_offset_seconds;
        Utc::now() + ChronoDuration::seconds(offset)
    }

    pub(crate) fn new_id(&self, collection: &str) -> String {
        let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        let kind = match collection {
            "sites" => "site",
            "assets" => "asset",
            "alarms-events" => "evt",
            _ => "prod",
        };
        format!("{kind}-{:08}", *next)
    }

    pub(crate) fn insert(&self, collection: &str, record: Value) {
        let id = record["id"].as_str().unwrap_or_default().to_owned();
        self.collections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(collection.to_owned())
            .or_default()
            .insert(id, record);
    }
}

/// Formats a time as the gateway writes it: RFC 3339 UTC with milliseconds.
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Starts a sandbox with the options' data, listening on `options.listen`.
pub async fn start(options: SandboxOptions) -> Result<RunningSandbox, SandboxError> {
    let zone_name = options
        .time_zone
        .clone()
        .unwrap_or_else(|| "UTC".to_owned());
    let zone: Tz = zone_name
        .parse()
        .map_err(|_| SandboxError::TimeZone(zone_name.clone()))?;
    let sandbox = Arc::new(Sandbox {
        zone,
        collections: Mutex::new(
            COLLECTIONS
                .iter()
                .map(|name| ((*name).to_owned(), BTreeMap::new()))
                .collect(),
        ),
        tokens: Mutex::new(HashSet::new()),
        faults: Mutex::new(Faults::default()),
        logins: Mutex::new(0),
        next_id: Mutex::new(0),
    });
    if !options.empty {
        let dir = data::find_data_dir(options.data_dir.as_deref()).map_err(SandboxError::Data)?;
        let seeded = sandbox.clone();
        tokio::task::spawn_blocking(move || data::load(&seeded, &dir))
            .await
            .map_err(|err| SandboxError::Data(err.to_string()))?
            .map_err(SandboxError::Data)?;
    }
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .map_err(|err| SandboxError::Bind {
            address: options.listen.clone(),
            message: err.to_string(),
        })?;
    let address = listener.local_addr().map_err(|err| SandboxError::Bind {
        address: options.listen.clone(),
        message: err.to_string(),
    })?;
    let base_url = format!("http://{address}");
    let shutdown = CancellationToken::new();
    let stopped = shutdown.clone();
    let app = router(sandbox);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "forge sandbox stopped with an error");
        }
    });
    tracing::info!(%base_url, "forge gateway sandbox listening");
    Ok(RunningSandbox {
        system: crate::SYSTEM_ID.to_owned(),
        base_url: base_url.clone(),
        credentials: json!({
            "base_url": base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }),
        task,
        shutdown,
    })
}

fn router(sandbox: Shared) -> Router {
    let control = Router::new()
        .route("/records/{collection}", post(create).get(list_truth))
        .route("/records/{collection}/{id}", patch(update).delete(remove))
        .route("/faults", post(faults))
        .route("/stats", get(stats));
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/sine/v1/{collection}", get(list))
        .nest("/_sandbox", control)
        .layer(axum::middleware::from_fn_with_state(
            sandbox.clone(),
            stamp_date,
        ))
        .with_state(sandbox)
}

async fn stamp_date(
    State(sandbox): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let date = sandbox
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(value) = HeaderValue::from_str(&date) {
        response
            .headers_mut()
            .insert(axum::http::header::DATE, value);
    }
    response
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(State(sandbox): State<Shared>, Form(form): Form<TokenForm>) -> Response {
    if form.grant_type.as_deref() != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let revoked = sandbox
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reject_auth;
    let known = form.client_id.as_deref() == Some(CLIENT_ID)
        && form.client_secret.as_deref() == Some(CLIENT_SECRET);
    if revoked || !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "client authentication failed"})),
        )
            .into_response();
    }
    let token = format!("fg.{:032x}", rand::random::<u128>());
    sandbox
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone());
    *sandbox.logins.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    #[serde(rename = "updatedSince")]
    updated_since: Option<String>,
    #[serde(rename = "continuationToken")]
    continuation: Option<String>,
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

/// Lists a collection in `(updatedAt, id)` order. The continuation is that pair of the last
/// record sent, so records sharing one time are never skipped across pages.
async fn list(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Path(collection): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let valid = bearer.is_some_and(|token| {
        sandbox
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(token)
    });
    if !valid
        || sandbox
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reject_auth
    {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": "the access token is invalid or expired"})),
        )
            .into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return response;
    }
    let since = match params.updated_since.as_deref() {
        None => None,
        Some(text) => match millrace_connector::time::parse_offset_time(text) {
            Some(at) => Some(at),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "updatedSince must be an RFC 3339 time",
                )
            }
        },
    };
    let after = match params.continuation.as_deref() {
        None => None,
        Some(token) => match token.split_once('~').and_then(|(at, id)| {
            millrace_connector::time::parse_offset_time(at).map(|at| (at, id.to_owned()))
        }) {
            Some(after) => Some(after),
            None => return problem(StatusCode::BAD_REQUEST, "continuationToken is not valid"),
        },
    };
    let page_size = params.page_size.unwrap_or(100).clamp(1, 1000);
    let corrupt = sandbox
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .corrupt
        .clone();
    let collections = sandbox
        .collections
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some(records) = collections.get(&collection) else {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no collection {PREFIX}/{collection}"),
        );
    };
    let key = |record: &Value| {
        let at = record["updatedAt"]
            .as_str()
            .and_then(millrace_connector::time::parse_offset_time)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        (at, record["id"].as_str().unwrap_or_default().to_owned())
    };
    let mut rows: Vec<&Value> = records
        .values()
        .filter(|record| since.is_none_or(|since| key(record).0 >= since))
        .filter(|record| after.as_ref().is_none_or(|after| key(record) > *after))
        .collect();
    rows.sort_by_key(|record| key(record));
    let more = rows.len() > page_size;
    rows.truncate(page_size);
    let continuation = if more {
        rows.last().map(|last| {
            let (at, id) = key(last);
            format!("{}~{id}", stamp(at))
        })
    } else {
        None
    };
    let data: Vec<Value> = rows
        .into_iter()
        .map(|record| {
            let id = record["id"].as_str().unwrap_or_default().to_owned();
            let mut record = record.clone();
            if corrupt.contains(&(collection.clone(), id)) {
                record["updatedAt"] = json!("not a time");
            }
            record
        })
        .collect();
    Json(json!({"data": data, "continuationToken": continuation})).into_response()
}

/// A change time given to the control API: absent or null is the gateway's clock, an
/// RFC 3339 instant is kept, a time without an offset is read in the sandbox's zone.
fn change_time(sandbox: &Sandbox, value: Option<&Value>) -> Result<DateTime<Utc>, String> {
    match value {
        None | Some(Value::Null) => Ok(sandbox.now()),
        Some(Value::String(text)) => millrace_connector::time::parse_time_in(text, &sandbox.zone)
            .ok_or_else(|| format!("`{text}` is not a time")),
        Some(other) => Err(format!("{other} is not a time")),
    }
}

async fn create(
    State(sandbox): State<Shared>,
    Path(collection): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    if !COLLECTIONS.contains(&collection.as_str()) {
        return problem(StatusCode::NOT_FOUND, "no such collection");
    }
    let changed = match change_time(&sandbox, body.get("updatedAt")) {
        Ok(at) => at,
        Err(message) => return problem(StatusCode::BAD_REQUEST, &message),
    };
    let id = sandbox.new_id(&collection);
    let mut record = body;
    record.insert("id".into(), json!(id));
    record.insert("updatedAt".into(), json!(stamp(changed)));
    record.entry("createdAt").or_insert(json!(stamp(changed)));
    sandbox.insert(&collection, Value::Object(record));
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn update(
    State(sandbox): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    let changed = match change_time(&sandbox, body.get("updatedAt")) {
        Ok(at) => at,
        Err(message) => return problem(StatusCode::BAD_REQUEST, &message),
    };
    let mut collections = sandbox
        .collections
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some(record) = collections
        .get_mut(&collection)
        .and_then(|records| records.get_mut(&id))
        .and_then(Value::as_object_mut)
    else {
        return problem(StatusCode::NOT_FOUND, "no such record");
    };
    record.extend(body);
    record.insert("updatedAt".into(), json!(stamp(changed)));
    Json(json!({"id": id})).into_response()
}

async fn remove(
    State(sandbox): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> Response {
    let removed = sandbox
        .collections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&collection)
        .and_then(|records| records.remove(&id));
    match removed {
        Some(_) => Json(json!({"id": id})).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such record"),
    }
}

async fn list_truth(State(sandbox): State<Shared>, Path(collection): Path<String>) -> Response {
    let collections = sandbox
        .collections
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match collections.get(&collection) {
        Some(records) => Json(records.values().cloned().collect::<Vec<_>>()).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such collection"),
    }
}

#[derive(Deserialize)]
struct FaultSwitches {
    reject_auth: Option<bool>,
    expire_sessions: Option<bool>,
    clock_offset_seconds: Option<i64>,
    corrupt: Option<Vec<(String, String)>>,
}

async fn faults(State(sandbox): State<Shared>, Json(body): Json<FaultSwitches>) -> Response {
    if body.expire_sessions == Some(true) {
        sandbox
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
    let mut faults = sandbox.faults.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(reject) = body.reject_auth {
        faults.reject_auth = reject;
    }
    if let Some(offset) = body.clock_offset_seconds {
        faults.clock_offset_seconds = offset;
    }
    if let Some(corrupt) = body.corrupt {
        faults.corrupt = corrupt.into_iter().collect();
    }
    Json(json!({"ok": true})).into_response()
}

async fn stats(State(sandbox): State<Shared>) -> Response {
    let logins = *sandbox.logins.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({"logins": logins})).into_response()
}
