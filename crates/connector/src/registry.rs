//! The registry of connectors, keyed by system id.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Connector;

/// Every connector this build knows, by catalogue system id.
#[derive(Clone, Default)]
pub struct Registry {
    connectors: BTreeMap<String, Arc<dyn Connector>>,
}

impl Registry {
    /// Returns an empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a connector under its system's id.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        let id = connector.system().id.clone();
        self.connectors.insert(id, connector);
    }

    /// Returns the connector for `system`, if it is known.
    pub fn get(&self, system: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(system)
    }

    /// Returns all connectors, ordered by system id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connectors.values()
    }

    /// Returns the known system ids, for error messages naming the alternatives.
    pub fn system_ids(&self) -> Vec<&str> {
        self.connectors.keys().map(String::as_str).collect()
    }
}
