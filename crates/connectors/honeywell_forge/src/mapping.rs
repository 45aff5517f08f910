//! Gateway records → unified records, through a collection's field mapping. The mapped
//! fields are gathered under their unified names, then read into the object's typed struct,
//! so a value of the wrong type rejects that record (by id) instead of storing nonsense.

use chrono::{DateTime, Utc};
use millrace_connector::{RejectedRecord, SourceRecord};
use millrace_model::objects::{
    ActiveStatus, Asset, AssetDowntime, AssetStatus, ProductionOrder, Site,
};
use millrace_model::{ObjectType, Reference};
use serde_json::{Map, Value};

use crate::config::Collection;

/// Reads the record id: a string, or a number written as one.
pub fn id_of(item: &Value, field: &str) -> Option<String> {
    match lookup(item, field) {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// Follows a dotted path (`location.latitude`) into nested objects.
fn lookup<'a>(item: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(item, |value, key| &value[key])
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(millrace_connector::time::parse_offset_time)
}

/// Maps one record of `object` read from `collection`.
pub fn record(
    object: ObjectType,
    collection: &Collection,
    connection_id: &str,
    raw: Value,
) -> Result<SourceRecord, RejectedRecord> {
    let Some(remote_id) = id_of(&raw, &collection.id) else {
        return Err(RejectedRecord {
            remote_id: None,
            reason: format!("the record has no `{}`", collection.id),
        });
    };
    let reject = |reason: String| RejectedRecord {
        remote_id: Some(remote_id.clone()),
        reason,
    };
    let updated = match lookup(&raw, &collection.updated) {
        Value::Null => None,
        value => Some(time(value).ok_or_else(|| {
            reject(format!(
                "`{}` is not an RFC 3339 time: {value}",
                collection.updated
            ))
        })?),
    };

    let mut unified = Map::new();
    for (field, source) in &collection.fields {
        let value = lookup(&raw, source);
        if value.is_null() {
            continue;
        }
        let referenced = match field.as_str() {
            "site" => Some(ObjectType::Sites),
            "asset" | "parent" => Some(ObjectType::Assets),
            _ => None,
        };
        let mapped = match referenced {
            Some(target) => {
                let id = id_of(&raw, source)
                    .ok_or_else(|| reject(format!("`{source}` is not an id: {value}")))?;
                serde_json::to_value(Reference::new(connection_id, target, id))
                    .map_err(|err| reject(err.to_string()))?
            }
            None if is_time_field(field) => {
                let at = time(value).ok_or_else(|| {
                    reject(format!("`{source}` is not an RFC 3339 time: {value}"))
                })?;
                Value::String(at.to_rfc3339())
            }
            None => value.clone(),
        };
        unified.insert(field.clone(), mapped);
    }
    let remote_status = unified
        .get("remote_status")
        .and_then(Value::as_str)
        .map(str::to_lowercase);

    let typed = |value: Value| -> Result<Map<String, Value>, RejectedRecord> {
        match value {
            Value::Object(fields) => Ok(fields),
            other => Err(reject(format!("mapped to {other}, not an object"))),
        }
    };
    let fields = Value::Object(unified);
    let fields = match object {
        ObjectType::Sites => {
            let mut site: Site =
                serde_json::from_value(fields).map_err(|err| reject(err.to_string()))?;
            site.status = remote_status.as_deref().and_then(|status| match status {
                "active" | "operating" | "online" => Some(ActiveStatus::Active),
                "inactive" | "closed" | "offline" => Some(ActiveStatus::Inactive),
                _ => None,
            });
            typed(serde_json::to_value(site).map_err(|err| reject(err.to_string()))?)?
        }
        ObjectType::Assets => {
            let mut asset: Asset =
                serde_json::from_value(fields).map_err(|err| reject(err.to_string()))?;
            asset.status = remote_status.as_deref().and_then(|status| match status {
                "running" | "operating" | "active" | "online" => Some(AssetStatus::Operating),
                "stopped" | "down" | "idle" | "offline" | "maintenance" => {
                    Some(AssetStatus::NotOperating)
                }
                "decommissioned" | "retired" => Some(AssetStatus::Decommissioned),
                _ => None,
            });
            typed(serde_json::to_value(asset).map_err(|err| reject(err.to_string()))?)?
        }
        ObjectType::AssetDowntimes => {
            let downtime: AssetDowntime =
                serde_json::from_value(fields).map_err(|err| reject(err.to_string()))?;
            typed(serde_json::to_value(downtime).map_err(|err| reject(err.to_string()))?)?
        }
        _ => {
            let mut order: ProductionOrder =
                serde_json::from_value(fields).map_err(|err| reject(err.to_string()))?;
            order.status = remote_status.as_deref().and_then(|status| match status {
                "planned" | "released" => Some("planned".to_owned()),
                "running" | "in_progress" | "active" => Some("in_progress".to_owned()),
                "completed" | "closed" | "done" => Some("completed".to_owned()),
                "cancelled" | "canceled" => Some("cancelled".to_owned()),
                _ => None,
            });
            typed(serde_json::to_value(order).map_err(|err| reject(err.to_string()))?)?
        }
    };

    Ok(SourceRecord {
        remote_created_at: collection
            .created
            .as_deref()
            .and_then(|field| time(lookup(&raw, field))),
        remote_updated_at: updated,
        remote_deleted_at: None,
        fields,
        custom_fields: collection
            .extra_fields
            .iter()
            .map(|field| (field.clone(), lookup(&raw, field).clone()))
            .collect(),
        remote_data: raw,
        remote_id,
    })
}

fn is_time_field(field: &str) -> bool {
    field.ends_with("_at") || field.ends_with("_start") || field.ends_with("_end")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mapping;
    use serde_json::json;

    #[test]
    fn production_figures_become_a_production_order() {
        let mapping = Mapping::default();
        let raw = json!({
            "id": "prod-17", "orderNumber": "PO-4410", "product": "M14860", "status": "Completed",
            "siteId": "site-1", "assetId": "asset-3", "planned": 120, "produced": 117,
            "scrapped": 3, "unit": "pcs", "startedAt": "2024-05-02T06:00:00+02:00",
            "endedAt": "2024-05-02T14:00:00+02:00", "updatedAt": "2024-05-02T12:00:05.250Z",
            "shift": "early"
        });
        let record = record(ObjectType::ProductionOrders, &mapping.production, "c", raw).unwrap();
        assert_eq!(record.fields["quantity_produced"], 117.0);
        assert_eq!(record.fields["quantity_scrapped"], 3.0);
        assert_eq!(record.fields["status"], "completed");
        assert_eq!(record.fields["actual_start"], "2024-05-02T04:00:00Z");
        assert_eq!(record.fields["asset"]["remote_id"], "asset-3");
        assert_eq!(record.custom_fields["shift"], "early");
        assert_eq!(
            record.remote_updated_at.unwrap().timestamp_subsec_millis(),
            250
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_rejects_the_record_by_id() {
        let mapping = Mapping::default();
        let raw = json!({"id": "prod-18", "produced": "many", "updatedAt": "2024-05-02T12:00:00Z"});
        let rejected =
            record(ObjectType::ProductionOrders, &mapping.production, "c", raw).unwrap_err();
        assert_eq!(rejected.remote_id.as_deref(), Some("prod-18"));
        let raw = json!({"id": "a-1", "updatedAt": "yesterday"});
        assert!(record(ObjectType::Assets, &mapping.assets, "c", raw).is_err());
    }
}
