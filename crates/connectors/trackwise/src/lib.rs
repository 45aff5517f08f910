//! The Honeywell TrackWise Digital connector: reads the quality records of a TrackWise Digital
//! org through the Salesforce REST API it runs on, into sites and quality events, and ships a
//! Salesforce-like sandbox to test against.
//!
//! [`client`] knows the token, SOQL paging, deletions and limits; [`config`] the
//! per-connection names of the quality package's objects and fields; [`mapping`] turns records
//! into unified ones; [`sandbox`] is the server that follows the documented API.

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
pub const SYSTEM_ID: &str = "honeywell_trackwise_digital";

/// The object types this connector reads.
pub const OBJECTS: [ObjectType; 2] = [ObjectType::Sites, ObjectType::QualityEvents];

/// The TrackWise Digital connector.
pub struct TrackwiseConnector {
    info: SystemInfo,
}

/// Returns the connector, for the registry.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(TrackwiseConnector::new())
}

impl TrackwiseConnector {
    pub fn new() -> Self {
        TrackwiseConnector {
            info: system_info(),
        }
    }
}

impl Default for TrackwiseConnector {
    fn default() -> Self {
        TrackwiseConnector::new()
    }
}

#[async_trait]
impl Connector for TrackwiseConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(client::TrackwiseSource::open(credentials)?))
    }

    async fn start_sandbox(
        &self,
        options: SandboxOptions,
    ) -> Result<Option<RunningSandbox>, ConnectorError> {
        sandbox::start(options).await.map(Some).map_err(|err| {
            ConnectorError::Sandbox(format!("the trackwise sandbox did not start: {err}"))
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
        name: "Honeywell TrackWise Digital".to_owned(),
        vendor: "Honeywell".to_owned(),
        category: SystemCategory::Qms,
        tier: 2,
        credits: CreditCost::for_tier(2),
        credential_fields: vec![
            field(
                "instance_url",
                "My Domain URL",
                false,
                true,
                "The org's My Domain URL, e.g. https://acme.my.salesforce.com; it serves the \
                 OAuth token endpoint and the REST API.",
            ),
            field(
                "client_id",
                "Consumer key",
                false,
                true,
                "The consumer key of the connected app Millrace uses.",
            ),
            field(
                "client_secret",
                "Consumer secret",
                true,
                false,
                "The connected app's consumer secret. With no refresh token, the client \
                 credentials flow is used (the app needs a run-as user).",
            ),
            field(
                "refresh_token",
                "Refresh token",
                true,
                false,
                "A refresh token of the integration user, for the refresh token flow.",
            ),
            field(
                "api_version",
                "API version",
                false,
                false,
                "The REST API version, default v59.0.",
            ),
            field(
                "api_usage_percent",
                "API usage share",
                false,
                false,
                "Stop reading when the org's daily API usage reaches this percentage of its \
                 limit (1 to 100, default 80).",
            ),
            field(
                "mapping",
                "Object and field mapping",
                false,
                false,
                "JSON naming the quality package's objects and fields in this org, when they \
                 differ from the defaults (see the connector's README).",
            ),
        ],
        objects: OBJECTS
            .iter()
            // `deletes` stays false: the engine then also reconciles, which finds records
            // purged beyond the delete log; the log's deletions still arrive as tombstones.
            .map(|object| ObjectSupport {
                object: *object,
                read: true,
                incremental: true,
                deletes: false,
                write: false,
            })
            .collect(),
        verification: "Tested only against Millrace's own Salesforce-like sandbox, which \
                       follows Salesforce's documented REST API (OAuth token flows, SOQL query \
                       and queryAll paging, the deleted resource, error bodies, API usage \
                       limits) with quality records seeded from public maintenance texts; the \
                       default TrackWise Digital object and field names are assumptions, not \
                       verified against a licensed org."
            .to_owned(),
    }
}
