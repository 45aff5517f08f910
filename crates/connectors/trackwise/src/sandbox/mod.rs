//! A Salesforce-like server holding a TrackWise Digital org's quality records, to test the
//! connector against: the OAuth 2.0 token endpoint (client credentials and refresh token),
//! SOQL `query` and `queryAll` with server-side cursors paged by `nextRecordsUrl`, the
//! `sobjects/<type>/deleted` resource over a delete log, Salesforce's error bodies, and the
//! daily API request limit reported in `Sforce-Limit-Info`.
//!
//! The control API under `/_sandbox/` writes records as users would (with chosen change
//! times), deletes and purges them, and switches faults (revoked credentials, ended sessions,
//! a skewed clock, unreadable records, expired query locators).

mod control;
mod data;
pub mod soql;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, NaiveDate, Utc};
use chrono_tz::Tz;
use millrace_connector::{RunningSandbox, SandboxOptions};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Mapping;
use soql::Literal;

/// The consumer key of the sandbox's connected app.
pub const CLIENT_ID: &str = "3MVG9sandbox.millrace.trackwise";
/// Its consumer secret.
pub const CLIENT_SECRET: &str = "sandbox-consumer-secret";
/// A refresh token of the sandbox's integration user.
pub const REFRESH_TOKEN: &str = "5Aep861sandbox.refresh.token";
/// The API version the sandbox serves.
pub const API_VERSION: &str = "v59.0";
/// The daily API request limit the sandbox starts with.
pub const DEFAULT_DAILY_LIMIT: u64 = 100_000;
/// How long the delete log keeps entries.
const DELETE_LOG_DAYS: i64 = 15;
/// Query locators kept open; older ones expire, as Salesforce limits open cursors.
const OPEN_LOCATORS: usize = 50;

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

/// A field's type, which decides how SOQL compares it and how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Id,
    Text,
    DateTime,
    Date,
    Boolean,
    Number,
}

/// One record of an object.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    id: String,
    created: DateTime<Utc>,
    modstamp: DateTime<Utc>,
    /// Set when deleted: the record sits in the recycle bin until purged.
    deleted: Option<DateTime<Utc>>,
    values: Map<String, Value>,
}

/// One object: its fields and its records by id.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    prefix: String,
    fields: BTreeMap<String, FieldType>,
    rows: BTreeMap<String, Row>,
    /// Deleted ids and when, kept for [`DELETE_LOG_DAYS`] or until purged.
    delete_log: Vec<(String, DateTime<Utc>)>,
}

/// A running query's snapshot.
struct Locator {
    records: Vec<Value>,
}

#[derive(Default)]
pub(crate) struct Faults {
    reject_auth: bool,
    clock_offset_seconds: i64,
    corrupt: HashSet<(String, String)>,
    /// The delete log was purged up to here (`earliestDateAvailable`).
    delete_log_purged_before: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub(crate) struct Stats {
    logins: u64,
    api_requests: u64,
    daily_limit: u64,
}

/// The sandbox's state.
pub(crate) struct Sandbox {
    zone: Tz,
    tables: Mutex<BTreeMap<String, Table>>,
    sessions: Mutex<HashSet<String>>,
    locators: Mutex<(u64, HashMap<String, Locator>, VecDeque<String>)>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    next_id: Mutex<u64>,
}

type Shared = Arc<Sandbox>;

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
        tables: Mutex::new(empty_tables(&Mapping::default())),
        sessions: Mutex::new(HashSet::new()),
        locators: Mutex::new((0, HashMap::new(), VecDeque::new())),
        faults: Mutex::new(Faults::default()),
        stats: Mutex::new(Stats {
            daily_limit: DEFAULT_DAILY_LIMIT,
            ..Stats::default()
        }),
        next_id: Mutex::new(1),
    });
    if !options.empty {
        let dir = data::find_data_dir(options.data_dir.as_deref()).map_err(SandboxError::Data)?;
        let seed = options.seed;
        let loaded = tokio::task::spawn_blocking(move || data::load(&dir, seed))
            .await
            .map_err(|err| SandboxError::Data(err.to_string()))?
            .map_err(SandboxError::Data)?;
        data::insert(&sandbox, loaded);
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
            tracing::error!(error = %err, "trackwise sandbox stopped with an error");
        }
    });
    tracing::info!(%base_url, time_zone = %zone_name, "trackwise sandbox listening");
    Ok(RunningSandbox {
        system: crate::SYSTEM_ID.to_owned(),
        base_url: base_url.clone(),
        credentials: json!({
            "instance_url": base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }),
        task,
        shutdown,
    })
}

