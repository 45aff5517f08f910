//! MES databases as a subject of the compliance harness, and the throwaway databases tests
//! write into: a fresh schema on the local PostgreSQL (`MILLRACE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) or a fresh database on the local MariaDB
//! (`MILLRACE_TEST_MARIADB_URL`, default `mysql://root@127.0.0.1:3306`), dropped when done.
//!
//! The harness writes machines (assets, with a zoned change column) and production orders
//! (with a wall-clock change column in the source's zone) with plain SQL. The connector
//! reaches the database over its own protocol, not HTTP, so the harness's proxy sees none of
//! its requests: [`TestSource::through_proxy`] answers false and the proxy's fault checks skip.

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use millrace_compliance::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
use millrace_connector::Connector;
use millrace_model::ObjectType;
use serde_json::{json, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Executor as _, Row as _};

use crate::mapping::Kind;
use crate::Engine;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MARIADB_URL: &str = "mysql://root@127.0.0.1:3306";

enum AdminPool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// A schema (PostgreSQL) or database (MariaDB) of its own for one test, dropped on drop.
pub struct TestDatabase {
    pub engine: Engine,
    /// The schema or database name; tables are named `<name>.<table>` in mappings.
    pub name: String,
    host: String,
    port: u16,
    database: String,
    username: String,
    password: Option<String>,
    pool: AdminPool,
}

impl TestDatabase {
    /// Creates a uniquely named schema or database on the engine's test server.
    pub async fn create(engine: Engine, prefix: &str) -> TestDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        match engine {
            Engine::Postgres => {
                let url = std::env::var("MILLRACE_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .connect_with(options.clone().options([("TimeZone", "UTC")]))
                    .await
                    .unwrap_or_else(|err| panic!("PostgreSQL at {url} is required: {err}"));
                pool.execute(format!("CREATE SCHEMA \"{name}\"").as_str())
                    .await
                    .unwrap();
                TestDatabase {
                    engine,
                    host: options.get_host().to_owned(),
                    port: options.get_port(),
                    database: options.get_database().unwrap_or("postgres").to_owned(),
                    username: options.get_username().to_owned(),
                    password: password_of(&url),
                    name,
                    pool: AdminPool::Postgres(pool),
                }
            }
            Engine::MySql => {
                let url = std::env::var("MILLRACE_TEST_MARIADB_URL")
                    .unwrap_or_else(|_| DEFAULT_MARIADB_URL.to_owned());
                let options = MySqlConnectOptions::from_str(&url)
                    .expect("a MariaDB URL")
                    .timezone(Some("+00:00".to_owned()));
                let mut server = options.connect().await.unwrap_or_else(|err| {
                    panic!("MariaDB at {url} is required (crates/connectors/mes_sql/ci/setup.sh starts it): {err}")
                });
                server
                    .execute(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4").as_str())
                    .await
                    .unwrap();
                drop(server);
                let pool = MySqlPoolOptions::new()
                    .max_connections(2)
                    .connect_with(options.clone().database(&name))
                    .await
                    .unwrap();
                TestDatabase {
                    engine,
                    host: options.get_host().to_owned(),
                    port: options.get_port(),
                    database: name.clone(),
                    username: options.get_username().to_owned(),
                    password: password_of(&url),
                    name,
                    pool: AdminPool::MySql(pool),
                }
            }
        }
    }

    /// Runs statements (separated by `;` at line ends), as the MES itself would.
    pub async fn batch(&self, sql: &str) {
        for statement in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            let statement = statement.replace("{schema}", &self.name);
            let done = match &self.pool {
                AdminPool::Postgres(pool) => pool.execute(statement.as_str()).await.map(|_| ()),
                AdminPool::MySql(pool) => pool.execute(statement.as_str()).await.map(|_| ()),
            };
            done.unwrap_or_else(|err| panic!("{statement}: {err}"));
        }
    }

