//! The SQL the connector sends, written once for both engines.
//!
//! Identifiers come from the operator's mapping, are checked ([`crate::config::check_identifier`])
//! and quoted; every value (watermarks, keyset positions, page sizes) is a bound parameter.
//! Every column is selected cast to text, so that one decoding path serves every SQL type;
//! zoned times are cast in UTC.

use crate::config::{quote, ObjectMapping, Relation};
use crate::mapping::{Column, Kind, Layout};
use crate::Engine;

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// A statement and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Builds one statement, numbering placeholders the engine's way.
struct Builder {
    engine: Engine,
    binds: Vec<Bind>,
}

impl Builder {
    fn new(engine: Engine) -> Self {
        Builder {
            engine,
            binds: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder.
    fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        match self.engine {
            Engine::Postgres => format!("${}", self.binds.len()),
            Engine::MySql => "?".to_owned(),
        }
    }

    /// Binds a text value and casts it to a column's type, for comparisons with that column.
    fn typed_param(&mut self, column: &Column, value: &str) -> String {
        let placeholder = self.param(Bind::Text(value.to_owned()));
        match (self.engine, column.kind) {
            (Engine::Postgres, Kind::TimestampTz) => {
                format!("(CAST({placeholder} AS TIMESTAMP) AT TIME ZONE 'UTC')")
            }
            (Engine::Postgres, Kind::Timestamp) => format!("CAST({placeholder} AS TIMESTAMP)"),
            (Engine::Postgres, Kind::Integer) => format!("CAST({placeholder} AS BIGINT)"),
            (Engine::Postgres, Kind::Number) => format!("CAST({placeholder} AS NUMERIC)"),
            (Engine::Postgres, Kind::Uuid) => format!("CAST({placeholder} AS UUID)"),
            (Engine::Postgres, _) => format!("CAST({placeholder} AS TEXT)"),
            (Engine::MySql, Kind::Timestamp | Kind::TimestampTz) => {
                format!("CAST({placeholder} AS DATETIME(6))")
            }
            (Engine::MySql, Kind::Integer) => format!("CAST({placeholder} AS SIGNED)"),
            (Engine::MySql, Kind::Number) => format!("CAST({placeholder} AS DECIMAL(65,30))"),
            (Engine::MySql, _) => placeholder,
        }
    }

    fn finish(self, sql: String) -> Statement {
        Statement {
            sql,
            binds: self.binds,
        }
    }
}

/// The `FROM` item of an object: its table, or its query as a derived table, named `src`.
pub fn relation(engine: Engine, mapping: &ObjectMapping) -> String {
    match &mapping.relation {
        Relation::Table { schema, name } => {
            let table = match schema {
                Some(schema) => format!("{}.{}", quote(engine, schema), quote(engine, name)),
                None => quote(engine, name),
            };
            format!("{table} AS src")
        }
        Relation::Query(query) => format!("({query}) AS src"),
    }
}

/// A statement that returns no rows but describes the source's columns.
pub fn describe(engine: Engine, mapping: &ObjectMapping) -> String {
    format!("SELECT * FROM {} WHERE 1 = 0", relation(engine, mapping))
}

fn column_ref(engine: Engine, column: &Column) -> String {
    format!("src.{}", quote(engine, &column.name))
}

/// A column selected as text; instants in UTC.
fn as_text(engine: Engine, column: &Column) -> String {
    let name = column_ref(engine, column);
    match (engine, column.kind) {
        (Engine::Postgres, Kind::TimestampTz) => {
            format!("CAST(({name} AT TIME ZONE 'UTC') AS TEXT)")
        }
        (Engine::Postgres, _) => format!("CAST({name} AS TEXT)"),
        (Engine::MySql, _) => format!("CAST({name} AS CHAR CHARACTER SET utf8mb4)"),
    }
}

fn select_list(engine: Engine, layout: &Layout) -> String {
    layout
        .columns
        .iter()
        .map(|column| as_text(engine, column))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows whose change column is null, by key, after `after_key`.
pub fn undated_page(
    engine: Engine,
    mapping: &ObjectMapping,
    layout: &Layout,
    after_key: Option<&str>,
    limit: u32,
) -> Statement {
    let mut builder = Builder::new(engine);
    let key = &layout.columns[layout.key];
    let changed = &layout.columns[layout.changed];
    // A row without a key has no remote id; it is never read (and cannot hold a position).
    let mut conditions = vec![
        format!("{} IS NULL", column_ref(engine, changed)),
        format!("{} IS NOT NULL", column_ref(engine, key)),
    ];
    if let Some(after) = after_key {
        let bound = builder.typed_param(key, after);
        conditions.push(format!("{} > {bound}", column_ref(engine, key)));
    }
    let limit = builder.param(Bind::Int(limit.into()));
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {limit}",
        select_list(engine, layout),
        relation(engine, mapping),
        conditions.join(" AND "),
        column_ref(engine, key),
    );
    builder.finish(sql)
}

/// Rows with a change time at or after `since`, in (change, key) order, after the keyset
/// position `after` (the change column's text and the key's text of the last row read).
pub fn dated_page(
    engine: Engine,
    mapping: &ObjectMapping,
    layout: &Layout,
    since: Option<&str>,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Statement {
    let mut builder = Builder::new(engine);
    let key = &layout.columns[layout.key];
    let changed = &layout.columns[layout.changed];
    let (key_ref, changed_ref) = (column_ref(engine, key), column_ref(engine, changed));
    let mut conditions = vec![
        format!("{changed_ref} IS NOT NULL"),
        format!("{key_ref} IS NOT NULL"),
    ];
    if let Some(since) = since {
        let bound = builder.typed_param(changed, since);
        conditions.push(format!("{changed_ref} >= {bound}"));
    }
    if let Some((after_changed, after_key)) = after {
        let later = builder.typed_param(changed, after_changed);
        let same = builder.typed_param(changed, after_changed);
        let next_key = builder.typed_param(key, after_key);
        conditions.push(format!(
            "({changed_ref} > {later} OR ({changed_ref} = {same} AND {key_ref} > {next_key}))"
        ));
    }
    let limit = builder.param(Bind::Int(limit.into()));
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {changed_ref}, {key_ref} LIMIT {limit}",
        select_list(engine, layout),
        relation(engine, mapping),
        conditions.join(" AND "),
    );
    builder.finish(sql)
}

/// The keys of live rows (not marked deleted), in key order, after `after_key`.
pub fn id_page(
    engine: Engine,
    mapping: &ObjectMapping,
    layout: &Layout,
    after_key: Option<&str>,
    limit: u32,
) -> Statement {
    let mut builder = Builder::new(engine);
    let key = &layout.columns[layout.key];
    let key_ref = column_ref(engine, key);
    let mut conditions = vec![format!("{key_ref} IS NOT NULL")];
    if let Some(index) = layout.deleted {
        let deleted = &layout.columns[index];
        let flag = column_ref(engine, deleted);
        conditions.push(match (engine, deleted.kind) {
            (Engine::Postgres, Kind::Bool) => format!("({flag} IS NULL OR {flag} = FALSE)"),
            (_, Kind::Bool | Kind::Integer) => format!("({flag} IS NULL OR {flag} = 0)"),
            _ => format!("{flag} IS NULL"),
        });
    }
    if let Some(after) = after_key {
        let bound = builder.typed_param(key, after);
        conditions.push(format!("{key_ref} > {bound}"));
    }
    let limit = builder.param(Bind::Int(limit.into()));
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {key_ref} LIMIT {limit}",
        as_text(engine, key),
        relation(engine, mapping),
        conditions.join(" AND "),
    );
    builder.finish(sql)
}

