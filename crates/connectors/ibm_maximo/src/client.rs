//! Requests to Maximo's OSLC/REST JSON API: authentication, the query of each object
//! structure and the pages of a listing. The two-phase read of parts is in `parts.rs`.
//!
//! Change-ordered listings are keyset-paged on the change attribute (see [`crate::listing`]):
//! a fresh query per page, `oslc.orderBy=+changedate,+<keys>`, so that the newest change time
//! delivered bounds what is left to read. Parts, helper joins and id listings use
//! `stablePaging=true` and follow `responseInfo.nextPage`. A where literal carries an explicit
//! `+00:00` offset and is floored to the second: Maximo reads a literal without an offset in
//! the server's zone, which the connector does not know, and flooring only widens `>=`.

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use millrace_connector::http::{RetryPolicy, SourceHttp};
use millrace_connector::{
    ConnectorError, Credentials, IdPage, Page, PageRequest, RejectedRecord, Source,
};
use millrace_model::ObjectType;
use serde_json::Value;
use url::Url;

use crate::listing::{second_of, Listing};
use crate::mapping::{self, MapContext};

/// One object structure the connector reads, and how.
#[derive(Debug)]
pub struct Structure {
    pub object: ObjectType,
    pub name: &'static str,
    /// The attributes asked for with `oslc.select`.
    pub select: &'static str,
    /// The attribute that records the last change, which listings are keyset-paged on.
    pub change_attr: &'static str,
    /// Attributes whose values, joined by `/`, form the remote id.
    pub key_attrs: &'static [&'static str],
    /// A condition every listing of the structure carries (e.g. top-level work orders only).
    pub condition: Option<&'static str>,
}

