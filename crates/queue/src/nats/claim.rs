//! Claiming: due retries first, then the connection's next events, fetched from the durable
//! consumers every node shares. What this node fetched stays in flight here until settled or
//! released; a node that dies leaves its events to JetStream, which hands them to another node
//! once `ack_wait` passes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::{self};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::Inner;
use super::lease::{self, Lease};
use super::names::{header, retry_subject};
use crate::order::{OrderKey, Sequencer};
use crate::state::lock;
use crate::{Claimed, EventId, QueueError, now_ms};

/// Where a claimed event was fetched from; decides how its settlement is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The events stream: acknowledging it is the connection's last word on the event.
    Event,
    /// The connection's retries.
    Retry,
}

/// One event this node claimed and has not settled.
pub(crate) struct Flight {
    pub(crate) acker: Arc<Acker>,
    pub(crate) origin: Origin,
    pub(crate) source: String,
    pub(crate) received_at_ms: i64,
    pub(crate) attempt: u32,
    pub(crate) body: Bytes,
    /// When JetStream last heard this node is working on it.
    pub(crate) touched: Instant,
    /// JetStream had handed it out before (to a node that stopped, or released it).
    pub(crate) redelivered: bool,
}

/// A connection declared on this node: its two consumers and what it has in flight.
pub(crate) struct Connection {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) events: PullConsumer,
    pub(crate) retries: PullConsumer,
    pub(crate) state: Mutex<State>,
    /// Values other nodes remembered for it, not yet taken by its worker.
    pub(crate) changes: Arc<Mutex<Vec<crate::Remember>>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) active: bool,
    /// For a connection with per-key order: what this node keeps back, and its lease.
    pub(crate) order: Option<Ordered>,
    pub(crate) in_flight: HashMap<i64, Flight>,
    /// Events this node gave back and has not claimed again (pending, for `depth`).
    pub(crate) released: HashSet<i64>,
}

/// An ordered connection on this node.
pub(crate) struct Ordered {
    pub(crate) sequencer: Sequencer,
    /// Held while this node is the one delivering the connection.
    pub(crate) lease: Option<Lease>,
    /// Whether the keys of the connection's waiting retries were read since the lease was taken.
    pub(crate) primed: bool,
    /// Set while this node, having taken the connection over, gathers what the previous holder
    /// had claimed: JetStream hands it out again in no particular order, so it is admitted
    /// only once all of it is here, sorted.
    pub(crate) catch_up: Option<CatchUp>,
}

/// See [`Ordered::catch_up`].
pub(crate) struct CatchUp {
    /// Events handed out again still to come.
    remaining: usize,
    backlog: Vec<Claimed>,
    /// Admit what came by then, whatever is missing.
    until: Instant,
}

/// Starts or stops keeping events of one key in order (see [`crate::Queue::order`]).
pub(crate) async fn set_order(
    inner: &Inner,
    name: &str,
    key: Option<OrderKey>,
) -> Result<(), QueueError> {
    let Some(connection) = inner.connection(name) else {
        return Ok(());
    };
    let given_back = {
        let mut state = lock(&connection.state);
        match (key, state.order.take()) {
            (Some(key), Some(mut ordered)) => {
                ordered.sequencer.set_key(key);
                state.order = Some(ordered);
                Vec::new()
            }
            (Some(key), None) => {
                state.order = Some(Ordered {
                    sequencer: Sequencer::new(key),
                    lease: None,
                    primed: false,
                    catch_up: None,
                });
                Vec::new()
            }
            (None, Some(ordered)) => take_flights(&mut state, &ordered.sequencer.into_kept()),
            (None, None) => Vec::new(),
        }
    };
    give_back(inner, given_back).await;
    Ok(())
}

/// Takes the flights of `events` out of this node's claims.
fn take_flights(state: &mut State, events: &[Claimed]) -> Vec<Arc<Acker>> {
    events
        .iter()
        .filter_map(|event| state.in_flight.remove(&event.id.0))
        .map(|flight| flight.acker)
        .collect()
}

/// Hands messages back to JetStream at once.
async fn give_back(inner: &Inner, ackers: Vec<Arc<Acker>>) {
    for acker in &ackers {
        if let Err(error) = acker.ack_with(AckKind::Nak(None)).await {
            tracing::debug!("cannot give back an event: {error}");
        }
    }
    if !ackers.is_empty() {
        inner.wake.notify();
    }
}