/// Formats an instant as the text a change column of `kind` compares with: UTC for instants,
/// the source's wall clock for naive times. Microseconds are the finest both engines keep;
/// a finer instant is truncated, which only widens an inclusive lower bound.
pub fn bound_text(kind: Kind, at: chrono::DateTime<chrono::Utc>, zone: &chrono_tz::Tz) -> String {
    let format = "%Y-%m-%d %H:%M:%S%.6f";
    match kind {
        Kind::Timestamp => at
            .with_timezone(zone)
            .naive_local()
            .format(format)
            .to_string(),
        _ => at.naive_utc().format(format).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mapping;
    use serde_json::json;

    fn fixture() -> (ObjectMapping, Layout) {
        let mapping = Mapping::parse(Some(&json!({"objects": {"production-orders": {
            "table": "mes.orders", "key": "id", "changed": "changed at", "deleted": "gone",
            "fields": {"number": "no"}}}})))
        .unwrap();
        let object = mapping.objects.into_values().next().unwrap();
        let column = |name: &str, kind| Column {
            name: name.to_owned(),
            type_name: String::new(),
            kind,
        };
        let layout = Layout {
            columns: vec![
                column("id", Kind::Integer),
                column("no", Kind::Text),
                column("changed at", Kind::TimestampTz),
                column("gone", Kind::Bool),
            ],
            key: 0,
            changed: 2,
            created: None,
            deleted: Some(3),
            fields: vec![("number".into(), 1)],
        };
        (object, layout)
    }

    #[test]
    fn keyset_pages_bind_every_value() {
        let (mapping, layout) = fixture();
        let statement = dated_page(
            Engine::Postgres,
            &mapping,
            &layout,
            Some("2024-01-01 00:00:00.000000"),
            Some(("2024-01-02 00:00:00.5", "17")),
            50,
        );
        assert_eq!(
            statement.sql,
            "SELECT CAST(src.\"id\" AS TEXT), CAST(src.\"no\" AS TEXT), \
             CAST((src.\"changed at\" AT TIME ZONE 'UTC') AS TEXT), CAST(src.\"gone\" AS TEXT) \
             FROM \"mes\".\"orders\" AS src WHERE src.\"changed at\" IS NOT NULL \
             AND src.\"id\" IS NOT NULL AND src.\"changed at\" >= (CAST($1 AS TIMESTAMP) AT TIME ZONE 'UTC') \
             AND (src.\"changed at\" > (CAST($2 AS TIMESTAMP) AT TIME ZONE 'UTC') \
             OR (src.\"changed at\" = (CAST($3 AS TIMESTAMP) AT TIME ZONE 'UTC') \
             AND src.\"id\" > CAST($4 AS BIGINT))) \
             ORDER BY src.\"changed at\", src.\"id\" LIMIT $5"
        );
        assert_eq!(statement.binds.len(), 5);
        assert_eq!(statement.binds[3], Bind::Text("17".into()));
        assert_eq!(statement.binds[4], Bind::Int(50));

        let statement = undated_page(Engine::MySql, &mapping, &layout, Some("9"), 10);
        assert!(statement.sql.contains(
            "src.`changed at` IS NULL AND src.`id` IS NOT NULL AND src.`id` > CAST(? AS SIGNED)"
        ));
        assert!(
            statement.sql.ends_with("ORDER BY src.`id` LIMIT ?"),
            "{}",
            statement.sql
        );
    }

    #[test]
    fn id_listings_leave_out_rows_marked_deleted() {
        let (mapping, layout) = fixture();
        let statement = id_page(Engine::MySql, &mapping, &layout, None, 1000);
        assert_eq!(
            statement.sql,
            "SELECT CAST(src.`id` AS CHAR CHARACTER SET utf8mb4) FROM `mes`.`orders` AS src \
             WHERE src.`id` IS NOT NULL AND (src.`gone` IS NULL OR src.`gone` = 0) \
             ORDER BY src.`id` LIMIT ?"
        );
    }

    #[test]
    fn bounds_are_in_the_column_own_clock() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-07-01T12:00:00.1234567Z")
            .unwrap()
            .to_utc();
        let zone = chrono_tz::Europe::Berlin;
        assert_eq!(
            bound_text(Kind::Timestamp, at, &zone),
            "2024-07-01 14:00:00.123456"
        );
        assert_eq!(
            bound_text(Kind::TimestampTz, at, &zone),
            "2024-07-01 12:00:00.123456"
        );
    }
}
