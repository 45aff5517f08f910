//! The fields every record carries, whatever its object type.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{ids, ObjectType};

/// The envelope around every unified record, as the API serves it.
///
/// The object type's own fields (for example [`crate::objects::WorkOrder`]) sit beside these,
/// flattened into the same JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordEnvelope {
    /// Millrace's stable id for the record.
    pub id: String,
    /// The record's id in the source system.
    pub remote_id: String,
    /// When Millrace first stored the record.
    pub created_at: DateTime<Utc>,
    /// When Millrace last stored a real change to the record.
    pub modified_at: DateTime<Utc>,
    /// The source's own creation time, in UTC.
    pub remote_created_at: Option<DateTime<Utc>>,
    /// The source's own last change time, in UTC.
    pub remote_updated_at: Option<DateTime<Utc>>,
    /// Set when the source deleted the record (reported by the source or found by reconciliation).
    pub remote_deleted_at: Option<DateTime<Utc>>,
    /// Source fields the unified model has no place for.
    #[schema(value_type = Object)]
    pub custom_fields: Map<String, Value>,
    /// The source's raw record; present only when `include_remote_data=true` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remote_data: Option<Value>,
}

/// A reference from one record to another, by Millrace id and by remote id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reference {
    /// Millrace's id of the referenced record (it may not be synced yet).
    pub id: String,
    /// The referenced record's id in the source system.
    pub remote_id: String,
}

impl Reference {
    /// Builds the reference to a record of `object` with `remote_id` in one connection.
    pub fn new(connection_id: &str, object: ObjectType, remote_id: impl Into<String>) -> Self {
        let remote_id = remote_id.into();
        Reference {
            id: ids::record_id(connection_id, object, &remote_id),
            remote_id,
        }
    }
}
