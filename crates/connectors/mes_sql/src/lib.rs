//! MES databases: on-premise MES systems keep their production orders, operations, downtime
//! and quality records in PostgreSQL or MariaDB/MySQL. This connector reads them directly,
//! through a read-only session, with a mapping the operator writes per connection (a table or
//! a query per unified object, its key and change columns, and a field map).
//!
//! [`config`] reads the credentials and the mapping; [`client`] holds the session pool, checks
//! the mapping against the live schema and reads keyset pages; [`sql`] writes the statements
//! for both engines; [`mapping`] turns rows into unified records.

pub mod client;
#[cfg(feature = "compliance")]
pub mod compliance;
pub mod config;
pub mod mapping;
pub mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use millrace_connector::{Connector, ConnectorError, Credentials, Source};
use millrace_model::{
    CredentialField, CreditCost, ObjectSupport, ObjectType, SystemCategory, SystemInfo,
};

/// The catalogue id of MES databases on PostgreSQL.
pub const POSTGRES_SYSTEM_ID: &str = "mes_postgresql";
/// The catalogue id of MES databases on MariaDB or MySQL.
pub const MYSQL_SYSTEM_ID: &str = "mes_mariadb";

/// The object types a mapping may fill.
pub const OBJECTS: [ObjectType; 8] = [
    ObjectType::Sites,
    ObjectType::Assets,
    ObjectType::Meters,
    ObjectType::WorkOrders,
    ObjectType::MeterReadings,
    ObjectType::AssetDowntimes,
    ObjectType::ProductionOrders,
    ObjectType::QualityEvents,
];

/// The database engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    /// MariaDB, or MySQL: the same protocol and SQL for what this connector sends.
    MySql,
}

impl Engine {
    /// The engine's usual port.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
        }
    }

    /// The engine's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::MySql => "MariaDB/MySQL",
        }
    }
}

/// The connector of one engine's MES databases.
pub struct MesSqlConnector {
    engine: Engine,
    info: SystemInfo,
}

/// Returns both connectors (PostgreSQL, MariaDB/MySQL), for the registry.
pub fn connectors() -> [Arc<dyn Connector>; 2] {
    [connector(Engine::Postgres), connector(Engine::MySql)]
}

/// Returns the connector of one engine.
pub fn connector(engine: Engine) -> Arc<dyn Connector> {
    Arc::new(MesSqlConnector {
        engine,
        info: system_info(engine),
    })
}

#[async_trait]
impl Connector for MesSqlConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(client::SqlSource::open(self.engine, credentials)?))
    }
}

fn system_info(engine: Engine) -> SystemInfo {
    let field = |name: &str, label: &str, secret: bool, required: bool, description: &str| {
        CredentialField {
            name: name.to_owned(),
            label: label.to_owned(),
            secret,
            required,
            description: description.to_owned(),
        }
    };
    let (id, name, vendor) = match engine {
        Engine::Postgres => (
            POSTGRES_SYSTEM_ID,
            "MES database (PostgreSQL)",
            "PostgreSQL",
        ),
        Engine::MySql => (
            MYSQL_SYSTEM_ID,
            "MES database (MariaDB/MySQL)",
            "MariaDB/MySQL",
        ),
    };
    let port = engine.default_port();
    SystemInfo {
        id: id.to_owned(),
        name: name.to_owned(),
        vendor: vendor.to_owned(),
        category: SystemCategory::Mes,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field(
                "host",
                "Host",
                false,
                true,
                "The database server's host name or address.",
            ),
            field(
                "port",
                "Port",
                false,
                false,
                &format!("The server's port; default {port}."),
            ),
            field(
                "database",
                "Database",
                false,
                true,
                "The database holding the MES tables.",
            ),
            field(
                "username",
                "User",
                false,
                true,
                "A user that may read the mapped tables; the session is read-only either way.",
            ),
            field("password", "Password", true, false, "The user's password."),
            field(
                "tls",
                "Encryption",
                false,
                false,
                "disable, prefer (the default: TLS when the server offers it), require, \
                 verify-ca or verify-full (a trusted certificate for this host name).",
            ),
            field(
                "tls_root_cert",
                "Trusted certificate authority",
                false,
                false,
                "PEM certificates that may sign the server's certificate, for verify-ca and \
                 verify-full with a private authority; default the public ones.",
            ),
            field(
                "time_zone",
                "Time zone",
                false,
                false,
                "IANA zone (e.g. Europe/Berlin) that columns without a zone are written in \
                 (timestamp, DATETIME); default UTC.",
            ),
            field(
                "mapping",
                "Mapping",
                false,
                true,
                "JSON: per object (production-orders, asset-downtimes, ...) a table or query, \
                 its key and change columns, an optional deleted-flag column and the field map \
                 (see the connector's README).",
            ),
        ],
        objects: OBJECTS
            .iter()
            .map(|object| ObjectSupport {
                object: *object,
                read: true,
                incremental: true,
                // Rows deleted outright leave no trace to read: reconciliation finds them. A
                // mapped deleted-flag column adds tombstones, but does not replace it.
                deletes: false,
                write: false,
            })
            .collect(),
        verification: format!(
            "Tested against a real {} server (PostgreSQL 15 or MariaDB 10.11 on the test \
             machine) holding an MES schema filled from the AI4I 2020 data set, and through \
             the compliance harness; the harness's HTTP fault checks do not apply to a SQL \
             source and are skipped. Only objects the connection's mapping names are read. \
             Deletions are found by reconciliation, and as tombstones where a deleted-flag \
             column is mapped.",
            match engine {
                Engine::Postgres => "PostgreSQL",
                Engine::MySql => "MariaDB",
            }
        ),
    }
}
