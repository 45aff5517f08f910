//! A short run of the seeded soak (`millrace soak` runs it for as long as asked) against real
//! MES databases: random creates, updates and deletes made with SQL, syncs and crashes of
//! Millrace; at the end the store equals the database and the polling client saw every change.
//! The proxy's transport faults do not reach a SQL source, so the soak injects none here.

use std::time::Duration;

use millrace_compliance::soak::assert_short_soak;
use millrace_compliance::world::Backend;
use millrace_mes_sql::Engine;

async fn short_soak(engine: Engine, backend: Backend, seed: u64) {
    assert_short_soak(
        &millrace_mes_sql::compliance::subject(engine),
        backend,
        seed,
        Duration::from_secs(15),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_short_soak_on_sqlite_ends_with_no_mismatch() {
    short_soak(Engine::Postgres, Backend::Sqlite, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_short_soak_on_postgres_ends_with_no_mismatch() {
    short_soak(Engine::MySql, Backend::Postgres, 22).await;
}
