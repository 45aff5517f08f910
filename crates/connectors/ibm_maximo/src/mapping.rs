//! Maximo records (lean JSON) into the unified model: typed fields, normalised statuses with
//! the source's value beside them, references by natural key, the rest in `custom_fields`.
//!
//! Remote ids are Maximo's natural keys joined by `/`, most specific last, e.g. `MINE/EX00042`
//! for work order `EX00042` at site `MINE` (Maximo's own `href` ids encode the same values).
//! They are stable for the life of a record and let a record name the remote id of another
//! (a work order's asset is `siteid/assetnum`) without a lookup.

use chrono::{DateTime, Utc};
use millrace_connector::{ConnectorError, SourceRecord};
use millrace_model::objects::*;
use millrace_model::{ObjectType, Reference};
use serde_json::{Map, Value};

/// What mapping needs besides the record.
pub struct MapContext<'a> {
    pub connection_id: &'a str,
}

impl MapContext<'_> {
    fn reference(&self, object: ObjectType, remote_id: String) -> Reference {
        Reference::new(self.connection_id, object, remote_id)
    }
}

/// Returns the natural key: the values of `attrs` joined by `/`, or `None` if one is missing.
pub fn key_of(record: &Value, attrs: &[&str]) -> Option<String> {
    let mut parts = Vec::with_capacity(attrs.len());
    for attr in attrs {
        match record.get(*attr)? {
            Value::String(text) if !text.is_empty() => parts.push(text.clone()),
            Value::Number(number) => parts.push(number.to_string()),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Maps one member of `object`'s structure.
pub fn map(
    object: ObjectType,
    context: &MapContext<'_>,
    raw: &Value,
) -> Result<SourceRecord, ConnectorError> {
    match object {
        ObjectType::Sites => site(context, raw),
        ObjectType::Locations => location(context, raw),
        ObjectType::Assets => asset(context, raw),
        ObjectType::WorkOrders => work_order(context, raw),
        ObjectType::WorkRequests => work_request(context, raw),
        ObjectType::Parts => part(context, raw, &[]),
        ObjectType::PurchaseOrders => purchase_order(context, raw),
        ObjectType::Vendors => vendor(context, raw),
        ObjectType::Users => user(context, raw),
        ObjectType::Meters => meter(context, raw),
        ObjectType::MeterReadings => meter_reading(context, raw),
        other => Err(ConnectorError::Unsupported(other.slug().to_owned())),
    }
}

/// Reading helpers over one raw record.
struct Raw<'a>(&'a Value);

impl<'a> Raw<'a> {
    fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    fn number(&self, name: &str) -> Option<f64> {
        match self.0.get(name)? {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        }
    }

    fn flag(&self, name: &str) -> Option<bool> {
        match self.0.get(name)? {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => Some(number.as_f64() != Some(0.0)),
            _ => None,
        }
    }

    fn time(&self, name: &str) -> Option<DateTime<Utc>> {
        self.0
            .get(name)?
            .as_str()
            .and_then(millrace_connector::time::parse_offset_time)
    }

    /// The status's internal value when the server sends it (synonyms map to it), else the
    /// status itself, upper-cased for matching.
    fn internal_status(&self) -> Option<String> {
        self.text("status_maxvalue")
            .or_else(|| self.text("status"))
            .map(|s| s.to_uppercase())
    }

    fn children(&self, name: &str) -> &'a [Value] {
        self.0
            .get(name)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn key(&self, attrs: &[&str], structure: &str) -> Result<String, ConnectorError> {
        key_of(self.0, attrs).ok_or_else(|| {
            ConnectorError::Mapping(format!(
                "a {structure} record lacks its key ({}): {}",
                attrs.join(", "),
                excerpt(self.0)
            ))
        })
    }
}

fn excerpt(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

/// Builds the record: unified fields, the source's times, unmapped attributes as custom fields.
fn finish<T: serde::Serialize>(
    remote_id: String,
    unified: &T,
    raw: &Value,
    mapped: &str,
    created: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
) -> Result<SourceRecord, ConnectorError> {
    let mut record = SourceRecord::new(remote_id, unified, raw.clone())?;
    record.remote_created_at = created;
    record.remote_updated_at = updated;
    record.custom_fields = custom_fields(raw, mapped);
    Ok(record)
}

/// Returns the attributes not named in `mapped` (a space-separated list), `href` excepted.
fn custom_fields(raw: &Value, mapped: &str) -> Map<String, Value> {
    let Some(attrs) = raw.as_object() else {
        return Map::new();
    };
    attrs
        .iter()
        .filter(|(name, _)| {
            name.as_str() != "href" && !mapped.split_whitespace().any(|m| m == *name)
        })
        .filter(|(name, _)| !name.ends_with("_collectionref") && !name.ends_with("_maxvalue"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn site(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let _ = context;
    let r = Raw(raw);
    let remote_id = r.key(&["siteid"], "mxapisite")?;
    let active = r.flag("active");
    let unified = Site {
        name: r.text("siteid"),
        description: r.text("description"),
        status: active.map(|active| {
            if active {
                ActiveStatus::Active
            } else {
                ActiveStatus::Inactive
            }
        }),
        remote_status: active.map(|active| active.to_string()),
        ..Site::default()
    };
    let mapped = "siteid description active changedate";
    finish(remote_id, &unified, raw, mapped, None, r.time("changedate"))
}

fn active_status(status: Option<&str>) -> Option<ActiveStatus> {
    match status? {
        "OPERATING" | "ACTIVE" | "PENDING" | "PLANNING" => Some(ActiveStatus::Active),
        "DECOMMISSIONED" | "INACTIVE" | "OBSOLETE" | "PENDOBS" => Some(ActiveStatus::Inactive),
        _ => None,
    }
}

fn location(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["siteid", "location"], "mxapilocations")?;
    let site = r.text("siteid");
    let unified = Location {
        code: r.text("location"),
        name: r.text("description"),
        description: r.text("description"),
        location_type: r.text("type"),
        status: active_status(r.internal_status().as_deref()),
        remote_status: r.text("status"),
        site: site
            .clone()
            .map(|site| context.reference(ObjectType::Sites, site)),
        parent: site.as_ref().zip(r.text("parent")).map(|(site, parent)| {
            context.reference(ObjectType::Locations, format!("{site}/{parent}"))
        }),
        latitude: r.number("latitudey"),
        longitude: r.number("longitudex"),
    };
    let mapped = "location description type status siteid parent latitudey longitudex \
                  changedate";
    finish(remote_id, &unified, raw, mapped, None, r.time("changedate"))
}

fn asset(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["siteid", "assetnum"], "mxapiasset")?;
    let site = r.text("siteid");
    let at_site = |object: ObjectType, value: Option<String>| {
        site.as_ref()
            .zip(value)
            .map(|(site, value)| context.reference(object, format!("{site}/{value}")))
    };
    let status = match r.internal_status().as_deref() {
        Some("OPERATING" | "ACTIVE") => Some(AssetStatus::Operating),
        Some("DECOMMISSIONED") => Some(AssetStatus::Decommissioned),
        Some("NOT READY" | "NOTREADY" | "BROKEN" | "LIMITEDUSE" | "INACTIVE") => {
            Some(AssetStatus::NotOperating)
        }
        _ => None,
    };
    let unified = Asset {
        asset_number: r.text("assetnum"),
        name: r.text("description"),
        description: r.text("description"),
        asset_type: r.text("assettype"),
        manufacturer: r.text("manufacturer"),
        model: None,
        serial_number: r.text("serialnum"),
        status,
        remote_status: r.text("status"),
        site: site
            .clone()
            .map(|site| context.reference(ObjectType::Sites, site)),
        location: at_site(ObjectType::Locations, r.text("location")),
        parent: at_site(ObjectType::Assets, r.text("parent")),
        installed_at: r.time("installdate"),
        criticality: r.text("priority"),
    };
    let mapped = "assetnum description assettype manufacturer serialnum status siteid \
                  location parent installdate priority changedate";
    finish(remote_id, &unified, raw, mapped, None, r.time("changedate"))
}

/// Work order status by Maximo's internal values.
fn work_order_status(status: Option<&str>) -> Option<WorkOrderStatus> {
    match status? {
        "WAPPR" | "APPR" | "WSCH" | "WPLAN" => Some(WorkOrderStatus::Open),
        "INPRG" => Some(WorkOrderStatus::InProgress),
        "WMATL" | "WPCOND" | "HOLD" => Some(WorkOrderStatus::OnHold),
        "COMP" | "CLOSE" => Some(WorkOrderStatus::Completed),
        "CAN" => Some(WorkOrderStatus::Cancelled),
        _ => None,
    }
}

/// Maximo priorities are numbers whose meaning each customer sets; by the common convention
/// 1 is the most urgent.
fn priority(value: Option<f64>) -> Option<Priority> {
    match value? as i64 {
        i64::MIN..=1 => Some(Priority::Urgent),
        2 => Some(Priority::High),
        3 => Some(Priority::Medium),
        _ => Some(Priority::Low),
    }
}

fn work_type(value: Option<&str>) -> Option<WorkType> {
    let value = value?.to_uppercase();
    Some(match value.as_str() {
        "CM" => WorkType::Corrective,
        "PM" => WorkType::Preventive,
        "EM" | "EMG" => WorkType::Emergency,
        "CP" | "CAP" | "PROJ" => WorkType::Project,
        "PDM" | "CBM" | "PRED" => WorkType::Predictive,
        "INSP" | "INS" => WorkType::Inspection,
        _ => WorkType::Other,
    })
}

fn work_order(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["siteid", "wonum"], "mxapiwodetail")?;
    let site = r.text("siteid");
    let at_site = |object: ObjectType, value: Option<String>| {
        site.as_ref()
            .zip(value)
            .map(|(site, value)| context.reference(object, format!("{site}/{value}")))
    };
    let status = work_order_status(r.internal_status().as_deref());
    let from_request = r
        .text("origrecordclass")
        .is_some_and(|class| class.eq_ignore_ascii_case("SR"));
    let tasks = r
        .children("woactivity")
        .iter()
        .map(|task| {
            let t = Raw(task);
            WorkOrderTask {
                remote_id: t.text("wonum").or_else(|| t.text("taskid")),
                sequence: t.number("taskid").map(|n| n as i64),
                description: t.text("description"),
                status: work_order_status(t.internal_status().as_deref()),
                remote_status: t.text("status"),
                estimated_hours: t.number("estdur"),
                actual_hours: t.number("actlabhrs"),
            }
        })
        .collect();
    let unified = WorkOrder {
        number: r.text("wonum"),
        title: r.text("description"),
        description: r.text("description_longdescription"),
        status,
        remote_status: r.text("status"),
        priority: priority(r.number("wopriority")),
        remote_priority: r.text("wopriority"),
        work_type: work_type(r.text("worktype").as_deref()),
        remote_work_type: r.text("worktype"),
        site: site
            .clone()
            .map(|site| context.reference(ObjectType::Sites, site)),
        location: at_site(ObjectType::Locations, r.text("location")),
        asset: at_site(ObjectType::Assets, r.text("assetnum")),
        work_request: r
            .text("origrecordid")
            .filter(|_| from_request)
            .map(|ticket| context.reference(ObjectType::WorkRequests, ticket)),
        preventive_maintenance: at_site(ObjectType::PreventiveMaintenance, r.text("pmnum")),
        assigned_to: r.text("lead"),
        reported_at: r.time("reportdate"),
        scheduled_start: r.time("schedstart"),
        scheduled_end: r.time("schedfinish"),
        actual_start: r.time("actstart"),
        actual_end: r.time("actfinish"),
        completed_at: r
            .time("actfinish")
            .filter(|_| status == Some(WorkOrderStatus::Completed)),
        estimated_cost: r.number("esttotalcost"),
        actual_cost: r.number("acttotalcost"),
        currency: None,
        tasks,
    };
    let mapped = "wonum description description_longdescription status wopriority \
                  worktype siteid location assetnum origrecordid origrecordclass pmnum \
                  lead reportdate schedstart schedfinish actstart actfinish esttotalcost \
                  acttotalcost changedate woactivity";
    finish(
        remote_id,
        &unified,
        raw,
        mapped,
        r.time("reportdate"),
        r.time("changedate"),
    )
}

fn work_request(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["ticketid"], "mxapisr")?;
    let site = r.text("siteid");
    let asset_site = r.text("assetsiteid").or_else(|| site.clone());
    let status = match r.internal_status().as_deref() {
        Some("NEW") => Some(WorkRequestStatus::Open),
        Some("QUEUED" | "APPR") => Some(WorkRequestStatus::Approved),
        Some("INPROG" | "PENDING") => Some(WorkRequestStatus::InProgress),
        Some("RESOLVED" | "CLOSED") => Some(WorkRequestStatus::Completed),
        Some("REJECTED") => Some(WorkRequestStatus::Rejected),
        Some("CANCELLED") => Some(WorkRequestStatus::Cancelled),
        _ => None,
    };
    let reported_priority = r
        .number("reportedpriority")
        .or_else(|| r.number("internalpriority"));
    let unified = WorkRequest {
        number: r.text("ticketid"),
        title: r.text("description"),
        description: r.text("description_longdescription"),
        status,
        remote_status: r.text("status"),
        priority: priority(reported_priority),
        remote_priority: r.text("reportedpriority"),
        site: site
            .clone()
            .map(|site| context.reference(ObjectType::Sites, site)),
        location: site
            .as_ref()
            .zip(r.text("location"))
            .map(|(site, location)| {
                context.reference(ObjectType::Locations, format!("{site}/{location}"))
            }),
        asset: asset_site
            .zip(r.text("assetnum"))
            .map(|(site, asset)| context.reference(ObjectType::Assets, format!("{site}/{asset}"))),
        reported_by: r.text("reportedby"),
        reported_at: r.time("reportdate"),
        work_order: None,
    };
    let mapped = "ticketid description description_longdescription status \
                  reportedpriority siteid location assetnum assetsiteid reportedby \
                  reportdate changedate";
    finish(
        remote_id,
        &unified,
        raw,
        mapped,
        r.time("reportdate"),
        r.time("changedate"),
    )
}

/// Maps an item with its stock rows (from `mxapiinventory`) into one part.
pub fn part(
    context: &MapContext<'_>,
    item: &Value,
    stock_rows: &[Value],
) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(item);
    let remote_id = r.key(&["itemsetid", "itemnum"], "mxapiitem")?;
    let stock: Vec<PartStock> = stock_rows
        .iter()
        .map(|row| {
            let s = Raw(row);
            let site = s.text("siteid");
            PartStock {
                site: site
                    .clone()
                    .map(|site| context.reference(ObjectType::Sites, site)),
                location: site.zip(s.text("location")).map(|(site, location)| {
                    context.reference(ObjectType::Locations, format!("{site}/{location}"))
                }),
                storeroom: s.text("location"),
                bin: s.text("binnum"),
                quantity_on_hand: s.number("curbaltotal"),
                quantity_reserved: s.number("reservedqty"),
                reorder_point: s.number("minlevel"),
                unit_cost: s.number("avgcost"),
            }
        })
        .collect();
    let unit_cost = stock.iter().find_map(|row| row.unit_cost);
    let unified = Part {
        part_number: r.text("itemnum"),
        name: r.text("description"),
        description: r.text("description"),
        status: active_status(r.internal_status().as_deref()),
        remote_status: r.text("status"),
        unit_of_measure: r.text("issueunit").or_else(|| r.text("orderunit")),
        manufacturer: None,
        unit_cost,
        currency: None,
        stock,
    };
    let item_changed = r.time("changedate");
    let stock_changed = stock_rows
        .iter()
        .filter_map(|row| Raw(row).time("changedate"))
        .max();
    let updated = item_changed.max(stock_changed);

    let mapped = "itemnum description status issueunit changedate";
    let mut record = finish(remote_id, &unified, item, mapped, None, updated)?;
    if !stock_rows.is_empty() {
        let mut raw = item.clone();
        raw["inventory"] = Value::Array(stock_rows.to_vec());
        record.remote_data = raw;
    }
    Ok(record)
}

fn purchase_order(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["siteid", "ponum", "revisionnum"], "mxapipo")?;
    let status = match r.internal_status().as_deref() {
        Some("WAPPR") => Some(PurchaseOrderStatus::PendingApproval),
        Some("APPR" | "INPRG") => Some(PurchaseOrderStatus::Approved),
        Some("CLOSE") => Some(PurchaseOrderStatus::Closed),
        Some("CAN") => Some(PurchaseOrderStatus::Cancelled),
        Some("HOLD" | "REVISE" | "PNDREV") => Some(PurchaseOrderStatus::Draft),
        _ => None,
    };
    let lines = r
        .children("poline")
        .iter()
        .map(|line| {
            let l = Raw(line);
            PurchaseOrderLine {
                line_number: l.number("polinenum").map(|n| n as i64),
                part: l
                    .text("itemsetid")
                    .zip(l.text("itemnum"))
                    .map(|(set, item)| {
                        context.reference(ObjectType::Parts, format!("{set}/{item}"))
                    }),
                description: l.text("description"),
                quantity: l.number("orderqty"),
                quantity_received: l.number("receivedqty"),
                unit_of_measure: l.text("orderunit"),
                unit_cost: l.number("unitcost"),
                line_cost: l.number("linecost"),
            }
        })
        .collect();
    let unified = PurchaseOrder {
        number: r.text("ponum"),
        description: r.text("description"),
        status,
        remote_status: r.text("status"),
        vendor: r
            .text("orgid")
            .zip(r.text("vendor"))
            .map(|(org, vendor)| context.reference(ObjectType::Vendors, format!("{org}/{vendor}"))),
        site: r
            .text("siteid")
            .map(|site| context.reference(ObjectType::Sites, site)),
        ordered_at: r.time("orderdate"),
        required_at: r.time("requireddate"),
        total_cost: r.number("totalcost"),
        currency: r.text("currencycode"),
        lines,
    };
    let mapped = "ponum description status orgid vendor siteid orderdate requireddate \
                  totalcost currencycode changedate poline";
    finish(
        remote_id,
        &unified,
        raw,
        mapped,
        r.time("orderdate"),
        r.time("changedate"),
    )
}

