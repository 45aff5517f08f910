//! The MES database connector against the machine's real PostgreSQL and MariaDB, through a
//! whole Millrace (store, engine, HTTP API): an MES schema filled from the AI4I 2020 data set,
//! initial and incremental syncs after changes made with SQL, ties on the change column across
//! pages, deletions found by tombstone and by reconciliation, and connections refused at
//! connect time with nothing created. Each test works in a schema or database of its own.

mod support;

use chrono::{Duration, SubsecRound, Timelike, Utc};
use millrace_compliance::world::{assert_all_idle, test_config, Backend, World};
use millrace_mes_sql::compliance::TestDatabase;
use millrace_mes_sql::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{local, qualified, text, PLANT_ZONE};

fn system(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => millrace_mes_sql::POSTGRES_SYSTEM_ID,
        Engine::MySql => millrace_mes_sql::MYSQL_SYSTEM_ID,
    }
}

/// A Millrace on `backend` with the MES connectors and `page_size`.
async fn world(engine: Engine, backend: Backend, page_size: u32) -> World {
    let mut registry = millrace_connector::Registry::new();
    for connector in millrace_mes_sql::connectors() {
        registry.register(connector);
    }
    let mut config = test_config();
    config.page_size = page_size;
    World::start_with(backend, registry, system(engine), config).await
}

/// Every record of `object` of a connection, deleted ones included, by remote id.
async fn stored(
    world: &World,
    id: &str,
    object: &str,
) -> std::collections::BTreeMap<String, Value> {
    let path = format!("/v1/connections/{id}/{object}?include_deleted=true");
    world
        .admin_list_path(&path)
        .await
        .into_iter()
        .map(|record| (record["remote_id"].as_str().unwrap().to_owned(), record))
        .collect()
}

