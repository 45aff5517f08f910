//! The MQTT Sparkplug B connector: subscribes to a broker, reads Sparkplug B births, data and
//! deaths into assets, meters, meter readings and downtimes, and keeps them in a durable
//! journal that the pull-based sync engine pages through.
//!
//! [`config`] reads the credentials; [`subscriber`] holds the broker session and fills the
//! [`journal`]; [`ingest`] knows what each message means; [`mapping`] builds the unified
//! records; [`client`] is the engine's `Source`; [`proto`] and [`topic`] are the wire format;
//! [`demo`] is an embedded broker and edge node for `millrace demo`.

pub mod client;
pub mod config;
pub mod demo;
pub mod ingest;
pub mod journal;
pub mod mapping;
pub mod proto;
pub mod subscriber;
pub mod topic;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use millrace_connector::{
    Connector, ConnectorError, Credentials, RunningSandbox, SandboxOptions, Source,
};
use millrace_model::{
    CredentialField, CreditCost, ObjectSupport, ObjectType, SystemCategory, SystemInfo,
};

use crate::subscriber::Hub;

/// The catalogue id of the system.
pub const SYSTEM_ID: &str = "mqtt_sparkplug_b";

/// The object types this connector reads.
pub const OBJECTS: [ObjectType; 4] = [
    ObjectType::Assets,
    ObjectType::Meters,
    ObjectType::MeterReadings,
    ObjectType::AssetDowntimes,
];

/// The environment variable naming the folder of the subscribers' journals.
pub const JOURNAL_DIR_ENV: &str = "MILLRACE_SPARKPLUG_JOURNAL_DIR";

/// The MQTT Sparkplug B connector, with the subscribers it runs in this process.
pub struct SparkplugConnector {
    info: SystemInfo,
    hub: Arc<Hub>,
}

/// Returns the connector for the registry, journaling into [`default_journal_dir`].
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(SparkplugConnector::new(default_journal_dir()))
}

/// Returns where journals go: `$MILLRACE_SPARKPLUG_JOURNAL_DIR`, else `sparkplug` in
/// `$MILLRACE_DATA_DIR`, else `data/sparkplug` (beside `millrace serve`'s default data folder).
pub fn default_journal_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(JOURNAL_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let data =
        std::env::var_os("MILLRACE_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from);
    data.join("sparkplug")
}

impl SparkplugConnector {
    /// Returns a connector whose subscribers journal into `journal_dir`.
    pub fn new(journal_dir: PathBuf) -> Self {
        SparkplugConnector {
            info: system_info(),
            hub: Arc::new(Hub::new(journal_dir)),
        }
    }

    /// Stops every subscriber and closes its journal, as the end of the process does. The
    /// next read starts them again from their journals and resumes their broker sessions.
    pub async fn shutdown(&self) {
        self.hub.shutdown().await;
    }
}

#[async_trait]
impl Connector for SparkplugConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(client::SparkplugSource::open(
            self.hub.clone(),
            credentials,
        )?))
    }

    /// Starts the demo plant as this system's sandbox: an embedded broker on
    /// `options.listen` and an edge node publishing a bottling line twice a second.
    async fn start_sandbox(
        &self,
        options: SandboxOptions,
    ) -> Result<Option<RunningSandbox>, ConnectorError> {
        let listen = options.listen.parse().map_err(|err| {
            ConnectorError::Sandbox(format!("`{}` is not an address: {err}", options.listen))
        })?;
        let plant = demo::start(listen, Duration::from_millis(500)).await?;
        Ok(Some(RunningSandbox {
            system: SYSTEM_ID.to_owned(),
            base_url: plant.broker_url,
            credentials: plant.credentials,
            task: plant.edge_node,
            shutdown: plant.shutdown,
        }))
    }

    /// The journal's change stamps are unique and commit in order, so a read needs no
    /// overlap; one second covers a clock that stepped back between two processes.
    fn overlap_window(&self) -> Duration {
        Duration::from_secs(1)
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
        name: "MQTT Sparkplug B".to_owned(),
        vendor: "Eclipse Foundation (Sparkplug specification)".to_owned(),
        category: SystemCategory::Historian,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field(
                "broker_url",
                "Broker URL",
                false,
                true,
                "mqtt://host:1883, or mqtts://host:8883 for TLS.",
            ),
            field(
                "username",
                "User name",
                false,
                false,
                "The broker login, when it asks for one.",
            ),
            field("password", "Password", true, false, "The broker password."),
            field(
                "client_id",
                "Client id",
                false,
                false,
                "The MQTT client id of Millrace's persistent session; by default derived from \
                 the other fields. The broker queues messages for it while Millrace is away.",
            ),
            field(
                "group_ids",
                "Group ids",
                false,
                false,
                "Comma-separated Sparkplug group ids to read; all groups when empty.",
            ),
            field(
                "edge_node_ids",
                "Edge node ids",
                false,
                false,
                "Comma-separated edge node ids to read; all nodes when empty.",
            ),
            field(
                "ca_pem",
                "CA certificates (PEM)",
                false,
                false,
                "Certificates to trust for mqtts:// instead of the public web roots.",
            ),
            field(
                "client_cert_pem",
                "Client certificate (PEM)",
                false,
                false,
                "For brokers that ask for a client certificate, with its key.",
            ),
            field(
                "client_key_pem",
                "Client key (PEM)",
                true,
                false,
                "The private key of the client certificate.",
            ),
            field(
                "tls_insecure_skip_verify",
                "Skip TLS verification",
                false,
                false,
                "true accepts any server certificate. Off by default; for test benches only.",
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
        verification: "Tested against a real Mosquitto broker with the Python pysparkplug \
                       package (its Sparkplug B encoding, over paho-mqtt) as the edge node: \
                       births, aliases, data, deaths, seq gaps answered by rebirth, restarts of \
                       Millrace and of the broker, wrong passwords; and with the demo's \
                       embedded rumqttd broker. TLS (private CA, client certificate, \
                       skipped verification) against a Mosquitto TLS listener. Data sets, \
                       templates and arrays are not read."
            .to_owned(),
    }
}
