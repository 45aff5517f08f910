//! The unified data model: one typed shape per object type, the same for every system.
//!
//! Connectors map their native records into these types; the store keeps them as JSON; the
//! API serves them inside the common [`record::RecordEnvelope`]. Nothing here knows HTTP, SQL or
//! any particular source system.

pub mod catalogue;
pub mod connection;
pub mod ids;
pub mod link;
pub mod object;
pub mod objects;
pub mod record;
pub mod webhook;

pub use catalogue::{CredentialField, CreditCost, ObjectSupport, SystemCategory, SystemInfo};
pub use connection::{
    Connection, ConnectionStatus, Credits, Deployment, LedgerEntry, RunKind, RunStatus, Stream,
    StreamState, SyncRun,
};
pub use link::{LinkSession, LinkSessionStatus};
pub use object::{ObjectKind, ObjectType, UnknownObject};
pub use record::{RecordEnvelope, Reference};
pub use webhook::{
    DeliveryAttempt, DeliveryStatus, EndpointStatus, EventType, WebhookDelivery, WebhookEndpoint,
};
