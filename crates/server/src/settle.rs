//! Settling: turning each ticket's outcome into a queue settlement, in batches, with the retry
//! schedule: delivered; retry at a time when every failure may clear later and the event is
//! young enough; dead otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ferry_delivery::DeadLetter;
use ferry_pipeline::{Input, Note, Settle, Settled, Ticket};
use ferry_queue::{Claimed, EventId, Remember, Settlement};
use ferry_spec::config::Retry;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::WorkerContext;
use crate::console::{Fate, FateStatus, Sighting};
use crate::metrics;

/// What the settler needs to know of a claimed event.
#[derive(Clone, Copy)]
struct Meta {
    received_at_ms: i64,
    attempt: u32,
}

/// Turns tickets' outcomes into queue settlements, in batches.
pub(crate) struct Settler {
    connection: String,
    outcomes: mpsc::UnboundedSender<Settled>,
    meta: Mutex<HashMap<i64, Meta>>,
    outstanding: AtomicUsize,
    /// Signalled when settlements made room for more claims.
    pub(crate) room: Notify,
}

/// The settler and its task.
pub(crate) struct SettlerHandle {
    settler: Arc<Settler>,
    task: JoinHandle<()>,
}

impl std::ops::Deref for SettlerHandle {
    type Target = Settler;
    fn deref(&self) -> &Settler {
        &self.settler
    }
}

impl Settle for Settler {
    fn settle(&self, settled: Settled) {
        // The receiver lives as long as any ticket; a send fails only after shutdown, when the
        // event stays pending, as it should.
        let _ = self.outcomes.send(settled);
    }
}

impl Settler {
    pub(crate) fn start(
        connection: &str,
        shared: &WorkerContext,
        retry: watch::Receiver<Retry>,
    ) -> SettlerHandle {
        let (outcomes, rx) = mpsc::unbounded_channel();
        let settler = Arc::new(Settler {
            connection: connection.to_owned(),
            outcomes,
            meta: Mutex::new(HashMap::new()),
            outstanding: AtomicUsize::new(0),
            room: Notify::new(),
        });
        let task = tokio::spawn(settle_loop(
            Arc::downgrade(&settler),
            rx,
            shared.clone(),
            retry,
        ));
        SettlerHandle { settler, task }
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }
}

impl SettlerHandle {
    /// Hands a claimed event to the pipeline behind `events`; a `watched` event keeps a journal
    /// of what it goes through, for the console.
    pub(crate) async fn feed(&self, events: &mpsc::Sender<Input>, claimed: Claimed, watched: bool) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        self.meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                claimed.id.0,
                Meta {
                    received_at_ms: claimed.received_at_ms,
                    attempt: claimed.attempt,
                },
            );
        let settle = Arc::clone(&self.settler) as Arc<dyn Settle>;
        let ticket = if watched {
            Ticket::watched(claimed.id.0, settle)
        } else {
            Ticket::new(claimed.id.0, settle)
        };
        match serde_json::from_str(&claimed.body) {
            Ok(event) => {
                // A closed pipeline returns the input; dropping it settles the event as
                // interrupted, so it stays pending.
                let _ = events.send(Input::Queued { ticket, event }).await;
            }
            Err(error) => ticket.reject(DeadLetter {
                at: ferry_delivery::timestamp(std::time::SystemTime::now()),
                mapping: String::new(),
                connection: Some(self.connection.clone()),
                event: serde_json::Value::String(claimed.body),
                // Events are checked at ingest: this means the store was changed by hand.
                reason: format!("the stored event is not JSON: {error}"),
                last_request: None,
                last_response: None,
                attempts: 0,
            }),
        }
    }

    /// Waits until every outcome is settled in the queue.
    pub(crate) async fn close(self) {
        let SettlerHandle { settler, task } = self;
        drop(settler);
        if let Err(error) = task.await {
            tracing::error!("settling failed: {error}");
        }
    }
}

