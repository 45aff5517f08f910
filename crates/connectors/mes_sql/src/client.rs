//! One connection's read-only session pool to a PostgreSQL or MariaDB/MySQL MES database:
//! schema checks against the live database, keyset pages on (change column, key), and key
//! listings for reconciliation.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use millrace_connector::http::RetryPolicy;
use millrace_connector::{ConnectorError, Credentials, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use serde::{Deserialize, Serialize};
use sqlx::mysql::{
    MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlSslMode,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Column as _, Executor as _, TypeInfo as _};
use tokio::sync::OnceCell;

use crate::config::{ObjectMapping, Settings, Tls};
use crate::mapping::{self, Column, Kind, Layout};
use crate::sql::{self, Bind, Statement};
use crate::Engine;

/// How long a statement may run on the source before the server cancels it (PostgreSQL).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for a connection to the source.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Marks an unreachable source whose TLS handshake failed, which retrying does not cure.
const TLS_FAILED: &str = "TLS handshake failed";
/// Keys per page of a reconciliation listing.
const ID_PAGE_SIZE: u32 = 5000;

enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// One connection's client to an MES database.
pub struct SqlSource {
    settings: Settings,
    pool: Pool,
    /// Each mapped object's columns, read from the live schema once per client.
    layouts: BTreeMap<ObjectType, OnceCell<Layout>>,
}

/// Where a listing stands: among the rows without a change time (by key), or among the dated
/// ones (by change time, then key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Position {
    Undated { after_key: Option<String> },
    Dated { after: Option<(String, String)> },
}

