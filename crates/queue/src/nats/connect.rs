//! Connecting, and making sure the streams and the bucket exist.

use std::time::{Duration, Instant};

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{
    CreateKeyValueErrorKind, CreateStreamError, CreateStreamErrorKind,
};
use async_nats::jetstream::{self, kv, stream};
use async_nats::{ConnectOptions, ServerAddr};

use super::names::{DEAD, EVENTS, LEASES, REMEMBERED, RETRIES};
use super::{NatsCredentials, NatsOptions};
use crate::QueueError;

/// Most publishes awaiting JetStream's acknowledgement at once per node; more wait.
const ACKS_IN_FLIGHT: usize = 20_000;
/// How long one JetStream request (publish acknowledgement, consumer info) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting waits for JetStream to create or find its streams and buckets.
const SETUP_PATIENCE: Duration = Duration::from_mins(1);

/// What a connected queue holds on to.
pub(crate) struct Connected {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) events: stream::Stream,
    pub(crate) retries: stream::Stream,
    pub(crate) dead: stream::Stream,
    pub(crate) remembered: kv::Store,
    pub(crate) leases: kv::Store,
}

pub(crate) async fn connect(options: &NatsOptions) -> Result<Connected, QueueError> {
    let connect_error = |source| QueueError::NatsConnect {
        servers: options.servers_shown(),
        source,
    };
    let addresses: Vec<ServerAddr> = options
        .servers
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>().map_err(|source| {
                connect_error(async_nats::ConnectError::with_source(
                    async_nats::ConnectErrorKind::ServerParse,
                    source,
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut connect = ConnectOptions::new()
        .name("ferry")
        .request_timeout(Some(REQUEST_TIMEOUT));
    connect = match &options.credentials {
        None => connect,
        Some(NatsCredentials::UserPassword { user, password }) => {
            connect.user_and_password(user.clone(), password.clone())
        }
        Some(NatsCredentials::Token(token)) => connect.token(token.clone()),
        Some(NatsCredentials::CredsFile(path)) => {
            connect.credentials_file(path).await.map_err(|source| {
                connect_error(async_nats::ConnectError::with_source(
                    async_nats::ConnectErrorKind::Authentication,
                    source,
                ))
            })?
        }
    };
    let client = connect.connect(addresses).await.map_err(connect_error)?;
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .max_ack_inflight(ACKS_IN_FLIGHT)
        .build(client.clone());

    let (events, retries, dead, remembered) = ensure_streams(&js, options).await?;
    let leases = ensure_bucket(
        &js,
        LEASES,
        "ferry: which node delivers each ordered connection",
        options.replicas.max(1),
    )
    .await?;
    Ok(Connected {
        client,
        js,
        events,
        retries,
        dead,
        remembered,
        leases,
    })
}

/// The streams and the bucket, created as ferry lays them out where missing.
async fn ensure_streams(
    js: &jetstream::Context,
    options: &NatsOptions,
) -> Result<(stream::Stream, stream::Stream, stream::Stream, kv::Store), QueueError> {
    let replicas = options.replicas.max(1);
    let events = ensure_stream(
        js,
        stream::Config {
            name: EVENTS.to_owned(),
            description: Some(
                "ferry: every accepted event, until each connection settled it".to_owned(),
            ),
            subjects: vec!["ferry.events.>".to_owned()],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: options.dedupe_window,
            allow_direct: true,
            ..Default::default()
        },
    )
    .await?;
    let retries = ensure_stream(
        js,
        stream::Config {
            name: RETRIES.to_owned(),
            description: Some(
                "ferry: events waiting for a retry at a time, per connection".to_owned(),
            ),
            subjects: vec!["ferry.retries.>".to_owned()],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await?;
    let dead = ensure_stream(
        js,
        stream::Config {
            name: DEAD.to_owned(),
            description: Some("ferry: dead letters, kept until replayed or purged".to_owned()),
            subjects: vec!["ferry.dead.>".to_owned()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            allow_direct: true,
            ..Default::default()
        },
    )
    .await?;
    let remembered = ensure_bucket(
        js,
        REMEMBERED,
        "ferry: values mappings remember, per connection",
        replicas,
    )
    .await?;
    Ok((events, retries, dead, remembered))
}

/// Gets the key-value bucket, or creates it with one value per key.
async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    replicas: usize,
) -> Result<kv::Store, QueueError> {
    patiently("creating a key-value bucket", bucket_not_ready, || async {
        if let Ok(store) = js.get_key_value(bucket).await {
            return Ok(store);
        }
        js.create_key_value(kv::Config {
            bucket: bucket.to_owned(),
            description: description.to_owned(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
    })
    .await
}

/// Gets the stream, or creates it as `config` says. An existing stream keeps its settings.
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, QueueError> {
    patiently("creating a stream", stream_not_ready, || {
        js.get_or_create_stream(config.clone())
    })
    .await
}

/// Whether creating a key-value bucket failed because the cluster is not ready for it yet: no
/// answer in time, or its stream could not be created for a reason [`stream_not_ready`] waits
/// out.
fn bucket_not_ready(error: &jetstream::context::CreateKeyValueError) -> bool {
    match error.kind() {
        CreateKeyValueErrorKind::TimedOut => true,
        CreateKeyValueErrorKind::BucketCreate => std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<CreateStreamError>())
            .is_some_and(stream_not_ready),
        _ => false,
    }
}

/// Whether creating a stream failed because the cluster is not ready for it yet: no answer in
/// time, JetStream not yet enabled, or a cluster still forming. A fresh cluster has a meta leader
/// before it knows every server to be online, and until then refuses a stream with a replica
/// for each server ("no suitable peers for placement, peer offline").
fn stream_not_ready(error: &CreateStreamError) -> bool {
    match error.kind() {
        CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => true,
        CreateStreamErrorKind::JetStream(error) => [
            ErrorCode::CLUSTER_NO_PEERS,
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_INCOMPLETE,
            ErrorCode::CLUSTER_NOT_LEADER,
        ]
        .contains(&error.error_code()),
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails otherwise than by JetStream not being ready yet
/// (`not_ready`), or [`SETUP_PATIENCE`] has passed: a cluster still electing a leader (it just
/// started, or lost a server) does not answer in time.
async fn patiently<T, E, Attempt>(
    what: &'static str,
    not_ready: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Attempt,
) -> Result<T, QueueError>
where
    Attempt: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let deadline = Instant::now() + SETUP_PATIENCE;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if not_ready(&error) && Instant::now() < deadline => {
                tracing::warn!("{what}: JetStream is not ready yet ({error}); asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(source) => return Err(QueueError::nats(what, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream creation JetStream refused with `err_code`, as its API answers it.
    fn refused(err_code: u64) -> CreateStreamError {
        let answer =
            serde_json::json!({ "code": 400, "err_code": err_code, "description": "refused" });
        let error: async_nats::jetstream::Error =
            serde_json::from_value(answer).expect("a JetStream API error");
        CreateStreamError::new(CreateStreamErrorKind::JetStream(error))
    }

    #[test]
    fn a_cluster_still_forming_is_waited_for_and_a_refusal_is_not() {
        // "no suitable peers for placement, peer offline": a fresh cluster that does not yet know
        // every server to be online.
        assert!(stream_not_ready(&refused(10005)));
        assert!(stream_not_ready(&refused(10008)));
        assert!(stream_not_ready(&CreateStreamError::new(
            CreateStreamErrorKind::TimedOut
        )));
        // "stream name already in use with a different configuration": waiting changes nothing.
        assert!(!stream_not_ready(&refused(10058)));
        // The same for a key-value bucket, whose stream could not be created.
        let bucket = jetstream::context::CreateKeyValueError::with_source(
            CreateKeyValueErrorKind::BucketCreate,
            refused(10005),
        );
        assert!(bucket_not_ready(&bucket));
        let bucket = jetstream::context::CreateKeyValueError::with_source(
            CreateKeyValueErrorKind::BucketCreate,
            refused(10058),
        );
        assert!(!bucket_not_ready(&bucket));
    }
}
