//! Subscriptions for variables a server keeps no history of: one long-lived session per
//! connection settings, whose data changes are buffered until a sync has stored them.
//!
//! The sync engine pulls; a subscription pushes. A [`Monitor`] bridges the two: it holds every
//! value the server published, keyed by (source timestamp, node), and hands them to each read.
//! A read's `since` (the stream's watermark less the overlap) is the acknowledgement: values
//! already handed out and older than it have been stored, and are dropped. Values handed out
//! again are absorbed by the store's content hashing, since a reading's id is its node and
//! source timestamp. What the buffer cannot cover: changes while Millrace is not running, or
//! while the session is down, are lost (the first value after a reconnect is the current one).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use millrace_connector::ConnectorError;
use opcua::client::{DataChangeCallback, MonitoredItem};
use opcua::types::{
    DataValue, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId,
    ReadValueId, StatusCode, TimestampsToReturn,
};
use sha2::{Digest, Sha256};

use crate::client::{self, Connection, Persistence};
use crate::config::Config;

/// How often the server publishes the changes it collected.
const PUBLISHING_INTERVAL: Duration = Duration::from_millis(250);
/// Changes a monitored item queues on the server between two publishes.
const QUEUE_SIZE: u32 = 1000;
/// How long a new subscription waits for every item's first value before a read goes on.
const FIRST_VALUES_WAIT: Duration = Duration::from_secs(5);
/// A monitor no read has used for this long (longer than the longest sync interval, 7 days)
/// belongs to a connection that is gone: its session is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(8 * 24 * 3600);
/// The most values one monitor buffers; past it the oldest are dropped, with a warning.
const BUFFER_LIMIT: usize = 1_000_000;

/// One value a subscription delivered.
#[derive(Debug, Clone)]
pub struct Buffered {
    pub node: NodeId,
    pub value: DataValue,
    pub source_time: DateTime<Utc>,
}

/// Values waiting for one stream's reads, with which of them a read already handed out.
#[derive(Default)]
struct Buffer {
    values: BTreeMap<(DateTime<Utc>, String), (Buffered, bool)>,
    dropped: u64,
}

impl Buffer {
    fn insert(&mut self, value: Buffered) {
        let key = (value.source_time, value.node.to_string());
        self.values.insert(key, (value, false));
        while self.values.len() > BUFFER_LIMIT {
            self.values.pop_first();
            self.dropped += 1;
        }
    }

    /// Drops values handed out before and older than `since`, then returns the values after
    /// `after` and up to `until`, at most `limit`, marking them handed out.
    fn take(
        &mut self,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Vec<Buffered> {
        if let (Some(since), None) = (since, after) {
            self.values
                .retain(|(time, _), (_, handed_out)| !(*handed_out && *time < since));
        }
        let mut taken = Vec::new();
        for (key, (value, handed_out)) in self.values.iter_mut() {
            if after.is_some_and(|after| key <= after) {
                continue;
            }
            if key.0 > until || taken.len() >= limit {
                break;
            }
            *handed_out = true;
            taken.push(value.clone());
        }
        taken
    }
}

/// Which stream a read takes buffered values for; each acknowledges by its own watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    Readings,
    States,
}

/// A subscription on one server, shared by every read of connections with the same settings.
pub struct Monitor {
    connection: Connection,
    subscription: u32,
    readings: Arc<Mutex<Buffer>>,
    states: Arc<Mutex<Buffer>>,
    state_nodes: Arc<Mutex<HashSet<NodeId>>>,
    monitored: tokio::sync::Mutex<HashSet<NodeId>>,
    first_values: Arc<Mutex<HashSet<NodeId>>>,
    last_used: Mutex<Instant>,
}

