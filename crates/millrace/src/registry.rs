//! The systems this build of Millrace can connect: one line per connector.

use millrace_connector::Registry;

/// Returns the registry of every connector compiled in.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(millrace_ibm_maximo::connector());
    registry.register(millrace_trackwise::connector());
    registry.register(millrace_honeywell_forge::connector());
    for connector in millrace_mes_sql::connectors() {
        registry.register(connector);
    }
    registry.register(millrace_sap::connector());
    registry.register(millrace_tryton::connector());
    registry.register(millrace_opcua::connector());
    registry.register(millrace_sparkplug::connector());
    registry
}
