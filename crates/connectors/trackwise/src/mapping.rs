//! TrackWise Digital records → unified sites and quality events, through the connection's
//! [`Mapping`] of API names.

use chrono::{DateTime, NaiveDate, Utc};
use millrace_connector::{RejectedRecord, SourceRecord};
use millrace_model::objects::{ActiveStatus, QualityEvent, Site};
use millrace_model::{ObjectType, Reference};
use serde_json::{Map, Value};

use crate::client::{is_record_id, parse_salesforce_time};
use crate::config::Mapping;

/// Maps one raw record of the site object (`quality` is `None`) or of the quality object at
/// index `quality` of the mapping.
pub fn record(
    mapping: &Mapping,
    quality: Option<usize>,
    connection_id: &str,
    raw: Value,
) -> Result<SourceRecord, RejectedRecord> {
    let remote_id = raw["Id"]
        .as_str()
        .filter(|id| is_record_id(id))
        .map(str::to_owned)
        .ok_or_else(|| RejectedRecord {
            remote_id: None,
            reason: format!("the record has no valid Id: {}", excerpt(&raw)),
        })?;
    let reject = |reason: String| RejectedRecord {
        remote_id: Some(remote_id.clone()),
        reason,
    };
    let modstamp = raw["SystemModstamp"]
        .as_str()
        .and_then(parse_salesforce_time)
        .ok_or_else(|| {
            reject(format!(
                "SystemModstamp is not a Salesforce datetime: {}",
                raw["SystemModstamp"]
            ))
        })?;
    let created = raw["CreatedDate"].as_str().and_then(parse_salesforce_time);

    let (mut mapped, custom_fields) = match quality {
        None => site(mapping, &raw),
        Some(index) => match mapping.quality_events.get(index) {
            Some(object) => quality_event(mapping, object, connection_id, &raw),
            None => Err(format!("no quality object at index {index}")),
        },
    }
    .map_err(reject)?;
    mapped.remote_created_at = created;
    mapped.remote_updated_at = Some(modstamp);
    mapped.custom_fields = custom_fields;
    mapped.remote_id = remote_id;
    mapped.remote_data = raw;
    Ok(mapped)
}

type Mapped = Result<(SourceRecord, Map<String, Value>), String>;

fn site(mapping: &Mapping, raw: &Value) -> Mapped {
    let fields = &mapping.site;
    let active = fields
        .active
        .as_deref()
        .and_then(|field| raw[field].as_bool());
    let unified = Site {
        name: text(raw, Some(&fields.name)),
        description: text(raw, fields.description.as_deref()),
        status: active.map(|active| {
            if active {
                ActiveStatus::Active
            } else {
                ActiveStatus::Inactive
            }
        }),
        remote_status: active.map(|active| if active { "Active" } else { "Inactive" }.to_owned()),
        address: text(raw, fields.address.as_deref()),
        latitude: None,
        longitude: None,
        time_zone: text(raw, fields.time_zone.as_deref()),
    };
    SourceRecord::new(String::new(), &unified, Value::Null)
        .map(|record| (record, Map::new()))
        .map_err(|err| err.to_string())
}

fn quality_event(
    mapping: &Mapping,
    object: &crate::config::QualityObject,
    connection_id: &str,
    raw: &Value,
) -> Mapped {
    let fields = &object.fields;
    let remote_status = text(raw, fields.status.as_deref());
    let site = text(raw, fields.site.as_deref())
        .filter(|id| is_record_id(id))
        .map(|id| Reference::new(connection_id, ObjectType::Sites, id));
    let unified = QualityEvent {
        number: text(raw, fields.number.as_deref()),
        event_type: Some(object.event_type.clone()),
        title: text(raw, fields.title.as_deref()),
        description: text(raw, fields.description.as_deref()),
        status: remote_status
            .as_deref()
            .and_then(|remote| mapping.status_of(remote)),
        remote_status,
        severity: text(raw, fields.severity.as_deref()),
        site,
        asset: None,
        opened_at: time(raw, fields.opened_at.as_deref())?,
        due_at: time(raw, fields.due_at.as_deref())?,
        closed_at: time(raw, fields.closed_at.as_deref())?,
    };
    let custom_fields = object
        .extra_fields
        .iter()
        .map(|field| (field.clone(), raw[field.as_str()].clone()))
        .collect();
    SourceRecord::new(String::new(), &unified, Value::Null)
        .map(|record| (record, custom_fields))
        .map_err(|err| err.to_string())
}

