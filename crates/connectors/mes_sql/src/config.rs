//! A connection's settings: where the database is, and the operator's mapping of tables or
//! queries onto unified objects.
//!
//! MES databases have no common schema: every plant's tables are its own. So the connection
//! names, per unified object, one table (or one read-only query), its key column, its change
//! column, and which column fills which unified field. [`Mapping::parse`] checks the shape
//! and the identifiers without contacting the database; the live schema is checked at
//! connect time (`SqlSource::check`).

use std::collections::BTreeMap;
use std::str::FromStr;

use millrace_connector::{ConnectorError, Credentials};
use millrace_model::ObjectType;
use serde::Deserialize;

use crate::Engine;

/// The longest identifier either engine accepts (PostgreSQL 63 bytes, MariaDB 64 characters).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Where the database is and who reads it.
#[derive(Clone)]
pub struct Settings {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: Option<String>,
    /// The zone naive timestamp columns (PostgreSQL `timestamp`, MariaDB `DATETIME`) are
    /// written in. Zoned columns (`timestamptz`, MariaDB `TIMESTAMP`) need none.
    pub time_zone: chrono_tz::Tz,
    pub tls: Tls,
    /// PEM certificates of the authorities that may sign the server's certificate, when not
    /// the usual public ones.
    pub tls_root_cert: Option<String>,
    pub mapping: Mapping,
}

/// Whether and how the session is encrypted (libpq's `sslmode` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Never.
    Disable,
    /// When the server offers it, without checking its certificate.
    Prefer,
    /// Always, without checking the certificate.
    Require,
    /// Always, with a certificate signed by a trusted authority.
    VerifyCa,
    /// Always, with a trusted certificate for the host name connected to.
    VerifyFull,
}

impl FromStr for Tls {
    type Err = String;

    fn from_str(text: &str) -> Result<Tls, String> {
        Ok(match text {
            "disable" => Tls::Disable,
            "prefer" => Tls::Prefer,
            "require" => Tls::Require,
            "verify-ca" => Tls::VerifyCa,
            "verify-full" => Tls::VerifyFull,
            other => {
                return Err(format!(
                    "`tls` must be disable, prefer, require, verify-ca or verify-full, not \
                     {other:?}"
                ))
            }
        })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("time_zone", &self.time_zone)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads a connection's credentials, without contacting the database.
    pub fn from_credentials(
        engine: Engine,
        credentials: &Credentials,
    ) -> Result<Settings, ConnectorError> {
        let invalid = |message: String| ConnectorError::InvalidCredentials(message);
        let host = credentials.require("host")?.to_owned();
        let port = match credentials.fields().get("port") {
            None | Some(serde_json::Value::Null) => engine.default_port(),
            Some(serde_json::Value::Number(number)) => number
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .filter(|port| *port > 0)
                .ok_or_else(|| invalid(format!("`port` must be 1 to 65535, not {number}")))?,
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => {
                engine.default_port()
            }
            Some(serde_json::Value::String(text)) => text
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| invalid(format!("`port` must be 1 to 65535, not {text:?}")))?,
            Some(other) => return Err(invalid(format!("`port` must be a number, not {other}"))),
        };
        let time_zone = match credentials.get("time_zone") {
            None => chrono_tz::Tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                invalid(format!(
                    "`time_zone` must be an IANA zone such as Europe/Berlin, not {name:?}"
                ))
            })?,
        };
        let tls = match credentials.get("tls") {
            None => Tls::Prefer,
            Some(mode) => Tls::from_str(mode).map_err(invalid)?,
        };
        let tls_root_cert = credentials.get("tls_root_cert").map(str::to_owned);
        if let Some(pem) = &tls_root_cert {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid(
                    "`tls_root_cert` must hold PEM certificates (-----BEGIN CERTIFICATE-----)"
                        .to_owned(),
                ));
            }
        }
        let mapping = Mapping::parse(credentials.fields().get("mapping"))?;
        Ok(Settings {
            engine,
            host,
            port,
            database: credentials.require("database")?.to_owned(),
            username: credentials.require("username")?.to_owned(),
            // Taken as typed: a password may begin or end with a space.
            password: credentials
                .fields()
                .get("password")
                .and_then(serde_json::Value::as_str)
                .filter(|password| !password.is_empty())
                .map(str::to_owned),
            time_zone,
            tls,
            tls_root_cert,
            mapping,
        })
    }
}

/// The operator's mapping: one source per unified object the connection reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub objects: BTreeMap<ObjectType, ObjectMapping>,
}

/// Where one object's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table or view, optionally in a schema (PostgreSQL) or database (MariaDB).
    Table {
        schema: Option<String>,
        name: String,
    },
    /// One `SELECT` the operator wrote; read as a derived table.
    Query(String),
}

/// One object's mapping, as the operator writes it in JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectMapping {
    table: Option<String>,
    query: Option<String>,
    key: String,
    changed: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    deleted: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

