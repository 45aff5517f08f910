//! A realistic MES schema on either engine, filled from the AI4I 2020 predictive maintenance
//! data set (`shared/data/ai4i2020`): six milling machines in two plants run the data set's
//! process records in turn. Every 25 runs of a machine make one production order (failed runs
//! are scrap), each order has a setup and a milling operation, every failed run is a downtime
//! event named by its failure mode, every 10th run gets a torque quality check, and every 5th
//! run logs two process readings. Plant times are naive local times in Europe/Berlin, as
//! on-premise MES databases often keep them; plants and machines carry zoned change times.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, Utc};
use millrace_mes_sql::compliance::TestDatabase;
use millrace_mes_sql::Engine;
use serde_json::{json, Value};

/// The zone the plant's wall-clock columns are written in.
pub const PLANT_ZONE: chrono_tz::Tz = chrono_tz::Europe::Berlin;
/// How many process records of the data set the fixture uses.
const RUNS: usize = 600;
const MACHINES: usize = 6;
const RUNS_PER_ORDER: usize = 25;

/// Finds `shared/data`: `MILLRACE_SHARED_DATA`, else `../shared/data` from the working
/// directory or from the workspace.
pub fn data_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MILLRACE_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let mut candidates = vec![workspace.join("../shared/data")];
    if let Ok(current) = std::env::current_dir() {
        candidates.insert(0, current.join("../shared/data"));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("ai4i2020").is_dir())
        .expect("shared/data with ai4i2020 beside the checkout, or MILLRACE_SHARED_DATA")
}

/// One process record of the data set.
struct Run {
    product: String,
    torque: f64,
    speed: f64,
    tool_wear: f64,
    failure: Option<&'static str>,
}

fn read_runs() -> Vec<Run> {
    let path = data_dir().join("ai4i2020/ai4i2020.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    let modes = [
        (9, "tool wear failure"),
        (10, "heat dissipation failure"),
        (11, "power failure"),
        (12, "overstrain failure"),
        (13, "random failure"),
    ];
    reader
        .records()
        .take(RUNS)
        .map(|record| {
            let record = record.expect("a CSV record");
            let number = |index: usize| record[index].parse::<f64>().expect("a number");
            Run {
                product: record[1].to_owned(),
                speed: number(5),
                torque: number(6),
                tool_wear: number(7),
                failure: modes
                    .iter()
                    .find(|(index, _)| &record[*index] == "1")
                    .map(|(_, mode)| *mode)
                    .or_else(|| (&record[8] == "1").then_some("machine failure")),
            }
        })
        .collect()
}

/// What the fixture wrote, for the tests' expectations.
pub struct Fixture {
    pub machines: usize,
    pub orders: usize,
    pub operations: usize,
    pub downtimes: usize,
    pub checks: usize,
    pub readings: usize,
    /// The first order: its id, planned start (local), produced and scrapped quantities.
    pub first_order: (String, NaiveDateTime, f64, f64),
}

/// A table's columns with their PostgreSQL and MariaDB types.
pub type Columns = &'static [(&'static str, &'static str, &'static str)];

