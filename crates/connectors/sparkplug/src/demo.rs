//! A plant for `millrace demo`, with nothing to install: an MQTT broker embedded from the
//! `rumqttd` library, and a Sparkplug B edge node (this crate's own encoder over `rumqttc`)
//! that publishes a small bottling line.
//!
//! The line is edge node `line-1` of group `demo-plant` with its own metrics (speed, good
//! count, state) and two devices, `filler` and `capper`, every metric with an alias. It
//! publishes one data message per device and node each `interval`, answers rebirth requests,
//! and takes the capper offline for a few ticks (a `DDEATH`, then a `DBIRTH`), so the demo
//! shows a downtime.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use millrace_connector::ConnectorError;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::proto::{self, datatype, Metric, Payload, Value};

/// The demo plant's Sparkplug group id.
pub const GROUP: &str = "demo-plant";
/// The demo line's edge node id.
pub const EDGE_NODE: &str = "line-1";

/// A running demo plant.
pub struct DemoPlant {
    /// `mqtt://127.0.0.1:<port>` of the embedded broker.
    pub broker_url: String,
    /// Credentials that connect Millrace to the plant, as `POST /v1/connections` takes them.
    pub credentials: serde_json::Value,
    /// Stops the edge node; the embedded broker lives as long as the process (`rumqttd` has
    /// no shutdown).
    pub shutdown: CancellationToken,
    /// The edge node's task.
    pub edge_node: JoinHandle<()>,
}

/// Starts the broker on `listen` (port 0 picks a free one) and the edge node, publishing
/// every `interval`. Returns once the broker accepts connections.
pub async fn start(listen: SocketAddr, interval: Duration) -> Result<DemoPlant, ConnectorError> {
    let address = start_broker(listen).await?;
    let broker_url = format!("mqtt://{address}");
    let shutdown = CancellationToken::new();
    let edge_node = tokio::spawn(run_edge_node(address, interval, shutdown.clone()));
    Ok(DemoPlant {
        credentials: json!({"broker_url": broker_url, "group_ids": GROUP}),
        broker_url,
        shutdown,
        edge_node,
    })
}

/// Starts an embedded `rumqttd` broker (MQTT 3.1.1, no login) and waits until it listens.
pub async fn start_broker(listen: SocketAddr) -> Result<SocketAddr, ConnectorError> {
    let failed =
        |why: String| ConnectorError::Sandbox(format!("the demo broker did not start: {why}"));
    // rumqttd binds the address itself; a free port is found first when none is given.
    let address = if listen.port() == 0 {
        let probe = std::net::TcpListener::bind(listen).map_err(|err| failed(err.to_string()))?;
        probe.local_addr().map_err(|err| failed(err.to_string()))?
    } else {
        listen
    };
    let config: rumqttd::Config = serde_json::from_value(json!({
        "id": 0,
        "router": {
            "max_connections": 1000,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 10_485_760,
            "max_segment_count": 10,
        },
        "v4": {
            "demo": {
                "name": "demo",
                "listen": address.to_string(),
                "next_connection_delay_ms": 1,
                "connections": {
                    "connection_timeout_ms": 60_000,
                    "max_payload_size": 1_048_576,
                    "max_inflight_count": 100,
                    "dynamic_filters": true,
                },
            },
        },
    }))
    .map_err(|err| failed(format!("its configuration was refused: {err}")))?;
    std::thread::Builder::new()
        .name("demo-mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(err) = broker.start() {
                tracing::error!(error = %err, "demo mqtt broker stopped");
            }
        })
        .map_err(|err| failed(err.to_string()))?;

    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(address);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(failed(format!("nothing listens on {address}")))
}

/// One metric of the demo line: name, alias, type, and how its value moves with the tick.
struct DemoMetric {
    name: &'static str,
    alias: u64,
    datatype: u32,
    value: fn(u64) -> Value,
}

const NODE_METRICS: [DemoMetric; 3] = [
    DemoMetric {
        name: "Line/Speed",
        alias: 1,
        datatype: datatype::DOUBLE,
        value: |t| Value::Double(118.0 + wave(t, 7) * 4.0),
    },
    DemoMetric {
        name: "Line/Good Count",
        alias: 2,
        datatype: datatype::UINT64,
        value: |t| Value::Long(12_000 + t * 2),
    },
    DemoMetric {
        name: "Line/State",
        alias: 3,
        datatype: datatype::STRING,
        value: |t| Value::String(if t % 20 < 17 { "running" } else { "starved" }.to_owned()),
    },
];

const FILLER_METRICS: [DemoMetric; 3] = [
    DemoMetric {
        name: "Temperature",
        alias: 10,
        datatype: datatype::DOUBLE,
        value: |t| Value::Double(21.5 + wave(t, 11)),
    },
    DemoMetric {
        name: "Pressure",
        alias: 11,
        datatype: datatype::FLOAT,
        value: |t| Value::Float(2.4 + wave(t, 5) as f32 * 0.1),
    },
    DemoMetric {
        name: "Fault",
        alias: 12,
        datatype: datatype::BOOLEAN,
        value: |t| Value::Boolean(t % 30 == 29),
    },
];

const CAPPER_METRICS: [DemoMetric; 2] = [
    DemoMetric {
        name: "Torque",
        alias: 20,
        datatype: datatype::DOUBLE,
        value: |t| Value::Double(1.8 + wave(t, 3) * 0.2),
    },
    DemoMetric {
        name: "Cycle Count",
        alias: 21,
        datatype: datatype::UINT64,
        value: |t| Value::Long(40_000 + t * 2),
    },
];