fn vendor(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let _ = context;
    let r = Raw(raw);
    let remote_id = r.key(&["orgid", "company"], "mxapivendor")?;
    let disabled = r.flag("disabled");
    let address: Vec<String> = ["address1", "address2", "address3", "address4"]
        .iter()
        .filter_map(|a| r.text(a))
        .collect();
    let unified = Vendor {
        code: r.text("company"),
        name: r.text("name"),
        status: disabled.map(|disabled| {
            if disabled {
                ActiveStatus::Inactive
            } else {
                ActiveStatus::Active
            }
        }),
        remote_status: disabled
            .map(|disabled| if disabled { "disabled" } else { "enabled" }.to_owned()),
        vendor_type: r.text("type").map(|kind| match kind.as_str() {
            "V" => "vendor".to_owned(),
            "M" => "manufacturer".to_owned(),
            "C" => "courier".to_owned(),
            _ => kind,
        }),
        email: None,
        phone: r.text("phone"),
        website: r.text("homepage"),
        address: (!address.is_empty()).then(|| address.join(", ")),
        currency: r.text("currencycode"),
    };
    let mapped = "company name disabled type phone homepage address1 address2 address3 \
                  address4 currencycode changedate";
    finish(remote_id, &unified, raw, mapped, None, r.time("changedate"))
}

