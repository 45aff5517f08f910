//! A Maximo-like HTTP server: the object structures the connector reads, served from the
//! public data sets with Maximo's paging, filtering, time format, errors and limits, plus a
//! control API under `/_sandbox/` for tests and demos.
//!
//! All state sits in memory behind locks: a table per structure, the open stable-paging
//! snapshots (lists of record handles, never copies of records), the injected faults and the
//! request counters.

mod control;
mod data;
mod derive;
mod query;
mod synthetic;
mod table;
pub mod where_clause;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use chrono_tz::Tz;
use millrace_connector::{RunningSandbox, SandboxOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use self::query::{OrderTerm, Select};
use self::table::{Row, RowId, Table};

/// The user the sandbox accepts through `maxauth`, with [`SANDBOX_PASSWORD`].
pub const SANDBOX_USER: &str = "maxadmin";
/// The password of [`SANDBOX_USER`].
pub const SANDBOX_PASSWORD: &str = "sandbox-maxadmin";
/// The server zone when the options name none.
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";
/// The largest page served, whatever `oslc.pageSize` asks ("limit paging").
const MAX_PAGE_SIZE: usize = 5000;
/// Stable-paging snapshots kept at once; the oldest is dropped beyond this.
const MAX_SNAPSHOTS: usize = 64;

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Data(#[from] data::LoadError),
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
    #[error("cannot listen on {address}: {message}")]
    Bind { address: String, message: String },
}

/// Loads the data and starts serving on `options.listen`.
pub async fn start(options: SandboxOptions) -> Result<RunningSandbox, SandboxError> {
    let zone_name = options
        .time_zone
        .clone()
        .unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned());
    let zone: Tz = zone_name
        .parse()
        .map_err(|_| SandboxError::TimeZone(zone_name.clone()))?;
    let now = Utc::now();

    let (tables, next_rowstamp) = match options.synthetic_work_orders {
        Some(count) => {
            let synthetic = synthetic::SyntheticWorkOrders::new(count, options.seed, now);
            let next = synthetic.next_rowstamp();
            let mut tables = empty_tables();
            tables.insert("mxapiwodetail", Table::Synthetic(synthetic));
            (tables, next)
        }
        None => {
            let dir = data::find_data_dir(options.data_dir.as_deref())?;
            let seed = options.seed;
            let records =
                tokio::task::spawn_blocking(move || data::load(&dir, &data::Context { seed, now }))
                    .await
                    .map_err(|err| data::LoadError::Read {
                        path: "(loader)".into(),
                        message: err.to_string(),
                    })??;
            build_tables(records)
        }
    };

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
    let base_url = format!("http://{address}/maximo");
    let api_key = format!("sbx-{:016x}", derive::mix(options.seed, 0x4d41_5849_4d4f));

    let state = Arc::new(Sandbox {
        base_url: base_url.clone(),
        zone,
        api_key: api_key.clone(),
        data: RwLock::new(Data {
            tables,
            next_rowstamp,
        }),
        snapshots: Mutex::new(Snapshots::default()),
        faults: Mutex::new(Faults::default()),
        stats: Mutex::new(Stats::default()),
        next_generated: AtomicU64::new(900_001),
    });
    let shutdown = CancellationToken::new();
    let stopped = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "maximo sandbox stopped with an error");
        }
    });
    tracing::info!(%base_url, time_zone = %zone_name, "maximo sandbox listening");

    Ok(RunningSandbox {
        system: crate::SYSTEM_ID.to_owned(),
        base_url: base_url.clone(),
        credentials: json!({ "base_url": base_url, "api_key": api_key }),
        task,
        shutdown,
    })
}

fn empty_tables() -> BTreeMap<&'static str, Table> {
    table::STRUCTURES
        .iter()
        .map(|spec| (spec.name, Table::Stored(BTreeMap::new())))
        .collect()
}

