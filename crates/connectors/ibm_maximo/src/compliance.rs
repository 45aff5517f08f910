//! Maximo as a subject of the compliance harness: an empty sandbox per check, changed through
//! its control API (`/_sandbox/`) and read back through its own OSLC API.

use std::sync::Arc;

use async_trait::async_trait;
use millrace_compliance::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
use millrace_connector::{Connector, RunningSandbox, SandboxOptions};
use millrace_model::ObjectType;
use serde_json::{json, Value};

use crate::sandbox::{SANDBOX_PASSWORD, SANDBOX_USER};

/// The site every harness record belongs to.
const SITE: &str = "HARNESS";

/// The Maximo subject.
pub struct MaximoSubject;

/// Returns the subject the harness tests and `millrace soak` use.
pub fn subject() -> MaximoSubject {
    MaximoSubject
}

#[async_trait]
impl Subject for MaximoSubject {
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
        .expect("the Maximo sandbox starts");
        let source = MaximoSource {
            http: reqwest::Client::new(),
            sandbox,
        };
        source
            .control(
                reqwest::Method::POST,
                "os/mxapisite",
                Some(json!({"siteid": SITE, "description": "Harness site"})),
            )
            .await;
        Arc::new(source)
    }
}

/// One running Maximo sandbox.
pub struct MaximoSource {
    http: reqwest::Client,
    sandbox: RunningSandbox,
}

impl Drop for MaximoSource {
    fn drop(&mut self) {
        self.sandbox.shutdown.cancel();
    }
}

/// The structure of an object the harness writes.
fn structure(object: ObjectType) -> &'static str {
    match object {
        ObjectType::WorkOrders => "mxapiwodetail",
        ObjectType::Assets => "mxapiasset",
        other => panic!("the harness writes no {other}"),
    }
}

/// A change time as the control API takes it: an RFC 3339 instant, a wall-clock time in the
/// server's zone (no offset), or null.
fn change_value(changed: ChangeTime) -> Option<Value> {
    match changed {
        ChangeTime::Now => None,
        ChangeTime::At(at) => Some(json!(
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )),
        ChangeTime::Local(local) => Some(json!(local.format("%Y-%m-%dT%H:%M:%S").to_string())),
        ChangeTime::Null => Some(Value::Null),
    }
}

impl MaximoSource {
    fn root(&self) -> String {
        self.sandbox.base_url.trim_end_matches("/maximo").to_owned()
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/_sandbox/{path}", self.root()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the sandbox answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "sandbox {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The path of one record in the control API: its key's parts, URL-encoded.
    fn record_path(object: ObjectType, remote_id: &str) -> String {
        let key: Vec<String> = remote_id
            .split('/')
            .map(|part| url::form_urlencoded::byte_serialize(part.as_bytes()).collect())
            .collect();
        format!("os/{}/{}", structure(object), key.join("/"))
    }
}

#[async_trait]
impl TestSource for MaximoSource {
    fn base_url(&self) -> String {
        self.sandbox.base_url.clone()
    }

    fn credentials(&self, base_url: &str) -> Value {
        let mut credentials = self.sandbox.credentials.clone();
        credentials["base_url"] = json!(base_url);
        credentials
    }

    fn session_credentials(&self, base_url: &str) -> Option<Value> {
        Some(json!({
            "base_url": base_url,
            "username": SANDBOX_USER,
            "password": SANDBOX_PASSWORD,
        }))
    }

    fn transactional(&self) -> ObjectType {
        ObjectType::WorkOrders
    }

    fn master(&self) -> ObjectType {
        ObjectType::Assets
    }

    fn request_hint(&self, object: ObjectType) -> String {
        format!("/os/{}", structure(object))
    }

    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String {
        let mut body = json!({"siteid": SITE, "description": marker});
        if let Some(value) = change_value(changed) {
            body["changedate"] = value;
        }
        let created = self
            .control(
                reqwest::Method::POST,
                &format!("os/{}", structure(object)),
                Some(body),
            )
            .await;
        created["_key"]
            .as_str()
            .expect("the sandbox names the created record's key")
            .to_owned()
    }

    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime) {
        let mut body = json!({"description": marker});
        if let Some(value) = change_value(changed) {
            body["changedate"] = value;
        }
        self.control(
            reqwest::Method::PATCH,
            &Self::record_path(object, remote_id),
            Some(body),
        )
        .await;
    }

    async fn delete(&self, object: ObjectType, remote_id: &str) {
        self.control(
            reqwest::Method::DELETE,
            &Self::record_path(object, remote_id),
            None,
        )
        .await;
    }

    async fn truth(&self, object: ObjectType) -> Vec<TruthRow> {
        let spec = crate::client::structure_for(object).expect("a structure");
        let mut url = reqwest::Url::parse_with_params(
            &format!("{}/oslc/os/{}", self.sandbox.base_url, spec.name),
            &[
                ("lean", "1"),
                ("oslc.select", "*"),
                ("oslc.pageSize", "1000"),
                ("stablePaging", "true"),
            ],
        )
        .expect("a URL");
        let api_key = self.sandbox.credentials["api_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut rows = Vec::new();
        loop {
            let body: Value = self
                .http
                .get(url.clone())
                .header("apikey", &api_key)
                .send()
                .await
                .expect("the sandbox answers")
                .json()
                .await
                .expect("the sandbox answers JSON");
            for member in body["member"].as_array().into_iter().flatten() {
                let Some(remote_id) = crate::mapping::key_of(member, spec.key_attrs) else {
                    continue;
                };
                if let Some(condition) = spec.condition {
                    // Top-level work orders only, as the connector reads them.
                    if condition == "istask=0" && member["istask"] == json!(true) {
                        continue;
                    }
                }
                rows.push(TruthRow {
                    remote_id,
                    marker: member["description"].as_str().map(str::to_owned),
                    changed_at: member[spec.change_attr]
                        .as_str()
                        .and_then(millrace_connector::time::parse_offset_time),
                });
            }
            match body["responseInfo"]["nextPage"]["href"].as_str() {
                Some(next) => url = reqwest::Url::parse(next).expect("a URL"),
                None => return rows,
            }
        }
    }

    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String> {
        let field = match object {
            ObjectType::WorkOrders => "title",
            _ => "name",
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
                    .map(|(object, key)| json!({"structure": structure(*object), "key": key}))
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
