//! The backends the suite runs against, each a real store: a SQLite file in a temporary
//! folder, or a real `nats-server` with JetStream.

use std::sync::Arc;
use std::time::Duration;

use ferry_queue::{NatsOptions, NatsQueue, NewEvent, Queue, SqliteOptions, SqliteQueue};
use ferry_testkit::NatsServer;

/// A store that handles can be opened on, again and again (a restart, or a second process).
pub enum Backend {
    Sqlite(tempfile::TempDir),
    Nats(NatsServer),
}

/// How long JetStream waits in these tests before handing out again what a stopped handle
/// had claimed.
pub const NATS_ACK_WAIT: Duration = Duration::from_secs(1);

impl Backend {
    #[allow(
        clippy::unnecessary_wraps,
        reason = "the suite takes an `Option`, as for NATS"
    )]
    pub fn sqlite() -> Option<Backend> {
        Some(Backend::Sqlite(tempfile::tempdir().unwrap()))
    }

    /// `None` (after a note) when nats-server is not installed and not required.
    pub fn nats() -> Option<Backend> {
        let binary = ferry_testkit::nats_server()?;
        Some(Backend::Nats(NatsServer::start(&binary)))
    }

    /// Opens a handle, as a server (or `ferry dlq`) would.
    pub async fn open(&self) -> Arc<dyn Queue> {
        self.open_with_window(None).await
    }

    /// Opens a handle whose dedupe window is `window`.
    pub async fn open_with_window(&self, window: Option<Duration>) -> Arc<dyn Queue> {
        match self {
            Backend::Sqlite(dir) => {
                let mut options = SqliteOptions::default();
                if let Some(window) = window {
                    options.dedupe_window = window;
                }
                Arc::new(SqliteQueue::open(&dir.path().join("queue.db"), options).unwrap())
            }
            Backend::Nats(server) => {
                let mut options = NatsOptions::new(vec![server.url()]);
                options.ack_wait = NATS_ACK_WAIT;
                if let Some(window) = window {
                    options.dedupe_window = window;
                }
                Arc::new(NatsQueue::connect(options).await.unwrap())
            }
        }
    }

    /// Lets a dedupe window of `window` pass for `first`, enqueued next: SQLite measures the
    /// window from `received_at_ms`, so `first` is dated back; JetStream by its own clock, so
    /// the next call waits it out (see [`Backend::wait_out`]).
    pub fn backdate(&self, window: Duration, first: &mut NewEvent) {
        if let Backend::Sqlite(_) = self {
            first.received_at_ms -= i64::try_from(window.as_millis()).unwrap() * 2;
        }
    }

    /// Waits until a dedupe window of `window` has passed, where the backend keeps time itself.
    pub async fn wait_out(&self, window: Duration) {
        if let Backend::Nats(_) = self {
            tokio::time::sleep(window * 2).await;
        }
    }

    /// Whether a crashed handle's unsettled claims come back only after a while (JetStream's
    /// ack wait) rather than at the next start.
    pub fn claims_outlive_a_crash(&self) -> bool {
        matches!(self, Backend::Nats(_))
    }
}
