//! Listing and reading records in change order, shared by the token and management endpoints.

use std::collections::HashMap;

use axum::Json;
use chrono::{DateTime, Utc};
use millrace_model::ObjectType;
use millrace_store::{RecordFilter, RecordQuery, StoredRecord};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::cursor::{CursorError, Position};
use crate::problem::ApiError;
use crate::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Query parameters every list takes; the object's equality filters come on top.
const COMMON_PARAMETERS: &[&str] = &[
    "limit",
    "cursor",
    "modified_after",
    "include_deleted",
    "include_remote_data",
];

/// Equality filters per object type: query parameter and the JSON path it matches.
pub fn filters_of(object: ObjectType) -> &'static [(&'static str, &'static [&'static str])] {
    use ObjectType::*;
    const STATUS: (&str, &[&str]) = ("status", &["status"]);
    const SITE: (&str, &[&str]) = ("site_id", &["site", "id"]);
    const LOCATION: (&str, &[&str]) = ("location_id", &["location", "id"]);
    const ASSET: (&str, &[&str]) = ("asset_id", &["asset", "id"]);
    const PARENT: (&str, &[&str]) = ("parent_id", &["parent", "id"]);
    match object {
        Sites | Vendors => &[STATUS],
        Locations => &[STATUS, SITE, PARENT],
        Assets => &[STATUS, SITE, LOCATION, PARENT],
        WorkOrders => &[
            STATUS,
            ("priority", &["priority"]),
            ("work_type", &["work_type"]),
            SITE,
            LOCATION,
            ASSET,
        ],
        WorkRequests => &[STATUS, ("priority", &["priority"]), SITE, LOCATION, ASSET],
        PreventiveMaintenance => &[STATUS, SITE, ASSET],
        Parts => &[STATUS, ("part_number", &["part_number"])],
        PurchaseOrders => &[STATUS, ("vendor_id", &["vendor", "id"]), SITE],
        Users => &[STATUS, ("email", &["email"])],
        Meters => &[ASSET, LOCATION],
        MeterReadings => &[("meter_id", &["meter", "id"]), ASSET],
        AssetDowntimes => &[ASSET],
        ProductionOrders => &[STATUS, SITE, ASSET],
        QualityEvents => &[STATUS, ("event_type", &["event_type"]), SITE, ASSET],
        Documents => &[("related_id", &["related", "id"])],
    }
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPage {
    /// Records in change order: envelope fields plus the object type's own fields.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// Where to continue: pass it as `cursor` for the next page now, or to poll for later
    /// changes. It is always set, also on the last page.
    pub next_cursor: String,
    /// Whether more records were waiting when this page was read.
    pub has_more: bool,
}

/// Parses a slug into an object type, or answers `unknown_object`.
pub fn parse_object(slug: &str) -> Result<ObjectType, ApiError> {
    slug.parse().map_err(|err: millrace_model::UnknownObject| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_object",
            err.to_string(),
        )
    })
}

/// Lists one stream of a connection.
pub async fn list(
    state: &AppState,
    connection_id: &str,
    object: ObjectType,
    params: &HashMap<String, String>,
) -> Result<Json<RecordPage>, ApiError> {
    let store = state.engine.store();
    let epoch = store.data_epoch(connection_id).await?;
    let (mut query, cursor) = parse_query(object, params)?;
    if let Some(cursor) = cursor {
        let position = state
            .cursors
            .decode(&cursor, connection_id, object, epoch)
            .map_err(invalid_cursor)?;
        query.after_seq = position.seq;
    }

    let limit = query.limit;
    query.limit = limit + 1;
    let mut records = store.list_records(connection_id, object, &query).await?;
    let has_more = records.len() > limit as usize;
    records.truncate(limit as usize);

    let last_seq = records.last().map_or(query.after_seq, |record| record.seq);
    let next_cursor = state.cursors.encode(&Position {
        connection_id: connection_id.to_owned(),
        object,
        seq: last_seq,
        epoch,
    });
    let data = records.into_iter().map(record_json).collect();
    Ok(Json(RecordPage {
        data,
        next_cursor,
        has_more,
    }))
}

/// Reads one record of a connection.
pub async fn get(
    state: &AppState,
    connection_id: &str,
    object: ObjectType,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(name) = params
        .keys()
        .find(|name| name.as_str() != "include_remote_data")
    {
        return Err(ApiError::invalid(format!(
            "unknown query parameter `{name}`"
        )));
    }
    let include_remote_data = parse_bool(params, "include_remote_data")?;
    let record = state
        .engine
        .store()
        .record(connection_id, object, id, include_remote_data)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {object} record `{id}`")))?;
    Ok(Json(record_json(record)))
}

fn invalid_cursor(err: CursorError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_cursor",
        err.to_string(),
    )
}

fn parse_query(
    object: ObjectType,
    params: &HashMap<String, String>,
) -> Result<(RecordQuery, Option<String>), ApiError> {
    let filters = filters_of(object);
    for name in params.keys() {
        let known = COMMON_PARAMETERS.contains(&name.as_str())
            || filters.iter().any(|(filter, _)| filter == name);
        if !known {
            let allowed: Vec<&str> = COMMON_PARAMETERS
                .iter()
                .copied()
                .chain(filters.iter().map(|(filter, _)| *filter))
                .collect();
            return Err(ApiError::invalid(format!(
                "unknown query parameter `{name}` for {object}; allowed: {}",
                allowed.join(", ")
            )));
        }
    }

    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid(format!("`limit` must be an integer from 1 to {MAX_LIMIT}"))
            })?,
    };
    let modified_after = params
        .get("modified_after")
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid(
                        "`modified_after` must be an RFC 3339 time, e.g. 2024-01-31T00:00:00Z",
                    )
                })
        })
        .transpose()?;
    let record_filters = filters
        .iter()
        .filter_map(|(name, path)| {
            params.get(*name).map(|value| RecordFilter {
                path: path.to_vec(),
                value: value.clone(),
            })
        })
        .collect();

    let query = RecordQuery {
        after_seq: 0,
        limit,
        modified_after,
        include_deleted: parse_bool(params, "include_deleted")?,
        include_remote_data: parse_bool(params, "include_remote_data")?,
        filters: record_filters,
    };
    let cursor = params
        .get("cursor")
        .filter(|cursor| !cursor.is_empty())
        .cloned();
    Ok((query, cursor))
}

fn parse_bool(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "`{name}` must be true or false, not `{other}`"
        ))),
    }
}

/// Renders a stored record as the API shows it: envelope, own fields, custom fields.
pub fn record_json(record: StoredRecord) -> Value {
    let mut json = Map::new();
    json.insert("id".into(), Value::String(record.id));
    json.insert("remote_id".into(), Value::String(record.remote_id));
    json.insert("created_at".into(), time_json(Some(record.created_at)));
    json.insert("modified_at".into(), time_json(Some(record.modified_at)));
    json.insert(
        "remote_created_at".into(),
        time_json(record.remote_created_at),
    );
    json.insert(
        "remote_updated_at".into(),
        time_json(record.remote_updated_at),
    );
    json.insert(
        "remote_deleted_at".into(),
        time_json(record.remote_deleted_at),
    );
    for (name, value) in record.fields {
        json.entry(name).or_insert(value);
    }
    json.insert("custom_fields".into(), Value::Object(record.custom_fields));
    if let Some(remote_data) = record.remote_data {
        json.insert("remote_data".into(), remote_data);
    }
    Value::Object(json)
}

fn time_json(time: Option<DateTime<Utc>>) -> Value {
    time.map_or(Value::Null, |time| {
        Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}