/// The structures read, one per object type.
pub const STRUCTURES: &[Structure] = &[
    Structure {
        object: ObjectType::Sites,
        name: "mxapisite",
        select: "siteid,orgid,siteuid,description,active,changedate,changeby",
        change_attr: "changedate",
        key_attrs: &["siteid"],
        condition: None,
    },
    Structure {
        object: ObjectType::Locations,
        name: "mxapilocations",
        select: "location,siteid,orgid,locationsid,description,type,status,status_maxvalue,\
                 parent,latitudey,longitudex,changedate,changeby",
        change_attr: "changedate",
        key_attrs: &["siteid", "location"],
        condition: None,
    },
    Structure {
        object: ObjectType::Assets,
        name: "mxapiasset",
        select: "assetnum,siteid,orgid,assetuid,assettag,description,assettype,manufacturer,\
                 vendor,serialnum,status,status_maxvalue,location,parent,installdate,priority,\
                 isrunning,changedate,changeby",
        change_attr: "changedate",
        key_attrs: &["siteid", "assetnum"],
        condition: None,
    },
    Structure {
        object: ObjectType::WorkOrders,
        name: "mxapiwodetail",
        select: "wonum,siteid,orgid,workorderid,description,description_longdescription,status,\
                 status_maxvalue,statusdate,wopriority,worktype,assetnum,location,origrecordid,\
                 origrecordclass,pmnum,reportdate,reportedby,schedstart,schedfinish,actstart,\
                 actfinish,estdur,esttotalcost,acttotalcost,lead,supervisor,failurecode,\
                 problemcode,changedate,changeby,\
                 woactivity{taskid,wonum,description,status,status_maxvalue,estdur,actlabhrs}",
        change_attr: "changedate",
        key_attrs: &["siteid", "wonum"],
        condition: Some("istask=0"),
    },
    Structure {
        object: ObjectType::WorkRequests,
        name: "mxapisr",
        select: "ticketid,class,ticketuid,siteid,orgid,description,description_longdescription,\
                 status,status_maxvalue,statusdate,reportedpriority,internalpriority,reportedby,\
                 reportdate,affecteddate,assetnum,assetsiteid,location,actualfinish,\
                 externalrecid,changedate,changeby",
        change_attr: "changedate",
        key_attrs: &["ticketid"],
        condition: None,
    },
    Structure {
        object: ObjectType::Parts,
        name: "mxapiitem",
        select: "itemnum,itemsetid,itemid,description,status,status_maxvalue,orderunit,\
                 issueunit,rotating,itemtype,commoditygroup,changedate,changeby",
        change_attr: "changedate",
        key_attrs: &["itemsetid", "itemnum"],
        condition: None,
    },
    Structure {
        object: ObjectType::PurchaseOrders,
        name: "mxapipo",
        select: "ponum,revisionnum,siteid,orgid,poid,description,status,status_maxvalue,\
                 statusdate,vendor,orderdate,requireddate,totalcost,currencycode,purchaseagent,\
                 changedate,changeby,poline{polinenum,itemnum,itemsetid,description,orderqty,\
                 receivedqty,orderunit,unitcost,linecost,refwo}",
        change_attr: "changedate",
        key_attrs: &["siteid", "ponum", "revisionnum"],
        condition: None,
    },
    Structure {
        object: ObjectType::Vendors,
        name: "mxapivendor",
        select: "company,orgid,companiesid,name,type,disabled,currencycode,homepage,phone,\
                 address1,address2,address3,address4,changedate,changeby",
        change_attr: "changedate",
        key_attrs: &["orgid", "company"],
        condition: None,
    },
    Structure {
        object: ObjectType::Users,
        name: "mxapiperson",
        select: "personid,personuid,displayname,firstname,lastname,title,department,\
                 primaryemail,primaryphone,status,status_maxvalue,locationsite,changedate",
        change_attr: "changedate",
        key_attrs: &["personid"],
        condition: None,
    },
    Structure {
        object: ObjectType::Meters,
        name: "mxapiassetmeter",
        select: "assetnum,siteid,metername,assetmeterid,metertype,measureunitid,active,\
                 lastreading,lastreadingdate,changedate",
        change_attr: "changedate",
        key_attrs: &["siteid", "assetnum", "metername"],
        condition: None,
    },
    Structure {
        object: ObjectType::MeterReadings,
        name: "mxapimeterreading",
        select: "meterreadingid,assetnum,siteid,metername,reading,readingdate,enterdate,\
                 enterby,inspector,readingsource,remarks",
        change_attr: "enterdate",
        key_attrs: &["meterreadingid"],
        condition: None,
    },
];

/// Page size of the helper reads (inventory of a page of items, ids for reconciliation).
pub(crate) const HELPER_PAGE_SIZE: u32 = 1000;

/// Returns the structure read for `object`.
pub fn structure_for(object: ObjectType) -> Option<&'static Structure> {
    STRUCTURES
        .iter()
        .find(|structure| structure.object == object)
}

/// How requests authenticate. `Debug` shows the method only.
enum Auth {
    /// An API key, sent with every request.
    ApiKey(String),
    /// A Maximo user: `maxauth` (base64 of `user:password`) opens a session at `/oslc/login`,
    /// and requests carry the session cookie. A session that ends mid-run (timeout, server
    /// restart) is renewed once, by one request even when several wait on it.
    Native {
        maxauth: String,
        session: tokio::sync::Mutex<Session>,
    },
}

/// The current session of a [`Auth::Native`] source.
#[derive(Default)]
struct Session {
    /// The `JSESSIONID` cookie, once logged in.
    cookie: Option<String>,
    /// Bumped at each login, so that requests which failed on an older session renew once.
    generation: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::ApiKey(_) => f.write_str("ApiKey(..)"),
            Auth::Native { .. } => f.write_str("Native(..)"),
        }
    }
}

/// A live client of one Maximo instance.
#[derive(Debug)]
pub struct MaximoSource {
    http: SourceHttpDebug,
    base_url: Url,
    auth: Auth,
}

