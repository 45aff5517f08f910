//! The sandbox's control API under `/_sandbox/`: records written as the org's users would,
//! deletions and recycle-bin purges, faults, limits and counters. Not part of Salesforce.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{FieldType, Row, Shared, Table};

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route("/records/{object}", post(create).get(list))
        .route("/records/{object}/{id}", patch(update).delete(delete))
        .route("/recycle_bin/empty", post(empty_recycle_bin))
        .route("/objects", post(define_object))
        .route("/faults", post(faults))
        .route("/limits", post(limits))
        .route("/stats", get(stats))
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Reads a change time the control API was given: absent or null is the server's clock (the
/// platform stamps every write), an RFC 3339 instant is taken as is, and a time without an
/// offset is a wall-clock time in the sandbox's zone. Salesforce keeps whole seconds.
fn change_time(sandbox: &super::Sandbox, value: Option<&Value>) -> Result<DateTime<Utc>, String> {
    let at = match value {
        None | Some(Value::Null) => return Ok(sandbox.now()),
        Some(Value::String(text)) => millrace_connector::time::parse_time_in(text, &sandbox.zone)
            .ok_or_else(|| format!("`{text}` is not a time"))?,
        Some(other) => return Err(format!("{other} is not a time")),
    };
    Ok(at.duration_trunc(ChronoDuration::seconds(1)).unwrap_or(at))
}

/// Checks the written fields against the object's and returns them without system fields.
fn values(table: &Table, body: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut values = Map::new();
    for (field, value) in body {
        if matches!(
            field.as_str(),
            "Id" | "SystemModstamp" | "CreatedDate" | "LastModifiedDate" | "IsDeleted"
        ) {
            continue;
        }
        if !table.fields.contains_key(field) {
            return Err(format!("no field {field} on this object"));
        }
        values.insert(field.clone(), value.clone());
    }
    Ok(values)
}