const PLANTS: Columns = &[
    ("plant_id", "TEXT PRIMARY KEY", "VARCHAR(20) PRIMARY KEY"),
    ("name", "TEXT NOT NULL", "VARCHAR(100) NOT NULL"),
    (
        "updated_at",
        "TIMESTAMPTZ(6) NOT NULL",
        "TIMESTAMP(6) NOT NULL",
    ),
];
const MACHINE_COLUMNS: Columns = &[
    ("machine_id", "TEXT PRIMARY KEY", "VARCHAR(20) PRIMARY KEY"),
    ("plant_id", "TEXT NOT NULL", "VARCHAR(20) NOT NULL"),
    ("name", "TEXT", "VARCHAR(100)"),
    ("variant", "TEXT", "VARCHAR(4)"),
    ("state", "TEXT", "VARCHAR(20)"),
    ("commissioned_on", "DATE", "DATE"),
    (
        "updated_at",
        "TIMESTAMPTZ(6)",
        "TIMESTAMP(6) NULL DEFAULT NULL",
    ),
];
const ORDERS: Columns = &[
    ("order_id", "BIGINT PRIMARY KEY", "BIGINT PRIMARY KEY"),
    ("order_no", "TEXT NOT NULL", "VARCHAR(20) NOT NULL"),
    ("product_id", "TEXT", "VARCHAR(20)"),
    ("machine_id", "TEXT", "VARCHAR(20)"),
    ("status", "TEXT", "VARCHAR(20)"),
    ("qty_planned", "NUMERIC(12, 3)", "DECIMAL(12, 3)"),
    ("qty_produced", "NUMERIC(12, 3)", "DECIMAL(12, 3)"),
    ("qty_scrapped", "NUMERIC(12, 3)", "DECIMAL(12, 3)"),
    ("planned_start", "TIMESTAMP(0)", "DATETIME(0)"),
    ("started_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("finished_at", "TIMESTAMP(6)", "DATETIME(6)"),
    (
        "is_deleted",
        "BOOLEAN NOT NULL DEFAULT FALSE",
        "BOOLEAN NOT NULL DEFAULT FALSE",
    ),
    ("updated_at", "TIMESTAMP(6)", "DATETIME(6)"),
];
const OPERATIONS: Columns = &[
    ("operation_id", "BIGINT PRIMARY KEY", "BIGINT PRIMARY KEY"),
    ("order_id", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    ("seq", "INTEGER", "INT"),
    ("name", "TEXT", "VARCHAR(40)"),
    ("machine_id", "TEXT", "VARCHAR(20)"),
    ("status", "TEXT", "VARCHAR(20)"),
    ("started_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("finished_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("updated_at", "TIMESTAMP(6)", "DATETIME(6)"),
];
pub const DOWNTIMES: Columns = &[
    ("event_id", "BIGINT PRIMARY KEY", "BIGINT PRIMARY KEY"),
    ("machine_id", "TEXT", "VARCHAR(20)"),
    ("started_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("ended_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("category", "TEXT", "VARCHAR(20)"),
    ("reason", "TEXT", "VARCHAR(100)"),
    ("updated_at", "TIMESTAMP(6)", "DATETIME(6)"),
];
const CHECKS: Columns = &[
    ("check_id", "BIGINT PRIMARY KEY", "BIGINT PRIMARY KEY"),
    ("order_id", "BIGINT", "BIGINT"),
    ("machine_id", "TEXT", "VARCHAR(20)"),
    ("characteristic", "TEXT", "VARCHAR(40)"),
    ("measured", "NUMERIC(10, 3)", "DECIMAL(10, 3)"),
    ("result", "TEXT", "VARCHAR(10)"),
    ("checked_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("updated_at", "TIMESTAMP(6)", "DATETIME(6)"),
];
const READINGS: Columns = &[
    ("reading_id", "BIGINT PRIMARY KEY", "BIGINT PRIMARY KEY"),
    ("machine_id", "TEXT", "VARCHAR(20)"),
    ("tag", "TEXT", "VARCHAR(40)"),
    ("value", "DOUBLE PRECISION", "DOUBLE"),
    ("unit", "TEXT", "VARCHAR(10)"),
    ("read_at", "TIMESTAMP(6)", "DATETIME(6)"),
    ("updated_at", "TIMESTAMP(6)", "DATETIME(6)"),
];

/// The PostgreSQL type to cast a text parameter to for a column's declared type.
fn postgres_cast(declared: &str) -> &str {
    let base = declared.split(' ').next().unwrap_or(declared);
    match base {
        "TIMESTAMPTZ(6)" => "TIMESTAMPTZ",
        "TIMESTAMP(6)" | "TIMESTAMP(0)" => "TIMESTAMP",
        "NUMERIC(12," | "NUMERIC(10," => "NUMERIC",
        "DOUBLE" => "DOUBLE PRECISION",
        other => other,
    }
}

async fn create_table(db: &TestDatabase, table: &str, columns: Columns) {
    let definition = columns
        .iter()
        .map(|(name, postgres, mariadb)| match db.engine {
            Engine::Postgres => format!("{name} {postgres}"),
            Engine::MySql => format!("{name} {mariadb}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    db.batch(&format!(
        "CREATE TABLE {} ({definition})",
        qualified(db, table)
    ))
    .await;
}

/// A table of the test's schema in SQL.
pub fn qualified(db: &TestDatabase, table: &str) -> String {
    match db.engine {
        Engine::Postgres => format!("\"{{schema}}\".{table}"),
        Engine::MySql => table.to_owned(),
    }
}

/// Inserts rows of text values (NULL for `None`) with bound parameters, 100 rows a statement.
pub async fn insert(
    db: &TestDatabase,
    table: &str,
    columns: Columns,
    rows: &[Vec<Option<String>>],
) {
    for chunk in rows.chunks(100) {
        let mut binds = Vec::new();
        let tuples: Vec<String> = chunk
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(columns)
                    .map(|(value, (_, postgres, _))| {
                        binds.push(value.clone());
                        match db.engine {
                            Engine::Postgres => {
                                format!("CAST(${} AS {})", binds.len(), postgres_cast(postgres))
                            }
                            Engine::MySql => "?".to_owned(),
                        }
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|(name, _, _)| *name).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            qualified(db, table),
            names.join(", "),
            tuples.join(", ")
        );
        db.execute(&sql, &binds).await;
    }
}

/// A wall-clock time of the plant as a column holds it.
pub fn local(at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&PLANT_ZONE).naive_local()
}

/// Text of a naive time with microseconds.
pub fn text(at: NaiveDateTime) -> Option<String> {
    Some(at.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

fn utc_text(at: DateTime<Utc>) -> Option<String> {
    Some(at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

fn some(value: impl ToString) -> Option<String> {
    Some(value.to_string())
}

/// Creates the MES schema in `db` and fills it.
pub async fn load(db: &TestDatabase) -> Fixture {
    for (table, columns) in [
        ("plants", PLANTS),
        ("machines", MACHINE_COLUMNS),
        ("production_orders", ORDERS),
        ("operations", OPERATIONS),
        ("downtime_events", DOWNTIMES),
        ("quality_checks", CHECKS),
        ("process_readings", READINGS),
    ] {
        create_table(db, table, columns).await;
    }

    let runs = read_runs();
    // Both engines keep microseconds.
    let now = Utc::now().trunc_subsecs(6);
    let start = now - Duration::days(12);
    let plants = [
        ("P-NORD", "Plant Nord machining"),
        ("P-SUED", "Plant Süd machining"),
    ];
    let plant_rows: Vec<_> = plants
        .iter()
        .map(|(id, name)| vec![some(id), some(name), utc_text(now - Duration::days(200))])
        .collect();
    insert(db, "plants", PLANTS, &plant_rows).await;

    let variants = ["L", "M", "H"];
    let machine_id = |m: usize| format!("MC-{}{}", variants[m % 3], m / 3 + 1);
    let machine_rows: Vec<_> = (0..MACHINES)
        .map(|m| {
            vec![
                some(machine_id(m)),
                some(plants[m / 3].0),
                some(format!("CNC mill {} ({} variant)", m + 1, variants[m % 3])),
                some(variants[m % 3]),
                some(if m == 5 { "maintenance" } else { "running" }),
                some(format!("20{:02}-03-01", 15 + m)),
                utc_text(now - Duration::days(30 + m as i64)),
            ]
        })
        .collect();
    insert(db, "machines", MACHINE_COLUMNS, &machine_rows).await;

    // Each machine runs its share of the records back to back, 30 minutes a run.
    let run_start = |index: usize| start + Duration::minutes(30 * (index / MACHINES) as i64);
    let (mut orders, mut operations, mut downtimes, mut checks, mut readings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut first_order = None;
    for machine in 0..MACHINES {
        let own: Vec<usize> = (machine..runs.len()).step_by(MACHINES).collect();
        for (block, indexes) in own.chunks(RUNS_PER_ORDER).enumerate() {
            let order_id = 1000 + machine * 100 + block;
            let scrapped = indexes
                .iter()
                .filter(|i| runs[**i].failure.is_some())
                .count();
            let produced = indexes.len() - scrapped;
            let began = run_start(indexes[0]);
            let ended = run_start(*indexes.last().unwrap()) + Duration::minutes(30);
            let last_block = block + 1 == own.len().div_ceil(RUNS_PER_ORDER);
            let (status, finished) = if last_block && machine % 2 == 0 {
                ("running", None)
            } else {
                ("completed", text(local(ended)))
            };
            let planned = local(began - Duration::hours(1)).with_nanosecond_zero();
            orders.push(vec![
                some(order_id),
                some(format!("PO-{order_id}")),
                some(&runs[indexes[0]].product),
                some(machine_id(machine)),
                some(status),
                some(RUNS_PER_ORDER),
                some(produced),
                some(scrapped),
                text(planned),
                text(local(began)),
                finished.clone(),
                some(if db.engine == Engine::Postgres {
                    "false"
                } else {
                    "0"
                }),
                text(local(ended.min(now))),
            ]);
            if first_order.is_none() {
                first_order = Some((
                    order_id.to_string(),
                    local(began),
                    produced as f64,
                    scrapped as f64,
                ));
            }
            for (seq, name) in [(10, "Setup"), (20, "Milling")] {
                let (op_start, op_end) = if seq == 10 {
                    (began - Duration::minutes(20), began)
                } else {
                    (began, ended)
                };
                operations.push(vec![
                    some(order_id * 10 + seq / 10),
                    some(order_id),
                    some(seq),
                    some(name),
                    some(machine_id(machine)),
                    some(if seq == 10 || finished.is_some() {
                        "finished"
                    } else {
                        "running"
                    }),
                    text(local(op_start)),
                    if seq == 10 || finished.is_some() {
                        text(local(op_end))
                    } else {
                        None
                    },
                    text(local(op_end.min(now))),
                ]);
            }
            for index in indexes {
                let run = &runs[*index];
                let at = run_start(*index);
                if let Some(mode) = run.failure {
                    let repair = Duration::minutes(20 + (run.tool_wear as i64) / 10);
                    downtimes.push(vec![
                        some(*index + 1),
                        some(machine_id(machine)),
                        text(local(at + Duration::minutes(25))),
                        text(local(at + Duration::minutes(25) + repair)),
                        some("unplanned"),
                        some(mode),
                        text(local((at + Duration::minutes(25) + repair).min(now))),
                    ]);
                }
                if index % 10 == 0 {
                    let pass = (20.0..=60.0).contains(&run.torque);
                    checks.push(vec![
                        some(*index + 1),
                        some(order_id),
                        some(machine_id(machine)),
                        some("spindle torque"),
                        some(run.torque),
                        some(if pass { "pass" } else { "fail" }),
                        text(local(at + Duration::minutes(28))),
                        text(local(at + Duration::minutes(28))),
                    ]);
                }
                if index % 5 == 0 {
                    for (n, (tag, value, unit)) in
                        [("torque", run.torque, "Nm"), ("speed", run.speed, "rpm")]
                            .into_iter()
                            .enumerate()
                    {
                        readings.push(vec![
                            some(index * 2 + n + 1),
                            some(machine_id(machine)),
                            some(tag),
                            some(value),
                            some(unit),
                            text(local(at + Duration::minutes(15))),
                            text(local(at + Duration::minutes(15))),
                        ]);
                    }
                }
            }
        }
    }
    insert(db, "production_orders", ORDERS, &orders).await;
    insert(db, "operations", OPERATIONS, &operations).await;
    insert(db, "downtime_events", DOWNTIMES, &downtimes).await;
    insert(db, "quality_checks", CHECKS, &checks).await;
    insert(db, "process_readings", READINGS, &readings).await;
    Fixture {
        machines: MACHINES,
        orders: orders.len(),
        operations: operations.len(),
        downtimes: downtimes.len(),
        checks: checks.len(),
        readings: readings.len(),
        first_order: first_order.expect("an order"),
    }
}

trait WholeSeconds {
    fn with_nanosecond_zero(self) -> Self;
}

impl WholeSeconds for NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).expect("a valid time")
    }
}

/// The mapping an operator would write for this schema: tables for most objects, queries
/// where the schema needs a join or a derived value.
pub fn mapping(db: &TestDatabase) -> Value {
    let table = |name: &str| db.table(name);
    json!({"objects": {
        "sites": {"table": table("plants"), "key": "plant_id", "changed": "updated_at",
            "fields": {"name": "name"}},
        "assets": {"table": table("machines"), "key": "machine_id", "changed": "updated_at",
            "fields": {"asset_number": "machine_id", "name": "name", "asset_type": "variant",
                "remote_status": "state", "site": "plant_id", "installed_at": "commissioned_on"}},
        "production-orders": {"table": table("production_orders"), "key": "order_id",
            "changed": "updated_at", "deleted": "is_deleted",
            "fields": {"number": "order_no", "product": "product_id", "asset": "machine_id",
                "remote_status": "status", "quantity_planned": "qty_planned",
                "quantity_produced": "qty_produced", "quantity_scrapped": "qty_scrapped",
                "scheduled_start": "planned_start", "actual_start": "started_at",
                "actual_end": "finished_at"}},
        "work-orders": {"query": format!(
            "SELECT op.*, CONCAT(o.order_no, '/', op.seq) AS op_number \
             FROM {} op JOIN {} o ON o.order_id = op.order_id",
            table("operations"), table("production_orders")),
            "key": "operation_id", "changed": "updated_at",
            "fields": {"number": "op_number", "title": "name", "asset": "machine_id",
                "remote_status": "status", "actual_start": "started_at",
                "actual_end": "finished_at"}},
        "asset-downtimes": {"table": table("downtime_events"), "key": "event_id",
            "changed": "updated_at",
            "fields": {"asset": "machine_id", "started_at": "started_at", "ended_at": "ended_at",
                "category": "category", "reason": "reason"}},
        "quality-events": {"query": format!(
            "SELECT q.*, CONCAT('QC-', q.check_id) AS qc_number, \
             CASE WHEN q.result = 'fail' THEN 'nonconformance' ELSE 'inspection' END AS kind \
             FROM {} q", table("quality_checks")),
            "key": "check_id", "changed": "updated_at",
            "fields": {"number": "qc_number", "event_type": "kind", "title": "characteristic",
                "remote_status": "result", "asset": "machine_id", "opened_at": "checked_at"}},
        "meters": {"query": format!(
            "SELECT CONCAT(r.machine_id, ':', r.tag) AS meter_id, r.machine_id, r.tag, \
             MAX(r.unit) AS unit, MAX(r.updated_at) AS updated_at \
             FROM {} r GROUP BY r.machine_id, r.tag", table("process_readings")),
            "key": "meter_id", "changed": "updated_at",
            "fields": {"name": "tag", "unit": "unit", "asset": "machine_id"}},
        "meter-readings": {"query": format!(
            "SELECT r.*, CONCAT(r.machine_id, ':', r.tag) AS meter_id FROM {} r",
            table("process_readings")),
            "key": "reading_id", "changed": "updated_at",
            "fields": {"meter": "meter_id", "asset": "machine_id", "value": "value",
                "unit": "unit", "read_at": "read_at"}},
    }})
}
