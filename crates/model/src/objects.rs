//! The object types' own fields, one struct per type.
//!
//! Every field is optional unless every source can fill it: a system that lacks a field leaves
//! it `null` rather than inventing a value. Normalised enumerations sit beside the source's own
//! value (`status` and `remote_status`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Reference;

/// Work order status, normalised across systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    Open,
    InProgress,
    OnHold,
    Completed,
    Cancelled,
}

/// Priority, normalised across systems; the source's own value is kept as `remote_priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

/// Kind of maintenance work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkType {
    Corrective,
    Preventive,
    Predictive,
    Inspection,
    Emergency,
    Project,
    Other,
}

/// Status of master data such as sites, locations, assets, parts, vendors and users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActiveStatus {
    Active,
    Inactive,
}

/// Asset status, normalised across systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    Operating,
    NotOperating,
    Decommissioned,
}

/// Work request (service request, notification) status, normalised across systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkRequestStatus {
    Open,
    Approved,
    InProgress,
    Completed,
    Rejected,
    Cancelled,
}

/// Purchase order status, normalised across systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOrderStatus {
    Draft,
    PendingApproval,
    Approved,
    PartiallyReceived,
    Received,
    Closed,
    Cancelled,
}

/// A plant, facility or other top-level place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Site {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<ActiveStatus>,
    pub remote_status: Option<String>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub time_zone: Option<String>,
}

/// A functional location, area or position within a site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Location {
    pub code: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub location_type: Option<String>,
    pub status: Option<ActiveStatus>,
    pub remote_status: Option<String>,
    pub site: Option<Reference>,
    pub parent: Option<Reference>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A piece of equipment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Asset {
    /// The asset number or tag shown to people.
    pub asset_number: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub asset_type: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub status: Option<AssetStatus>,
    pub remote_status: Option<String>,
    pub site: Option<Reference>,
    pub location: Option<Reference>,
    pub parent: Option<Reference>,
    pub installed_at: Option<DateTime<Utc>>,
    pub criticality: Option<String>,
}

/// One task or operation of a work order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkOrderTask {
    pub remote_id: Option<String>,
    pub sequence: Option<i64>,
    pub description: Option<String>,
    pub status: Option<WorkOrderStatus>,
    pub remote_status: Option<String>,
    pub estimated_hours: Option<f64>,
    pub actual_hours: Option<f64>,
}

/// A work order with its tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkOrder {
    pub number: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<WorkOrderStatus>,
    pub remote_status: Option<String>,
    pub priority: Option<Priority>,
    pub remote_priority: Option<String>,
    pub work_type: Option<WorkType>,
    pub remote_work_type: Option<String>,
    pub site: Option<Reference>,
    pub location: Option<Reference>,
    pub asset: Option<Reference>,
    pub work_request: Option<Reference>,
    pub preventive_maintenance: Option<Reference>,
    pub assigned_to: Option<String>,
    pub reported_at: Option<DateTime<Utc>>,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub actual_start: Option<DateTime<Utc>>,
    pub actual_end: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub estimated_cost: Option<f64>,
    pub actual_cost: Option<f64>,
    pub currency: Option<String>,
    pub tasks: Vec<WorkOrderTask>,
}

/// A request for work: a service request or maintenance notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkRequest {
    pub number: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<WorkRequestStatus>,
    pub remote_status: Option<String>,
    pub priority: Option<Priority>,
    pub remote_priority: Option<String>,
    pub site: Option<Reference>,
    pub location: Option<Reference>,
    pub asset: Option<Reference>,
    pub reported_by: Option<String>,
    pub reported_at: Option<DateTime<Utc>>,
    pub work_order: Option<Reference>,
}

/// A preventive maintenance plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreventiveMaintenance {
    pub number: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<ActiveStatus>,
    pub remote_status: Option<String>,
    pub site: Option<Reference>,
    pub location: Option<Reference>,
    pub asset: Option<Reference>,
    pub frequency: Option<f64>,
    /// `days`, `weeks`, `months`, `years`, or a meter unit for usage-based plans.
    pub frequency_unit: Option<String>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub last_completed_at: Option<DateTime<Utc>>,
}