    /// Runs one statement with text parameters (`None` is NULL) and returns the rows it
    /// returns as text. `{schema}` in `sql` names this test's schema or database.
    pub async fn query(&self, sql: &str, binds: &[Option<String>]) -> Vec<Vec<Option<String>>> {
        let sql = sql.replace("{schema}", &self.name);
        match &self.pool {
            AdminPool::Postgres(pool) => {
                let mut query = sqlx::query(&sql);
                for bind in binds {
                    query = query.bind(bind.clone());
                }
                let rows = query
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.get::<Option<String>, _>(i))
                            .collect()
                    })
                    .collect()
            }
            AdminPool::MySql(pool) => {
                let mut query = sqlx::query(&sql);
                for bind in binds {
                    query = query.bind(bind.clone());
                }
                let rows = query
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.get::<Option<String>, _>(i))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Runs one statement with text parameters; returns the id MariaDB gave an inserted row.
    pub async fn execute(&self, sql: &str, binds: &[Option<String>]) -> u64 {
        let sql = sql.replace("{schema}", &self.name);
        match &self.pool {
            AdminPool::Postgres(pool) => {
                let mut query = sqlx::query(&sql);
                for bind in binds {
                    query = query.bind(bind.clone());
                }
                query
                    .execute(pool)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
                0
            }
            AdminPool::MySql(pool) => {
                let mut query = sqlx::query(&sql);
                for bind in binds {
                    query = query.bind(bind.clone());
                }
                query
                    .execute(pool)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"))
                    .last_insert_id()
            }
        }
    }

    /// A placeholder for parameter `n` (1-based) cast to a wall-clock or zoned time.
    pub fn time_param(&self, n: usize, kind: Kind) -> String {
        match (self.engine, kind) {
            (Engine::Postgres, Kind::TimestampTz) => {
                format!("(CAST(${n} AS TIMESTAMP) AT TIME ZONE 'UTC')")
            }
            (Engine::Postgres, _) => format!("CAST(${n} AS TIMESTAMP)"),
            (Engine::MySql, _) => "CAST(? AS DATETIME(6))".to_owned(),
        }
    }

    /// A placeholder for parameter `n` (1-based) as it is.
    pub fn param(&self, n: usize) -> String {
        match self.engine {
            Engine::Postgres => format!("${n}"),
            Engine::MySql => "?".to_owned(),
        }
    }

    /// The connection credentials of this database with `mapping` and `time_zone`.
    pub fn credentials(&self, mapping: Value, time_zone: &str) -> Value {
        json!({
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "username": self.username,
            "password": self.password,
            "time_zone": time_zone,
            "mapping": mapping,
        })
    }

    /// A table's name as a mapping names it.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }

    /// The server's address, as a URL.
    pub fn url(&self) -> String {
        let scheme = match self.engine {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.database)
    }
}

fn password_of(url: &str) -> Option<String> {
    let authority = url.split("://").nth(1)?.split('@').collect::<Vec<_>>();
    if authority.len() < 2 {
        return None;
    }
    authority[0]
        .split_once(':')
        .map(|(_, password)| password.to_owned())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = match self.engine {
            Engine::Postgres => format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name),
            Engine::MySql => format!("DROP DATABASE IF EXISTS `{}`", self.name),
        };
        let pool = match &self.pool {
            AdminPool::Postgres(pool) => AdminPool::Postgres(pool.clone()),
            AdminPool::MySql(pool) => AdminPool::MySql(pool.clone()),
        };
        // Drop runs inside the test's runtime, which cannot block on itself: a thread with
        // a runtime of its own drops the schema and waits for it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let done = match &pool {
                    AdminPool::Postgres(pool) => pool.execute(statement.as_str()).await.map(|_| ()),
                    AdminPool::MySql(pool) => pool.execute(statement.as_str()).await.map(|_| ()),
                };
                if let Err(err) = done {
                    eprintln!("could not drop a test schema: {err}");
                }
            });
        });
        let _ = dropped.join();
    }
}

/// MES databases of one engine, for the harness.
pub struct SqlSubject {
    engine: Engine,
}

/// Returns the subject for `engine`.
pub fn subject(engine: Engine) -> SqlSubject {
    SqlSubject { engine }
}

#[async_trait]
impl Subject for SqlSubject {
    fn connector(&self) -> Arc<dyn Connector> {
        crate::connector(self.engine)
    }

