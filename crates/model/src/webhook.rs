//! Webhook endpoints, the events Millrace announces and their deliveries: the shapes of the
//! management API's `/v1/webhooks`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::connection::string_enum;

string_enum! {
    /// What an event announces. Every event's `data` names the `connection_id` and
    /// `customer_id` it concerns.
    EventType {
        ConnectionCreated => "connection.created",
        ConnectionDisconnected => "connection.disconnected",
        ConnectionReauthRequired => "connection.reauth_required",
        SyncCompleted => "sync.completed",
        SyncFailed => "sync.failed",
        RecordsChanged => "records.changed",
    }
}

impl EventType {
    /// Every event type, in the order the documentation lists them.
    pub const ALL: &'static [EventType] = &[
        EventType::ConnectionCreated,
        EventType::ConnectionDisconnected,
        EventType::ConnectionReauthRequired,
        EventType::SyncCompleted,
        EventType::SyncFailed,
        EventType::RecordsChanged,
    ];
}

string_enum! {
    /// Whether an endpoint has been accepting deliveries. `failing` is a mark for the operator,
    /// not a stop: deliveries go on, and the next successful one clears it.
    EndpointStatus { Active => "active", Failing => "failing", }
}

string_enum! {
    /// Where a delivery stands: `pending` until an attempt succeeds (`succeeded`) or every
    /// retry of its schedule has failed (`failed`).
    DeliveryStatus { Pending => "pending", Succeeded => "succeeded", Failed => "failed", }
}

/// A URL the operator registered to receive events, signed with the endpoint's own secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// The event types delivered to this endpoint; `null` means every type, including types
    /// added in later versions.
    pub events: Option<Vec<EventType>>,
    pub status: EndpointStatus,
    /// Failed attempts since the last successful one.
    pub consecutive_failures: u32,
    /// When the endpoint was marked `failing`, while it is.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One event on its way to one endpoint, with every attempt made so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: String,
    pub endpoint_id: String,
    /// The event's id, sent as the `webhook-id` header: the same on every attempt, so a
    /// receiver can drop a repeated delivery.
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// When the next attempt is due, while the delivery is pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When an attempt first succeeded.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// One HTTP request of a delivery and how the endpoint answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt of the delivery.
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's HTTP status, when it answered at all.
    pub status_code: Option<u16>,
    /// Time from sending the request to the end of the answer's headers, or to the failure.
    pub latency_ms: u64,
    /// Why the attempt failed (a status other than 2xx, a timeout, a refused connection).
    pub error: Option<String>,
    pub succeeded: bool,
}