/// One object's mapping, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectMapping {
    pub relation: Relation,
    /// The column whose value is the record's remote id; unique per row.
    pub key: String,
    /// The column of the row's last change time (a timestamp type).
    pub changed: String,
    /// The column of the row's creation time, when there is one.
    pub created: Option<String>,
    /// A column that marks a row deleted: true, non-zero, or a non-null time.
    pub deleted: Option<String>,
    /// Unified field → column.
    pub fields: BTreeMap<String, String>,
}

impl ObjectMapping {
    /// Every column the mapping names, with what it is for (for error messages).
    pub fn named_columns(&self) -> Vec<(&'static str, &str)> {
        let mut named = vec![
            ("key", self.key.as_str()),
            ("changed", self.changed.as_str()),
        ];
        named.extend(self.created.as_deref().map(|column| ("created", column)));
        named.extend(self.deleted.as_deref().map(|column| ("deleted", column)));
        named.extend(
            self.fields
                .values()
                .map(|column| ("fields", column.as_str())),
        );
        named
    }
}

impl Mapping {
    /// Reads the `mapping` credential field: a JSON object (or a string holding one) with an
    /// `objects` member keyed by object slug.
    pub fn parse(value: Option<&serde_json::Value>) -> Result<Mapping, ConnectorError> {
        let invalid = |message: String| {
            ConnectorError::InvalidCredentials(format!(
                "the field `mapping` is not valid: {message}"
            ))
        };
        let value = match value {
            None | Some(serde_json::Value::Null) => {
                return Err(ConnectorError::InvalidCredentials(
                    "the credential field `mapping` is required: it names the table or query, \
                     key column and change column of each object to read"
                        .to_owned(),
                ))
            }
            Some(serde_json::Value::String(text)) => {
                serde_json::from_str(text).map_err(|err| invalid(err.to_string()))?
            }
            Some(other) => other.clone(),
        };
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawMapping {
            objects: BTreeMap<String, RawObjectMapping>,
        }
        let raw: RawMapping =
            serde_json::from_value(value).map_err(|err| invalid(err.to_string()))?;
        if raw.objects.is_empty() {
            return Err(invalid("`objects` names no object".to_owned()));
        }

        let mut objects = BTreeMap::new();
        for (slug, object_mapping) in raw.objects {
            let object = ObjectType::from_str(&slug)
                .ok()
                .filter(|object| crate::OBJECTS.contains(object))
                .ok_or_else(|| {
                    invalid(format!(
                        "`{slug}` is not an object this connector reads; known: {}",
                        crate::OBJECTS.map(ObjectType::slug).join(", ")
                    ))
                })?;
            let checked = check_object(object, object_mapping)
                .map_err(|message| invalid(format!("{slug}: {message}")))?;
            objects.insert(object, checked);
        }
        Ok(Mapping { objects })
    }
}

fn check_object(object: ObjectType, raw: RawObjectMapping) -> Result<ObjectMapping, String> {
    let relation = match (raw.table, raw.query) {
        (Some(table), None) => parse_table(&table)?,
        (None, Some(query)) => Relation::Query(check_query(&query)?),
        (Some(_), Some(_)) => return Err("give `table` or `query`, not both".to_owned()),
        (None, None) => return Err("give a `table` or a `query`".to_owned()),
    };
    let allowed = crate::mapping::unified_fields(object);
    if let Some(unknown) = raw.fields.keys().find(|field| !allowed.contains(field)) {
        return Err(format!(
            "`{unknown}` is not a field of {object}; known: {}",
            allowed.join(", ")
        ));
    }
    let mapping = ObjectMapping {
        relation,
        key: raw.key,
        changed: raw.changed,
        created: raw.created,
        deleted: raw.deleted,
        fields: raw.fields,
    };
    for (role, column) in mapping.named_columns() {
        check_identifier(column).map_err(|err| format!("the {role} column {column:?} {err}"))?;
    }
    Ok(mapping)
}

/// Reads `table` or `schema.table`.
fn parse_table(text: &str) -> Result<Relation, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let (schema, name) = match parts.as_slice() {
        [name] => (None, *name),
        [schema, name] => (Some(*schema), *name),
        _ => return Err(format!("table {text:?} must be `table` or `schema.table`")),
    };
    if let Some(schema) = schema {
        check_identifier(schema).map_err(|err| format!("the schema {schema:?} {err}"))?;
    }
    check_identifier(name).map_err(|err| format!("the table {name:?} {err}"))?;
    Ok(Relation::Table {
        schema: schema.map(str::to_owned),
        name: name.to_owned(),
    })
}

/// Accepts one `SELECT` (or `WITH ... SELECT`) statement. The session is read-only anyway;
/// this turns a mistake into a clear error instead of a database one.
fn check_query(query: &str) -> Result<String, String> {
    let query = query.trim().trim_end_matches(';').trim();
    let first_word = query
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if first_word != "select" && first_word != "with" {
        return Err("`query` must be one SELECT statement".to_owned());
    }
    if query.contains(';') {
        return Err("`query` must be one statement, without `;`".to_owned());
    }
    Ok(query.to_owned())
}

