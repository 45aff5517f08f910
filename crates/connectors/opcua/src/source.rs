//! The sync engine's view of one OPC UA connection: pages of assets and meters from a browse,
//! meter readings from history and subscriptions, downtimes from machine state variables.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use millrace_connector::{ConnectorError, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use opcua::types::{AttributeId, DataValue, NodeClass, NodeId, ObjectTypeId, Variant};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::client::{self, Connection, Found, Persistence};
use crate::config::{Config, ReadingSource};
use crate::mapping;
use crate::monitor::{Consumer, Monitors};

/// The HistoryRead bit of a variable's AccessLevel attribute.
const HISTORY_READ: u8 = 0x04;
/// How far back a read looks for the stop that a downtime open at its start began with.
const STOP_SEARCH: ChronoDuration = ChronoDuration::days(366);
/// History pages read backwards while looking for that stop.
const STOP_SEARCH_PAGES: usize = 20;

/// One connection's client to an OPC UA server.
pub struct OpcUaSource {
    config: Arc<Config>,
    monitors: Arc<Monitors>,
    pki_dir: std::path::PathBuf,
    connection: OnceCell<Connection>,
    space: OnceCell<Space>,
}

/// What the browse found, in the order pages walk it.
struct Space {
    assets: Vec<(Found, Option<NodeId>)>,
    meters: Vec<Variable>,
}

/// A variable below the browse root.
#[derive(Clone)]
struct Variable {
    found: Found,
    /// The asset it belongs to: its parent object when that is an asset.
    asset: Option<NodeId>,
    historized: bool,
    data_type: Option<NodeId>,
    is_state: bool,
}

/// Where a listing of readings or downtimes stands, as its page token.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    /// The server's clock when the listing began: nothing after it is read.
    until: DateTime<Utc>,
    #[serde(flatten)]
    at: Position,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Position {
    /// Reading `node`'s history after `after` (from `since` when `None`).
    History {
        node: String,
        after: Option<DateTime<Utc>>,
    },
    /// Taking subscription values after `after`.
    Live {
        after: Option<(DateTime<Utc>, String)>,
    },
}

impl OpcUaSource {
    /// Builds a source; no request is sent until the engine asks for something.
    pub fn new(config: Config, monitors: Arc<Monitors>, pki_dir: std::path::PathBuf) -> Self {
        OpcUaSource {
            config: Arc::new(config),
            monitors,
            pki_dir,
            connection: OnceCell::new(),
            space: OnceCell::new(),
        }
    }

    async fn connection(&self) -> Result<&Connection, ConnectorError> {
        self.connection
            .get_or_try_init(|| client::connect(&self.config, &self.pki_dir, Persistence::Run))
            .await
    }

    async fn space(&self) -> Result<&Space, ConnectorError> {
        self.space.get_or_try_init(|| self.browse()).await
    }

