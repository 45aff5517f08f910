//! Rows → unified records. Every column arrives as text (the query casts it) together with the
//! kind of its SQL type; [`value`] turns it into JSON by that kind, the mapped columns are
//! gathered under their unified names, and the object's typed struct reads them, so a value
//! of the wrong type rejects that one row (by key) instead of storing nonsense.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use millrace_connector::{RejectedRecord, SourceRecord};
use millrace_model::objects::{
    ActiveStatus, Asset, AssetDowntime, AssetStatus, Meter, MeterReading, ProductionOrder,
    QualityEvent, Site, WorkOrder, WorkOrderStatus,
};
use millrace_model::{ObjectType, Reference};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// What a column's SQL type is, as far as reading it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    /// `numeric`/`DECIMAL` and floating point.
    Number,
    Bool,
    /// A wall-clock time without zone (PostgreSQL `timestamp`, MariaDB `DATETIME`), read in the
    /// connection's `time_zone`.
    Timestamp,
    /// An instant (PostgreSQL `timestamptz`, MariaDB `TIMESTAMP`), read as UTC.
    TimestampTz,
    Date,
    Uuid,
    /// Anything else, kept as its text.
    Text,
}

impl Kind {
    /// Classifies a PostgreSQL type name as sqlx reports it (`INT4`, `TIMESTAMPTZ`, ...).
    pub fn of_postgres(name: &str) -> Kind {
        match name {
            "INT2" | "INT4" | "INT8" | "OID" => Kind::Integer,
            "NUMERIC" | "FLOAT4" | "FLOAT8" => Kind::Number,
            "BOOL" => Kind::Bool,
            "TIMESTAMP" => Kind::Timestamp,
            "TIMESTAMPTZ" => Kind::TimestampTz,
            "DATE" => Kind::Date,
            "UUID" => Kind::Uuid,
            _ => Kind::Text,
        }
    }

    /// Classifies a MariaDB/MySQL type name as sqlx reports it (`BIGINT UNSIGNED`, ...).
    pub fn of_mysql(name: &str) -> Kind {
        let base = name.split_whitespace().next().unwrap_or_default();
        match base {
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => Kind::Integer,
            "DECIMAL" | "FLOAT" | "DOUBLE" => Kind::Number,
            "BOOLEAN" => Kind::Bool,
            "DATETIME" => Kind::Timestamp,
            // MariaDB stores TIMESTAMP as UTC and shows it in the session zone, set to UTC.
            "TIMESTAMP" => Kind::TimestampTz,
            "DATE" => Kind::Date,
            _ => Kind::Text,
        }
    }

    /// Whether the kind is a point in time a change column can hold.
    pub fn is_time(self) -> bool {
        matches!(self, Kind::Timestamp | Kind::TimestampTz)
    }
}

/// One column of a source, as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The database's own type name, for messages.
    pub type_name: String,
    pub kind: Kind,
}

/// One object's source resolved against the live schema: the columns a row holds, in order,
/// and the positions of the mapped ones.
#[derive(Debug, Clone)]
pub struct Layout {
    pub columns: Vec<Column>,
    pub key: usize,
    pub changed: usize,
    pub created: Option<usize>,
    pub deleted: Option<usize>,
    /// Unified field → column position.
    pub fields: Vec<(String, usize)>,
}

/// Parses a time of `kind` as the query returns it: naive text, in `zone` for a wall-clock
/// column and in UTC for an instant. MariaDB's zero date (`0000-00-00 ...`) reads as no time.
pub fn parse_time(
    kind: Kind,
    text: &str,
    zone: &chrono_tz::Tz,
) -> Result<Option<DateTime<Utc>>, String> {
    if text.starts_with("0000-00-00") {
        return Ok(None);
    }
    let parsed = match kind {
        Kind::TimestampTz => {
            millrace_connector::time::parse_naive(text).map(|naive| naive.and_utc())
        }
        Kind::Timestamp => millrace_connector::time::parse_time_in(text, zone),
        Kind::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .and_then(|midnight| {
                millrace_connector::time::parse_time_in(
                    &midnight.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    zone,
                )
            }),
        // A text column mapped to a time field: an offset time, or a naive one in `zone`.
        _ => millrace_connector::time::parse_time_in(text, zone),
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("{text:?} is not a time"))
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Turns one column's text into JSON by its kind.
pub fn value(column: &Column, text: Option<&str>, zone: &chrono_tz::Tz) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    let wrong = || {
        format!(
            "column `{}` ({}) holds {text:?}",
            column.name, column.type_name
        )
    };
    Ok(match column.kind {
        Kind::Integer | Kind::Number => match serde_json::from_str::<Value>(text.trim()) {
            Ok(number @ Value::Number(_)) => number,
            _ => return Err(wrong()),
        },
        Kind::Bool => match text {
            "t" | "true" | "1" => Value::Bool(true),
            "f" | "false" | "0" => Value::Bool(false),
            _ => return Err(wrong()),
        },
        Kind::Timestamp | Kind::TimestampTz => match parse_time(column.kind, text, zone) {
            Ok(Some(time)) => Value::String(format_time(time)),
            Ok(None) => Value::Null,
            Err(_) => return Err(wrong()),
        },
        Kind::Date | Kind::Uuid | Kind::Text => Value::String(text.to_owned()),
    })
}