/// Whether this node may claim the ordered `connection` now: it holds the lease, whatever the
/// previous holder claimed is back, and the keys of waiting retries are known.
async fn may_claim_ordered(inner: &Inner, connection: &Connection) -> Result<bool, QueueError> {
    let lease = lock(&connection.state)
        .order
        .as_ref()
        .map(|o| (o.lease, o.primed));
    let Some((lease, primed)) = lease else {
        return Ok(true);
    };
    let lease = if let Some(lease) = lease {
        lease
    } else {
        let Some(mut lease) = lease::acquire(inner, &connection.name).await? else {
            return Ok(false);
        };
        let (events, any) = claimed_elsewhere(connection).await;
        if !any {
            lease.claim_from = Instant::now();
        }
        if let Some(ordered) = &mut lock(&connection.state).order {
            ordered.lease = Some(lease);
            ordered.primed = false;
            ordered.catch_up = (events > 0).then(|| CatchUp {
                remaining: events,
                backlog: Vec::new(),
                until: lease.claim_from + inner.options.ack_wait * 2,
            });
        }
        lease
    };
    if Instant::now() < lease.claim_from {
        return Ok(false);
    }
    if !primed {
        let retries = waiting_retries(inner, &connection.name).await?;
        if let Some(ordered) = &mut lock(&connection.state).order {
            ordered
                .sequencer
                .hold_for_retries(retries.iter().map(|(id, body)| (*id, body.as_str())));
            ordered.primed = true;
        }
    }
    Ok(true)
}

/// How many of the connection's events are claimed and unsettled (by a node that stopped),
/// and whether any event or retry is. Unknown counts as some.
async fn claimed_elsewhere(connection: &Connection) -> (usize, bool) {
    let (events, retries) =
        tokio::join!(connection.events.get_info(), connection.retries.get_info());
    match (events, retries) {
        (Ok(e), Ok(r)) => (
            e.num_ack_pending,
            e.num_ack_pending > 0 || r.num_ack_pending > 0,
        ),
        _ => (0, true),
    }
}

/// The event ids and bodies of the connection's retries in JetStream. Read message by
/// message: a consumer would register interest in the subject and keep, for as long as it
/// lives, retries already settled.
async fn waiting_retries(inner: &Inner, name: &str) -> Result<Vec<(i64, String)>, QueueError> {
    let subject = retry_subject(name);
    let mut retries = Vec::new();
    let mut sequence = 1;
    loop {
        let message = match inner
            .nats
            .retries
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(subject.clone())
            .send()
            .await
        {
            Ok(message) => message,
            Err(error) if super::no_message(&error) => break,
            Err(source) => {
                return Err(QueueError::nats(
                    "reading the keys of waiting retries",
                    source,
                ));
            }
        };
        sequence = message.sequence + 1;
        let id = message
            .headers
            .get(header::EVENT)
            .and_then(|v| v.as_str().parse::<i64>().ok());
        if let Some(id) = id {
            retries.push((id, body_text(&message.payload)));
        }
    }
    Ok(retries)
}

pub(crate) async fn claim(
    inner: &Inner,
    name: &str,
    max: usize,
) -> Result<Vec<Claimed>, QueueError> {
    let Some(connection) = inner.connection(name) else {
        return Ok(Vec::new());
    };
    if max == 0 || !lock(&connection.state).active {
        return Ok(Vec::new());
    }
    if !may_claim_ordered(inner, &connection).await? {
        return Ok(Vec::new());
    }
    // While catching up after a takeover nothing is admitted until every event the previous
    // holder had claimed is here: keep fetching rather than leave the worker waiting for a
    // wake-up between batches, which would let the catch-up time out half-gathered.
    loop {
        let (out, fetched) = claim_round(&connection, max).await?;
        let catching_up = lock(&connection.state)
            .order
            .as_ref()
            .is_some_and(|o| o.catch_up.is_some());
        if !out.is_empty() || !catching_up || fetched == 0 {
            return Ok(out);
        }
    }
}

