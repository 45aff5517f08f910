//! Link sessions: an operator's invitation for one customer to connect a system on the Link
//! page.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::connection::string_enum;

string_enum! {
    /// Where a link session stands: `pending` until the customer connects a system (then
    /// `completed`) or until it expires (`expired`).
    LinkSessionStatus {
        Pending => "pending",
        Completed => "completed",
        Expired => "expired",
    }
}

/// A link session as the management API shows it. The secret of its URL and its one-time code
/// appear in no answer but the one that made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkSession {
    /// `ls_...`
    pub id: String,
    pub customer_id: String,
    /// The systems the Link page offers; `null` offers the whole catalogue.
    pub systems: Option<Vec<String>>,
    /// Where the customer's browser is sent back, with `code` and `state`.
    pub redirect_uri: String,
    /// The caller's opaque value, returned unchanged beside `code`.
    pub state: Option<String>,
    pub status: LinkSessionStatus,
    /// The connection the customer made, once `completed`.
    pub connection_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When the code was exchanged for the connection's token.
    pub exchanged_at: Option<DateTime<Utc>>,
}
