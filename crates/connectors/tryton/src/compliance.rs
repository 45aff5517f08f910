//! Tryton as a subject of the compliance harness: a real `trytond` per check on a copy of the
//! empty template, changed through its JSON-RPC as Tryton's administrator.
//!
//! The harness writes work orders (project tasks) and assets (serial-numbered lots). Tryton
//! stamps `create_date` and `write_date` itself, from its own clock, so a write with a chosen
//! change time is made in two steps: the record is written through JSON-RPC, then its stamps are
//! set in the server's SQLite file to what the harness chose. Every state this produces occurs
//! in real Tryton databases: records last changed long ago, many records sharing one stamp (all
//! records of one Tryton transaction do), sub-second stamps, and records without stamps
//! (inserted by SQL, as migrations and imports do). A naive local time is read in the zone the
//! harness names, as Tryton's clients turn a user's wall-clock time into the UTC they store.
//!
//! Source faults: revoked credentials change the sync user's password, and expired sessions
//! archive-and-keep the user (`active` written), both of which make Tryton drop the user's
//! sessions; logins are counted from Tryton's session table. A skewed clock and a corrupt
//! record cannot be produced by a real Tryton server here: the subject answers `false`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use millrace_compliance::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
use millrace_connector::Connector;
use millrace_model::ObjectType;
use serde_json::{json, Value};
use sqlx::Connection as _;

use crate::client::TrytonClient;
use crate::encoding;
use crate::server::{Template, TrytonServer, USER};

/// The Tryton subject.
pub struct TrytonSubject;

/// Returns the subject the harness tests use.
pub fn subject() -> TrytonSubject {
    TrytonSubject
}

#[async_trait]
impl Subject for TrytonSubject {
    fn connector(&self) -> Arc<dyn Connector> {
        crate::connector()
    }

    async fn start(&self, zone: Option<&str>) -> Arc<dyn TestSource> {
        let server = TrytonServer::start(Template::Empty).await;
        let admin = server.admin();
        let zone: chrono_tz::Tz = zone.unwrap_or("UTC").parse().expect("a known time zone");
        let product = create_part(&admin).await;
        let user = admin
            .call(
                "model.res.user.search",
                vec![
                    json!([["login", "=", USER.0]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                ],
            )
            .await
            .expect("the sync user is found")[0]
            .as_i64()
            .expect("a user id");
        Arc::new(TrytonTestSource {
            server,
            admin,
            zone,
            product,
            user,
        })
    }
}

/// The product every harness lot is a lot of.
async fn create_part(admin: &TrytonClient) -> i64 {
    let unit = admin
        .call(
            "model.product.uom.search",
            vec![
                json!([["name", "=", "Unit"]]),
                json!(0),
                json!(1),
                Value::Null,
            ],
        )
        .await
        .expect("the unit of measure is found")[0]
        .clone();
    let template = admin
        .call(
            "model.product.template.create",
            vec![json!([{
                "name": "Harness datalogger",
                "type": "goods",
                "default_uom": unit,
                "list_price": {"__class__": "Decimal", "decimal": "0"},
                "products": [["create", [{}]]],
            }])],
        )
        .await
        .expect("the product is created")[0]
        .clone();
    admin
        .call(
            "model.product.product.search",
            vec![
                json!([["template", "=", template]]),
                json!(0),
                json!(1),
                Value::Null,
            ],
        )
        .await
        .expect("the product is found")[0]
        .as_i64()
        .expect("a product id")
}

/// One running Tryton server under the harness's control.
pub struct TrytonTestSource {
    server: TrytonServer,
    admin: TrytonClient,
    zone: chrono_tz::Tz,
    product: i64,
    user: i64,
}

/// The model and table of an object the harness writes, and the field holding its marker.
fn written(object: ObjectType) -> (&'static str, &'static str, &'static str) {
    match object {
        ObjectType::WorkOrders => ("project.work", "project_work", "name"),
        ObjectType::Assets => ("stock.lot", "stock_lot", "number"),
        other => panic!("the harness writes no {other}"),
    }
}

/// A stamp as Tryton stores it in SQLite: Python's `isoformat(' ')`, without a fraction when
/// there is none.
fn stamp(at: DateTime<Utc>) -> String {
    let naive = at.naive_utc();
    if at.timestamp_subsec_micros() == 0 {
        naive.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        naive.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

impl TrytonTestSource {
    /// The instant a change time stands for; `None` for the server's own clock, `Some(None)`
    /// for no stamp at all.
    fn instant(&self, changed: ChangeTime) -> Option<Option<DateTime<Utc>>> {
        match changed {
            ChangeTime::Now => None,
            ChangeTime::At(at) => Some(Some(at)),
            ChangeTime::Local(local) => Some(Some(self.local_to_utc(local))),
            ChangeTime::Null => Some(None),
        }
    }

    /// Reads a wall-clock time in the source's zone: the earlier of a repeated hour, and a
    /// time skipped by a daylight-saving change as the hour after.
    fn local_to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        self.zone
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                self.zone
                    .from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })
            .expect("a time an hour later exists")
            .with_timezone(&Utc)
    }

    /// Sets a record's stamps in the server's database file.
    async fn set_stamps(
        &self,
        table: &str,
        id: i64,
        created: Option<Option<DateTime<Utc>>>,
        written: Option<DateTime<Utc>>,
    ) {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.server.database_file())
            .busy_timeout(std::time::Duration::from_secs(30));
        let mut connection = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("the Tryton database opens");
        let result = match created {
            Some(created) => {
                sqlx::query(&format!(
                    "UPDATE \"{table}\" SET create_date = $1, write_date = $2 WHERE id = $3"
                ))
                .bind(created.map(stamp))
                .bind(written.map(stamp))
                .bind(id)
                .execute(&mut connection)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "UPDATE \"{table}\" SET write_date = $1 WHERE id = $2"
                ))
                .bind(written.map(stamp))
                .bind(id)
                .execute(&mut connection)
                .await
            }
        };
        assert_eq!(
            result.expect("the stamps are set").rows_affected(),
            1,
            "{table} {id} exists"
        );
        connection.close().await.expect("the database closes");
    }

    async fn call(&self, method: &str, params: Vec<Value>) -> Value {
        self.admin
            .call(method, params)
            .await
            .unwrap_or_else(|err| panic!("{method}: {err}"))
    }
}