/// One fetch: the events admitted, and how many messages came from JetStream.
async fn claim_round(
    connection: &Connection,
    max: usize,
) -> Result<(Vec<Claimed>, usize), QueueError> {
    let asked = max;
    let ready = lock(&connection.state)
        .order
        .as_ref()
        .map_or(0, |o| o.sequencer.ready_soon());
    let max = max.saturating_sub(ready);
    let mut claimed = if max == 0 {
        Vec::new()
    } else {
        due_retries(connection, max).await?
    };
    let wanted = max - claimed.len().min(max);
    if wanted > 0 {
        claimed.extend(next_events(connection, wanted).await?);
    }
    let fetched = claimed.len();
    let mut state = lock(&connection.state);
    let mut answer = Vec::with_capacity(claimed.len());
    let mut again = Vec::with_capacity(claimed.len());
    for (event, flight) in claimed {
        state.released.remove(&event.id.0);
        // A message JetStream handed out again while this node still works on it (its claim
        // lapsed while the node was too busy to extend it): JetStream now expects the
        // acknowledgement of the latest delivery, so that is the one kept.
        if let Some(held) = state.in_flight.get_mut(&event.id.0) {
            if held.origin == flight.origin {
                held.acker = flight.acker;
                held.touched = flight.touched;
            }
            continue;
        }
        again.push((flight.origin, flight.redelivered));
        state.in_flight.insert(event.id.0, flight);
        answer.push(event);
    }
    // What this node released and JetStream gave to another node is not pending here.
    if answer.len() < max {
        state.released.clear();
    }
    let out = match &mut state.order {
        Some(ordered) => {
            let now = catch_up(ordered, answer, &again);
            let mut out = ordered
                .sequencer
                .ready(asked.saturating_sub(now.len()).max(ready));
            out.extend(ordered.sequencer.admit(now));
            out
        }
        None => answer,
    };
    Ok((out, fetched))
}

/// The events an ordered connection may admit now. While catching up after a takeover, events
/// wait in the backlog until every one the previous holder had claimed is back (or time is
/// up), then all go in the order they were accepted; retries go at once (each holds its key).
fn catch_up(ordered: &mut Ordered, answer: Vec<Claimed>, again: &[(Origin, bool)]) -> Vec<Claimed> {
    let Some(catching) = &mut ordered.catch_up else {
        return answer;
    };
    let mut now = Vec::new();
    for (event, (origin, redelivered)) in answer.into_iter().zip(again) {
        if *origin == Origin::Event {
            if *redelivered {
                catching.remaining = catching.remaining.saturating_sub(1);
            }
            catching.backlog.push(event);
        } else {
            now.push(event);
        }
    }
    if catching.remaining == 0 || Instant::now() >= catching.until {
        let mut backlog = std::mem::take(&mut catching.backlog);
        backlog.sort_by_key(|event| event.id);
        now.extend(backlog);
        ordered.catch_up = None;
    }
    now
}

/// Retries due now, each with the flight to record; those not yet due are handed back to
/// JetStream until they are.
async fn due_retries(
    connection: &Connection,
    max: usize,
) -> Result<Vec<(Claimed, Flight)>, QueueError> {
    let mut claimed = Vec::new();
    let now = now_ms();
    for message in fetch(&connection.retries, max).await? {
        let (message, acker) = message.split();
        let headers = message.headers.as_ref();
        let number = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .and_then(|v| v.as_str().parse::<i64>().ok())
        };
        let (Some(id), Some(received_at_ms), Some(attempt), Some(due)) = (
            number(header::EVENT),
            number(header::RECEIVED),
            number(header::ATTEMPT),
            number(header::DUE),
        ) else {
            // Not ferry's: acknowledge it away rather than fail every claim on it.
            tracing::warn!(subject = %message.subject, "dropping a retry message ferry did not write");
            let _ = acker.ack().await;
            continue;
        };
        if due > now {
            let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
            if let Err(error) = acker.ack_with(AckKind::Nak(Some(wait))).await {
                tracing::debug!("cannot put back a retry not yet due: {error}");
            }
            continue;
        }
        let source = headers
            .and_then(|h| h.get(header::SOURCE))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        claimed.push((
            Claimed {
                id: EventId(id),
                body: body_text(&message.payload),
                received_at_ms,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            },
            Flight {
                acker: Arc::new(acker),
                origin: Origin::Retry,
                source,
                received_at_ms,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                body: message.payload,
                touched: Instant::now(),
                redelivered: true,
            },
        ));
    }
    Ok(claimed)
}