/// The objects of the default mapping, with no records.
fn empty_tables(mapping: &Mapping) -> BTreeMap<String, Table> {
    let system = [
        ("Id", FieldType::Id),
        ("Name", FieldType::Text),
        ("CreatedDate", FieldType::DateTime),
        ("LastModifiedDate", FieldType::DateTime),
        ("SystemModstamp", FieldType::DateTime),
        ("IsDeleted", FieldType::Boolean),
    ];
    let table = |prefix: &str, extra: Vec<(String, FieldType)>| Table {
        prefix: prefix.to_owned(),
        fields: system
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), *kind))
            .chain(extra)
            .collect(),
        rows: BTreeMap::new(),
        delete_log: Vec::new(),
    };
    let mut tables = BTreeMap::new();
    let site = &mapping.site;
    let site_fields = [
        (&site.description, FieldType::Text),
        (&site.active, FieldType::Boolean),
        (&site.address, FieldType::Text),
        (&site.time_zone, FieldType::Text),
    ]
    .into_iter()
    .filter_map(|(name, kind)| name.clone().map(|name| (name, kind)))
    .collect();
    tables.insert(site.object.clone(), table("a0S", site_fields));
    for (index, quality) in mapping.quality_events.iter().enumerate() {
        let fields = &quality.fields;
        let typed = [
            (&fields.title, FieldType::Text),
            (&fields.description, FieldType::Text),
            (&fields.status, FieldType::Text),
            (&fields.severity, FieldType::Text),
            (&fields.site, FieldType::Id),
            (&fields.opened_at, FieldType::DateTime),
            (&fields.due_at, FieldType::Date),
            (&fields.closed_at, FieldType::DateTime),
        ]
        .into_iter()
        .filter_map(|(name, kind)| name.clone().map(|name| (name, kind)))
        .collect();
        tables.insert(quality.object.clone(), table(&format!("a1{index}"), typed));
    }
    tables
}

fn router(sandbox: Shared) -> Router {
    let data = Router::new()
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/", get(query))
        .route("/services/data/{version}/queryAll", get(query_all))
        .route("/services/data/{version}/queryAll/", get(query_all))
        .route("/services/data/{version}/query/{locator}", get(more))
        .route("/services/data/{version}/queryAll/{locator}", get(more))
        .route(
            "/services/data/{version}/sobjects/{object}/deleted",
            get(deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted/",
            get(deleted),
        )
        .route("/services/data/{version}/limits", get(limits))
        .route(
            "/services/data/{version}/composite/batch",
            post(composite_batch),
        );
    Router::new()
        .route("/services/oauth2/token", post(token))
        .merge(data)
        .nest("/_sandbox", control::router())
        .layer(axum::middleware::from_fn_with_state(
            sandbox.clone(),
            stamp_date,
        ))
        .with_state(sandbox)
}

impl Sandbox {
    /// The server's clock (skewed when a fault says so), to the second as Salesforce keeps it.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let offset = self.lock_faults().clock_offset_seconds;
        let now = Utc::now() + ChronoDuration::seconds(offset);
        now.duration_trunc(ChronoDuration::seconds(1))
            .unwrap_or(now)
    }

    pub(crate) fn lock_tables(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Table>> {
        self.tables.lock().unwrap_or_else(|err| err.into_inner())
    }

    pub(crate) fn lock_faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|err| err.into_inner())
    }

    pub(crate) fn lock_stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|err| err.into_inner())
    }

    /// A new 18-character record id with the object's key prefix; ids sort in creation order.
    pub(crate) fn new_id(&self, prefix: &str) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut next = self.next_id.lock().unwrap_or_else(|err| err.into_inner());
        let mut n = *next;
        *next += 1;
        let mut digits = [b'0'; 12];
        for slot in digits.iter_mut().rev() {
            *slot = DIGITS[(n % 62) as usize];
            n /= 62;
        }
        format!("{prefix}{}AAA", String::from_utf8_lossy(&digits))
    }
}

