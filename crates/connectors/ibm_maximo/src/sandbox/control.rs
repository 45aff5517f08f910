//! The control API under `/_sandbox/`: create, change and delete records, inject faults and
//! read request counts. It needs no credentials; it is for tests and demos only.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::derive::time_value;
use super::table::{self, is_date_attr, Attrs, Row, StructureSpec};
use super::where_clause::parse_literal_time;
use super::{maximo_error, query, Sandbox};

fn unknown_structure(name: &str) -> Response {
    maximo_error(
        StatusCode::NOT_FOUND,
        "BMXAA8727E",
        &format!("The object structure {name} was not found."),
    )
}

/// Reads every time attribute of a request body into the stored UTC form; a time without an
/// offset is read in the server's zone. Returns the name of the first unreadable one.
fn normalise_times(attrs: &mut Attrs, zone: chrono_tz::Tz) -> Result<(), String> {
    for (name, value) in attrs.iter_mut() {
        if let Value::Array(children) = value {
            for child in children.iter_mut() {
                if let Value::Object(child) = child {
                    normalise_times(child, zone)?;
                }
            }
            continue;
        }
        let Value::String(text) = value else { continue };
        if !is_date_attr(name) {
            continue;
        }
        let time = parse_literal_time(text, zone)
            .ok_or_else(|| format!("`{name}` is not a time: {text}"))?;
        *value = time_value(time);
    }
    Ok(())
}

/// Returns the server's "now" as stored change times use it: millisecond precision.
fn now(sandbox: &Sandbox) -> DateTime<Utc> {
    sandbox.now().trunc_subsecs(3)
}

/// Sets the change attribute: the one given (null clears it), else now.
fn stamp_change(sandbox: &Sandbox, spec: &StructureSpec, given: &Attrs, attrs: &mut Attrs) {
    match given.get(spec.change_attr) {
        Some(Value::Null) => {
            attrs.remove(spec.change_attr);
        }
        Some(_) => {}
        None => {
            attrs.insert(spec.change_attr.to_owned(), time_value(now(sandbox)));
        }
    }
}

fn body_object(body: Value) -> Result<Attrs, Box<Response>> {
    match body {
        Value::Object(attrs) => Ok(attrs),
        _ => Err(Box::new(maximo_error(
            StatusCode::BAD_REQUEST,
            "BMXAA0024E",
            "the body must be a JSON object",
        ))),
    }
}