/// `SourceHttp` without a `Debug` of its own.
struct SourceHttpDebug(SourceHttp);

impl std::fmt::Debug for SourceHttpDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceHttp")
    }
}

/// Reads Maximo's error JSON: `{"Error": {"reasonCode", "message", "statusCode"}}`.
pub fn read_error(body: &Value) -> Option<String> {
    let error = body.get("Error").or_else(|| body.get("oslc:Error"))?;
    let field = |name: &str| {
        error
            .get(name)
            .or_else(|| error.get(format!("spi:{name}")))
            .and_then(Value::as_str)
    };
    let message = field("message").unwrap_or("(no message)");
    match field("reasonCode") {
        Some(code) => {
            let message = message.strip_prefix(code).map_or(message, |rest| {
                rest.trim_start_matches([' ', '-', ':']).trim_start()
            });
            Some(format!("{code}: {message}"))
        }
        None => Some(message.to_owned()),
    }
}

/// Formats a watermark as a where literal: whole seconds (floored), UTC, explicit offset.
pub fn where_literal(since: DateTime<Utc>) -> String {
    since.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

impl MaximoSource {
    /// Builds a client from credentials; exactly one authentication method must be given.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        let invalid = |message: &str| ConnectorError::InvalidCredentials(message.to_owned());
        let base = credentials.require("base_url")?;
        let mut base_url = Url::parse(base.trim_end_matches('/'))
            .map_err(|err| invalid(&format!("base_url is not a URL ({err})")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
            return Err(invalid(
                "base_url must be an http or https URL such as https://host/maximo",
            ));
        }
        base_url.set_query(None);
        base_url.set_fragment(None);

        let api_key = credentials.get("api_key");
        let user = credentials.get("username");
        let password = credentials.get("password");
        let auth = match (api_key, user, password) {
            (Some(key), None, None) => Auth::ApiKey(key.to_owned()),
            (None, Some(user), Some(password)) => Auth::Native {
                maxauth: base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{password}")),
                session: tokio::sync::Mutex::new(Session::default()),
            },
            (Some(_), _, _) => {
                return Err(invalid(
                    "give either api_key or username and password, not both",
                ))
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(invalid("username and password must be given together"))
            }
            (None, None, None) => {
                return Err(invalid(
                    "an api_key, or a username and password, is required",
                ))
            }
        };

        let http = SourceHttp::new(RetryPolicy::configured(), read_error)?;
        Ok(MaximoSource {
            http: SourceHttpDebug(http),
            base_url,
            auth,
        })
    }

    pub(crate) fn collection_url(&self, structure: &str) -> String {
        format!(
            "{}/oslc/os/{structure}",
            self.base_url.as_str().trim_end_matches('/')
        )
    }

    /// Sends an authenticated GET of `url` with `params` and reads the JSON answer.
    pub(crate) async fn get(
        &self,
        url: &str,
        params: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        Ok(self.get_dated(url, params).await?.0)
    }

    /// Like `get`, also returning the server's clock from its `Date` header.
    pub(crate) async fn get_dated(
        &self,
        url: &str,
        params: &[(&str, String)],
    ) -> Result<(Value, Option<DateTime<Utc>>), ConnectorError> {
        tracing::debug!(url, "maximo request");
        let (maxauth, session) = match &self.auth {
            Auth::ApiKey(key) => return self.send_get(url, params, ("apikey", key)).await,
            Auth::Native { maxauth, session } => (maxauth, session),
        };
        let (cookie, generation) = {
            let mut current = session.lock().await;
            if current.cookie.is_none() {
                self.log_in(maxauth, &mut current).await?;
            }
            (
                current.cookie.clone().unwrap_or_default(),
                current.generation,
            )
        };
        match self.send_get(url, params, ("cookie", &cookie)).await {
            Err(ConnectorError::CredentialsRejected(_)) => {
                {
                    let mut current = session.lock().await;
                    // Another request renewed the session while this one waited: use that.
                    if current.generation == generation {
                        tracing::debug!("maximo session ended; logging in again");
                        self.log_in(maxauth, &mut current).await?;
                    }
                }
                let cookie = session.lock().await.cookie.clone().unwrap_or_default();
                self.send_get(url, params, ("cookie", &cookie)).await
            }
            answer => answer,
        }
    }

    async fn send_get(
        &self,
        url: &str,
        params: &[(&str, String)],
        (header, value): (&str, &str),
    ) -> Result<(Value, Option<DateTime<Utc>>), ConnectorError> {
        self.http
            .0
            .get_json_dated(|client| {
                client
                    .get(url)
                    .query(params)
                    .header(header, value)
                    .header("accept", "application/json")
            })
            .await
    }

    /// Opens a session at `/oslc/login`; a refusal there is a refusal of the credentials.
    async fn log_in(&self, maxauth: &str, session: &mut Session) -> Result<(), ConnectorError> {
        let url = format!(
            "{}/oslc/login",
            self.base_url.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .0
            .send(|client| {
                client
                    .post(&url)
                    .header("maxauth", maxauth)
                    .header("accept", "application/json")
            })
            .await?;
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .find(|pair| pair.trim_start().starts_with("JSESSIONID="))
            .map(|pair| pair.trim().to_owned())
            .ok_or_else(|| {
                ConnectorError::Malformed("the login answer set no JSESSIONID cookie".to_owned())
            })?;
        session.cookie = Some(cookie);
        session.generation += 1;
        Ok(())
    }

    /// Follows a stable-paging `nextPage.href`; `None` when the server no longer has that set
    /// (it expired, or the server restarted). The caller then starts its phase again from the
    /// first page: stable phases are bounded, and content hashes absorb what is read twice.
    pub(crate) async fn follow_stable(&self, href: &str) -> Result<Option<Value>, ConnectorError> {
        match self.follow(href).await {
            Ok(body) => Ok(Some(body)),
            Err(ConnectorError::Status { status, detail }) if stable_set_gone(status, &detail) => {
                tracing::debug!(
                    status,
                    detail,
                    "stable paging set gone; starting the phase again"
                );
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Follows a `nextPage.href`, refusing one that leaves the configured host.
    pub(crate) async fn follow(&self, href: &str) -> Result<Value, ConnectorError> {
        let next = Url::parse(href).map_err(|err| {
            ConnectorError::Malformed(format!("the page link {href} is not a URL: {err}"))
        })?;
        if next.origin() != self.base_url.origin() {
            return Err(ConnectorError::Malformed(format!(
                "the page link {href} points away from {}",
                self.base_url
            )));
        }
        self.get(href, &[]).await
    }

    /// The query of the first page of a listing.
    pub(crate) fn first_page(
        select: &str,
        conditions: Vec<String>,
        order_attr: Option<&str>,
        page_size: u32,
    ) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("lean", "1".to_owned()),
            ("oslc.select", select.to_owned()),
            ("oslc.pageSize", page_size.max(1).to_string()),
            ("stablePaging", "true".to_owned()),
            ("collectioncount", "1".to_owned()),
        ];
        if let Some(attr) = order_attr {
            params.push(("oslc.orderBy", format!("+{attr}")));
        }
        if !conditions.is_empty() {
            params.push(("oslc.where", conditions.join(" and ")));
        }
        params
    }

    pub(crate) fn conditions(structure: &Structure, since: Option<DateTime<Utc>>) -> Vec<String> {
        let mut conditions: Vec<String> =
            structure.condition.iter().map(|c| c.to_string()).collect();
        if let Some(since) = since {
            let attr = structure.change_attr;
            conditions.push(format!("{attr}>=\"{}\"", where_literal(since)));
        }
        conditions
    }

    /// Reads one page of a change-ordered listing of `structure` (see [`crate::listing`]).
    /// Returns the members to deliver, where the listing goes on, and the expected total when
    /// this page knows it.
    async fn read_listing(
        &self,
        structure: &Structure,
        request: &PageRequest,
    ) -> Result<(Vec<Value>, Option<Listing>, Option<u64>), ConnectorError> {
        let attr = structure.change_attr;
        let keys: String = structure
            .key_attrs
            .iter()
            .map(|key| format!(",+{key}"))
            .collect();
        let by_change = format!("+{attr}{keys}");
        let by_key = keys.trim_start_matches(',').to_owned();
        let url = self.collection_url(structure.name);
        let with_condition = |terms: Vec<String>| -> Vec<String> {
            structure
                .condition
                .iter()
                .map(|condition| condition.to_string())
                .chain(terms)
                .collect()
        };

        match Listing::resume(request.page.as_deref(), request.since)? {
            Listing::Nulls { href, nulls, since } => {
                let followed = match &href {
                    Some(href) => self.follow_stable(href).await?,
                    None => None,
                };
                let first = followed.is_none();
                let body = match followed {
                    Some(body) => body,
                    None => {
                        let query = ListingQuery {
                            select: structure.select,
                            conditions: with_condition(vec![format!("{attr}!=\"*\"")]),
                            order: &by_key,
                            page_size: request.page_size,
                            stable: true,
                            count: true,
                        };
                        self.get(&url, &query.params()).await?
                    }
                };
                let page = Collection::read(&body)?;
                let nulls = if first {
                    page.total.unwrap_or(0)
                } else {
                    nulls
                };
                // A record that gained a change time since the list was fixed now lies in the
                // keyset range read next; delivering it here would push the newest time seen
                // past records not yet read.
                let members = page
                    .members
                    .into_iter()
                    .filter(|member| member.get(attr).is_none_or(Value::is_null))
                    .collect();
                let next = match page.next {
                    Some(href) => Listing::Nulls {
                        href: Some(href),
                        nulls,
                        since,
                    },
                    None => Listing::Changed {
                        from: since,
                        count_plus: Some(nulls),
                    },
                };
                Ok((members, Some(next), first.then_some(nulls)))
            }

            Listing::Changed { from, count_plus } => {
                let term = match from {
                    Some(from) => format!("{attr}>=\"{}\"", where_literal(from)),
                    None => format!("{attr}=\"*\""),
                };
                let query = ListingQuery {
                    select: structure.select,
                    conditions: with_condition(vec![term]),
                    order: &by_change,
                    page_size: request.page_size,
                    stable: false,
                    count: count_plus.is_some(),
                };
                let page = Collection::read(&self.get(&url, &query.params()).await?)?;
                let times = page
                    .members
                    .iter()
                    .map(|member| {
                        change_time(member, attr).ok_or_else(|| {
                            ConnectorError::Malformed(format!(
                                "a {} member selected by its {attr} \
                                 has no readable {attr}: {member}",
                                structure.name
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let next = Listing::after_changed(&times, page.next.is_some());
                let total = count_plus.zip(page.total).map(|(plus, count)| plus + count);
                Ok((page.members, next, total))
            }

            Listing::Second { second, href } => {
                let followed = match &href {
                    Some(href) => self.follow_stable(href).await?,
                    None => None,
                };
                let body = match followed {
                    Some(body) => body,
                    None => {
                        let until = second + chrono::Duration::seconds(1);
                        let query = ListingQuery {
                            select: structure.select,
                            conditions: with_condition(vec![
                                format!("{attr}>=\"{}\"", where_literal(second)),
                                format!("{attr}<\"{}\"", where_literal(until)),
                            ]),
                            order: &by_change,
                            page_size: request.page_size,
                            stable: true,
                            count: false,
                        };
                        self.get(&url, &query.params()).await?
                    }
                };
                let page = Collection::read(&body)?;
                // Stable paging shows current contents: a record changed since the list was
                // fixed has left this second for a later one, where the keyset phase reads it.
                let members = page
                    .members
                    .into_iter()
                    .filter(|member| change_time(member, attr).map(second_of) == Some(second))
                    .collect();
                Ok((
                    members,
                    Some(Listing::after_second(second, page.next)),
                    None,
                ))
            }
        }
    }
}

/// Whether an error answer to a stable-paging `nextPage.href` says the set is gone (expired, or
/// dropped by a restart) rather than that the request is wrong. 404 and 410 say so by status; a
/// 400 only when its message is about the paging set, so that a query Maximo refuses (a bad
/// `oslc.where`, say) still fails the stream instead of restarting the phase for ever.
fn stable_set_gone(status: u16, detail: &str) -> bool {
    let detail = detail.to_ascii_lowercase();
    match status {
        404 | 410 => true,
        400 => detail.contains("paging") || detail.contains("expired"),
        _ => false,
    }
}

pub(crate) fn unsupported(object: ObjectType) -> ConnectorError {
    ConnectorError::Unsupported(object.slug().to_owned())
}

/// Returns the change time a member is rendered with, in UTC.
fn change_time(member: &Value, attr: &str) -> Option<DateTime<Utc>> {
    member
        .get(attr)
        .and_then(Value::as_str)
        .and_then(millrace_connector::time::parse_offset_time)
}

/// One request of a change-ordered listing.
struct ListingQuery<'a> {
    select: &'a str,
    conditions: Vec<String>,
    /// `oslc.orderBy` terms, signed (`+changedate,+siteid`); sent URL-encoded.
    order: &'a str,
    page_size: u32,
    stable: bool,
    count: bool,
}

impl ListingQuery<'_> {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("lean", "1".to_owned()),
            ("oslc.select", self.select.to_owned()),
            ("oslc.pageSize", self.page_size.max(1).to_string()),
            ("oslc.orderBy", self.order.to_owned()),
        ];
        if self.stable {
            params.push(("stablePaging", "true".to_owned()));
        }
        if self.count {
            params.push(("collectioncount", "1".to_owned()));
        }
        if !self.conditions.is_empty() {
            params.push(("oslc.where", self.conditions.join(" and ")));
        }
        params
    }
}

/// One page of a collection answer.
pub(crate) struct Collection {
    pub(crate) members: Vec<Value>,
    pub(crate) next: Option<String>,
    pub(crate) total: Option<u64>,
}

impl Collection {
    pub(crate) fn read(body: &Value) -> Result<Self, ConnectorError> {
        let members = body
            .get("member")
            .or_else(|| body.get("rdfs:member"))
            .and_then(Value::as_array)
            .ok_or_else(|| ConnectorError::Malformed("the answer has no member array".to_owned()))?
            .clone();
        let info = body
            .get("responseInfo")
            .or_else(|| body.get("oslc:responseInfo"));
        let next = info
            .and_then(|info| info.get("nextPage").or_else(|| info.get("oslc:nextPage")))
            .and_then(|next| next.get("href").or_else(|| next.get("rdf:resource")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let total = info
            .and_then(|info| {
                info.get("totalCount")
                    .or_else(|| info.get("oslc:totalCount"))
            })
            .and_then(Value::as_u64);
        Ok(Collection {
            members,
            next,
            total,
        })
    }
}

#[async_trait]
impl Source for MaximoSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        let params = [
            ("lean", "1".to_owned()),
            ("oslc.select", "siteid".to_owned()),
            ("oslc.pageSize", "1".to_owned()),
        ];
        self.get(&self.collection_url("mxapisite"), &params)
            .await
            .map(|_| ())
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let structure = structure_for(request.object).ok_or_else(|| unsupported(request.object))?;
        let context = MapContext {
            connection_id: &request.connection_id,
        };
        if request.object == ObjectType::Parts {
            return self.read_parts(request, &context).await;
        }

        let (members, next, total) = self.read_listing(structure, request).await?;
        let mut records = Vec::with_capacity(members.len());
        let mut rejected = Vec::new();
        for member in &members {
            match mapping::map(request.object, &context, member) {
                Ok(record) => records.push(record),
                Err(err) => rejected.push(RejectedRecord {
                    // Without a readable key, the member's link is what names it.
                    remote_id: mapping::key_of(member, structure.key_attrs).or_else(|| {
                        member
                            .get("href")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    }),
                    reason: err.to_string(),
                }),
            }
        }
        tracing::debug!(
            object = %request.object,
            records = records.len(),
            more = next.is_some(),
            "maximo page read"
        );
        Ok(Page {
            records,
            next_page: next.map(|listing| listing.encode()),
            ordered_by_change: true,
            total,
            listing_started_at: None,
            rejected,
        })
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let structure = structure_for(object).ok_or_else(|| unsupported(object))?;
        let body = match page {
            Some(href) => self.follow(href).await?,
            None => {
                let params = Self::first_page(
                    &structure.key_attrs.join(","),
                    Self::conditions(structure, None),
                    None,
                    HELPER_PAGE_SIZE,
                );
                self.get(&self.collection_url(structure.name), &params)
                    .await?
            }
        };
        let page = Collection::read(&body)?;
        let remote_ids = page
            .members
            .iter()
            .map(|member| {
                mapping::key_of(member, structure.key_attrs).ok_or_else(|| {
                    ConnectorError::Mapping(format!(
                        "a {} member has no key: {member}",
                        structure.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(IdPage {
            remote_ids,
            next_page: page.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn credentials(value: Value) -> Credentials {
        Credentials::new(value.as_object().unwrap().clone())
    }

    #[test]
    fn only_a_missing_paging_set_restarts_a_phase() {
        assert!(stable_set_gone(404, ""));
        assert!(stable_set_gone(410, "gone"));
        assert!(stable_set_gone(
            400,
            "BMXAA0001E - The stable paging set has expired; start again at page 1"
        ));
        assert!(!stable_set_gone(
            400,
            "BMXAA0002E - oslc.where: unexpected token"
        ));
        assert!(!stable_set_gone(500, "paging"));
    }

    #[test]
    fn exactly_one_auth_method_is_accepted() {
        let ok = credentials(json!({"base_url": "https://h/maximo", "api_key": "k"}));
        assert!(MaximoSource::open(&ok).is_ok());
        let ok =
            credentials(json!({"base_url": "https://h/maximo", "username": "u", "password": "p"}));
        assert!(MaximoSource::open(&ok).is_ok());
        for bad in [
            json!({"base_url": "https://h/maximo"}),
            json!({
                "base_url": "https://h/maximo",
                "api_key": "k",
                "username": "u",
                "password": "p",
            }),
            json!({"base_url": "https://h/maximo", "username": "u"}),
            json!({"api_key": "k"}),
            json!({"base_url": "ftp://h", "api_key": "k"}),
        ] {
            let result = MaximoSource::open(&credentials(bad.clone()));
            assert!(
                matches!(result, Err(ConnectorError::InvalidCredentials(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn where_literals_are_utc_with_offset_and_floored_to_the_second() {
        let since = Utc.with_ymd_and_hms(2024, 3, 10, 6, 59, 59).unwrap()
            + chrono::Duration::milliseconds(999);
        assert_eq!(where_literal(since), "2024-03-10T06:59:59+00:00");
    }

    #[test]
    fn error_json_becomes_code_and_message() {
        let body = json!({"Error": {
            "reasonCode": "BMXAA7901E",
            "message": "BMXAA7901E - You cannot log in",
            "statusCode": "401",
        }});
        assert_eq!(read_error(&body).unwrap(), "BMXAA7901E: You cannot log in");
        assert_eq!(read_error(&json!({"x": 1})), None);
    }
}
