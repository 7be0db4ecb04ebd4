//! Waking idle workers without losing a wake-up that comes between a claim that found nothing
//! and the wait that follows it (a settlement freeing an ordered key, an enqueue).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::state::lock;

#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    /// How many wake-ups there were.
    epoch: AtomicU64,
    /// The epoch when each connection last began a claim.
    seen: Mutex<HashMap<String, u64>>,
}

impl Wake {
    /// There may be new work for any connection.
    pub(crate) fn notify(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// A claim for `connection` begins: what it finds includes every wake-up so far.
    pub(crate) fn claiming(&self, connection: &str) {
        let epoch = self.epoch.load(Ordering::Acquire);
        lock(&self.seen).insert(connection.to_owned(), epoch);
    }

    /// Resolves at the next wake-up, or at once if one came since `connection` last began a
    /// claim, or after `poll`.
    pub(crate) fn wait(
        &self,
        connection: &str,
        poll: Duration,
    ) -> impl Future<Output = ()> + use<'_> {
        let notified = self.notify.notified();
        let epoch = self.epoch.load(Ordering::Acquire);
        let missed = lock(&self.seen)
            .get(connection)
            .is_some_and(|seen| *seen != epoch);
        async move {
            if !missed {
                let _ = tokio::time::timeout(poll, notified).await;
            }
        }
    }
}
