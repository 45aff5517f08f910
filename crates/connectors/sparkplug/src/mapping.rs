//! Sparkplug B → unified records: edge nodes and devices are assets, birth metrics are meters,
//! metric values are meter readings, and the time a node or device spent dead is a downtime.
//!
//! Remote ids, built from topic ids (which cannot contain `/`, `+` or `#`):
//!
//! | object | remote id |
//! |---|---|
//! | asset (edge node) | `group/node` |
//! | asset (device) | `group/node/device` |
//! | meter | `<asset>#<metric name>` |
//! | meter reading | `<meter>@<metric timestamp in ms>` |
//! | downtime | `<asset>@<death timestamp in ms>` |
//!
//! A reading's id is its metric and sample time, so the same sample delivered twice (a QoS 1
//! redelivery, a store-and-forward replay) is one record.

use chrono::{DateTime, Utc};
use millrace_connector::{ConnectorError, SourceRecord};
use millrace_model::objects::{Asset, AssetDowntime, AssetStatus, Meter, MeterReading};
use millrace_model::{ObjectType, Reference};
use serde_json::{json, Map, Value};

use crate::ingest::MetricDef;
use crate::journal::{JournalRecord, RecordBody, StoredRecord};
use crate::proto::{self, MetricValue};
use crate::topic::Topic;

/// Returns the remote id of a topic's edge node asset.
pub fn node_asset_id(topic: &Topic) -> String {
    format!("{}/{}", topic.group, topic.edge_node)
}

/// Returns the remote id of a device asset of a topic's edge node.
pub fn device_asset_id(topic: &Topic, device: &str) -> String {
    format!("{}/{}/{device}", topic.group, topic.edge_node)
}

fn owner_asset_id(topic: &Topic, device: Option<&str>) -> String {
    match device {
        Some(device) => device_asset_id(topic, device),
        None => node_asset_id(topic),
    }
}

fn meter_id(topic: &Topic, def: &MetricDef) -> String {
    format!(
        "{}#{}",
        owner_asset_id(topic, def.device.as_deref()),
        def.name
    )
}

