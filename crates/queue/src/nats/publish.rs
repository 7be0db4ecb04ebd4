//! Publishing to a stream and waiting until JetStream stored the message.
//!
//! A publish that no server answers (no responders, which the client reports as
//! `StreamNotFound`) stored nothing: the stream's leader is not reachable through the server
//! this node is connected to yet. That happens for a moment after a replicated stream is
//! created (its leader's interest in the subjects still travels between the servers) and
//! while a stream elects a new leader after losing a server. Such a publish is sent again
//! after a pause, for up to [`NO_RESPONDERS_PATIENCE`], instead of failing the caller.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use tokio::time::Instant;

use super::Inner;
use crate::QueueError;

/// How long a publish that no server answered is sent again.
const NO_RESPONDERS_PATIENCE: Duration = Duration::from_secs(5);
/// The pause before sending such a publish again.
const NO_RESPONDERS_PAUSE: Duration = Duration::from_millis(100);

/// One message for a stream, kept so that it can be sent again.
pub(crate) struct Message {
    pub(crate) subject: String,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Bytes,
}

impl Message {
    /// Sends the message; the future answers with JetStream's acknowledgement.
    pub(crate) async fn send(&self, inner: &Inner) -> Result<PublishAckFuture, PublishError> {
        inner
            .nats
            .js
            .publish_with_headers(
                self.subject.clone(),
                self.headers.clone(),
                self.payload.clone(),
            )
            .await
    }

    /// The acknowledgement of a publish sent earlier (`sent`), sending the message again while
    /// no server answers it.
    pub(crate) async fn stored(
        &self,
        inner: &Inner,
        sent: PublishAckFuture,
        what: &'static str,
    ) -> Result<PublishAck, QueueError> {
        let deadline = Instant::now() + NO_RESPONDERS_PATIENCE;
        let mut answer = sent.await;
        loop {
            match answer {
                Err(error)
                    if error.kind() == PublishErrorKind::StreamNotFound
                        && Instant::now() < deadline =>
                {
                    tracing::debug!("{what}: no server answered for the stream yet; sending again");
                    tokio::time::sleep(NO_RESPONDERS_PAUSE).await;
                    answer = match self.send(inner).await {
                        Ok(sent) => sent.await,
                        Err(error) => Err(error),
                    };
                }
                answer => return answer.map_err(|source| QueueError::nats(what, source)),
            }
        }
    }
}

/// Publishes and waits until JetStream stored the message.
pub(crate) async fn publish(
    inner: &Inner,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    what: &'static str,
) -> Result<(), QueueError> {
    let message = Message {
        subject,
        headers,
        payload,
    };
    let sent = message
        .send(inner)
        .await
        .map_err(|source| QueueError::nats(what, source))?;
    message.stored(inner, sent, what).await?;
    Ok(())
}