    async fn start(&self, zone: Option<&str>) -> Arc<dyn TestSource> {
        let database = TestDatabase::create(self.engine, "mes_compliance").await;
        let ddl = match self.engine {
            Engine::Postgres => {
                "CREATE TABLE \"{schema}\".machines (machine_id BIGSERIAL PRIMARY KEY, \
                    name TEXT, updated_at TIMESTAMPTZ);\n\
                 CREATE TABLE \"{schema}\".production_orders (order_id BIGSERIAL PRIMARY KEY, \
                    product TEXT, qty_planned NUMERIC(12, 3) DEFAULT 100, updated_at TIMESTAMP)"
            }
            Engine::MySql => {
                "CREATE TABLE machines (machine_id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                    name VARCHAR(200), updated_at TIMESTAMP(6) NULL DEFAULT NULL);\n\
                 CREATE TABLE production_orders (order_id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                    product VARCHAR(200), qty_planned DECIMAL(12, 3) DEFAULT 100, \
                    updated_at DATETIME(6) NULL)"
            }
        };
        database.batch(ddl).await;
        Arc::new(SqlTestSource {
            zone: zone
                .map(|zone| zone.parse().expect("a known zone"))
                .unwrap_or(chrono_tz::Tz::UTC),
            database,
            clock_offset: AtomicI64::new(0),
        })
    }
}

/// One throwaway MES database under the harness's control.
pub struct SqlTestSource {
    database: TestDatabase,
    zone: chrono_tz::Tz,
    /// Seconds the source's clock runs ahead of this host's (negative: behind).
    clock_offset: AtomicI64,
}

/// Table, key, marker column and change column kind of what the harness writes.
fn target(object: ObjectType) -> (&'static str, &'static str, &'static str, Kind) {
    match object {
        ObjectType::Assets => ("machines", "machine_id", "name", Kind::TimestampTz),
        ObjectType::ProductionOrders => {
            ("production_orders", "order_id", "product", Kind::Timestamp)
        }
        other => panic!("the harness writes no {other}"),
    }
}

impl SqlTestSource {
    /// The change column's text for `changed`, in that column's own clock.
    fn change_text(&self, kind: Kind, changed: ChangeTime) -> Option<String> {
        let at = match changed {
            ChangeTime::Null => return None,
            ChangeTime::Now => {
                Utc::now() + chrono::Duration::seconds(self.clock_offset.load(Ordering::SeqCst))
            }
            ChangeTime::At(at) => at,
            ChangeTime::Local(local) if kind == Kind::Timestamp => {
                return Some(local.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            }
            ChangeTime::Local(local) => millrace_connector::time::parse_time_in(
                &local.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
                &self.zone,
            )
            .expect("a local time"),
        };
        Some(crate::sql::bound_text(kind, at, &self.zone))
    }
}

#[async_trait]
impl TestSource for SqlTestSource {
    fn base_url(&self) -> String {
        self.database.url()
    }

    fn credentials(&self, _base_url: &str) -> Value {
        // The proxy speaks HTTP; the connector goes to the database itself.
        let machines = self.database.table("machines");
        let orders = self.database.table("production_orders");
        let mapping = json!({"objects": {
            "assets": {"table": machines, "key": "machine_id", "changed": "updated_at",
                "fields": {"name": "name"}},
            "production-orders": {"table": orders, "key": "order_id", "changed": "updated_at",
                "fields": {"product": "product", "quantity_planned": "qty_planned"}},
        }});
        self.database.credentials(mapping, self.zone.name())
    }

    fn session_credentials(&self, _base_url: &str) -> Option<Value> {
        None
    }

    fn through_proxy(&self) -> bool {
        false
    }

    fn transactional(&self) -> ObjectType {
        ObjectType::ProductionOrders
    }

    fn master(&self) -> ObjectType {
        ObjectType::Assets
    }