#[async_trait]
impl TestSource for TrytonTestSource {
    fn base_url(&self) -> String {
        self.server.base_url.clone()
    }

    fn credentials(&self, base_url: &str) -> Value {
        self.server.credentials(base_url)
    }

    fn session_credentials(&self, base_url: &str) -> Option<Value> {
        // Tryton always works by session: login, then the session header.
        Some(self.server.credentials(base_url))
    }

    fn transactional(&self) -> ObjectType {
        ObjectType::WorkOrders
    }

    fn master(&self) -> ObjectType {
        ObjectType::Assets
    }

    fn request_hint(&self, object: ObjectType) -> String {
        format!("method=model.{}.", written(object).0)
    }

    async fn create(&self, object: ObjectType, marker: &str, changed: ChangeTime) -> String {
        let (model, table, field) = written(object);
        let values = match object {
            ObjectType::WorkOrders => json!({field: marker, "type": "task"}),
            _ => json!({field: marker, "product": self.product}),
        };
        let created = self
            .call(&format!("model.{model}.create"), vec![json!([values])])
            .await;
        let id = created[0].as_i64().expect("the created record's id");
        if let Some(at) = self.instant(changed) {
            // Created at that instant and never changed since.
            self.set_stamps(table, id, Some(at), None).await;
        }
        id.to_string()
    }

    async fn update(&self, object: ObjectType, remote_id: &str, marker: &str, changed: ChangeTime) {
        let (model, table, field) = written(object);
        let id: i64 = remote_id.parse().expect("a Tryton id");
        self.call(
            &format!("model.{model}.write"),
            vec![json!([id]), json!({field: marker})],
        )
        .await;
        match self.instant(changed) {
            None => {}
            // No stamp at all: neither written nor created at a known time.
            Some(None) => self.set_stamps(table, id, Some(None), None).await,
            Some(Some(at)) => self.set_stamps(table, id, None, Some(at)).await,
        }
    }

    async fn delete(&self, object: ObjectType, remote_id: &str) {
        let (model, _, _) = written(object);
        let id: i64 = remote_id.parse().expect("a Tryton id");
        self.call(&format!("model.{model}.delete"), vec![json!([id])])
            .await;
    }

    async fn truth(&self, object: ObjectType) -> Vec<TruthRow> {
        let (model, _, field) = written(object);
        let domain = match object {
            ObjectType::WorkOrders => json!([["type", "=", "task"]]),
            _ => json!([["active", "in", [true, false]]]),
        };
        let records = self
            .call(
                &format!("model.{model}.search_read"),
                vec![
                    domain,
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                    json!([field, "last_modified_at"]),
                ],
            )
            .await;
        records
            .as_array()
            .expect("a list of records")
            .iter()
            .map(|record| TruthRow {
                remote_id: record["id"].as_i64().expect("an id").to_string(),
                marker: record[field].as_str().map(str::to_owned),
                changed_at: encoding::read_datetime(&record["last_modified_at"]),
            })
            .collect()
    }

    fn marker_of(&self, object: ObjectType, record: &Value) -> Option<String> {
        let field = match object {
            ObjectType::WorkOrders => "title",
            _ => "serial_number",
        };
        record[field].as_str().map(str::to_owned)
    }

    async fn fault(&self, fault: SourceFault) -> bool {
        match fault {
            SourceFault::RevokeCredentials(revoked) => {
                // An administrator changing the password; Tryton ends the user's sessions.
                let password = if revoked {
                    "changed by the administrator"
                } else {
                    USER.1
                };
                self.call(
                    "model.res.user.write",
                    vec![json!([self.user]), json!({"password": password})],
                )
                .await;
                true
            }
            SourceFault::ExpireSessions => {
                // Writing `active` makes Tryton clear the user's sessions, as a timeout would.
                self.call(
                    "model.res.user.write",
                    vec![json!([self.user]), json!({"active": true})],
                )
                .await;
                true
            }
            SourceFault::ClockOffset(_) | SourceFault::Corrupt(_) => false,
        }
    }

    async fn logins(&self) -> Option<u64> {
        // Every login opens one row of `ir_session`; SQLite's sequence counts them all, also
        // those of sessions since ended.
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.server.database_file())
            .read_only(true);
        let mut connection = sqlx::SqliteConnection::connect_with(&options).await.ok()?;
        let count: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'ir_session'")
                .fetch_optional(&mut connection)
                .await
                .ok()?;
        connection.close().await.ok()?;
        count.and_then(|count| u64::try_from(count).ok())
    }
}
