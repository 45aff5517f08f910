//! TrackWise Digital as a subject of the compliance harness: an empty sandbox per check,
//! changed through its control API (`/_sandbox/`). The harness writes sites and deviations
//! (the first quality object of the default mapping).

use std::sync::Arc;

use async_trait::async_trait;
use millrace_compliance::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
use millrace_connector::{Connector, RunningSandbox, SandboxOptions};
use millrace_model::ObjectType;
use serde_json::{json, Value};

use crate::config::Mapping;
use crate::sandbox::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

/// The TrackWise Digital subject.
pub struct TrackwiseSubject;

/// Returns the subject the harness tests use.
pub fn subject() -> TrackwiseSubject {
    TrackwiseSubject
}

#[async_trait]
impl Subject for TrackwiseSubject {
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
        .expect("the TrackWise sandbox starts");
        Arc::new(TrackwiseTestSource {
            http: reqwest::Client::new(),
            sandbox,
            mapping: Mapping::default(),
        })
    }
}

/// One running TrackWise sandbox.
pub struct TrackwiseTestSource {
    http: reqwest::Client,
    sandbox: RunningSandbox,
    mapping: Mapping,
}

impl Drop for TrackwiseTestSource {
    fn drop(&mut self) {
        self.sandbox.shutdown.cancel();
    }
}

impl TrackwiseTestSource {
    /// The Salesforce object the harness writes for `object`.
    fn sobject(&self, object: ObjectType) -> &str {
        match object {
            ObjectType::Sites => &self.mapping.site.object,
            ObjectType::QualityEvents => &self.mapping.quality_events[0].object,
            other => panic!("the harness writes no {other}"),
        }
    }

    /// The field the harness's marker goes into.
    fn marker_field(&self, object: ObjectType) -> String {
        match object {
            ObjectType::Sites => self.mapping.site.name.clone(),
            _ => self.mapping.quality_events[0]
                .fields
                .title
                .clone()
                .expect("the default mapping has a title field"),
        }
    }

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

    fn body(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> Value {
        let mut body = json!({});
        body[self.marker_field(object)] = json!(marker);
        match changed {
            ChangeTime::Now => {}
            ChangeTime::At(at) => {
                body["SystemModstamp"] =
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
            ChangeTime::Local(local) => {
                body["SystemModstamp"] = json!(local.format("%Y-%m-%dT%H:%M:%S").to_string())
            }
            ChangeTime::Null => body["SystemModstamp"] = Value::Null,
        }
        body
    }
}

#[async_trait]
impl TestSource for TrackwiseTestSource {
    fn base_url(&self) -> String {
        self.sandbox.base_url.clone()
    }

    fn credentials(&self, base_url: &str) -> Value {
        json!({
            "instance_url": base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        })
    }

    fn session_credentials(&self, base_url: &str) -> Option<Value> {
        Some(json!({
            "instance_url": base_url,
            "client_id": CLIENT_ID,
            "refresh_token": REFRESH_TOKEN,
        }))
    }

    fn transactional(&self) -> ObjectType {
        ObjectType::QualityEvents
    }

    fn master(&self) -> ObjectType {
        ObjectType::Sites
    }

    fn request_hint(&self, object: ObjectType) -> String {
        self.sobject(object).to_owned()
    }

    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String {
        let body = self.body(object, marker, changed);
        let created = self
            .control(
                reqwest::Method::POST,
                &format!("records/{}", self.sobject(object)),
                Some(body),
            )
            .await;
        created["id"]
            .as_str()
            .expect("the sandbox names the created record's id")
            .to_owned()
    }

    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime) {
        let body = self.body(object, marker, changed);
        self.control(
            reqwest::Method::PATCH,
            &format!("records/{}/{remote_id}", self.sobject(object)),
            Some(body),
        )
        .await;
    }

    async fn delete(&self, object: ObjectType, remote_id: &str) {
        self.control(
            reqwest::Method::DELETE,
            &format!("records/{}/{remote_id}", self.sobject(object)),
            None,
        )
        .await;
    }

    async fn truth(&self, object: ObjectType) -> Vec<TruthRow> {
        let field = self.marker_field(object);
        let rows = self
            .control(
                reqwest::Method::GET,
                &format!("records/{}", self.sobject(object)),
                None,
            )
            .await;
        rows.as_array()
            .into_iter()
            .flatten()
            .map(|row| TruthRow {
                remote_id: row["Id"].as_str().unwrap_or_default().to_owned(),
                marker: row[field.as_str()].as_str().map(str::to_owned),
                changed_at: row["SystemModstamp"]
                    .as_str()
                    .and_then(crate::client::parse_salesforce_time),
            })
            .collect()
    }

    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String> {
        let field = match object {
            ObjectType::Sites => "name",
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
                "corrupt": records
                    .iter()
                    .map(|(object, id)| json!({"object": self.sobject(*object), "id": id}))
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