    fn request_hint(&self, object: ObjectType) -> String {
        target(object).0.to_owned()
    }

    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String {
        let (table, key, field, kind) = target(object);
        let db = &self.database;
        let binds = [Some(marker.to_owned()), self.change_text(kind, changed)];
        match db.engine {
            Engine::Postgres => {
                let sql = format!(
                    "INSERT INTO \"{{schema}}\".{table} ({field}, updated_at) VALUES ($1, {}) \
                     RETURNING CAST({key} AS TEXT)",
                    db.time_param(2, kind)
                );
                db.query(&sql, &binds).await[0][0].clone().expect("an id")
            }
            Engine::MySql => {
                let sql = format!(
                    "INSERT INTO {table} ({field}, updated_at) VALUES (?, {})",
                    db.time_param(2, kind)
                );
                db.execute(&sql, &binds).await.to_string()
            }
        }
    }

    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime) {
        let (table, key, field, kind) = target(object);
        let db = &self.database;
        let sql = format!(
            "UPDATE {} SET {field} = {}, updated_at = {} WHERE {} = {}",
            qualified(db, table),
            db.param(1),
            db.time_param(2, kind),
            key_text(db, key),
            db.param(3),
        );
        let binds = [
            Some(marker.to_owned()),
            self.change_text(kind, changed),
            Some(remote_id.to_owned()),
        ];
        db.execute(&sql, &binds).await;
    }

    async fn delete(&self, object: ObjectType, remote_id: &str) {
        let (table, key, _, _) = target(object);
        let db = &self.database;
        let sql = format!(
            "DELETE FROM {} WHERE {} = {}",
            qualified(db, table),
            key_text(db, key),
            db.param(1)
        );
        db.execute(&sql, &[Some(remote_id.to_owned())]).await;
    }

    async fn truth(&self, object: ObjectType) -> Vec<TruthRow> {
        let (table, key, field, kind) = target(object);
        let db = &self.database;
        let changed = match (db.engine, kind) {
            (Engine::Postgres, Kind::TimestampTz) => {
                "CAST((updated_at AT TIME ZONE 'UTC') AS TEXT)"
            }
            (Engine::Postgres, _) => "CAST(updated_at AS TEXT)",
            (Engine::MySql, _) => "CAST(updated_at AS CHAR)",
        };
        let sql = format!(
            "SELECT {}, {field}, {changed} FROM {}",
            key_text(db, key),
            qualified(db, table)
        );
        db.query(&sql, &[])
            .await
            .into_iter()
            .map(|row| TruthRow {
                remote_id: row[0].clone().unwrap_or_default(),
                marker: row[1].clone(),
                changed_at: row[2].as_deref().and_then(|text| {
                    crate::mapping::parse_time(kind, text, &self.zone)
                        .ok()
                        .flatten()
                }),
            })
            .collect()
    }

    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String> {
        let field = match object {
            ObjectType::Assets => "name",
            _ => "product",
        };
        record[field].as_str().map(str::to_owned)
    }

    async fn fault(&self, fault: SourceFault) -> bool {
        match fault {
            SourceFault::ClockOffset(seconds) => {
                self.clock_offset.store(seconds, Ordering::SeqCst);
                true
            }
            // PostgreSQL's numeric holds `NaN`, which no unified number can: such an order
            // cannot be read. MariaDB's DECIMAL has no such value.
            SourceFault::Corrupt(records) if self.database.engine == Engine::Postgres => {
                self.database
                    .execute(
                        "UPDATE \"{schema}\".production_orders SET qty_planned = 100 \
                         WHERE qty_planned = 'NaN'",
                        &[],
                    )
                    .await;
                for (object, remote_id) in records {
                    assert_eq!(
                        object,
                        ObjectType::ProductionOrders,
                        "only orders are corrupted"
                    );
                    self.database
                        .execute(
                            "UPDATE \"{schema}\".production_orders SET qty_planned = 'NaN' \
                             WHERE CAST(order_id AS TEXT) = $1",
                            &[Some(remote_id)],
                        )
                        .await;
                }
                true
            }
            // Credentials and sessions are not switched in this subject.
            SourceFault::RevokeCredentials(_)
            | SourceFault::ExpireSessions
            | SourceFault::Corrupt(_) => false,
        }
    }

    async fn logins(&self) -> Option<u64> {
        None
    }
}

fn key_text(db: &TestDatabase, key: &str) -> String {
    match db.engine {
        Engine::Postgres => format!("CAST({key} AS TEXT)"),
        Engine::MySql => format!("CAST({key} AS CHAR)"),
    }
}

fn qualified(db: &TestDatabase, table: &str) -> String {
    match db.engine {
        Engine::Postgres => format!("\"{{schema}}\".{table}"),
        Engine::MySql => table.to_owned(),
    }
}
