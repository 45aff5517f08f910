//! Tryton records → unified records.
//!
//! Every record's remote id is its Tryton id; its change time is Tryton's `last_modified_at`
//! (the later of `write_date` and `create_date`, as Tryton computes it). Many2one fields are
//! read with their `rec_name` (`party.`, `product.` ...), so that names arrive with ids.

use chrono::{DateTime, Utc};
use millrace_connector::{RejectedRecord, SourceRecord};
use millrace_model::objects::{
    ActiveStatus, Asset, AssetStatus, Location, Part, PartStock, ProductionOrder, PurchaseOrder,
    PurchaseOrderLine, PurchaseOrderStatus, QualityEvent, Site, Vendor, WorkOrder, WorkOrderStatus,
    WorkType,
};
use millrace_model::{ObjectType, Reference};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::encoding::{read_date_start, read_datetime, read_hours, read_number};

/// What a page read besides the records themselves: a purchase's lines, a product's stock.
#[derive(Debug, Default)]
pub struct Related {
    /// `purchase.line` records by purchase id.
    pub purchase_lines: std::collections::HashMap<i64, Vec<Value>>,
    /// Per warehouse (id, code) the quantities of each product id: (on hand, forecast).
    pub stock: Vec<WarehouseStock>,
}

/// One warehouse's quantities of the products of a page.
#[derive(Debug, Default)]
pub struct WarehouseStock {
    pub warehouse_id: i64,
    pub warehouse_code: Option<String>,
    /// Product id → (quantity on hand, forecast quantity).
    pub quantities: std::collections::HashMap<i64, (Option<f64>, Option<f64>)>,
}

/// A Tryton model an object type is read from, and the fields read.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub model: &'static str,
    pub fields: &'static [&'static str],
    /// Put before the Tryton id to make the remote id, so that records of two models read
    /// into one object type keep distinct remote ids (`""` for the object's main model).
    pub id_prefix: &'static str,
}

/// Purchase requests, read into `purchase-orders` after the purchases themselves.
const PURCHASE_REQUESTS: Spec = Spec {
    model: "purchase.request",
    fields: &[
        "state",
        "description",
        "product",
        "product.rec_name",
        "party.rec_name",
        "quantity",
        "unit.symbol",
        "company",
        "warehouse",
        "purchase_date",
        "supply_date",
        "purchase_line",
        "purchase",
    ],
    id_prefix: "request-",
};

/// Returns the models `object` is read from, the main one first; empty when Tryton does not
/// offer it.
pub fn specs(object: ObjectType) -> Vec<Spec> {
    match main_spec(object) {
        Some(main) if object == ObjectType::PurchaseOrders => vec![main, PURCHASE_REQUESTS],
        Some(main) => vec![main],
        None => Vec::new(),
    }
}

