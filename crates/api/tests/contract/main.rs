//! The product contract, end to end: a Maximo sandbox, the sync engine and the HTTP API driven
//! like a client would, each behaviour once on SQLite and once on PostgreSQL.

#[path = "../support/mod.rs"]
#[macro_use]
mod support;

mod dashboard;
mod errors;
mod lifecycle;
mod link;
mod sync;
mod webhooks;

contract! {
    lifecycle::a_token_never_reads_another_connections_data,
    lifecycle::disconnect_takes_effect_at_once_even_mid_sync,
    lifecycle::credits_are_reserved_by_tier_refused_when_short_and_returned,
    lifecycle::rejected_credentials_make_the_connection_reauth_required,
    lifecycle::shapes_clients_rely_on,
    link::link_sessions_refuse_bad_input,
    link::a_link_code_is_exchanged_once_for_a_working_token,
    dashboard::dashboard_actions_need_a_session_and_its_csrf_token,
    errors::bad_input_gets_a_clear_problem_and_changes_nothing,
    sync::initial_sync_respects_the_lookback_and_reads_master_data_whole,
    sync::incremental_reads_only_changes_and_the_overlap_adds_no_false_changes,
    sync::many_records_sharing_one_change_time_across_pages_all_arrive,
    sync::sandboxes_in_other_time_zones_lose_nothing,
    sync::a_stopped_sync_resumes_from_its_checkpoint_without_loss_or_duplicates,
    sync::a_polling_client_sees_every_change_exactly_once,
    webhooks::a_connection_is_announced_signed_from_connect_to_disconnect,
    webhooks::a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt_once,
    webhooks::an_endpoint_that_keeps_failing_is_marked_until_a_manual_retry_succeeds,
}
