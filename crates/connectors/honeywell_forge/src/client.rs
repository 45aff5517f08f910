//! The Forge gateway: an OAuth 2.0 client-credentials token, then JSON collections paged by a
//! continuation and filtered by change time, as the connection's [`Mapping`] describes them.

use chrono::{DateTime, SecondsFormat, Utc};
use millrace_connector::http::{RetryPolicy, SourceHttp};
use millrace_connector::{ConnectorError, Credentials, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use serde_json::Value;

use crate::config::Mapping;
use crate::mapping;

/// One connection's client to a Forge gateway.
pub struct ForgeSource {
    http: SourceHttp,
    base_url: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    mapping: Mapping,
    /// The bearer token; held across a token request so that concurrent requests that meet
    /// an expired token renew it once.
    token: tokio::sync::Mutex<Option<String>>,
    /// The OPC UA server beneath Forge that meters and readings come from, when named.
    process: Option<millrace_opcua::source::OpcUaSource>,
}

/// Reads the OPC UA connection settings from the `opcua_`-prefixed credential fields
/// (`opcua_endpoint` becomes the OPC UA connector's `endpoint`, and so on); `None` without an
/// `opcua_endpoint`.
pub fn process_values_config(
    credentials: &Credentials,
) -> Result<Option<millrace_opcua::Config>, ConnectorError> {
    if credentials.get("opcua_endpoint").is_none() {
        return Ok(None);
    }
    let fields = credentials
        .fields()
        .iter()
        .filter_map(|(name, value)| {
            name.strip_prefix("opcua_")
                .map(|name| (name.to_owned(), value.clone()))
        })
        .collect();
    millrace_opcua::Config::from_credentials(&Credentials::new(fields))
        .map(Some)
        .map_err(|err| match err {
            ConnectorError::InvalidCredentials(detail) => {
                ConnectorError::InvalidCredentials(format!("OPC UA endpoint: {detail}"))
            }
            other => other,
        })
}

struct Answer {
    body: Value,
    date: Option<DateTime<Utc>>,
}

impl ForgeSource {
    /// Builds a client from a connection's credentials, without contacting the gateway.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        let base_url = credentials
            .require("base_url")?
            .trim_end_matches('/')
            .to_owned();
        for (name, value) in [
            ("base_url", Some(base_url.as_str())),
            ("token_url", credentials.get("token_url")),
        ] {
            if let Some(value) = value {
                let parsed = url::Url::parse(value).map_err(|err| {
                    ConnectorError::InvalidCredentials(format!("`{name}` is not a URL: {err}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConnectorError::InvalidCredentials(format!(
                        "`{name}` must be an http or https URL"
                    )));
                }
            }
        }
        if let Some(endpoint) = credentials.get("opcua_endpoint") {
            if !endpoint.starts_with("opc.tcp://") {
                return Err(ConnectorError::InvalidCredentials(
                    "`opcua_endpoint` must be an opc.tcp:// URL".to_owned(),
                ));
            }
        }
        let token_url = credentials
            .get("token_url")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{base_url}/oauth2/token"));
        Ok(ForgeSource {
            process: None,
            http: SourceHttp::new(RetryPolicy::configured(), read_error)?,
            token_url,
            client_id: credentials.require("client_id")?.to_owned(),
            client_secret: credentials.require("client_secret")?.to_owned(),
            scope: credentials.get("scope").map(str::to_owned),
            mapping: Mapping::from_credential(credentials.fields().get("mapping"))?,
            base_url,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Reads meters and meter readings from `process` (the OPC UA server beneath Forge).
    pub fn with_process_values(mut self, process: millrace_opcua::source::OpcUaSource) -> Self {
        self.process = Some(process);
        self
    }

    async fn request_token(&self) -> Result<String, ConnectorError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .send(|client| client.post(&self.token_url).form(&form))
            .await
            .map_err(|err| match err {
                // RFC 6749: a refused client or grant is a 400 or 401 with these codes.
                ConnectorError::Status {
                    status: 400,
                    detail,
                } if detail.starts_with("invalid_client")
                    || detail.starts_with("unauthorized_client")
                    || detail.starts_with("invalid_grant") =>
                {
                    ConnectorError::CredentialsRejected(detail)
                }
                other => other,
            })?;
        let body = read_json(response).await?.body;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Malformed("the token answer has no access_token".into()))
    }

    async fn access_token(&self) -> Result<String, ConnectorError> {
        let mut token = self.token.lock().await;
        if let Some(current) = token.as_ref() {
            return Ok(current.clone());
        }
        let fresh = self.request_token().await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    async fn renew_token(&self, ended: &str) -> Result<String, ConnectorError> {
        let mut token = self.token.lock().await;
        if let Some(current) = token.as_ref().filter(|current| *current != ended) {
            return Ok(current.clone());
        }
        *token = None;
        let fresh = self.request_token().await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    /// GETs `path` with `query`; an expired token (`invalid_token`) is renewed once.
    async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Answer, ConnectorError> {
        let url = format!("{}{path}", self.base_url);
        let mut token = self.access_token().await?;
        let mut renewed = false;
        loop {
            let sent = self
                .http
                .send(|client| client.get(&url).query(query).bearer_auth(&token))
                .await;
            match sent {
                Ok(response) => return read_json(response).await,
                Err(ConnectorError::CredentialsRejected(detail))
                    if detail.starts_with("invalid_token") && !renewed =>
                {
                    token = self.renew_token(&token).await?;
                    renewed = true;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[async_trait::async_trait]
impl Source for ForgeSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.access_token().await?;
        match &self.process {
            Some(process) => process.check().await,
            None => Ok(()),
        }
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        if crate::PROCESS_OBJECTS.contains(&request.object) {
            return match &self.process {
                Some(process) => process.read_page(request).await,
                None => Ok(Page::default()),
            };
        }
        if !crate::OBJECTS.contains(&request.object) {
            return Err(ConnectorError::Unsupported(request.object.to_string()));
        }
        let collection = self.mapping.collection(request.object);
        let paging = &self.mapping.paging;
        let mut query = vec![(
            paging.page_size_param.clone(),
            request.page_size.to_string(),
        )];
        if let Some(since) = request.since {
            query.push((
                paging.changed_since_param.clone(),
                since.to_rfc3339_opts(SecondsFormat::Millis, true),
            ));
        }
        if let Some(page) = &request.page {
            query.push((paging.continuation_param.clone(), page.clone()));
        }
        let answer = self.get(&collection.path, &query).await?;
        let items = answer.body[paging.items.as_str()]
            .as_array()
            .ok_or_else(|| {
                ConnectorError::Malformed(format!("the answer has no `{}` array", paging.items))
            })?;
        let mut page = Page {
            // The gateway promises no change order; the watermark stays at or before the
            // listing's start, by the gateway's own clock.
            ordered_by_change: false,
            listing_started_at: answer.date,
            next_page: answer.body[paging.continuation.as_str()]
                .as_str()
                .filter(|next| !next.is_empty())
                .map(str::to_owned),
            ..Page::default()
        };
        for item in items {
            match mapping::record(
                request.object,
                collection,
                &request.connection_id,
                item.clone(),
            ) {
                Ok(record) => page.records.push(record),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        Ok(page)
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        if crate::PROCESS_OBJECTS.contains(&object) {
            return match &self.process {
                Some(process) => process.list_ids(object, page).await,
                None => Ok(IdPage::default()),
            };
        }
        let collection = self.mapping.collection(object);
        let paging = &self.mapping.paging;
        let mut query = vec![(paging.page_size_param.clone(), "1000".to_owned())];
        if let Some(page) = page {
            query.push((paging.continuation_param.clone(), page.to_owned()));
        }
        let answer = self.get(&collection.path, &query).await?;
        let items = answer.body[paging.items.as_str()]
            .as_array()
            .ok_or_else(|| {
                ConnectorError::Malformed(format!("the answer has no `{}` array", paging.items))
            })?;
        Ok(IdPage {
            remote_ids: items
                .iter()
                .filter_map(|item| mapping::id_of(item, &collection.id))
                .collect(),
            next_page: answer.body[paging.continuation.as_str()]
                .as_str()
                .filter(|next| !next.is_empty())
                .map(str::to_owned),
        })
    }
}

async fn read_json(response: reqwest::Response) -> Result<Answer, ConnectorError> {
    let date = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| DateTime::parse_from_rfc2822(value).ok())
        .map(|date| date.with_timezone(&Utc));
    let bytes = response
        .bytes()
        .await
        .map_err(|err| ConnectorError::Unreachable(format!("the answer was cut off: {err}")))?;
    let body = serde_json::from_slice(&bytes).map_err(|err| {
        let text = String::from_utf8_lossy(&bytes);
        ConnectorError::Malformed(format!(
            "the body is not valid JSON ({err}): {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    Ok(Answer { body, date })
}

/// Reads OAuth (`{"error", "error_description"}`) and gateway (`{"message"}`) error bodies.
fn read_error(body: &Value) -> Option<String> {
    if let Some(code) = body["error"].as_str() {
        let description = body["error_description"].as_str().unwrap_or_default();
        return Some(format!("{code}: {description}"));
    }
    body["message"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_opcua_endpoint_is_optional_but_must_be_opc_tcp() {
        let credentials = |extra: Value| {
            let mut fields = json!({"base_url": "https://gw.example", "client_id": "a",
                                    "client_secret": "b"});
            fields
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Credentials::new(fields.as_object().unwrap().clone())
        };
        assert!(ForgeSource::open(&credentials(json!({}))).is_ok());
        assert!(ForgeSource::open(&credentials(
            json!({"opcua_endpoint": "opc.tcp://experion:4840"})
        ))
        .is_ok());
        let err = ForgeSource::open(&credentials(json!({"opcua_endpoint": "http://x"})))
            .err()
            .unwrap();
        assert!(err.to_string().contains("opc.tcp"), "{err}");
    }

    #[test]
    fn error_bodies_read_as_code_and_message() {
        let oauth = json!({"error": "invalid_token", "error_description": "expired"});
        assert_eq!(read_error(&oauth).unwrap(), "invalid_token: expired");
        assert_eq!(
            read_error(&json!({"message": "no such site"})).unwrap(),
            "no such site"
        );
    }
}
