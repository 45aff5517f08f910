//! A connection's settings, read from its credentials: the endpoint and how to log in, where to
//! browse, which nodes become what, and where readings come from.

use std::str::FromStr;

use millrace_connector::{ConnectorError, Credentials};
use opcua::types::NodeId;
use serde_json::Value;

/// The message security a connection asks the server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No signing or encryption (`None` policy).
    None,
    /// The `Basic256Sha256` policy with messages signed and encrypted.
    Basic256Sha256,
}

/// Where meter readings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingSource {
    /// History where the variable is historized, a subscription otherwise.
    Auto,
    /// History only; variables without history give no readings.
    History,
    /// A subscription only, even for historized variables.
    Subscription,
}

/// How a connection logs in and what it reads.
#[derive(Clone)]
pub struct Config {
    /// The `opc.tcp://` endpoint URL.
    pub endpoint: String,
    pub security: Security,
    /// User name and password; `None` logs in anonymously.
    pub user: Option<(String, String)>,
    /// Trusts whatever certificate the server presents (encryption without authentication).
    pub trust_server_certificate: bool,
    /// The SHA-1 thumbprint (hex) of the server certificate to trust.
    pub server_thumbprint: Option<String>,
    /// The node below which assets and meters are browsed.
    pub browse_root: NodeId,
    /// Only objects of these type definitions become assets (all but folders when empty).
    pub asset_types: Vec<NodeId>,
    /// Only variables with these browse names become meters (all when empty).
    pub meter_names: Vec<String>,
    /// Browse names of the variables holding a machine's state.
    pub state_names: Vec<String>,
    /// State values (lowercase text) that mean the machine runs; any other value is a stop.
    pub running_values: Vec<String>,
    pub readings: ReadingSource,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("security", &self.security)
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("browse_root", &self.browse_root)
            .finish_non_exhaustive()
    }
}

/// The objects folder of every OPC UA server.
const OBJECTS_FOLDER: &str = "i=85";

impl Config {
    /// Reads the settings from a connection's credentials, without contacting the server.
    pub fn from_credentials(credentials: &Credentials) -> Result<Config, ConnectorError> {
        let invalid = |message: String| ConnectorError::InvalidCredentials(message);
        let endpoint = credentials.require("endpoint")?.to_owned();
        if !endpoint.starts_with("opc.tcp://") {
            return Err(invalid(format!(
                "`endpoint` must be an opc.tcp:// URL, not `{endpoint}`"
            )));
        }
        let security = match credentials
            .get("security")
            .unwrap_or("none")
            .to_ascii_lowercase()
            .as_str()
        {
            "none" => Security::None,
            "basic256sha256" => Security::Basic256Sha256,
            other => {
                return Err(invalid(format!(
                    "`security` must be `none` or `basic256sha256`, not `{other}`"
                )))
            }
        };
        let user = match (credentials.get("username"), credentials.get("password")) {
            (Some(name), Some(password)) => Some((name.to_owned(), password.to_owned())),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "`username` and `password` go together: give both, or neither for an \
                     anonymous login"
                        .to_owned(),
                ))
            }
        };
        let server_thumbprint = credentials
            .get("server_certificate_thumbprint")
            .map(|thumbprint| thumbprint.replace([':', ' '], "").to_ascii_lowercase());
        if let Some(thumbprint) = &server_thumbprint {
            if thumbprint.len() != 40 || !thumbprint.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "`server_certificate_thumbprint` must be the certificate's SHA-1 thumbprint, \
                     40 hex digits"
                        .to_owned(),
                ));
            }
        }
        let browse_root = node_id(
            "browse_root",
            credentials.get("browse_root").unwrap_or(OBJECTS_FOLDER),
        )?;
        let asset_types = list(credentials, "asset_types")?
            .iter()
            .map(|text| node_id("asset_types", text))
            .collect::<Result<_, _>>()?;
        let readings = match credentials.get("readings").unwrap_or("auto") {
            "auto" => ReadingSource::Auto,
            "history" => ReadingSource::History,
            "subscription" => ReadingSource::Subscription,
            other => {
                return Err(invalid(format!(
                    "`readings` must be `auto`, `history` or `subscription`, not `{other}`"
                )))
            }
        };
        let state_names = match list(credentials, "state_variables")? {
            names if names.is_empty() => vec!["State".to_owned()],
            names => names,
        };
        let running_values = match list(credentials, "running_values")? {
            values if values.is_empty() => {
                ["true", "1", "running", "run"].map(str::to_owned).to_vec()
            }
            values => values.iter().map(|value| value.to_lowercase()).collect(),
        };
        Ok(Config {
            endpoint,
            security,
            user,
            trust_server_certificate: flag(credentials, "trust_server_certificate")?,
            server_thumbprint,
            browse_root,
            asset_types,
            meter_names: list(credentials, "meter_variables")?,
            state_names,
            running_values,
            readings,
        })
    }

    /// Returns whether a state value means the machine is running.
    pub fn is_running(&self, state: &str) -> bool {
        self.running_values.contains(&state.to_lowercase())
    }
}

