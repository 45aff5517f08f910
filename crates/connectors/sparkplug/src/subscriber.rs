//! The per-subscription MQTT subscriber: a task that holds a persistent session on the broker,
//! journals every message it receives, and only then acknowledges it.
//!
//! One subscriber runs per distinct set of credentials in this process (the [`Hub`] keys them
//! by a digest), however many connections and runs read its journal. It starts with the first
//! read and runs until the process stops or the broker refuses its login.
//!
//! Delivery guarantees, end to end:
//! - the session is persistent (`clean session` off, a stable client id) and subscribed with
//!   QoS 1, so while the subscriber is away the broker queues what arrives for it;
//! - acknowledgements are manual: a QoS 1 message is acknowledged after its records commit to
//!   the journal, so a crash before that leaves it unacknowledged and the broker sends it
//!   again on the next connection; the journal absorbs the repeat;
//! - what cannot be read (a malformed payload, an unknown alias) is journaled as a rejection
//!   and acknowledged: sending it again would not make it readable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use millrace_connector::ConnectorError;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, Packet, Publish, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, CONNECT_TIMEOUT};
use crate::ingest::{Ingest, Outcome};
use crate::journal::{Batch, Journal, JournalError, Rejection};
use crate::proto;
use crate::topic::{MessageType, Topic};

/// The shortest time between two rebirth requests to one edge node.
const REBIRTH_INTERVAL: Duration = Duration::from_secs(10);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a subscriber's connection stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Not connected yet.
    Starting,
    /// Connected and subscribed.
    Connected,
    /// Lost the connection (or never got one) and is trying again.
    Disconnected { ever_connected: bool, error: String },
    /// The broker refused the login or the subscription; the subscriber stopped.
    Refused(String),
    /// The process is stopping.
    Stopped,
}

/// One running subscriber and its journal.
pub struct Subscriber {
    pub journal: Journal,
    status: watch::Receiver<Status>,
    cancel: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Subscriber {
    /// Waits until the subscriber is connected, or says why it is not.
    ///
    /// A subscriber that was connected and is reconnecting is ready: its journal holds
    /// everything it acknowledged, and the broker queues the rest.
    pub async fn ready(&self) -> Result<(), ConnectorError> {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                let current = status.borrow_and_update().clone();
                match current {
                    Status::Connected
                    | Status::Disconnected {
                        ever_connected: true,
                        ..
                    } => return Ok(()),
                    Status::Refused(reason) => {
                        return Err(ConnectorError::CredentialsRejected(reason))
                    }
                    Status::Stopped => {
                        return Err(ConnectorError::Unreachable(
                            "the sparkplug subscriber stopped".to_owned(),
                        ))
                    }
                    Status::Starting | Status::Disconnected { .. } => {}
                }
                if status.changed().await.is_err() {
                    return Err(ConnectorError::Unreachable(
                        "the sparkplug subscriber stopped".to_owned(),
                    ));
                }
            }
        })
        .await;
        match waited {
            Ok(result) => result,
            Err(_) => Err(match self.status.borrow().clone() {
                Status::Disconnected { error, .. } => ConnectorError::Unreachable(error),
                _ => ConnectorError::Timeout(format!(
                    "no answer from the broker within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )),
            }),
        }
    }

    fn is_finished(&self) -> bool {
        self.task
            .lock()
            .unwrap()
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    async fn stop(&self) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.journal.close().await;
    }
}

/// The subscribers of this process, one per distinct set of credentials.
pub struct Hub {
    journal_dir: PathBuf,
    subscribers: Mutex<HashMap<String, Arc<Subscriber>>>,
}

