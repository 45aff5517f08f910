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

/// The Honeywell Forge connector.
pub struct ForgeConnector {
    info: SystemInfo,
}

/// Returns the connector, for the registry.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(ForgeConnector {
        info: system_info(),
    })
}

#[async_trait]
impl Connector for ForgeConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(client::ForgeSource::open(credentials)?))
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
                "opc.tcp:// URL of the OPC UA server of the Experion system beneath Forge, for \
                 process values. Accepted and stored; not read yet."),
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
        verification: "Verified only against Millrace's own gateway sandbox. Honeywell Forge's \
                       enterprise API schemas are partner-gated and not public: the default \
                       paths, paging and field names describe the sandbox, not a real Forge \
                       gateway, and must be mapped per connection. Deletions are found by \
                       reconciliation. The optional OPC UA endpoint is not read yet."
            .to_owned(),
    }
}
