//! Opening the database: URL parsing, connection pools, dialect differences and migrations.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::{Executor, Row};

use crate::{Backend, StoreError, StoreOptions};

/// Each migration is applied once, in version order, inside its own transaction.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_webhooks.sql")),
    (3, include_str!("../migrations/sqlite/0003_link.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_webhooks.sql")),
    (3, include_str!("../migrations/postgres/0003_link.sql")),
];

/// Key of the PostgreSQL advisory lock that keeps two processes from migrating at once.
const MIGRATION_LOCK_KEY: i64 = 0x6d69_6c6c_7261_6365;

/// How long a connection waits for a locked SQLite database before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// The pools of an opened database.
pub(crate) struct Pools {
    pub backend: Backend,
    pub read: AnyPool,
    pub write: AnyPool,
}

/// Opens the pools for `url` and brings the schema up to date.
pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Pools, StoreError> {
    sqlx::any::install_default_drivers();

    let pools = if let Some(rest) = strip_prefix_any(url, &["sqlite://", "sqlite:"]) {
        open_sqlite(rest, options).await?
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        open_postgres(url, options).await?
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    };

    migrate(pools.backend, &pools.write).await?;
    Ok(pools)
}

fn strip_prefix_any<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|prefix| text.strip_prefix(prefix))
}

/// Drops the password from a URL so it can appear in an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// SQLite: one write connection, so writers queue in-process instead of meeting `SQLITE_BUSY`,
/// and a few read-only connections that WAL lets run beside it.
async fn open_sqlite(rest: &str, options: &StoreOptions) -> Result<Pools, StoreError> {
    let (path, _query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path.is_empty() || path == ":memory:";

    let setup = |pool: AnyPoolOptions| {
        pool.after_connect(|conn, _meta| {
            Box::pin(async move {
                let pragmas = format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                );
                conn.execute(sqlx::raw_sql(&pragmas)).await?;
                Ok(())
            })
        })
    };

    if in_memory {
        // Every connection to `:memory:` is a database of its own: keep exactly one, forever.
        let pool = setup(AnyPoolOptions::new())
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        return Ok(Pools {
            backend: Backend::Sqlite,
            read: pool.clone(),
            write: pool,
        });
    }

    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|err| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create folder {}: {err}", parent.display()).into(),
            ))
        })?;
    }

    let write = setup(AnyPoolOptions::new())
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .connect(&format!("sqlite://{path}?mode=rwc"))
        .await?;
    // Persistent in the file; set before the read pool opens it.
    write.execute("PRAGMA journal_mode = WAL").await?;

    let read = setup(AnyPoolOptions::new())
        .max_connections(options.max_connections.max(1))
        .connect(&format!("sqlite://{path}?mode=ro"))
        .await?;
    Ok(Pools {
        backend: Backend::Sqlite,
        read,
        write,
    })
}

/// PostgreSQL: one pool for both; row locks order the writers.
async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Pools, StoreError> {
    let pool = AnyPoolOptions::new()
        // A cached generic plan is chosen once, often while a table is still nearly empty
        // (a new connection's first pages), and then kept while the table grows: a lookup of
        // a page's remote ids became a sequential scan. Planning each execution with its
        // parameters costs far less than that.
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("SET plan_cache_mode = force_custom_plan")
                    .await?;
                Ok(())
            })
        })
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?;
    Ok(Pools {
        backend: Backend::Postgres,
        read: pool.clone(),
        write: pool,
    })
}

/// Applies the migrations not yet recorded in `schema_version`.
async fn migrate(backend: Backend, pool: &AnyPool) -> Result<(), StoreError> {
    let migrations = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };

    let mut tx = begin_write(backend, pool).await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
    }
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;

    for (version, sql) in migrations.iter().filter(|(version, _)| *version > current) {
        tx.execute(sqlx::raw_sql(sql)).await?;
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(chrono::Utc::now().timestamp_micros())
            .execute(&mut *tx)
            .await?;
        tracing::info!(version, "store schema migrated");
    }
    tx.commit().await?;
    Ok(())
}

/// Starts a write transaction; on SQLite it takes the write lock at once, so that another
/// process writing the same file makes it wait rather than fail on lock upgrade.
pub(crate) async fn begin_write(
    backend: Backend,
    pool: &AnyPool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    let tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    Ok(tx)
}

/// Numbers the parameters of a statement whose parameters each appear once, in binding order.
///
/// Statements are written with `$N` everywhere else; but SQLite looks a `$N` up by a linear
/// scan of the statement's named parameters, so a multi-row statement with thousands of them
/// spends most of its time binding. Its anonymous `?` needs no lookup.
pub(crate) struct Placeholders {
    backend: Backend,
    count: usize,
}

impl Placeholders {
    pub(crate) fn new(backend: Backend) -> Placeholders {
        Placeholders { backend, count: 0 }
    }

    /// Returns the next parameter's placeholder.
    pub(crate) fn next(&mut self) -> String {
        self.count += 1;
        match self.backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${}", self.count),
        }
    }
}

/// Returns the SQL expression, as text, of the JSON value at a path of the `fields` column.
///
/// The path itself is bound as parameters starting at `first_param` (so nothing from the path
/// reaches the SQL text); returns the expression and the values to bind, in order.
pub(crate) fn json_text_at(
    backend: Backend,
    path: &[&str],
    first_param: usize,
) -> (String, Vec<String>) {
    match backend {
        Backend::Sqlite => {
            let json_path = path.iter().fold(String::from("$"), |mut acc, segment| {
                acc.push_str(".\"");
                acc.push_str(segment);
                acc.push('"');
                acc
            });
            // Booleans as PostgreSQL renders them, so a filter means the same on both.
            let p = first_param;
            let expr = format!(
                "(CASE json_type(fields, ${p}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE CAST(json_extract(fields, ${p}) AS TEXT) END)"
            );
            (expr, vec![json_path])
        }
        Backend::Postgres => {
            let params = (0..path.len())
                .map(|i| format!("${}", first_param + i))
                .collect::<Vec<_>>()
                .join(", ");
            let expr = format!("jsonb_extract_path_text(fields::jsonb, {params})");
            (expr, path.iter().map(|s| (*s).to_owned()).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_from_urls() {
        assert_eq!(
            redact_url("mysql://u:secret@host/db"),
            "mysql://***@host/db"
        );
        assert_eq!(redact_url("mongodb://host/db"), "mongodb://host/db");
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut sqlite = Placeholders::new(Backend::Sqlite);
        let mut postgres = Placeholders::new(Backend::Postgres);
        assert_eq!([sqlite.next(), sqlite.next()], ["?", "?"]);
        assert_eq!([postgres.next(), postgres.next()], ["$1", "$2"]);
    }

    #[test]
    fn json_paths_are_bound_not_inlined() {
        let (expr, params) = json_text_at(Backend::Sqlite, &["asset", "id"], 4);
        assert!(expr.contains("$4") && !expr.contains("asset"));
        assert_eq!(params, vec!["$.\"asset\".\"id\"".to_owned()]);

        let (expr, params) = json_text_at(Backend::Postgres, &["asset", "id"], 4);
        assert_eq!(expr, "jsonb_extract_path_text(fields::jsonb, $4, $5)");
        assert_eq!(params, vec!["asset".to_owned(), "id".to_owned()]);
    }
}