/// A smooth value in -1..1 that repeats every `period` ticks.
fn wave(tick: u64, period: u64) -> f64 {
    let phase = (tick % period) as f64 / period as f64;
    (phase * std::f64::consts::TAU).sin()
}

/// The edge node's state: the sequence number and the tick its values follow.
struct EdgeNode {
    client: AsyncClient,
    seq: u64,
    tick: u64,
    capper_online: bool,
}

const BD_SEQ: u64 = 0;

impl EdgeNode {
    fn topic(kind: &str, device: Option<&str>) -> String {
        match device {
            Some(device) => format!("spBv1.0/{GROUP}/{kind}/{EDGE_NODE}/{device}"),
            None => format!("spBv1.0/{GROUP}/{kind}/{EDGE_NODE}"),
        }
    }

    fn now_ms() -> u64 {
        u64::try_from(Utc::now().timestamp_millis()).unwrap_or_default()
    }

    fn metrics(metrics: &[DemoMetric], tick: u64, birth: bool) -> Vec<Metric> {
        let now = Self::now_ms();
        metrics
            .iter()
            .map(|metric| Metric {
                name: birth.then(|| metric.name.to_owned()),
                alias: Some(metric.alias),
                timestamp: Some(now),
                datatype: birth.then_some(metric.datatype),
                value: Some((metric.value)(tick)),
                ..Metric::default()
            })
            .collect()
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq = (self.seq + 1) % 256;
        seq
    }

    fn send(&mut self, kind: &str, device: Option<&str>, metrics: Vec<Metric>) {
        let payload = Payload {
            timestamp: Some(Self::now_ms()),
            metrics,
            seq: Some(self.next_seq()),
            ..Payload::default()
        };
        let topic = Self::topic(kind, device);
        if let Err(err) =
            self.client
                .try_publish(topic, QoS::AtMostOnce, false, proto::encode(&payload))
        {
            tracing::debug!(error = %err, "demo edge node could not publish");
        }
    }

    fn births(&mut self) {
        self.seq = 0;
        let mut node_metrics = Self::metrics(&NODE_METRICS, self.tick, true);
        node_metrics.push(bd_seq_metric());
        self.send("NBIRTH", None, node_metrics);
        self.send(
            "DBIRTH",
            Some("filler"),
            Self::metrics(&FILLER_METRICS, self.tick, true),
        );
        if self.capper_online {
            self.send(
                "DBIRTH",
                Some("capper"),
                Self::metrics(&CAPPER_METRICS, self.tick, true),
            );
        }
    }

    fn step(&mut self) {
        self.tick += 1;
        self.send(
            "NDATA",
            None,
            Self::metrics(&NODE_METRICS, self.tick, false),
        );
        self.send(
            "DDATA",
            Some("filler"),
            Self::metrics(&FILLER_METRICS, self.tick, false),
        );
        // The capper stops for four ticks in every twenty, as a jam would stop it.
        match (self.tick % 20, self.capper_online) {
            (5, true) => {
                self.capper_online = false;
                self.send("DDEATH", Some("capper"), Vec::new());
            }
            (9, false) => {
                self.capper_online = true;
                let metrics = Self::metrics(&CAPPER_METRICS, self.tick, true);
                self.send("DBIRTH", Some("capper"), metrics);
            }
            (_, true) => {
                let metrics = Self::metrics(&CAPPER_METRICS, self.tick, false);
                self.send("DDATA", Some("capper"), metrics);
            }
            _ => {}
        }
    }
}

fn bd_seq_metric() -> Metric {
    Metric {
        name: Some(proto::BD_SEQ_METRIC.to_owned()),
        datatype: Some(datatype::INT64),
        value: Some(Value::Long(BD_SEQ)),
        timestamp: Some(EdgeNode::now_ms()),
        ..Metric::default()
    }
}

fn is_rebirth_request(payload: &[u8]) -> bool {
    proto::decode(payload).is_ok_and(|payload| {
        payload.metrics.iter().any(|metric| {
            metric.name.as_deref() == Some(proto::REBIRTH_METRIC)
                && metric.value == Some(Value::Boolean(true))
        })
    })
}

async fn run_edge_node(broker: SocketAddr, interval: Duration, shutdown: CancellationToken) {
    let mut options = MqttOptions::new(
        format!("{EDGE_NODE}-edge"),
        broker.ip().to_string(),
        broker.port(),
    );
    let death = Payload {
        timestamp: Some(EdgeNode::now_ms()),
        metrics: vec![bd_seq_metric()],
        ..Payload::default()
    };
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_last_will(LastWill::new(
            EdgeNode::topic("NDEATH", None),
            proto::encode(&death),
            QoS::AtLeastOnce,
            false,
        ));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut node = EdgeNode {
        client: client.clone(),
        seq: 0,
        tick: 0,
        capper_online: true,
    };
    let mut ticks = tokio::time::interval(interval);
    let mut connected = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick(), if connected => node.step(),
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    let _ = client.try_subscribe(EdgeNode::topic("NCMD", None), QoS::AtLeastOnce);
                    node.births();
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if is_rebirth_request(&publish.payload) {
                        tracing::info!("demo edge node answers a rebirth request");
                        node.births();
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    connected = false;
                    tracing::debug!(error = %err, "demo edge node lost the broker");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    // A clean goodbye publishes the death certificate, as a real node does when it stops.
    let _ = client.try_publish(
        EdgeNode::topic("NDEATH", None),
        QoS::AtLeastOnce,
        false,
        proto::encode(&death),
    );
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}
