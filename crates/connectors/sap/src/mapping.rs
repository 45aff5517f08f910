//! SAP plant maintenance records to unified ones: plants, functional locations, equipment,
//! notifications, orders with their operations, suppliers, purchase orders, measuring points
//! (meters) and measurement documents (meter readings).
//!
//! Deletion flags (`EquipmentIsMarkedForDeletion`, `FuncnlLocIsMarkedForDeletion`,
//! `IsDeleted` of a notification, `MaintOrderIsMarkedForDeletion`) make tombstones at the
//! record's change time; a measuring point's `MultiLevelDeletionLogicStatus` at its change
//! date, and a reversed measurement document (`MsmtRdngIsReversed`) at its reading time, since
//! neither carries a change time. Dates given as a separate date and time of day (basic start and end,
//! notification creation) are read in the connection's `time_zone`; a UTC time stamp beside
//! them wins.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use millrace_connector::{RejectedRecord, SourceRecord};
use millrace_model::objects::{
    ActiveStatus, Asset, AssetStatus, Location, Meter, MeterReading, Priority, PurchaseOrder,
    PurchaseOrderLine, PurchaseOrderStatus, Site, Vendor, WorkOrder, WorkOrderStatus,
    WorkOrderTask, WorkRequest, WorkRequestStatus, WorkType,
};
use millrace_model::{ObjectType, Reference};
use serde_json::{Map, Value};

use crate::config::{ObjectSpec, Settings};
use crate::odata::Version;

/// Returns a row's remote id: its key values joined by `/`.
pub fn remote_id(spec: &ObjectSpec, row: &Value) -> Option<String> {
    let parts: Option<Vec<&str>> = spec
        .keys
        .iter()
        .map(|key| row[*key].as_str().filter(|value| !value.is_empty()))
        .collect();
    parts.map(|parts| parts.join("/"))
}

/// Maps one row of `spec`'s entity set; a row that cannot be read is rejected with the reason.
pub fn record(
    spec: &ObjectSpec,
    settings: &Settings,
    connection_id: &str,
    row: &Value,
) -> Result<SourceRecord, RejectedRecord> {
    let id = remote_id(spec, row);
    let reject = |reason: String| RejectedRecord {
        remote_id: id.clone(),
        reason,
    };
    let Some(remote_id) = id.clone() else {
        return Err(reject(format!(
            "the row has no {} key: {}",
            spec.keys.join(", "),
            excerpt(row)
        )));
    };
    let reader = Reader {
        row,
        version: settings.version,
        settings,
        connection_id,
    };
    let mapped = match spec.object {
        ObjectType::Sites => site(&reader, &remote_id),
        ObjectType::Locations => location(&reader, &remote_id),
        ObjectType::Assets => asset(&reader, &remote_id),
        ObjectType::WorkRequests => work_request(&reader, &remote_id),
        ObjectType::WorkOrders => work_order(&reader, &remote_id, spec),
        ObjectType::Vendors => vendor(&reader, &remote_id),
        ObjectType::PurchaseOrders => purchase_order(&reader, &remote_id, spec),
        ObjectType::Meters => meter(&reader, &remote_id),
        ObjectType::MeterReadings => meter_reading(&reader, &remote_id),
        other => return Err(reject(format!("{other} is not read by this connector"))),
    };
    let mut record = mapped.map_err(reject)?;
    if let Some(change_field) = spec.change_field {
        record.remote_updated_at = reader.instant(change_field).map_err(|err| RejectedRecord {
            remote_id: Some(remote_id.clone()),
            reason: err,
        })?;
    }
    Ok(record)
}

/// Reads typed values out of one row.
struct Reader<'a> {
    row: &'a Value,
    version: Version,
    settings: &'a Settings,
    connection_id: &'a str,
}