/// `POST /_sandbox/os/<structure>`: creates a record; missing key attributes are generated.
pub async fn create(
    State(sandbox): State<Arc<Sandbox>>,
    Path(structure): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(spec) = table::structure(&structure) else {
        return unknown_structure(&structure);
    };
    let given = match body_object(body) {
        Ok(attrs) => attrs,
        Err(response) => return *response,
    };
    let mut attrs = given.clone();
    if let Err(message) = normalise_times(&mut attrs, sandbox.zone) {
        return maximo_error(StatusCode::BAD_REQUEST, "BMXAA0024E", &message);
    }
    let number = sandbox.next_generated.fetch_add(1, Ordering::Relaxed);
    for key_attr in spec.key_attrs {
        if attrs.get(*key_attr).is_some_and(|value| !value.is_null()) {
            continue;
        }
        let value = match *key_attr {
            "siteid" => json!(default_site(&sandbox, spec)),
            "orgid" => json!("MINING"),
            "itemsetid" => json!("SET1"),
            "revisionnum" => json!(0),
            "meterreadingid" => json!(number),
            _ => json!(format!("{}{number}", spec.generated_prefix)),
        };
        attrs.insert((*key_attr).to_owned(), value);
    }
    if let Some(id_attr) = spec.id_attr {
        attrs.entry(id_attr.to_owned()).or_insert(json!(number));
    }
    apply_defaults(&sandbox, spec, &mut attrs);
    stamp_change(&sandbox, spec, &given, &mut attrs);
    attrs.retain(|_, value| !value.is_null());

    let Some(key) = spec.key_of(&attrs) else {
        return maximo_error(
            StatusCode::BAD_REQUEST,
            "BMXAA0024E",
            "the record has no key",
        );
    };
    let mut data = sandbox.write_data();
    if data
        .tables
        .get(spec.name)
        .is_some_and(|table| table.find(&key).is_some())
    {
        return maximo_error(
            StatusCode::BAD_REQUEST,
            "BMXAA4129E",
            &format!("Record {key} already exists."),
        );
    }
    let rowstamp = data.next_rowstamp;
    data.next_rowstamp += 1;
    let row = Row { attrs, rowstamp };
    let answer = record_json(&sandbox, spec, &key, &row);
    if let Some(table) = data.tables.get_mut(spec.name) {
        table.put(&key, row);
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Fills the attributes Maximo gives a new record when the request leaves them out, among them
/// the ones the connector's queries and joins rely on: a work order is not a task (`istask=0`,
/// which every work order listing carries), a stock row belongs to an item set (stock joins
/// items on `itemsetid/itemnum`), a sited record belongs to its site's organisation.
fn apply_defaults(sandbox: &Sandbox, spec: &StructureSpec, attrs: &mut Attrs) {
    let status = match spec.name {
        "mxapiwodetail" | "mxapipo" => Some("WAPPR"),
        "mxapisr" => Some("NEW"),
        "mxapiasset" | "mxapilocations" => Some("OPERATING"),
        "mxapiitem" | "mxapiinventory" | "mxapiperson" => Some("ACTIVE"),
        _ => None,
    };
    let mut defaults: Vec<(&str, Value)> = status
        .map(|status| ("status", json!(status)))
        .into_iter()
        .collect();
    match spec.name {
        "mxapiwodetail" => defaults.push(("istask", json!(false))),
        "mxapisr" => defaults.push(("class", json!("SR"))),
        "mxapiinventory" => defaults.push(("itemsetid", json!("SET1"))),
        "mxapisite" | "mxapiassetmeter" => defaults.push(("active", json!(true))),
        "mxapivendor" => defaults.push(("disabled", json!(false))),
        _ => {}
    }
    let sited = spec.name != "mxapisite" && spec.name != "mxapiperson";
    if sited {
        if let Some(site) = attrs.get("siteid").and_then(Value::as_str) {
            defaults.push(("orgid", json!(org_of_site(sandbox, site))));
        }
    }
    for (name, value) in defaults {
        let given = attrs.get(name).is_some_and(|value| !value.is_null());
        if !given {
            attrs.insert(name.to_owned(), value);
        }
    }
}

/// Returns the organisation of a site: the site record's, else that of another record of the
/// site, else `MINING`.
fn org_of_site(sandbox: &Sandbox, site: &str) -> String {
    let data = sandbox.read_data();
    let org_of = |structure: &str, key: &str| {
        let table = data.tables.get(structure)?;
        let id = table.find(key)?;
        table.attr(&id, "orgid")?.as_str().map(str::to_owned)
    };
    org_of("mxapisite", site)
        .or_else(|| {
            let table = data.tables.get("mxapiwodetail")?;
            let id = table.ids().into_iter().find(|id| {
                table
                    .attr(id, "siteid")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    == Some(site.to_owned())
            })?;
            table.attr(&id, "orgid")?.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "MINING".to_owned())
}

fn default_site(sandbox: &Sandbox, spec: &StructureSpec) -> String {
    let data = sandbox.read_data();
    data.tables
        .get(spec.name)
        .and_then(|table| table.ids().first().and_then(|id| table.attr(id, "siteid")))
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| "MINE".to_owned())
}

fn record_json(sandbox: &Sandbox, spec: &StructureSpec, key: &str, row: &Row) -> Value {
    let collection = format!("{}/oslc/os/{}", sandbox.base_url, spec.name);
    let href = query::member_href(&collection, key);
    let mut rendered = query::render(row, href, &query::Select::All, true, sandbox.zone);
    rendered["_key"] = json!(key);
    rendered
}

/// `GET /_sandbox/os/<structure>/<key>`: one record as lean JSON, with its `_key`.
pub async fn fetch(
    State(sandbox): State<Arc<Sandbox>>,
    Path((structure, key)): Path<(String, String)>,
) -> Response {
    let Some(spec) = table::structure(&structure) else {
        return unknown_structure(&structure);
    };
    let data = sandbox.read_data();
    let Some(table) = data.tables.get(spec.name) else {
        return unknown_structure(&structure);
    };
    let Some(row) = table.find(&key).and_then(|id| table.row(&id)) else {
        return maximo_error(
            StatusCode::NOT_FOUND,
            "BMXAA8729E",
            &format!("No record {key}."),
        );
    };
    Json(record_json(&sandbox, spec, &key, &row)).into_response()
}

/// `PATCH /_sandbox/os/<structure>/<key>`: merges attributes, bumps the change time (unless
/// given) and the rowstamp.
pub async fn change(
    State(sandbox): State<Arc<Sandbox>>,
    Path((structure, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Some(spec) = table::structure(&structure) else {
        return unknown_structure(&structure);
    };
    let given = match body_object(body) {
        Ok(attrs) => attrs,
        Err(response) => return *response,
    };
    let mut changes = given.clone();
    if let Err(message) = normalise_times(&mut changes, sandbox.zone) {
        return maximo_error(StatusCode::BAD_REQUEST, "BMXAA0024E", &message);
    }

    let mut data = sandbox.write_data();
    let rowstamp = data.next_rowstamp;
    let Some(table) = data.tables.get_mut(spec.name) else {
        return unknown_structure(&structure);
    };
    let Some(mut row) = table
        .find(&key)
        .and_then(|id| table.row(&id))
        .map(|row| row.into_owned())
    else {
        return maximo_error(
            StatusCode::NOT_FOUND,
            "BMXAA8729E",
            &format!("No record {key}."),
        );
    };
    for (name, value) in changes {
        if spec.key_attrs.contains(&name.as_str()) {
            continue;
        }
        if value.is_null() {
            row.attrs.remove(&name);
        } else {
            row.attrs.insert(name, value);
        }
    }
    stamp_change(&sandbox, spec, &given, &mut row.attrs);
    row.rowstamp = rowstamp;
    table.put(&key, row.clone());
    data.next_rowstamp += 1;
    drop(data);
    Json(record_json(&sandbox, spec, &key, &row)).into_response()
}

/// `DELETE /_sandbox/os/<structure>/<key>`.
pub async fn delete(
    State(sandbox): State<Arc<Sandbox>>,
    Path((structure, key)): Path<(String, String)>,
) -> Response {
    let Some(spec) = table::structure(&structure) else {
        return unknown_structure(&structure);
    };
    let mut data = sandbox.write_data();
    let removed = data
        .tables
        .get_mut(spec.name)
        .is_some_and(|table| table.remove(&key));
    if removed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        maximo_error(
            StatusCode::NOT_FOUND,
            "BMXAA8729E",
            &format!("No record {key}."),
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    rate_limit: Option<RateLimit>,
    reject_auth: Option<bool>,
    clock_offset_seconds: Option<i64>,
    /// Records to serve corrupted, each `{"structure", "key"}`; replaces the earlier list.
    corrupt: Option<Vec<RecordRef>>,
    /// Ends every open session, as a session timeout does.
    #[serde(default)]
    expire_sessions: bool,
    #[serde(default)]
    clear: bool,
}

#[derive(Debug, Deserialize)]
struct RecordRef {
    structure: String,
    key: String,
}

#[derive(Debug, Deserialize)]
struct RateLimit {
    requests: u32,
    #[serde(default = "one_second")]
    retry_after_seconds: u64,
}

fn one_second() -> u64 {
    1
}

/// `POST /_sandbox/faults`: `{"rate_limit": {"requests", "retry_after_seconds"}}`,
/// `{"reject_auth": true|false}`, `{"clear": true}`.
pub async fn faults(
    State(sandbox): State<Arc<Sandbox>>,
    Json(request): Json<FaultRequest>,
) -> Response {
    let mut faults = sandbox.faults.lock().unwrap_or_else(|e| e.into_inner());
    if request.clear {
        *faults = super::Faults::default();
    }
    if let Some(limit) = request.rate_limit {
        faults.rate_limited_requests = limit.requests;
        faults.retry_after_seconds = limit.retry_after_seconds;
    }
    if let Some(reject) = request.reject_auth {
        faults.reject_auth = reject;
    }
    if let Some(offset) = request.clock_offset_seconds {
        faults.clock_offset_seconds = offset;
    }
    if let Some(corrupt) = request.corrupt {
        faults.corrupt = corrupt
            .into_iter()
            .map(|record| (record.structure, record.key))
            .collect();
    }
    if request.expire_sessions {
        sandbox
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
    Json(json!({
        "rate_limited_requests": faults.rate_limited_requests,
        "retry_after_seconds": faults.retry_after_seconds,
        "reject_auth": faults.reject_auth,
        "clock_offset_seconds": faults.clock_offset_seconds,
        "corrupt": faults.corrupt.len(),
    }))
    .into_response()
}

/// `GET /_sandbox/stats`: request counts, and the record count per structure.
pub async fn stats(State(sandbox): State<Arc<Sandbox>>) -> Response {
    let records: serde_json::Map<String, Value> = {
        let data = sandbox.read_data();
        data.tables
            .iter()
            .map(|(name, table)| ((*name).to_owned(), json!(table.len())))
            .collect()
    };
    let stats = sandbox.stats.lock().unwrap_or_else(|e| e.into_inner());
    let open_snapshots = sandbox
        .snapshots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .open
        .len();
    Json(json!({
        "requests": stats.requests,
        "by_structure": stats.by_structure,
        "rate_limited": stats.rate_limited,
        "unauthorized": stats.unauthorized,
        "bad_requests": stats.bad_requests,
        "logins": stats.logins,
        "open_stable_paging_sets": open_snapshots,
        "records": records,
        "time_zone": sandbox.zone.name(),
    }))
    .into_response()
}