async fn settle_loop(
    settler: std::sync::Weak<Settler>,
    mut outcomes: mpsc::UnboundedReceiver<Settled>,
    shared: WorkerContext,
    retry: watch::Receiver<Retry>,
) {
    let mut batch = Vec::with_capacity(1024);
    let Some(connection) = settler.upgrade().map(|s| s.connection.clone()) else {
        return;
    };
    let label = metrics::connection(&connection);
    let console_name: Arc<str> = connection.as_str().into();
    while outcomes.recv_many(&mut batch, 1024).await > 0 {
        let now = now_ms();
        let policy = retry.borrow().clone();
        let metas: Vec<Option<Meta>> = match settler.upgrade() {
            Some(s) => {
                let mut meta = s.meta.lock().unwrap_or_else(PoisonError::into_inner);
                batch.iter().map(|o| meta.remove(&o.id)).collect()
            }
            None => batch.iter().map(|_| None).collect(),
        };
        let mut settlements = Vec::with_capacity(batch.len());
        let mut released = Vec::new();
        let mut remembered = Vec::new();
        let mut fates = Vec::with_capacity(batch.len());
        for (mut settled, meta) in batch.drain(..).zip(metas) {
            let meta = meta.unwrap_or(Meta {
                received_at_ms: now,
                attempt: 0,
            });
            let id = EventId(settled.id);
            if settled.interrupted {
                released.push(id);
                fates.push(fate(&mut settled, None, meta, now));
                continue;
            }
            remembered.extend(settled.remembered.iter().map(|r| Remember {
                store: r.store.to_string(),
                key: r.key.clone(),
                value: r.value.clone(),
            }));
            let settlement = decide(&settled, meta, now, &policy);
            match &settlement {
                Settlement::Delivered => {
                    shared.metrics.delivered.get_or_create(&label).inc();
                    #[allow(clippy::cast_precision_loss)]
                    let seconds = (now - meta.received_at_ms).max(0) as f64 / 1000.0;
                    shared
                        .metrics
                        .delivery_seconds
                        .get_or_create(&label)
                        .observe(seconds);
                }
                Settlement::Retry { reason, .. } => {
                    shared.metrics.retried.get_or_create(&label).inc();
                    tracing::warn!(connection = %connection, event = id.0, "will retry: {reason}");
                }
                Settlement::Dead { reason, .. } => {
                    shared.metrics.dead.get_or_create(&label).inc();
                    tracing::warn!(connection = %connection, event = id.0, "dead-lettered: {reason}");
                }
            }
            fates.push(fate(&mut settled, Some(&settlement), meta, now));
            settlements.push((id, settlement));
        }
        shared.console.report(Sighting::Settled {
            connection: Arc::clone(&console_name),
            fates,
        });
        let count = settlements.len() + released.len();
        if !settlements.is_empty()
            && let Err(error) = shared
                .queue
                .settle(&connection, settlements, remembered)
                .await
        {
            // The events stay claimed until the next start, which delivers them again.
            tracing::error!(connection = %connection, "cannot record deliveries: {error}");
        }
        if !released.is_empty()
            && let Err(error) = shared.queue.release(&connection, released).await
        {
            tracing::error!(connection = %connection, "cannot release events: {error}");
        }
        if let Some(s) = settler.upgrade() {
            s.outstanding.fetch_sub(count, Ordering::AcqRel);
            s.room.notify_one();
        }
    }
}