fn node_id(field: &str, text: &str) -> Result<NodeId, ConnectorError> {
    NodeId::from_str(text).map_err(|_| {
        ConnectorError::InvalidCredentials(format!(
            "`{field}` holds `{text}`, which is not a node id such as `ns=2;s=Plant` or `i=85`"
        ))
    })
}

/// Reads a list field: a JSON array of strings, or one string of comma-separated items.
fn list(credentials: &Credentials, field: &str) -> Result<Vec<String>, ConnectorError> {
    let items: Vec<String> = match credentials.fields().get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.split(',').map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Bool(_) | Value::Number(_) => Ok(item.to_string()),
                _ => Err(ConnectorError::InvalidCredentials(format!(
                    "`{field}` must list strings"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ConnectorError::InvalidCredentials(format!(
                "`{field}` must be a list of strings or one comma-separated string"
            )))
        }
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

fn flag(credentials: &Credentials, field: &str) -> Result<bool, ConnectorError> {
    match credentials.fields().get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(Value::String(text)) if text == "true" || text == "false" => Ok(text == "true"),
        Some(_) => Err(ConnectorError::InvalidCredentials(format!(
            "`{field}` must be true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(value: Value) -> Credentials {
        Credentials::new(value.as_object().unwrap().clone())
    }

    #[test]
    fn defaults_browse_the_objects_folder_anonymously_without_security() {
        let config = Config::from_credentials(&credentials(
            serde_json::json!({"endpoint": "opc.tcp://h:4840"}),
        ))
        .unwrap();
        assert_eq!(config.security, Security::None);
        assert!(config.user.is_none());
        assert_eq!(config.browse_root, NodeId::from_str("i=85").unwrap());
        assert_eq!(config.readings, ReadingSource::Auto);
        assert!(config.is_running("Running") && config.is_running("true"));
        assert!(!config.is_running("Stopped"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        for (fields, named) in [
            (serde_json::json!({"endpoint": "http://h"}), "endpoint"),
            (
                serde_json::json!({"endpoint": "opc.tcp://h", "security": "aes"}),
                "security",
            ),
            (
                serde_json::json!({"endpoint": "opc.tcp://h", "username": "u"}),
                "password",
            ),
            (
                serde_json::json!({"endpoint": "opc.tcp://h", "browse_root": "Plant"}),
                "browse_root",
            ),
            (
                serde_json::json!({"endpoint": "opc.tcp://h", "server_certificate_thumbprint": "ab"}),
                "server_certificate_thumbprint",
            ),
            (
                serde_json::json!({"endpoint": "opc.tcp://h", "readings": "poll"}),
                "readings",
            ),
        ] {
            let err = Config::from_credentials(&credentials(fields)).unwrap_err();
            assert!(
                matches!(&err, ConnectorError::InvalidCredentials(message) if message.contains(named)),
                "{err}"
            );
        }
    }

    #[test]
    fn lists_are_arrays_or_comma_separated_text() {
        let config = Config::from_credentials(&credentials(serde_json::json!({
            "endpoint": "opc.tcp://h",
            "state_variables": "Running, State",
            "running_values": ["RUN", true],
        })))
        .unwrap();
        assert_eq!(config.state_names, ["Running", "State"]);
        assert_eq!(config.running_values, ["run", "true"]);
    }
}