/// Writes a datetime as the REST API does: milliseconds and an offset without a colon.
pub fn salesforce_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// An error answer in Salesforce's REST shape.
fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

/// Sets `Date` from the sandbox's own (possibly skewed) clock on every answer.
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
    refresh_token: Option<String>,
}

async fn token(State(sandbox): State<Shared>, Form(form): Form<TokenForm>) -> Response {
    let oauth_error = |code: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    };
    let revoked = sandbox.lock_faults().reject_auth;
    let client_ok = form.client_id.as_deref() == Some(CLIENT_ID);
    let secret_ok = form.client_secret.as_deref() == Some(CLIENT_SECRET);
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            if revoked || !client_ok || !secret_ok {
                return oauth_error("invalid_client", "invalid client credentials");
            }
        }
        Some("refresh_token") => {
            if !client_ok || (form.client_secret.is_some() && !secret_ok) {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            if revoked || form.refresh_token.as_deref() != Some(REFRESH_TOKEN) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    }
    let access_token = format!("00Dsandbox!{:032x}", rand::random::<u128>());
    sandbox
        .sessions
        .lock()
        .unwrap_or_else(|err| err.into_inner())
        .insert(access_token.clone());
    sandbox.lock_stats().logins += 1;
    let issued_at = Utc::now().timestamp_millis().to_string();
    Json(json!({
        "access_token": access_token,
        "instance_url": "",
        "id": "https://login.salesforce.com/id/00Dsandbox/005sandbox",
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": "sandbox",
        "scope": "api"
    }))
    .into_response()
}

/// Checks the bearer token and counts the request against the daily limit; on success
/// returns the `Sforce-Limit-Info` value to send.
fn authorize(sandbox: &Sandbox, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("OAuth "))
        });
    let known = token.is_some_and(|token| {
        sandbox
            .sessions
            .lock()
            .unwrap_or_else(|err| err.into_inner())
            .contains(token)
    });
    if !known || sandbox.lock_faults().reject_auth {
        return Err(Box::new(api_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )));
    }
    let mut stats = sandbox.lock_stats();
    if stats.api_requests >= stats.daily_limit {
        return Err(Box::new(api_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )));
    }
    stats.api_requests += 1;
    Ok(format!(
        "api-usage={}/{}",
        stats.api_requests, stats.daily_limit
    ))
}

fn with_limit_info(limit_info: &str, response: Response) -> Response {
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(limit_info) {
        response.headers_mut().insert("Sforce-Limit-Info", value);
    }
    response
}

#[derive(Deserialize)]
struct QueryParams {
    q: Option<String>,
}

async fn query(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Response {
    run_query(&sandbox, &headers, params.q, false)
}

async fn query_all(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Response {
    run_query(&sandbox, &headers, params.q, true)
}

/// The batch size a request asks for with `Sforce-Query-Options: batchSize=N`. Salesforce
/// treats it as a wish between 200 and 2,000; the sandbox honours smaller sizes too, so that
/// tests can page a handful of records.
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split(',')
                .find_map(|part| part.trim().strip_prefix("batchSize="))
                .and_then(|size| size.trim().parse::<usize>().ok())
        })
        .unwrap_or(2000)
        .clamp(1, 2000)
}

