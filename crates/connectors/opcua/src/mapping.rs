//! OPC UA nodes and values into unified records: objects become assets, variables meters, their
//! values meter readings, and a machine state variable's stops asset downtimes.

use chrono::{DateTime, SecondsFormat, Utc};
use millrace_connector::{ConnectorError, SourceRecord};
use millrace_model::objects::{Asset, AssetDowntime, Meter, MeterReading};
use millrace_model::{ObjectType, Reference};
use opcua::types::{DataValue, NodeId, StatusCode, Variant};
use serde_json::{json, Value};

use crate::client::Found;

/// Formats an instant as remote ids and raw records carry it: RFC 3339 UTC, with as many
/// fraction digits as it has (OPC UA times have 100 ns resolution).
pub fn instant(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Returns the remote id of a reading: its node and source timestamp, which identify it across
/// re-reads, restarts and both ways of reading (history and subscription).
pub fn reading_id(node: &NodeId, time: DateTime<Utc>) -> String {
    format!("{node}@{}", instant(time))
}

/// Maps an object to an asset; `parent` is the asset above it, if any.
pub fn asset(
    connection: &str,
    found: &Found,
    parent: Option<&NodeId>,
) -> Result<SourceRecord, ConnectorError> {
    let unified = Asset {
        asset_number: Some(found.browse_name.clone()),
        name: Some(found.display_name.clone()),
        asset_type: Some(found.type_definition.to_string()),
        parent: parent.map(|node| Reference::new(connection, ObjectType::Assets, node.to_string())),
        ..Asset::default()
    };
    SourceRecord::new(found.node.to_string(), &unified, raw_node(found))
}

/// Maps a variable to a meter; `asset` is the asset it belongs to, if any.
pub fn meter(
    connection: &str,
    found: &Found,
    asset: Option<&NodeId>,
    historized: bool,
    data_type: Option<&NodeId>,
) -> Result<SourceRecord, ConnectorError> {
    let unified = Meter {
        name: Some(found.browse_name.clone()),
        description: Some(found.display_name.clone()),
        meter_type: Some(meter_type(data_type).to_owned()),
        asset: asset.map(|node| Reference::new(connection, ObjectType::Assets, node.to_string())),
        ..Meter::default()
    };
    let mut record = SourceRecord::new(found.node.to_string(), &unified, raw_node(found))?;
    record
        .custom_fields
        .insert("historized".to_owned(), Value::Bool(historized));
    Ok(record)
}

/// A meter's type from its variable's data type: text and Boolean values are
/// `characteristic`, numbers `gauge` (OPC UA does not say whether a number only grows).
fn meter_type(data_type: Option<&NodeId>) -> &'static str {
    // Boolean (i=1), String (i=12), LocalizedText (i=21).
    let characteristic = ["i=1", "i=12", "i=21"];
    match data_type {
        Some(kind) if characteristic.contains(&kind.to_string().as_str()) => "characteristic",
        _ => "gauge",
    }
}

/// Maps one value of a variable to a reading, or `None` for a value without a good or
/// uncertain status, without a source timestamp, or without a value.
pub fn reading(
    connection: &str,
    node: &NodeId,
    asset: Option<&NodeId>,
    value: &DataValue,
) -> Result<Option<SourceRecord>, ConnectorError> {
    let status = value.status.unwrap_or(StatusCode::Good);
    let (Some(time), Some(variant)) = (value.source_timestamp, value.value.as_ref()) else {
        return Ok(None);
    };
    if status.is_bad() || matches!(variant, Variant::Empty) {
        return Ok(None);
    }
    let time = time.as_chrono();
    let (number, text) = split_value(variant);
    let unified = MeterReading {
        meter: Some(Reference::new(
            connection,
            ObjectType::Meters,
            node.to_string(),
        )),
        asset: asset.map(|node| Reference::new(connection, ObjectType::Assets, node.to_string())),
        value: number,
        text_value: text,
        read_at: Some(time),
        ..MeterReading::default()
    };
    let raw = json!({
        "node_id": node.to_string(),
        "source_timestamp": instant(time),
        "value": variant_json(variant),
        "status": status.to_string(),
    });
    let mut record = SourceRecord::new(reading_id(node, time), &unified, raw)?;
    record.remote_created_at = Some(time);
    record.remote_updated_at = Some(time);
    if !status.is_good() {
        record
            .custom_fields
            .insert("status".to_owned(), Value::String(status.to_string()));
    }
    Ok(Some(record))
}

