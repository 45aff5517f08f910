//! The Tryton connector: reads a Tryton ERP database over its JSON-RPC into the unified model —
//! the company and its stock locations, serial-numbered lots as assets, products with their
//! stock, supplier parties, purchases with their lines and purchase requests, production
//! orders, quality inspections and project tasks.
//!
//! [`client`] knows the session and the JSON-RPC errors; [`encoding`] Tryton's tagged JSON
//! values; [`listing`] the change-ordered keyset paging; [`mapping`] turns records into unified
//! ones. Tryton runs here for real, so there is no sandbox: the `compliance` feature builds a
//! real `trytond` for tests ([`server`]) and the compliance harness's subject on it.

pub mod client;
#[cfg(feature = "compliance")]
pub mod compliance;
pub mod encoding;
pub mod listing;
pub mod mapping;
#[cfg(feature = "compliance")]
pub mod server;

use std::sync::Arc;

use async_trait::async_trait;
use millrace_connector::{Connector, ConnectorError, Credentials, Source};
use millrace_model::{
    CredentialField, CreditCost, ObjectSupport, ObjectType, SystemCategory, SystemInfo,
};

/// The catalogue id of the system.
pub const SYSTEM_ID: &str = "tryton";

/// The object types this connector reads.
pub const OBJECTS: [ObjectType; 9] = [
    ObjectType::Sites,
    ObjectType::Locations,
    ObjectType::Assets,
    ObjectType::Parts,
    ObjectType::Vendors,
    ObjectType::PurchaseOrders,
    ObjectType::ProductionOrders,
    ObjectType::QualityEvents,
    ObjectType::WorkOrders,
];

/// The Tryton connector.
pub struct TrytonConnector {
    info: SystemInfo,
}

/// Returns the connector, for the registry.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(TrytonConnector {
        info: system_info(),
    })
}

#[async_trait]
impl Connector for TrytonConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(listing::TrytonSource::open(credentials)?))
    }
}

fn system_info() -> SystemInfo {
    let field = |name: &str, label: &str, secret: bool, required: bool, description: &str| {
        CredentialField {
            name: name.to_owned(),
            label: label.to_owned(),
            secret,
            required,
            description: description.to_owned(),
        }
    };
    SystemInfo {
        id: SYSTEM_ID.to_owned(),
        name: "Tryton".to_owned(),
        vendor: "Tryton (community)".to_owned(),
        category: SystemCategory::Erp,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field(
                "base_url",
                "Server URL",
                false,
                true,
                "The Tryton server's address, e.g. https://erp.example.com (without the database).",
            ),
            field(
                "database",
                "Database",
                false,
                true,
                "The name of the Tryton database.",
            ),
            field(
                "username",
                "User",
                false,
                true,
                "A Tryton user allowed to read the company, stock, products, parties, purchases, \
                 productions, quality inspections and projects.",
            ),
            field("password", "Password", true, true, "The user's password."),
            field(
                "vendor_category",
                "Vendor party category",
                false,
                false,
                "When set, only parties of this party category are read as vendors; otherwise \
                 every party is, since Tryton does not mark suppliers.",
            ),
        ],
        objects: OBJECTS
            .iter()
            .map(|object| ObjectSupport {
                object: *object,
                read: true,
                incremental: true,
                deletes: false,
                write: false,
            })
            .collect(),
        verification: "Verified against a real Tryton 8.0 server (trytond and its company, \
                       product, stock, stock_lot, purchase, purchase_request, production, \
                       project and quality modules from PyPI, on SQLite), loaded with public \
                       data through Tryton's own API, and through the compliance harness on \
                       both Millrace backends; the harness's clock-skew and corrupt-record \
                       checks are skipped, as a real server cannot produce those faults. \
                       Deletions are found by reconciliation. Not verified against a \
                       PostgreSQL-backed Tryton or other Tryton series."
            .to_owned(),
    }
}