/// Which object a unified reference field points at, per object.
fn reference_target(object: ObjectType, field: &str) -> Option<ObjectType> {
    Some(match field {
        "site" => ObjectType::Sites,
        "location" => ObjectType::Locations,
        "asset" => ObjectType::Assets,
        "parent" if object == ObjectType::Assets => ObjectType::Assets,
        "meter" => ObjectType::Meters,
        "work_order" => ObjectType::WorkOrders,
        "work_request" => ObjectType::WorkRequests,
        "preventive_maintenance" => ObjectType::PreventiveMaintenance,
        _ => return None,
    })
}

fn is_time_field(field: &str) -> bool {
    field.ends_with("_at") || field.ends_with("_start") || field.ends_with("_end")
}

fn default_fields<T: Default + Serialize>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(fields)) => fields
            .into_iter()
            // Nested lists (work order tasks) are not filled from one column.
            .filter(|(_, value)| !value.is_array())
            .map(|(name, _)| name)
            .collect(),
        _ => Vec::new(),
    }
}

/// The unified fields a mapping of `object` may fill.
pub fn unified_fields(object: ObjectType) -> Vec<String> {
    match object {
        ObjectType::Sites => default_fields::<Site>(),
        ObjectType::Assets => default_fields::<Asset>(),
        ObjectType::Meters => default_fields::<Meter>(),
        ObjectType::MeterReadings => default_fields::<MeterReading>(),
        ObjectType::AssetDowntimes => default_fields::<AssetDowntime>(),
        ObjectType::ProductionOrders => default_fields::<ProductionOrder>(),
        ObjectType::QualityEvents => default_fields::<QualityEvent>(),
        ObjectType::WorkOrders => default_fields::<WorkOrder>(),
        _ => Vec::new(),
    }
}

/// Reads unified fields into `T` and back, so that their types are checked. Fields the
/// mapping leaves out take `T`'s defaults (empty lists of tasks, for instance).
fn typed<T: Default + DeserializeOwned + Serialize>(
    fields: Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut whole = match serde_json::to_value(T::default()).map_err(|err| err.to_string())? {
        Value::Object(defaults) => defaults,
        other => return Err(format!("the default record is {other}, not an object")),
    };
    whole.extend(fields);
    let unified: T = serde_json::from_value(Value::Object(whole)).map_err(|err| err.to_string())?;
    match serde_json::to_value(unified).map_err(|err| err.to_string())? {
        Value::Object(fields) => Ok(fields),
        other => Err(format!("mapped to {other}, not an object")),
    }
}

