//! `GET /console/api/stream`: the live stream, as server-sent events (one JSON message a
//! `data:` line), filtered by `?source=` or `?connection=`. `ferry tap` and the page read it.
//!
//! Messages: `hello` (subscribed), `event` (an event arrived, with its fates so far), `fate`
//! (what became of an event for a connection), `refused` (a request refused whole), `unshown`
//! (events the live stream skipped to stay within its rate) and `dropped` (messages this
//! viewer lost because it read too slowly).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::recent::Entry;
use super::sightings::Fate;
use crate::app::App;

/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One message of the live stream, serialized once for every viewer.
pub(crate) struct Live {
    /// The source it is about, for `?source=` and `?connection=`.
    source: Option<Arc<str>>,
    /// The connection a `fate` is about.
    connection: Option<Arc<str>>,
    json: String,
}

impl Live {
    pub(crate) fn event(entry: &Entry) -> Live {
        Live {
            source: Some(Arc::clone(&entry.source)),
            connection: None,
            json: json!({
                "kind": "event",
                "event": super::events::listed(entry),
            })
            .to_string(),
        }
    }

    pub(crate) fn fate(entry: &Entry, connection: &Arc<str>, fate: &Fate) -> Live {
        Live {
            source: Some(Arc::clone(&entry.source)),
            connection: Some(Arc::clone(connection)),
            json: json!({
                "kind": "fate",
                "id": entry.id,
                "source": &*entry.source,
                "connection": &**connection,
                "fate": super::events::fate(fate),
            })
            .to_string(),
        }
    }

    pub(crate) fn refused(
        endpoint: &str,
        source: Option<Arc<str>>,
        status: u16,
        reason: &str,
        at_ms: i64,
    ) -> Live {
        Live {
            json: json!({
                "kind": "refused",
                "endpoint": endpoint,
                "source": source.as_deref(),
                "status": status,
                "reason": reason,
                "at_ms": at_ms,
            })
            .to_string(),
            source,
            connection: None,
        }
    }

    pub(crate) fn unshown(count: u64) -> Live {
        Live {
            source: None,
            connection: None,
            json: json!({ "kind": "unshown", "count": count }).to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filter {
    source: Option<String>,
    connection: Option<String>,
}

/// Which messages a viewer wants.
struct Wanted {
    source: Option<String>,
    connection: Option<String>,
    /// The sources feeding `connection`.
    sources: HashSet<String>,
}

impl Wanted {
    fn wants(&self, live: &Live) -> bool {
        let Some(source) = live.source.as_deref() else {
            return true;
        };
        if self.source.as_deref().is_some_and(|s| s != source) {
            return false;
        }
        match (&self.connection, live.connection.as_deref()) {
            (None, _) => true,
            (Some(wanted), Some(connection)) => wanted == connection,
            (Some(_), None) => self.sources.contains(source),
        }
    }
}

pub(crate) async fn stream(State(app): State<Arc<App>>, Query(filter): Query<Filter>) -> Response {
    let sources = match &filter.connection {
        Some(name) => app
            .setup
            .load()
            .connections
            .get(name)
            .map(|c| c.source.clone())
            .into_iter()
            .collect(),
        None => HashSet::new(),
    };
    let wanted = Wanted {
        source: filter.source,
        connection: filter.connection,
        sources,
    };
    let receiver = app.console.live.subscribe();
    let closing = app.console.closing.subscribe();
    let hello = Bytes::from_static(b"data: {\"kind\":\"hello\"}\n\n");
    let state = (receiver, closing, wanted, Some(hello));
    let body = futures_util::stream::unfold(
        state,
        |(mut receiver, mut closing, wanted, first)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, Infallible>(first),
                    (receiver, closing, wanted, None),
                ));
            }
            loop {
                let message = tokio::select! {
                    next = receiver.recv() => match next {
                        Ok(live) if wanted.wants(&live) => format!("data: {}\n\n", live.json),
                        Ok(_) => continue,
                        Err(RecvError::Lagged(count)) => {
                            format!("data: {}\n\n", json!({ "kind": "dropped", "count": count }))
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    _ = closing.changed() => return None,
                    () = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_owned(),
                };
                return Some((Ok(Bytes::from(message)), (receiver, closing, wanted, None)));
            }
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