fn user(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["personid"], "mxapiperson")?;
    let unified = User {
        username: r.text("personid"),
        display_name: r.text("displayname"),
        first_name: r.text("firstname"),
        last_name: r.text("lastname"),
        email: r.text("primaryemail"),
        phone: r.text("primaryphone"),
        job_title: r.text("title"),
        department: r.text("department"),
        status: active_status(r.internal_status().as_deref()),
        remote_status: r.text("status"),
        site: r
            .text("locationsite")
            .map(|site| context.reference(ObjectType::Sites, site)),
    };
    let mapped = "personid displayname firstname lastname primaryemail primaryphone \
                  title department status locationsite changedate";
    finish(remote_id, &unified, raw, mapped, None, r.time("changedate"))
}

fn meter(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["siteid", "assetnum", "metername"], "mxapiassetmeter")?;
    let unified = Meter {
        name: r.text("metername"),
        description: None,
        meter_type: r.text("metertype").map(|kind| kind.to_lowercase()),
        unit: r.text("measureunitid"),
        asset: r
            .text("siteid")
            .zip(r.text("assetnum"))
            .map(|(site, asset)| context.reference(ObjectType::Assets, format!("{site}/{asset}"))),
        location: None,
        last_reading: r.number("lastreading"),
        last_reading_at: r.time("lastreadingdate"),
    };
    let mapped = "metername metertype measureunitid siteid assetnum lastreading \
                  lastreadingdate changedate";
    finish(remote_id, &unified, raw, mapped, None, r.time("changedate"))
}