impl Monitor {
    /// Makes sure `nodes` are monitored (`state` ones feed downtimes too), waiting briefly for
    /// the first value of each new one.
    pub async fn watch(&self, nodes: &[NodeId], state: &[NodeId]) -> Result<(), ConnectorError> {
        *self.last_used.lock().unwrap() = Instant::now();
        self.state_nodes
            .lock()
            .unwrap()
            .extend(state.iter().cloned());
        let mut monitored = self.monitored.lock().await;
        let new: Vec<NodeId> = nodes
            .iter()
            .chain(state)
            .filter(|node| !monitored.contains(*node))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let requests: Vec<MonitoredItemCreateRequest> = new
            .iter()
            .map(|node| MonitoredItemCreateRequest {
                item_to_monitor: ReadValueId::from(node.clone()),
                monitoring_mode: MonitoringMode::Reporting,
                requested_parameters: MonitoringParameters {
                    client_handle: 0,
                    // Zero asks for the fastest rate: for most servers, every change.
                    sampling_interval: 0.0,
                    filter: Default::default(),
                    queue_size: QUEUE_SIZE,
                    discard_oldest: true,
                },
            })
            .collect();
        let created = self
            .connection
            .session
            .create_monitored_items(self.subscription, TimestampsToReturn::Both, requests)
            .await
            .map_err(|err| {
                ConnectorError::Unreachable(format!(
                    "monitoring variables failed: {}",
                    err.status()
                ))
            })?;
        for (node, item) in new.iter().zip(&created) {
            if item.result.status_code.is_bad() {
                tracing::warn!(node = %node, status = %item.result.status_code, "variable cannot be monitored");
                continue;
            }
            monitored.insert(node.clone());
        }
        drop(monitored);

        let deadline = Instant::now() + FIRST_VALUES_WAIT;
        while Instant::now() < deadline {
            let all_arrived = {
                let arrived = self.first_values.lock().unwrap();
                new.iter().all(|node| arrived.contains(node))
            };
            if all_arrived {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Returns buffered values for `consumer` (see [`Buffer::take`]).
    pub fn take(
        &self,
        consumer: Consumer,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Vec<Buffered> {
        *self.last_used.lock().unwrap() = Instant::now();
        let buffer = match consumer {
            Consumer::Readings => &self.readings,
            Consumer::States => &self.states,
        };
        let mut buffer = buffer.lock().unwrap();
        if buffer.dropped > 0 {
            tracing::warn!(
                dropped = buffer.dropped,
                "subscription buffer was full: the oldest values were dropped unread"
            );
            buffer.dropped = 0;
        }
        buffer.take(since, until, after, limit)
    }
}

/// The monitors of this process, by connection settings.
pub struct Monitors {
    pki_dir: PathBuf,
    running: tokio::sync::Mutex<HashMap<String, Arc<Monitor>>>,
}

impl Monitors {
    /// Returns an empty set; sessions' client certificates live in `pki_dir`.
    pub fn new(pki_dir: PathBuf) -> Monitors {
        Monitors {
            pki_dir,
            running: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Closes every monitor, as a process that stops loses them.
    pub async fn close_all(&self) {
        self.running.lock().await.clear();
    }

    /// Returns the monitor for `config`, starting its session and subscription if needed.
    pub async fn monitor(&self, config: &Config) -> Result<Arc<Monitor>, ConnectorError> {
        let key = settings_key(config);
        let mut running = self.running.lock().await;
        // A monitor whose session ended, or came back as a new session without its
        // subscription, is replaced: the new subscription starts with each current value.
        running.retain(|_, monitor| {
            monitor.connection.is_alive()
                && monitor.last_used.lock().unwrap().elapsed() < IDLE_LIMIT
        });
        if let Some(monitor) = running.get(&key) {
            return Ok(monitor.clone());
        }
        let connection = client::connect(config, &self.pki_dir, Persistence::Forever).await?;
        let readings = Arc::new(Mutex::new(Buffer::default()));
        let states = Arc::new(Mutex::new(Buffer::default()));
        let state_nodes = Arc::new(Mutex::new(HashSet::new()));
        let first_values = Arc::new(Mutex::new(HashSet::new()));
        let callback = {
            let (readings, states) = (readings.clone(), states.clone());
            let (state_nodes, first_values) = (state_nodes.clone(), first_values.clone());
            DataChangeCallback::new(move |value: DataValue, item: &MonitoredItem| {
                let node = item.item_to_monitor().node_id.clone();
                first_values.lock().unwrap().insert(node.clone());
                let status = value.status.unwrap_or(StatusCode::Good);
                let Some(time) = value.source_timestamp.filter(|_| !status.is_bad()) else {
                    return;
                };
                let buffered = Buffered {
                    node: node.clone(),
                    value,
                    source_time: time.as_chrono(),
                };
                if state_nodes.lock().unwrap().contains(&node) {
                    states.lock().unwrap().insert(buffered.clone());
                }
                readings.lock().unwrap().insert(buffered);
            })
        };
        let subscription = connection
            .session
            .create_subscription(PUBLISHING_INTERVAL, 240, 20, 0, 0, true, callback)
            .await
            .map_err(|err| {
                ConnectorError::Unreachable(format!(
                    "the subscription could not be created: {}",
                    err.status()
                ))
            })?;
        let monitor = Arc::new(Monitor {
            connection,
            subscription,
            readings,
            states,
            state_nodes,
            monitored: tokio::sync::Mutex::new(HashSet::new()),
            first_values,
            last_used: Mutex::new(Instant::now()),
        });
        running.insert(key, monitor.clone());
        Ok(monitor)
    }
}

/// Identifies a connection's settings without keeping its password in the clear.
fn settings_key(config: &Config) -> String {
    let mut hasher = Sha256::new();
    for part in [
        config.endpoint.as_str(),
        &format!("{:?}", config.security),
        config.user.as_ref().map_or("", |(name, _)| name.as_str()),
        config
            .user
            .as_ref()
            .map_or("", |(_, password)| password.as_str()),
        config.server_thumbprint.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(seconds: i64, node: &str) -> Buffered {
        Buffered {
            node: NodeId::new(2, node),
            value: DataValue::default(),
            source_time: DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap(),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn values_stay_until_a_later_read_acknowledges_them() {
        let mut buffer = Buffer::default();
        for second in [1, 2, 3] {
            buffer.insert(value(second, "a"));
        }
        assert_eq!(buffer.take(Some(at(0)), at(2), None, 10).len(), 2);
        // A read whose `since` is older keeps everything: the first read may not be stored.
        assert_eq!(buffer.take(Some(at(1)), at(10), None, 10).len(), 3);
        // Once `since` passes them, values handed out are dropped; newer ones stay.
        assert_eq!(buffer.take(Some(at(3)), at(10), None, 10).len(), 1);
    }

    #[test]
    fn values_never_handed_out_are_kept_even_when_older_than_since() {
        let mut buffer = Buffer::default();
        buffer.insert(value(5, "a"));
        let late = value(1, "b");
        assert_eq!(buffer.take(Some(at(0)), at(10), None, 10).len(), 1);
        buffer.insert(late);
        let taken = buffer.take(Some(at(6)), at(10), None, 10);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].node, NodeId::new(2, "b"));
    }

    #[test]
    fn pages_continue_after_the_last_key() {
        let mut buffer = Buffer::default();
        for second in 1..=5 {
            buffer.insert(value(second, "a"));
        }
        let first = buffer.take(None, at(10), None, 2);
        let last = (first[1].source_time, first[1].node.to_string());
        let second = buffer.take(None, at(10), Some(&last), 2);
        assert_eq!(second[0].source_time, at(3));
    }
}