/// A downtime: from a stop to the next run (`ended_at` is `None` while it lasts).
pub fn downtime(
    connection: &str,
    asset: &NodeId,
    state_node: &NodeId,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    stop_state: &str,
) -> Result<SourceRecord, ConnectorError> {
    let unified = AssetDowntime {
        asset: Some(Reference::new(
            connection,
            ObjectType::Assets,
            asset.to_string(),
        )),
        started_at: Some(started_at),
        ended_at,
        reason: Some(format!("state {stop_state}")),
        ..AssetDowntime::default()
    };
    let raw = json!({
        "state_node_id": state_node.to_string(),
        "stopped_at": instant(started_at),
        "stop_state": stop_state,
        "running_again_at": ended_at.map(instant),
    });
    let mut record = SourceRecord::new(format!("{asset}@{}", instant(started_at)), &unified, raw)?;
    record.remote_created_at = Some(started_at);
    record.remote_updated_at = Some(ended_at.unwrap_or(started_at));
    Ok(record)
}

/// Splits a value into a number and a text: numbers are numbers, Booleans both (1 or 0, and
/// `true` or `false`), anything else text.
pub fn split_value(variant: &Variant) -> (Option<f64>, Option<String>) {
    match variant {
        Variant::Boolean(value) => (Some(f64::from(u8::from(*value))), Some(value.to_string())),
        Variant::String(text) => (None, Some(text.as_ref().to_owned())),
        Variant::LocalizedText(text) => (None, Some(text.text.as_ref().to_owned())),
        other if other.is_numeric() => (other.as_f64(), None),
        other => (None, Some(other.to_string())),
    }
}

/// The text a state value is compared with the running values as.
pub fn state_text(variant: &Variant) -> String {
    match split_value(variant) {
        (_, Some(text)) => text,
        (Some(number), None) => {
            if number.fract() == 0.0 {
                format!("{}", number as i64)
            } else {
                number.to_string()
            }
        }
        (None, None) => String::new(),
    }
}

fn variant_json(variant: &Variant) -> Value {
    match split_value(variant) {
        (_, Some(text)) if matches!(variant, Variant::Boolean(_)) => Value::Bool(text == "true"),
        (Some(number), _) => json!(number),
        (None, Some(text)) => Value::String(text),
        (None, None) => Value::Null,
    }
}

fn raw_node(found: &Found) -> Value {
    json!({
        "node_id": found.node.to_string(),
        "node_class": format!("{:?}", found.class),
        "browse_name": found.browse_name,
        "display_name": found.display_name,
        "type_definition": found.type_definition.to_string(),
        "parent": found.parent.as_ref().map(NodeId::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_identified_by_node_and_source_timestamp() {
        let node = NodeId::new(2, "Plant.Line1.Press1.Temperature");
        let time = DateTime::parse_from_rfc3339("2026-12-04T16:29:21.256747Z").unwrap();
        let value = DataValue {
            value: Some(Variant::Double(41.5)),
            source_timestamp: Some(time.with_timezone(&Utc).into()),
            ..DataValue::default()
        };
        let record = reading("conn", &node, None, &value).unwrap().unwrap();
        assert_eq!(
            record.remote_id,
            "ns=2;s=Plant.Line1.Press1.Temperature@2026-12-04T16:29:21.256747Z"
        );
        assert_eq!(record.fields["value"], json!(41.5));
    }

    #[test]
    fn bad_values_and_values_without_a_source_time_are_no_readings() {
        let node = NodeId::new(2, "x");
        let untimed = DataValue {
            value: Some(Variant::Double(1.0)),
            ..DataValue::default()
        };
        assert!(reading("c", &node, None, &untimed).unwrap().is_none());
        let bad = DataValue {
            value: Some(Variant::Double(1.0)),
            status: Some(StatusCode::BadSensorFailure),
            source_timestamp: Some(opcua::types::DateTime::now()),
            ..DataValue::default()
        };
        assert!(reading("c", &node, None, &bad).unwrap().is_none());
    }

    #[test]
    fn booleans_are_both_number_and_text() {
        assert_eq!(
            split_value(&Variant::Boolean(true)),
            (Some(1.0), Some("true".to_owned()))
        );
        assert_eq!(state_text(&Variant::Int32(3)), "3");
    }
}
