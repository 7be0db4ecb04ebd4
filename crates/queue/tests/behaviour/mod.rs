//! The queue's behaviour through the [`Queue`] trait, run against every backend:
//! `tests/sqlite_behaviour.rs` and `tests/nats_behaviour.rs` instantiate [`suite!`] with theirs.
//! What only one backend does (SQLite's cursor and collection, JetStream's sharing between
//! nodes) is tested beside it, in its own files.

#![allow(dead_code)]

mod backend;
mod cases;
mod helpers;

pub use backend::Backend;
pub use cases::*;

/// One `#[tokio::test]` per case, each on a fresh store of the backend `make` opens (`None`:
/// the backend is not installed here, and the test passes with a note).
#[macro_export]
macro_rules! suite {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(backend) = $make {
                    behaviour::$case(&backend).await;
                }
            }
        )*
    };
}

/// Every case, for [`suite!`].
#[macro_export]
macro_rules! every_case {
    ($make:expr) => {
        $crate::suite!($make;
            enqueued_events_are_claimed_in_order_and_settled_once,
            claim_answers_at_most_max_events,
            acknowledged_events_survive_a_restart_without_settlement,
            events_settled_out_of_order_are_not_lost_by_a_restart,
            settling_an_event_not_claimed_is_an_error,
            released_events_are_claimed_again,
            a_retry_is_claimed_only_once_due_and_counts_its_attempts,
            due_retries_come_before_new_events,
            a_retry_survives_a_restart_and_is_not_also_redelivered,
            a_new_connection_on_a_known_source_starts_at_the_end,
            an_inactive_connection_claims_nothing,
            depth_counts_pending_in_flight_retrying_and_dead,
            dead_letters_are_listed_newest_first_and_shown_in_full,
            a_retry_given_up_becomes_a_dead_letter,
            replay_makes_dead_letters_claimable_again_as_a_first_attempt,
            purge_deletes_the_selected_dead_letters,
            events_rejected_at_ingest_are_not_replayed,
            a_second_handle_lists_and_replays_while_the_server_runs,
            a_dedupe_key_is_stored_once_within_and_across_calls,
            each_event_of_a_large_call_answers_its_own_id,
            a_dedupe_key_is_remembered_across_a_restart,
            a_dedupe_key_is_forgotten_after_the_window,
            concurrent_calls_with_the_same_key_store_it_once,
            rejected_events_are_kept_as_dead_letters_without_a_connection,
            remembered_values_are_written_with_the_settlement_and_survive_a_restart,
            values_can_be_remembered_without_settling_an_event,
            idle_workers_are_woken_by_new_events,
            ordered_events_of_one_key_go_out_one_after_another,
            a_retry_holds_back_only_its_keys_later_events_and_a_dead_letter_frees_them,
            a_waiting_retry_still_holds_its_key_after_a_restart,
            one_users_events_finish_in_acceptance_order_among_many,
        );
    };
}
