//! Where requests go: to the destination over HTTP, with its retries and limits, or, in a dry
//! run, to a recorder, redacted, with every request answered `200 {}`.

use std::sync::Arc;
use std::time::Duration;

use ferry_delivery::{
    AttemptRecord, Delivery, Destination, Outcome as Sent, RecordedRequest, Response,
};
use ferry_engine::{Connection, PlannedRequest};

use crate::outgoing::{outgoing, recorded};

/// Where requests go.
#[derive(Clone)]
pub(crate) enum Sender {
    Http(Destination),
    /// A dry run: each request is handed to the recorder (secrets redacted) and answered with
    /// `200 {}`; nothing is sent.
    DryRun(Arc<dyn Fn(RecordedRequest) + Send + Sync>),
}

impl Sender {
    /// Whether answers are the destination's, to be read by the mapping's `failure` and
    /// `item_errors` rules; a dry run's `200 {}` is not.
    pub(crate) fn answers_are_real(&self) -> bool {
        matches!(self, Sender::Http(_))
    }

    pub(crate) async fn send(&self, request: &PlannedRequest, connection: &Connection) -> Delivery {
        match self {
            Sender::Http(destination) => destination.send(&outgoing(request)).await,
            Sender::DryRun(record) => {
                record(recorded(request, connection));
                Delivery {
                    outcome: Sent::Delivered(Response {
                        status: 200,
                        headers: Vec::new(),
                        body: b"{}".as_slice().into(),
                    }),
                    attempts: 1,
                    history: vec![AttemptRecord {
                        status: Some(200),
                        error: None,
                        at: std::time::SystemTime::now(),
                        took: Duration::ZERO,
                    }],
                    elapsed: Duration::ZERO,
                }
            }
        }
    }
}
