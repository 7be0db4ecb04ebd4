//! Dead letters: messages of `FERRY_DEAD`, their stream sequence their id, listed, shown,
//! replayed and purged from any node (and by `ferry dlq` anywhere that reaches NATS).

use std::collections::VecDeque;

use async_nats::HeaderMap;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{self, DeliverPolicy};
use async_nats::jetstream::stream::DeleteMessageErrorKind;
use futures_util::StreamExt as _;

use super::Inner;
use super::enqueue::{from_json_text, json_text};
use super::names::{self, ALL_DEAD, header};
use super::publish::publish;
use crate::{DeadRecord, DeadSummary, EventId, QueueError, Replayed, Select, now_ms};

/// The newest `limit` dead letters first, of one connection or all. Reads only headers.
pub(crate) async fn list(
    inner: &Inner,
    connection: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadSummary>, QueueError> {
    let filter = connection.map_or_else(|| ALL_DEAD.to_owned(), names::dead_subject);
    let mut newest = VecDeque::new();
    for_each_header(inner, &filter, |summary| {
        newest.push_back(summary);
        if newest.len() > limit {
            newest.pop_front();
        }
    })
    .await?;
    Ok(newest.into_iter().rev().collect())
}

/// Calls `each` with the summary of every dead letter under `filter`, oldest first.
async fn for_each_header(
    inner: &Inner,
    filter: &str,
    mut each: impl FnMut(DeadSummary),
) -> Result<(), QueueError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| QueueError::Nats {
        what: "listing dead letters",
        source: source.into(),
    };
    let reader = inner
        .nats
        .dead
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            deliver_policy: DeliverPolicy::All,
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|source| fail(Box::new(source)))?;
    let count = reader.cached_info().num_pending;
    if count == 0 {
        return Ok(());
    }
    let mut messages = reader
        .messages()
        .await
        .map_err(|source| fail(Box::new(source)))?;
    for _ in 0..count {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.map_err(|source| fail(Box::new(source)))?;
        let sequence = message.info().map_err(&fail)?.stream_sequence;
        let empty = HeaderMap::new();
        let headers = message.headers.as_ref().unwrap_or(&empty);
        each(summary(sequence, message.subject.as_str(), headers)?);
    }
    Ok(())
}

fn summary(sequence: u64, subject: &str, headers: &HeaderMap) -> Result<DeadSummary, QueueError> {
    let text = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    let number = |name: &str| text(name).and_then(|v| v.parse::<i64>().ok());
    let Some(at_ms) = number(header::AT) else {
        return Err(QueueError::NatsData {
            stream: names::DEAD,
            what: "dead letter",
            detail: format!(
                "message `{sequence}` on `{subject}` has no `{}` header",
                header::AT
            ),
        });
    };
    let rejected = subject.starts_with("ferry.dead.ingest.");
    Ok(DeadSummary {
        id: i64::try_from(sequence).unwrap_or(i64::MAX),
        at_ms,
        connection: if rejected {
            None
        } else {
            text(header::CONNECTION).map(|v| from_json_text(&v))
        },
        source: text(header::SOURCE).unwrap_or_default(),
        event_id: if rejected {
            None
        } else {
            number(header::EVENT).map(EventId)
        },
        mapping: if rejected {
            None
        } else {
            text(header::MAPPING).map(|v| from_json_text(&v))
        },
        reason: text(header::REASON)
            .map(|v| from_json_text(&v))
            .unwrap_or_default(),
    })
}

/// The body of a dead-letter message.
#[derive(serde::Deserialize)]
struct Body {
    event: String,
    letters: Vec<serde_json::Value>,
}

/// One dead letter in full.
pub(crate) async fn show(inner: &Inner, id: i64) -> Result<Option<DeadRecord>, QueueError> {
    let Ok(sequence) = u64::try_from(id) else {
        return Ok(None);
    };
    let message = match inner.nats.dead.get_raw_message(sequence).await {
        Ok(message) => message,
        Err(error) if super::no_message(&error) => return Ok(None),
        Err(source) => return Err(QueueError::nats("reading a dead letter", source)),
    };
    let summary = summary(message.sequence, message.subject.as_str(), &message.headers)?;
    let body: Body =
        serde_json::from_slice(&message.payload).map_err(|error| QueueError::NatsData {
            stream: names::DEAD,
            what: "dead letter",
            detail: error.to_string(),
        })?;
    Ok(Some(DeadRecord {
        summary,
        event: body.event,
        letters: body.letters,
    }))
}