/// Stock of a part at one storeroom or location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartStock {
    pub site: Option<Reference>,
    pub location: Option<Reference>,
    /// The source's own storeroom or storage location code.
    pub storeroom: Option<String>,
    pub bin: Option<String>,
    pub quantity_on_hand: Option<f64>,
    pub quantity_reserved: Option<f64>,
    pub reorder_point: Option<f64>,
    pub unit_cost: Option<f64>,
}

/// A spare part or material, with its stock per location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Part {
    pub part_number: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<ActiveStatus>,
    pub remote_status: Option<String>,
    pub unit_of_measure: Option<String>,
    pub manufacturer: Option<String>,
    pub unit_cost: Option<f64>,
    pub currency: Option<String>,
    pub stock: Vec<PartStock>,
}

/// One line of a purchase order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseOrderLine {
    pub line_number: Option<i64>,
    pub part: Option<Reference>,
    pub description: Option<String>,
    pub quantity: Option<f64>,
    pub quantity_received: Option<f64>,
    pub unit_of_measure: Option<String>,
    pub unit_cost: Option<f64>,
    pub line_cost: Option<f64>,
}

/// A purchase order with its lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseOrder {
    pub number: Option<String>,
    pub description: Option<String>,
    pub status: Option<PurchaseOrderStatus>,
    pub remote_status: Option<String>,
    pub vendor: Option<Reference>,
    pub site: Option<Reference>,
    pub ordered_at: Option<DateTime<Utc>>,
    pub required_at: Option<DateTime<Utc>>,
    pub total_cost: Option<f64>,
    pub currency: Option<String>,
    pub lines: Vec<PurchaseOrderLine>,
}

/// A supplier, manufacturer or contractor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Vendor {
    pub code: Option<String>,
    pub name: Option<String>,
    pub status: Option<ActiveStatus>,
    pub remote_status: Option<String>,
    pub vendor_type: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub address: Option<String>,
    pub currency: Option<String>,
}

/// A person known to the source system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub status: Option<ActiveStatus>,
    pub remote_status: Option<String>,
    pub site: Option<Reference>,
}

/// A measurement point on an asset or location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Meter {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `continuous` (a counter that only grows), `gauge`, or `characteristic`.
    pub meter_type: Option<String>,
    pub unit: Option<String>,
    pub asset: Option<Reference>,
    pub location: Option<Reference>,
    pub last_reading: Option<f64>,
    pub last_reading_at: Option<DateTime<Utc>>,
}

/// One reading of a meter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeterReading {
    pub meter: Option<Reference>,
    pub asset: Option<Reference>,
    pub location: Option<Reference>,
    pub value: Option<f64>,
    /// The reading of a characteristic meter, which is a text rather than a number.
    pub text_value: Option<String>,
    pub unit: Option<String>,
    pub read_at: Option<DateTime<Utc>>,
    pub read_by: Option<String>,
}

/// A period an asset was not available.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssetDowntime {
    pub asset: Option<Reference>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `planned` or `unplanned`.
    pub category: Option<String>,
    pub reason: Option<String>,
    pub work_order: Option<Reference>,
}

/// A production order with its planned and actual quantities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductionOrder {
    pub number: Option<String>,
    pub product: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub remote_status: Option<String>,
    pub site: Option<Reference>,
    pub asset: Option<Reference>,
    pub quantity_planned: Option<f64>,
    pub quantity_produced: Option<f64>,
    pub quantity_scrapped: Option<f64>,
    pub unit: Option<String>,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub actual_start: Option<DateTime<Utc>>,
    pub actual_end: Option<DateTime<Utc>>,
}

/// A deviation, nonconformance, CAPA, complaint, change control or audit finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QualityEvent {
    pub number: Option<String>,
    /// `deviation`, `nonconformance`, `capa`, `complaint`, `change_control` or `audit`.
    pub event_type: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub remote_status: Option<String>,
    pub severity: Option<String>,
    pub site: Option<Reference>,
    pub asset: Option<Reference>,
    pub opened_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Metadata of a document attached to a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub title: Option<String>,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub url: Option<String>,
    /// Object type slug of the record the document is attached to.
    pub related_object: Option<String>,
    pub related: Option<Reference>,
}