impl Hub {
    /// Returns a hub whose journals live in `journal_dir`.
    pub fn new(journal_dir: PathBuf) -> Self {
        Hub {
            journal_dir,
            subscribers: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the folder of the journals.
    pub fn journal_dir(&self) -> &std::path::Path {
        &self.journal_dir
    }

    /// Returns the running subscriber of `config`, starting it (again) when needed.
    pub async fn subscriber(
        &self,
        config: &BrokerConfig,
    ) -> Result<Arc<Subscriber>, ConnectorError> {
        let mut subscribers = self.subscribers.lock().await;
        if let Some(existing) = subscribers.get(&config.fingerprint) {
            if !existing.is_finished() {
                return Ok(existing.clone());
            }
            // It stopped (its login was refused): start again, with these credentials' secrets.
            existing.journal.close().await;
        }
        let path = self
            .journal_dir
            .join(format!("{}.sqlite", &config.fingerprint[..32]));
        let journal = Journal::open(&path)
            .await
            .map_err(|err| ConnectorError::Unreachable(err.to_string()))?;
        let states = journal
            .node_states()
            .await
            .map_err(|err| ConnectorError::Unreachable(err.to_string()))?;
        let (status_tx, status) = watch::channel(Status::Starting);
        let cancel = CancellationToken::new();
        let worker = Worker {
            config: config.clone(),
            journal: journal.clone(),
            ingest: Ingest::new(states),
            status: status_tx,
            cancel: cancel.clone(),
            last_rebirth: HashMap::new(),
        };
        let task = tokio::spawn(worker.run());
        let subscriber = Arc::new(Subscriber {
            journal,
            status,
            cancel,
            task: std::sync::Mutex::new(Some(task)),
        });
        subscribers.insert(config.fingerprint.clone(), subscriber.clone());
        Ok(subscriber)
    }

    /// Stops every subscriber and closes its journal, as the end of the process would; the
    /// next read starts them again from their journals.
    pub async fn shutdown(&self) {
        let subscribers: Vec<Arc<Subscriber>> = self
            .subscribers
            .lock()
            .await
            .drain()
            .map(|(_, s)| s)
            .collect();
        for subscriber in subscribers {
            subscriber.stop().await;
        }
    }
}

/// The subscriber's task and what it owns.
struct Worker {
    config: BrokerConfig,
    journal: Journal,
    ingest: Ingest,
    status: watch::Sender<Status>,
    cancel: CancellationToken,
    last_rebirth: HashMap<String, Instant>,
}

impl Worker {
    async fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        let mut ever_connected = false;
        'session: loop {
            let mut options = match self.config.mqtt_options(&self.config.client_id, false) {
                Ok(options) => options,
                Err(err) => {
                    self.status.send_replace(Status::Refused(err.to_string()));
                    return;
                }
            };
            options.set_manual_acks(true);
            let (client, mut eventloop) = AsyncClient::new(options, 1024);
            loop {
                let event = tokio::select! {
                    () = self.cancel.cancelled() => break 'session,
                    event = eventloop.poll() => event,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        backoff = Duration::from_secs(1);
                        self.connected(&client, ack.session_present, ever_connected);
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .any(|code| matches!(code, SubscribeReasonCode::Failure));
                        if refused {
                            let reason = format!(
                                "the broker refused the subscription to {}",
                                self.config.topic_filters().join(", ")
                            );
                            tracing::warn!(
                                client_id = %self.config.client_id,
                                %reason,
                                "subscription refused"
                            );
                            self.status.send_replace(Status::Refused(reason));
                            return;
                        }
                        // Subscribed: from here on, nothing published is missed.
                        ever_connected = true;
                        self.status.send_replace(Status::Connected);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if let Err(err) = self.receive(&client, &publish).await {
                            // Not acknowledged: the broker sends it again on the next session.
                            tracing::error!(
                                error = %err,
                                topic = %publish.topic,
                                "journaling a message failed"
                            );
                            self.status.send_replace(Status::Disconnected {
                                ever_connected,
                                error: err.to_string(),
                            });
                            if self.pause(&mut backoff).await {
                                continue 'session;
                            }
                            break 'session;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        let (refused, message) = describe(&self.config, &err);
                        if refused {
                            tracing::warn!(
                                client_id = %self.config.client_id,
                                error = %message,
                                "broker refused the login"
                            );
                            self.status.send_replace(Status::Refused(message));
                            return;
                        }
                        // Said once when a working connection breaks; the retries are detail.
                        if *self.status.borrow() == Status::Connected {
                            tracing::warn!(
                                client_id = %self.config.client_id,
                                error = %message,
                                "broker connection lost; reconnecting"
                            );
                        } else {
                            tracing::debug!(
                                client_id = %self.config.client_id,
                                error = %message,
                                "broker still unreachable"
                            );
                        }
                        self.status.send_replace(Status::Disconnected {
                            ever_connected,
                            error: message,
                        });
                        if !self.pause(&mut backoff).await {
                            break 'session;
                        }
                    }
                }
            }
        }
        self.status.send_replace(Status::Stopped);
    }

