//! A short run of the seeded soak against a real Tryton server: random creates, updates and
//! deletes through its JSON-RPC, syncs, crashes, ended sessions and proxy faults; at the end the
//! store equals the source and the polling client saw every change.

use std::time::Duration;

use millrace_compliance::soak::assert_short_soak;
use millrace_compliance::world::Backend;

async fn short_soak(backend: Backend, seed: u64) {
    assert_short_soak(
        &millrace_tryton::compliance::subject(),
        backend,
        seed,
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_short_soak_ends_with_no_mismatch() {
    short_soak(Backend::Sqlite, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_short_soak_ends_with_no_mismatch() {
    short_soak(Backend::Postgres, 12).await;
}