/// What the console shows of an event's settlement (`None`: handed back unfinished).
fn fate(settled: &mut Settled, settlement: Option<&Settlement>, meta: Meta, now_ms: i64) -> Fate {
    let (status, reason) = match settlement {
        None => (
            FateStatus::Pending,
            Some("handed back unfinished".to_owned()),
        ),
        Some(Settlement::Delivered) if settled.requests == 0 => {
            let skipped = settled.journal.as_ref().and_then(|journal| {
                journal.planned.iter().find_map(|note| match note {
                    Note::Skipped { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
            });
            (
                FateStatus::Skipped,
                Some(skipped.unwrap_or_else(|| "nothing to send for it".to_owned())),
            )
        }
        Some(Settlement::Delivered) => (FateStatus::Delivered, None),
        Some(Settlement::Retry { reason, .. }) => (FateStatus::Retrying, Some(reason.clone())),
        Some(Settlement::Dead { reason, .. }) => (FateStatus::Dead, Some(reason.clone())),
    };
    Fate {
        id: settled.id,
        took_ms: (status == FateStatus::Delivered).then(|| (now_ms - meta.received_at_ms).max(0)),
        status,
        reason,
        at_ms: now_ms,
        attempt: meta.attempt,
        journal: settled.journal.take().map(Arc::new),
    }
}

fn now_ms() -> i64 {
    unix_ms(std::time::SystemTime::now())
}

fn unix_ms(time: std::time::SystemTime) -> i64 {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The settlement of an event that the pipeline finished: delivered; a retry when every
/// failure may clear later and the event is young enough; dead otherwise.
fn decide(settled: &Settled, meta: Meta, now_ms: i64, policy: &Retry) -> Settlement {
    if settled.delivered() {
        return Settlement::Delivered;
    }
    let first = &settled.letters[0].letter;
    let more = match settled.letters.len() {
        1 => String::new(),
        n => format!(" (and {} more requests failed)", n - 1),
    };
    let age_ms = now_ms - meta.received_at_ms;
    let give_up_ms =
        i64::try_from(policy.give_up_after_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    if settled.retryable() && age_ms < give_up_ms {
        let doubled = policy
            .first_after_seconds
            .saturating_mul(1u64 << meta.attempt.min(30));
        let seconds = doubled.min(policy.at_most_every_seconds);
        // Up to a fifth less, so that events failed together do not come back together.
        let wait_ms = seconds * 1000 - fastrand::u64(0..=seconds * 200);
        let scheduled = now_ms.saturating_add(i64::try_from(wait_ms).unwrap_or(i64::MAX / 2));
        // Never sooner than a destination asked (`Retry-After`).
        let asked = settled
            .letters
            .iter()
            .filter_map(|l| l.not_before)
            .map(unix_ms)
            .max()
            .unwrap_or(0);
        return Settlement::Retry {
            at_ms: scheduled.max(asked),
            reason: format!("{}{more}", first.reason),
        };
    }
    let reason = if settled.retryable() {
        format!(
            "gave up {} hours after the event was received: {}{more}",
            policy.give_up_after_hours, first.reason
        )
    } else {
        format!("{}{more}", first.reason)
    };
    Settlement::Dead {
        mapping: first.mapping.clone(),
        reason,
        letters: settled
            .letters
            .iter()
            .map(|l| serde_json::to_value(&l.letter).unwrap_or_default())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use ferry_pipeline::Letter;

    use super::*;

    fn letter(reason: &str) -> DeadLetter {
        DeadLetter {
            at: String::new(),
            mapping: "braze".to_owned(),
            connection: Some("braze".to_owned()),
            event: serde_json::Value::Null,
            reason: reason.to_owned(),
            last_request: None,
            last_response: None,
            attempts: 3,
        }
    }

    fn settled(failures: &[(&str, bool)]) -> Settled {
        Settled {
            id: 1,
            letters: failures
                .iter()
                .map(|(reason, retryable)| Letter {
                    letter: letter(reason),
                    retryable: *retryable,
                    not_before: None,
                })
                .collect(),
            remembered: Vec::new(),
            interrupted: false,
            journal: None,
            requests: 1,
        }
    }

    const POLICY: Retry = Retry {
        first_after_seconds: 30,
        at_most_every_seconds: 3600,
        give_up_after_hours: 24,
        inline_seconds: 5,
    };

    fn meta(age_ms: i64, attempt: u32) -> (Meta, i64) {
        let now = 10_000_000_000;
        (
            Meta {
                received_at_ms: now - age_ms,
                attempt,
            },
            now,
        )
    }

    #[test]
    fn an_event_with_no_failure_is_delivered() {
        let (meta, now) = meta(0, 0);
        assert!(matches!(
            decide(&settled(&[]), meta, now, &POLICY),
            Settlement::Delivered
        ));
    }

    #[test]
    fn retryable_failures_wait_longer_each_time_up_to_the_longest_wait() {
        for (attempt, full_wait_s) in [(0, 30), (1, 60), (3, 240), (10, 3600), (40, 3600)] {
            let (meta, now) = meta(1_000, attempt);
            let Settlement::Retry { at_ms, reason } = decide(
                &settled(&[("503 after 3 attempts", true)]),
                meta,
                now,
                &POLICY,
            ) else {
                panic!("attempt {attempt} should be retried");
            };
            let wait = at_ms - now;
            assert!(
                (full_wait_s * 800..=full_wait_s * 1000).contains(&wait),
                "attempt {attempt}: waited {wait} ms"
            );
            assert_eq!(reason, "503 after 3 attempts");
        }
    }

    #[test]
    fn a_retry_waits_at_least_as_long_as_the_destination_asked() {
        let (meta, now) = meta(1_000, 0);
        let mut busy = settled(&[("429 Too Many Requests", true)]);
        let asked = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(now).unwrap() + 600_000);
        busy.letters[0].not_before = Some(asked);
        let Settlement::Retry { at_ms, .. } = decide(&busy, meta, now, &POLICY) else {
            panic!("a 429 is retried");
        };
        assert_eq!(at_ms, now + 600_000);
    }

    #[test]
    fn a_refusal_or_an_old_event_is_dead() {
        let (young, now) = meta(1_000, 0);
        let Settlement::Dead {
            reason, letters, ..
        } = decide(
            &settled(&[("503", true), ("400 Bad Request", false)]),
            young,
            now,
            &POLICY,
        )
        else {
            panic!("a refusal is not retried");
        };
        assert_eq!(reason, "503 (and 1 more requests failed)");
        assert_eq!(letters.len(), 2);

        let (old, now) = meta(25 * 3_600_000, 5);
        let Settlement::Dead { reason, .. } = decide(&settled(&[("503", true)]), old, now, &POLICY)
        else {
            panic!("an event older than the limit is given up");
        };
        assert!(reason.starts_with("gave up 24 hours after"), "{reason}");
    }
}
