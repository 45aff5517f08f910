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
        None if options.empty => (empty_tables(), 1),
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
        sessions: Mutex::new(std::collections::HashSet::new()),
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
        .map(|spec| (spec.name, Table::stored(spec)))
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
    /// Open sessions (`JSESSIONID` values) from `/oslc/login`.
    sessions: Mutex<std::collections::HashSet<String>>,
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
    /// How far the server's clock runs ahead of (positive) or behind real time, in seconds:
    /// change times it stamps and its `Date` header follow it.
    clock_offset_seconds: i64,
    /// Records served corrupted (key attributes replaced by an object), as
    /// `(structure, key)`, to test that one bad record does not block the rest.
    corrupt: std::collections::HashSet<(String, String)>,
}

#[derive(Default, Debug)]
pub(crate) struct Stats {
    requests: u64,
    by_structure: BTreeMap<String, u64>,
    rate_limited: u64,
    unauthorized: u64,
    bad_requests: u64,
    /// Sessions opened through `/oslc/login`.
    logins: u64,
}

fn router(state: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/maximo/oslc/os/{structure}", get(collection_oslc))
        .route("/maximo/api/os/{structure}", get(collection_api))
        .route("/maximo/oslc/login", get(login).post(login))
        .route("/_sandbox/os/{structure}", post(control::create))
        .route(
            "/_sandbox/os/{structure}/{*key}",
            get(control::fetch)
                .patch(control::change)
                .delete(control::delete),
        )
        .route("/_sandbox/faults", post(control::faults))
        .route("/_sandbox/stats", get(control::stats))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            skew_date_header,
        ))
        .with_state(state)
}

/// Sets the `Date` header from the server's clock, which a clock-offset fault may skew.
async fn skew_date_header(State(sandbox): State<Arc<Sandbox>>, mut response: Response) -> Response {
    let date = sandbox
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(value) = date.parse() {
        response.headers_mut().insert("date", value);
    }
    response
}