/// A time in the plant's wall clock as the API shows it (UTC).
fn as_utc(at: chrono::NaiveDateTime) -> String {
    use chrono::TimeZone;
    PLANT_ZONE
        .from_local_datetime(&at)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

async fn initial_and_incremental_sync_follow_sql_changes(engine: Engine, backend: Backend) {
    let db = TestDatabase::create(engine, "mes_sync").await;
    let fixture = support::load(&db).await;
    let world = world(engine, backend, 7).await;
    let credentials = db.credentials(support::mapping(&db), PLANT_ZONE.name());
    let (id, token) = world.connect("plant-nord", credentials, 30).await;
    let connection = world.wait_idle(&id).await;
    assert_all_idle(&connection);

    // The initial sync: every row of every mapped object, once.
    let expected = [
        ("sites", 2),
        ("assets", fixture.machines),
        ("production-orders", fixture.orders),
        ("work-orders", fixture.operations),
        ("asset-downtimes", fixture.downtimes),
        ("quality-events", fixture.checks),
        ("meters", 2 * fixture.machines),
        ("meter-readings", fixture.readings),
    ];
    assert!(
        fixture.downtimes > 0 && fixture.checks > 0,
        "the data set has failures and checks"
    );
    for (object, count) in expected {
        let records = world.list_all(&token, object).await;
        assert_eq!(records.len(), count, "{object}");
    }
    let (_, cursor) = world.list_all_from(&token, "production-orders", None).await;

    // Fields arrive typed, normalised and in UTC, references by id and remote id.
    let (order_id, began, produced, scrapped) = fixture.first_order.clone();
    let orders = stored(&world, &id, "production-orders").await;
    let order = &orders[&order_id];
    assert_eq!(order["number"], format!("PO-{order_id}"));
    assert_eq!(order["status"], "completed", "{order}");
    assert_eq!(order["remote_status"], "completed");
    assert_eq!(order["quantity_planned"], 25.0);
    assert_eq!(order["quantity_produced"], produced);
    assert_eq!(order["quantity_scrapped"], scrapped);
    assert_eq!(order["actual_start"], as_utc(began));
    assert_eq!(order["asset"]["remote_id"], "MC-L1");
    let assets = stored(&world, &id, "assets").await;
    assert_eq!(assets["MC-L1"]["status"], "operating");
    assert_eq!(assets["MC-H2"]["status"], "not_operating");
    assert_eq!(assets["MC-L1"]["site"]["remote_id"], "P-NORD");
    assert_eq!(
        assets["MC-L1"]["id"], order["asset"]["id"],
        "a reference names the record"
    );
    let operations = stored(&world, &id, "work-orders").await;
    let setup = &operations[&format!("{order_id}1")];
    assert_eq!(setup["number"], format!("PO-{order_id}/10"));
    assert_eq!(setup["status"], "completed");
    let checks = world.list_all(&token, "quality-events").await;
    let failed = checks
        .iter()
        .find(|check| check["event_type"] == "nonconformance");
    if let Some(failed) = failed {
        assert_eq!(failed["status"], "open", "{failed}");
    }
    assert!(checks
        .iter()
        .all(|check| check["number"].as_str().unwrap().starts_with("QC-")));
    let readings = world.list_all(&token, "meter-readings").await;
    assert!(readings.iter().all(|reading| reading["value"].is_number()));
    let meters = stored(&world, &id, "meters").await;
    let meter = &meters[readings[0]["meter"]["remote_id"].as_str().unwrap()];
    assert_eq!(
        meter["id"], readings[0]["meter"]["id"],
        "a reading names its meter"
    );
    assert!(meter["unit"] == "Nm" || meter["unit"] == "rpm", "{meter}");

    // Changes made with SQL, as the MES makes them.
    let now = local(Utc::now().trunc_subsecs(6));
    let orders_table = qualified(&db, "production_orders");
    let (p1, p2) = (db.param(1), db.param(2));
    let time = |n| db.time_param(n, millrace_mes_sql::mapping::Kind::Timestamp);
    db.execute(
        &format!(
            "UPDATE {orders_table} SET qty_produced = qty_produced + 5, updated_at = {} \
             WHERE order_no = {p2}",
            time(1)
        ),
        &[text(now), Some(format!("PO-{order_id}"))],
    )
    .await;
    let flagged = orders.keys().find(|key| **key != order_id).unwrap().clone();
    let flag = if engine == Engine::Postgres {
        "TRUE"
    } else {
        "1"
    };
    db.execute(
        &format!(
            "UPDATE {orders_table} SET is_deleted = {flag}, updated_at = {} \
             WHERE CAST(order_id AS CHAR(20)) = {p2}",
            time(1)
        ),
        &[text(now), Some(flagged.clone())],
    )
    .await;
    let new_downtime = vec![
        Some("900001".to_owned()),
        Some("MC-M1".to_owned()),
        text(now),
        None,
        Some("unplanned".to_owned()),
        Some("spindle overheating".to_owned()),
        text(now),
    ];
    support::insert(&db, "downtime_events", support::DOWNTIMES, &[new_downtime]).await;
    let gone = checks[0]["remote_id"].as_str().unwrap().to_owned();
    db.execute(
        &format!(
            "DELETE FROM {} WHERE CAST(check_id AS CHAR(20)) = {p1}",
            qualified(&db, "quality_checks")
        ),
        &[Some(gone.clone())],
    )
    .await;

    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["records_created"], 1, "{run}");
    assert_eq!(run["records_updated"], 2, "{run}");
    assert_eq!(run["records_deleted"], 1, "{run}");

    let orders = stored(&world, &id, "production-orders").await;
    assert_eq!(orders[&order_id]["quantity_produced"], produced + 5.0);
    assert!(orders[&order_id]["remote_deleted_at"].is_null());
    assert!(
        !orders[&flagged]["remote_deleted_at"].is_null(),
        "the flag is a tombstone"
    );
    let checks = stored(&world, &id, "quality-events").await;
    assert!(
        !checks[&gone]["remote_deleted_at"].is_null(),
        "reconciliation found the delete"
    );
    assert_eq!(
        checks
            .values()
            .filter(|c| c["remote_deleted_at"].is_null())
            .count(),
        fixture.checks - 1
    );
    let downtimes = stored(&world, &id, "asset-downtimes").await;
    assert_eq!(downtimes["900001"]["reason"], "spindle overheating");
    assert_eq!(downtimes["900001"]["started_at"], as_utc(now));

    // A client polling with its cursor sees exactly the two orders that changed, the
    // tombstone among them.
    let (changed, _) = world
        .list_all_from(
            &token,
            "production-orders?include_deleted=true",
            Some(&cursor),
        )
        .await;
    let mut changed: Vec<&str> = changed
        .iter()
        .map(|r| r["remote_id"].as_str().unwrap())
        .collect();
    changed.sort_unstable();
    let mut expected = vec![order_id.as_str(), flagged.as_str()];
    expected.sort_unstable();
    assert_eq!(changed, expected);

    // Nothing changed: nothing stored.
    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["records_created"], 0, "{run}");
    assert_eq!(run["records_updated"], 0, "{run}");
    world.finish().await;
}