/// Stores the loaded records, giving rowstamps in change order so they grow with changes.
fn build_tables(records: data::Records) -> (BTreeMap<&'static str, Table>, u64) {
    let mut tables = empty_tables();
    let mut all = Vec::new();
    for (structure, rows) in records.by_structure {
        let Some(spec) = table::structure(structure) else {
            continue;
        };
        for attrs in rows {
            let change = attrs
                .get(spec.change_attr)
                .and_then(Value::as_str)
                .map(str::to_owned);
            all.push((change, spec, attrs));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rowstamp = 0;
    for (_, spec, attrs) in all {
        let Some(key) = spec.key_of(&attrs) else {
            tracing::warn!(
                structure = spec.name,
                "skipping a derived record without a key"
            );
            continue;
        };
        rowstamp += 1;
        if let Some(table) = tables.get_mut(spec.name) {
            table.put(&key, Row { attrs, rowstamp });
        }
    }
    (tables, rowstamp + 1)
}

/// The shared state of one running sandbox.
pub(crate) struct Sandbox {
    base_url: String,
    zone: Tz,
    api_key: String,
    data: RwLock<Data>,
    snapshots: Mutex<Snapshots>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    /// Numbers for keys the control API generates.
    next_generated: AtomicU64,
}

pub(crate) struct Data {
    tables: BTreeMap<&'static str, Table>,
    next_rowstamp: u64,
}

#[derive(Default)]
struct Snapshots {
    next_id: u64,
    open: BTreeMap<u64, Arc<Vec<RowId>>>,
}

#[derive(Default, Debug)]
pub(crate) struct Faults {
    /// The next this-many API requests answer 429.
    rate_limited_requests: u32,
    retry_after_seconds: u64,
    /// Every API request answers 401, as when credentials were revoked.
    reject_auth: bool,
}

#[derive(Default, Debug)]
pub(crate) struct Stats {
    requests: u64,
    by_structure: BTreeMap<String, u64>,
    rate_limited: u64,
    unauthorized: u64,
    bad_requests: u64,
}

fn router(state: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/maximo/oslc/os/{structure}", get(collection_oslc))
        .route("/maximo/api/os/{structure}", get(collection_api))
        .route("/_sandbox/os/{structure}", post(control::create))
        .route(
            "/_sandbox/os/{structure}/{*key}",
            get(control::fetch)
                .patch(control::change)
                .delete(control::delete),
        )
        .route("/_sandbox/faults", post(control::faults))
        .route("/_sandbox/stats", get(control::stats))
        .with_state(state)
}

/// Maximo's error document.
pub(crate) fn maximo_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "Error": {
            "reasonCode": reason,
            "message": format!("{reason} - {message}"),
            "statusCode": status.as_u16().to_string(),
        }
    });
    (status, Json(body)).into_response()
}

/// Parses a raw query string the way a servlet container does (`+` is a space).
fn query_params(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

impl Sandbox {
    /// Answers 401 or 429 when the request is refused before it is read.
    fn gate(&self, headers: &HeaderMap, params: &HashMap<String, String>) -> Option<Response> {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.requests += 1;
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());

        if faults.rate_limited_requests > 0 {
            faults.rate_limited_requests -= 1;
            stats.rate_limited += 1;
            let mut response = maximo_error(
                StatusCode::TOO_MANY_REQUESTS,
                "BMXAA9999E",
                "Too many requests. Try again later.",
            );
            let retry_after = faults.retry_after_seconds.to_string();
            if let Ok(value) = retry_after.parse() {
                response.headers_mut().insert("retry-after", value);
            }
            return Some(response);
        }

        if faults.reject_auth || !self.authenticated(headers, params) {
            stats.unauthorized += 1;
            return Some(maximo_error(
                StatusCode::UNAUTHORIZED,
                "BMXAA7901E",
                "You cannot log in at this time. Contact the system administrator.",
            ));
        }
        None
    }

    fn authenticated(&self, headers: &HeaderMap, params: &HashMap<String, String>) -> bool {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(key) = header("apikey").or(params.get("apikey").map(String::as_str)) {
            return key == self.api_key;
        }
        if let Some(maxauth) = header("maxauth") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(maxauth.trim());
            let expected = format!("{SANDBOX_USER}:{SANDBOX_PASSWORD}");
            return decoded.is_ok_and(|bytes| bytes == expected.as_bytes());
        }
        false
    }

    fn bad_request(&self, message: &str) -> Response {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bad_requests += 1;
        maximo_error(StatusCode::BAD_REQUEST, "BMXAA0024E", message)
    }

    fn read_data(&self) -> std::sync::RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_data(&self) -> std::sync::RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The parameters of one collection query.
struct CollectionQuery {
    select: Select,
    filter: Option<where_clause::WhereClause>,
    order: Vec<OrderTerm>,
    page_size: usize,
    page: usize,
    lean: bool,
    stable: bool,
    snapshot: Option<u64>,
    count: bool,
}

