//! The OData client of one SAP connection: logon (Basic or OAuth 2.0 client credentials),
//! `sap-client`, listings in change order, server and client paging, and the CSRF handshake
//! writes need.
//!
//! A listing of an object with a change time reads `$orderby=LastChangeDateTime,<key>` with a
//! keyset continuation, `(time, key)` after the last row delivered: a row changed while the
//! listing runs moves behind the keyset and is read again, and none is skipped the way an
//! offset (`$skip`, or a `$skiptoken` that encodes one) skips a row when an earlier one moves.
//! Rows without a change time follow, by key. Objects without a change time and id
//! listings follow the server's next link (`__next`, `@odata.nextLink`) and fall back to
//! `$top`/`$skip` for services that page only when asked.

use chrono::{DateTime, NaiveDate, Utc};
use millrace_connector::http::{RetryPolicy, SourceHttp};
use millrace_connector::{ConnectorError, Credentials, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use reqwest::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::config::{spec, Auth, ObjectSpec, Settings, OBJECTS};
use crate::mapping;
use crate::odata::{read_error, string_literal, Version};

/// Rows asked for per request when listing ids or reading a set whole.
const WALK_PAGE: u32 = 1000;

/// One connection's client to an SAP system.
pub struct SapSource {
    http: SourceHttp,
    settings: Settings,
    /// The OAuth bearer token; held across a token request so that concurrent requests that
    /// meet an expired token renew it once.
    token: tokio::sync::Mutex<Option<String>>,
    /// The CSRF token and the session cookies it is bound to, per service root.
    csrf: tokio::sync::Mutex<std::collections::HashMap<String, CsrfSession>>,
}

#[derive(Clone)]
struct CsrfSession {
    token: String,
    cookies: String,
}

/// An answer's JSON body and the server's clock.
struct Answer {
    body: Value,
    date: Option<DateTime<Utc>>,
}

impl SapSource {
    /// Builds a client from a connection's credentials, without contacting the system.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        Ok(SapSource {
            http: SourceHttp::new(RetryPolicy::configured(), read_error)?,
            settings: Settings::from_credentials(credentials)?,
            token: tokio::sync::Mutex::new(None),
            csrf: tokio::sync::Mutex::new(Default::default()),
        })
    }

    /// Returns the connection's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn request_token(&self) -> Result<String, ConnectorError> {
        let Auth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } = &self.settings.auth
        else {
            unreachable!("a token is only requested for OAuth connections")
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .send(|client| {
                client
                    .post(token_url)
                    .basic_auth(client_id, Some(client_secret))
                    .form(&form)
            })
            .await
            .map_err(|err| match err {
                // RFC 6749: a refused client or grant is a 400 with these codes.
                ConnectorError::Status {
                    status: 400,
                    detail,
                } if detail.contains("invalid_client")
                    || detail.contains("invalid_grant")
                    || detail.contains("unauthorized_client") =>
                {
                    ConnectorError::CredentialsRejected(detail)
                }
                other => other,
            })?;
        let body: Value = response
            .json()
            .await
            .map_err(|err| ConnectorError::Malformed(format!("the token answer: {err}")))?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Malformed("the token answer has no access_token".into()))
    }

    async fn bearer(&self, ended: Option<&str>) -> Result<String, ConnectorError> {
        let mut token = self.token.lock().await;
        if let Some(current) = token
            .as_ref()
            .filter(|current| Some(current.as_str()) != ended)
        {
            return Ok(current.clone());
        }
        let fresh = self.request_token().await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    /// Adds the connection's logon and `sap-client` to a request.
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        bearer: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = match (&self.settings.auth, bearer) {
            (Auth::Basic { user, password }, _) => request.basic_auth(user, Some(password)),
            (Auth::ClientCredentials { .. }, Some(token)) => request.bearer_auth(token),
            (Auth::ClientCredentials { .. }, None) => request,
        };
        match &self.settings.sap_client {
            Some(client) => request.query(&[("sap-client", client)]),
            None => request,
        }
    }

    /// GETs `url` with `query` as JSON; an OAuth token the system no longer accepts is renewed
    /// once.
    async fn get(&self, url: &str, query: &[(String, String)]) -> Result<Answer, ConnectorError> {
        let oauth = matches!(self.settings.auth, Auth::ClientCredentials { .. });
        let mut bearer = if oauth {
            Some(self.bearer(None).await?)
        } else {
            None
        };
        let mut renewed = false;
        let url = with_query(url, query);
        loop {
            let sent = self
                .http
                .get_json_dated(|client| {
                    self.authorize(client.get(&url), bearer.as_deref())
                        .header("accept", "application/json")
                        .query(&[("$format", "json")])
                })
                .await;
            match sent {
                Ok((body, date)) => return Ok(Answer { body, date }),
                Err(ConnectorError::CredentialsRejected(_)) if oauth && !renewed => {
                    tracing::debug!("the system refused the access token; renewing it once");
                    bearer = Some(self.bearer(bearer.as_deref()).await?);
                    renewed = true;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn entity_set_url(&self, spec: &ObjectSpec) -> Result<String, ConnectorError> {
        self.settings
            .entity_set_url(spec.object)
            .ok_or_else(|| ConnectorError::Unsupported(spec.object.to_string()))
    }

    /// `$select` (with the expanded navigation property, which V2 requires there too) and
    /// `$expand`.
    fn projection(&self, spec: &ObjectSpec) -> Vec<(String, String)> {
        let mut query = Vec::new();
        if self.settings.select {
            let mut fields: Vec<&str> = spec.select.to_vec();
            if let (Some(expand), Version::V2) = (spec.expand, self.settings.version) {
                fields.push(expand);
            }
            query.push(("$select".to_owned(), fields.join(",")));
        }
        if let Some(expand) = spec.expand {
            query.push(("$expand".to_owned(), expand.to_owned()));
        }
        query
    }

    fn current_row_filter(&self, spec: &ObjectSpec) -> Option<String> {
        let (field, (year, month, day)) = spec.current_row?;
        let date = NaiveDate::from_ymd_opt(year, month, day).expect("a valid date");
        Some(format!(
            "{field} eq {}",
            self.settings.version.date_literal(date)
        ))
    }

    /// Reads one page of an object with a change time, in `(change time, key)` order.
    async fn read_keyset(
        &self,
        spec: &ObjectSpec,
        change_field: &str,
        request: &PageRequest,
    ) -> Result<Page, ConnectorError> {
        let version = self.settings.version;
        let key = spec.keys[0];
        let position = match request.page.as_deref() {
            None => Position::Dated { after: None },
            Some(text) => Position::decode(text)?,
        };
        let mut filters: Vec<String> = self.current_row_filter(spec).into_iter().collect();
        let order_by = match &position {
            Position::Undated { after } => {
                filters.push(format!("{change_field} eq null"));
                if let Some(after) = after {
                    filters.push(format!("{key} gt {}", string_literal(after)));
                }
                key.to_owned()
            }
            Position::Dated { after: None } => {
                if let Some(since) = request.since {
                    filters.push(format!(
                        "{change_field} ge {}",
                        version.datetimeoffset_literal(since)
                    ));
                } else {
                    filters.push(format!("{change_field} ne null"));
                }
                format!("{change_field},{key}")
            }
            Position::Dated {
                after: Some((time, after_key)),
            } => {
                let time = version.datetimeoffset_literal(*time);
                filters.push(format!(
                    "({change_field} gt {time} or ({change_field} eq {time} and {key} gt {}))",
                    string_literal(after_key)
                ));
                format!("{change_field},{key}")
            }
        };
        let top = request.page_size.max(1);
        let mut query = vec![
            ("$filter".to_owned(), filters.join(" and ")),
            ("$orderby".to_owned(), order_by),
            ("$top".to_owned(), top.to_string()),
        ];
        query.extend(self.projection(spec));
        let answer = self.get(&self.entity_set_url(spec)?, &query).await?;
        let rows = version.rows(&answer.body).ok_or_else(|| {
            ConnectorError::Malformed(format!(
                "the answer for {} has no rows array",
                spec.entity_set
            ))
        })?;

        // The server may page below `$top` (its own limit): a next link, or a full page, means
        // there may be more after the last row.
        let more = version.next_link(&answer.body).is_some() || rows.len() as u32 >= top;
        let mut page = Page {
            ordered_by_change: true,
            ..Page::default()
        };
        let mut last: Option<(Option<DateTime<Utc>>, String)> = None;
        for row in rows {
            let row_key = row[key].as_str().map(str::to_owned);
            let changed = version.parse_instant(&row[change_field]).ok().flatten();
            if let Some(row_key) = row_key {
                last = Some((
                    changed.or(last.as_ref().and_then(|(time, _)| *time)),
                    row_key,
                ));
            }
            match mapping::record(spec, &self.settings, &request.connection_id, row) {
                Ok(record) => page.records.push(record),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        page.next_page = match (&position, more, last) {
            (Position::Undated { .. }, true, Some((_, key))) => {
                Some(Position::Undated { after: Some(key) }.encode())
            }
            (Position::Undated { .. }, _, _) => None,
            (Position::Dated { after }, true, Some((Some(time), key))) => {
                let next = Some((time, key));
                if *after == next {
                    // The service keeps change times finer than it shows (V2 JSON shows
                    // milliseconds), and a whole page shares the shown instant: the keyset
                    // cannot move past it, and reading on would return this page forever.
                    return Err(ConnectorError::Malformed(format!(
                        "{} rows share the change time {} beyond the page size of {top}, with \
                         more precision than the service shows; use a larger page size or OData V4",
                        spec.entity_set,
                        time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    )));
                }
                Some(Position::Dated { after: next }.encode())
            }
            (Position::Dated { after }, true, Some((None, key))) => {
                // No row of this page had a readable change time: go on from the previous
                // position's time, past this page's last key.
                let time = after.as_ref().map(|(time, _)| *time).or(request.since);
                match time {
                    Some(time) => Some(
                        Position::Dated {
                            after: Some((time, key)),
                        }
                        .encode(),
                    ),
                    None => {
                        return Err(ConnectorError::Malformed(format!(
                            "no row of this {} page has a readable {change_field}",
                            spec.entity_set
                        )))
                    }
                }
            }
            // The dated rows are done: the rows without a change time follow.
            (Position::Dated { .. }, _, _) => Some(Position::Undated { after: None }.encode()),
        };
        Ok(page)
    }

    /// Reads one page of a set by the server's paging (next links), or `$top`/`$skip` when the
    /// server pages only when asked.
    async fn walk(
        &self,
        spec: &ObjectSpec,
        page: Option<&str>,
        projection: Vec<(String, String)>,
    ) -> Result<(Vec<Value>, Option<String>, Option<DateTime<Utc>>), ConnectorError> {
        let url = self.entity_set_url(spec)?;
        let query: Vec<(String, String)> = match page.map(WalkPosition::decode).transpose()? {
            None => {
                let mut query = projection;
                query.extend(
                    self.current_row_filter(spec)
                        .map(|f| ("$filter".to_owned(), f)),
                );
                query.push(("$orderby".to_owned(), spec.keys.join(",")));
                query.push(("$top".to_owned(), WALK_PAGE.to_string()));
                query
            }
            Some(WalkPosition::Next(query)) => query,
            Some(WalkPosition::Skip { query, skip }) => {
                let mut query = query;
                query.push(("$skip".to_owned(), skip.to_string()));
                query
            }
        };
        let answer = self.get(&url, &query).await?;
        let version = self.settings.version;
        let rows = version.rows(&answer.body).cloned().ok_or_else(|| {
            ConnectorError::Malformed(format!(
                "the answer for {} has no rows array",
                spec.entity_set
            ))
        })?;
        let next = walk_next(&url, query, rows.len(), version.next_link(&answer.body))?;
        Ok((rows, next, answer.date))
    }

    /// Checks that `spec`'s service and entity set answer, with one row at most.
    async fn probe(&self, spec: &ObjectSpec) -> Result<(), ConnectorError> {
        let url = self.entity_set_url(spec)?;
        let query = vec![
            ("$top".to_owned(), "1".to_owned()),
            ("$select".to_owned(), spec.keys.join(",")),
        ];
        let answer = self
            .get(&url, &query)
            .await
            .map_err(|err| self.explain(spec, err))?;
        if self.settings.version.rows(&answer.body).is_none() {
            return Err(ConnectorError::Malformed(format!(
                "{url} did not answer as an OData {} entity set",
                match self.settings.version {
                    Version::V2 => "V2",
                    Version::V4 => "V4",
                }
            )));
        }
        Ok(())
    }

    /// Turns an error of a check into one that names what the operator must fix.
    fn explain(&self, spec: &ObjectSpec, err: ConnectorError) -> ConnectorError {
        let endpoint = self
            .settings
            .endpoint(spec.object)
            .expect("every object has an endpoint");
        let client = self
            .settings
            .sap_client
            .as_deref()
            .map(|client| format!(" in client {client}"))
            .unwrap_or_default();
        match err {
            ConnectorError::CredentialsRejected(detail) => {
                let who = match &self.settings.auth {
                    Auth::Basic { user, .. } => format!("user {user}"),
                    Auth::ClientCredentials { client_id, .. } => {
                        format!("OAuth client {client_id}")
                    }
                };
                ConnectorError::CredentialsRejected(format!(
                    "SAP refused the logon of {who}{client}: {detail}"
                ))
            }
            ConnectorError::Status {
                status: 404,
                detail,
            } => ConnectorError::Status {
                status: 404,
                detail: format!(
                    "the service {} (entity set {}) does not exist on this system{client}; name \
                     the right one in the `services` credential: {detail}",
                    endpoint.service, endpoint.entity_set
                ),
            },
            other => other,
        }
    }

    /// Fetches a CSRF token (`x-csrf-token: Fetch`) for the service of `object`, with the
    /// session cookies it is bound to.
    async fn fetch_csrf(&self, service_url: &str) -> Result<CsrfSession, ConnectorError> {
        let bearer = match self.settings.auth {
            Auth::ClientCredentials { .. } => Some(self.bearer(None).await?),
            Auth::Basic { .. } => None,
        };
        let response = self
            .http
            .send(|client| {
                self.authorize(client.get(format!("{service_url}/")), bearer.as_deref())
                    .header("x-csrf-token", "Fetch")
                    .header("accept", "application/json")
            })
            .await?;
        let token = response
            .headers()
            .get("x-csrf-token")
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty() && !token.eq_ignore_ascii_case("required"))
            .ok_or_else(|| {
                ConnectorError::Malformed(format!("{service_url} sent no CSRF token when asked"))
            })?
            .to_owned();
        Ok(CsrfSession {
            token,
            cookies: session_cookies(response.headers()),
        })
    }

    /// Writes to `object`'s entity set (`POST`), or to one entity of it (`PATCH`, `PUT`,
    /// `DELETE` with `key_predicate` such as `('4000001')`), after the CSRF handshake; a token
    /// the system no longer accepts (403 with `x-csrf-token: Required`) is fetched again once.
    /// Returns the answer's JSON body (`null` for 204).
    pub async fn write(
        &self,
        method: Method,
        object: ObjectType,
        key_predicate: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ConnectorError> {
        let spec = spec(object).ok_or_else(|| ConnectorError::Unsupported(object.to_string()))?;
        let endpoint = self
            .settings
            .endpoint(object)
            .expect("every object has an endpoint");
        let service_url = format!("{}{}", self.settings.base_url, endpoint.service);
        let url = format!(
            "{}{}",
            self.entity_set_url(spec)?,
            key_predicate.unwrap_or_default()
        );
        let bearer = match self.settings.auth {
            Auth::ClientCredentials { .. } => Some(self.bearer(None).await?),
            Auth::Basic { .. } => None,
        };
        let mut refetched = false;
        loop {
            let session = {
                let mut sessions = self.csrf.lock().await;
                match sessions.get(&service_url) {
                    Some(session) if !refetched => session.clone(),
                    _ => {
                        let fresh = self.fetch_csrf(&service_url).await?;
                        sessions.insert(service_url.clone(), fresh.clone());
                        fresh
                    }
                }
            };
            let mut request = self
                .authorize(
                    self.http.client().request(method.clone(), &url),
                    bearer.as_deref(),
                )
                .header("x-csrf-token", &session.token)
                .header("accept", "application/json");
            if !session.cookies.is_empty() {
                request = request.header(COOKIE, &session.cookies);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|err| ConnectorError::Unreachable(err.to_string()))?;
            let status = response.status();
            let csrf_required = response
                .headers()
                .get("x-csrf-token")
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"required"));
            let text = response.text().await.unwrap_or_default();
            if status == StatusCode::FORBIDDEN && csrf_required && !refetched {
                tracing::debug!(service = %service_url, "the CSRF token was refused; fetching a new one");
                refetched = true;
                continue;
            }
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !status.is_success() {
                let detail =
                    read_error(&parsed).unwrap_or_else(|| text.chars().take(300).collect());
                return Err(match status {
                    StatusCode::UNAUTHORIZED => ConnectorError::CredentialsRejected(detail),
                    _ => ConnectorError::Status {
                        status: status.as_u16(),
                        detail,
                    },
                });
            }
            return Ok(parsed);
        }
    }

    /// Reads every row of `object` the system holds, unmapped (for tests and diagnostics).
    pub async fn read_all(&self, object: ObjectType) -> Result<Vec<Value>, ConnectorError> {
        let spec = spec(object).ok_or_else(|| ConnectorError::Unsupported(object.to_string()))?;
        let mut rows = Vec::new();
        let mut page = None;
        loop {
            let (mut batch, next, _) = self
                .walk(spec, page.as_deref(), self.projection(spec))
                .await?;
            rows.append(&mut batch);
            match next {
                Some(next) => page = Some(next),
                None => return Ok(rows),
            }
        }
    }
}

#[async_trait::async_trait]
impl Source for SapSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        for spec in &OBJECTS {
            self.probe(spec).await?;
        }
        Ok(())
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let spec = spec(request.object)
            .ok_or_else(|| ConnectorError::Unsupported(request.object.to_string()))?;
        if let Some(change_field) = spec.change_field {
            return self.read_keyset(spec, change_field, request).await;
        }
        // No change time: the set is read whole each time, and content hashes keep what did
        // not change from counting.
        let (rows, next, date) = self
            .walk(spec, request.page.as_deref(), self.projection(spec))
            .await?;
        let mut page = Page {
            next_page: next,
            listing_started_at: date,
            ..Page::default()
        };
        for row in &rows {
            match mapping::record(spec, &self.settings, &request.connection_id, row) {
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
        let spec = spec(object).ok_or_else(|| ConnectorError::Unsupported(object.to_string()))?;
        let projection = vec![("$select".to_owned(), spec.keys.join(","))];
        let (rows, next, _) = self.walk(spec, page, projection).await?;
        Ok(IdPage {
            remote_ids: rows
                .iter()
                .filter_map(|row| mapping::remote_id(spec, row))
                .collect(),
            next_page: next,
        })
    }
}

/// Where a keyset listing stands.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    /// Reading rows without a change time, by key, after this key.
    Undated { after: Option<String> },
    /// Reading rows with a change time, after this `(time, key)`.
    Dated {
        after: Option<(DateTime<Utc>, String)>,
    },
}

impl Position {
    fn encode(&self) -> String {
        match self {
            Position::Undated { after } => json!({"undated_after": after}).to_string(),
            Position::Dated { after: None } => json!({"dated": true}).to_string(),
            Position::Dated {
                after: Some((time, key)),
            } => json!({
                "dated_after": [time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), key]
            })
            .to_string(),
        }
    }

    fn decode(text: &str) -> Result<Position, ConnectorError> {
        let bad =
            || ConnectorError::Malformed(format!("`{text}` is not a position of this connector"));
        let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
        if let Some(after) = value.get("undated_after") {
            return Ok(Position::Undated {
                after: after.as_str().map(str::to_owned),
            });
        }
        if value.get("dated").is_some() {
            return Ok(Position::Dated { after: None });
        }
        let after = value["dated_after"].as_array().ok_or_else(bad)?;
        let time = after
            .first()
            .and_then(Value::as_str)
            .and_then(millrace_connector::time::parse_offset_time)
            .ok_or_else(bad)?;
        let key = after.get(1).and_then(Value::as_str).ok_or_else(bad)?;
        Ok(Position::Dated {
            after: Some((time, key.to_owned())),
        })
    }
}

/// Where a walk by server or client paging stands.
enum WalkPosition {
    /// The query of the server's next link.
    Next(Vec<(String, String)>),
    /// The first request's query, and the rows to skip.
    Skip {
        query: Vec<(String, String)>,
        skip: u64,
    },
}

impl WalkPosition {
    fn encode(&self) -> String {
        match self {
            WalkPosition::Next(query) => json!({"next": query}).to_string(),
            WalkPosition::Skip { query, skip } => json!({"query": query, "skip": skip}).to_string(),
        }
    }

    fn decode(text: &str) -> Result<WalkPosition, ConnectorError> {
        let bad =
            || ConnectorError::Malformed(format!("`{text}` is not a position of this connector"));
        let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
        let pairs = |value: &Value| -> Option<Vec<(String, String)>> {
            serde_json::from_value(value.clone()).ok()
        };
        if let Some(next) = value.get("next") {
            return pairs(next).map(WalkPosition::Next).ok_or_else(bad);
        }
        Ok(WalkPosition::Skip {
            query: pairs(&value["query"]).ok_or_else(bad)?,
            skip: value["skip"].as_u64().ok_or_else(bad)?,
        })
    }
}

/// Returns where a walk goes on after a page of `rows` rows asked for with `query`: the
/// server's next link when it sent one, else the same query skipping the rows read so far when
/// the page was full (a service that pages only by `$top`/`$skip`), else nowhere.
fn walk_next(
    url: &str,
    mut query: Vec<(String, String)>,
    rows: usize,
    link: Option<&str>,
) -> Result<Option<String>, ConnectorError> {
    if let Some(link) = link {
        return Ok(Some(WalkPosition::Next(next_query(url, link)?).encode()));
    }
    if (rows as u32) < WALK_PAGE {
        return Ok(None);
    }
    let skipped = query
        .iter()
        .position(|(name, _)| name == "$skip")
        .map(|index| query.remove(index).1.parse::<u64>().unwrap_or(0))
        .unwrap_or(0);
    Ok(Some(
        WalkPosition::Skip {
            query,
            skip: skipped + rows as u64,
        }
        .encode(),
    ))
}

/// Returns the query of a next link (absolute, or relative to the entity set's URL), without
/// `sap-client` and `$format`, which every request adds itself. The link's host is not used:
/// a server behind a proxy or gateway often names its own.
fn next_query(url: &str, link: &str) -> Result<Vec<(String, String)>, ConnectorError> {
    let base = url::Url::parse(url).map_err(|err| ConnectorError::Malformed(err.to_string()))?;
    let next = base.join(link).map_err(|err| {
        ConnectorError::Malformed(format!("the next link `{link}` is not a URL: {err}"))
    })?;
    Ok(next
        .query_pairs()
        .filter(|(name, _)| name != "sap-client" && name != "$format")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect())
}

/// Appends `query` to `url`, percent-encoding spaces as `%20`: OData servers read `$filter`
/// by the URI rules, where `+` is a plus sign, not a space as in HTML forms.
fn with_query(url: &str, query: &[(String, String)]) -> String {
    let encode = |text: &str| {
        url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let pairs: Vec<String> = query
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    if pairs.is_empty() {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{}", pairs.join("&"))
}

/// Returns the `name=value` pairs of every `Set-Cookie`, as one `Cookie` header.
fn session_cookies(headers: &HeaderMap<HeaderValue>) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|cookie| cookie.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.contains('='))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_a_round_trip() {
        let time = millrace_connector::time::parse_offset_time("2024-04-01T10:00:00.123Z").unwrap();
        for position in [
            Position::Undated { after: None },
            Position::Undated {
                after: Some("4000001".to_owned()),
            },
            Position::Dated { after: None },
            Position::Dated {
                after: Some((time, "O'Brien".to_owned())),
            },
        ] {
            assert_eq!(Position::decode(&position.encode()).unwrap(), position);
        }
        assert!(Position::decode("$skiptoken=20").is_err());
    }

    #[test]
    fn next_links_keep_their_query_but_not_their_host() {
        let url = "https://s4.example/sap/opu/odata/sap/API_PLANT_SRV/A_Plant";
        let query = next_query(
            url,
            "http://internal:8000/sap/opu/odata/sap/API_PLANT_SRV/A_Plant?$select=Plant&$skiptoken=20&sap-client=100",
        )
        .unwrap();
        assert_eq!(
            query,
            vec![
                ("$select".to_owned(), "Plant".to_owned()),
                ("$skiptoken".to_owned(), "20".to_owned())
            ]
        );
        let relative = next_query(url, "A_Plant?%24skiptoken=JHJvd3M9MzA%3D").unwrap();
        assert_eq!(
            relative,
            vec![("$skiptoken".to_owned(), "JHJvd3M9MzA=".to_owned())]
        );
    }

    #[test]
    fn walks_follow_next_links_else_skip_past_full_pages() {
        let url = "https://s4.example/sap/opu/odata/sap/API_PLANT_SRV/A_Plant";
        let first = vec![("$top".to_owned(), "1000".to_owned())];
        let decode = |next: Option<String>| WalkPosition::decode(&next.unwrap()).unwrap();

        match decode(walk_next(url, first.clone(), 20, Some("A_Plant?$skiptoken=20")).unwrap()) {
            WalkPosition::Next(query) => {
                assert_eq!(query, vec![("$skiptoken".to_owned(), "20".to_owned())])
            }
            WalkPosition::Skip { .. } => panic!("a next link is followed"),
        }
        assert!(walk_next(url, first.clone(), 999, None).unwrap().is_none());

        // A full page without a link: the same query, skipping what was read.
        let WalkPosition::Skip { query, skip } =
            decode(walk_next(url, first.clone(), 1000, None).unwrap())
        else {
            panic!("a full page without a link goes on by $skip")
        };
        assert_eq!((query.clone(), skip), (first.clone(), 1000));
        let mut second = query;
        second.push(("$skip".to_owned(), skip.to_string()));
        let WalkPosition::Skip { query, skip } =
            decode(walk_next(url, second, 1000, None).unwrap())
        else {
            panic!("and on")
        };
        assert_eq!((query, skip), (first, 2000));
    }

    #[test]
    fn query_values_encode_spaces_as_percent_20() {
        let query = vec![
            (
                "$filter".to_owned(),
                "A ge 2024-01-01T00:00:00+01:00 and B eq 'x&y'".to_owned(),
            ),
            ("$top".to_owned(), "5".to_owned()),
        ];
        assert_eq!(
            with_query("https://h/S/E", &query),
            "https://h/S/E?%24filter=A%20ge%202024-01-01T00%3A00%3A00%2B01%3A00%20and%20B%20eq%20%27x%26y%27&%24top=5"
        );
    }

    #[test]
    fn session_cookies_become_one_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("SAP_SESSIONID_S4H_100=abc; path=/; HttpOnly"),
        );
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("sap-usercontext=sap-client=100; path=/"),
        );
        assert_eq!(
            session_cookies(&headers),
            "SAP_SESSIONID_S4H_100=abc; sap-usercontext=sap-client=100"
        );
    }
}
