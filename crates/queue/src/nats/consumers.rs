//! Declaring connections: each gets a durable consumer on its source's events and one on its
//! retries. Consumers live in JetStream, so every node declaring the same connection shares
//! them; a node only stops claiming for connections it no longer declares (another node may
//! still run an older or newer configuration during a rolling change).

use std::sync::{Arc, Mutex};

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream;
use futures_util::TryStreamExt as _;

use super::claim::{Connection, State};
use super::names::{event_subject, events_consumer, retries_consumer, retry_subject};
use super::{Inner, remembered};
use crate::QueueError;
use crate::state::lock;

/// Most events of one connection claimed and not yet settled, over all nodes. Beyond it
/// JetStream hands out nothing more until some are settled.
const MAX_ACK_PENDING: i64 = 100_000;

pub(crate) async fn declare(
    inner: &Inner,
    connections: Vec<(String, String)>,
) -> Result<(), QueueError> {
    let mut declared = Vec::with_capacity(connections.len());
    for (name, source) in connections {
        if let Some(known) = inner.connection(&name)
            && known.source == source
        {
            declared.push(known);
            continue;
        }
        let events = events_consumer_for(inner, &name, &source).await?;
        let retries = ensure_consumer(
            &inner.nats.retries,
            &retries_consumer(&name),
            &retry_subject(&name),
            DeliverPolicy::All,
            inner,
        )
        .await?;
        let changes = Arc::new(Mutex::new(Vec::new()));
        let watch = remembered::watch(inner, &name).await?;
        tokio::spawn(remembered::follow(
            inner.weak(),
            watch,
            Arc::clone(&changes),
        ));
        declared.push(Arc::new(Connection {
            name,
            source,
            events,
            retries,
            state: Mutex::new(State::default()),
            changes,
        }));
    }
    let mut map = lock(&inner.connections);
    for connection in map.values() {
        lock(&connection.state).active = false;
    }
    for connection in declared {
        lock(&connection.state).active = true;
        map.insert(connection.name.clone(), connection);
    }
    drop(map);
    inner.wake.notify();
    Ok(())
}

/// The connection's consumer on its source's events. A connection new to JetStream starts at
/// the end of the stream when another connection already reads the same source, and at the
/// beginning otherwise; one that changed its source starts afresh on the new one.
async fn events_consumer_for(
    inner: &Inner,
    name: &str,
    source: &str,
) -> Result<PullConsumer, QueueError> {
    let consumer_name = events_consumer(name);
    let subject = event_subject(source);
    let stream = &inner.nats.events;
    if let Ok(info) = stream.consumer_info(&consumer_name).await {
        if info.config.filter_subject == subject {
            return get(stream, &consumer_name).await;
        }
        stream
            .delete_consumer(&consumer_name)
            .await
            .map_err(|source| {
                QueueError::nats("deleting a consumer whose source changed", source)
            })?;
    }
    let mut infos = stream.consumers();
    let mut source_known = false;
    while let Some(info) = infos
        .try_next()
        .await
        .map_err(|source| QueueError::nats("listing consumers", source))?
    {
        if info.config.filter_subject == subject {
            source_known = true;
            break;
        }
    }
    let policy = if source_known {
        DeliverPolicy::New
    } else {
        DeliverPolicy::All
    };
    ensure_consumer(stream, &consumer_name, &subject, policy, inner).await
}

async fn ensure_consumer(
    stream: &stream::Stream,
    name: &str,
    subject: &str,
    deliver_policy: DeliverPolicy,
    inner: &Inner,
) -> Result<PullConsumer, QueueError> {
    stream
        .get_or_create_consumer(
            name,
            consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: subject.to_owned(),
                deliver_policy,
                ack_policy: AckPolicy::Explicit,
                ack_wait: inner.options.ack_wait,
                max_deliver: -1,
                max_ack_pending: MAX_ACK_PENDING,
                num_replicas: 0,
                ..Default::default()
            },
        )
        .await
        .map_err(|source| QueueError::nats("creating a consumer", source))
}

async fn get(stream: &stream::Stream, name: &str) -> Result<PullConsumer, QueueError> {
    stream
        .get_consumer(name)
        .await
        .map_err(|source| QueueError::nats("opening a consumer", source))
}
