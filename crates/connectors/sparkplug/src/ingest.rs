//! What a Sparkplug B message means: births define assets and meters (with their aliases),
//! data messages give meter readings, deaths open downtimes that the next birth ends, and the
//! sequence numbers tell when a rebirth must be asked for.
//!
//! [`Ingest::handle`] is pure: it turns one message and the edge node's state into a journal
//! [`Batch`] (records, rejections, the node's new state) and perhaps a rebirth request. The
//! subscriber commits the batch, then calls [`Ingest::commit`], so the state in memory never
//! runs ahead of the journal.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::journal::{Batch, Rejection};
use crate::mapping;
use crate::proto::{self, MetricValue, Payload};
use crate::topic::{MessageType, Topic};

/// A metric a birth declared: its name, data type and owner (the node, or one device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDef {
    pub name: String,
    pub datatype: u32,
    pub device: Option<String>,
}

/// What the journal remembers of one edge node between messages and across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// Whether the node's last lifecycle message was a birth (and not a death).
    pub online: bool,
    /// The `bdSeq` of the node's current birth; its `NDEATH` must carry the same.
    pub bd_seq: Option<u64>,
    /// The `seq` of the node's last message.
    pub last_seq: Option<u64>,
    /// Metrics by alias, for the node and its devices alike (aliases are unique per node).
    pub aliases: BTreeMap<u64, MetricDef>,
    /// Metrics by owner and name, for data messages that name their metrics.
    pub metrics: BTreeMap<String, MetricDef>,
    /// Devices by id, with whether each is online.
    pub devices: BTreeMap<String, bool>,
    /// The downtime each offline asset of this node has open, by asset remote id.
    pub open_downtimes: BTreeMap<String, OpenDowntime>,
}

/// A downtime that the asset's next birth ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenDowntime {
    pub started_at: DateTime<Utc>,
    pub reason: String,
}

/// The result of one message.
#[derive(Debug, Default)]
pub struct Outcome {
    pub batch: Batch,
    /// The `NCMD` topic of a node that must be asked to rebirth, and why.
    pub rebirth: Option<(String, String)>,
}

/// The subscriber's view of every edge node, as the journal last committed it.
#[derive(Debug, Default)]
pub struct Ingest {
    nodes: HashMap<String, NodeState>,
}

impl Ingest {
    /// Starts from the node states saved in the journal.
    pub fn new(nodes: HashMap<String, NodeState>) -> Self {
        Ingest { nodes }
    }

    /// Returns the `NCMD` topics of every node that is online, to ask all for a rebirth after
    /// the broker lost the session (and with it what it had queued).
    pub fn online_node_commands(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, state)| state.online)
            .filter_map(|(node, _)| {
                let (group, edge_node) = node.split_once('/')?;
                Some(format!("spBv1.0/{group}/NCMD/{edge_node}"))
            })
            .collect()
    }

    /// Keeps the node state of a batch that the journal committed.
    pub fn commit(&mut self, batch: &mut Batch) {
        if let Some((node, state)) = batch.node.take() {
            self.nodes.insert(node, state);
        }
    }

    /// Reads one message. Never fails: what cannot be read becomes a rejection in the batch.
    pub fn handle(&self, topic: &Topic, payload: &[u8], received_at: DateTime<Utc>) -> Outcome {
        let mut outcome = Outcome::default();
        let payload = match proto::decode(payload) {
            Ok(payload) => payload,
            Err(reason) => {
                outcome.batch.rejections.push(Rejection {
                    subject: topic.to_string(),
                    reason,
                });
                return outcome;
            }
        };
        let node_key = format!("{}/{}", topic.group, topic.edge_node);
        let mut state = self.nodes.get(&node_key).cloned().unwrap_or_default();
        let mut message = Message {
            topic,
            payload: &payload,
            sent_at: payload.timestamp.and_then(millis).unwrap_or(received_at),
            outcome: &mut outcome,
        };

        match topic.message_type {
            MessageType::NBirth => message.node_birth(&mut state),
            MessageType::NDeath => message.node_death(&mut state),
            MessageType::DBirth | MessageType::NData | MessageType::DData | MessageType::DDeath => {
                if message.sequence_ok(&mut state) {
                    match topic.message_type {
                        MessageType::DBirth => message.device_birth(&mut state),
                        MessageType::DDeath => message.device_death(&mut state),
                        _ => message.data(&state),
                    }
                }
            }
            // Commands are for edge nodes; a host's own or another host's are not plant data.
            MessageType::NCmd | MessageType::DCmd => return outcome,
        }
        outcome.batch.node = Some((node_key, state));
        outcome
    }
}