async fn ties_on_the_change_column_cross_pages(engine: Engine) {
    let db = TestDatabase::create(engine, "mes_ties").await;
    let fixture = support::load(&db).await;
    let table = qualified(&db, "downtime_events");
    let time = db.time_param(1, millrace_mes_sql::mapping::Kind::Timestamp);
    // Every downtime shares one change time, with microseconds.
    let shared = local(Utc::now() - Duration::hours(3))
        .with_nanosecond(123_456_000)
        .unwrap();
    db.execute(
        &format!("UPDATE {table} SET updated_at = {time}"),
        &[text(shared)],
    )
    .await;
    let world = world(engine, Backend::Sqlite, 4).await;
    let credentials = db.credentials(support::mapping(&db), PLANT_ZONE.name());
    let (id, token) = world.connect("plant-sued", credentials, 30).await;
    assert_all_idle(&world.wait_idle(&id).await);
    let downtimes = world.list_all(&token, "asset-downtimes").await;
    assert_eq!(downtimes.len(), fixture.downtimes);
    assert!(
        fixture.downtimes > 8,
        "more ties than two pages: {}",
        fixture.downtimes
    );

    // Later, more than two pages of them change to another shared time.
    let later = local(Utc::now());
    let ids: Vec<String> = downtimes
        .iter()
        .take(9)
        .map(|r| r["remote_id"].as_str().unwrap().to_owned())
        .collect();
    for remote_id in &ids {
        db.execute(
            &format!(
                "UPDATE {table} SET reason = 'tie changed', updated_at = {time} \
                 WHERE CAST(event_id AS CHAR(20)) = {}",
                db.param(2)
            ),
            &[text(later), Some(remote_id.clone())],
        )
        .await;
    }
    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["records_updated"], 9, "{run}");
    let stored = stored(&world, &id, "asset-downtimes").await;
    for remote_id in &ids {
        assert_eq!(stored[remote_id]["reason"], "tie changed");
    }
    world.finish().await;
}

