//! The Salesforce REST API as TrackWise Digital runs on it: the OAuth 2.0 token, SOQL queries
//! paged by `nextRecordsUrl`, the `deleted` resource, errors and the API usage limit.
//!
//! Listings are incremental on `SystemModstamp`, which Salesforce sets on every change (by
//! users and by the system) to the second. Many records share one stamp, so each query orders
//! by `(SystemModstamp, Id)`: when a query locator is no longer valid, the read goes on with a
//! keyset query after the last record delivered, and no tie is skipped.

use std::sync::Mutex;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use millrace_connector::http::{RetryPolicy, SourceHttp};
use millrace_connector::{ConnectorError, Credentials, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Mapping;
use crate::mapping;

/// The REST API version used when the connection names none.
pub const DEFAULT_API_VERSION: &str = "v59.0";

/// The share of the org's daily API requests a connection may use, in percent, by default.
pub const DEFAULT_USAGE_PERCENT: u64 = 80;

/// How far back the `deleted` resource is asked; Salesforce keeps about 15 days.
const DELETED_WINDOW_DAYS: i64 = 15;

/// Ids per `queryAll` that fetches the deleted records' last content.
const IDS_PER_QUERY: usize = 100;

/// The most records Salesforce returns in one batch.
const MAX_BATCH: u32 = 2000;

/// How a connection obtains its access token.
#[derive(Clone)]
enum Grant {
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    RefreshToken {
        client_id: String,
        client_secret: Option<String>,
        refresh_token: String,
    },
}

/// One connection's client to a TrackWise Digital org.
pub struct TrackwiseSource {
    http: SourceHttp,
    /// The org's My Domain URL, which serves both the token endpoint and the REST API.
    base_url: String,
    api_version: String,
    grant: Grant,
    mapping: Mapping,
    usage_percent: u64,
    /// The access token in use; held across a token request so that concurrent requests that
    /// meet an ended session renew it once.
    token: tokio::sync::Mutex<Option<String>>,
    /// The last `Sforce-Limit-Info` usage seen: (used, allowed).
    usage: Mutex<Option<(u64, u64)>>,
}

/// Where a listing of one stream stands, as the opaque page continuation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Index of the object being read among the stream's objects.
    object: usize,
    /// Whether the rows are read and the deletions are next.
    deletions: bool,
    /// `SystemModstamp` and `Id` of the last record delivered.
    after: Option<(DateTime<Utc>, String)>,
    /// The `nextRecordsUrl` of the running query.
    next: Option<String>,
}

/// One answer of the REST API.
struct Answer {
    body: Value,
    date: Option<DateTime<Utc>>,
}

