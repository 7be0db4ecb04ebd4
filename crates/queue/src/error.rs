use std::path::PathBuf;
use std::sync::Arc;

/// Why a queue operation failed.
///
/// Every message names the store file, so an operator reading a log line knows which file to
/// look at. The underlying SQLite or JSON error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The file could not be opened or prepared (permissions, not a database, locked for longer
    /// than the busy timeout).
    #[error("cannot open the queue store `{path}`: {what}")]
    Open {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer ferry; opening it could lose data.
    #[error(
        "the queue store `{path}` has schema version {found}, newer than version {supported} \
         that this ferry knows; upgrade ferry or use another file"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A statement or commit failed. Shared (`Arc`) because one failed group commit fails
    /// every caller of that group.
    #[error("queue store `{path}`: {what} failed")]
    Sqlite {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// A stored value is not what ferry wrote (edited by hand, or damaged).
    #[error("queue store `{path}`: the stored {what} is not valid JSON")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A stored value ferry wrote in its own binary form is damaged.
    #[error("queue store `{path}`: the stored {what} is damaged")]
    Damaged { path: PathBuf, what: &'static str },
    /// `settle` named an event that this connection has not claimed (or already settled).
    #[error("event `{id}` is not claimed by connection `{connection}`")]
    NotClaimed { connection: String, id: i64 },
    /// The event a claim refers to is no longer in the log.
    #[error("queue store `{path}`: event `{id}` is missing from the log")]
    MissingEvent { path: PathBuf, id: i64 },
    /// The writer thread is gone (it stopped after a panic, or the queue is shutting down).
    #[error("the queue writer for `{path}` has stopped")]
    Closed { path: PathBuf },
    /// No NATS server of the list could be reached, or it refused the credentials.
    #[error("cannot connect to NATS at `{servers}`")]
    NatsConnect {
        /// The server list, with any user and password in a URL masked.
        servers: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// A JetStream request failed (a stream, consumer or key-value bucket; publishing or
    /// acknowledging).
    #[error("NATS JetStream: {what} failed")]
    Nats {
        what: &'static str,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A message in JetStream is not what ferry writes (written by another program, or by a
    /// newer ferry).
    #[error("NATS JetStream: the stored {what} in `{stream}` is not what ferry writes: {detail}")]
    NatsData {
        stream: &'static str,
        what: &'static str,
        detail: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the queue writer thread for `{path}`")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl QueueError {
    pub(crate) fn sqlite(
        path: &std::path::Path,
        what: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        Self::Sqlite {
            path: path.to_path_buf(),
            what,
            source: Arc::new(source),
        }
    }
}

impl QueueError {
    pub(crate) fn nats(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Nats {
            what,
            source: Arc::from(source.into()),
        }
    }
}
