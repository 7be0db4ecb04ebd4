//! Why the server did not start, or did not stop cleanly.

use std::io;
use std::path::PathBuf;

use ferry_queue::QueueError;

/// Why `ferry serve` did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration or a mapping has problems: every one of them, located.
    #[error("{0}")]
    Setup(ferry_spec::Diagnostics),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store refused the connections of the setup.
    #[error("cannot declare the connections in the store")]
    Declare(#[source] QueueError),
    #[error("cannot listen on `{address}`")]
    Listen {
        address: String,
        #[source]
        source: io::Error,
    },
    /// Loading the setup stopped before it finished.
    #[error("loading the configuration stopped")]
    Load(#[source] tokio::task::JoinError),
    /// The threads delivery runs on could not be started.
    #[error("cannot start the delivery threads")]
    Runtime(#[source] io::Error),
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create the data folder `{path}`")]
    Folder {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The store's files hold user data: only their owner may read them.
    #[error("cannot make `{path}` readable by its owner only")]
    Permissions {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What went wrong while the server stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    #[error("the HTTP listener failed")]
    Listener(#[source] io::Error),
    #[error("a server task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Why `ferry serve` ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Stop(#[from] StopError),
}