    async fn browse(&self) -> Result<Space, ConnectorError> {
        let connection = self.connection().await?;
        let found = connection.browse(&self.config.browse_root).await?;
        let is_asset = |item: &Found| {
            item.class == NodeClass::Object
                && if self.config.asset_types.is_empty() {
                    item.type_definition != ObjectTypeId::FolderType
                } else {
                    self.config.asset_types.contains(&item.type_definition)
                }
        };
        let assets_by_node: HashMap<NodeId, &Found> = found
            .iter()
            .filter(|item| is_asset(item))
            .map(|item| (item.node.clone(), item))
            .collect();
        // An asset's parent is the nearest asset above it: folders between are skipped.
        let parents: HashMap<NodeId, Option<NodeId>> = found
            .iter()
            .map(|item| (item.node.clone(), item.parent.clone()))
            .collect();
        let nearest_asset = |mut node: Option<NodeId>| {
            while let Some(current) = node {
                if assets_by_node.contains_key(&current) {
                    return Some(current);
                }
                node = parents.get(&current).cloned().flatten();
            }
            None
        };
        let assets: Vec<(Found, Option<NodeId>)> = found
            .iter()
            .filter(|item| is_asset(item))
            .map(|item| (item.clone(), nearest_asset(item.parent.clone())))
            .collect();

        let variables: Vec<&Found> = found
            .iter()
            .filter(|item| item.class == NodeClass::Variable)
            .filter(|item| {
                let is_state = self.config.state_names.contains(&item.browse_name);
                is_state
                    || self.config.meter_names.is_empty()
                    || self.config.meter_names.contains(&item.browse_name)
            })
            .collect();
        let attributes: Vec<(NodeId, AttributeId)> = variables
            .iter()
            .flat_map(|item| {
                [
                    (item.node.clone(), AttributeId::AccessLevel),
                    (item.node.clone(), AttributeId::DataType),
                ]
            })
            .collect();
        let values = connection.read(&attributes).await?;
        let meters = variables
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let access = values.get(2 * index).and_then(|value| value.value.as_ref());
                let data_type = values.get(2 * index + 1).and_then(|value| value.value.as_ref());
                Variable {
                    found: (*item).clone(),
                    asset: nearest_asset(item.parent.clone()),
                    historized: matches!(access, Some(Variant::Byte(bits)) if bits & HISTORY_READ != 0),
                    data_type: match data_type {
                        Some(Variant::NodeId(kind)) => Some((**kind).clone()),
                        _ => None,
                    },
                    is_state: self.config.state_names.contains(&item.browse_name),
                }
            })
            .collect();
        Ok(Space { assets, meters })
    }

    /// Whether a variable's values are read from its history (else from a subscription).
    fn read_by_history(&self, variable: &Variable) -> Option<bool> {
        match (self.config.readings, variable.historized) {
            (ReadingSource::Subscription, _) | (ReadingSource::Auto, false) => Some(false),
            (_, true) => Some(true),
            (ReadingSource::History, false) => None,
        }
    }

    async fn master_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let space = self.space().await?;
        let offset: usize = match &request.page {
            Some(page) => page
                .parse()
                .map_err(|_| ConnectorError::Malformed(format!("bad page token `{page}`")))?,
            None => 0,
        };
        let size = request.page_size.max(1) as usize;
        let connection_id = &request.connection_id;
        let (records, total) = match request.object {
            ObjectType::Assets => (
                space
                    .assets
                    .iter()
                    .skip(offset)
                    .take(size)
                    .map(|(found, parent)| mapping::asset(connection_id, found, parent.as_ref()))
                    .collect::<Result<Vec<_>, _>>()?,
                space.assets.len(),
            ),
            _ => (
                space
                    .meters
                    .iter()
                    .skip(offset)
                    .take(size)
                    .map(|variable| {
                        mapping::meter(
                            connection_id,
                            &variable.found,
                            variable.asset.as_ref(),
                            variable.historized,
                            variable.data_type.as_ref(),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                space.meters.len(),
            ),
        };
        let next = offset + records.len();
        Ok(Page {
            records,
            next_page: (next < total).then(|| next.to_string()),
            total: Some(total as u64),
            ..Page::default()
        })
    }

    async fn readings_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let space = self.space().await?;
        let connection = self.connection().await?;
        let historized: Vec<&Variable> = space
            .meters
            .iter()
            .filter(|variable| self.read_by_history(variable) == Some(true))
            .collect();
        let live: Vec<&Variable> = space
            .meters
            .iter()
            .filter(|variable| self.read_by_history(variable) == Some(false))
            .collect();
        let first_history = |after: Option<&str>| {
            historized
                .iter()
                .find(|variable| {
                    after.is_none_or(|after| variable.found.node.to_string().as_str() > after)
                })
                .map(|variable| Position::History {
                    node: variable.found.node.to_string(),
                    after: None,
                })
        };
        let after_history = || (!live.is_empty()).then_some(Position::Live { after: None });
        let mut token = match &request.page {
            Some(page) => serde_json::from_str::<Token>(page)
                .map_err(|err| ConnectorError::Malformed(format!("bad page token: {err}")))?,
            None => Token {
                until: connection.server_time().await?,
                at: match first_history(None).or_else(after_history) {
                    Some(position) => position,
                    None => return Ok(Page::default()),
                },
            },
        };
        let assets: HashMap<String, Option<NodeId>> = space
            .meters
            .iter()
            .map(|variable| (variable.found.node.to_string(), variable.asset.clone()))
            .collect();
        let limit = request.page_size.max(1);
        let listing_started_at = Some(token.until);

        // Pages with no records are skipped here rather than handed to the engine.
        loop {
            let mut records = Vec::new();
            let next = match &token.at {
                Position::History { node, after } => {
                    let node_id = client::parse_node(node)?;
                    let asset = assets.get(node).cloned().flatten();
                    let start = after.or(request.since).unwrap_or(token.until - STOP_SEARCH);
                    let values = connection
                        .history(&node_id, start, token.until, limit)
                        .await?;
                    let full = values.len() as u32 >= limit;
                    let mut newest = *after;
                    for value in &values {
                        let Some(time) = value.source_timestamp.map(|time| time.as_chrono()) else {
                            continue;
                        };
                        if after.is_some_and(|after| time <= after) {
                            continue;
                        }
                        newest = newest.max(Some(time));
                        if let Some(record) = mapping::reading(
                            &request.connection_id,
                            &node_id,
                            asset.as_ref(),
                            value,
                        )? {
                            records.push(record);
                        }
                    }
                    if full && newest > *after {
                        Some(Position::History {
                            node: node.clone(),
                            after: newest,
                        })
                    } else {
                        first_history(Some(node)).or_else(after_history)
                    }
                }
                Position::Live { after } => {
                    let monitor = self.monitors.monitor(&self.config).await?;
                    let nodes: Vec<NodeId> = live
                        .iter()
                        .map(|variable| variable.found.node.clone())
                        .collect();
                    monitor.watch(&nodes, &[]).await?;
                    let taken = monitor.take(
                        Consumer::Readings,
                        request.since,
                        token.until,
                        after.as_ref(),
                        limit as usize,
                    );
                    let full = taken.len() >= limit as usize;
                    let last = taken
                        .last()
                        .map(|value| (value.source_time, value.node.to_string()));
                    for value in &taken {
                        let asset = assets.get(&value.node.to_string()).cloned().flatten();
                        if let Some(record) = mapping::reading(
                            &request.connection_id,
                            &value.node,
                            asset.as_ref(),
                            &value.value,
                        )? {
                            records.push(record);
                        }
                    }
                    match (full, last) {
                        (true, Some(last)) => Some(Position::Live { after: Some(last) }),
                        _ => None,
                    }
                }
            };
            let next_page = match next {
                Some(at) => {
                    token.at = at;
                    Some(serde_json::to_string(&token).unwrap_or_default())
                }
                None => None,
            };
            if !records.is_empty() || next_page.is_none() {
                return Ok(Page {
                    records,
                    next_page,
                    // Node after node, so not in change order overall.
                    ordered_by_change: false,
                    listing_started_at,
                    ..Page::default()
                });
            }
        }
    }

    async fn downtimes_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let space = self.space().await?;
        let connection = self.connection().await?;
        let until = connection.server_time().await?;
        let since = request.since.unwrap_or(until - STOP_SEARCH);
        let states: Vec<&Variable> = space
            .meters
            .iter()
            .filter(|variable| variable.is_state)
            .collect();
        let mut records = Vec::new();
        let live: Vec<&Variable> = states
            .iter()
            .copied()
            .filter(|variable| self.read_by_history(variable) == Some(false))
            .collect();
        let mut live_values: HashMap<NodeId, Vec<(DateTime<Utc>, String)>> = HashMap::new();
        if !live.is_empty() {
            let monitor = self.monitors.monitor(&self.config).await?;
            let nodes: Vec<NodeId> = live
                .iter()
                .map(|variable| variable.found.node.clone())
                .collect();
            monitor.watch(&[], &nodes).await?;
            for value in monitor.take(Consumer::States, Some(since), until, None, usize::MAX) {
                if let Some(variant) = &value.value.value {
                    live_values
                        .entry(value.node.clone())
                        .or_default()
                        .push((value.source_time, mapping::state_text(variant)));
                }
            }
        }
        for variable in states {
            let node = &variable.found.node;
            let asset = variable.asset.clone().unwrap_or_else(|| node.clone());
            let (open, timeline) = match self.read_by_history(variable) {
                Some(true) => {
                    let open = self.stop_open_at(connection, node, since).await?;
                    let values = self
                        .all_history(connection, node, since, until, request.page_size)
                        .await?;
                    (open, values)
                }
                Some(false) => (None, live_values.remove(node).unwrap_or_default()),
                None => continue,
            };
            for (started, ended, state) in self.stops(open, timeline) {
                records.push(mapping::downtime(
                    &request.connection_id,
                    &asset,
                    node,
                    started,
                    ended,
                    &state,
                )?);
            }
        }
        Ok(Page {
            records,
            listing_started_at: Some(until),
            ..Page::default()
        })
    }

    /// Turns a state timeline into stops: (start, end or `None` while it lasts, stop state).
    fn stops(
        &self,
        mut open: Option<(DateTime<Utc>, String)>,
        timeline: Vec<(DateTime<Utc>, String)>,
    ) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>, String)> {
        let mut stops = Vec::new();
        for (time, state) in timeline {
            let running = self.config.is_running(&state);
            match (&open, running) {
                (None, false) => open = Some((time, state)),
                (Some((started, stop_state)), true) => {
                    stops.push((*started, Some(time), stop_state.clone()));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some((started, state)) = open {
            stops.push((started, None, state));
        }
        stops
    }

    /// Returns when the stop that lasts at `since` began, by reading history backwards.
    async fn stop_open_at(
        &self,
        connection: &Connection,
        node: &NodeId,
        since: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, String)>, ConnectorError> {
        let floor = since - STOP_SEARCH;
        let mut before = since;
        let mut earliest_stop: Option<(DateTime<Utc>, String)> = None;
        for _ in 0..STOP_SEARCH_PAGES {
            // A start after the end reads newest first.
            let values = connection.history(node, before, floor, 100).await?;
            let mut older = None;
            for (time, state) in timeline(&values) {
                if time >= since || time > before {
                    continue;
                }
                if self.config.is_running(&state) {
                    return Ok(earliest_stop);
                }
                earliest_stop = Some((time, state));
                older = Some(time);
            }
            match older {
                Some(time) if values.len() >= 100 => before = time,
                _ => return Ok(earliest_stop),
            }
        }
        Ok(earliest_stop)
    }

    async fn all_history(
        &self,
        connection: &Connection,
        node: &NodeId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        page_size: u32,
    ) -> Result<Vec<(DateTime<Utc>, String)>, ConnectorError> {
        let limit = page_size.max(1);
        let mut all: Vec<(DateTime<Utc>, String)> = Vec::new();
        let mut start = since;
        loop {
            let values = connection.history(node, start, until, limit).await?;
            let before = all.len();
            for (time, state) in timeline(&values) {
                if all.last().is_some_and(|(last, _)| time <= *last) {
                    continue;
                }
                all.push((time, state));
            }
            if (values.len() as u32) < limit || all.len() == before {
                return Ok(all);
            }
            start = all.last().map(|(time, _)| *time).unwrap_or(until);
        }
    }
}

/// The (source time, state text) pairs of history values that have both.
fn timeline(values: &[DataValue]) -> Vec<(DateTime<Utc>, String)> {
    values
        .iter()
        .filter(|value| !value.status.is_some_and(|status| status.is_bad()))
        .filter_map(|value| {
            let time = value.source_timestamp?.as_chrono();
            let variant = value.value.as_ref()?;
            Some((time, mapping::state_text(variant)))
        })
        .collect()
}

#[async_trait]
impl Source for OpcUaSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        // A session, then the browse root: wrong credentials and a missing root fail here.
        let connection = self.connection().await?;
        connection
            .browse(&self.config.browse_root)
            .await
            .map(|_| ())
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        match request.object {
            ObjectType::Assets | ObjectType::Meters => self.master_page(request).await,
            ObjectType::MeterReadings => self.readings_page(request).await,
            ObjectType::AssetDowntimes => self.downtimes_page(request).await,
            other => Err(ConnectorError::Unsupported(other.to_string())),
        }
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        _page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let space = self.space().await?;
        let remote_ids = match object {
            ObjectType::Assets => space
                .assets
                .iter()
                .map(|(found, _)| found.node.to_string())
                .collect(),
            ObjectType::Meters => space
                .meters
                .iter()
                .map(|variable| variable.found.node.to_string())
                .collect(),
            other => return Err(ConnectorError::Unsupported(other.to_string())),
        };
        Ok(IdPage {
            remote_ids,
            next_page: None,
        })
    }
}
