//! Honeywell Forge as a subject of the compliance harness: an empty gateway sandbox per
//! check, changed through its control API (`/_sandbox/`). The harness writes assets and
//! production figures.

use std::sync::Arc;

use async_trait::async_trait;
use millrace_compliance::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
use millrace_connector::{Connector, RunningSandbox, SandboxOptions};
use millrace_model::ObjectType;
use serde_json::{json, Value};

use crate::sandbox::{CLIENT_ID, CLIENT_SECRET};

/// The Forge subject.
pub struct ForgeSubject;

/// Returns the subject the harness tests use.
pub fn subject() -> ForgeSubject {
    ForgeSubject
}

#[async_trait]
impl Subject for ForgeSubject {
    fn connector(&self) -> Arc<dyn Connector> {
        crate::connector()
    }

    async fn start(&self, zone: Option<&str>) -> Arc<dyn TestSource> {
        let sandbox = crate::sandbox::start(SandboxOptions {
            empty: true,
            time_zone: zone.map(str::to_owned),
            ..SandboxOptions::default()
        })
        .await
        .expect("the Forge sandbox starts");
        Arc::new(ForgeTestSource {
            http: reqwest::Client::new(),
            sandbox,
        })
    }
}

/// One running gateway sandbox.
pub struct ForgeTestSource {
    http: reqwest::Client,
    sandbox: RunningSandbox,
}

impl Drop for ForgeTestSource {
    fn drop(&mut self) {
        self.sandbox.shutdown.cancel();
    }
}

/// The collection and the source field of the marker, per object the harness writes.
fn target(object: ObjectType) -> (&'static str, &'static str) {
    match object {
        ObjectType::Assets => ("assets", "name"),
        ObjectType::ProductionOrders => ("production", "product"),
        other => panic!("the harness writes no {other}"),
    }
}

impl ForgeTestSource {
    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/_sandbox/{path}", self.sandbox.base_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the sandbox answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "sandbox {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn body(object: ObjectType, marker: &str, changed: ChangeTime) -> Value {
        let mut body = json!({});
        body[target(object).1] = json!(marker);
        match changed {
            ChangeTime::Now => {}
            ChangeTime::At(at) => {
                body["updatedAt"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
            ChangeTime::Local(local) => {
                body["updatedAt"] = json!(local.format("%Y-%m-%dT%H:%M:%S").to_string())
            }
            ChangeTime::Null => body["updatedAt"] = Value::Null,
        }
        body
    }
}

#[async_trait]
impl TestSource for ForgeTestSource {
    fn base_url(&self) -> String {
        self.sandbox.base_url.clone()
    }

    fn credentials(&self, base_url: &str) -> Value {
        json!({"base_url": base_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    }

    fn session_credentials(&self, base_url: &str) -> Option<Value> {
        Some(self.credentials(base_url))
    }

    fn transactional(&self) -> ObjectType {
        ObjectType::ProductionOrders
    }

    fn master(&self) -> ObjectType {
        ObjectType::Assets
    }

    fn request_hint(&self, object: ObjectType) -> String {
        format!("/sine/v1/{}", target(object).0)
    }

    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String {
        let created = self
            .control(
                reqwest::Method::POST,
                &format!("records/{}", target(object).0),
                Some(Self::body(object, marker, changed)),
            )
            .await;
        created["id"].as_str().expect("an id").to_owned()
    }

    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime) {
        self.control(
            reqwest::Method::PATCH,
            &format!("records/{}/{remote_id}", target(object).0),
            Some(Self::body(object, marker, changed)),
        )
        .await;
    }

    async fn delete(&self, object: ObjectType, remote_id: &str) {
        self.control(
            reqwest::Method::DELETE,
            &format!("records/{}/{remote_id}", target(object).0),
            None,
        )
        .await;
    }

    async fn truth(&self, object: ObjectType) -> Vec<TruthRow> {
        let (collection, field) = target(object);
        let rows = self
            .control(reqwest::Method::GET, &format!("records/{collection}"), None)
            .await;
        rows.as_array()
            .into_iter()
            .flatten()
            .map(|row| TruthRow {
                remote_id: row["id"].as_str().unwrap_or_default().to_owned(),
                marker: row[field].as_str().map(str::to_owned),
                changed_at: row["updatedAt"]
                    .as_str()
                    .and_then(millrace_connector::time::parse_offset_time),
            })
            .collect()
    }

    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String> {
        let field = match object {
            ObjectType::Assets => "name",
            _ => "product",
        };
        record[field].as_str().map(str::to_owned)
    }

    async fn fault(&self, fault: SourceFault) -> bool {
        let body = match fault {
            SourceFault::RevokeCredentials(on) => json!({"reject_auth": on}),
            SourceFault::ExpireSessions => json!({"expire_sessions": true}),
            SourceFault::ClockOffset(seconds) => json!({"clock_offset_seconds": seconds}),
            SourceFault::Corrupt(records) => json!({
                "corrupt": records
                    .iter()
                    .map(|(object, id)| json!([target(*object).0, id]))
                    .collect::<Vec<_>>()
            }),
        };
        self.control(reqwest::Method::POST, "faults", Some(body))
            .await;
        true
    }

    async fn logins(&self) -> Option<u64> {
        self.control(reqwest::Method::GET, "stats", None).await["logins"].as_u64()
    }
}