fn run_query(sandbox: &Sandbox, headers: &HeaderMap, q: Option<String>, all: bool) -> Response {
    let limit_info = match authorize(sandbox, headers) {
        Ok(info) => info,
        Err(refused) => return *refused,
    };
    let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
        return with_limit_info(
            &limit_info,
            api_error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "A query string has to be specified",
            ),
        );
    };
    let records = match select(sandbox, &q, all) {
        Ok(records) => records,
        Err((code, message)) => {
            return with_limit_info(
                &limit_info,
                api_error(StatusCode::BAD_REQUEST, code, &message),
            )
        }
    };
    let object = soql::parse(&q)
        .map(|query| query.object)
        .unwrap_or_default();
    with_limit_info(
        &limit_info,
        first_batch(sandbox, records, &object, batch_size(headers)),
    )
}

/// Answers the first batch of a result, keeping the rest behind a query locator.
fn first_batch(sandbox: &Sandbox, records: Vec<Value>, object: &str, batch: usize) -> Response {
    let total = records.len();
    if total <= batch {
        return Json(json!({"totalSize": total, "done": true, "records": records})).into_response();
    }
    let mut locators = sandbox
        .locators
        .lock()
        .unwrap_or_else(|err| err.into_inner());
    locators.0 += 1;
    // Salesforce's locators are opaque; the sandbox's carry the object's name so that a test
    // proxy can aim faults at one object's requests.
    let locator = format!("01g{:09}{object}", locators.0);
    let first: Vec<Value> = records[..batch].to_vec();
    locators.1.insert(locator.clone(), Locator { records });
    locators.2.push_back(locator.clone());
    while locators.2.len() > OPEN_LOCATORS {
        if let Some(oldest) = locators.2.pop_front() {
            locators.1.remove(&oldest);
        }
    }
    Json(json!({
        "totalSize": total,
        "done": false,
        "nextRecordsUrl": format!("/services/data/{API_VERSION}/query/{locator}-{batch}"),
        "records": first,
    }))
    .into_response()
}

async fn more(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Path((_version, locator)): Path<(String, String)>,
) -> Response {
    let limit_info = match authorize(&sandbox, &headers) {
        Ok(info) => info,
        Err(refused) => return *refused,
    };
    let invalid = || {
        with_limit_info(
            &limit_info,
            api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            ),
        )
    };
    let Some((id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let batch = batch_size(&headers);
    let locators = sandbox
        .locators
        .lock()
        .unwrap_or_else(|err| err.into_inner());
    let Some(found) = locators.1.get(id) else {
        return invalid();
    };
    let total = found.records.len();
    let end = (offset + batch).min(total);
    let records: Vec<Value> = found.records.get(offset..end).unwrap_or_default().to_vec();
    let mut body = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        body["nextRecordsUrl"] = json!(format!("/services/data/{API_VERSION}/query/{id}-{end}"));
    }
    with_limit_info(&limit_info, Json(body).into_response())
}