impl CollectionQuery {
    fn parse(params: &HashMap<String, String>) -> Result<Self, String> {
        let flag = |name: &str| {
            params
                .get(name)
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        };
        let select = match params.get("oslc.select") {
            Some(text) => query::parse_select(text)?,
            None => Select::HrefOnly,
        };
        let filter = match params
            .get("oslc.where")
            .filter(|text| !text.trim().is_empty())
        {
            Some(text) => Some(
                where_clause::parse(text).map_err(|err| format!("invalid oslc.where: {err}"))?,
            ),
            None => None,
        };
        let order = match params.get("oslc.orderBy") {
            Some(text) => query::parse_order(text)?,
            None => Vec::new(),
        };
        let number = |name: &str| -> Result<Option<usize>, String> {
            params
                .get(name)
                .map(|text| {
                    text.parse::<usize>()
                        .map_err(|_| format!("{name} must be a positive number"))
                })
                .transpose()
        };
        let page_size = number("oslc.pageSize")?
            .unwrap_or(MAX_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        let page = number("pageno")?.unwrap_or(1).max(1);
        let snapshot = params
            .get("_sp")
            .map(|text| text.parse::<u64>())
            .transpose()
            .map_err(|_| "bad _sp")?;
        Ok(CollectionQuery {
            select,
            filter,
            order,
            page_size,
            page,
            lean: flag("lean"),
            stable: flag("stablePaging"),
            snapshot,
            count: flag("collectioncount"),
        })
    }
}

async fn collection_oslc(
    State(sandbox): State<Arc<Sandbox>>,
    Path(structure): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    collection(&sandbox, "oslc", &structure, raw.as_deref(), &headers)
}

async fn collection_api(
    State(sandbox): State<Arc<Sandbox>>,
    Path(structure): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    collection(&sandbox, "api", &structure, raw.as_deref(), &headers)
}

/// Answers `GET .../os/<structure>` under the `oslc` or `api` route.
fn collection(
    sandbox: &Sandbox,
    prefix: &str,
    structure: &str,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let params = query_params(raw);
    if let Some(refused) = sandbox.gate(headers, &params) {
        return refused;
    }
    let Some(spec) = table::structure(structure) else {
        return maximo_error(
            StatusCode::NOT_FOUND,
            "BMXAA8727E",
            &format!("The object structure {structure} was not found."),
        );
    };
    *sandbox
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .by_structure
        .entry(spec.name.to_owned())
        .or_default() += 1;
    let query = match CollectionQuery::parse(&params) {
        Ok(query) => query,
        Err(message) => return sandbox.bad_request(&message),
    };

    let data = sandbox.read_data();
    let Some(table) = data.tables.get(spec.name) else {
        return maximo_error(
            StatusCode::NOT_FOUND,
            "BMXAA8727E",
            "no such object structure",
        );
    };

    let (ids, snapshot) = match (query.stable, query.snapshot) {
        (true, Some(id)) => {
            let snapshots = sandbox.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            match snapshots.open.get(&id) {
                Some(ids) => (ids.clone(), Some(id)),
                None => {
                    return sandbox
                        .bad_request("the stable paging set has expired; start again at page 1")
                }
            }
        }
        (true, None) => {
            let ids = Arc::new(query::run(
                table,
                query.filter.as_ref(),
                &query.order,
                sandbox.zone,
            ));
            let mut snapshots = sandbox.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            snapshots.next_id += 1;
            let id = snapshots.next_id;
            snapshots.open.insert(id, ids.clone());
            while snapshots.open.len() > MAX_SNAPSHOTS {
                snapshots.open.pop_first();
            }
            (ids, Some(id))
        }
        (false, _) => (
            Arc::new(query::run(
                table,
                query.filter.as_ref(),
                &query.order,
                sandbox.zone,
            )),
            None,
        ),
    };

    let collection_url = format!("{}/{prefix}/os/{}", sandbox.base_url, spec.name);
    let start = (query.page - 1)
        .saturating_mul(query.page_size)
        .min(ids.len());
    let end = (start + query.page_size).min(ids.len());
    let members: Vec<Value> = ids[start..end]
        .iter()
        .filter_map(|id| {
            let row = table.row(id)?;
            let key = spec.key_of(&row.attrs)?;
            let href = query::member_href(&collection_url, &key);
            Some(query::render(
                &row,
                href,
                &query.select,
                query.lean,
                sandbox.zone,
            ))
        })
        .collect();

    let has_next = end < ids.len();
    if !has_next {
        if let Some(id) = snapshot {
            sandbox
                .snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .open
                .remove(&id);
        }
    }
    let page_href = |page: usize| {
        let mut params: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "pageno" | "_sp" | "apikey"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("pageno".to_owned(), page.to_string()));
        if let Some(id) = snapshot {
            params.push(("_sp".to_owned(), id.to_string()));
        }
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("{collection_url}?{query}")
    };

    let total_pages = ids.len().div_ceil(query.page_size).max(1);
    let mut info = serde_json::Map::new();
    info.insert("href".into(), json!(page_href(query.page)));
    info.insert("pagenum".into(), json!(query.page));
    if query.count {
        info.insert("totalCount".into(), json!(ids.len()));
        info.insert("totalPages".into(), json!(total_pages));
    }
    if has_next {
        info.insert(
            "nextPage".into(),
            json!({ "href": page_href(query.page + 1) }),
        );
    }
    if query.page > 1 && !query.stable {
        info.insert(
            "previousPage".into(),
            json!({ "href": page_href(query.page - 1) }),
        );
    }
    drop(data);

    let body = if query.lean {
        json!({ "member": members, "href": collection_url, "responseInfo": info })
    } else {
        let info: serde_json::Map<String, Value> = info
            .into_iter()
            .map(|(k, v)| (format!("oslc:{k}"), v))
            .collect();
        json!({ "rdfs:member": members, "rdf:about": collection_url, "oslc:responseInfo": info })
    };
    Json(body).into_response()
}