impl Reader<'_> {
    fn text(&self, field: &str) -> Option<String> {
        self.row[field]
            .as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    }

    fn flag(&self, field: &str) -> bool {
        match &self.row[field] {
            Value::Bool(flag) => *flag,
            // ABAP checkboxes are `X` or blank in services that do not type them as Boolean.
            Value::String(text) => text.eq_ignore_ascii_case("x") || text == "true",
            _ => false,
        }
    }

    fn number(&self, field: &str) -> Result<Option<f64>, String> {
        match &self.row[field] {
            Value::Null => Ok(None),
            Value::Number(number) => Ok(number.as_f64()),
            // V2 sends Edm.Decimal as a string.
            Value::String(text) if text.trim().is_empty() => Ok(None),
            Value::String(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{field} `{text}` is not a number")),
            other => Err(format!("{field} {other} is not a number")),
        }
    }

    fn instant(&self, field: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.version
            .parse_instant(&self.row[field])
            .map_err(|err| format!("{field}: {err}"))
    }

    fn date(&self, field: &str) -> Result<Option<NaiveDate>, String> {
        self.version
            .parse_date(&self.row[field])
            .map_err(|err| format!("{field}: {err}"))
    }

    /// A date at midnight UTC, for creation dates that carry no time.
    fn date_instant(&self, field: &str) -> Result<Option<DateTime<Utc>>, String> {
        Ok(self
            .date(field)?
            .map(|date| date.and_time(NaiveTime::MIN).and_utc()))
    }

    /// A separate date and time of day, read in the connection's zone (midnight when the time
    /// is absent).
    fn date_and_time(&self, date: &str, time: &str) -> Result<Option<DateTime<Utc>>, String> {
        let Some(day) = self.date(date)? else {
            return Ok(None);
        };
        let time_of_day = self
            .version
            .parse_time_of_day(&self.row[time])
            .map_err(|err| format!("{time}: {err}"))?
            .unwrap_or(NaiveTime::MIN);
        let naive = day.and_time(time_of_day);
        let text = naive.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
        millrace_connector::time::parse_time_in(&text, &self.settings.time_zone)
            .map(Some)
            .ok_or_else(|| format!("{date} and {time} do not make a time"))
    }

    /// When a deletion flag was set: the record's change time, else its creation date, since
    /// an instant that moved on every read would make the record look changed each time.
    fn flagged_at(&self) -> Result<Option<DateTime<Utc>>, String> {
        match self.instant("LastChangeDateTime")? {
            Some(changed) => Ok(Some(changed)),
            None => self.date_instant("CreationDate"),
        }
    }

    fn reference(&self, object: ObjectType, field: &str) -> Option<Reference> {
        self.text(field)
            .map(|remote_id| Reference::new(self.connection_id, object, remote_id))
    }

    /// Keeps the row, without OData's own annotations (`__metadata`, `@odata.*`), whose URLs
    /// name the host that answered and would change the content hash when it changes.
    fn remote_data(&self) -> Value {
        strip_annotations(self.row)
    }
}

fn strip_annotations(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(name, _)| *name != "__metadata" && !name.starts_with("@odata."))
                // A V2 navigation property that was not expanded is only a link.
                .filter(|(_, value)| value.get("__deferred").is_none())
                .map(|(name, value)| (name.clone(), strip_annotations(value)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_annotations).collect()),
        other => other.clone(),
    }
}

fn excerpt(row: &Value) -> String {
    row.to_string().chars().take(200).collect()
}

fn build<T: serde::Serialize>(
    remote_id: &str,
    unified: &T,
    reader: &Reader<'_>,
) -> Result<SourceRecord, String> {
    SourceRecord::new(remote_id, unified, reader.remote_data()).map_err(|err| err.to_string())
}

/// SAP's maintenance priorities 1 (very high) to 4 (low).
fn priority(code: Option<&str>) -> Option<Priority> {
    match code? {
        "1" => Some(Priority::Urgent),
        "2" => Some(Priority::High),
        "3" => Some(Priority::Medium),
        "4" => Some(Priority::Low),
        _ => None,
    }
}

