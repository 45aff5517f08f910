//! A connection's credentials: a JSON object whose secret values never reach a log.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ConnectorError;

/// Credentials as the operator submitted them. `Debug` shows field names only.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(Map<String, Value>);

impl Credentials {
    /// Wraps a JSON object of credential fields.
    pub fn new(fields: Map<String, Value>) -> Self {
        Credentials(fields)
    }

    /// Returns a non-empty string field, or `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// Returns a required non-empty string field.
    pub fn require(&self, name: &str) -> Result<&str, ConnectorError> {
        self.get(name).ok_or_else(|| {
            ConnectorError::InvalidCredentials(format!("the credential field `{name}` is required"))
        })
    }

    /// Returns the raw fields.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_field_names_but_no_values() {
        let fields = serde_json::json!({"api_key": "s3cret", "base_url": "http://x"});
        let credentials = Credentials::new(fields.as_object().unwrap().clone());
        let shown = format!("{credentials:?}");
        assert!(shown.contains("api_key"));
        assert!(!shown.contains("s3cret"));
    }
}