/// Runs a statement over the tables; the error is an error code and message.
fn select(sandbox: &Sandbox, q: &str, all: bool) -> Result<Vec<Value>, (&'static str, String)> {
    let query = soql::parse(q).map_err(|message| ("MALFORMED_QUERY", message))?;
    let corrupt = sandbox.lock_faults().corrupt.clone();
    let tables = sandbox.lock_tables();
    let table = tables.get(&query.object).ok_or_else(|| {
        (
            "INVALID_TYPE",
            format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name.",
                query.object
            ),
        )
    })?;
    let no_column = |field: &str| {
        (
            "INVALID_FIELD",
            format!("No such column '{field}' on entity '{}'.", query.object),
        )
    };
    let field_type = |field: &str| table.fields.get(field).copied();
    for field in query
        .fields
        .iter()
        .chain(query.order.iter().map(|(field, _)| field))
    {
        field_type(field).ok_or_else(|| no_column(field))?;
    }
    if let Some(filter) = &query.filter {
        for (field, literal) in filter.comparisons() {
            let kind = field_type(field).ok_or_else(|| no_column(field))?;
            if !literal_fits(kind, literal) {
                return Err((
                    "INVALID_FIELD",
                    format!(
                        "value of filter criterion for field '{field}' must be of type {} and \
                         should not be enclosed in quotes",
                        type_name(kind)
                    ),
                ));
            }
        }
    }

    let mut rows: Vec<&Row> = table
        .rows
        .values()
        .filter(|row| all || row.deleted.is_none())
        .filter(|row| {
            query
                .filter
                .as_ref()
                .is_none_or(|filter| filter.matches(&|field| value_of(table, row, field)))
        })
        .collect();
    rows.sort_by(|a, b| {
        for (field, ascending) in &query.order {
            let (left, right) = (value_of(table, a, field), value_of(table, b, field));
            // Nulls sort first in ascending order, as Salesforce's default.
            let ordering = match (&left, &right) {
                (Literal::Null, Literal::Null) => std::cmp::Ordering::Equal,
                (Literal::Null, _) => std::cmp::Ordering::Less,
                (_, Literal::Null) => std::cmp::Ordering::Greater,
                _ => left.compare(&right).unwrap_or(std::cmp::Ordering::Equal),
            };
            let ordering = if *ascending {
                ordering
            } else {
                ordering.reverse()
            };
            if ordering != std::cmp::Ordering::Equal {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
    if let Some(limit) = query.limit {
        rows.truncate(limit);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let broken = corrupt.contains(&(query.object.clone(), row.id.clone()));
            render(&query.object, row, &query.fields, broken)
        })
        .collect())
}

fn literal_fits(kind: FieldType, literal: &Literal) -> bool {
    matches!(
        (kind, literal),
        (_, Literal::Null)
            | (FieldType::Id | FieldType::Text, Literal::Text(_))
            | (FieldType::DateTime, Literal::Time(_))
            | (FieldType::Date, Literal::Date(_))
            | (FieldType::Boolean, Literal::Bool(_))
            | (FieldType::Number, Literal::Number(_))
    )
}

fn type_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Id => "id",
        FieldType::Text => "string",
        FieldType::DateTime => "dateTime",
        FieldType::Date => "date",
        FieldType::Boolean => "boolean",
        FieldType::Number => "double",
    }
}

/// A field's typed value in a row.
fn value_of(table: &Table, row: &Row, field: &str) -> Literal {
    match field {
        "Id" => return Literal::Text(row.id.clone()),
        "CreatedDate" => return Literal::Time(row.created),
        "SystemModstamp" | "LastModifiedDate" => return Literal::Time(row.modstamp),
        "IsDeleted" => return Literal::Bool(row.deleted.is_some()),
        _ => {}
    }
    let value = &row.values[field];
    match (table.fields.get(field), value) {
        (_, Value::Null) => Literal::Null,
        (Some(FieldType::DateTime), Value::String(text)) => {
            crate::client::parse_salesforce_time(text).map_or(Literal::Null, Literal::Time)
        }
        (Some(FieldType::Date), Value::String(text)) => {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_or(Literal::Null, Literal::Date)
        }
        (_, Value::Bool(flag)) => Literal::Bool(*flag),
        (_, Value::Number(number)) => number.as_f64().map_or(Literal::Null, Literal::Number),
        (_, Value::String(text)) => Literal::Text(text.clone()),
        _ => Literal::Null,
    }
}

/// A record as the REST API answers it, with the selected fields.
fn render(object: &str, row: &Row, fields: &[String], broken: bool) -> Value {
    let mut record = Map::new();
    record.insert(
        "attributes".into(),
        json!({"type": object, "url": format!("/services/data/{API_VERSION}/sobjects/{object}/{}", row.id)}),
    );
    for field in fields {
        let value = match field.as_str() {
            "Id" => json!(row.id),
            "CreatedDate" => json!(salesforce_time(row.created)),
            "SystemModstamp" if broken => json!("0000-00-00T??"),
            "SystemModstamp" | "LastModifiedDate" => json!(salesforce_time(row.modstamp)),
            "IsDeleted" => json!(row.deleted.is_some()),
            other => row.values.get(other).cloned().unwrap_or(Value::Null),
        };
        record.insert(field.clone(), value);
    }
    Value::Object(record)
}

#[derive(Deserialize)]
struct DeletedParams {
    start: Option<String>,
    end: Option<String>,
}