/// The normalised status of a record from its source status, when the mapping does not fill
/// `status` itself.
fn normalised_status(object: ObjectType, remote: &str) -> Option<Value> {
    let remote = remote.trim().to_lowercase().replace([' ', '-'], "_");
    let value = match object {
        ObjectType::Sites => serde_json::to_value(match remote.as_str() {
            "active" | "operating" | "online" | "open" => ActiveStatus::Active,
            "inactive" | "closed" | "offline" => ActiveStatus::Inactive,
            _ => return None,
        }),
        ObjectType::Assets => serde_json::to_value(match remote.as_str() {
            "running" | "operating" | "active" | "online" | "available" | "producing" => {
                AssetStatus::Operating
            }
            "stopped" | "down" | "idle" | "offline" | "maintenance" | "setup" | "blocked" => {
                AssetStatus::NotOperating
            }
            "decommissioned" | "retired" | "scrapped" => AssetStatus::Decommissioned,
            _ => return None,
        }),
        ObjectType::WorkOrders => serde_json::to_value(match remote.as_str() {
            "new" | "open" | "planned" | "released" | "ready" | "waiting" | "queued" => {
                WorkOrderStatus::Open
            }
            "running" | "started" | "active" | "in_progress" | "in_process" => {
                WorkOrderStatus::InProgress
            }
            "held" | "on_hold" | "paused" | "interrupted" | "suspended" => WorkOrderStatus::OnHold,
            "completed" | "complete" | "done" | "finished" | "closed" => WorkOrderStatus::Completed,
            "cancelled" | "canceled" | "aborted" => WorkOrderStatus::Cancelled,
            _ => return None,
        }),
        ObjectType::ProductionOrders => Ok(Value::String(
            match remote.as_str() {
                "new" | "planned" | "released" | "scheduled" | "ready" => "planned",
                "running" | "started" | "active" | "in_progress" | "in_process" => "in_progress",
                "held" | "on_hold" | "paused" | "interrupted" | "suspended" => "on_hold",
                "completed" | "complete" | "done" | "finished" | "closed" => "completed",
                "cancelled" | "canceled" | "aborted" => "cancelled",
                _ => return None,
            }
            .to_owned(),
        )),
        ObjectType::QualityEvents => Ok(Value::String(
            match remote.as_str() {
                "new" | "open" | "pending" | "failed" | "fail" => "open",
                "in_progress" | "under_review" | "investigating" => "in_progress",
                "closed" | "passed" | "pass" | "done" | "released" | "accepted" => "closed",
                "cancelled" | "canceled" | "void" => "cancelled",
                _ => return None,
            }
            .to_owned(),
        )),
        _ => return None,
    };
    value.ok()
}

/// Maps one row of `object` read with `layout`.
pub fn record(
    object: ObjectType,
    layout: &Layout,
    connection_id: &str,
    zone: &chrono_tz::Tz,
    row: &[Option<String>],
) -> Result<SourceRecord, RejectedRecord> {
    let cell = |index: usize| row.get(index).and_then(Option::as_deref);
    let Some(remote_id) = cell(layout.key).map(str::to_owned) else {
        return Err(RejectedRecord {
            remote_id: None,
            reason: format!(
                "the key column `{}` is null",
                layout.columns[layout.key].name
            ),
        });
    };
    let reject = |reason: String| RejectedRecord {
        remote_id: Some(remote_id.clone()),
        reason,
    };
    let time_of = |index: usize| -> Result<Option<DateTime<Utc>>, RejectedRecord> {
        let column = &layout.columns[index];
        match cell(index) {
            None => Ok(None),
            Some(text) => parse_time(column.kind, text, zone)
                .map_err(|err| reject(format!("column `{}`: {err}", column.name))),
        }
    };

    // The raw record: every column under its own name, typed by its kind.
    let mut raw = Map::new();
    for (index, column) in layout.columns.iter().enumerate() {
        raw.insert(
            column.name.clone(),
            value(column, cell(index), zone).map_err(reject)?,
        );
    }
    let updated = time_of(layout.changed)?;
    let created = layout.created.map(time_of).transpose()?.flatten();
    let deleted = match layout.deleted {
        None => None,
        Some(index) => deletion_time(&layout.columns[index], cell(index), zone)
            .map_err(reject)?
            .map(|flagged| flagged.or(updated).unwrap_or_else(Utc::now)),
    };

    let mut unified = Map::new();
    for (field, index) in &layout.fields {
        let column = &layout.columns[*index];
        let value = raw[&column.name].clone();
        if value.is_null() {
            continue;
        }
        let mapped = match reference_target(object, field) {
            Some(target) => {
                let id = cell(*index).unwrap_or_default().to_owned();
                serde_json::to_value(Reference::new(connection_id, target, id))
                    .map_err(|err| reject(err.to_string()))?
            }
            None if is_time_field(field) && !column.kind.is_time() => {
                let text = cell(*index).unwrap_or_default();
                match parse_time(column.kind, text, zone).map_err(|err| {
                    reject(format!("`{field}` from column `{}`: {err}", column.name))
                })? {
                    Some(time) => Value::String(format_time(time)),
                    None => continue,
                }
            }
            None => value,
        };
        unified.insert(field.clone(), mapped);
    }
    if !unified.contains_key("status") {
        let status = unified
            .get("remote_status")
            .and_then(Value::as_str)
            .and_then(|remote| normalised_status(object, remote));
        if let Some(status) = status {
            unified.insert("status".to_owned(), status);
        }
    }

    let fields = match object {
        ObjectType::Sites => typed::<Site>(unified),
        ObjectType::Assets => typed::<Asset>(unified),
        ObjectType::Meters => typed::<Meter>(unified),
        ObjectType::MeterReadings => typed::<MeterReading>(unified),
        ObjectType::AssetDowntimes => typed::<AssetDowntime>(unified),
        ObjectType::ProductionOrders => typed::<ProductionOrder>(unified),
        ObjectType::QualityEvents => typed::<QualityEvent>(unified),
        ObjectType::WorkOrders => typed::<WorkOrder>(unified),
        other => Err(format!("this connector does not map {other}")),
    }
    .map_err(reject)?;

    // Columns the mapping does not use go to custom fields.
    let used: Vec<usize> = [
        Some(layout.key),
        Some(layout.changed),
        layout.created,
        layout.deleted,
    ]
    .into_iter()
    .flatten()
    .chain(layout.fields.iter().map(|(_, index)| *index))
    .collect();
    let custom_fields = layout
        .columns
        .iter()
        .enumerate()
        .filter(|(index, _)| !used.contains(index))
        .map(|(_, column)| (column.name.clone(), raw[&column.name].clone()))
        .collect();

    Ok(SourceRecord {
        remote_id,
        remote_created_at: created,
        remote_updated_at: updated,
        remote_deleted_at: deleted,
        fields,
        custom_fields,
        remote_data: Value::Object(raw),
    })
}

