//! The per-connection field mapping of the Forge gateway's collections.
//!
//! Honeywell Forge's enterprise APIs are partner-gated and their schemas are not public (the
//! one public trace is `GET /sine/v1/sites` behind `api.forge.connected.honeywell.com`). So
//! every path, parameter and field name the connector uses is configuration: [`Mapping`]'s
//! defaults describe the JSON shape of Millrace's own gateway sandbox, and a connection's
//! `mapping` credential field overrides any part of it to fit the gateway it talks to.

use std::collections::BTreeMap;

use millrace_connector::ConnectorError;
use millrace_model::ObjectType;
use serde::{Deserialize, Serialize};

/// How to read the gateway: paging conventions and one collection per object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    pub paging: Paging,
    pub sites: Collection,
    pub assets: Collection,
    /// Alarms and events; they become `asset-downtimes` (see the README).
    pub alarms_events: Collection,
    /// Production figures; they become `production-orders`.
    pub production: Collection,
}

/// The gateway's paging and change-filter conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paging {
    /// Query parameter of the page size.
    pub page_size_param: String,
    /// Query parameter that carries the continuation.
    pub continuation_param: String,
    /// Query parameter of the change filter (records changed at or after, RFC 3339).
    pub changed_since_param: String,
    /// Key of the answer's record array.
    pub items: String,
    /// Key of the answer's continuation (null or absent on the last page).
    pub continuation: String,
}

/// One collection: where it is, its id and change fields, and unified field → source field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    /// Path below the gateway's base URL, e.g. `/sine/v1/sites`.
    pub path: String,
    pub id: String,
    /// The field holding the record's last change time (RFC 3339).
    pub updated: String,
    #[serde(default)]
    pub created: Option<String>,
    /// Unified field name → source field (a key, or a dotted path into nested objects).
    pub fields: BTreeMap<String, String>,
    /// More source fields to keep in `custom_fields`.
    #[serde(default)]
    pub extra_fields: Vec<String>,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page_size_param: "pageSize".into(),
            continuation_param: "continuationToken".into(),
            changed_since_param: "updatedSince".into(),
            items: "data".into(),
            continuation: "continuationToken".into(),
        }
    }
}

fn collection(path: &str, fields: &[(&str, &str)], extra: &[&str]) -> Collection {
    Collection {
        path: path.to_owned(),
        id: "id".into(),
        updated: "updatedAt".into(),
        created: Some("createdAt".into()),
        fields: fields
            .iter()
            .map(|(unified, source)| ((*unified).to_owned(), (*source).to_owned()))
            .collect(),
        extra_fields: extra.iter().map(|field| (*field).to_owned()).collect(),
    }
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            paging: Paging::default(),
            sites: collection(
                "/sine/v1/sites",
                &[
                    ("name", "name"),
                    ("description", "description"),
                    ("remote_status", "status"),
                    ("address", "address"),
                    ("time_zone", "timeZone"),
                    ("latitude", "location.latitude"),
                    ("longitude", "location.longitude"),
                ],
                &[],
            ),
            assets: collection(
                "/sine/v1/assets",
                &[
                    ("asset_number", "tag"),
                    ("name", "name"),
                    ("description", "description"),
                    ("asset_type", "type"),
                    ("manufacturer", "manufacturer"),
                    ("model", "model"),
                    ("serial_number", "serialNumber"),
                    ("remote_status", "status"),
                    ("site", "siteId"),
                    ("parent", "parentId"),
                ],
                &[],
            ),
            alarms_events: collection(
                "/sine/v1/alarms-events",
                &[
                    ("asset", "assetId"),
                    ("started_at", "raisedAt"),
                    ("ended_at", "clearedAt"),
                    ("category", "category"),
                    ("reason", "message"),
                ],
                &["kind", "priority", "state"],
            ),
            production: collection(
                "/sine/v1/production",
                &[
                    ("number", "orderNumber"),
                    ("product", "product"),
                    ("remote_status", "status"),
                    ("site", "siteId"),
                    ("asset", "assetId"),
                    ("quantity_planned", "planned"),
                    ("quantity_produced", "produced"),
                    ("quantity_scrapped", "scrapped"),
                    ("unit", "unit"),
                    ("actual_start", "startedAt"),
                    ("actual_end", "endedAt"),
                ],
                &["shift"],
            ),
        }
    }
}