/// Connect attempts that must fail before anything is created, and what they say.
async fn bad_connections_create_nothing(engine: Engine) {
    let db = TestDatabase::create(engine, "mes_refused").await;
    support::load(&db).await;
    let world = world(engine, Backend::Sqlite, 50).await;
    let good = db.credentials(support::mapping(&db), PLANT_ZONE.name());
    let with = |change: Value| {
        let mut credentials = good.clone();
        credentials
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        credentials
    };
    let mut mapping = support::mapping(&db);
    mapping["objects"]["assets"]["table"] = json!(db.table("no_such_table"));
    let unknown_table = with(json!({"mapping": mapping}));
    let mut mapping = support::mapping(&db);
    mapping["objects"]["production-orders"]["fields"]["quantity_planned"] = json!("qty_plan");
    let unknown_column = with(json!({"mapping": mapping}));
    let mut mapping = support::mapping(&db);
    mapping["objects"]["asset-downtimes"]["changed"] = json!("reason");
    let text_change = with(json!({"mapping": mapping}));

    let reader = format!("mes_reader_{}", &db.name[db.name.len() - 8..]);
    let wrong_user = match engine {
        // The local PostgreSQL trusts its clients: an unknown role is what it refuses.
        Engine::Postgres => with(json!({"username": reader})),
        Engine::MySql => {
            db.batch(&format!(
                "CREATE USER '{reader}'@'%' IDENTIFIED BY 'right-password';\n\
                 GRANT SELECT ON `{}`.* TO '{reader}'@'%'",
                db.name
            ))
            .await;
            with(json!({"username": reader, "password": "wrong-password"}))
        }
    };
    let cases = [
        (
            wrong_user,
            StatusCode::UNPROCESSABLE_ENTITY,
            "credentials_rejected",
            reader.as_str(),
        ),
        (
            with(json!({"database": "no_such_mes_database"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "no_such_mes_database",
        ),
        (
            with(json!({"port": 1})),
            StatusCode::BAD_GATEWAY,
            "source_unreachable",
            "127.0.0.1:1",
        ),
        (
            unknown_table,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "no_such_table",
        ),
        (
            unknown_column,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "`qty_plan`",
        ),
        (
            text_change,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "must be a timestamp",
        ),
        (
            with(
                json!({"mapping": {"objects": {"assets": {"table": "machines\"; DROP TABLE x",
                "key": "machine_id", "changed": "updated_at"}}}}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "contains a quote",
        ),
    ];
    for (credentials, status, code, says) in cases {
        let body = json!({"customer_id": "plant-west", "system": system(engine),
            "deployment": "on_premise", "credentials": credentials});
        let reply = world
            .admin(Method::POST, "/v1/connections", Some(body))
            .await;
        reply.assert_problem(status, code);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{code}: {detail}");
    }
    if engine == Engine::MySql {
        db.batch(&format!("DROP USER '{reader}'@'%'")).await;
    }

    let connections = world.admin_get("/v1/connections").await;
    assert_eq!(connections["data"], json!([]), "nothing was created");
    let credits = world.admin_get("/v1/credits").await;
    assert_eq!(credits["used"], 0, "{credits}");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_initial_and_incremental_sync_on_sqlite() {
    initial_and_incremental_sync_follow_sql_changes(Engine::Postgres, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_initial_and_incremental_sync_on_postgres() {
    initial_and_incremental_sync_follow_sql_changes(Engine::Postgres, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_initial_and_incremental_sync_on_sqlite() {
    initial_and_incremental_sync_follow_sql_changes(Engine::MySql, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_initial_and_incremental_sync_on_postgres() {
    initial_and_incremental_sync_follow_sql_changes(Engine::MySql, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_ties_on_the_change_column_cross_pages() {
    ties_on_the_change_column_cross_pages(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_ties_on_the_change_column_cross_pages() {
    ties_on_the_change_column_cross_pages(Engine::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_bad_connections_create_nothing() {
    bad_connections_create_nothing(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_bad_connections_create_nothing() {
    bad_connections_create_nothing(Engine::MySql).await;
}

/// The connector's session is read-only: a query mapping reads the engine's own flag.
async fn sessions_are_read_only(engine: Engine) {
    let db = TestDatabase::create(engine, "mes_read_only").await;
    support::load(&db).await;
    let flag = match engine {
        Engine::Postgres => "current_setting('transaction_read_only')",
        // MariaDB describes the variable as BIGINT but shows it as `ON`: read it as text.
        Engine::MySql => "CAST(@@tx_read_only AS CHAR)",
    };
    let mapping = json!({"objects": {"assets": {
        "query": format!("SELECT m.*, {flag} AS read_only FROM {} m", db.table("machines")),
        "key": "machine_id", "changed": "updated_at", "fields": {"name": "name"}}}});
    let credentials: millrace_connector::Credentials =
        serde_json::from_value(db.credentials(mapping, "UTC")).unwrap();
    let connector = millrace_mes_sql::connector(engine);
    let source = connector.open(&credentials).unwrap();
    source.check().await.unwrap();
    let page = source
        .read_page(&millrace_connector::PageRequest {
            connection_id: "read-only".to_owned(),
            object: millrace_model::ObjectType::Assets,
            since: None,
            page: None,
            page_size: 100,
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 6, "{:?}", page.rejected);
    for record in &page.records {
        let read_only = record.custom_fields["read_only"]
            .as_str()
            .unwrap_or_default();
        assert!(
            read_only.eq_ignore_ascii_case("on") || read_only == "1",
            "the session is not read-only: {read_only}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_sessions_are_read_only() {
    sessions_are_read_only(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_sessions_are_read_only() {
    sessions_are_read_only(Engine::MySql).await;
}

/// A session the server ends between two pages of a listing (an administrator's kill, a
/// failover) costs nothing: the next page is read on a new session and no row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_a_session_ended_between_pages_loses_nothing() {
    let db = TestDatabase::create(Engine::Postgres, "mes_killed").await;
    let fixture = support::load(&db).await;
    let credentials: millrace_connector::Credentials =
        serde_json::from_value(db.credentials(support::mapping(&db), PLANT_ZONE.name())).unwrap();
    let source = millrace_mes_sql::connector(Engine::Postgres)
        .open(&credentials)
        .unwrap();
    let mut request = millrace_connector::PageRequest {
        connection_id: "killed".to_owned(),
        object: millrace_model::ObjectType::ProductionOrders,
        since: None,
        page: None,
        page_size: 5,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = source.read_page(&request).await.unwrap();
        for record in &page.records {
            assert!(
                seen.insert(record.remote_id.clone()),
                "{} twice",
                record.remote_id
            );
        }
        pages += 1;
        // The connector's sessions are the ones whose last statement read this schema.
        let ended = db
            .query(
                "SELECT CAST(pg_terminate_backend(pid) AS TEXT) FROM pg_stat_activity \
                 WHERE application_name = 'millrace' AND query LIKE $1",
                &[Some(format!("%{}%", db.name))],
            )
            .await;
        if pages == 1 {
            assert!(
                !ended.is_empty(),
                "no session of the connector was found to end"
            );
        }
        match page.next_page {
            Some(next) => request.page = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), fixture.orders);
    assert!(pages > 2);
}

/// A login the database stops accepting after the connection was made (an account locked by
/// the DBA) makes the connection `reauth_required` at its next sync; its data stays.
async fn a_locked_login_requires_reauth(engine: Engine) {
    let db = TestDatabase::create(engine, "mes_locked").await;
    let fixture = support::load(&db).await;
    let reader = format!("mes_reader_{}", &db.name[db.name.len() - 8..]);
    let (grant, lock, cleanup) = match engine {
        Engine::Postgres => (
            format!(
                "CREATE ROLE {reader} LOGIN;\n\
                 GRANT USAGE ON SCHEMA \"{{schema}}\" TO {reader};\n\
                 GRANT SELECT ON ALL TABLES IN SCHEMA \"{{schema}}\" TO {reader}"
            ),
            format!(
                "ALTER ROLE {reader} NOLOGIN;\n\
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{reader}'"
            ),
            format!("DROP OWNED BY {reader};\nDROP ROLE {reader}"),
        ),
        Engine::MySql => (
            format!(
                "CREATE USER '{reader}'@'%' IDENTIFIED BY 'reader-password';\n\
                 GRANT SELECT ON `{}`.* TO '{reader}'@'%'",
                db.name
            ),
            format!("ALTER USER '{reader}'@'%' ACCOUNT LOCK"),
            format!("DROP USER '{reader}'@'%'"),
        ),
    };
    db.batch(&grant).await;
    let world = world(engine, Backend::Sqlite, 50).await;
    let mut credentials = db.credentials(support::mapping(&db), PLANT_ZONE.name());
    credentials["username"] = json!(reader);
    credentials["password"] = json!("reader-password");
    let (id, token) = world.connect("plant-ost", credentials, 30).await;
    assert_all_idle(&world.wait_idle(&id).await);

    db.batch(&lock).await;
    let run = world.sync_and_wait(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let connection = world.admin_get(&format!("/v1/connections/{id}")).await;
    assert_eq!(connection["status"], "reauth_required", "{connection}");
    let reply = world
        .call(Some(&token), Method::GET, "/v1/production-orders", None)
        .await;
    assert!(!reply.status.is_success(), "{}", reply.body);
    let kept = world.admin_list_all(&id, "production-orders").await;
    assert_eq!(kept.len(), fixture.orders, "the data stays");
    db.batch(&cleanup).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_a_locked_login_requires_reauth() {
    a_locked_login_requires_reauth(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_a_locked_login_requires_reauth() {
    a_locked_login_requires_reauth(Engine::MySql).await;
}

/// Rows that change while a listing is between two pages are not skipped: a row already read
/// and a row not read yet both move behind the keyset position and arrive in the same listing,
/// and pages come in change order.
async fn rows_changed_during_a_listing_arrive_in_it(engine: Engine) {
    let db = TestDatabase::create(engine, "mes_during").await;
    let fixture = support::load(&db).await;
    let credentials: millrace_connector::Credentials =
        serde_json::from_value(db.credentials(support::mapping(&db), PLANT_ZONE.name())).unwrap();
    let source = millrace_mes_sql::connector(engine)
        .open(&credentials)
        .unwrap();
    let mut request = millrace_connector::PageRequest {
        connection_id: "during".to_owned(),
        object: millrace_model::ObjectType::ProductionOrders,
        since: Some(Utc::now() - Duration::days(30)),
        page: None,
        page_size: 5,
    };
    let first = source.read_page(&request).await.unwrap();
    assert!(first.ordered_by_change);
    let read_already = first.records[0].remote_id.clone();
    let newest_order = (1000 + 5 * 100 + 3).to_string();

    // Between two pages, the MES changes a row already read and one not yet read.
    let table = qualified(&db, "production_orders");
    let time = db.time_param(1, millrace_mes_sql::mapping::Kind::Timestamp);
    let changed_at = local(Utc::now().trunc_subsecs(6));
    for (remote_id, status) in [(&read_already, "on hold"), (&newest_order, "cancelled")] {
        db.execute(
            &format!(
                "UPDATE {table} SET updated_at = {time}, status = {} \
                 WHERE CAST(order_id AS CHAR(20)) = {}",
                db.param(2),
                db.param(3)
            ),
            &[
                text(changed_at),
                Some(status.to_owned()),
                Some(remote_id.clone()),
            ],
        )
        .await;
    }

    let mut records = first.records;
    request.page = first.next_page;
    while let Some(page) = request.page.clone() {
        let next = source
            .read_page(&millrace_connector::PageRequest {
                page: Some(page),
                ..request.clone()
            })
            .await
            .unwrap();
        records.extend(next.records);
        request.page = next.next_page;
    }
    let times: Vec<_> = records
        .iter()
        .map(|r| r.remote_updated_at.unwrap())
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "pages in change order"
    );
    let last_two: Vec<(&str, &str)> = records[records.len() - 2..]
        .iter()
        .map(|r| (r.remote_id.as_str(), r.fields["status"].as_str().unwrap()))
        .collect();
    let mut expected = vec![
        (read_already.as_str(), "on_hold"),
        (newest_order.as_str(), "cancelled"),
    ];
    expected.sort_unstable();
    let mut last_two = last_two;
    last_two.sort_unstable();
    assert_eq!(
        last_two, expected,
        "both changed rows arrive again, at the end"
    );
    let distinct: std::collections::BTreeSet<_> = records.iter().map(|r| &r.remote_id).collect();
    assert_eq!(distinct.len(), fixture.orders, "every order arrives");
    assert_eq!(
        records.len(),
        fixture.orders + 1,
        "only the row read already arrives twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_rows_changed_during_a_listing_arrive_in_it() {
    rows_changed_during_a_listing_arrive_in_it(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_rows_changed_during_a_listing_arrive_in_it() {
    rows_changed_during_a_listing_arrive_in_it(Engine::MySql).await;
}

/// Encryption as the connection asks for it: the local PostgreSQL offers TLS with a
/// self-signed certificate, the local MariaDB offers none.
async fn encryption_is_what_the_connection_asks_for(engine: Engine) {
    let db = TestDatabase::create(engine, "mes_tls").await;
    support::load(&db).await;
    let encrypted = match engine {
        Engine::Postgres => {
            "(SELECT CAST(ssl AS TEXT) FROM pg_stat_ssl WHERE pid = pg_backend_pid())"
        }
        Engine::MySql => {
            "(SELECT variable_value FROM information_schema.session_status \
                          WHERE variable_name = 'Ssl_cipher')"
        }
    };
    let mapping = json!({"objects": {"assets": {
        "query": format!("SELECT m.*, {encrypted} AS encrypted FROM {} m", db.table("machines")),
        "key": "machine_id", "changed": "updated_at"}}});
    let open = |tls: &str| {
        let mut credentials = db.credentials(mapping.clone(), "UTC");
        credentials["tls"] = json!(tls);
        let credentials: millrace_connector::Credentials =
            serde_json::from_value(credentials).unwrap();
        millrace_mes_sql::connector(engine)
            .open(&credentials)
            .unwrap()
    };
    let encrypted_of =
        |page: millrace_connector::Page| page.records[0].custom_fields["encrypted"].clone();
    let request = millrace_connector::PageRequest {
        connection_id: "tls".to_owned(),
        object: millrace_model::ObjectType::Assets,
        since: None,
        page: None,
        page_size: 1,
    };
    match engine {
        Engine::Postgres => {
            let source = open("require");
            source.check().await.unwrap();
            assert_eq!(
                encrypted_of(source.read_page(&request).await.unwrap()),
                "true"
            );
            let source = open("disable");
            assert_eq!(
                encrypted_of(source.read_page(&request).await.unwrap()),
                "false"
            );
            // The test server's certificate is self-signed: it is refused when checked.
            let err = open("verify-full").check().await.unwrap_err();
            assert!(err.to_string().contains("TLS handshake failed"), "{err}");
            assert!(err.to_string().contains("certificate"), "{err}");
        }
        Engine::MySql => {
            let source = open("disable");
            source.check().await.unwrap();
            assert_eq!(encrypted_of(source.read_page(&request).await.unwrap()), "");
            let err = open("require").check().await.unwrap_err();
            assert!(err.to_string().contains("TLS"), "{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_encryption_is_what_the_connection_asks_for() {
    encryption_is_what_the_connection_asks_for(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_encryption_is_what_the_connection_asks_for() {
    encryption_is_what_the_connection_asks_for(Engine::MySql).await;
}