async fn deleted(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Path((_version, object)): Path<(String, String)>,
    Query(params): Query<DeletedParams>,
) -> Response {
    let limit_info = match authorize(&sandbox, &headers) {
        Ok(info) => info,
        Err(refused) => return *refused,
    };
    let answer = |response: Response| with_limit_info(&limit_info, response);
    // Seconds are ignored: both ends are rounded down to the minute.
    let minute = |text: Option<&String>| {
        text.and_then(|text| crate::client::parse_salesforce_time(text))
            .map(|at| at.duration_trunc(ChronoDuration::minutes(1)).unwrap_or(at))
    };
    let (Some(start), Some(end)) = (minute(params.start.as_ref()), minute(params.end.as_ref()))
    else {
        return answer(api_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "start and end must be dateTime values, e.g. 2024-05-05T00:00:00+00:00",
        ));
    };
    if end <= start {
        return answer(api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "end date must be after start date",
        ));
    }
    let now = sandbox.now();
    let purged_before = sandbox.lock_faults().delete_log_purged_before;
    let window_start = (now - ChronoDuration::days(DELETE_LOG_DAYS))
        .duration_trunc(ChronoDuration::minutes(1))
        .unwrap_or(now);
    let earliest = purged_before.map_or(window_start, |purged| purged.max(window_start));
    if start < earliest {
        return answer(api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "start date cannot be earlier than the earliest date available in the delete log",
        ));
    }
    let tables = sandbox.lock_tables();
    let Some(table) = tables.get(&object) else {
        return answer(api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ));
    };
    let latest = end.min(now);
    let records: Vec<Value> = table
        .delete_log
        .iter()
        .filter(|(_, at)| *at >= start && *at < end && *at <= latest && *at >= earliest)
        .map(|(id, at)| json!({"id": id, "deletedDate": salesforce_time(*at)}))
        .collect();
    answer(
        Json(json!({
            "deletedRecords": records,
            "earliestDateAvailable": salesforce_time(earliest),
            "latestDateCovered": salesforce_time(latest),
        }))
        .into_response(),
    )
}

async fn limits(State(sandbox): State<Shared>, headers: HeaderMap) -> Response {
    let limit_info = match authorize(&sandbox, &headers) {
        Ok(info) => info,
        Err(refused) => return *refused,
    };
    let stats = sandbox.lock_stats();
    let body = json!({"DailyApiRequests": {
        "Max": stats.daily_limit,
        "Remaining": stats.daily_limit.saturating_sub(stats.api_requests)
    }});
    drop(stats);
    with_limit_info(&limit_info, Json(body).into_response())
}

/// The composite batch resource, for the query subrequests a client sends in one call: each
/// answers `{statusCode, result}`, errors as the REST API's error list.
async fn composite_batch(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let limit_info = match authorize(&sandbox, &headers) {
        Ok(info) => info,
        Err(refused) => return *refused,
    };
    let Some(requests) = body["batchRequests"]
        .as_array()
        .filter(|list| list.len() <= 25)
    else {
        return with_limit_info(
            &limit_info,
            api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_BATCH_REQUEST",
                "batchRequests must list from 1 to 25 subrequests",
            ),
        );
    };
    let mut has_errors = false;
    let mut results = Vec::new();
    for request in requests {
        let url = request["url"].as_str().unwrap_or_default();
        let query = url.split_once('?').and_then(|(_, query)| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "q")
                .map(|(_, value)| value.into_owned())
        });
        let is_query = request["method"] == "GET" && url.contains("/query");
        let result = match query.filter(|_| is_query) {
            None => Err((
                "NOT_FOUND",
                "only query subrequests are supported".to_owned(),
            )),
            Some(q) => select(&sandbox, &q, false),
        };
        results.push(match result {
            Ok(records) => json!({"statusCode": 200, "result": {
                "totalSize": records.len(), "done": true, "records": records
            }}),
            Err((code, message)) => {
                has_errors = true;
                json!({"statusCode": 400, "result": [{"errorCode": code, "message": message}]})
            }
        });
    }
    with_limit_info(
        &limit_info,
        Json(json!({"hasErrors": has_errors, "results": results})).into_response(),
    )
}
