//! The SAP connector: reads plant maintenance data (with measuring points and their readings)
//! and purchasing data from S/4HANA (cloud and on premise) and from ECC through SAP Gateway,
//! over OData V2 or V4, with the standard APIs' service and entity set names as defaults that a
//! connection can override.
//!
//! [`config`] reads a connection's settings and names the services; [`odata`] holds what
//! differs between V2 and V4; [`client`] logs on, pages and writes; [`mapping`] turns records
//! into unified ones. The tests run against an OData service built with SAP's Cloud
//! Application Programming Model, under `cap/`.

pub mod cap;
pub mod client;
#[cfg(feature = "compliance")]
pub mod compliance;
pub mod config;
pub mod mapping;
pub mod odata;

use std::sync::Arc;

use async_trait::async_trait;
use millrace_connector::{
    Connector, ConnectorError, Credentials, RunningSandbox, SandboxOptions, Source,
};
use millrace_model::{CredentialField, CreditCost, ObjectSupport, SystemCategory, SystemInfo};

/// The catalogue id of the system.
pub const SYSTEM_ID: &str = "sap_s4hana";

/// The SAP connector.
pub struct SapConnector {
    info: SystemInfo,
}

/// Returns the connector, for the registry.
pub fn connector() -> Arc<dyn Connector> {
    Arc::new(SapConnector {
        info: system_info(),
    })
}

#[async_trait]
impl Connector for SapConnector {
    fn system(&self) -> &SystemInfo {
        &self.info
    }

    fn open(&self, credentials: &Credentials) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(client::SapSource::open(credentials)?))
    }

    /// Starts the CAP test service of a checkout where `ci/setup.sh` has run, loaded with the
    /// excavator data (or empty). It listens on the port of `options.listen`, on every
    /// interface, as CAP does.
    async fn start_sandbox(
        &self,
        options: SandboxOptions,
    ) -> Result<Option<RunningSandbox>, ConnectorError> {
        let fail = |err: String| {
            ConnectorError::Sandbox(format!("the SAP test service did not start: {err}"))
        };
        let listen: std::net::SocketAddr = options
            .listen
            .parse()
            .map_err(|err| fail(format!("`{}` is not an address: {err}", options.listen)))?;
        let seed = if options.empty {
            cap::Seed::Empty
        } else {
            cap::Seed::Excavators {
                assets: ["A", "B", "C", "D", "E"].map(str::to_owned).to_vec(),
                max_orders: 400,
            }
        };
        let mut service = cap::CapService::try_start(cap::CapOptions {
            seed,
            port: listen.port(),
            data_dir: options.data_dir.clone(),
            ..cap::CapOptions::default()
        })
        .await
        .map_err(fail)?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        let base_url = service.base_url.clone();
        let credentials = service.credentials();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = service.wait() => {}
            }
            service.stop().await;
        });
        Ok(Some(RunningSandbox {
            system: SYSTEM_ID.to_owned(),
            base_url,
            credentials,
            task,
            shutdown,
        }))
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
        name: "SAP S/4HANA and ECC (SAP Gateway)".to_owned(),
        vendor: "SAP".to_owned(),
        category: SystemCategory::Erp,
        tier: 4,
        credits: CreditCost::for_tier(4),
        credential_fields: vec![
            field("base_url", "System URL", false, true,
                "Scheme, host and port of the system or its Gateway, e.g. \
                 https://my123456-api.s4hana.cloud.sap or https://gateway.example:44300."),
            field("sap_client", "Client", false, false,
                "The three-digit SAP client (sap-client), e.g. 100; the system's default when empty."),
            field("username", "Communication user", false, false,
                "User of the communication arrangement, for Basic authentication."),
            field("password", "Password", true, false, "The communication user's password."),
            field("client_id", "OAuth client id", false, false,
                "For OAuth 2.0 client credentials instead of Basic authentication."),
            field("client_secret", "OAuth client secret", true, false, "The OAuth 2.0 client secret."),
            field("token_url", "OAuth token URL", false, false, "The OAuth 2.0 token endpoint."),
            field("scope", "OAuth scope", false, false, "The scope to ask for, when one is needed."),
            field("odata_version", "OData version", false, false,
                "`v2` (default; /sap/opu/odata/sap/<SERVICE>) or `v4` (/sap/opu/odata4/sap/...)."),
            field("services", "Services", false, false,
                "JSON naming another service or entity set per object type, for ECC Gateway and \
                 custom services, e.g. {\"work-orders\": \"ZPM_ORDER_SRV\", \"assets\": \
                 {\"service\": \"/sap/opu/odata/sap/ZEQUI_SRV\", \"entity_set\": \"Equipments\"}}."),
            field("time_zone", "Plant time zone", false, false,
                "IANA zone of dates given as a separate date and time (basic start and end); \
                 default UTC."),
        ],
        objects: config::OBJECTS
            .iter()
            .map(|spec| ObjectSupport {
                object: spec.object,
                read: true,
                incremental: spec.change_field.is_some(),
                // `deletes` stays false although deletion flags arrive as tombstones: the
                // engine then also reconciles, which finds what was archived or deleted
                // outright (orders, and master data once its flag is archived).
                deletes: false,
                write: false,
            })
            .collect(),
        verification: "Tested against an OData service built with SAP's Cloud Application \
                       Programming Model (@sap/cds with the OData V2 adapter), shaped like the \
                       published S/4HANA APIs and loaded with a public SAP PM work order export \
                       (and measurement readings from the synthetic AI4I 2020 process data); \
                       not against a real S/4HANA or ECC system. V4 service paths follow SAP's \
                       published pattern and are unverified. Deletion flags become tombstones; \
                       records removed outright are found by reconciliation."
            .to_owned(),
    }
}