fn to_fields<T: serde::Serialize>(unified: &T) -> Map<String, Value> {
    match serde_json::to_value(unified) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

/// Builds the asset record of an edge node (`device` absent) or a device.
pub fn asset(
    topic: &Topic,
    device: Option<&str>,
    online: bool,
    at: DateTime<Utc>,
    bd_seq: Option<u64>,
) -> JournalRecord {
    let remote_id = owner_asset_id(topic, device);
    let name = device.unwrap_or(&topic.edge_node).to_owned();
    let unified = Asset {
        asset_number: Some(remote_id.clone()),
        name: Some(name),
        asset_type: Some(
            if device.is_some() {
                "sparkplug_device"
            } else {
                "sparkplug_edge_node"
            }
            .to_owned(),
        ),
        status: Some(if online {
            AssetStatus::Operating
        } else {
            AssetStatus::NotOperating
        }),
        remote_status: Some(if online { "online" } else { "offline" }.to_owned()),
        ..Asset::default()
    };
    let mut references = Vec::new();
    if device.is_some() {
        references.push((
            "parent".to_owned(),
            ObjectType::Assets.slug().to_owned(),
            node_asset_id(topic),
        ));
    }
    let mut custom_fields = Map::new();
    custom_fields.insert("group_id".into(), json!(topic.group));
    custom_fields.insert("edge_node_id".into(), json!(topic.edge_node));
    if let Some(device) = device {
        custom_fields.insert("device_id".into(), json!(device));
    }
    if let Some(bd_seq) = bd_seq {
        custom_fields.insert("bd_seq".into(), json!(bd_seq));
    }
    let lifecycle = if online {
        "last_birth_at"
    } else {
        "last_death_at"
    };
    JournalRecord {
        object: ObjectType::Assets.slug().to_owned(),
        remote_id,
        body: RecordBody {
            fields: to_fields(&unified),
            references,
            custom_fields,
            remote_data: json!({"topic": topic.to_string(), lifecycle: at}),
            remote_created_at: None,
        },
        insert_only: false,
    }
}

/// Builds the meter record of a metric a birth declared.
pub fn meter(topic: &Topic, def: &MetricDef, alias: Option<u64>) -> JournalRecord {
    let asset_id = owner_asset_id(topic, def.device.as_deref());
    let numeric = !matches!(
        def.datatype,
        proto::datatype::BOOLEAN
            | proto::datatype::STRING
            | proto::datatype::TEXT
            | proto::datatype::UUID
    );
    let unified = Meter {
        name: Some(def.name.clone()),
        meter_type: Some(if numeric { "gauge" } else { "characteristic" }.to_owned()),
        ..Meter::default()
    };
    let mut custom_fields = Map::new();
    custom_fields.insert(
        "datatype".into(),
        json!(proto::datatype::name(def.datatype)),
    );
    if let Some(alias) = alias {
        custom_fields.insert("alias".into(), json!(alias));
    }
    JournalRecord {
        object: ObjectType::Meters.slug().to_owned(),
        remote_id: meter_id(topic, def),
        body: RecordBody {
            fields: to_fields(&unified),
            references: vec![(
                "asset".to_owned(),
                ObjectType::Assets.slug().to_owned(),
                asset_id,
            )],
            custom_fields,
            remote_data: json!({
                "topic": topic.to_string(),
                "name": def.name,
                "alias": alias,
                "datatype": def.datatype,
            }),
            remote_created_at: None,
        },
        insert_only: false,
    }
}

/// Builds the reading of one metric value sampled at `read_at`.
pub fn reading(
    topic: &Topic,
    def: &MetricDef,
    metric: &proto::Metric,
    value: &MetricValue,
    read_at: DateTime<Utc>,
    seq: Option<u64>,
) -> JournalRecord {
    let meter = meter_id(topic, def);
    let (number, text, raw) = match value {
        MetricValue::Number(n) => (Some(*n), None, json!(n)),
        MetricValue::Boolean(b) => (None, Some(b.to_string()), json!(b)),
        MetricValue::Text(t) => (None, Some(t.clone()), json!(t)),
        MetricValue::Null | MetricValue::Unsupported(_) => (None, None, Value::Null),
    };
    let unified = MeterReading {
        value: number,
        text_value: text,
        read_at: Some(read_at),
        ..MeterReading::default()
    };
    let mut custom_fields = Map::new();
    custom_fields.insert(
        "datatype".into(),
        json!(proto::datatype::name(def.datatype)),
    );
    if metric.is_historical == Some(true) {
        custom_fields.insert("is_historical".into(), json!(true));
    }
    if *value == MetricValue::Null {
        custom_fields.insert("is_null".into(), json!(true));
    }
    JournalRecord {
        object: ObjectType::MeterReadings.slug().to_owned(),
        remote_id: format!("{meter}@{}", read_at.timestamp_millis()),
        body: RecordBody {
            fields: to_fields(&unified),
            references: vec![
                (
                    "meter".to_owned(),
                    ObjectType::Meters.slug().to_owned(),
                    meter,
                ),
                (
                    "asset".to_owned(),
                    ObjectType::Assets.slug().to_owned(),
                    owner_asset_id(topic, def.device.as_deref()),
                ),
            ],
            custom_fields,
            remote_data: json!({
                "topic": topic.to_string(),
                "seq": seq,
                "metric": {
                    "name": metric.name,
                    "alias": metric.alias,
                    "timestamp": metric.timestamp,
                    "datatype": metric.datatype,
                    "value": raw,
                },
            }),
            remote_created_at: Some(read_at),
        },
        // The first copy of a sample stays: a redelivery is not a change.
        insert_only: true,
    }
}

/// Builds the downtime of an asset that died at `started_at` (and was born again at
/// `ended_at`, when it was).
pub fn downtime(
    asset_id: &str,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    reason: &str,
    topic: &Topic,
) -> JournalRecord {
    let unified = AssetDowntime {
        started_at: Some(started_at),
        ended_at,
        category: Some("unplanned".to_owned()),
        reason: Some(reason.to_owned()),
        ..AssetDowntime::default()
    };
    JournalRecord {
        object: ObjectType::AssetDowntimes.slug().to_owned(),
        remote_id: format!("{asset_id}@{}", started_at.timestamp_millis()),
        body: RecordBody {
            fields: to_fields(&unified),
            references: vec![(
                "asset".to_owned(),
                ObjectType::Assets.slug().to_owned(),
                asset_id.to_owned(),
            )],
            custom_fields: Map::new(),
            remote_data: json!({"topic": topic.to_string()}),
            remote_created_at: Some(started_at),
        },
        insert_only: false,
    }
}

/// Turns a journaled record into the record the engine stores, naming references by the
/// connection's record ids. The change time is the journal's stamp (see the README).
pub fn to_source_record(
    connection_id: &str,
    stored: StoredRecord,
) -> Result<SourceRecord, ConnectorError> {
    let mut fields = stored.body.fields;
    for (field, object, remote_id) in stored.body.references {
        let object: ObjectType = object.parse().map_err(|_| {
            ConnectorError::Mapping(format!("the journal names an unknown object `{object}`"))
        })?;
        let reference = Reference::new(connection_id, object, remote_id);
        let value = serde_json::to_value(reference)
            .map_err(|err| ConnectorError::Mapping(err.to_string()))?;
        fields.insert(field, value);
    }
    let changed_at = DateTime::<Utc>::from_timestamp_micros(stored.changed_us);
    Ok(SourceRecord {
        remote_id: stored.remote_id,
        remote_created_at: stored.body.remote_created_at,
        remote_updated_at: changed_at,
        remote_deleted_at: None,
        fields,
        custom_fields: stored.body.custom_fields,
        remote_data: stored.body.remote_data,
    })
}
