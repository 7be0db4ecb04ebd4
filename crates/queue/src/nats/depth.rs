//! Queue depths. `pending`, `retrying` and `dead` are JetStream's counts, the same on every
//! node; `in_flight` is what this node holds, so the sum over nodes is the total.

use futures_util::TryStreamExt as _;

use super::Inner;
use super::claim::Origin;
use super::names::{dead_subject, events_consumer, retries_consumer};
use crate::state::lock;
use crate::{Depth, QueueError};

pub(crate) async fn depth(inner: &Inner, name: &str) -> Result<Depth, QueueError> {
    let Ok(events) = inner.nats.events.consumer_info(events_consumer(name)).await else {
        return Ok(Depth::default());
    };
    let retries = inner
        .nats
        .retries
        .consumer_info(retries_consumer(name))
        .await
        .map_err(|source| QueueError::nats("reading a retry consumer", source))?;
    let (in_flight, retries_in_flight, released) = match inner.connection(name) {
        Some(connection) => {
            let state = lock(&connection.state);
            let retries = state
                .in_flight
                .values()
                .filter(|flight| flight.origin == Origin::Retry)
                .count();
            let kept = state.order.as_ref().map_or(0, |o| o.sequencer.kept());
            (
                state.in_flight.len() - kept,
                retries,
                state.released.len() + kept,
            )
        }
        None => (0, 0, 0),
    };
    let mut counts = inner
        .nats
        .dead
        .info_with_subjects(dead_subject(name))
        .await
        .map_err(|source| QueueError::nats("counting dead letters", source))?;
    let mut dead = 0;
    while let Some((_, count)) = counts
        .try_next()
        .await
        .map_err(|source| QueueError::nats("counting dead letters", source))?
    {
        dead += u64::try_from(count).unwrap_or(0);
    }
    let retrying = retries.num_pending + retries.num_ack_pending as u64;
    Ok(Depth {
        pending: events.num_pending + released as u64,
        in_flight: in_flight as u64,
        retrying: retrying.saturating_sub(retries_in_flight as u64),
        dead,
    })
}