fn site(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let address = [reader.text("CityName"), reader.text("Country")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let unified = Site {
        name: reader.text("PlantName"),
        status: Some(ActiveStatus::Active),
        address: (!address.is_empty()).then(|| address.join(", ")),
        ..Site::default()
    };
    build(remote_id, &unified, reader)
}

fn location(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let deactivated = reader.flag("FuncnlLocIsDeactivated");
    let unified = Location {
        code: Some(remote_id.to_owned()),
        name: reader.text("FunctionalLocationName"),
        location_type: reader.text("FunctionalLocationCategory"),
        status: Some(if deactivated {
            ActiveStatus::Inactive
        } else {
            ActiveStatus::Active
        }),
        remote_status: Some(if deactivated { "DEAC" } else { "ACTIVE" }.to_owned()),
        site: reader.reference(ObjectType::Sites, "MaintenancePlanningPlant"),
        parent: reader.reference(ObjectType::Locations, "SuperiorFunctionalLocation"),
        ..Location::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = reader.date_instant("CreationDate")?;
    if reader.flag("FuncnlLocIsMarkedForDeletion") {
        record.remote_deleted_at = reader.flagged_at()?;
    }
    Ok(record)
}

fn asset(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let inactive = reader.flag("EquipmentIsInactive");
    let unified = Asset {
        asset_number: Some(remote_id.to_owned()),
        name: reader.text("EquipmentName"),
        asset_type: reader.text("TechnicalObjectType"),
        manufacturer: reader.text("AssetManufacturerName"),
        model: reader.text("ManufacturerPartTypeName"),
        serial_number: reader.text("SerialNumber"),
        status: Some(if inactive {
            AssetStatus::NotOperating
        } else {
            AssetStatus::Operating
        }),
        remote_status: Some(if inactive { "INAC" } else { "ACTIVE" }.to_owned()),
        site: reader.reference(ObjectType::Sites, "MaintenancePlanningPlant"),
        location: reader.reference(ObjectType::Locations, "FunctionalLocation"),
        parent: reader.reference(ObjectType::Assets, "SuperordinateEquipment"),
        installed_at: reader.date_instant("OperationStartDate")?,
        criticality: reader.text("ABCIndicator"),
        ..Asset::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = reader.date_instant("CreationDate")?;
    if let Some(category) = reader.text("EquipmentCategory") {
        record
            .custom_fields
            .insert("equipment_category".into(), Value::String(category));
    }
    if reader.flag("EquipmentIsMarkedForDeletion") {
        record.remote_deleted_at = reader.flagged_at()?;
    }
    Ok(record)
}

/// Notification processing phases: 1 outstanding, 2 postponed, 3 in process, 4 completed.
fn notification_status(phase: Option<&str>) -> Option<WorkRequestStatus> {
    match phase? {
        "1" | "2" => Some(WorkRequestStatus::Open),
        "3" => Some(WorkRequestStatus::InProgress),
        "4" => Some(WorkRequestStatus::Completed),
        _ => None,
    }
}

fn work_request(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let phase = reader.text("NotifProcessingPhase");
    let priority_code = reader.text("MaintPriority");
    let unified = WorkRequest {
        number: Some(remote_id.to_owned()),
        title: reader.text("NotificationText"),
        status: notification_status(phase.as_deref()),
        remote_status: phase,
        priority: priority(priority_code.as_deref()),
        remote_priority: priority_code,
        site: reader.reference(ObjectType::Sites, "MaintenancePlanningPlant"),
        location: reader.reference(ObjectType::Locations, "FunctionalLocation"),
        asset: reader.reference(ObjectType::Assets, "Equipment"),
        reported_by: reader.text("ReportedByUser"),
        reported_at: reader
            .date_and_time("NotificationCreationDate", "NotificationCreationTime")?,
        work_order: reader.reference(ObjectType::WorkOrders, "MaintenanceOrder"),
        ..WorkRequest::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = unified.reported_at;
    if let Some(kind) = reader.text("NotificationType") {
        record
            .custom_fields
            .insert("notification_type".into(), Value::String(kind));
    }
    if reader.flag("IsDeleted") {
        record.remote_deleted_at = reader.flagged_at()?;
    }
    Ok(record)
}

/// Order process phases of S/4HANA maintenance: 01 initiation to 04 scheduling are still
/// open, 05 is execution, 06 post-execution and 07 completion are done.
fn order_status(phase: Option<&str>) -> Option<WorkOrderStatus> {
    match phase? {
        "01" | "02" | "03" | "04" => Some(WorkOrderStatus::Open),
        "05" => Some(WorkOrderStatus::InProgress),
        "06" | "07" => Some(WorkOrderStatus::Completed),
        _ => None,
    }
}

/// The standard order types: PM01 corrective, PM02 and PM03 preventive, PM04 refurbishment,
/// PM05 investment, PM06 calibration.
fn work_type(order_type: Option<&str>) -> Option<WorkType> {
    match order_type? {
        "PM01" => Some(WorkType::Corrective),
        "PM02" | "PM03" => Some(WorkType::Preventive),
        "PM05" => Some(WorkType::Project),
        "PM06" => Some(WorkType::Inspection),
        _ => Some(WorkType::Other),
    }
}

fn work_order(
    reader: &Reader<'_>,
    remote_id: &str,
    spec: &ObjectSpec,
) -> Result<SourceRecord, String> {
    let phase = reader.text("MaintOrdProcessPhaseCode");
    let priority_code = reader.text("MaintPriority");
    let order_type = reader.text("MaintenanceOrderType");
    let scheduled_start = match reader.instant("MaintOrdBasicStartDateTime")? {
        Some(start) => Some(start),
        None => reader.date_and_time("MaintOrdBasicStartDate", "MaintOrdBasicStartTime")?,
    };
    let mut tasks = Vec::new();
    if let Some(navigation) = spec.expand {
        for operation in reader.version.expanded(reader.row, navigation) {
            tasks.push(task(reader, operation)?);
        }
    }
    tasks.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
    let unified = WorkOrder {
        number: Some(remote_id.to_owned()),
        title: reader.text("MaintenanceOrderDesc"),
        status: order_status(phase.as_deref()),
        remote_status: phase,
        priority: priority(priority_code.as_deref()),
        remote_priority: priority_code,
        work_type: work_type(order_type.as_deref()),
        remote_work_type: order_type,
        site: reader.reference(ObjectType::Sites, "MaintenancePlanningPlant"),
        location: reader.reference(ObjectType::Locations, "FunctionalLocation"),
        asset: reader.reference(ObjectType::Assets, "Equipment"),
        work_request: reader.reference(ObjectType::WorkRequests, "MaintenanceNotification"),
        assigned_to: reader.text("MainWorkCenter"),
        scheduled_start,
        scheduled_end: reader.date_and_time("MaintOrdBasicEndDate", "MaintOrdBasicEndTime")?,
        estimated_cost: reader.number("EstimatedTotalCost")?,
        actual_cost: reader.number("ActualTotalCost")?,
        currency: reader.text("Currency"),
        tasks,
        ..WorkOrder::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = reader.date_instant("CreationDate")?;
    if let Some(activity) = reader.text("MaintenanceActivityType") {
        record
            .custom_fields
            .insert("maintenance_activity_type".into(), Value::String(activity));
    }
    if reader.flag("MaintOrderIsMarkedForDeletion") {
        record.remote_deleted_at = reader.flagged_at()?;
    }
    Ok(record)
}

fn vendor(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let blocked = reader.flag("PurchasingIsBlocked");
    let address = [reader.text("CityName"), reader.text("Country")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let unified = Vendor {
        code: Some(remote_id.to_owned()),
        name: reader
            .text("SupplierName")
            .or_else(|| reader.text("SupplierFullName")),
        status: Some(if blocked {
            ActiveStatus::Inactive
        } else {
            ActiveStatus::Active
        }),
        remote_status: Some(if blocked { "BLOCKED" } else { "ACTIVE" }.to_owned()),
        address: (!address.is_empty()).then(|| address.join(", ")),
        ..Vendor::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = reader.date_instant("CreationDate")?;
    if let Some(full_name) = reader.text("SupplierFullName") {
        record
            .custom_fields
            .insert("full_name".into(), Value::String(full_name));
    }
    // Suppliers carry no change time to date a deletion flag with: a flagged supplier reads as
    // inactive, and reconciliation marks it deleted once it is archived.
    if reader.flag("DeletionIndicator") {
        record.fields["status"] = serde_json::json!(ActiveStatus::Inactive);
        record.fields["remote_status"] = Value::String("MARKED_FOR_DELETION".to_owned());
    }
    Ok(record)
}

/// Purchasing processing statuses: 01 version in process, 02 active, 03 in release, 04
/// partially released, 05 released, 08 rejected. A released order whose items are all
/// delivered is received.
fn purchase_order_status(code: Option<&str>, delivered: bool) -> Option<PurchaseOrderStatus> {
    match code? {
        "01" => Some(PurchaseOrderStatus::Draft),
        "02" | "03" | "04" => Some(PurchaseOrderStatus::PendingApproval),
        "05" if delivered => Some(PurchaseOrderStatus::Received),
        "05" => Some(PurchaseOrderStatus::Approved),
        "08" => Some(PurchaseOrderStatus::Cancelled),
        _ => None,
    }
}

fn purchase_order(
    reader: &Reader<'_>,
    remote_id: &str,
    spec: &ObjectSpec,
) -> Result<SourceRecord, String> {
    let mut lines = Vec::new();
    let mut plant = None;
    let mut all_delivered = true;
    let items = spec
        .expand
        .map(|navigation| reader.version.expanded(reader.row, navigation))
        .unwrap_or_default();
    for item in items {
        let item = Reader {
            row: item,
            ..*reader
        };
        if item.text("PurchasingDocumentDeletionCode").is_some() {
            continue;
        }
        plant = plant.or_else(|| item.text("Plant"));
        let delivered = item.flag("IsCompletelyDelivered");
        all_delivered &= delivered;
        let quantity = item.number("OrderQuantity")?;
        let per = item
            .number("NetPriceQuantity")?
            .filter(|per| *per > 0.0)
            .unwrap_or(1.0);
        let unit_cost = item.number("NetPriceAmount")?.map(|price| price / per);
        lines.push(PurchaseOrderLine {
            line_number: item.text("PurchaseOrderItem").and_then(|n| n.parse().ok()),
            part: item.reference(ObjectType::Parts, "Material"),
            description: item.text("PurchaseOrderItemText"),
            quantity,
            quantity_received: if delivered { quantity } else { None },
            unit_of_measure: item.text("PurchaseOrderQuantityUnit"),
            unit_cost,
            line_cost: quantity
                .zip(unit_cost)
                .map(|(quantity, cost)| quantity * cost),
        });
    }
    lines.sort_by_key(|line| line.line_number);
    let code = reader.text("PurchasingProcessingStatus");
    let total = lines.iter().map(|line| line.line_cost).sum::<Option<f64>>();
    let unified = PurchaseOrder {
        number: Some(remote_id.to_owned()),
        status: purchase_order_status(code.as_deref(), !lines.is_empty() && all_delivered),
        remote_status: code,
        vendor: reader.reference(ObjectType::Vendors, "Supplier"),
        site: plant.map(|plant| Reference::new(reader.connection_id, ObjectType::Sites, plant)),
        ordered_at: reader.date_instant("PurchaseOrderDate")?,
        total_cost: total,
        currency: reader.text("DocumentCurrency"),
        lines,
        ..PurchaseOrder::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = reader.date_instant("CreationDate")?;
    if let Some(kind) = reader.text("PurchaseOrderType") {
        record
            .custom_fields
            .insert("purchase_order_type".into(), Value::String(kind));
    }
    if reader.text("PurchasingDocumentDeletionCode").is_some() {
        record.remote_deleted_at = reader.flagged_at()?;
    }
    Ok(record)
}

/// A measuring point as a meter: a counter (`MeasuringPointIsCounter`) only grows and is
/// `continuous`, any other point is a `gauge`. The API carries a change date, not a time: it
/// dates the record, and a deletion flag, at midnight UTC.
fn meter(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let unified = Meter {
        name: reader.text("MeasuringPointDescription"),
        description: reader.text("MeasuringPointPositionNumber"),
        meter_type: Some(
            if reader.flag("MeasuringPointIsCounter") {
                "continuous"
            } else {
                "gauge"
            }
            .to_owned(),
        ),
        unit: reader.text("MeasurementRangeUnit"),
        asset: reader.reference(ObjectType::Assets, "Equipment"),
        location: reader.reference(ObjectType::Locations, "FunctionalLocation"),
        ..Meter::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = reader.date_instant("CreationDate")?;
    let changed = reader.date_instant("LastChangeDate")?;
    record.remote_updated_at = changed;
    if let Some(category) = reader.text("MeasuringPointCategory") {
        record
            .custom_fields
            .insert("measuring_point_category".into(), Value::String(category));
    }
    if reader.flag("MeasuringPointIsInactive") {
        record
            .custom_fields
            .insert("inactive".into(), Value::Bool(true));
    }
    if reader.flag("MultiLevelDeletionLogicStatus") {
        record.remote_deleted_at = changed.or(record.remote_created_at);
    }
    Ok(record)
}

/// A measurement document as a meter reading, in the unit it was entered in. A valuation code
/// without a value (a qualitative reading) is the text value. Documents are reversed rather
/// than deleted; a reversed one is a tombstone at its own reading time, the only time it has.
fn meter_reading(reader: &Reader<'_>, remote_id: &str) -> Result<SourceRecord, String> {
    let value = match reader.number("MeasurementReadingInEntryUoM")? {
        Some(value) => Some(value),
        None => reader.number("MeasurementCounterReading")?,
    };
    let read_at = reader.date_and_time("MsmtRdngDate", "MsmtRdngTime")?;
    let unified = MeterReading {
        meter: reader.reference(ObjectType::Meters, "MeasuringPoint"),
        value,
        text_value: value
            .is_none()
            .then(|| reader.text("MsmtValuationCode"))
            .flatten(),
        unit: reader.text("MeasurementReadingEntryUoM"),
        read_at,
        read_by: reader.text("MsmtRdngByUser"),
        ..MeterReading::default()
    };
    let mut record = build(remote_id, &unified, reader)?;
    record.remote_created_at = read_at;
    if let Some(text) = reader.text("MeasurementDocumentText") {
        record
            .custom_fields
            .insert("text".into(), Value::String(text));
    }
    if let Some(code) = reader.text("MsmtValuationCode") {
        record
            .custom_fields
            .insert("valuation_code".into(), Value::String(code));
    }
    if reader.flag("MsmtRdngIsReversed") {
        record.remote_deleted_at = read_at;
    }
    Ok(record)
}

/// An operation (and sub-operation) of an order as a task; work in hours or minutes.
fn task(reader: &Reader<'_>, operation: &Value) -> Result<WorkOrderTask, String> {
    let op = Reader {
        row: operation,
        ..*reader
    };
    let number = op.text("MaintenanceOrderOperation");
    let sub = op.text("MaintenanceOrderSubOperation");
    let hours = |field: &str| -> Result<Option<f64>, String> {
        let quantity = op.number(field)?;
        Ok(match op.text("OperationWorkQuantityUnit").as_deref() {
            Some("MIN") => quantity.map(|minutes| minutes / 60.0),
            Some("H") | None => quantity,
            Some(_) => None,
        })
    };
    let confirmed = op.flag("OperationIsConfirmed");
    Ok(WorkOrderTask {
        remote_id: match (&number, &sub) {
            (Some(number), Some(sub)) => Some(format!("{number}/{sub}")),
            (number, _) => number.clone(),
        },
        sequence: number.as_deref().and_then(|n| n.parse().ok()),
        description: op.text("OperationDescription"),
        status: confirmed.then_some(WorkOrderStatus::Completed),
        remote_status: confirmed.then(|| "CNF".to_owned()),
        estimated_hours: hours("OperationPlannedWorkQuantity")?,
        actual_hours: hours("OperationActualWorkQuantity")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec;
    use millrace_connector::Credentials;
    use serde_json::json;

    fn settings(version: &str, zone: &str) -> Settings {
        let fields = json!({"base_url": "https://s4.example", "username": "U", "password": "P",
                            "odata_version": version, "time_zone": zone});
        Settings::from_credentials(&Credentials::new(fields.as_object().unwrap().clone())).unwrap()
    }

    #[test]
    fn a_v2_order_with_operations_maps_field_by_field() {
        let row = json!({
            "__metadata": {"uri": "http://host/x"},
            "MaintenanceOrder": "4000188", "MaintenanceOrderType": "PM01",
            "MaintenanceOrderDesc": "CRACKS UNDER HEEL OF BUCKET", "MaintPriority": "2",
            "MaintOrdProcessPhaseCode": "05", "Equipment": "10000003",
            "FunctionalLocation": "AU01-EXC-C-076", "MaintenanceNotification": "10000188",
            "MainWorkCenter": "MECH", "MaintenancePlanningPlant": "AU01",
            "MaintOrdBasicStartDate": "/Date(1728777600000)/", "MaintOrdBasicStartTime": "PT07H00M00S",
            "MaintOrdBasicEndDate": "/Date(1728777600000)/", "MaintOrdBasicEndTime": "PT17H00M00S",
            "MaintOrdBasicStartDateTime": null, "ActualTotalCost": "1568.00", "Currency": "AUD",
            "MaintOrderIsMarkedForDeletion": false, "CreationDate": "/Date(1728777600000)/",
            "LastChangeDateTime": "/Date(1728842400000+0000)/",
            "to_MaintenanceOrderOperation": {"results": [
                {"MaintenanceOrderOperation": "0020", "MaintenanceOrderSubOperation": "",
                 "OperationDescription": "Test", "OperationPlannedWorkQuantity": "90",
                 "OperationWorkQuantityUnit": "MIN", "OperationIsConfirmed": false},
                {"MaintenanceOrderOperation": "0010", "MaintenanceOrderSubOperation": "",
                 "OperationDescription": "Bucket", "OperationPlannedWorkQuantity": "2.5",
                 "OperationWorkQuantityUnit": "H", "OperationIsConfirmed": true}]}
        });
        let spec = spec(ObjectType::WorkOrders).unwrap();
        let settings = settings("v2", "Australia/Perth");
        let record = record(spec, &settings, "conn_1", &row).unwrap();
        let fields = &record.fields;
        assert_eq!(record.remote_id, "4000188");
        assert_eq!(fields["title"], "CRACKS UNDER HEEL OF BUCKET");
        assert_eq!(fields["status"], "in_progress");
        assert_eq!(fields["remote_status"], "05");
        assert_eq!(fields["priority"], "high");
        assert_eq!(fields["work_type"], "corrective");
        assert_eq!(fields["asset"]["remote_id"], "10000003");
        assert_eq!(fields["work_request"]["remote_id"], "10000188");
        assert_eq!(fields["site"]["remote_id"], "AU01");
        // 07:00 in Perth (UTC+8) on 2024-10-13.
        assert_eq!(fields["scheduled_start"], "2024-10-12T23:00:00Z");
        assert_eq!(fields["scheduled_end"], "2024-10-13T09:00:00Z");
        assert_eq!(fields["actual_cost"], 1568.0);
        let tasks = fields["tasks"].as_array().unwrap();
        assert_eq!(tasks[0]["remote_id"], "0010");
        assert_eq!(tasks[0]["sequence"], 10);
        assert_eq!(tasks[0]["estimated_hours"], 2.5);
        assert_eq!(tasks[0]["status"], "completed");
        assert_eq!(tasks[1]["estimated_hours"], 1.5);
        assert_eq!(
            record.remote_updated_at.unwrap().to_rfc3339(),
            "2024-10-13T18:00:00+00:00"
        );
        assert!(record.remote_deleted_at.is_none());
        assert!(record.remote_data.get("__metadata").is_none());
    }

    #[test]
    fn a_measuring_point_maps_to_a_meter() {
        let spec = spec(ObjectType::Meters).unwrap();
        let row = json!({"__metadata": {"uri": "http://host/x"},
            "MeasuringPoint": "1002", "MeasuringPointDescription": "Operating hours",
            "MeasuringPointCategory": "M", "MeasuringPointIsCounter": true,
            "MeasurementRangeUnit": "H", "Equipment": "10000001",
            "FunctionalLocation": "AU01-EXC-A", "MeasuringPointPositionNumber": "ENGINE",
            "MeasuringPointIsInactive": false, "MultiLevelDeletionLogicStatus": "",
            "CreationDate": "/Date(993945600000)/", "LastChangeDate": "/Date(1728777600000)/"});
        let record = record(spec, &settings("v2", "UTC"), "conn_1", &row).unwrap();
        let fields = &record.fields;
        assert_eq!(record.remote_id, "1002");
        assert_eq!(fields["name"], "Operating hours");
        assert_eq!(fields["description"], "ENGINE");
        assert_eq!(fields["meter_type"], "continuous");
        assert_eq!(fields["unit"], "H");
        assert_eq!(fields["asset"]["remote_id"], "10000001");
        assert_eq!(fields["location"]["remote_id"], "AU01-EXC-A");
        assert_eq!(record.custom_fields["measuring_point_category"], "M");
        assert_eq!(
            record.remote_created_at.unwrap().to_rfc3339(),
            "2001-07-01T00:00:00+00:00"
        );
        assert_eq!(
            record.remote_updated_at.unwrap().to_rfc3339(),
            "2024-10-13T00:00:00+00:00"
        );
        assert!(record.remote_deleted_at.is_none());

        // A gauge marked for deletion: a tombstone at its change date.
        let flagged = json!({"MeasuringPoint": "1001", "MeasuringPointIsCounter": false,
            "MultiLevelDeletionLogicStatus": "X", "LastChangeDate": "2024-10-13"});
        let record = super::record(spec, &settings("v4", "UTC"), "conn_1", &flagged).unwrap();
        assert_eq!(record.fields["meter_type"], "gauge");
        assert_eq!(
            record.remote_deleted_at.unwrap().to_rfc3339(),
            "2024-10-13T00:00:00+00:00"
        );
    }

    #[test]
    fn a_measurement_document_maps_to_a_reading() {
        let spec = spec(ObjectType::MeterReadings).unwrap();
        let row = json!({"MeasurementDocument": "100001", "MeasuringPoint": "1001",
            "MsmtRdngDate": "/Date(1728777600000)/", "MsmtRdngTime": "PT06H00M00S",
            "MeasurementReadingInEntryUoM": "308.6", "MeasurementReadingEntryUoM": "K",
            "MsmtValuationCode": "", "MeasurementDocumentText": "Shift start",
            "MsmtRdngByUser": "INSPECTOR", "MsmtRdngIsReversed": false});
        let record = record(spec, &settings("v2", "Australia/Perth"), "conn_1", &row).unwrap();
        let fields = &record.fields;
        assert_eq!(record.remote_id, "100001");
        assert_eq!(fields["meter"]["remote_id"], "1001");
        assert_eq!(fields["value"], 308.6);
        assert!(fields["text_value"].is_null());
        assert_eq!(fields["unit"], "K");
        // 06:00 in Perth (UTC+8) on 2024-10-13.
        assert_eq!(fields["read_at"], "2024-10-12T22:00:00Z");
        assert_eq!(fields["read_by"], "INSPECTOR");
        assert_eq!(record.custom_fields["text"], "Shift start");
        assert_eq!(
            record.remote_created_at.unwrap().to_rfc3339(),
            "2024-10-12T22:00:00+00:00"
        );
        assert!(record.remote_deleted_at.is_none());

        // A qualitative reading keeps its valuation code; a reversed one is a tombstone.
        let reversed = json!({"MeasurementDocument": "100002", "MeasuringPoint": "1003",
            "MsmtRdngDate": "2024-10-13", "MsmtRdngTime": "06:00:00",
            "MeasurementReadingInEntryUoM": null, "MsmtValuationCode": "OK",
            "MsmtRdngIsReversed": true});
        let record = super::record(spec, &settings("v4", "UTC"), "conn_1", &reversed).unwrap();
        assert!(record.fields["value"].is_null());
        assert_eq!(record.fields["text_value"], "OK");
        assert_eq!(
            record.remote_deleted_at.unwrap().to_rfc3339(),
            "2024-10-13T06:00:00+00:00"
        );
    }

    #[test]
    fn marked_equipment_is_a_tombstone_and_a_bad_time_is_rejected() {
        let spec = spec(ObjectType::Assets).unwrap();
        let settings = settings("v4", "UTC");
        let row = json!({"Equipment": "10000001", "ValidityEndDate": "9999-12-31",
            "EquipmentName": "Excavator A", "EquipmentIsMarkedForDeletion": true,
            "OperationStartDate": "2001-07-01", "LastChangeDateTime": "2026-12-04T16:29:26.974Z"});
        let record = record(spec, &settings, "conn_1", &row).unwrap();
        assert_eq!(
            record.remote_deleted_at.unwrap().to_rfc3339(),
            "2026-12-04T16:29:26.974+00:00"
        );
        assert_eq!(record.fields["installed_at"], "2001-07-01T00:00:00Z");

        let bad = json!({"Equipment": "10000002", "LastChangeDateTime": "not a time"});
        let rejected = super::record(spec, &settings, "conn_1", &bad).unwrap_err();
        assert_eq!(rejected.remote_id.as_deref(), Some("10000002"));
        assert!(
            rejected.reason.contains("LastChangeDateTime"),
            "{}",
            rejected.reason
        );
    }
}
