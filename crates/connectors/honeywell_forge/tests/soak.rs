//! A short run of the seeded soak (`millrace soak` runs it for as long as asked) against the
//! Honeywell Forge gateway sandbox: random creates, updates and deletes, syncs, crashes and
//! faults; at the end the store equals the source and the polling client saw every change.

use std::time::Duration;

use millrace_compliance::soak::{soak, SoakOptions};
use millrace_compliance::world::Backend;

async fn short_soak(backend: Backend, seed: u64) {
    let report = soak(
        &millrace_honeywell_forge::compliance::subject(),
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