/// `/oslc/login`: checks `maxauth` (or an API key) and opens a session, whose id comes back
/// in a `JSESSIONID` cookie as Maximo's application server sets it.
async fn login(State(sandbox): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    if let Some(refused) = sandbox.gate(&headers, &HashMap::new()) {
        return refused;
    }
    let session = format!("{:032x}", rand::random::<u128>());
    sandbox
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(session.clone());
    sandbox
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .logins += 1;
    let mut response = Json(json!({"status": "logged in"})).into_response();
    if let Ok(cookie) = format!("JSESSIONID={session}; Path=/maximo; HttpOnly").parse() {
        response.headers_mut().insert("set-cookie", cookie);
    }
    response
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

    /// The server's clock: real time shifted by the clock-offset fault.
    pub(crate) fn now(&self) -> chrono::DateTime<Utc> {
        let offset = self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clock_offset_seconds;
        Utc::now() + chrono::Duration::seconds(offset)
    }

    /// Whether `structure`'s record `key` is to be served corrupted.
    fn is_corrupt(&self, structure: &str, key: &str) -> bool {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        !faults.corrupt.is_empty()
            && faults
                .corrupt
                .contains(&(structure.to_owned(), key.to_owned()))
    }

    fn authenticated(&self, headers: &HeaderMap, params: &HashMap<String, String>) -> bool {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(session) = header("cookie").and_then(|cookies| {
            cookies
                .split(';')
                .filter_map(|pair| pair.trim().strip_prefix("JSESSIONID="))
                .next()
        }) {
            return self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(session);
        }
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

/// One page of a collection answer: its records, whether more follow, and how many match in
/// all when that was counted.
struct Window {
    ids: Vec<RowId>,
    has_next: bool,
    total: Option<usize>,
}

impl Window {
    /// Cuts a page out of the whole list of matches.
    fn of_list(ids: &[RowId], first: usize, size: usize) -> Self {
        let start = first.min(ids.len());
        let end = start.saturating_add(size).min(ids.len());
        Window {
            ids: ids[start..end].to_vec(),
            has_next: end < ids.len(),
            total: Some(ids.len()),
        }
    }

    /// Reads a page from matches in order, stopping one past the page unless `count` asks
    /// for the total.
    fn walk(matches: impl Iterator<Item = RowId>, first: usize, size: usize, count: bool) -> Self {
        let end = first.saturating_add(size);
        let mut ids = Vec::with_capacity(size.min(MAX_PAGE_SIZE));
        let mut seen = 0;
        for id in matches {
            if seen >= end && !count {
                seen += 1;
                break;
            }
            if seen >= first && seen < end {
                ids.push(id);
            }
            seen += 1;
        }
        Window {
            ids,
            has_next: seen > end,
            total: count.then_some(seen),
        }
    }
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

    let matching = || {
        let indexed =
            query::run_by_change(table, query.filter.as_ref(), &query.order, sandbox.zone);
        match indexed {
            Some(ids) => ids.collect(),
            None => query::run(table, query.filter.as_ref(), &query.order, sandbox.zone),
        }
    };
    let first = (query.page - 1).saturating_mul(query.page_size);
    let (window, snapshot) = match (query.stable, query.snapshot) {
        (true, Some(id)) => {
            let snapshots = sandbox.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            match snapshots.open.get(&id) {
                Some(ids) => (Window::of_list(ids, first, query.page_size), Some(id)),
                None => {
                    return sandbox
                        .bad_request("the stable paging set has expired; start again at page 1")
                }
            }
        }
        (true, None) => {
            let ids = Arc::new(matching());
            let window = Window::of_list(&ids, first, query.page_size);
            let mut snapshots = sandbox.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            snapshots.next_id += 1;
            let id = snapshots.next_id;
            snapshots.open.insert(id, ids);
            while snapshots.open.len() > MAX_SNAPSHOTS {
                snapshots.open.pop_first();
            }
            (window, Some(id))
        }
        (false, _) => {
            let indexed =
                query::run_by_change(table, query.filter.as_ref(), &query.order, sandbox.zone);
            let window = match indexed {
                Some(ids) => Window::walk(ids, first, query.page_size, query.count),
                None => Window::of_list(&matching(), first, query.page_size),
            };
            (window, None)
        }
    };

    // Links are built from the address the client used, as a servlet container builds them
    // from the request: through a proxy they point back through the proxy.
    let base_url = headers
        .get("host")
        .and_then(|host| host.to_str().ok())
        .map(|host| format!("http://{host}/maximo"))
        .unwrap_or_else(|| sandbox.base_url.clone());
    let collection_url = format!("{base_url}/{prefix}/os/{}", spec.name);
    let members: Vec<Value> = window
        .ids
        .iter()
        .filter_map(|id| {
            let row = table.row(id)?;
            let key = spec.key_of(&row.attrs)?;
            let href = query::member_href(&collection_url, &key);
            let mut member = query::render(&row, href, &query.select, query.lean, sandbox.zone);
            if sandbox.is_corrupt(spec.name, &key) {
                // A record the client cannot read: its key attributes are not values.
                for attr in spec.key_attrs {
                    if let Some(value) = member.get_mut(*attr) {
                        *value = json!({"corrupt": true});
                    }
                }
            }
            Some(member)
        })
        .collect();

    let has_next = window.has_next;
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

    let mut info = serde_json::Map::new();
    info.insert("href".into(), json!(page_href(query.page)));
    info.insert("pagenum".into(), json!(query.page));
    if let (true, Some(total)) = (query.count, window.total) {
        let total_pages = total.div_ceil(query.page_size).max(1);
        info.insert("totalCount".into(), json!(total));
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, SubsecRound, TimeZone};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::derive::time_value;
    use super::synthetic::SyntheticWorkOrders;
    use super::table::{Attrs, WORK_ORDERS};
    use super::*;

    fn work_order(site: &str, wonum: &str, changed: Option<DateTime<Utc>>, task: bool) -> Row {
        let mut attrs = Attrs::new();
        attrs.insert("siteid".into(), json!(site));
        attrs.insert("wonum".into(), json!(wonum));
        attrs.insert("istask".into(), json!(task));
        if let Some(changed) = changed {
            attrs.insert("changedate".into(), time_value(changed));
        }
        Row { attrs, rowstamp: 1 }
    }

    /// A random time in `[from, from + span)`, on whole seconds now and then so that many
    /// records share a time.
    fn some_time(rng: &mut StdRng, from: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
        let millis = rng.gen_range(0..span.num_milliseconds());
        let millis = if rng.gen_bool(0.3) {
            millis / 1000 * 1000
        } else {
            millis
        };
        from + Duration::milliseconds(millis)
    }

    /// Changes, deletes and creates records at random, as the control API would.
    fn churn(table: &mut Table, rng: &mut StdRng, from: DateTime<Utc>, span: Duration) {
        let ids = table.ids();
        for _ in 0..60 {
            let id = &ids[rng.gen_range(0..ids.len())];
            let Some(row) = table.row(id).map(|row| row.into_owned()) else {
                continue;
            };
            let key = WORK_ORDERS.key_of(&row.attrs).unwrap();
            match rng.gen_range(0..4) {
                0 => {
                    table.remove(&key);
                }
                1 => {
                    let mut changed = row;
                    changed.attrs.remove("changedate");
                    table.put(&key, changed);
                }
                _ => {
                    let mut changed = row;
                    let time = some_time(rng, from, span);
                    changed.attrs.insert("changedate".into(), time_value(time));
                    changed
                        .attrs
                        .insert("istask".into(), json!(rng.gen_bool(0.2)));
                    table.put(&key, changed);
                }
            }
        }
        for number in 0..30 {
            let site = if rng.gen_bool(0.5) { "PLANT1" } else { "AAA" };
            let time = rng.gen_bool(0.9).then(|| some_time(rng, from, span));
            let wonum = format!("N{number:03}");
            table.put(
                &format!("{site}/{wonum}"),
                work_order(site, &wonum, time, false),
            );
        }
    }

    fn literal(rng: &mut StdRng, time: DateTime<Utc>, zone: Tz) -> String {
        let time = if rng.gen_bool(0.5) {
            time.trunc_subsecs(0)
        } else {
            time
        };
        if rng.gen_bool(0.7) {
            time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
        } else {
            time.with_timezone(&zone)
                .naive_local()
                .format("%Y-%m-%dT%H:%M:%S%.3f")
                .to_string()
        }
    }

    /// Compares the change index against the general scan and sort for random bounds and
    /// pages, on `table` before and after random changes.
    fn check_index_answers_as_the_scan(mut table: Table, from: DateTime<Utc>, span: Duration) {
        let zone: Tz = "America/New_York".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        let order = query::parse_order("+changedate,+siteid,+wonum").unwrap();
        for round in 0..2 {
            if round == 1 {
                churn(&mut table, &mut rng, from, span);
            }
            for _ in 0..200 {
                let mut terms = Vec::new();
                if rng.gen_bool(0.5) {
                    terms.push("istask=0".to_owned());
                }
                let lower = some_time(&mut rng, from - span / 10, span + span / 5);
                let upper =
                    lower + Duration::milliseconds(rng.gen_range(0..span.num_milliseconds()));
                match rng.gen_range(0..4) {
                    0 => terms.push(r#"changedate="*""#.to_owned()),
                    1 => terms.push(format!(
                        r#"changedate>="{}""#,
                        literal(&mut rng, lower, zone)
                    )),
                    2 => terms.push(format!(
                        r#"changedate>"{}""#,
                        literal(&mut rng, lower, zone)
                    )),
                    _ => {
                        terms.push(format!(
                            r#"changedate>="{}""#,
                            literal(&mut rng, lower, zone)
                        ));
                        terms.push(format!(
                            r#"changedate<"{}""#,
                            literal(&mut rng, upper, zone)
                        ));
                    }
                }
                let filter = where_clause::parse(&terms.join(" and ")).unwrap();
                let scanned = query::run(&table, Some(&filter), &order, zone);
                let indexed: Vec<RowId> = query::run_by_change(&table, Some(&filter), &order, zone)
                    .expect("the index answers a bounded change-ordered query")
                    .collect();
                assert_eq!(indexed, scanned, "{terms:?}");

                let size = rng.gen_range(1..40);
                let first = size * rng.gen_range(0..scanned.len() / size + 2);
                let count = rng.gen_bool(0.5);
                let matches = query::run_by_change(&table, Some(&filter), &order, zone).unwrap();
                let walked = Window::walk(matches, first, size, count);
                let cut = Window::of_list(&scanned, first, size);
                assert_eq!(walked.ids, cut.ids, "{terms:?} from {first}");
                assert_eq!(walked.has_next, cut.has_next, "{terms:?} from {first}");
                if count {
                    assert_eq!(walked.total, cut.total);
                }
            }
        }
    }

    #[test]
    fn the_change_index_answers_as_the_scan_on_stored_records() {
        let from = Utc.with_ymd_and_hms(2024, 3, 10, 6, 0, 0).unwrap();
        let span = Duration::seconds(200);
        let mut rng = StdRng::seed_from_u64(3);
        let mut table = Table::stored(WORK_ORDERS);
        for number in 0..400 {
            let site = ["MINE", "GNS", "PLANT1"][number % 3];
            let wonum = format!("W{number:05}");
            let time = rng.gen_bool(0.95).then(|| some_time(&mut rng, from, span));
            table.put(
                &format!("{site}/{wonum}"),
                work_order(site, &wonum, time, rng.gen_bool(0.2)),
            );
        }
        check_index_answers_as_the_scan(table, from, span);
    }

    #[test]
    fn the_change_index_answers_as_the_scan_on_generated_records() {
        let end = Utc.with_ymd_and_hms(2024, 3, 10, 6, 0, 0).unwrap()
            + Duration::nanoseconds(123_456_789);
        let synthetic = SyntheticWorkOrders::new(500, 5, end);
        let span = Duration::days(20);
        check_index_answers_as_the_scan(Table::Synthetic(synthetic), end - span, span);
    }
}