    /// Waits before the next attempt; returns false when the process is stopping.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    fn connected(&mut self, client: &AsyncClient, session_present: bool, ever_connected: bool) {
        let known_nodes = self.ingest.online_node_commands();
        if !session_present && (ever_connected || !known_nodes.is_empty()) {
            tracing::warn!(
                client_id = %self.config.client_id,
                "the broker kept no session, so what it queued is lost; asking nodes to rebirth"
            );
            for command in known_nodes {
                self.rebirth(client, &command, "the broker session was lost");
            }
        }
        tracing::info!(client_id = %self.config.client_id, session_present, "subscriber connected");
        let filters = self
            .config
            .topic_filters()
            .into_iter()
            .map(|filter| SubscribeFilter::new(filter, QoS::AtLeastOnce));
        if let Err(err) = client.try_subscribe_many(filters) {
            tracing::error!(error = %err, "subscribing failed");
        }
    }

    /// Journals one message, then acknowledges it and asks for a rebirth when it calls for one.
    async fn receive(
        &mut self,
        client: &AsyncClient,
        publish: &Publish,
    ) -> Result<(), JournalError> {
        let received_at = Utc::now();
        tracing::debug!(
            topic = %publish.topic,
            qos = ?publish.qos,
            bytes = publish.payload.len(),
            "message received"
        );
        let mut outcome = match Topic::parse(&publish.topic) {
            Ok(Some(topic)) if self.config.accepts(&topic.group, &topic.edge_node) => {
                if topic.message_type == MessageType::NBirth {
                    // A birth answers any rebirth request: the next problem may ask again.
                    self.last_rebirth.remove(&topic.node_command());
                }
                self.ingest.handle(&topic, &publish.payload, received_at)
            }
            Ok(_) => Default::default(),
            Err(reason) => Outcome {
                batch: Batch {
                    rejections: vec![Rejection {
                        subject: publish.topic.clone(),
                        reason,
                    }],
                    ..Batch::default()
                },
                rebirth: None,
            },
        };
        for rejection in &outcome.batch.rejections {
            tracing::warn!(
                subject = %rejection.subject,
                reason = %rejection.reason,
                "sparkplug message rejected"
            );
        }
        let has_work = !outcome.batch.records.is_empty()
            || !outcome.batch.rejections.is_empty()
            || outcome.batch.node.is_some();
        if has_work {
            self.journal.apply(&outcome.batch).await?;
            self.ingest.commit(&mut outcome.batch);
        }
        if publish.qos != QoS::AtMostOnce {
            if let Err(err) = client.try_ack(publish) {
                tracing::warn!(error = %err, "acknowledging failed; the broker will send it again");
            }
        }
        if let Some((command_topic, why)) = outcome.rebirth {
            self.rebirth(client, &command_topic, &why);
        }
        Ok(())
    }

    fn rebirth(&mut self, client: &AsyncClient, command_topic: &str, why: &str) {
        let now = Instant::now();
        if let Some(last) = self.last_rebirth.get(command_topic) {
            if now.duration_since(*last) < REBIRTH_INTERVAL {
                return;
            }
        }
        self.last_rebirth.insert(command_topic.to_owned(), now);
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or_default();
        let payload = proto::encode(&proto::rebirth_request(now_ms));
        match client.try_publish(command_topic, QoS::AtMostOnce, false, payload) {
            Ok(()) => tracing::info!(topic = %command_topic, why, "rebirth requested"),
            Err(err) => {
                tracing::warn!(topic = %command_topic, error = %err, "rebirth request failed")
            }
        }
    }
}

/// Describes a connection error in words an operator can act on; the flag says whether the
/// broker refused the login (rather than being unreachable).
pub fn describe(config: &BrokerConfig, err: &ConnectionError) -> (bool, String) {
    let broker = format!("{}:{}", config.host, config.port);
    match err {
        ConnectionError::ConnectionRefused(code) => {
            let message = match code {
                ConnectReturnCode::BadUserNamePassword => {
                    format!("the broker at {broker} refused the user name or password (CONNACK 4)")
                }
                ConnectReturnCode::NotAuthorized => {
                    format!("the broker at {broker} refused the login: not authorized (CONNACK 5)")
                }
                ConnectReturnCode::BadClientId => {
                    format!(
                        "the broker at {broker} refused the client id `{}` (CONNACK 2)",
                        config.client_id
                    )
                }
                other => format!("the broker at {broker} refused the connection: {other:?}"),
            };
            let refused = !matches!(code, ConnectReturnCode::ServiceUnavailable);
            (refused, message)
        }
        ConnectionError::Tls(err) => (false, format!("TLS with {broker} failed: {err}")),
        ConnectionError::Io(err) => (false, format!("cannot reach the broker at {broker}: {err}")),
        ConnectionError::NetworkTimeout => (
            false,
            format!("the broker at {broker} did not answer in time"),
        ),
        other => (false, format!("the connection to {broker} failed: {other}")),
    }
}
