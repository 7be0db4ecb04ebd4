//! What ingest and the delivery workers report to the console, and the console task that folds
//! it into the recent events and the stats and publishes what viewers are shown.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use ferry_pipeline::Journal;
use ferry_queue::Claimed;
use tokio::sync::mpsc;

use super::recent::Entry;
use super::stream::Live;
use super::{Console, LIVE_PER_SECOND};

/// What a part of the server saw.
pub(crate) enum Sighting {
    /// Events a source accepted and stored, with their ids and text.
    Received {
        source: Arc<str>,
        at_ms: i64,
        events: Vec<(i64, Arc<str>)>,
        /// Why events inside the request were refused (they are dead letters).
        rejected: Vec<String>,
    },
    /// A request refused whole, before any event of it was stored.
    Refused {
        /// The ingest endpoint: `segment`, `amplitude` or `extole`.
        endpoint: &'static str,
        /// The source, when the request named one this server knows.
        source: Option<Arc<str>>,
        status: u16,
        reason: String,
        at_ms: i64,
    },
    /// Events a worker claimed that this process had not seen arrive (another node sharing
    /// the JetStream queue received them, or they were received before a restart).
    Claimed {
        source: Arc<str>,
        events: Vec<(i64, i64, Arc<str>)>,
    },
    /// What became of events for a connection.
    Settled {
        connection: Arc<str>,
        fates: Vec<Fate>,
    },
}

/// What became of one event for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Fate {
    pub(crate) id: i64,
    pub(crate) status: FateStatus,
    /// Why it was skipped, will be retried or is dead.
    pub(crate) reason: Option<String>,
    pub(crate) at_ms: i64,
    /// 0 for the first delivery, n for the n-th retry from the store.
    pub(crate) attempt: u32,
    /// From receipt to delivery, when delivered.
    pub(crate) took_ms: Option<i64>,
    /// What the event went through, when it was watched.
    pub(crate) journal: Option<Arc<Journal>>,
}

/// Where an event stands for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FateStatus {
    Delivered,
    /// Nothing to send, by the mapping's design.
    Skipped,
    Retrying,
    Dead,
    /// Handed back unfinished (shutdown, reload): pending again.
    Pending,
}

impl FateStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FateStatus::Delivered => "delivered",
            FateStatus::Skipped => "skipped",
            FateStatus::Retrying => "retrying",
            FateStatus::Dead => "dead",
            FateStatus::Pending => "pending",
        }
    }
}

/// How many events the live stream may still show this second: [`LIVE_PER_SECOND`] a second,
/// shared by the console task and the workers, without a lock.
#[derive(Default)]
pub(crate) struct Budget {
    second: AtomicI64,
    used: AtomicU32,
}

impl Budget {
    /// Takes one event's place in this second's budget, if there is any left.
    pub(crate) fn take(&self) -> bool {
        let now = crate::console::now_ms() / 1000;
        if self.second.swap(now, Ordering::AcqRel) != now {
            self.used.store(0, Ordering::Release);
        }
        self.used.fetch_add(1, Ordering::AcqRel) < LIVE_PER_SECOND
    }
}

impl Console {
    /// Which claimed events a worker should keep a journal for: those the live stream shows.
    /// Events this process has not seen arrive are reported, and shown while the budget
    /// lasts. Takes no lock when nobody watches.
    pub(crate) fn claimed(&self, source: &Arc<str>, claimed: &[Claimed]) -> Vec<bool> {
        if !self.watched() {
            return vec![false; claimed.len()];
        }
        let mut unseen = Vec::new();
        let watched = {
            let recent = self.recent();
            claimed
                .iter()
                .map(|event| match recent.get(event.id.0) {
                    Some(entry) => entry.shown,
                    None if self.budget.take() => {
                        unseen.push((
                            event.id.0,
                            event.received_at_ms,
                            Arc::from(event.body.as_str()),
                        ));
                        true
                    }
                    None => false,
                })
                .collect()
        };
        if !unseen.is_empty() {
            self.report(Sighting::Claimed {
                source: Arc::clone(source),
                events: unseen,
            });
        }
        watched
    }

    /// Folds sightings in until the console closes, and once a second publishes how many
    /// events the live stream did not show.
    pub(crate) async fn run(self: Arc<Console>, mut sightings: mpsc::Receiver<Sighting>) {
        let mut closing = self.closing.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut batch = Vec::with_capacity(256);
        let mut unshown: u64 = 0;
        loop {
            tokio::select! {
                taken = sightings.recv_many(&mut batch, 256) => {
                    if taken == 0 {
                        return;
                    }
                    for sighting in batch.drain(..) {
                        unshown += self.fold(sighting);
                    }
                }
                _ = tick.tick() => {
                    let lost = self.lost.swap(0, Ordering::Relaxed);
                    if (unshown > 0 || lost > 0) && self.watched() {
                        self.publish(Live::unshown(unshown + lost));
                    }
                    unshown = 0;
                }
                _ = closing.changed() => return,
            }
        }
    }

    /// Folds one sighting in; answers how many events the live stream did not show.
    fn fold(&self, sighting: Sighting) -> u64 {
        let now = crate::console::now_ms();
        match sighting {
            Sighting::Received {
                source,
                at_ms,
                events,
                rejected,
            } => {
                self.stats().received(&source, now, events.len(), &rejected);
                self.arrived(&source, at_ms, events)
            }
            Sighting::Claimed { source, events } => self.arrived_at(&source, events, true),
            Sighting::Refused {
                endpoint,
                source,
                status,
                reason,
                at_ms,
            } => {
                self.stats()
                    .refused(endpoint, source.as_deref(), status, &reason, at_ms);
                if self.watched() && self.budget.take() {
                    self.publish(Live::refused(endpoint, source, status, &reason, at_ms));
                    0
                } else {
                    1
                }
            }
            Sighting::Settled { connection, fates } => {
                self.stats().settled(&connection, now, &fates);
                let watched = self.watched();
                let mut recent = self.recent();
                for fate in fates {
                    let shown = recent.fate(&connection, fate.clone());
                    if watched && let Some(entry) = shown {
                        self.publish(Live::fate(entry, &connection, &fate));
                    }
                }
                0
            }
        }
    }

    /// Events received here: kept, and shown while someone watches and the budget lasts.
    fn arrived(&self, source: &Arc<str>, at_ms: i64, events: Vec<(i64, Arc<str>)>) -> u64 {
        let events = events
            .into_iter()
            .map(|(id, body)| (id, at_ms, body))
            .collect();
        self.arrived_at(source, events, false)
    }

    /// Keeps events; `chosen` says they were already chosen to be shown.
    fn arrived_at(
        &self,
        source: &Arc<str>,
        events: Vec<(i64, i64, Arc<str>)>,
        chosen: bool,
    ) -> u64 {
        let watched = self.watched();
        let mut unshown = 0;
        let mut recent = self.recent();
        for (id, at_ms, body) in events {
            if recent.get(id).is_some() {
                // Seen by the other path already: a worker may claim an event before its
                // receipt is folded in.
                continue;
            }
            let shown = chosen || (watched && self.budget.take());
            let entry = recent.insert(Entry::new(id, Arc::clone(source), at_ms, body, shown));
            if shown && watched {
                self.publish(Live::event(entry));
            } else if watched {
                unshown += 1;
            }
        }
        unshown
    }

    /// Sends a message to every live viewer; a viewer that is behind loses its oldest.
    pub(crate) fn publish(&self, live: Live) {
        let _ = self.live.send(Arc::new(live));
    }
}
