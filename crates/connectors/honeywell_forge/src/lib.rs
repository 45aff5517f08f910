//! The Honeywell Forge connector: reads sites, assets, alarms and events, and production
//! figures from Forge's enterprise APIs behind their OAuth 2.0 gateway, through a configurable
//! field mapping, and ships a gateway sandbox to test against.
//!
//! [`client`] knows the token and paging; [`config`] the mapping of paths and fields;
//! [`mapping`] turns records into unified ones; [`sandbox`] is the gateway-like server.

pub mod client;
#[cfg(feature = "compliance")]
pub mod compliance;
pub mod config;
pub mod mapping;
pub mod sandbox;

use std::sync::Arc;

use async_trait::async_trait;
use millrace_connector::{
    Connector, ConnectorError, Credentials, RunningSandbox, SandboxOptions, Source,
};
use millrace_model::{
    CredentialField, CreditCost, ObjectSupport, ObjectType, SystemCategory, SystemInfo,
};

/// The catalogue id of the system.
pub const SYSTEM_ID: &str = "honeywell_forge";

/// The object types this connector reads.
pub const OBJECTS: [ObjectType; 4] = [
    ObjectType::Sites,
    ObjectType::Assets,
    ObjectType::AssetDowntimes,
    ObjectType::ProductionOrders,
];

/// The object types read from the OPC UA server beneath Forge, when the connection names one
/// (`opcua_endpoint`); without it their streams stay empty.
pub const PROCESS_OBJECTS: [ObjectType; 2] = [ObjectType::Meters, ObjectType::MeterReadings];

/// The Honeywell Forge connector.
pub struct ForgeConnector {
    info: SystemInfo,
    opcua: millrace_opcua::OpcUaConnector,
}

/// Returns the connector, for the registry.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(ForgeConnector {
        info: system_info(),
        opcua: millrace_opcua::OpcUaConnector::new(millrace_opcua::default_pki_dir()),
    })
}

#[async_trait]
impl Connector for ForgeConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        let mut source = client::ForgeSource::open(credentials)?;
        if let Some(config) = client::process_values_config(credentials)? {
            source = source.with_process_values(self.opcua.source(config));
        }
        Ok(Box::new(source))
    }

    async fn start_sandbox(
        &self,
        options: SandboxOptions,
    ) -> Result<Option<RunningSandbox>, ConnectorError> {
        sandbox::start(options).await.map(Some).map_err(|err| {
            ConnectorError::Sandbox(format!("the forge sandbox did not start: {err}"))
        })
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
        name: "Honeywell Forge".to_owned(),
        vendor: "Honeywell".to_owned(),
        category: SystemCategory::Mes,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field("base_url", "Gateway URL", false, true,
                "The enterprise API gateway's base URL, e.g. https://api.forge.connected.honeywell.com."),
            field("token_url", "Token URL", false, false,
                "The OAuth 2.0 token endpoint; default <gateway URL>/oauth2/token."),
            field("client_id", "Client id", false, true, "The OAuth 2.0 client id."),
            field("client_secret", "Client secret", true, true, "The OAuth 2.0 client secret."),
            field("scope", "Scope", false, false, "The OAuth 2.0 scope to ask for, when the gateway needs one."),
            field("mapping", "Field mapping", false, false,
                "JSON naming the gateway's paths, paging parameters and fields, when they differ \
                 from the defaults (see the connector's README)."),
            field("opcua_endpoint", "Experion OPC UA endpoint (optional)", false, false,
                "opc.tcp:// URL of the OPC UA server of the Experion system beneath Forge: \
                 meters and meter readings are read from it by the OPC UA connector."),
            field("opcua_username", "OPC UA user name (optional)", false, false,
                "Leave empty for an anonymous login to the OPC UA endpoint."),
            field("opcua_password", "OPC UA password (optional)", true, false,
                "The OPC UA user's password."),
            field("opcua_security", "OPC UA security (optional)", false, false,
                "`none` (default) or `basic256sha256`, as the OPC UA connector's `security`."),
            field("opcua_server_certificate_thumbprint", "OPC UA server thumbprint (optional)",
                false, false, "With basic256sha256: the server certificate's SHA-1 thumbprint."),
            field("opcua_browse_root", "OPC UA browse root (optional)", false, false,
                "Node id below which process variables are browsed; default the Objects folder."),
        ],
        objects: OBJECTS
            .iter()
            .chain(PROCESS_OBJECTS.iter())
            .map(|object| ObjectSupport {
                object: *object,
                read: true,
                incremental: true,
                // Meter readings from OPC UA are recorded values, never deleted at the source
                // (see the opcua connector): nothing to reconcile.
                deletes: *object == ObjectType::MeterReadings,
                write: false,
            })
            .collect(),
        verification: "Verified only against Millrace's own gateway sandbox. Honeywell Forge's \
                       enterprise API schemas are partner-gated and not public: the default \
                       paths, paging and field names describe the sandbox, not a real Forge \
                       gateway, and must be mapped per connection. Deletions are found by \
                       reconciliation. Meters and readings from the optional OPC UA endpoint are read by the \
                       OPC UA connector, tested against real OPC UA servers."
            .to_owned(),
    }
}