async fn create(
    State(sandbox): State<Shared>,
    Path(object): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    let changed = match change_time(&sandbox, body.get("SystemModstamp")) {
        Ok(at) => at,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let created = match body.get("CreatedDate") {
        Some(value) => match change_time(&sandbox, Some(value)) {
            Ok(at) => at,
            Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
        },
        None => changed,
    };
    let prefix = match sandbox.lock_tables().get(&object) {
        Some(table) => table.prefix.clone(),
        None => return refuse(StatusCode::NOT_FOUND, format!("no object {object}")),
    };
    let id = sandbox.new_id(&prefix);
    let mut tables = sandbox.lock_tables();
    let Some(table) = tables.get_mut(&object) else {
        return refuse(StatusCode::NOT_FOUND, format!("no object {object}"));
    };
    let mut values = match values(table, &body) {
        Ok(values) => values,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    if !values.contains_key("Name") {
        values.insert(
            "Name".into(),
            json!(format!("QE-{}", &id[id.len() - 9..id.len() - 3])),
        );
    }
    table.rows.insert(
        id.clone(),
        Row {
            id: id.clone(),
            created,
            modstamp: changed,
            deleted: None,
            values,
        },
    );
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn update(
    State(sandbox): State<Shared>,
    Path((object, id)): Path<(String, String)>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    let changed = match change_time(&sandbox, body.get("SystemModstamp")) {
        Ok(at) => at,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let mut tables = sandbox.lock_tables();
    let Some(table) = tables.get_mut(&object) else {
        return refuse(StatusCode::NOT_FOUND, format!("no object {object}"));
    };
    let values = match values(table, &body) {
        Ok(values) => values,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let Some(row) = table.rows.get_mut(&id).filter(|row| row.deleted.is_none()) else {
        return refuse(StatusCode::NOT_FOUND, format!("no live record {id}"));
    };
    row.values.extend(values);
    row.modstamp = changed;
    Json(json!({"id": id})).into_response()
}

/// Deletes a record as a user does: into the recycle bin, and into the delete log.
async fn delete(
    State(sandbox): State<Shared>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let now = sandbox.now();
    let mut tables = sandbox.lock_tables();
    let Some(table) = tables.get_mut(&object) else {
        return refuse(StatusCode::NOT_FOUND, format!("no object {object}"));
    };
    let Some(row) = table.rows.get_mut(&id).filter(|row| row.deleted.is_none()) else {
        return refuse(StatusCode::NOT_FOUND, format!("no live record {id}"));
    };
    row.deleted = Some(now);
    table.delete_log.push((id.clone(), now));
    Json(json!({"id": id, "deletedDate": super::salesforce_time(now)})).into_response()
}

/// Every live record of an object, for tests to compare with.
async fn list(State(sandbox): State<Shared>, Path(object): Path<String>) -> Response {
    let tables = sandbox.lock_tables();
    let Some(table) = tables.get(&object) else {
        return refuse(StatusCode::NOT_FOUND, format!("no object {object}"));
    };
    let rows: Vec<Value> = table
        .rows
        .values()
        .filter(|row| row.deleted.is_none())
        .map(|row| {
            let mut record = row.values.clone();
            record.insert("Id".into(), json!(row.id));
            record.insert(
                "SystemModstamp".into(),
                json!(super::salesforce_time(row.modstamp)),
            );
            Value::Object(record)
        })
        .collect();
    Json(rows).into_response()
}

#[derive(Deserialize)]
struct EmptyBin {
    object: Option<String>,
}

/// Purges deleted records for good: queryAll no longer finds them; the delete log keeps them.
async fn empty_recycle_bin(State(sandbox): State<Shared>, Json(body): Json<EmptyBin>) -> Response {
    let mut tables = sandbox.lock_tables();
    let mut purged = 0;
    for (name, table) in tables.iter_mut() {
        if body.object.as_ref().is_some_and(|object| object != name) {
            continue;
        }
        let before = table.rows.len();
        table.rows.retain(|_, row| row.deleted.is_none());
        purged += before - table.rows.len();
    }
    Json(json!({"purged": purged})).into_response()
}

#[derive(Deserialize)]
struct ObjectDefinition {
    name: String,
    prefix: String,
    fields: BTreeMap<String, FieldType>,
}

/// Defines an object as an installation's own package version names it.
async fn define_object(
    State(sandbox): State<Shared>,
    Json(body): Json<ObjectDefinition>,
) -> Response {
    if body.prefix.len() != 3 || !crate::config::is_api_name(&body.name) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a name and a 3-character prefix".into(),
        );
    }
    let mut fields: BTreeMap<String, FieldType> = [
        ("Id", FieldType::Id),
        ("Name", FieldType::Text),
        ("CreatedDate", FieldType::DateTime),
        ("LastModifiedDate", FieldType::DateTime),
        ("SystemModstamp", FieldType::DateTime),
        ("IsDeleted", FieldType::Boolean),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_owned(), kind))
    .collect();
    fields.extend(body.fields);
    sandbox.lock_tables().insert(
        body.name.clone(),
        Table {
            prefix: body.prefix,
            fields,
            rows: BTreeMap::new(),
            delete_log: Vec::new(),
        },
    );
    (StatusCode::CREATED, Json(json!({"name": body.name}))).into_response()
}

#[derive(Deserialize)]
struct FaultSwitches {
    reject_auth: Option<bool>,
    expire_sessions: Option<bool>,
    clock_offset_seconds: Option<i64>,
    corrupt: Option<Vec<CorruptRecord>>,
    expire_locators: Option<bool>,
    delete_log_purged_before: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct CorruptRecord {
    object: String,
    id: String,
}

async fn faults(State(sandbox): State<Shared>, Json(body): Json<FaultSwitches>) -> Response {
    if body.expire_sessions == Some(true) {
        sandbox
            .sessions
            .lock()
            .unwrap_or_else(|err| err.into_inner())
            .clear();
    }
    if body.expire_locators == Some(true) {
        let mut locators = sandbox
            .locators
            .lock()
            .unwrap_or_else(|err| err.into_inner());
        locators.1.clear();
        locators.2.clear();
    }
    let mut faults = sandbox.lock_faults();
    if let Some(reject) = body.reject_auth {
        faults.reject_auth = reject;
    }
    if let Some(offset) = body.clock_offset_seconds {
        faults.clock_offset_seconds = offset;
    }
    if let Some(corrupt) = body.corrupt {
        faults.corrupt = corrupt
            .into_iter()
            .map(|record| (record.object, record.id))
            .collect();
    }
    if let Some(before) = body.delete_log_purged_before {
        faults.delete_log_purged_before = Some(before);
    }
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct Limits {
    used: Option<u64>,
    max: Option<u64>,
}

async fn limits(State(sandbox): State<Shared>, Json(body): Json<Limits>) -> Response {
    let mut stats = sandbox.lock_stats();
    if let Some(used) = body.used {
        stats.api_requests = used;
    }
    if let Some(max) = body.max {
        stats.daily_limit = max;
    }
    Json(json!({"used": stats.api_requests, "max": stats.daily_limit})).into_response()
}

async fn stats(State(sandbox): State<Shared>) -> Response {
    let stats = sandbox.lock_stats();
    Json(json!({
        "logins": stats.logins,
        "api_requests": stats.api_requests,
        "daily_limit": stats.daily_limit,
    }))
    .into_response()
}