/// A text field, or a number or checkbox written as text; `None` when absent or empty.
fn text(raw: &Value, field: Option<&str>) -> Option<String> {
    match &raw[field?] {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A datetime field (`2024-03-05T10:20:30.000+0000`) or a date field (`2024-03-05`, read as
/// midnight UTC, as Salesforce stores dates without a zone).
fn time(raw: &Value, field: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(field) = field else {
        return Ok(None);
    };
    match &raw[field] {
        Value::Null => Ok(None),
        Value::String(text) => parse_salesforce_time(text)
            .or_else(|| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|date| date.and_hms_opt(0, 0, 0))
                    .map(|midnight| midnight.and_utc())
            })
            .map(Some)
            .ok_or_else(|| format!("{field} is not a date or datetime: {text}")),
        other => Err(format!("{field} is not a date or datetime: {other}")),
    }
}

fn excerpt(raw: &Value) -> String {
    raw.to_string().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deviation() -> Value {
        json!({
            "attributes": {"type": "CMPL123QMS__Deviation__c"},
            "Id": "a0D000000000001AAA",
            "Name": "DEV-000123",
            "CreatedDate": "2024-02-01T08:00:00.000+0000",
            "SystemModstamp": "2024-02-03T09:30:00.000+0000",
            "IsDeleted": false,
            "CMPL123QMS__Short_Description__c": "Hydraulic hose leaking on line 3",
            "CMPL123QMS__Status__c": "Under Investigation",
            "CMPL123QMS__Severity__c": "Major",
            "CMPL123QMS__Site__c": "a0S000000000001AAA",
            "CMPL123QMS__Date_Opened__c": "2024-02-01T08:00:00.000+0000",
            "CMPL123QMS__Due_Date__c": "2024-03-01",
            "CMPL123QMS__Date_Closed__c": null
        })
    }

    #[test]
    fn a_deviation_becomes_a_quality_event() {
        let mapping = Mapping::default();
        let record = record(&mapping, Some(0), "conn", deviation()).unwrap();
        assert_eq!(record.remote_id, "a0D000000000001AAA");
        assert_eq!(record.fields["event_type"], "deviation");
        assert_eq!(record.fields["number"], "DEV-000123");
        assert_eq!(record.fields["status"], "in_progress");
        assert_eq!(record.fields["remote_status"], "Under Investigation");
        assert_eq!(record.fields["due_at"], "2024-03-01T00:00:00Z");
        assert_eq!(record.fields["site"]["remote_id"], "a0S000000000001AAA");
        assert_eq!(
            record.remote_updated_at.unwrap().to_rfc3339(),
            "2024-02-03T09:30:00+00:00"
        );
        assert_eq!(record.remote_data, deviation());
    }

    #[test]
    fn an_unreadable_stamp_or_date_rejects_the_record_by_id() {
        let mapping = Mapping::default();
        let mut raw = deviation();
        raw["SystemModstamp"] = json!("garbled");
        let rejected = record(&mapping, Some(0), "conn", raw).unwrap_err();
        assert_eq!(rejected.remote_id.as_deref(), Some("a0D000000000001AAA"));
        let mut raw = deviation();
        raw["CMPL123QMS__Due_Date__c"] = json!("next week");
        assert!(record(&mapping, Some(0), "conn", raw).is_err());
        let mut raw = deviation();
        raw["Id"] = json!("'; DROP");
        assert_eq!(
            record(&mapping, Some(0), "conn", raw)
                .unwrap_err()
                .remote_id,
            None
        );
    }
}