/// The dead letters `which` selects, oldest first.
async fn selected(inner: &Inner, which: &Select) -> Result<Vec<DeadSummary>, QueueError> {
    let mut found = Vec::new();
    match which {
        Select::One(id) => {
            if let Some(record) = show(inner, *id).await? {
                found.push(record.summary);
            }
        }
        Select::All => for_each_header(inner, ALL_DEAD, |s| found.push(s)).await?,
        Select::Connection(name) => {
            for_each_header(inner, &names::dead_subject(name), |s| found.push(s)).await?;
        }
    }
    Ok(found)
}

/// Queues each selected dead letter again as a retry due now (attempt 0), then deletes it.
/// A node that dies in between leaves both: the event is delivered, and stays listed.
pub(crate) async fn replay(inner: &Inner, which: &Select) -> Result<Replayed, QueueError> {
    let mut replayed = Replayed::default();
    let letters = selected(inner, which).await?;
    if let (Select::One(id), true) = (which, letters.is_empty()) {
        replayed
            .skipped
            .push((*id, "no such dead letter".to_owned()));
    }
    for letter in letters {
        let (Some(connection), Some(event)) = (&letter.connection, letter.event_id) else {
            replayed.skipped.push((
                letter.id,
                "rejected at ingest: no connection to replay to".to_owned(),
            ));
            continue;
        };
        let Some(record) = show(inner, letter.id).await? else {
            continue; // replayed or purged meanwhile
        };
        let received = inner
            .nats
            .dead
            .get_raw_message(u64::try_from(letter.id).unwrap_or(0))
            .await
            .ok()
            .and_then(|m| {
                m.headers
                    .get(header::RECEIVED)
                    .map(|v| v.as_str().to_owned())
            })
            .unwrap_or_else(|| letter.at_ms.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("replay.{}", letter.id).as_str(),
        );
        headers.insert(header::EVENT, event.0.to_string().as_str());
        headers.insert(header::SOURCE, letter.source.as_str());
        headers.insert(header::RECEIVED, received.as_str());
        headers.insert(header::ATTEMPT, "0");
        headers.insert(header::DUE, now_ms().to_string().as_str());
        headers.insert(
            header::REASON,
            json_text(&format!("replayed dead letter {}", letter.id)).as_str(),
        );
        publish(
            inner,
            names::retry_subject(connection),
            headers,
            bytes::Bytes::from(record.event),
            "queueing a dead letter again",
        )
        .await?;
        delete(inner, letter.id).await?;
        replayed.queued += 1;
    }
    if replayed.queued > 0 {
        inner.announce_work().await;
    }
    Ok(replayed)
}

/// Deletes the selected dead letters; answers how many.
pub(crate) async fn purge(inner: &Inner, which: &Select) -> Result<u64, QueueError> {
    let fail = |source| QueueError::nats("purging dead letters", source);
    match which {
        Select::One(id) => Ok(u64::from(delete(inner, *id).await?)),
        Select::All => Ok(inner.nats.dead.purge().await.map_err(fail)?.purged),
        Select::Connection(name) => Ok(inner
            .nats
            .dead
            .purge()
            .filter(names::dead_subject(name))
            .await
            .map_err(fail)?
            .purged),
    }
}

/// Deletes one dead letter; `false` when there was none.
async fn delete(inner: &Inner, id: i64) -> Result<bool, QueueError> {
    let Ok(sequence) = u64::try_from(id) else {
        return Ok(false);
    };
    match inner.nats.dead.delete_message(sequence).await {
        Ok(deleted) => Ok(deleted),
        Err(error)
            if matches!(
                error.kind(),
                DeleteMessageErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::SEQUENCE_NOT_FOUND
                        || e.error_code() == ErrorCode::NO_MESSAGE_FOUND
            ) =>
        {
            Ok(false)
        }
        Err(source) => Err(QueueError::nats("deleting a dead letter", source)),
    }
}