fn main_spec(object: ObjectType) -> Option<Spec> {
    let (model, fields): (&'static str, &'static [&'static str]) = match object {
        ObjectType::Sites => (
            "company.company",
            &["party.rec_name", "currency.code", "timezone"],
        ),
        ObjectType::Locations => (
            "stock.location",
            &[
                "code",
                "name",
                "type",
                "active",
                "parent.rec_name",
                "warehouse.rec_name",
            ],
        ),
        ObjectType::Assets => (
            "stock.lot",
            &[
                "number",
                "active",
                "product.rec_name",
                "product.name",
                "product.code",
                "product.description",
            ],
        ),
        ObjectType::Parts => (
            "product.product",
            &[
                "code",
                "name",
                "description",
                "active",
                "type",
                "cost_price",
                "default_uom.symbol",
            ],
        ),
        ObjectType::Vendors => (
            "party.party",
            &["code", "name", "active", "email", "phone", "website"],
        ),
        ObjectType::PurchaseOrders => (
            "purchase.purchase",
            &[
                "number",
                "reference",
                "description",
                "state",
                "shipment_state",
                "party.rec_name",
                "company",
                "purchase_date",
                "delivery_date",
                "total_amount",
                "currency.code",
            ],
        ),
        ObjectType::ProductionOrders => (
            "production",
            &[
                "number",
                "reference",
                "state",
                "product.rec_name",
                "quantity",
                "unit.symbol",
                "company",
                "warehouse.rec_name",
                "planned_start_date",
                "planned_date",
                "effective_start_date",
                "effective_date",
            ],
        ),
        ObjectType::QualityEvents => (
            "quality.inspection",
            &[
                "number",
                "reference",
                "state",
                "control.rec_name",
                "origin",
                "company",
                "processed_at",
                "points",
            ],
        ),
        ObjectType::WorkOrders => (
            "project.work",
            &[
                "number",
                "name",
                "comment",
                "type",
                "status.rec_name",
                "status.progress",
                "progress",
                "effort_duration",
                "timesheet_duration",
                "company",
                "party.rec_name",
                "parent.rec_name",
                "timesheet_start_date",
                "timesheet_end_date",
            ],
        ),
        _ => return None,
    };
    Some(Spec {
        model,
        fields,
        id_prefix: "",
    })
}

/// The fields every read asks for besides the object's own.
pub const CHANGE_FIELDS: [&str; 3] = ["create_date", "write_date", "last_modified_at"];

/// Maps one Tryton record of `object`, read from the model of `spec`.
pub fn record(
    object: ObjectType,
    spec: &Spec,
    connection_id: &str,
    raw: Value,
    related: &Related,
) -> Result<SourceRecord, RejectedRecord> {
    let id = raw["id"].as_i64();
    let reject = |reason: String| RejectedRecord {
        remote_id: id.map(|id| format!("{}{id}", spec.id_prefix)),
        reason,
    };
    let Some(id) = id else {
        return Err(reject("the record has no integer `id`".to_owned()));
    };
    let reference = |object: ObjectType, value: &Value| -> Option<Reference> {
        let id = value.as_i64().or_else(|| value.get("id")?.as_i64())?;
        Some(Reference::new(connection_id, object, id.to_string()))
    };
    let mut custom = Map::new();

    let fields = match object {
        ObjectType::PurchaseOrders if spec.model == PURCHASE_REQUESTS.model => {
            purchase_request(connection_id, &raw, &mut custom)
        }
        ObjectType::Sites => to_fields(&Site {
            name: name_of(&raw["party."]),
            status: Some(ActiveStatus::Active),
            remote_status: None,
            time_zone: text(&raw["timezone"]),
            ..Site::default()
        }),
        ObjectType::Locations => {
            let active = flag(&raw["active"]);
            to_fields(&Location {
                code: text(&raw["code"]),
                name: text(&raw["name"]),
                location_type: text(&raw["type"]),
                status: active.map(active_status),
                remote_status: active.map(active_text),
                parent: reference(ObjectType::Locations, &raw["parent."]),
                ..Location::default()
            })
        }
        ObjectType::Assets => {
            let active = flag(&raw["active"]);
            let product = &raw["product."];
            to_fields(&Asset {
                asset_number: text(&raw["number"]),
                name: text(&product["name"]).or_else(|| name_of(product)),
                description: text(&product["description"]),
                asset_type: Some("serial-numbered lot".to_owned()),
                model: text(&product["code"]),
                serial_number: text(&raw["number"]),
                // A lot has no operating state in Tryton; only an archived one is known to be
                // out of service.
                status: (active == Some(false)).then_some(AssetStatus::Decommissioned),
                remote_status: active.map(active_text),
                ..Asset::default()
            })
        }
        ObjectType::Parts => {
            let active = flag(&raw["active"]);
            let stock = related
                .stock
                .iter()
                .filter_map(|warehouse| {
                    let (on_hand, forecast) = warehouse.quantities.get(&id)?;
                    Some(PartStock {
                        location: Some(Reference::new(
                            connection_id,
                            ObjectType::Locations,
                            warehouse.warehouse_id.to_string(),
                        )),
                        storeroom: warehouse.warehouse_code.clone(),
                        quantity_on_hand: *on_hand,
                        quantity_reserved: on_hand
                            .zip(*forecast)
                            .map(|(on_hand, forecast)| (on_hand - forecast).max(0.0)),
                        ..PartStock::default()
                    })
                })
                .collect();
            custom.insert("product_type".to_owned(), raw["type"].clone());
            to_fields(&Part {
                part_number: text(&raw["code"]),
                name: text(&raw["name"]),
                description: text(&raw["description"]),
                status: active.map(active_status),
                remote_status: active.map(active_text),
                unit_of_measure: text(&raw["default_uom."]["symbol"]),
                unit_cost: read_number(&raw["cost_price"]),
                stock,
                ..Part::default()
            })
        }
        ObjectType::Vendors => {
            let active = flag(&raw["active"]);
            to_fields(&Vendor {
                code: text(&raw["code"]),
                name: text(&raw["name"]),
                status: active.map(active_status),
                remote_status: active.map(active_text),
                email: text(&raw["email"]),
                phone: text(&raw["phone"]),
                website: text(&raw["website"]),
                ..Vendor::default()
            })
        }
        ObjectType::PurchaseOrders => {
            let state = text(&raw["state"]);
            let shipment_state = text(&raw["shipment_state"]);
            let lines = related
                .purchase_lines
                .get(&id)
                .map(|lines| {
                    lines
                        .iter()
                        .map(|line| purchase_line(connection_id, line))
                        .collect()
                })
                .unwrap_or_default();
            custom.insert("shipment_state".to_owned(), raw["shipment_state"].clone());
            custom.insert("reference".to_owned(), raw["reference"].clone());
            to_fields(&PurchaseOrder {
                number: text(&raw["number"]),
                description: text(&raw["description"]),
                status: state
                    .as_deref()
                    .and_then(|state| purchase_status(state, shipment_state.as_deref())),
                remote_status: state,
                vendor: reference(ObjectType::Vendors, &raw["party."]),
                site: reference(ObjectType::Sites, &raw["company"]),
                ordered_at: read_date_start(&raw["purchase_date"]),
                required_at: read_date_start(&raw["delivery_date"]),
                total_cost: read_number(&raw["total_amount"]),
                currency: text(&raw["currency."]["code"]),
                lines,
            })
        }
        ObjectType::ProductionOrders => {
            let state = text(&raw["state"]);
            let done = state.as_deref() == Some("done");
            let quantity = read_number(&raw["quantity"]);
            custom.insert(
                "warehouse".to_owned(),
                raw["warehouse."]["rec_name"].clone(),
            );
            to_fields(&ProductionOrder {
                number: text(&raw["number"]),
                product: name_of(&raw["product."]),
                description: text(&raw["reference"]),
                status: state.as_deref().and_then(production_status),
                remote_status: state,
                site: reference(ObjectType::Sites, &raw["company"]),
                quantity_planned: quantity,
                quantity_produced: if done { quantity } else { None },
                unit: text(&raw["unit."]["symbol"]),
                scheduled_start: read_date_start(&raw["planned_start_date"]),
                scheduled_end: read_date_start(&raw["planned_date"]),
                actual_start: read_date_start(&raw["effective_start_date"]),
                actual_end: read_date_start(&raw["effective_date"]),
                ..ProductionOrder::default()
            })
        }
        ObjectType::QualityEvents => {
            let state = text(&raw["state"]);
            custom.insert("origin".to_owned(), raw["origin"].clone());
            custom.insert("points".to_owned(), raw["points"].clone());
            to_fields(&QualityEvent {
                number: text(&raw["number"]),
                event_type: Some("inspection".to_owned()),
                title: name_of(&raw["control."]),
                description: text(&raw["reference"]),
                status: state.as_deref().map(|state| {
                    match state {
                        "pending" => "open",
                        _ => "closed",
                    }
                    .to_owned()
                }),
                remote_status: state,
                site: reference(ObjectType::Sites, &raw["company"]),
                opened_at: read_datetime(&raw["create_date"]),
                closed_at: read_datetime(&raw["processed_at"]),
                ..QualityEvent::default()
            })
        }
        ObjectType::WorkOrders => {
            let status_progress = read_number(&raw["status."]["progress"]);
            let progress = read_number(&raw["progress"]);
            custom.insert("progress".to_owned(), raw["progress"].clone());
            custom.insert("project".to_owned(), raw["parent."]["rec_name"].clone());
            custom.insert("party".to_owned(), raw["party."]["rec_name"].clone());
            if let Some(hours) = read_hours(&raw["effort_duration"]) {
                custom.insert("effort_hours".to_owned(), hours.into());
            }
            if let Some(hours) = read_hours(&raw["timesheet_duration"]) {
                custom.insert("timesheet_hours".to_owned(), hours.into());
            }
            to_fields(&WorkOrder {
                number: text(&raw["number"]),
                title: text(&raw["name"]),
                description: text(&raw["comment"]),
                status: Some(work_status(status_progress, progress)),
                remote_status: name_of(&raw["status."]),
                work_type: Some(WorkType::Project),
                remote_work_type: text(&raw["type"]),
                site: reference(ObjectType::Sites, &raw["company"]),
                actual_start: read_date_start(&raw["timesheet_start_date"]),
                actual_end: read_date_start(&raw["timesheet_end_date"]),
                ..WorkOrder::default()
            })
        }
        other => return Err(reject(format!("Tryton offers no {other}"))),
    }
    .map_err(reject)?;

    custom.retain(|_, value| !value.is_null());
    Ok(SourceRecord {
        remote_id: format!("{}{id}", spec.id_prefix),
        remote_created_at: read_datetime(&raw["create_date"]),
        remote_updated_at: change_time(&raw),
        remote_deleted_at: None,
        fields,
        custom_fields: custom,
        remote_data: raw,
    })
}

/// The record's change time: Tryton's `last_modified_at`, else the later of its own stamps.
pub fn change_time(raw: &Value) -> Option<DateTime<Utc>> {
    read_datetime(&raw["last_modified_at"])
        .or_else(|| read_datetime(&raw["write_date"]))
        .or_else(|| read_datetime(&raw["create_date"]))
}

/// A purchase request (a requisition a purchaser has yet to turn into a purchase) as a
/// purchase order of one line, without a number. Once purchased, the purchase it became is
/// named in `custom_fields.purchase`.
fn purchase_request(
    connection_id: &str,
    raw: &Value,
    custom: &mut Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let state = text(&raw["state"]);
    custom.insert("kind".to_owned(), Value::from("purchase_request"));
    custom.insert("purchase".to_owned(), raw["purchase"].clone());
    custom.insert("warehouse".to_owned(), raw["warehouse"].clone());
    let product = raw["product"].as_i64();
    let line = PurchaseOrderLine {
        line_number: Some(1),
        part: product.map(|id| Reference::new(connection_id, ObjectType::Parts, id.to_string())),
        description: name_of(&raw["product."]).or_else(|| text(&raw["description"])),
        quantity: read_number(&raw["quantity"]),
        unit_of_measure: text(&raw["unit."]["symbol"]),
        ..PurchaseOrderLine::default()
    };
    to_fields(&PurchaseOrder {
        number: None,
        description: text(&raw["description"]),
        status: state.as_deref().and_then(request_status),
        remote_status: state,
        vendor: raw["party."]["id"]
            .as_i64()
            .map(|id| Reference::new(connection_id, ObjectType::Vendors, id.to_string())),
        site: raw["company"]
            .as_i64()
            .map(|id| Reference::new(connection_id, ObjectType::Sites, id.to_string())),
        ordered_at: read_date_start(&raw["purchase_date"]),
        required_at: read_date_start(&raw["supply_date"]),
        total_cost: None,
        currency: None,
        lines: vec![line],
    })
}

/// Normalises a purchase request's `state`: waiting for a purchaser, purchased, received.
fn request_status(state: &str) -> Option<PurchaseOrderStatus> {
    Some(match state {
        "draft" => PurchaseOrderStatus::PendingApproval,
        "purchased" => PurchaseOrderStatus::Approved,
        "done" => PurchaseOrderStatus::Received,
        "cancelled" => PurchaseOrderStatus::Cancelled,
        _ => return None,
    })
}

fn purchase_line(connection_id: &str, line: &Value) -> PurchaseOrderLine {
    let product = line["product"].as_i64();
    PurchaseOrderLine {
        line_number: line["sequence"].as_i64(),
        part: product.map(|id| Reference::new(connection_id, ObjectType::Parts, id.to_string())),
        description: text(&line["description"]).or_else(|| name_of(&line["product."])),
        quantity: read_number(&line["quantity"]),
        quantity_received: read_number(&line["actual_quantity"]),
        unit_of_measure: text(&line["unit."]["symbol"]),
        unit_cost: read_number(&line["unit_price"]),
        line_cost: read_number(&line["amount"]),
    }
}

/// Normalises a purchase's `state`, refined by its `shipment_state` once confirmed.
fn purchase_status(state: &str, shipment_state: Option<&str>) -> Option<PurchaseOrderStatus> {
    Some(match (state, shipment_state) {
        ("draft", _) => PurchaseOrderStatus::Draft,
        ("quotation", _) => PurchaseOrderStatus::PendingApproval,
        ("confirmed" | "processing", Some("partially shipped")) => {
            PurchaseOrderStatus::PartiallyReceived
        }
        ("confirmed" | "processing", Some("received")) => PurchaseOrderStatus::Received,
        ("confirmed" | "processing", _) => PurchaseOrderStatus::Approved,
        ("done", _) => PurchaseOrderStatus::Closed,
        ("cancelled", _) => PurchaseOrderStatus::Cancelled,
        _ => return None,
    })
}

fn production_status(state: &str) -> Option<String> {
    let status = match state {
        "request" | "draft" | "waiting" | "assigned" => "planned",
        "running" => "in_progress",
        "done" => "completed",
        "cancelled" => "cancelled",
        _ => return None,
    };
    Some(status.to_owned())
}

/// A task's status from its work status's progress (Tryton's "Done" is 1) or its own.
fn work_status(status_progress: Option<f64>, progress: Option<f64>) -> WorkOrderStatus {
    match status_progress.or(progress) {
        Some(done) if done >= 1.0 => WorkOrderStatus::Completed,
        Some(started) if started > 0.0 => WorkOrderStatus::InProgress,
        _ => WorkOrderStatus::Open,
    }
}

fn active_status(active: bool) -> ActiveStatus {
    if active {
        ActiveStatus::Active
    } else {
        ActiveStatus::Inactive
    }
}

fn active_text(active: bool) -> String {
    if active { "active" } else { "inactive" }.to_owned()
}

/// Reads a boolean, which Tryton on SQLite sends as the integer it stores.
fn flag(value: &Value) -> Option<bool> {
    value
        .as_bool()
        .or_else(|| value.as_i64().map(|number| number != 0))
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// The `rec_name` of a many2one read with it.
fn name_of(related: &Value) -> Option<String> {
    text(&related["rec_name"])
}

fn to_fields<T: Serialize>(unified: &T) -> Result<Map<String, Value>, String> {
    match serde_json::to_value(unified) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(format!(
            "unified record serialised to {other}, not an object"
        )),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(second: u32, microsecond: u32) -> Value {
        json!({"__class__": "datetime", "year": 2026, "month": 12, "day": 4, "hour": 16,
               "minute": 26, "second": second, "microsecond": microsecond})
    }

    #[test]
    fn a_lot_becomes_an_asset_with_the_change_time_of_its_last_write() {
        let raw = json!({
            "id": 7, "number": "3D-42200", "active": 1,
            "create_date": at(1, 0), "write_date": at(9, 500_000),
            "last_modified_at": at(9, 500_000),
            "product.": {"id": 3, "rec_name": "[CUSP-M4] CUSP-M4", "name": "CUSP-M4",
                         "code": "CUSP-M4", "description": "Datalogger by Canterbury"},
        });
        let spec = specs(ObjectType::Assets)[0];
        let record = record(ObjectType::Assets, &spec, "conn", raw, &Related::default()).unwrap();
        assert_eq!(record.remote_id, "7");
        assert_eq!(record.fields["serial_number"], "3D-42200");
        assert_eq!(record.fields["name"], "CUSP-M4");
        assert_eq!(record.fields["status"], Value::Null);
        assert_eq!(record.fields["remote_status"], "active");
        assert_eq!(
            record.remote_updated_at.unwrap().to_rfc3339(),
            "2026-12-04T16:26:09.500+00:00"
        );
        assert_eq!(
            record.remote_created_at.unwrap().to_rfc3339(),
            "2026-12-04T16:26:01+00:00"
        );
    }

    #[test]
    fn a_record_never_written_changes_at_its_creation() {
        let raw = json!({"id": 1, "create_date": at(1, 250_000), "write_date": null});
        assert_eq!(change_time(&raw), read_datetime(&at(1, 250_000)));
        assert_eq!(change_time(&json!({"id": 1})), None);
    }

    #[test]
    fn a_purchase_keeps_its_lines_and_decimal_amounts() {
        let mut related = Related::default();
        related.purchase_lines.insert(
            4,
            vec![json!({"id": 9, "purchase": 4, "sequence": 1, "product": 3,
                        "product.": {"id": 3, "rec_name": "CR1000"}, "description": null,
                        "quantity": 2.0, "actual_quantity": 0.0,
                        "unit.": {"id": 1, "symbol": "u"},
                        "unit_price": {"__class__": "Decimal", "decimal": "1799.50"},
                        "amount": {"__class__": "Decimal", "decimal": "3599.00"}})],
        );
        let raw = json!({
            "id": 4, "number": "1", "state": "processing", "shipment_state": "waiting",
            "party.": {"id": 12, "rec_name": "Campbell Scientific"}, "company": 1,
            "purchase_date": {"__class__": "date", "year": 2026, "month": 1, "day": 3},
            "total_amount": {"__class__": "Decimal", "decimal": "3599.00"},
            "currency.": {"id": 1, "code": "NZD"},
            "create_date": at(1, 0), "last_modified_at": at(1, 0),
        });
        let spec = specs(ObjectType::PurchaseOrders)[0];
        let record = record(ObjectType::PurchaseOrders, &spec, "conn", raw, &related).unwrap();
        assert_eq!(record.fields["status"], "approved");
        assert_eq!(record.fields["remote_status"], "processing");
        assert_eq!(record.fields["total_cost"], 3599.0);
        assert_eq!(record.fields["currency"], "NZD");
        assert_eq!(record.fields["vendor"]["remote_id"], "12");
        assert_eq!(record.fields["ordered_at"], "2026-01-03T00:00:00Z");
        let line = &record.fields["lines"][0];
        assert_eq!(line["unit_cost"], 1799.5);
        assert_eq!(line["description"], "CR1000");
        assert_eq!(line["part"]["remote_id"], "3");
    }

    #[test]
    fn a_purchase_request_is_a_purchase_order_of_one_line_with_its_own_remote_id() {
        let raw = json!({
            "id": 3, "state": "draft", "description": null, "product": 5,
            "product.": {"id": 5, "rec_name": "[CR1000] CR1000"},
            "party.": {"id": 4, "rec_name": "Campbell Scientific"},
            "quantity": 5.0, "unit.": {"id": 1, "symbol": "u"}, "company": 1, "warehouse": 5,
            "purchase_date": null,
            "supply_date": {"__class__": "date", "year": 2026, "month": 3, "day": 3},
            "purchase": null, "create_date": at(1, 0), "last_modified_at": at(1, 0),
        });
        let requests = specs(ObjectType::PurchaseOrders)[1];
        assert_eq!(requests.model, "purchase.request");
        let record = record(
            ObjectType::PurchaseOrders,
            &requests,
            "conn",
            raw,
            &Related::default(),
        )
        .unwrap();
        assert_eq!(record.remote_id, "request-3");
        assert_eq!(record.fields["status"], "pending_approval");
        assert_eq!(record.fields["vendor"]["remote_id"], "4");
        assert_eq!(record.fields["required_at"], "2026-03-03T00:00:00Z");
        assert_eq!(record.fields["lines"][0]["quantity"], 5.0);
        assert_eq!(record.fields["lines"][0]["part"]["remote_id"], "5");
        assert_eq!(record.custom_fields["kind"], "purchase_request");
    }

    #[test]
    fn statuses_are_normalised_and_the_source_value_kept() {
        assert_eq!(production_status("running").as_deref(), Some("in_progress"));
        assert_eq!(production_status("waiting").as_deref(), Some("planned"));
        assert_eq!(production_status("unheard of"), None);
        assert_eq!(
            purchase_status("processing", Some("received")),
            Some(PurchaseOrderStatus::Received)
        );
        assert_eq!(work_status(Some(1.0), None), WorkOrderStatus::Completed);
        assert_eq!(work_status(Some(0.0), Some(0.5)), WorkOrderStatus::Open);
        assert_eq!(work_status(None, Some(0.5)), WorkOrderStatus::InProgress);
    }

    #[test]
    fn a_record_without_an_id_is_rejected() {
        let rejected = record(
            ObjectType::Vendors,
            &specs(ObjectType::Vendors)[0],
            "conn",
            json!({"name": "x"}),
            &Related::default(),
        )
        .unwrap_err();
        assert_eq!(rejected.remote_id, None);
    }
}