/// The unified fields each object's mapping may fill.
fn allowed(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Sites => &[
            "name",
            "description",
            "remote_status",
            "address",
            "time_zone",
            "latitude",
            "longitude",
        ],
        ObjectType::Assets => &[
            "asset_number",
            "name",
            "description",
            "asset_type",
            "manufacturer",
            "model",
            "serial_number",
            "remote_status",
            "site",
            "parent",
            "installed_at",
            "criticality",
        ],
        ObjectType::AssetDowntimes => &["asset", "started_at", "ended_at", "category", "reason"],
        ObjectType::ProductionOrders => &[
            "number",
            "product",
            "description",
            "remote_status",
            "site",
            "asset",
            "quantity_planned",
            "quantity_produced",
            "quantity_scrapped",
            "unit",
            "scheduled_start",
            "scheduled_end",
            "actual_start",
            "actual_end",
        ],
        _ => &[],
    }
}

impl Mapping {
    /// Reads the `mapping` credential field: absent means the defaults; a JSON object (or a
    /// string holding one) overrides the parts it names.
    pub fn from_credential(value: Option<&serde_json::Value>) -> Result<Mapping, ConnectorError> {
        let parsed = match value {
            None | Some(serde_json::Value::Null) => return Ok(Mapping::default()),
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => {
                return Ok(Mapping::default())
            }
            Some(serde_json::Value::String(text)) => serde_json::from_str::<Mapping>(text),
            Some(other) => serde_json::from_value::<Mapping>(other.clone()),
        };
        let mapping = parsed.map_err(|err| {
            ConnectorError::InvalidCredentials(format!("the field `mapping` is not valid: {err}"))
        })?;
        for object in crate::OBJECTS {
            let collection = mapping.collection(object);
            if !collection.path.starts_with('/') {
                return Err(ConnectorError::InvalidCredentials(format!(
                    "the mapping's path for {object} must start with /"
                )));
            }
            if let Some(unknown) = collection
                .fields
                .keys()
                .find(|field| !allowed(object).contains(&field.as_str()))
            {
                return Err(ConnectorError::InvalidCredentials(format!(
                    "the mapping of {object} names `{unknown}`, which is not a unified field; \
                     known: {}",
                    allowed(object).join(", ")
                )));
            }
        }
        Ok(mapping)
    }

    /// The collection an object is read from.
    pub fn collection(&self, object: ObjectType) -> &Collection {
        match object {
            ObjectType::Sites => &self.sites,
            ObjectType::Assets => &self.assets,
            ObjectType::AssetDowntimes => &self.alarms_events,
            _ => &self.production,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_partial_overrides_and_unknown_fields() {
        assert_eq!(Mapping::from_credential(None).unwrap(), Mapping::default());
        let partial = json!({"paging": {"items": "items", "page_size_param": "limit",
            "continuation_param": "cursor", "changed_since_param": "modifiedFrom",
            "continuation": "nextCursor"}});
        let mapping = Mapping::from_credential(Some(&partial)).unwrap();
        assert_eq!(mapping.paging.items, "items");
        assert_eq!(mapping.sites, Mapping::default().sites);
        let unknown = json!({"sites": {"path": "/x", "id": "id", "updated": "u",
            "fields": {"colour": "c"}}});
        let err = Mapping::from_credential(Some(&unknown)).unwrap_err();
        assert!(err.to_string().contains("not a unified field"), "{err}");
    }
}