fn meter_reading(context: &MapContext<'_>, raw: &Value) -> Result<SourceRecord, ConnectorError> {
    let r = Raw(raw);
    let remote_id = r.key(&["meterreadingid"], "mxapimeterreading")?;
    let asset_key = r.text("siteid").zip(r.text("assetnum"));
    let numeric = r.number("reading");
    let unified = MeterReading {
        meter: asset_key
            .clone()
            .zip(r.text("metername"))
            .map(|((site, asset), meter)| {
                context.reference(ObjectType::Meters, format!("{site}/{asset}/{meter}"))
            }),
        asset: asset_key
            .map(|(site, asset)| context.reference(ObjectType::Assets, format!("{site}/{asset}"))),
        location: None,
        value: numeric,
        text_value: if numeric.is_none() {
            r.text("reading")
        } else {
            None
        },
        unit: None,
        read_at: r.time("readingdate"),
        read_by: r.text("inspector").or_else(|| r.text("enterby")),
    };
    let mapped = "meterreadingid siteid assetnum metername reading readingdate inspector \
                  enterdate";
    finish(
        remote_id,
        &unified,
        raw,
        mapped,
        r.time("enterdate"),
        r.time("enterdate"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONTEXT: MapContext<'static> = MapContext {
        connection_id: "c1",
    };

    #[test]
    fn work_orders_map_status_priority_references_and_tasks() {
        let raw = json!({
            "href": "http://h/maximo/oslc/os/mxapiwodetail/_TUlORS9FWDA",
            "_rowstamp": "12345",
            "wonum": "EX00042", "siteid": "MINE", "status": "WMATL", "wopriority": 2,
            "worktype": "CM", "assetnum": "EX-A", "location": "PIT",
            "origrecordid": "SR00007", "origrecordclass": "SR",
            "reportdate": "2024-07-01T08:00:00-04:00",
            "changedate": "2024-07-02T09:30:00.250-04:00",
            "failurecode": "BUCKET",
            "woactivity": [{"taskid": 10, "wonum": "EX00042-10", "status": "COMP", "estdur": 1.5}]
        });
        let record = map(ObjectType::WorkOrders, &CONTEXT, &raw).unwrap();
        assert_eq!(record.remote_id, "MINE/EX00042");
        assert_eq!(record.fields["status"], json!("on_hold"));
        assert_eq!(record.fields["remote_status"], json!("WMATL"));
        assert_eq!(record.fields["priority"], json!("high"));
        assert_eq!(record.fields["work_type"], json!("corrective"));
        assert_eq!(record.fields["asset"]["remote_id"], json!("MINE/EX-A"));
        assert_eq!(record.fields["work_request"]["remote_id"], json!("SR00007"));
        assert_eq!(record.fields["tasks"][0]["status"], json!("completed"));
        assert_eq!(
            record.remote_updated_at.unwrap().to_rfc3339(),
            "2024-07-02T13:30:00.250+00:00"
        );
        assert_eq!(record.custom_fields["failurecode"], json!("BUCKET"));
        assert_eq!(record.custom_fields["_rowstamp"], json!("12345"));
        assert!(!record.custom_fields.contains_key("href"));
        assert_eq!(record.remote_data, raw);
    }

    #[test]
    fn a_record_without_its_key_is_a_mapping_error() {
        let result = map(ObjectType::Assets, &CONTEXT, &json!({"assetnum": "A1"}));
        assert!(matches!(result, Err(ConnectorError::Mapping(_))));
    }

    #[test]
    fn parts_take_the_newest_change_of_item_and_stock() {
        let item =
            json!({"itemnum": "PUMP", "itemsetid": "SET1", "changedate": "2024-01-01T00:00:00Z"});
        let stock = [
            json!({"itemnum": "PUMP", "itemsetid": "SET1", "siteid": "MINE", "location": "CENTRAL",
                            "curbaltotal": 4.0, "changedate": "2024-05-01T00:00:00-04:00"}),
        ];
        let record = part(&CONTEXT, &item, &stock).unwrap();
        assert_eq!(record.remote_id, "SET1/PUMP");
        assert_eq!(record.fields["stock"][0]["quantity_on_hand"], json!(4.0));
        assert_eq!(
            record.remote_updated_at.unwrap().to_rfc3339(),
            "2024-05-01T04:00:00+00:00"
        );
    }
}
