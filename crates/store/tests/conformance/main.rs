//! The storage conformance suite: every test runs once on SQLite and once on PostgreSQL.
//!
//! PostgreSQL is read from `MILLRACE_TEST_POSTGRES_URL` (default: the local test database);
//! each test gets a fresh schema, dropped afterwards. An unreachable PostgreSQL fails the
//! PostgreSQL half of the suite: it is never skipped.

mod connections;
mod link;
mod records;
mod scheduling;
mod webhooks;

use std::future::Future;

use chrono::{DateTime, Utc};
use millrace_model::{Deployment, ObjectType, RunKind};
use millrace_store::{Checkpoint, NewConnection, RecordWrite, Store, StoreOptions};
use serde_json::{json, Map, Value};
use sqlx::{Connection as _, Executor as _};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What a conformance test gets: a fresh store, and the URL to open it again.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub url: String,
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one test on a fresh database of `backend`, cleaning up even when the test fails.
async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            // A nested path also checks that missing folders are created.
            let url = format!("sqlite://{}/nested/store.db", dir.path().display());
            let store = Store::open(&url).await.unwrap();
            let outcome = tokio::spawn(test(Ctx {
                store: store.clone(),
                url,
            }))
            .await;
            store.close().await;
            finish(outcome);
        }
        Backend::Postgres => {
            let admin_url = std::env::var("MILLRACE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|err| panic!("PostgreSQL at {admin_url} is required: {err}"));
            let schema = format!("store_test_{}", uuid::Uuid::new_v4().simple());
            admin
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await
                .unwrap();

            let separator = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
            // Small pools, so that many tests in parallel stay under the server's connection cap.
            let options = StoreOptions { max_connections: 3 };
            let store = Store::open_with(&url, &options).await.unwrap();
            let outcome = tokio::spawn(test(Ctx {
                store: store.clone(),
                url,
            }))
            .await;
            store.close().await;
            admin
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
                .unwrap();
            finish(outcome);
        }
    }
}

fn finish(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(err) = outcome {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("test task failed: {err}");
    }
}

/// Declares each listed test once per backend, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::run(crate::Backend::Sqlite, crate::$module::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::run(crate::Backend::Postgres, crate::$module::$test).await;
                }
            )*
        }
    };
}

conformance! {
    connections::creates_lists_and_filters_connections,
    connections::reserves_refuses_and_returns_credits,
    connections::concurrent_creates_cannot_overdraw,
    connections::tokens_rotate_and_revoke,
    connections::reauth_required_keeps_credits_and_blocks_writes,
    connections::settings_keep_their_first_value,
    connections::reopening_keeps_schema_and_data,
    connections::sealed_credentials_round_trip,
    link::link_sessions_are_created_found_and_listed,
    link::a_link_session_completes_once_and_never_after_expiry,
    link::a_code_is_exchanged_once_by_its_operator_before_it_expires,
    link::concurrent_exchanges_hand_the_token_out_once,
    records::apply_page_creates_updates_and_skips_unchanged,
    records::apply_page_splits_large_pages_into_batches,
    records::apply_page_keeps_the_last_duplicate_of_a_page,
    records::apply_page_after_disconnect_stores_nothing,
    records::checkpoints_round_trip_until_the_stream_completes,
    records::list_records_pages_in_change_order,
    records::list_records_filters,
    records::list_records_text_holds_the_same_records_unparsed,
    records::mark_remote_deleted_takes_new_seqs,
    records::delete_data_empties_and_bumps_the_epoch,
    scheduling::claim_renew_and_release,
    scheduling::a_sync_asked_for_during_a_run_is_not_pushed_back,
    scheduling::a_dead_workers_leases_can_be_ended_early,
    scheduling::concurrent_claimers_never_share_a_connection,
    scheduling::request_sync_and_inactive_connections,
    scheduling::runs_history,
    webhooks::connection_changes_write_events_and_queue_deliveries,
    webhooks::completed_streams_announce_their_changes_with_a_position,
    webhooks::finished_runs_announce_themselves,
    webhooks::deliveries_are_claimed_retried_and_logged,
    webhooks::endpoints_are_marked_failing_and_cleared,
    webhooks::concurrent_claimers_never_share_a_delivery,
    webhooks::deleting_an_endpoint_drops_its_deliveries,
}

// ---- fixtures ----

/// Returns a fixed instant `seconds` after 2024-01-01 (microsecond precision, as stored).
pub fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200 + seconds, 0).unwrap()
}

/// Returns a connection to create: `credits` credits, streams for assets and work orders.
pub fn new_connection(id: &str, customer_id: &str, system: &str, credits: u32) -> NewConnection {
    NewConnection {
        id: id.to_owned(),
        customer_id: customer_id.to_owned(),
        system: system.to_owned(),
        deployment: Deployment::Cloud,
        name: format!("{system} of {customer_id}"),
        credits,
        lookback_days: 30,
        sync_interval_seconds: 900,
        sealed_credentials: vec![1, 2, 3],
        token_hash: token_hash(id),
        objects: vec![ObjectType::WorkOrders, ObjectType::Assets],
        created_at: t(0),
    }
}

/// The token hash `new_connection` gives a connection.
pub fn token_hash(connection_id: &str) -> String {
    format!("hash-of-{connection_id}")
}

/// Creates `id` with a pool large enough never to refuse.
pub async fn create(store: &Store, id: &str) {
    store
        .create_connection(new_connection(id, "customer", "ibm_maximo", 1), 1000)
        .await
        .unwrap();
}

/// Returns an asset record with the given hash and unified fields.
pub fn asset(connection_id: &str, remote_id: &str, hash: &str, fields: Value) -> RecordWrite {
    let Value::Object(fields) = fields else {
        panic!("fields must be an object")
    };
    RecordWrite {
        id: millrace_model::ids::record_id(connection_id, ObjectType::Assets, remote_id),
        remote_id: remote_id.to_owned(),
        content_hash: hash.to_owned(),
        remote_created_at: Some(t(-100)),
        remote_updated_at: Some(t(-50)),
        remote_deleted_at: None,
        fields,
        custom_fields: Map::from_iter([("plant".to_owned(), json!("P1"))]),
        remote_data: json!({ "ASSETNUM": remote_id, "hash": hash }),
    }
}

pub fn checkpoint(run_id: &str, records_read: u64) -> Checkpoint {
    Checkpoint {
        run_id: run_id.to_owned(),
        kind: RunKind::Initial,
        since: None,
        next_page: Some(format!("page-after-{records_read}")),
        ordered_by_change: true,
        max_seen: Some(t(-50)),
        records_read,
        pages_read: 1,
        records_expected: Some(100),
        listing_started_at: None,
        changes_after_seq: None,
    }
}