/// Reads a deleted-flag column: `None` when the row is live, `Some(time)` when it is marked
/// deleted (`Some(None)` when the flag carries no time).
fn deletion_time(
    column: &Column,
    text: Option<&str>,
    zone: &chrono_tz::Tz,
) -> Result<Option<Option<DateTime<Utc>>>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    match column.kind {
        Kind::Bool | Kind::Integer => match value(column, Some(text), zone)? {
            Value::Bool(flag) => Ok(flag.then_some(None)),
            Value::Number(number) => Ok((number.as_f64() != Some(0.0)).then_some(None)),
            _ => Ok(None),
        },
        Kind::Timestamp | Kind::TimestampTz | Kind::Date => {
            Ok(parse_time(column.kind, text, zone)?.map(Some))
        }
        _ => Err(format!(
            "the deleted column `{}` ({}) is not a flag or a time",
            column.name, column.type_name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, kind: Kind) -> Column {
        Column {
            name: name.to_owned(),
            type_name: format!("{kind:?}"),
            kind,
        }
    }

    fn orders() -> Layout {
        Layout {
            columns: vec![
                column("order_id", Kind::Integer),
                column("order_no", Kind::Text),
                column("status", Kind::Text),
                column("machine_id", Kind::Text),
                column("qty_planned", Kind::Number),
                column("qty_produced", Kind::Number),
                column("actual_start", Kind::Timestamp),
                column("updated_at", Kind::Timestamp),
                column("is_deleted", Kind::Bool),
                column("shift", Kind::Text),
            ],
            key: 0,
            changed: 7,
            created: None,
            deleted: Some(8),
            fields: vec![
                ("number".into(), 1),
                ("remote_status".into(), 2),
                ("asset".into(), 3),
                ("quantity_planned".into(), 4),
                ("quantity_produced".into(), 5),
                ("actual_start".into(), 6),
            ],
        }
    }

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|cell| cell.map(str::to_owned)).collect()
    }

    #[test]
    fn a_production_order_row_becomes_a_unified_record() {
        let zone = chrono_tz::Europe::Berlin;
        let cells = row(&[
            Some("42"),
            Some("PO-4410"),
            Some("Running"),
            Some("M-L-1"),
            Some("120.000"),
            Some("117"),
            Some("2024-05-02 06:00:00"),
            Some("2024-05-02 14:00:05.123456"),
            Some("false"),
            Some("early"),
        ]);
        let record = record(ObjectType::ProductionOrders, &orders(), "c", &zone, &cells).unwrap();
        assert_eq!(record.remote_id, "42");
        assert_eq!(record.fields["number"], "PO-4410");
        assert_eq!(record.fields["status"], "in_progress");
        assert_eq!(record.fields["quantity_planned"], 120.0);
        assert_eq!(record.fields["actual_start"], "2024-05-02T04:00:00Z");
        assert_eq!(record.fields["asset"]["remote_id"], "M-L-1");
        assert_eq!(record.custom_fields["shift"], "early");
        assert_eq!(record.remote_data["qty_planned"], 120.0);
        let updated = record.remote_updated_at.unwrap();
        assert_eq!(updated.to_rfc3339(), "2024-05-02T12:00:05.123456+00:00");
        assert!(record.remote_deleted_at.is_none());
    }

    #[test]
    fn a_flagged_row_is_a_tombstone_at_its_change_time() {
        let cells = row(&[
            Some("43"),
            None,
            None,
            None,
            None,
            None,
            None,
            Some("2024-05-02 14:00:00"),
            Some("1"),
            None,
        ]);
        let record = record(
            ObjectType::ProductionOrders,
            &orders(),
            "c",
            &chrono_tz::UTC,
            &cells,
        )
        .unwrap();
        assert_eq!(record.remote_deleted_at, record.remote_updated_at);
        assert!(record.remote_deleted_at.is_some());
    }

    #[test]
    fn wrong_values_reject_the_row_by_key() {
        let mut layout = orders();
        // A text column mapped onto a number field.
        layout.fields.push(("quantity_scrapped".into(), 9));
        let cells = row(&[
            Some("44"),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some("lots"),
        ]);
        let rejected = record(
            ObjectType::ProductionOrders,
            &layout,
            "c",
            &chrono_tz::UTC,
            &cells,
        )
        .unwrap_err();
        assert_eq!(rejected.remote_id.as_deref(), Some("44"));
        let null_key = row(&[None, None, None, None, None, None, None, None, None, None]);
        let rejected = record(
            ObjectType::ProductionOrders,
            &orders(),
            "c",
            &chrono_tz::UTC,
            &null_key,
        )
        .unwrap_err();
        assert!(rejected.reason.contains("order_id"), "{}", rejected.reason);
    }

    #[test]
    fn times_of_each_kind_read_as_utc() {
        let zone = chrono_tz::America::New_York;
        let at = |kind, text| parse_time(kind, text, &zone).unwrap().unwrap().to_rfc3339();
        assert_eq!(
            at(Kind::Timestamp, "2024-07-01 08:00:00.5"),
            "2024-07-01T12:00:00.500+00:00"
        );
        assert_eq!(
            at(Kind::TimestampTz, "2024-07-01 08:00:00"),
            "2024-07-01T08:00:00+00:00"
        );
        assert_eq!(at(Kind::Date, "2024-07-01"), "2024-07-01T04:00:00+00:00");
        // The repeated autumn hour reads as its first occurrence.
        assert_eq!(
            at(Kind::Timestamp, "2024-11-03 01:30:00"),
            "2024-11-03T05:30:00+00:00"
        );
        assert_eq!(
            parse_time(Kind::Timestamp, "0000-00-00 00:00:00", &zone),
            Ok(None)
        );
        assert!(parse_time(Kind::Timestamp, "infinity", &zone).is_err());
    }

    #[test]
    fn type_names_of_both_engines_are_classified() {
        assert_eq!(Kind::of_postgres("TIMESTAMPTZ"), Kind::TimestampTz);
        assert_eq!(Kind::of_postgres("NUMERIC"), Kind::Number);
        assert_eq!(Kind::of_postgres("INT4[]"), Kind::Text);
        assert_eq!(Kind::of_mysql("BIGINT UNSIGNED"), Kind::Integer);
        assert_eq!(Kind::of_mysql("TIMESTAMP"), Kind::TimestampTz);
        assert_eq!(Kind::of_mysql("DATETIME"), Kind::Timestamp);
        assert_eq!(Kind::of_mysql("BOOLEAN"), Kind::Bool);
    }

    #[test]
    fn unified_fields_come_from_the_model() {
        let fields = unified_fields(ObjectType::ProductionOrders);
        assert!(fields.contains(&"quantity_scrapped".to_owned()));
        assert!(!unified_fields(ObjectType::WorkOrders).contains(&"tasks".to_owned()));
    }
}
