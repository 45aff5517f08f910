//! The IBM Maximo Manage connector: reads Maximo's OSLC/REST JSON API (object structures such
//! as `mxapiwodetail`) into the unified model, and ships a Maximo-like sandbox to test against.
//!
//! [`client`] knows the requests, paging and authentication; [`mapping`] turns Maximo records
//! into unified ones; [`sandbox`] is the server that follows the documented API.

pub mod client;
#[cfg(feature = "compliance")]
pub mod compliance;
pub mod listing;
pub mod mapping;
mod parts;
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
pub const SYSTEM_ID: &str = "ibm_maximo";

/// The IBM Maximo Manage connector.
pub struct MaximoConnector {
    info: SystemInfo,
}

/// Returns the connector, for the registry.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(MaximoConnector::new())
}

impl MaximoConnector {
    pub fn new() -> Self {
        MaximoConnector {
            info: system_info(),
        }
    }
}

impl Default for MaximoConnector {
    fn default() -> Self {
        MaximoConnector::new()
    }
}

#[async_trait]
impl Connector for MaximoConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(client::MaximoSource::open(credentials)?))
    }

    async fn start_sandbox(
        &self,
        options: SandboxOptions,
    ) -> Result<Option<RunningSandbox>, ConnectorError> {
        sandbox::start(options).await.map(Some).map_err(|err| {
            ConnectorError::Sandbox(format!("the maximo sandbox did not start: {err}"))
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
    let objects = client::STRUCTURES
        .iter()
        .map(|structure| ObjectSupport {
            object: structure.object,
            read: true,
            incremental: true,
            deletes: false,
            write: false,
        })
        .collect();
    SystemInfo {
        id: SYSTEM_ID.to_owned(),
        name: "IBM Maximo Manage".to_owned(),
        vendor: "IBM".to_owned(),
        category: SystemCategory::Eam,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field(
                "base_url",
                "Maximo URL",
                false,
                true,
                "The Maximo root URL, e.g. https://host/maximo (the connector adds /oslc/os/...).",
            ),
            field(
                "api_key",
                "API key",
                true,
                false,
                "An API key of a Maximo user, sent as the apikey header. Give this, or a \
                 username and password.",
            ),
            field(
                "username",
                "Username",
                false,
                false,
                "A Maximo user for native authentication (maxauth), with the password.",
            ),
            field(
                "password",
                "Password",
                true,
                false,
                "The password of the Maximo user.",
            ),
        ],
        objects,
        verification: "Tested against Millrace's own Maximo sandbox, which follows IBM's \
                       documented OSLC/REST JSON API (paging, where clauses, time format, errors, \
                       limits) with public data sets; not yet tested against a licensed Maximo."
            .to_owned(),
    }
}

/// Returns the object types this connector reads, in catalogue order.
pub fn objects() -> Vec<ObjectType> {
    client::STRUCTURES
        .iter()
        .map(|structure| structure.object)
        .collect()
}
