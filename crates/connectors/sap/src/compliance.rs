//! SAP as a subject of the compliance harness: a fresh CAP test service per check, written to
//! through its own OData V2 API (with the CSRF handshake) by this connector's client. The
//! harness writes equipment and maintenance orders.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use millrace_compliance::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
use millrace_connector::{Connector, Credentials};
use millrace_model::ObjectType;
use reqwest::Method;
use serde_json::{json, Value};

use crate::cap::{CapOptions, CapService};
use crate::client::SapSource;
use crate::odata::Version;

/// The SAP subject.
pub struct SapSubject;

/// Returns the subject the harness tests use.
pub fn subject() -> SapSubject {
    SapSubject
}

#[async_trait]
impl Subject for SapSubject {
    fn connector(&self) -> Arc<dyn Connector> {
        crate::connector()
    }

    async fn start(&self, zone: Option<&str>) -> Arc<dyn TestSource> {
        let service = CapService::start(CapOptions::default()).await;
        let credentials = service.credentials();
        let writer = SapSource::open(&Credentials::new(
            credentials.as_object().expect("an object").clone(),
        ))
        .expect("the test service's credentials are valid");
        Arc::new(SapTestSource {
            zone: zone
                .map(|zone| zone.parse().expect("a known zone"))
                .unwrap_or(Tz::UTC),
            writer,
            service,
        })
    }
}

/// One running CAP test service.
pub struct SapTestSource {
    service: CapService,
    writer: SapSource,
    zone: Tz,
}

/// The marker's property, per object the harness writes.
fn marker_field(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Assets => "EquipmentName",
        ObjectType::WorkOrders => "MaintenanceOrderDesc",
        other => panic!("the harness writes no {other}"),
    }
}

fn deletion_flag(object: ObjectType) -> Option<&'static str> {
    match object {
        ObjectType::Assets => Some("EquipmentIsMarkedForDeletion"),
        _ => None,
    }
}

/// The V2 key predicate of a record.
fn key_predicate(object: ObjectType, remote_id: &str) -> String {
    match object {
        ObjectType::Assets => {
            format!("(Equipment='{remote_id}',ValidityEndDate=datetime'9999-12-31T00:00:00')")
        }
        _ => format!("('{remote_id}')"),
    }
}

/// An instant as V2 JSON writes it, `/Date(ms+0000)/`.
fn json_date(time: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", time.timestamp_millis())
}

impl SapTestSource {
    fn body(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> Value {
        let mut body = json!({});
        body[marker_field(object)] = json!(marker);
        match changed {
            ChangeTime::Now => {}
            ChangeTime::At(at) => body["LastChangeDateTime"] = json!(json_date(at)),
            // S/4HANA keeps change time stamps in UTC: a local wall-clock time is converted
            // as the application server converts its users' input.
            ChangeTime::Local(local) => {
                let at = self
                    .zone
                    .from_local_datetime(&local)
                    .earliest()
                    .or_else(|| {
                        self.zone
                            .from_local_datetime(&(local + chrono::Duration::hours(1)))
                            .earliest()
                    })
                    .expect("a local time near a real one")
                    .with_timezone(&Utc);
                body["LastChangeDateTime"] = json!(json_date(at));
            }
            ChangeTime::Null => body["LastChangeDateTime"] = Value::Null,
        }
        body
    }

    async fn write(
        &self,
        method: Method,
        object: ObjectType,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let predicate = key.map(|key| key_predicate(object, key));
        self.writer
            .write(method, object, predicate.as_deref(), body.as_ref())
            .await
            .unwrap_or_else(|err| panic!("writing {object} {key:?}: {err}"))
    }
}

#[async_trait]
impl TestSource for SapTestSource {
    fn base_url(&self) -> String {
        self.service.base_url.clone()
    }

    fn credentials(&self, base_url: &str) -> Value {
        self.service.credentials_at(base_url)
    }

    fn session_credentials(&self, base_url: &str) -> Option<Value> {
        Some(self.service.oauth_credentials_at(base_url))
    }

    fn transactional(&self) -> ObjectType {
        ObjectType::WorkOrders
    }

    fn master(&self) -> ObjectType {
        ObjectType::Assets
    }

    fn request_hint(&self, object: ObjectType) -> String {
        let spec = crate::config::spec(object).expect("a read object");
        format!("{}/{}", spec.service, spec.entity_set)
    }

    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String {
        let mut body = self.body(object, marker, changed);
        if object == ObjectType::WorkOrders {
            body["MaintenanceOrderType"] = json!("PM01");
        }
        body["MaintenancePlanningPlant"] = json!(self.service.options.plant);
        let created = self.write(Method::POST, object, None, Some(body)).await;
        let key = crate::config::spec(object).expect("a read object").keys[0];
        created["d"][key]
            .as_str()
            .expect("the created key")
            .to_owned()
    }

    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime) {
        let body = self.body(object, marker, changed);
        self.write(Method::PATCH, object, Some(remote_id), Some(body))
            .await;
    }

    async fn delete(&self, object: ObjectType, remote_id: &str) {
        self.write(Method::DELETE, object, Some(remote_id), None)
            .await;
    }

    async fn truth(&self, object: ObjectType) -> Vec<TruthRow> {
        let rows = self
            .writer
            .read_all(object)
            .await
            .unwrap_or_else(|err| panic!("reading {object}: {err}"));
        let spec = crate::config::spec(object).expect("a read object");
        rows.iter()
            .filter(|row| {
                deletion_flag(object).is_none_or(|flag| row[flag].as_bool() != Some(true))
            })
            .map(|row| TruthRow {
                remote_id: crate::mapping::remote_id(spec, row).unwrap_or_default(),
                marker: row[marker_field(object)].as_str().map(str::to_owned),
                changed_at: Version::V2
                    .parse_instant(&row["LastChangeDateTime"])
                    .ok()
                    .flatten(),
            })
            .collect()
    }

    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String> {
        let field = match object {
            ObjectType::Assets => "name",
            _ => "title",
        };
        record[field].as_str().map(str::to_owned)
    }

    async fn fault(&self, fault: SourceFault) -> bool {
        let body = match fault {
            SourceFault::RevokeCredentials(on) => json!({"reject_auth": on}),
            SourceFault::ExpireSessions => json!({"expire_sessions": true}),
            SourceFault::ClockOffset(seconds) => json!({"clock_offset_seconds": seconds}),
            SourceFault::Corrupt(records) => json!({
                "corrupt": records.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()
            }),
        };
        self.service.control("faults", body).await;
        true
    }

    async fn logins(&self) -> Option<u64> {
        Some(self.service.logins().await)
    }
}
