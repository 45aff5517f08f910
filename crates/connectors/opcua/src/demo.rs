//! A demo plant served over OPC UA from this process (async-opcua's server), so `millrace demo`
//! shows the connector without installing anything: a line of three machines whose
//! temperature, speed and part counter change every half second, and one that stops now and
//! then. It keeps no history (the library's in-memory server offers none), so its readings
//! come through a subscription. Anonymous, security None, on the loopback interface only.

use std::path::Path;
use std::time::Duration;

use millrace_connector::ConnectorError;
use opcua::server::address_space::{ObjectBuilder, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{simple_node_manager, SimpleNodeManager};
use opcua::server::ServerBuilder;
use opcua::types::{DataTypeId, DataValue, NodeId, ObjectTypeId, Variant};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The namespace of the demo plant's nodes.
pub const NAMESPACE: &str = "urn:millrace:demo-plant";
/// The machines of the demo line.
const MACHINES: [&str; 3] = ["Press1", "Press2", "Oven1"];
/// How often values change.
const TICK: Duration = Duration::from_millis(500);

/// A demo plant that is serving; dropping it does not stop it, [`DemoPlant::stop`] does.
pub struct DemoPlant {
    /// The endpoint, e.g. `opc.tcp://127.0.0.1:4855/`.
    pub endpoint: String,
    /// Credentials that connect to it, exactly as `POST /v1/connections` takes them.
    pub credentials: Value,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl DemoPlant {
    /// Stops the server and its value changes.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the demo plant on `listen` (e.g. `127.0.0.1:0`), keeping its certificate in
/// `pki_dir`.
pub async fn start(listen: &str, pki_dir: &Path) -> Result<DemoPlant, ConnectorError> {
    let fail = |what: &str, err: String| {
        ConnectorError::Sandbox(format!(
            "the demo OPC UA plant did not start: {what}: {err}"
        ))
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| fail(&format!("binding {listen}"), err.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|err| fail("reading its address", err.to_string()))?;
    let shutdown = CancellationToken::new();
    let (server, handle) = ServerBuilder::new_anonymous("Millrace demo plant")
        .application_uri("urn:millrace:demo-plant:server")
        .product_uri("urn:millrace")
        .host(address.ip().to_string())
        .port(address.port())
        .pki_dir(pki_dir)
        .create_sample_keypair(true)
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NAMESPACE.to_owned(),
                ..Default::default()
            },
            "demo-plant",
        ))
        .token(shutdown.clone())
        .build()
        .map_err(|err| fail("building the server", err))?;
    let nodes = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or_else(|| fail("its node manager", "missing".to_owned()))?;
    let ns = handle
        .get_namespace_index(NAMESPACE)
        .ok_or_else(|| fail("its namespace", "not registered".to_owned()))?;

    let plant = NodeId::new(ns, "Plant");
    let line = NodeId::new(ns, "Plant.Line1");
    {
        let mut space = nodes.address_space().write();
        ObjectBuilder::new(&plant, "Plant", "Plant")
            .has_type_definition(ObjectTypeId::BaseObjectType)
            .organized_by(NodeId::objects_folder_id())
            .insert(&mut *space);
        ObjectBuilder::new(&line, "Line1", "Line 1")
            .has_type_definition(ObjectTypeId::BaseObjectType)
            .component_of(plant.clone())
            .insert(&mut *space);
        for machine in MACHINES {
            let id = NodeId::new(ns, format!("Plant.Line1.{machine}"));
            ObjectBuilder::new(&id, machine, machine)
                .has_type_definition(ObjectTypeId::BaseObjectType)
                .component_of(line.clone())
                .insert(&mut *space);
            for (name, data_type, initial) in [
                ("Temperature", DataTypeId::Double, Variant::Double(20.0)),
                ("Speed", DataTypeId::Double, Variant::Double(0.0)),
                ("Counter", DataTypeId::Int64, Variant::Int64(0)),
                ("State", DataTypeId::String, Variant::from("Running")),
            ] {
                VariableBuilder::new(&variable(ns, machine, name), name, name)
                    .data_type(data_type)
                    .value(initial)
                    .component_of(id.clone())
                    .insert(&mut *space);
            }
        }
    }

    let serving = tokio::spawn(async move {
        if let Err(err) = server.run_with(listener).await {
            tracing::error!(error = %err, "the demo OPC UA plant stopped");
        }
    });
    let ticking = {
        let shutdown = shutdown.clone();
        let subscriptions = handle.subscriptions().clone();
        tokio::spawn(async move {
            let mut round: u64 = 0;
            let mut interval = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                round += 1;
                for (offset, machine) in MACHINES.iter().enumerate() {
                    let values = machine_values(round, offset as u64);
                    let updates = values.into_iter().map(|(name, value)| {
                        (variable(ns, machine, name), DataValue::new_now(value))
                    });
                    let updates: Vec<(NodeId, DataValue)> = updates.collect();
                    let result = nodes.set_values(
                        &subscriptions,
                        updates.iter().map(|(id, value)| (id, None, value.clone())),
                    );
                    if let Err(status) = result {
                        tracing::warn!(%status, "the demo plant could not change a value");
                    }
                }
            }
        })
    };

    let endpoint = format!("opc.tcp://{address}/");
    Ok(DemoPlant {
        credentials: json!({
            "endpoint": endpoint,
            "browse_root": format!("ns={ns};s=Plant"),
            "state_variables": ["State"],
        }),
        endpoint,
        shutdown,
        tasks: vec![serving, ticking],
    })
}

fn variable(ns: u16, machine: &str, name: &str) -> NodeId {
    NodeId::new(ns, format!("Plant.Line1.{machine}.{name}"))
}

/// The values a machine changes at a round: Press2 stops for 10 of every 40 rounds, and then
/// neither its speed nor its counter move.
fn machine_values(round: u64, offset: u64) -> Vec<(&'static str, Variant)> {
    let phase = round + 7 * offset;
    let stopped = offset == 1 && round % 40 >= 30;
    let running_rounds = if offset == 1 {
        round - round / 40 * 10 - (round % 40).saturating_sub(30)
    } else {
        round
    };
    let mut values = vec![(
        "Temperature",
        Variant::Double(60.0 + ((phase % 20) as f64 - 10.0).abs() * 0.8),
    )];
    if !stopped {
        values.push(("Speed", Variant::Double(110.0 + (phase % 9) as f64)));
        values.push(("Counter", Variant::Int64(running_rounds as i64)));
    }
    // The state is written when it changes only, so its source timestamp says since when.
    if offset == 1 && round % 40 == 30 {
        values.push(("State", Variant::from("Stopped")));
    }
    if offset == 1 && round % 40 == 0 {
        values.push(("State", Variant::from("Running")));
    }
    values
}