/// The connection's next events.
async fn next_events(
    connection: &Connection,
    wanted: usize,
) -> Result<Vec<(Claimed, Flight)>, QueueError> {
    let mut claimed = Vec::with_capacity(wanted);
    for message in fetch(&connection.events, wanted).await? {
        let (sequence, delivered) = message
            .info()
            .map(|info| (info.stream_sequence, info.delivered))
            .map_err(|source| QueueError::nats("reading a message's sequence", source))?;
        let (message, acker) = message.split();
        let received_at_ms = message
            .headers
            .as_ref()
            .and_then(|h| h.get(header::RECEIVED))
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .unwrap_or_else(now_ms);
        let id = i64::try_from(sequence).unwrap_or(i64::MAX);
        claimed.push((
            Claimed {
                id: EventId(id),
                body: body_text(&message.payload),
                received_at_ms,
                attempt: 0,
            },
            Flight {
                acker: Arc::new(acker),
                origin: Origin::Event,
                source: connection.source.clone(),
                received_at_ms,
                attempt: 0,
                body: message.payload,
                touched: Instant::now(),
                redelivered: delivered > 1,
            },
        ));
    }
    Ok(claimed)
}

/// How long a fetch may wait for JetStream's answer. A fetch request sent while the consumer's
/// leader changes (a JetStream server stopped) can go unanswered; without a bound the worker
/// would wait for it for ever.
const FETCH_ANSWER: Duration = Duration::from_secs(5);

/// Up to `max` messages available now (no waiting for more).
async fn fetch(consumer: &PullConsumer, max: usize) -> Result<Vec<jetstream::Message>, QueueError> {
    let mut messages = Vec::new();
    let gather = async {
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|source| QueueError::nats("fetching events", source))?;
        while let Some(message) = batch.next().await {
            match message {
                Ok(message) => messages.push(message),
                Err(error) => {
                    // The end of what is available (no messages, or the consumer's limit of
                    // unacknowledged messages): keep what came.
                    tracing::debug!("fetch ended: {error}");
                    break;
                }
            }
        }
        Ok::<(), QueueError>(())
    };
    if let Ok(gathered) = tokio::time::timeout(FETCH_ANSWER, gather).await {
        gathered?;
    } else {
        // What came is this node's; anything still on its way comes back after `ack_wait`.
        tracing::warn!(
            "JetStream did not finish answering a fetch within {FETCH_ANSWER:?}; fetching again"
        );
    }
    Ok(messages)
}

/// The event as text (ferry stores only text; anything else is shown lossily and fails to
/// parse as JSON downstream, becoming a dead letter).
fn body_text(payload: &Bytes) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// Tells JetStream, for every event this node has held for a third of `ack_wait`, that it is
/// still working on it, so that only the events of a node that stopped go to another node.
pub(crate) async fn keep_claimed(inner: Weak<Inner>) {
    loop {
        let period = match inner.upgrade() {
            Some(inner) => (inner.options.ack_wait / 3).max(Duration::from_millis(100)),
            None => return,
        };
        tokio::time::sleep(period / 2).await;
        let Some(inner) = inner.upgrade() else { return };
        let connections: Vec<Arc<Connection>> =
            lock(&inner.connections).values().cloned().collect();
        for connection in &connections {
            renew_lease(&inner, connection).await;
        }
        for connection in connections {
            let due: Vec<Arc<Acker>> = {
                let mut state = lock(&connection.state);
                state
                    .in_flight
                    .values_mut()
                    .filter(|flight| flight.touched.elapsed() >= period)
                    .map(|flight| {
                        flight.touched = Instant::now();
                        Arc::clone(&flight.acker)
                    })
                    .collect()
            };
            for acker in due {
                if let Err(error) = acker.ack_with(AckKind::Progress).await {
                    tracing::debug!(connection = %connection.name, "cannot extend a claim: {error}");
                }
            }
        }
    }
}

/// Rewrites this node's lease on an ordered connection; when another node took it, gives back
/// the events kept for order (the handed-out ones finish here) and stops claiming.
async fn renew_lease(inner: &Inner, connection: &Connection) {
    let lease = lock(&connection.state).order.as_ref().and_then(|o| o.lease);
    let Some(mut lease) = lease else { return };
    let kept = lease::renew(inner, &connection.name, &mut lease).await;
    let given_back = {
        let mut state = lock(&connection.state);
        let Some(ordered) = &mut state.order else {
            return;
        };
        if kept {
            ordered.lease = Some(lease);
            return;
        }
        ordered.lease = None;
        ordered.primed = false;
        let events = ordered.sequencer.reset();
        take_flights(&mut state, &events)
    };
    give_back(inner, given_back).await;
}
