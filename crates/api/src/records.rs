//! Listing and reading records in change order, shared by the token and management endpoints.

use std::collections::HashMap;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use millrace_model::ObjectType;
use millrace_store::{RecordFilter, RecordQuery, StoredRecord, StoredRecordText};
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
) -> Result<Response, ApiError> {
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
    let mut records = store
        .list_records_text(connection_id, object, &query)
        .await?;
    let has_more = records.len() > limit as usize;
    records.truncate(limit as usize);

    let last_seq = records.last().map_or(query.after_seq, |record| record.seq);
    let next_cursor = state.cursors.encode(&Position {
        connection_id: connection_id.to_owned(),
        object,
        seq: last_seq,
        epoch,
    });
    Ok(render_page(&records, &next_cursor, has_more))
}

/// Writes a [`RecordPage`] from records whose JSON members are the stored text, splicing that
/// text into the answer instead of parsing and re-serialising it.
fn render_page(records: &[StoredRecordText], next_cursor: &str, has_more: bool) -> Response {
    let size: usize = records
        .iter()
        .map(|record| {
            record.fields.len()
                + record.custom_fields.len()
                + record.remote_data.as_ref().map_or(0, String::len)
                + 320
        })
        .sum();
    let mut body = String::with_capacity(size + 200);
    body.push_str("{\"data\":[");
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        write_record_text(&mut body, record);
    }
    body.push_str("],\"next_cursor\":");
    push_json_string(&mut body, next_cursor);
    body.push_str(",\"has_more\":");
    body.push_str(if has_more { "true" } else { "false" });
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Writes one record as [`record_json`] shows it, from the stored JSON text.
fn write_record_text(body: &mut String, record: &StoredRecordText) {
    body.push_str("{\"id\":");
    push_json_string(body, &record.id);
    body.push_str(",\"remote_id\":");
    push_json_string(body, &record.remote_id);
    let times = [
        ("created_at", Some(record.created_at)),
        ("modified_at", Some(record.modified_at)),
        ("remote_created_at", record.remote_created_at),
        ("remote_updated_at", record.remote_updated_at),
        ("remote_deleted_at", record.remote_deleted_at),
    ];
    for (name, time) in times {
        body.push_str(",\"");
        body.push_str(name);
        body.push_str("\":");
        body.push_str(&time_json(time).to_string());
    }
    // The stored fields are a JSON object; its members join the envelope's.
    let members = object_members(&record.fields);
    if !members.is_empty() {
        body.push(',');
        body.push_str(members);
    }
    body.push_str(",\"custom_fields\":");
    body.push_str(object_or_empty(&record.custom_fields));
    if let Some(remote_data) = &record.remote_data {
        body.push_str(",\"remote_data\":");
        body.push_str(remote_data);
    }
    body.push('}');
}

/// Returns the members of a JSON object's text, without its braces.
fn object_members(object: &str) -> &str {
    let trimmed = object.trim();
    trimmed
        .strip_prefix('{')
        .and_then(|inner| inner.strip_suffix('}'))
        .map_or("", str::trim)
}

fn object_or_empty(object: &str) -> &str {
    let trimmed = object.trim();
    if trimmed.starts_with('{') {
        trimmed
    } else {
        "{}"
    }
}

fn push_json_string(body: &mut String, text: &str) {
    body.push_str(&Value::String(text.to_owned()).to_string());
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(fields: &str, custom: &str, raw: Option<&str>) -> (StoredRecord, StoredRecordText) {
        let at = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
        let text = StoredRecordText {
            id: "r\"1".into(),
            remote_id: "SITE/WO 1".into(),
            seq: 7,
            created_at: at,
            modified_at: at,
            remote_created_at: None,
            remote_updated_at: Some(at),
            remote_deleted_at: None,
            fields: fields.into(),
            custom_fields: custom.into(),
            remote_data: raw.map(str::to_owned),
        };
        let parsed = StoredRecord {
            id: text.id.clone(),
            remote_id: text.remote_id.clone(),
            seq: text.seq,
            created_at: at,
            modified_at: at,
            remote_created_at: None,
            remote_updated_at: Some(at),
            remote_deleted_at: None,
            fields: serde_json::from_str(fields).unwrap(),
            custom_fields: serde_json::from_str(custom).unwrap(),
            remote_data: raw.map(|raw| serde_json::from_str(raw).unwrap()),
        };
        (parsed, text)
    }

    #[test]
    fn spliced_records_equal_parsed_ones() {
        let cases = [
            (
                r#"{"status":"open","tasks":[{"sequence":1}]}"#,
                r#"{"_rowstamp":"9"}"#,
                None,
            ),
            ("{}", "{}", Some(r#"{"wonum":"1","spi:x":[1,2]}"#)),
            (r#"{"title":"a \"quoted\" {brace}"}"#, "{}", None),
        ];
        for (fields, custom, raw) in cases {
            let (parsed, text) = record(fields, custom, raw);
            let mut body = String::new();
            write_record_text(&mut body, &text);
            let spliced: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(spliced, record_json(parsed), "{body}");
        }
    }
}