impl SqlSource {
    /// Builds a client from a connection's credentials, without contacting the database.
    pub fn open(engine: Engine, credentials: &Credentials) -> Result<Self, ConnectorError> {
        let settings = Settings::from_credentials(engine, credentials)?;
        let pool = match engine {
            Engine::Postgres => {
                let mut options = PgConnectOptions::new()
                    .host(&settings.host)
                    .port(settings.port)
                    .database(&settings.database)
                    .username(&settings.username)
                    .application_name("millrace")
                    // Every transaction of the session is read-only; times are shown in UTC.
                    .options([
                        ("default_transaction_read_only", "on".to_owned()),
                        ("TimeZone", "UTC".to_owned()),
                        (
                            "statement_timeout",
                            STATEMENT_TIMEOUT.as_millis().to_string(),
                        ),
                    ]);
                if let Some(password) = &settings.password {
                    options = options.password(password);
                }
                options = options.ssl_mode(match settings.tls {
                    Tls::Disable => PgSslMode::Disable,
                    Tls::Prefer => PgSslMode::Prefer,
                    Tls::Require => PgSslMode::Require,
                    Tls::VerifyCa => PgSslMode::VerifyCa,
                    Tls::VerifyFull => PgSslMode::VerifyFull,
                });
                if let Some(pem) = &settings.tls_root_cert {
                    options = options.ssl_root_cert_from_pem(pem.as_bytes().to_vec());
                }
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(2)
                        .min_connections(0)
                        .acquire_timeout(CONNECT_TIMEOUT)
                        .idle_timeout(Duration::from_secs(60))
                        .connect_lazy_with(options),
                )
            }
            Engine::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&settings.host)
                    .port(settings.port)
                    .database(&settings.database)
                    .username(&settings.username)
                    .charset("utf8mb4")
                    // TIMESTAMP columns are shown in the session zone: UTC.
                    .timezone(Some("+00:00".to_owned()));
                if let Some(password) = &settings.password {
                    options = options.password(password);
                }
                options = options.ssl_mode(match settings.tls {
                    Tls::Disable => MySqlSslMode::Disabled,
                    Tls::Prefer => MySqlSslMode::Preferred,
                    Tls::Require => MySqlSslMode::Required,
                    Tls::VerifyCa => MySqlSslMode::VerifyCa,
                    Tls::VerifyFull => MySqlSslMode::VerifyIdentity,
                });
                if let Some(pem) = &settings.tls_root_cert {
                    options = options.ssl_ca_from_pem(pem.as_bytes().to_vec());
                }
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(2)
                        .min_connections(0)
                        .acquire_timeout(CONNECT_TIMEOUT)
                        .idle_timeout(Duration::from_secs(60))
                        .after_connect(|connection, _| {
                            Box::pin(async move {
                                connection
                                    .execute("SET SESSION TRANSACTION READ ONLY")
                                    .await?;
                                Ok(())
                            })
                        })
                        .connect_lazy_with(options),
                )
            }
        };
        let layouts = settings
            .mapping
            .objects
            .keys()
            .map(|object| (*object, OnceCell::new()))
            .collect();
        Ok(SqlSource {
            settings,
            pool,
            layouts,
        })
    }

    fn engine(&self) -> Engine {
        self.settings.engine
    }

    /// Runs a statement and returns every row as text cells. A lost connection or a conflict
    /// the server resolved by aborting (deadlock, serialization) is retried with exponential
    /// backoff, as the process-wide [`RetryPolicy`] bounds it.
    async fn fetch(
        &self,
        statement: &Statement,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
        let policy = RetryPolicy::configured();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries)
            .with_jitter();
        (|| self.fetch_once(statement))
            .retry(backoff)
            .when(is_retried)
            .notify(|err, after| {
                tracing::debug!(error = %err, after = ?after, "retrying a statement");
            })
            .await
    }

    async fn fetch_once(
        &self,
        statement: &Statement,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
        fn cells<R: sqlx::Row>(row: &R) -> Result<Vec<Option<String>>, sqlx::Error>
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            (0..row.len()).map(|index| row.try_get(index)).collect()
        }
        let rows = match &self.pool {
            Pool::Postgres(pool) => {
                let mut query = sqlx::query(&statement.sql);
                for bind in &statement.binds {
                    query = match bind {
                        Bind::Text(text) => query.bind(text.clone()),
                        Bind::Int(number) => query.bind(*number),
                    };
                }
                let rows = query.fetch_all(pool).await.map_err(|err| self.error(err))?;
                rows.iter().map(cells).collect::<Result<Vec<_>, _>>()
            }
            Pool::MySql(pool) => {
                let mut query = sqlx::query(&statement.sql);
                for bind in &statement.binds {
                    query = match bind {
                        Bind::Text(text) => query.bind(text.clone()),
                        Bind::Int(number) => query.bind(*number),
                    };
                }
                let rows = query.fetch_all(pool).await.map_err(|err| self.error(err))?;
                rows.iter().map(cells).collect::<Result<Vec<_>, _>>()
            }
        };
        rows.map_err(|err| ConnectorError::Malformed(format!("a row could not be decoded: {err}")))
    }

    /// The columns a source has, as the database describes them.
    async fn describe(
        &self,
        object: ObjectType,
        mapping: &ObjectMapping,
    ) -> Result<Vec<Column>, ConnectorError> {
        let statement = sql::describe(self.engine(), mapping);
        let described: Result<Vec<(String, String)>, sqlx::Error> = match &self.pool {
            Pool::Postgres(pool) => pool.describe(&statement).await.map(|described| {
                described
                    .columns()
                    .iter()
                    .map(|column| {
                        (
                            column.name().to_owned(),
                            column.type_info().name().to_owned(),
                        )
                    })
                    .collect()
            }),
            Pool::MySql(pool) => pool.describe(&statement).await.map(|described| {
                described
                    .columns()
                    .iter()
                    .map(|column| {
                        (
                            column.name().to_owned(),
                            column.type_info().name().to_owned(),
                        )
                    })
                    .collect()
            }),
        };
        let described = described.map_err(|err| match self.error(err) {
            // A missing table, column or bad query of the mapping: say which object it was.
            ConnectorError::InvalidCredentials(detail) => ConnectorError::InvalidCredentials(
                format!("the mapping of {object} does not fit the database: {detail}"),
            ),
            other => other,
        })?;
        Ok(described
            .into_iter()
            .map(|(name, type_name)| Column {
                kind: match self.engine() {
                    Engine::Postgres => Kind::of_postgres(&type_name),
                    Engine::MySql => Kind::of_mysql(&type_name),
                },
                name,
                type_name,
            })
            .collect())
    }

    /// Resolves an object's mapping against the live schema, once per client.
    async fn layout(&self, object: ObjectType) -> Result<Option<&Layout>, ConnectorError> {
        let (Some(cell), Some(mapping)) = (
            self.layouts.get(&object),
            self.settings.mapping.objects.get(&object),
        ) else {
            return Ok(None);
        };
        cell.get_or_try_init(|| async {
            let columns = self.describe(object, mapping).await?;
            resolve(object, mapping, columns).map_err(ConnectorError::InvalidCredentials)
        })
        .await
        .map(Some)
    }

    /// Opens (and drops) one TCP connection to the server, so that a refused or unroutable
    /// address is reported as unreachable at once: the pool would retry it until its acquire
    /// timeout and then report only that it timed out.
    async fn probe(&self) -> Result<(), ConnectorError> {
        let settings = &self.settings;
        let server = format!(
            "{} at {}:{}",
            self.engine().name(),
            settings.host,
            settings.port
        );
        let connect = tokio::net::TcpStream::connect((settings.host.as_str(), settings.port));
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(err)) => Err(ConnectorError::Unreachable(format!("{server}: {err}"))),
            Err(_) => Err(ConnectorError::Timeout(format!(
                "{server} did not accept a connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Maps a database failure to what the engine should do about it.
    fn error(&self, err: sqlx::Error) -> ConnectorError {
        let settings = &self.settings;
        let server = format!(
            "{} at {}:{}",
            self.engine().name(),
            settings.host,
            settings.port
        );
        match err {
            sqlx::Error::Database(database) => {
                let code = database
                    .code()
                    .map(|code| code.into_owned())
                    .unwrap_or_default();
                let number = database
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map(MySqlDatabaseError::number);
                let message = database.message().to_owned();
                classify(self.engine(), &code, number, &message, settings)
            }
            // rustls reports a refused certificate as invalid data on the socket.
            sqlx::Error::Io(err) if err.kind() == std::io::ErrorKind::InvalidData => {
                ConnectorError::Unreachable(format!("{server}: {TLS_FAILED}: {err}"))
            }
            sqlx::Error::Io(err) => ConnectorError::Unreachable(format!("{server}: {err}")),
            sqlx::Error::Tls(err) => {
                ConnectorError::Unreachable(format!("{server}: {TLS_FAILED}: {err}"))
            }
            // sqlx retries refused connections until the acquire timeout, then reports this.
            sqlx::Error::PoolTimedOut => ConnectorError::Timeout(format!(
                "{server} could not be connected to within {} s (refused, unreachable or \
                 out of connections)",
                CONNECT_TIMEOUT.as_secs()
            )),
            sqlx::Error::Protocol(detail) => {
                ConnectorError::Malformed(format!("{server} broke the protocol: {detail}"))
            }
            other => ConnectorError::Malformed(format!("{server}: {other}")),
        }
    }

    /// Reads one page from `position`: undated rows by key, then dated ones by (change, key).
    async fn read(
        &self,
        object: ObjectType,
        layout: &Layout,
        since: Option<DateTime<Utc>>,
        position: Position,
        page_size: u32,
        connection_id: &str,
    ) -> Result<Page, ConnectorError> {
        let mapping = &self.settings.mapping.objects[&object];
        let zone = &self.settings.time_zone;
        let changed_kind = layout.columns[layout.changed].kind;
        let since_text = since.map(|since| sql::bound_text(changed_kind, since, zone));
        let page_size = page_size.max(1);
        let mut rows = Vec::new();
        let mut position = Some(position);

        // Rows without a change time first, then the dated ones: one page may span both.
        while let Some(current) = position.take() {
            let wanted = page_size - rows.len() as u32;
            if wanted == 0 {
                position = Some(current);
                break;
            }
            let statement = match &current {
                Position::Undated { after_key } => {
                    sql::undated_page(self.engine(), mapping, layout, after_key.as_deref(), wanted)
                }
                Position::Dated { after } => sql::dated_page(
                    self.engine(),
                    mapping,
                    layout,
                    since_text.as_deref(),
                    after
                        .as_ref()
                        .map(|(changed, key)| (changed.as_str(), key.as_str())),
                    wanted,
                ),
            };
            let fetched = self.fetch(&statement).await?;
            let full = fetched.len() as u32 == wanted;
            let last = fetched.last().cloned();
            rows.extend(fetched);
            position = match (current, full, last) {
                (Position::Undated { .. }, false, _) => Some(Position::Dated { after: None }),
                (Position::Undated { .. }, true, Some(last)) => Some(Position::Undated {
                    after_key: last[layout.key].clone(),
                }),
                (Position::Dated { .. }, true, Some(last)) => {
                    match (last[layout.changed].clone(), last[layout.key].clone()) {
                        (Some(changed), Some(key)) => Some(Position::Dated {
                            after: Some((changed, key)),
                        }),
                        _ => None,
                    }
                }
                _ => None,
            };
            if rows.len() as u32 == page_size {
                break;
            }
        }

        let mut page = Page {
            // Null change times come first, then ascending change times: a record changed
            // during the listing moves behind the position and is read later in it.
            ordered_by_change: true,
            next_page: position
                .map(|position| serde_json::to_string(&position))
                .transpose()
                .map_err(|err| ConnectorError::Malformed(err.to_string()))?,
            ..Page::default()
        };
        for row in rows {
            match mapping::record(object, layout, connection_id, zone, &row) {
                Ok(record) => page.records.push(record),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        Ok(page)
    }
}

/// Whether a failed statement is worth sending again: a dropped connection, or a transient
/// server condition. A pool that gave no connection in time has already waited.
fn is_retried(err: &ConnectorError) -> bool {
    match err {
        // A refused certificate or a server without TLS stays so.
        ConnectorError::Unreachable(detail) => !detail.contains(TLS_FAILED),
        ConnectorError::Status { status: 503, .. } => true,
        _ => false,
    }
}

/// Checks an object's mapping against the columns the database describes.
fn resolve(
    object: ObjectType,
    mapping: &ObjectMapping,
    columns: Vec<Column>,
) -> Result<Layout, String> {
    let find = |role: &str, name: &str| -> Result<usize, String> {
        columns
            .iter()
            .position(|column| column.name == name)
            .ok_or_else(|| {
                format!(
                    "the mapping of {object} names the {role} column `{name}`, which {} does not \
                     have; its columns: {}",
                    describe_relation(mapping),
                    columns
                        .iter()
                        .map(|column| column.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    };
    let key = find("key", &mapping.key)?;
    let changed = find("changed", &mapping.changed)?;
    let created = mapping
        .created
        .as_deref()
        .map(|name| find("created", name))
        .transpose()?;
    let deleted = mapping
        .deleted
        .as_deref()
        .map(|name| find("deleted", name))
        .transpose()?;
    let fields = mapping
        .fields
        .iter()
        .map(|(field, name)| Ok((field.clone(), find(&format!("`{field}`"), name)?)))
        .collect::<Result<Vec<_>, String>>()?;

    let type_error = |role: &str, index: usize, expected: &str| {
        let column = &columns[index];
        format!(
            "the {role} column `{}` of {object} has type {}; it must be {expected}",
            column.name, column.type_name
        )
    };
    if !columns[changed].kind.is_time() {
        return Err(type_error(
            "changed",
            changed,
            "a timestamp (with or without time zone)",
        ));
    }
    if !matches!(
        columns[key].kind,
        Kind::Integer | Kind::Number | Kind::Text | Kind::Uuid
    ) {
        return Err(type_error(
            "key",
            key,
            "an integer, a decimal, text or a UUID",
        ));
    }
    if let Some(created) = created {
        if !matches!(
            columns[created].kind,
            Kind::Timestamp | Kind::TimestampTz | Kind::Date
        ) {
            return Err(type_error("created", created, "a timestamp or a date"));
        }
    }
    if let Some(deleted) = deleted {
        if !matches!(
            columns[deleted].kind,
            Kind::Bool | Kind::Integer | Kind::Timestamp | Kind::TimestampTz | Kind::Date
        ) {
            return Err(type_error(
                "deleted",
                deleted,
                "a boolean, an integer flag or a time",
            ));
        }
    }
    Ok(Layout {
        columns,
        key,
        changed,
        created,
        deleted,
        fields,
    })
}

fn describe_relation(mapping: &ObjectMapping) -> String {
    match &mapping.relation {
        crate::config::Relation::Table {
            schema: Some(schema),
            name,
        } => {
            format!("the table `{schema}.{name}`")
        }
        crate::config::Relation::Table { schema: None, name } => format!("the table `{name}`"),
        crate::config::Relation::Query(_) => "the query".to_owned(),
    }
}

/// Sorts a database error by SQLSTATE (and MariaDB's error number where SQLSTATE is shared):
/// refused logins and privileges are rejected credentials, a missing database, table or column
/// is a connection setting to fix, lost connections and conflicts are transient. Statement
/// failures that retrying cannot cure are reported as a 400-class answer and transient ones as
/// 503, the classes the engine already knows from HTTP sources.
fn classify(
    engine: Engine,
    code: &str,
    number: Option<u16>,
    message: &str,
    settings: &Settings,
) -> ConnectorError {
    let database = &settings.database;
    match (engine, code, number) {
        (Engine::Postgres, "28P01" | "28000", _)
        | (Engine::MySql, _, Some(1044 | 1045 | 1698 | 1820 | 1862 | 4151)) => {
            ConnectorError::CredentialsRejected(format!("user `{}`: {message}", settings.username))
        }
        (Engine::Postgres, "42501", _) | (Engine::MySql, _, Some(1142 | 1143)) => {
            ConnectorError::CredentialsRejected(format!(
                "user `{}` may not read what the mapping names: {message}",
                settings.username
            ))
        }
        (Engine::Postgres, "3D000", _) | (Engine::MySql, _, Some(1049)) => {
            ConnectorError::InvalidCredentials(format!(
                "the database `{database}` does not exist on the server: {message}"
            ))
        }
        (Engine::Postgres, "42P01" | "42703" | "42601" | "3F000" | "42883" | "42804", _)
        | (Engine::MySql, _, Some(1054 | 1064 | 1146 | 1109)) => {
            ConnectorError::InvalidCredentials(message.to_owned())
        }
        // A statement that ran past `statement_timeout` would only run as long again.
        (Engine::Postgres, "57014", _) => ConnectorError::Timeout(message.to_owned()),
        (Engine::Postgres, code, _)
            if code.starts_with("08")
                || code.starts_with("57")
                || code.starts_with("40")
                || code.starts_with("53") =>
        {
            ConnectorError::Status {
                status: 503,
                detail: format!("database error {code}: {message}"),
            }
        }
        (Engine::MySql, _, Some(1205 | 1213 | 1040 | 1053 | 2006 | 2013)) => {
            ConnectorError::Status {
                status: 503,
                detail: format!("database error {code}: {message}"),
            }
        }
        _ => ConnectorError::Status {
            status: 400,
            detail: format!("database error {code}: {message}"),
        },
    }
}

#[async_trait::async_trait]
impl Source for SqlSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.probe().await?;
        self.fetch(&Statement {
            sql: "SELECT CAST(1 AS CHAR)".to_owned(),
            binds: Vec::new(),
        })
        .await
        .map(|_| ())?;
        for object in self.settings.mapping.objects.keys() {
            self.layout(*object).await?;
        }
        Ok(())
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        if !crate::OBJECTS.contains(&request.object) {
            return Err(ConnectorError::Unsupported(request.object.to_string()));
        }
        // An object the connection does not map has no rows.
        let Some(layout) = self.layout(request.object).await? else {
            return Ok(Page::default());
        };
        let position = match &request.page {
            None => Position::Undated { after_key: None },
            Some(page) => serde_json::from_str(page).map_err(|err| {
                ConnectorError::Malformed(format!(
                    "the page position {page:?} is not one of ours: {err}"
                ))
            })?,
        };
        self.read(
            request.object,
            layout,
            request.since,
            position,
            request.page_size,
            &request.connection_id,
        )
        .await
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let Some(layout) = self.layout(object).await? else {
            return Ok(IdPage::default());
        };
        let mapping = &self.settings.mapping.objects[&object];
        let statement = sql::id_page(self.engine(), mapping, layout, page, ID_PAGE_SIZE);
        let rows = self.fetch(&statement).await?;
        let remote_ids: Vec<String> = rows
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect();
        Ok(IdPage {
            next_page: (remote_ids.len() as u32 == ID_PAGE_SIZE)
                .then(|| remote_ids.last().cloned())
                .flatten(),
            remote_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_fall_into_what_the_engine_acts_on() {
        let credentials = serde_json::json!({"host": "db", "database": "mes",
            "username": "reader", "mapping": {"objects": {"assets": {"table": "machines",
            "key": "id", "changed": "updated_at"}}}});
        let credentials = Credentials::new(credentials.as_object().unwrap().clone());
        let settings = Settings::from_credentials(Engine::Postgres, &credentials).unwrap();
        let class = |engine, code: &str, number| {
            let err = classify(engine, code, number, "message", &settings);
            (err.is_transient(), err.to_string())
        };
        let (transient, text) = class(Engine::Postgres, "28P01", None);
        assert!(
            !transient && text.contains("rejected the credentials: user `reader`"),
            "{text}"
        );
        let (_, text) = class(Engine::MySql, "28000", Some(1045));
        assert!(text.contains("rejected the credentials"), "{text}");
        let (_, text) = class(Engine::MySql, "HY000", Some(4151));
        assert!(text.contains("rejected the credentials"), "{text}");
        let (_, text) = class(Engine::MySql, "42000", Some(1049));
        assert!(text.contains("the database `mes` does not exist"), "{text}");
        assert!(
            class(Engine::Postgres, "40001", None).0,
            "serialization failures are retried"
        );
        assert!(
            class(Engine::MySql, "40001", Some(1213)).0,
            "deadlocks are retried"
        );
        assert!(
            !class(Engine::Postgres, "22P02", None).0,
            "bad input is not retried"
        );
        let (transient, text) = class(Engine::Postgres, "57014", None);
        assert!(transient && text.contains("timed out"), "{text}");
        assert!(is_retried(&ConnectorError::Unreachable("reset".into())));
        assert!(!is_retried(&ConnectorError::Timeout(
            "no connection".into()
        )));
    }

    #[test]
    fn positions_round_trip_as_page_tokens() {
        for position in [
            Position::Undated { after_key: None },
            Position::Undated {
                after_key: Some("17".into()),
            },
            Position::Dated {
                after: Some(("2024-01-01 00:00:00.5".into(), "a'b".into())),
            },
        ] {
            let token = serde_json::to_string(&position).unwrap();
            assert_eq!(serde_json::from_str::<Position>(&token).unwrap(), position);
        }
    }
}
