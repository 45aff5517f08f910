//! A short run of the seeded soak against a real Tryton server: random creates, updates and
//! deletes through its JSON-RPC, syncs, crashes, ended sessions and proxy faults; at the end the
//! store equals the source and the polling client saw every change.

use std::time::Duration;

use millrace_compliance::soak::{soak, SoakOptions};
use millrace_compliance::world::Backend;

async fn short_soak(backend: Backend, seed: u64) {
    let report = soak(
        &millrace_tryton::compliance::subject(),
        &SoakOptions {
            duration: Duration::from_secs(20),
            seed,
            backend,
        },
    )
    .await;
    println!("{}", report.render());
    assert!(report.iterations > 0);
    assert!(report.operations.get("create").copied().unwrap_or(0) > 0);
    assert!(
        report
            .operations
            .keys()
            .any(|kind| kind.starts_with("sync")),
        "{report:?}"
    );
    assert!(report.mismatches.is_empty(), "{}", report.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_short_soak_ends_with_no_mismatch() {
    short_soak(Backend::Sqlite, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_short_soak_ends_with_no_mismatch() {
    short_soak(Backend::Postgres, 12).await;
}