/// One message being read, with what it produces.
struct Message<'a> {
    topic: &'a Topic,
    payload: &'a Payload,
    /// The payload's timestamp, or when it arrived when it has none.
    sent_at: DateTime<Utc>,
    outcome: &'a mut Outcome,
}

impl Message<'_> {
    fn reject(&mut self, subject: String, reason: String) {
        self.outcome
            .batch
            .rejections
            .push(Rejection { subject, reason });
    }

    fn request_rebirth(&mut self, why: String) {
        if self.outcome.rebirth.is_none() {
            self.outcome.rebirth = Some((self.topic.node_command(), why));
        }
    }

    /// Checks the `seq` of a message that follows a birth. Returns whether it may be read.
    fn sequence_ok(&mut self, state: &mut NodeState) -> bool {
        if !state.online {
            self.reject(
                self.topic.to_string(),
                "no birth certificate of this edge node was seen: a rebirth was requested"
                    .to_owned(),
            );
            self.request_rebirth("a message came before any birth".to_owned());
            return false;
        }
        let Some(seq) = self.payload.seq else {
            self.reject(self.topic.to_string(), "the payload has no seq".to_owned());
            return false;
        };
        match state.last_seq {
            // A redelivery (QoS 1 after a reconnect): read again, absorbed by the journal.
            Some(last) if last == seq => {}
            Some(last) if (last + 1) % 256 != seq => {
                self.request_rebirth(format!("seq jumped from {last} to {seq}"));
                state.last_seq = Some(seq);
            }
            _ => state.last_seq = Some(seq),
        }
        true
    }

    fn node_birth(&mut self, state: &mut NodeState) {
        let bd_seq = self
            .payload
            .metrics
            .iter()
            .find(|metric| metric.name.as_deref() == Some(proto::BD_SEQ_METRIC))
            .and_then(|metric| match metric.value_as(proto::datatype::INT64) {
                Ok(MetricValue::Number(n)) => Some(n as u64),
                _ => None,
            });
        if bd_seq.is_none() {
            self.reject(
                self.topic.to_string(),
                "the NBIRTH carries no bdSeq metric; its NDEATH cannot be matched".to_owned(),
            );
        }
        // A new birth forgets the node's and its devices' metrics: the DBIRTHs follow.
        let devices = std::mem::take(&mut state.devices);
        state.online = true;
        state.bd_seq = bd_seq;
        state.last_seq = self.payload.seq;
        state.aliases.clear();
        state.metrics.clear();
        for device in devices.into_keys() {
            // A device stays known, and offline until its DBIRTH follows this birth.
            state.devices.insert(device, false);
        }

        let asset_id = mapping::node_asset_id(self.topic);
        self.end_downtime(state, &asset_id);
        let record = mapping::asset(self.topic, None, true, self.sent_at, bd_seq);
        self.outcome.batch.records.push(record);
        self.birth_metrics(state, None);
    }

    fn device_birth(&mut self, state: &mut NodeState) {
        let device = self.topic.device.clone().unwrap_or_default();
        state.devices.insert(device.clone(), true);
        state
            .aliases
            .retain(|_, def| def.device.as_ref() != Some(&device));
        state
            .metrics
            .retain(|_, def| def.device.as_ref() != Some(&device));

        let asset_id = mapping::device_asset_id(self.topic, &device);
        self.end_downtime(state, &asset_id);
        let record = mapping::asset(self.topic, Some(&device), true, self.sent_at, None);
        self.outcome.batch.records.push(record);
        self.birth_metrics(state, Some(device));
    }

    /// Declares a birth's metrics (aliases, types) as meters, and keeps their values as the
    /// first readings.
    fn birth_metrics(&mut self, state: &mut NodeState, device: Option<String>) {
        for metric in &self.payload.metrics {
            let Some(name) = metric.name.clone() else {
                self.reject(
                    self.topic.to_string(),
                    "a birth metric has no name".to_owned(),
                );
                continue;
            };
            if name == proto::BD_SEQ_METRIC || name.starts_with("Node Control/") {
                continue;
            }
            let Some(datatype) = metric.datatype else {
                self.reject(
                    format!("{} {name}", self.topic),
                    "a birth metric has no datatype".to_owned(),
                );
                continue;
            };
            let def = MetricDef {
                name: name.clone(),
                datatype,
                device: device.clone(),
            };
            if let Some(alias) = metric.alias {
                state.aliases.insert(alias, def.clone());
            }
            state
                .metrics
                .insert(metric_key(device.as_deref(), &name), def.clone());
            let meter = mapping::meter(self.topic, &def, metric.alias);
            self.outcome.batch.records.push(meter);
            self.reading(&def, metric);
        }
    }

    fn data(&mut self, state: &NodeState) {
        let device = self.topic.device.as_deref();
        for metric in &self.payload.metrics {
            let def = match (&metric.name, metric.alias) {
                (Some(name), _) => state.metrics.get(&metric_key(device, name)),
                (None, Some(alias)) => state
                    .aliases
                    .get(&alias)
                    .filter(|def| def.device.as_deref() == device),
                (None, None) => None,
            };
            let Some(def) = def.cloned() else {
                let which = match (&metric.name, metric.alias) {
                    (Some(name), _) => format!("metric `{name}`"),
                    (None, Some(alias)) => format!("alias {alias}"),
                    (None, None) => "a metric with neither name nor alias".to_owned(),
                };
                self.reject(
                    self.topic.to_string(),
                    format!("{which} was not declared by the last birth: a rebirth was requested"),
                );
                self.request_rebirth(format!("{which} is unknown"));
                continue;
            };
            self.reading(&def, metric);
        }
    }

    fn reading(&mut self, def: &MetricDef, metric: &proto::Metric) {
        let datatype = metric.datatype.unwrap_or(def.datatype);
        let subject = format!("{} {}", self.topic, def.name);
        let value = match metric.value_as(datatype) {
            Ok(MetricValue::Unsupported(kind)) => {
                tracing::debug!(metric = %subject, kind, "metric type is not read");
                return;
            }
            Ok(value) => value,
            Err(reason) => {
                self.reject(subject, reason);
                return;
            }
        };
        let Some(read_at) = metric.timestamp.or(self.payload.timestamp).and_then(millis) else {
            self.reject(
                subject,
                "the metric and its payload have no timestamp".to_owned(),
            );
            return;
        };
        let record = mapping::reading(self.topic, def, metric, &value, read_at, self.payload.seq);
        self.outcome.batch.records.push(record);
    }

    fn node_death(&mut self, state: &mut NodeState) {
        let bd_seq = self
            .payload
            .metrics
            .iter()
            .find(|metric| metric.name.as_deref() == Some(proto::BD_SEQ_METRIC))
            .and_then(|metric| match metric.value_as(proto::datatype::INT64) {
                Ok(MetricValue::Number(n)) => Some(n as u64),
                _ => None,
            });
        if !state.online {
            return;
        }
        if bd_seq != state.bd_seq {
            // The will of an older session, delivered late: the node's current session lives.
            let why = format!(
                "an NDEATH with bdSeq {} does not match the birth's {}",
                show(bd_seq),
                show(state.bd_seq)
            );
            self.reject(self.topic.to_string(), format!("{why}; it was ignored"));
            self.request_rebirth(why);
            return;
        }
        state.online = false;
        state.last_seq = None;
        let node_asset = mapping::node_asset_id(self.topic);
        self.start_downtime(state, &node_asset, "edge node went offline (NDEATH)");
        self.outcome.batch.records.push(mapping::asset(
            self.topic,
            None,
            false,
            self.sent_at,
            state.bd_seq,
        ));
        let online_devices: Vec<String> = state
            .devices
            .iter()
            .filter(|(_, online)| **online)
            .map(|(device, _)| device.clone())
            .collect();
        for device in online_devices {
            state.devices.insert(device.clone(), false);
            let asset_id = mapping::device_asset_id(self.topic, &device);
            self.start_downtime(
                state,
                &asset_id,
                "device offline: its edge node died (NDEATH)",
            );
            let record = mapping::asset(self.topic, Some(&device), false, self.sent_at, None);
            self.outcome.batch.records.push(record);
        }
    }

    fn device_death(&mut self, state: &mut NodeState) {
        let device = self.topic.device.clone().unwrap_or_default();
        if state.devices.get(&device) != Some(&true) {
            return;
        }
        state.devices.insert(device.clone(), false);
        let asset_id = mapping::device_asset_id(self.topic, &device);
        self.start_downtime(state, &asset_id, "device went offline (DDEATH)");
        let record = mapping::asset(self.topic, Some(&device), false, self.sent_at, None);
        self.outcome.batch.records.push(record);
    }

    fn start_downtime(&mut self, state: &mut NodeState, asset_id: &str, reason: &str) {
        if state.open_downtimes.contains_key(asset_id) {
            return;
        }
        let record = mapping::downtime(asset_id, self.sent_at, None, reason, self.topic);
        let open = OpenDowntime {
            started_at: self.sent_at,
            reason: reason.to_owned(),
        };
        state.open_downtimes.insert(asset_id.to_owned(), open);
        self.outcome.batch.records.push(record);
    }

    fn end_downtime(&mut self, state: &mut NodeState, asset_id: &str) {
        let Some(open) = state.open_downtimes.remove(asset_id) else {
            return;
        };
        let ended_at = Some(self.sent_at.max(open.started_at));
        let record = mapping::downtime(
            asset_id,
            open.started_at,
            ended_at,
            &open.reason,
            self.topic,
        );
        self.outcome.batch.records.push(record);
    }
}

