//! The OPC UA connector: any OPC UA server's objects become assets, its variables meters, their
//! values meter readings (from history where the server keeps it, from a subscription
//! otherwise), and machine state variables give asset downtimes. [`demo`] serves a small plant
//! from this process, for `millrace demo`.
//!
//! [`client`] opens sessions and says why one failed; [`config`] reads a connection's
//! settings; [`source`] answers the sync engine; [`monitor`] holds the subscriptions;
//! [`mapping`] turns nodes and values into unified records.

pub mod client;
pub mod config;
pub mod demo;
pub mod mapping;
pub mod monitor;
pub mod source;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use millrace_connector::{Connector, ConnectorError, Credentials, Source};
use millrace_model::{
    CredentialField, CreditCost, ObjectSupport, ObjectType, SystemCategory, SystemInfo,
};

pub use config::Config;
pub use monitor::Monitors;

/// The catalogue id of the system.
pub const SYSTEM_ID: &str = "opcua";

/// The object types this connector reads.
pub const OBJECTS: [ObjectType; 4] = [
    ObjectType::Assets,
    ObjectType::Meters,
    ObjectType::MeterReadings,
    ObjectType::AssetDowntimes,
];

/// The OPC UA connector.
pub struct OpcUaConnector {
    info: SystemInfo,
    pki_dir: PathBuf,
    monitors: Arc<Monitors>,
}

/// Returns the connector, for the registry. Its client certificate and key live in
/// `MILLRACE_OPCUA_PKI_DIR`, by default `millrace-opcua-pki` in the temp folder; a server that
/// requires trusted clients must trust that certificate once.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(OpcUaConnector::new(default_pki_dir()))
}

/// Returns where client certificates live: `MILLRACE_OPCUA_PKI_DIR`, else
/// `millrace-opcua-pki` in the temp folder.
pub fn default_pki_dir() -> PathBuf {
    std::env::var_os("MILLRACE_OPCUA_PKI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("millrace-opcua-pki"))
}

impl OpcUaConnector {
    /// Returns a connector whose client certificate lives in `pki_dir`.
    pub fn new(pki_dir: PathBuf) -> OpcUaConnector {
        OpcUaConnector {
            info: system_info(),
            monitors: Arc::new(Monitors::new(pki_dir.clone())),
            pki_dir,
        }
    }

    /// Returns the subscriptions this connector holds (tests close them to act out a restart).
    pub fn monitors(&self) -> &Arc<Monitors> {
        &self.monitors
    }

    /// Builds a source for `config`, as [`Connector::open`] does from credentials.
    pub fn source(&self, config: Config) -> source::OpcUaSource {
        source::OpcUaSource::new(config, self.monitors.clone(), self.pki_dir.clone())
    }
}

#[async_trait]
impl Connector for OpcUaConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(
            self.source(Config::from_credentials(credentials)?),
        ))
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
        name: "OPC UA server".to_owned(),
        vendor: "OPC Foundation (any vendor's server)".to_owned(),
        category: SystemCategory::Historian,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field(
                "endpoint",
                "Endpoint URL",
                false,
                true,
                "The server's endpoint, e.g. opc.tcp://plc-gateway:4840.",
            ),
            field(
                "security",
                "Security",
                false,
                false,
                "`none` (default) or `basic256sha256` (Basic256Sha256, signed and encrypted).",
            ),
            field(
                "server_certificate_thumbprint",
                "Server certificate thumbprint",
                false,
                false,
                "With basic256sha256: the SHA-1 thumbprint of the server certificate to trust.",
            ),
            field(
                "trust_server_certificate",
                "Trust any server certificate",
                false,
                false,
                "With basic256sha256 and no thumbprint: true encrypts without checking who \
                 the server is.",
            ),
            field(
                "username",
                "User name",
                false,
                false,
                "Leave empty for an anonymous login.",
            ),
            field("password", "Password", true, false, "The user's password."),
            field(
                "browse_root",
                "Browse root",
                false,
                false,
                "Node id below which to browse, e.g. ns=2;s=Plant; default the Objects folder \
                 (i=85).",
            ),
            field(
                "asset_types",
                "Asset types",
                false,
                false,
                "Type definition node ids of the objects that are assets; default every object \
                 but folders.",
            ),
            field(
                "meter_variables",
                "Meter variables",
                false,
                false,
                "Browse names of the variables that are meters; default all.",
            ),
            field(
                "state_variables",
                "State variables",
                false,
                false,
                "Browse names of machine state variables, whose stops become downtimes; \
                 default State.",
            ),
            field(
                "running_values",
                "Running values",
                false,
                false,
                "State values meaning the machine runs; default true, 1, running, run.",
            ),
            field(
                "readings",
                "Readings from",
                false,
                false,
                "`auto` (history where kept, else a subscription), `history` or \
                 `subscription`.",
            ),
        ],
        objects: OBJECTS
            .iter()
            .map(|object| ObjectSupport {
                object: *object,
                read: true,
                incremental: true,
                // Readings and downtimes are never deleted at the source: they are recorded
                // values, and history expiring on the server is no deletion. Assets and meters
                // are reconciled against the browse.
                deletes: matches!(
                    object,
                    ObjectType::MeterReadings | ObjectType::AssetDowntimes
                ),
                write: false,
            })
            .collect(),
        verification: "Tested against a real OPC UA server, the Python asyncua server from \
                       PyPI, with a small plant model: anonymous and user name logins, security \
                       None and Basic256Sha256 SignAndEncrypt, history and subscriptions, \
                       restarts of Millrace and of the server. Not yet run against a vendor's \
                       server (Kepware, Siemens, Experion)."
            .to_owned(),
    }
}