impl TrackwiseSource {
    /// Builds a client from a connection's credentials, without contacting the org.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        let base_url = credentials.require("instance_url")?.trim_end_matches('/');
        let parsed = url::Url::parse(base_url).map_err(|err| {
            ConnectorError::InvalidCredentials(format!("`instance_url` is not a URL: {err}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConnectorError::InvalidCredentials(
                "`instance_url` must be an http or https URL".to_owned(),
            ));
        }
        let client_id = credentials.require("client_id")?.to_owned();
        let client_secret = credentials.get("client_secret").map(str::to_owned);
        let grant = match credentials.get("refresh_token") {
            Some(refresh_token) => Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token: refresh_token.to_owned(),
            },
            None => Grant::ClientCredentials {
                client_id,
                client_secret: client_secret.ok_or_else(|| {
                    ConnectorError::InvalidCredentials(
                        "give `client_secret` (client credentials flow) or `refresh_token`"
                            .to_owned(),
                    )
                })?,
            },
        };
        let api_version = credentials
            .get("api_version")
            .unwrap_or(DEFAULT_API_VERSION)
            .to_owned();
        let version_is_valid = api_version
            .strip_prefix('v')
            .is_some_and(|number| number.parse::<f32>().is_ok());
        if !version_is_valid {
            return Err(ConnectorError::InvalidCredentials(format!(
                "`api_version` must look like {DEFAULT_API_VERSION}, not `{api_version}`"
            )));
        }
        // A form sends the share as text, an API client may send a number.
        let usage_percent = match credentials.fields().get("api_usage_percent") {
            None | Some(Value::Null) => DEFAULT_USAGE_PERCENT,
            Some(Value::String(text)) if text.trim().is_empty() => DEFAULT_USAGE_PERCENT,
            Some(value) => value
                .as_u64()
                .or_else(|| {
                    value
                        .as_str()
                        .and_then(|text| text.trim().parse::<u64>().ok())
                })
                .filter(|percent| (1..=100).contains(percent))
                .ok_or_else(|| {
                    ConnectorError::InvalidCredentials(
                        "`api_usage_percent` must be a whole number from 1 to 100".to_owned(),
                    )
                })?,
        };
        let mapping = Mapping::from_credential(credentials.fields().get("mapping"))?;
        Ok(TrackwiseSource {
            http: SourceHttp::new(RetryPolicy::configured(), read_error)?,
            base_url: base_url.to_owned(),
            api_version,
            grant,
            mapping,
            usage_percent,
            token: tokio::sync::Mutex::new(None),
            usage: Mutex::new(None),
        })
    }

    /// Returns the mapping this connection reads with.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Requests a new access token with the connection's grant.
    async fn request_token(&self) -> Result<String, ConnectorError> {
        let form: Vec<(&str, &str)> = match &self.grant {
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ],
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("refresh_token", refresh_token.as_str()),
                ];
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret));
                }
                form
            }
        };
        let url = format!("{}/services/oauth2/token", self.base_url);
        let response = self
            .http
            .send(|client| client.post(&url).form(&form))
            .await
            .map_err(token_error)?;
        let body = read_json(response).await?.body;
        let token = body["access_token"].as_str().ok_or_else(|| {
            ConnectorError::Malformed("the token answer has no access_token".to_owned())
        })?;
        tracing::debug!(
            system = crate::SYSTEM_ID,
            "salesforce access token obtained"
        );
        Ok(token.to_owned())
    }

    /// Returns the access token, requesting one when there is none.
    async fn access_token(&self) -> Result<String, ConnectorError> {
        let mut token = self.token.lock().await;
        if let Some(current) = token.as_ref() {
            return Ok(current.clone());
        }
        let fresh = self.request_token().await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    /// Replaces `ended`, the token a request found invalid, unless another request did first.
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

    /// Fails when the org's API usage has reached the share this connection may use.
    fn check_usage(&self) -> Result<(), ConnectorError> {
        let usage = *self.usage.lock().unwrap_or_else(|err| err.into_inner());
        match usage {
            Some((used, allowed)) if allowed > 0 && used * 100 >= allowed * self.usage_percent => {
                Err(ConnectorError::Status {
                    status: 403,
                    detail: format!(
                        "the org has used {used} of its {allowed} daily API requests, at or \
                         above the {}% this connection may use; reading resumes when usage falls",
                        self.usage_percent
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// GETs `path_and_query` (relative to the org) with the access token; an ended session
    /// is renewed once and the request sent again.
    async fn get(
        &self,
        path_and_query: &str,
        batch: Option<u32>,
    ) -> Result<Answer, ConnectorError> {
        self.call(path_and_query, batch, None).await
    }

    /// Sends a GET, or a POST of `body`, to `path_and_query` with the access token.
    async fn call(
        &self,
        path_and_query: &str,
        batch: Option<u32>,
        body: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        self.check_usage()?;
        let url = format!("{}{path_and_query}", self.base_url);
        let mut token = self.access_token().await?;
        let mut renewed = false;
        loop {
            let sent = self
                .http
                .send(|client| {
                    let request = match body {
                        Some(body) => client.post(&url).json(body),
                        None => client.get(&url),
                    };
                    let request = request.bearer_auth(&token);
                    match batch {
                        Some(size) => {
                            request.header("Sforce-Query-Options", format!("batchSize={size}"))
                        }
                        None => request,
                    }
                })
                .await;
            match sent {
                Ok(response) => {
                    self.note_usage(response.headers());
                    return read_json(response).await;
                }
                Err(ConnectorError::CredentialsRejected(detail))
                    if detail.starts_with("INVALID_SESSION_ID") && !renewed =>
                {
                    tracing::debug!(
                        system = crate::SYSTEM_ID,
                        "salesforce session ended, renewing"
                    );
                    token = self.renew_token(&token).await?;
                    renewed = true;
                }
                Err(ConnectorError::CredentialsRejected(detail))
                    if detail.starts_with("REQUEST_LIMIT_EXCEEDED") =>
                {
                    return Err(ConnectorError::Status {
                        status: 403,
                        detail: format!("the org is over its daily API request limit: {detail}"),
                    });
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn note_usage(&self, headers: &reqwest::header::HeaderMap) {
        let Some(usage) = headers
            .get("sforce-limit-info")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_limit_info)
        else {
            return;
        };
        *self.usage.lock().unwrap_or_else(|err| err.into_inner()) = Some(usage);
    }

    fn data_path(&self, rest: &str) -> String {
        format!("/services/data/{}/{rest}", self.api_version)
    }

    /// Runs a SOQL statement (`queryAll` includes deleted records) and returns the first batch.
    async fn query(
        &self,
        soql: &str,
        all: bool,
        batch: Option<u32>,
    ) -> Result<Answer, ConnectorError> {
        let resource = if all { "queryAll" } else { "query" };
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        self.get(&self.data_path(&format!("{resource}/?q={encoded}")), batch)
            .await
    }

    /// The objects a stream reads, with the fields to select.
    fn reads(&self, object: ObjectType) -> Result<Vec<ObjectRead>, ConnectorError> {
        match object {
            ObjectType::Sites => Ok(vec![ObjectRead::site(&self.mapping)]),
            ObjectType::QualityEvents => Ok(self
                .mapping
                .quality_events
                .iter()
                .enumerate()
                .map(|(index, quality)| ObjectRead::quality(index, quality))
                .collect()),
            other => Err(ConnectorError::Unsupported(other.to_string())),
        }
    }

    /// Reads the next batch of rows of `read`, from the running query or a new keyset query.
    async fn read_rows(
        &self,
        read: &ObjectRead,
        request: &PageRequest,
        cursor: &mut Cursor,
    ) -> Result<(Vec<Value>, Option<DateTime<Utc>>), ConnectorError> {
        let batch = request.page_size.clamp(1, MAX_BATCH);
        let answer = match cursor.next.take() {
            Some(next) => match self.get(&next, Some(batch)).await {
                Err(ConnectorError::Status {
                    status: 400,
                    detail,
                }) if detail.starts_with("INVALID_QUERY_LOCATOR") => {
                    tracing::debug!(
                        system = crate::SYSTEM_ID,
                        object = %read.object,
                        "query locator no longer valid, continuing by keyset"
                    );
                    self.query(
                        &read.soql(request.since, cursor.after.as_ref()),
                        false,
                        Some(batch),
                    )
                    .await?
                }
                other => other?,
            },
            None => {
                self.query(
                    &read.soql(request.since, cursor.after.as_ref()),
                    false,
                    Some(batch),
                )
                .await?
            }
        };
        let records = answer.body["records"]
            .as_array()
            .cloned()
            .ok_or_else(|| ConnectorError::Malformed("the query answer has no records".into()))?;
        let done = answer.body["done"].as_bool().unwrap_or(true);
        cursor.next = match answer.body["nextRecordsUrl"].as_str() {
            Some(next) if !done => Some(next.to_owned()),
            _ => None,
        };
        Ok((records, answer.date))
    }

    /// Reads the records of `read` deleted since `since`, with their last content.
    async fn read_deletions(
        &self,
        read: &ObjectRead,
        since: DateTime<Utc>,
    ) -> Result<(Vec<(Value, DateTime<Utc>)>, Option<DateTime<Utc>>), ConnectorError> {
        let now = Utc::now();
        // The resource answers for about 15 days back and ignores seconds; what lies beyond
        // is found by reconciliation.
        let start =
            since.max(now - ChronoDuration::days(DELETED_WINDOW_DAYS) + ChronoDuration::hours(1));
        let end = now + ChronoDuration::minutes(1);
        if start >= end {
            return Ok((Vec::new(), None));
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("start", &soql_datetime(start))
            .append_pair("end", &soql_datetime(end))
            .finish();
        let path = self.data_path(&format!("sobjects/{}/deleted/?{query}", read.object));
        let answer = match self.get(&path, None).await {
            Err(ConnectorError::Status {
                status: 400,
                detail,
            }) if detail.starts_with("INVALID_REPLICATION_DATE") => {
                tracing::debug!(
                    system = crate::SYSTEM_ID,
                    object = %read.object,
                    "delete log purged before the window, reconciliation finds those deletions"
                );
                return Ok((Vec::new(), None));
            }
            other => other?,
        };
        let deleted: Vec<(String, DateTime<Utc>)> = answer.body["deletedRecords"]
            .as_array()
            .ok_or_else(|| {
                ConnectorError::Malformed("the deleted answer has no deletedRecords".into())
            })?
            .iter()
            .filter_map(|entry| {
                let id = entry["id"].as_str().filter(|id| is_record_id(id))?;
                let at = entry["deletedDate"]
                    .as_str()
                    .and_then(parse_salesforce_time)?;
                Some((id.to_owned(), at))
            })
            .collect();

        // The recycle bin keeps a deleted record's content for a while: queryAll reads it, so
        // the tombstone carries what was last stored. Records already purged from it are left
        // to reconciliation, which marks them without touching their content.
        let mut found = Vec::new();
        for chunk in deleted.chunks(IDS_PER_QUERY) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| format!("'{id}'")).collect();
            let soql = format!(
                "SELECT {} FROM {} WHERE Id IN ({}) AND IsDeleted = true",
                read.fields.join(", "),
                read.object,
                ids.join(", ")
            );
            let mut answer = self.query(&soql, true, None).await?;
            loop {
                for record in answer.body["records"].as_array().into_iter().flatten() {
                    let id = record["Id"].as_str().unwrap_or_default();
                    if let Some((_, at)) = chunk.iter().find(|(deleted, _)| deleted == id) {
                        found.push((record.clone(), *at));
                    }
                }
                match answer.body["nextRecordsUrl"].as_str() {
                    Some(next) if answer.body["done"] == Value::Bool(false) => {
                        answer = self.get(next, None).await?;
                    }
                    _ => break,
                }
            }
        }
        Ok((found, answer.date))
    }
}

/// One object a stream reads and what to select from it.
struct ObjectRead {
    object: String,
    fields: Vec<String>,
    /// Index into the mapping's quality objects; `None` for the site object.
    quality: Option<usize>,
}

impl ObjectRead {
    fn site(mapping: &Mapping) -> Self {
        let site = &mapping.site;
        let mapped = [
            Some(&site.name),
            site.description.as_ref(),
            site.active.as_ref(),
            site.address.as_ref(),
            site.time_zone.as_ref(),
        ];
        ObjectRead {
            object: site.object.clone(),
            fields: select_list(mapped.into_iter().flatten()),
            quality: None,
        }
    }

    fn quality(index: usize, quality: &crate::config::QualityObject) -> Self {
        let mapped = quality
            .fields
            .all()
            .into_iter()
            .flatten()
            .chain(quality.extra_fields.iter());
        ObjectRead {
            object: quality.object.clone(),
            fields: select_list(mapped),
            quality: Some(index),
        }
    }

    /// The keyset query: changed at or after `since`, after `after` in `(SystemModstamp, Id)`.
    fn soql(
        &self,
        since: Option<DateTime<Utc>>,
        after: Option<&(DateTime<Utc>, String)>,
    ) -> String {
        let mut conditions = Vec::new();
        if let Some(since) = since {
            conditions.push(format!("SystemModstamp >= {}", soql_datetime(since)));
        }
        if let Some((stamp, id)) = after {
            let stamp = soql_datetime(*stamp);
            conditions.push(format!(
                "(SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > '{id}'))"
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        format!(
            "SELECT {} FROM {}{filter} ORDER BY SystemModstamp ASC, Id ASC",
            self.fields.join(", "),
            self.object
        )
    }
}

/// The system fields every read selects, then the mapped ones, each once.
fn select_list<'a>(mapped: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut fields: Vec<String> = ["Id", "CreatedDate", "SystemModstamp", "IsDeleted"]
        .map(str::to_owned)
        .to_vec();
    for field in mapped {
        if !fields.iter().any(|known| known.eq_ignore_ascii_case(field)) {
            fields.push(field.clone());
        }
    }
    fields
}

#[async_trait::async_trait]
impl Source for TrackwiseSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        // The token proves the credentials.
        self.access_token().await?;

        // One composite batch of one-row queries, an object each, checks the mapping's names
        // against this org. Only the org's own verdict on a name fails the connection; any
        // other failure of this extra request is left for the first sync to report.
        let reads: Vec<ObjectRead> = [ObjectType::Sites, ObjectType::QualityEvents]
            .into_iter()
            .map(|object| self.reads(object))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        let batch: Vec<Value> = reads
            .iter()
            .map(|read| {
                let soql = format!(
                    "SELECT {} FROM {} LIMIT 1",
                    read.fields.join(", "),
                    read.object
                );
                let encoded: String =
                    url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
                serde_json::json!({
                    "method": "GET",
                    "url": format!("{}/query/?q={encoded}", self.api_version),
                })
            })
            .collect();
        let body = serde_json::json!({"batchRequests": batch});
        let answer = match self
            .call(&self.data_path("composite/batch"), None, Some(&body))
            .await
        {
            Ok(answer) => answer,
            Err(err @ ConnectorError::CredentialsRejected(_)) => return Err(err),
            Err(err) => {
                tracing::warn!(
                    system = crate::SYSTEM_ID,
                    error = %err,
                    "the mapping could not be checked at connect time"
                );
                return Ok(());
            }
        };
        let results = answer.body["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (read, result) in reads.iter().zip(results) {
            let code = result["result"][0]["errorCode"]
                .as_str()
                .unwrap_or_default();
            if matches!(code, "INVALID_TYPE" | "INVALID_FIELD") {
                let message = result["result"][0]["message"].as_str().unwrap_or_default();
                return Err(ConnectorError::Status {
                    status: 400,
                    detail: format!(
                        "the mapping does not fit this org ({}): {code}: {message}",
                        read.object
                    ),
                });
            }
        }
        Ok(())
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let reads = self.reads(request.object)?;
        let mut cursor: Cursor = match &request.page {
            Some(page) => serde_json::from_str(page).map_err(|err| {
                ConnectorError::Malformed(format!("the page continuation is not readable: {err}"))
            })?,
            None => Cursor::default(),
        };
        let Some(read) = reads.get(cursor.object) else {
            return Ok(Page::default());
        };

        let mut page = Page {
            // Objects are read one after another, so the listing as a whole is not in change
            // order; the engine keeps the watermark at or before the listing's start.
            ordered_by_change: false,
            ..Page::default()
        };
        let finished_object;
        if cursor.deletions {
            let since = request.since.unwrap_or_else(Utc::now);
            let (deleted, date) = self.read_deletions(read, since).await?;
            page.listing_started_at = date;
            for (raw, deleted_at) in deleted {
                match mapping::record(&self.mapping, read.quality, &request.connection_id, raw) {
                    Ok(mut record) => {
                        record.remote_deleted_at = Some(deleted_at);
                        page.records.push(record);
                    }
                    Err(rejected) => page.rejected.push(rejected),
                }
            }
            finished_object = true;
        } else {
            let (rows, date) = self.read_rows(read, request, &mut cursor).await?;
            page.listing_started_at = date;
            for raw in rows {
                let key = raw["SystemModstamp"]
                    .as_str()
                    .and_then(parse_salesforce_time)
                    .zip(raw["Id"].as_str().filter(|id| is_record_id(id)));
                match mapping::record(
                    &self.mapping,
                    read.quality,
                    &request.connection_id,
                    raw.clone(),
                ) {
                    Ok(record) => page.records.push(record),
                    Err(rejected) => page.rejected.push(rejected),
                }
                if let Some((stamp, id)) = key {
                    cursor.after = Some((stamp, id.to_owned()));
                }
            }
            let rows_done = cursor.next.is_none();
            if rows_done && request.since.is_some() {
                cursor.deletions = true;
                finished_object = false;
            } else {
                finished_object = rows_done;
            }
        }

        if finished_object {
            cursor = Cursor {
                object: cursor.object + 1,
                ..Cursor::default()
            };
        }
        if cursor.object < reads.len() {
            page.next_page =
                Some(serde_json::to_string(&cursor).map_err(|err| {
                    ConnectorError::Mapping(format!("the page continuation: {err}"))
                })?);
        }
        Ok(page)
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let reads = self.reads(object)?;
        // The continuation is `<object index>:<last id>`.
        let (index, after) = match page.and_then(|page| page.split_once(':')) {
            Some((index, after)) => (
                index
                    .parse::<usize>()
                    .map_err(|_| ConnectorError::Malformed("an id page continuation".into()))?,
                Some(after.to_owned()).filter(|after| is_record_id(after)),
            ),
            None => (0, None),
        };
        let Some(read) = reads.get(index) else {
            return Ok(IdPage::default());
        };
        let filter = after
            .as_ref()
            .map(|after| format!(" WHERE Id > '{after}'"))
            .unwrap_or_default();
        let soql = format!(
            "SELECT Id FROM {}{filter} ORDER BY Id ASC LIMIT {MAX_BATCH}",
            read.object
        );
        let answer = self.query(&soql, false, None).await?;
        let remote_ids: Vec<String> = answer.body["records"]
            .as_array()
            .ok_or_else(|| ConnectorError::Malformed("the query answer has no records".into()))?
            .iter()
            .filter_map(|record| record["Id"].as_str().map(str::to_owned))
            .collect();
        let next_page = match remote_ids.last() {
            Some(last) if remote_ids.len() == MAX_BATCH as usize => Some(format!("{index}:{last}")),
            _ if index + 1 < reads.len() => Some(format!("{}:", index + 1)),
            _ => None,
        };
        Ok(IdPage {
            remote_ids,
            next_page,
        })
    }
}

/// Reads a 2xx answer's JSON body and its `Date`.
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

/// Turns a token endpoint's refusal into the error the engine acts on: the OAuth errors that
/// mean these credentials will not work become [`ConnectorError::CredentialsRejected`].
fn token_error(err: ConnectorError) -> ConnectorError {
    const REFUSALS: [&str; 4] = [
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
    ];
    match err {
        ConnectorError::Status {
            status: 400,
            detail,
        } if REFUSALS.iter().any(|code| detail.starts_with(code)) => {
            ConnectorError::CredentialsRejected(detail)
        }
        other => other,
    }
}

/// Reads Salesforce's error bodies: `[{"message", "errorCode"}]` from the REST API and
/// `{"error", "error_description"}` from the token endpoint, as `CODE: message`.
fn read_error(body: &Value) -> Option<String> {
    if let Some(first) = body.as_array().and_then(|errors| errors.first()) {
        let code = first["errorCode"].as_str()?;
        let message = first["message"].as_str().unwrap_or_default();
        return Some(format!("{code}: {message}"));
    }
    let code = body["error"].as_str()?;
    let description = body["error_description"].as_str().unwrap_or_default();
    Some(format!("{code}: {description}"))
}

/// Parses `api-usage=N/M` out of a `Sforce-Limit-Info` header.
fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header.split(',').find_map(|part| {
        let usage = part.trim().strip_prefix("api-usage=")?;
        let (used, allowed) = usage.split_once('/')?;
        Some((used.trim().parse().ok()?, allowed.trim().parse().ok()?))
    })
}

/// Formats an instant as a SOQL datetime literal: unquoted, UTC with `Z`, whole seconds
/// (rounded down, which widens a `>=` filter and never narrows it).
pub fn soql_datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a Salesforce datetime as the REST API writes it (`2024-03-05T10:20:30.000+0000`,
/// an offset without a colon) or in RFC 3339.
pub fn parse_salesforce_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|time| time.with_timezone(&Utc))
        .or_else(|| millrace_connector::time::parse_offset_time(text))
}

/// Returns whether `id` looks like a Salesforce record id (15 or 18 letters and digits), which
/// also makes it safe to quote in SOQL.
pub fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn salesforce_times_parse_with_and_without_a_colon_in_the_offset() {
        let expected = "2024-03-05T10:20:30Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_salesforce_time("2024-03-05T10:20:30.000+0000"),
            Some(expected)
        );
        assert_eq!(
            parse_salesforce_time("2024-03-05T11:20:30.000+01:00"),
            Some(expected)
        );
        assert_eq!(
            parse_salesforce_time("2024-03-05T10:20:30Z"),
            Some(expected)
        );
        assert_eq!(parse_salesforce_time("yesterday"), None);
    }

    #[test]
    fn soql_literals_are_unquoted_utc_whole_seconds() {
        let at = "2024-03-05T10:20:30.900+02:00"
            .parse::<DateTime<Utc>>()
            .unwrap();
        assert_eq!(soql_datetime(at), "2024-03-05T08:20:30Z");
    }

    #[test]
    fn the_keyset_query_continues_after_the_last_stamp_and_id() {
        let read = ObjectRead {
            object: "X__c".into(),
            fields: vec!["Id".into(), "Name".into()],
            quality: None,
        };
        let since = "2024-01-01T00:00:00Z".parse().unwrap();
        let after = (
            "2024-01-02T03:04:05Z".parse().unwrap(),
            "a0B000000000001AAA".to_owned(),
        );
        assert_eq!(
            read.soql(Some(since), Some(&after)),
            "SELECT Id, Name FROM X__c WHERE SystemModstamp >= 2024-01-01T00:00:00Z AND \
             (SystemModstamp > 2024-01-02T03:04:05Z OR (SystemModstamp = 2024-01-02T03:04:05Z \
             AND Id > 'a0B000000000001AAA')) ORDER BY SystemModstamp ASC, Id ASC"
        );
    }

    #[test]
    fn errors_read_as_code_and_message() {
        let rest =
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
        assert_eq!(
            read_error(&rest).unwrap(),
            "INVALID_SESSION_ID: Session expired or invalid"
        );
        let oauth =
            json!({"error": "invalid_client", "error_description": "invalid client credentials"});
        assert_eq!(
            read_error(&oauth).unwrap(),
            "invalid_client: invalid client credentials"
        );
        let refused = token_error(ConnectorError::Status {
            status: 400,
            detail: "invalid_grant: expired".into(),
        });
        assert!(matches!(refused, ConnectorError::CredentialsRejected(_)));
        let other = token_error(ConnectorError::Status {
            status: 400,
            detail: "(empty body)".into(),
        });
        assert!(matches!(other, ConnectorError::Status { .. }));
    }

    #[test]
    fn limit_info_gives_used_and_allowed() {
        assert_eq!(parse_limit_info("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/100, api-usage=7/900"),
            Some((7, 900))
        );
        assert_eq!(parse_limit_info("nothing"), None);
    }
}