fn metric_key(device: Option<&str>, name: &str) -> String {
    format!("{}\u{1f}{name}", device.unwrap_or(""))
}

fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "none".to_owned(), |value| value.to_string())
}

/// Reads milliseconds since the Unix epoch.
pub fn millis(ms: u64) -> Option<DateTime<Utc>> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{datatype, Metric, Value};

    fn topic(text: &str) -> Topic {
        Topic::parse(text).unwrap().unwrap()
    }

    fn metric(name: Option<&str>, alias: u64, value: f64) -> Metric {
        Metric {
            name: name.map(str::to_owned),
            alias: Some(alias),
            timestamp: Some(1_000),
            datatype: name.map(|_| datatype::DOUBLE),
            value: Some(Value::Double(value)),
            ..Metric::default()
        }
    }

    fn bd_seq(value: u64) -> Metric {
        Metric {
            name: Some(proto::BD_SEQ_METRIC.to_owned()),
            datatype: Some(datatype::INT64),
            value: Some(Value::Long(value)),
            ..Metric::default()
        }
    }

    fn payload(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
        proto::encode(&Payload {
            timestamp: Some(2_000),
            seq,
            metrics,
            ..Payload::default()
        })
    }

    /// Feeds one message and keeps its state, as the subscriber does after a commit.
    fn feed(ingest: &mut Ingest, topic_text: &str, bytes: &[u8]) -> Outcome {
        let mut outcome = ingest.handle(&topic(topic_text), bytes, Utc::now());
        ingest.commit(&mut outcome.batch);
        outcome
    }

    fn ids(outcome: &Outcome, object: &str) -> Vec<String> {
        let records = outcome.batch.records.iter();
        records
            .filter(|r| r.object == object)
            .map(|r| r.remote_id.clone())
            .collect()
    }

    #[test]
    fn births_define_aliases_data_uses_them_and_gaps_ask_for_a_rebirth() {
        let mut ingest = Ingest::default();
        let birth = payload(Some(0), vec![metric(Some("Speed"), 1, 5.0), bd_seq(3)]);
        let born = feed(&mut ingest, "spBv1.0/g/NBIRTH/n", &birth);
        assert_eq!(ids(&born, "assets"), ["g/n"]);
        assert_eq!(ids(&born, "meters"), ["g/n#Speed"]);
        assert_eq!(ids(&born, "meter-readings"), ["g/n#Speed@1000"]);

        let data = payload(Some(1), vec![metric(None, 1, 6.0)]);
        let read = feed(&mut ingest, "spBv1.0/g/NDATA/n", &data);
        assert!(read.rebirth.is_none() && read.batch.rejections.is_empty());
        let reading = &read.batch.records[0];
        assert_eq!(reading.body.fields["value"], 6.0);

        // The same message again (a redelivery) is no gap.
        assert!(feed(&mut ingest, "spBv1.0/g/NDATA/n", &data)
            .rebirth
            .is_none());

        let gap = payload(Some(3), vec![metric(None, 1, 7.0)]);
        let after_gap = feed(&mut ingest, "spBv1.0/g/NDATA/n", &gap);
        assert_eq!(after_gap.rebirth.unwrap().0, "spBv1.0/g/NCMD/n");
        assert_eq!(
            after_gap.batch.records.len(),
            1,
            "the data after a gap is kept"
        );

        let unknown = payload(Some(4), vec![metric(None, 9, 1.0)]);
        let rejected = feed(&mut ingest, "spBv1.0/g/NDATA/n", &unknown);
        assert!(rejected.batch.rejections[0].reason.contains("alias 9"));
        assert!(rejected.rebirth.is_some());
    }

    #[test]
    fn deaths_open_downtimes_only_for_the_current_session_and_births_end_them() {
        let mut ingest = Ingest::default();
        let birth = payload(Some(0), vec![metric(Some("Speed"), 1, 5.0), bd_seq(3)]);
        feed(&mut ingest, "spBv1.0/g/NBIRTH/n", &birth);
        let device_birth = payload(Some(1), vec![metric(Some("Temp"), 2, 20.0)]);
        feed(&mut ingest, "spBv1.0/g/DBIRTH/n/d", &device_birth);

        // A late will of an older session is ignored and asks for a rebirth.
        let stale = feed(
            &mut ingest,
            "spBv1.0/g/NDEATH/n",
            &payload(None, vec![bd_seq(2)]),
        );
        assert!(ids(&stale, "asset-downtimes").is_empty());
        assert!(stale.rebirth.is_some());

        let death = feed(
            &mut ingest,
            "spBv1.0/g/NDEATH/n",
            &payload(None, vec![bd_seq(3)]),
        );
        let mut downtimes = ids(&death, "asset-downtimes");
        downtimes.sort();
        assert_eq!(downtimes, ["g/n/d@2000", "g/n@2000"]);

        // Data from a dead node cannot be read.
        let orphan = feed(&mut ingest, "spBv1.0/g/NDATA/n", &payload(Some(2), vec![]));
        assert!(orphan.batch.rejections[0].reason.contains("no birth"));

        let reborn = feed(&mut ingest, "spBv1.0/g/NBIRTH/n", &birth);
        let ended: Vec<_> = reborn
            .batch
            .records
            .iter()
            .filter(|r| r.object == "asset-downtimes")
            .collect();
        assert_eq!(
            ended.len(),
            1,
            "the node's downtime ends; the device's waits for its DBIRTH"
        );
        assert_eq!(ended[0].remote_id, "g/n@2000");
        assert!(!ended[0].body.fields["ended_at"].is_null());
        let device_back = feed(&mut ingest, "spBv1.0/g/DBIRTH/n/d", &device_birth);
        assert_eq!(ids(&device_back, "asset-downtimes"), ["g/n/d@2000"]);
    }

    #[test]
    fn a_malformed_payload_is_a_rejection_not_a_failure() {
        let ingest = Ingest::default();
        let outcome = ingest.handle(&topic("spBv1.0/g/NDATA/n"), b"\xff\xff", Utc::now());
        assert_eq!(outcome.batch.rejections.len(), 1);
        assert!(
            outcome.batch.node.is_none(),
            "the node's state is untouched"
        );
    }
}