/// Checks a table, schema or column name before it is quoted into SQL: names come from the
/// operator's mapping, never from data, and are quoted; they may still not contain a quote
/// character of either engine or a control character.
pub fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!("is longer than {MAX_IDENTIFIER_BYTES} bytes"));
    }
    if name != name.trim() {
        return Err("starts or ends with a space".to_owned());
    }
    if name
        .chars()
        .any(|c| c == '"' || c == '`' || c == '\\' || c.is_control())
    {
        return Err("contains a quote, a backslash or a control character".to_owned());
    }
    Ok(())
}

/// Quotes a checked identifier for `engine`.
pub fn quote(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Postgres => format!("\"{name}\""),
        Engine::MySql => format!("`{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<Mapping, String> {
        Mapping::parse(Some(&value)).map_err(|err| err.to_string())
    }

    #[test]
    fn a_table_and_a_query_mapping_are_read() {
        let mapping = parse(json!({"objects": {
            "production-orders": {"table": "mes.production_orders", "key": "order_id",
                "changed": "updated_at", "deleted": "is_deleted",
                "fields": {"number": "order_no", "quantity_planned": "qty_planned"}},
            "quality-events": {"query": "SELECT * FROM quality_checks WHERE kind = 'final';",
                "key": "check_id", "changed": "updated_at"}
        }}))
        .unwrap();
        let orders = &mapping.objects[&ObjectType::ProductionOrders];
        assert_eq!(
            orders.relation,
            Relation::Table {
                schema: Some("mes".into()),
                name: "production_orders".into()
            }
        );
        assert_eq!(orders.fields["quantity_planned"], "qty_planned");
        assert_eq!(
            mapping.objects[&ObjectType::QualityEvents].relation,
            Relation::Query("SELECT * FROM quality_checks WHERE kind = 'final'".into())
        );
    }

    #[test]
    fn bad_mappings_say_what_is_wrong() {
        let cases = [
            (json!(null), "is required"),
            (json!({"objects": {}}), "names no object"),
            (
                json!({"objects": {"invoices": {"table": "t", "key": "k", "changed": "c"}}}),
                "`invoices` is not an object this connector reads",
            ),
            (
                json!({"objects": {"assets": {"table": "t", "key": "k", "changed": "c",
                "fields": {"colour": "c"}}}}),
                "`colour` is not a field of assets",
            ),
            (
                json!({"objects": {"assets": {"table": "t\"; DROP TABLE x; --", "key": "k",
                "changed": "c"}}}),
                "contains a quote",
            ),
            (
                json!({"objects": {"assets": {"table": "t", "key": "id`", "changed": "c"}}}),
                "the key column",
            ),
            (
                json!({"objects": {"assets": {"query": "DELETE FROM t", "key": "k",
                "changed": "c"}}}),
                "one SELECT",
            ),
            (
                json!({"objects": {"assets": {"query": "SELECT 1; SELECT 2", "key": "k",
                "changed": "c"}}}),
                "without `;`",
            ),
            (
                json!({"objects": {"assets": {"key": "k", "changed": "c"}}}),
                "a `table` or",
            ),
            (
                json!({"objects": {"assets": {"table": "a.b.c", "key": "k", "changed": "c"}}}),
                "schema.table",
            ),
            (
                json!({"objects": {"assets": {"table": "t", "key": "k", "changed": "c",
                "colour": "x"}}}),
                "unknown field `colour`",
            ),
        ];
        for (value, expected) in cases {
            let err = if value.is_null() {
                Mapping::parse(None).unwrap_err().to_string()
            } else {
                parse(value.clone()).unwrap_err()
            };
            assert!(err.contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn settings_read_ports_zones_and_hide_the_password() {
        let credentials = |extra: serde_json::Value| {
            let mut fields = json!({"host": "db", "database": "mes", "username": "reader",
                "password": "s3cret", "mapping": {"objects": {"assets": {"table": "machines",
                "key": "id", "changed": "updated_at"}}}});
            fields
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Credentials::new(fields.as_object().unwrap().clone())
        };
        let settings = Settings::from_credentials(Engine::MySql, &credentials(json!({}))).unwrap();
        assert_eq!(settings.port, 3306);
        assert_eq!(settings.time_zone, chrono_tz::Tz::UTC);
        assert!(!format!("{settings:?}").contains("s3cret"));
        let settings = Settings::from_credentials(
            Engine::Postgres,
            &credentials(json!({"port": "6543", "time_zone": "Europe/Berlin"})),
        )
        .unwrap();
        assert_eq!(settings.port, 6543);
        assert_eq!(settings.time_zone, chrono_tz::Europe::Berlin);
        for (extra, expected) in [
            (json!({"port": 0}), "`port` must be 1 to 65535"),
            (json!({"port": "many"}), "`port` must be 1 to 65535"),
            (json!({"time_zone": "Mars/Olympus"}), "IANA zone"),
            (json!({"tls": "always"}), "`tls` must be disable, prefer"),
            (json!({"tls_root_cert": "not a certificate"}), "PEM"),
            (json!({"host": ""}), "`host` is required"),
        ] {
            let err = Settings::from_credentials(Engine::Postgres, &credentials(extra.clone()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
    }
}
