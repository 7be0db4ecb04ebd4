//! Batching: planned requests of one step (or of every action naming a shared rule) merge into
//! one HTTP request, as the mapping's `batch` declares (concatenated body arrays, or bodies
//! wrapped in one array), within item and byte limits. The batcher only merges; when to send
//! (linger, shutdown) is the caller's clock.
//!
//! Item bodies are split into their top-level members once (`parts.rs`), keeping every value as
//! raw JSON text, so merging never re-serialises event data. A batch keeps the envelope of its
//! first request and appends every request's array elements to one text per merged array as it
//! joins (`items.rs`), so planned bodies are dropped at once rather than held until the batch
//! closes; `merged.rs` assembles, splits and reads item errors back to the requests of a merged
//! request.

use std::fmt;
use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;

use crate::batch_rule::BatchRule;
use crate::compiled::FastHash;
use crate::connection::Header;
use crate::plan::{Body, PlannedRequest};

mod items;
mod merged;
mod parts;

use items::{Envelope, Items};
use merged::assemble;
pub use merged::{ItemFailures, MergedRequest};
pub(crate) use parts::members;
use parts::{Kind, Parts, split_body};

/// A planned request the batcher cannot take.
#[derive(Debug)]
pub struct Rejected<T> {
    /// The caller's tag of the request.
    pub item: T,
    /// The request, unchanged.
    pub request: Box<PlannedRequest>,
    /// Why: too large on its own, or a body that cannot be merged.
    pub reason: String,
}

/// An open batch.
struct Open<T> {
    rule: Arc<BatchRule>,
    kind: Kind,
    head: PlannedRequest,
    /// The callers' tags, one per request.
    tags: Vec<T>,
    envelope: Envelope,
    items: Items,
    counts: Vec<usize>,
    bytes: usize,
    opened: Instant,
}

/// Collects planned requests that declare a batch rule into merged requests.
pub struct Batcher<T> {
    /// Open batches by a hash of their batch key, oldest first.
    open: IndexMap<u64, Open<T>, FastHash>,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Batcher {
            open: IndexMap::default(),
        }
    }
}

impl<T> fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("open", &self.open.len())
            .finish()
    }
}

impl<T> Batcher<T> {
    /// An empty batcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no batch is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Adds a planned request tagged `item`. Returns the batches this closed: the open batch it
    /// did not fit into, and its own batch when that became full. A request without a batch
    /// rule, or one too large on its own, is rejected.
    pub fn push(
        &mut self,
        item: T,
        mut request: PlannedRequest,
    ) -> Result<Vec<MergedRequest<T>>, Rejected<T>> {
        let Some(rule) = request.batch.clone() else {
            let reason = format!("action `{}` declares no batch", request.action);
            return Err(Rejected {
                item,
                request: Box::new(request),
                reason,
            });
        };
        let layout = request.layout.take();
        let mut parts = match split_body(&request, layout, &rule) {
            Ok(parts) => parts,
            Err(reason) => {
                return Err(Rejected {
                    item,
                    request: Box::new(request),
                    reason,
                });
            }
        };
        if let Some(n) = parts
            .arrays
            .iter()
            .map(Vec::len)
            .find(|&n| n > rule.max_items)
        {
            return Err(Rejected {
                item,
                request: Box::new(request),
                reason: format!(
                    "one request carries {n} items, over the batch limit of {}",
                    rule.max_items
                ),
            });
        }
        // Braces, the envelope once, and each merged array's key and brackets (or what the
        // body's kind has instead).
        let overhead = parts.overhead(&rule);
        if overhead + parts.bytes > rule.max_bytes {
            return Err(Rejected {
                item,
                request: Box::new(request),
                reason: format!(
                    "the body is {} bytes on its own, over the batch limit of {}",
                    overhead + parts.bytes,
                    rule.max_bytes
                ),
            });
        }
        if let Some(Body::Json(text) | Body::JsonArray(text) | Body::Ndjson(text)) =
            request.body.take()
        {
            parts.text = text;
        }
        let key = batch_key(&request, &parts);
        let mut closed = Vec::new();
        if let Some(open) = self.open.get(&key)
            && !open.takes(&request, &parts)
        {
            // Two different keys with one hash: send the open batch rather than mix them.
            let open = self.open.shift_remove(&key).expect("just found");
            closed.push(open.close());
        }
        if let Some(open) = self.open.get(&key) {
            let fits = open.bytes + parts.bytes <= rule.max_bytes
                && open
                    .counts
                    .iter()
                    .zip(parts.arrays.iter().map(Vec::len))
                    .all(|(have, add)| have + add <= rule.max_items);
            if !fits {
                let open = self.open.shift_remove(&key).expect("just found");
                closed.push(open.close());
            }
        }
        let open = match self.open.entry(key) {
            indexmap::map::Entry::Occupied(entry) => entry.into_mut(),
            indexmap::map::Entry::Vacant(entry) => {
                entry.insert(Open::new(Arc::clone(&rule), request, &parts, overhead))
            }
        };
        open.join(item, &parts);
        if open.counts.iter().any(|&n| n >= rule.max_items) {
            let open = self.open.shift_remove(&key).expect("just inserted");
            closed.push(open.close());
        }
        Ok(closed)
    }

    /// Closes the batches that have waited their linger time by `now`.
    pub fn due(&mut self, now: Instant) -> Vec<MergedRequest<T>> {
        let keys: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, open)| {
                open.rule
                    .linger
                    .is_none_or(|linger| open.opened + linger <= now)
            })
            .map(|(key, _)| *key)
            .collect();
        keys.into_iter()
            .filter_map(|key| self.open.shift_remove(&key))
            .map(Open::close)
            .collect()
    }

    /// When the next open batch is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|open| open.opened + open.rule.linger.unwrap_or_default())
            .min()
    }

    /// Closes every open batch, oldest first.
    pub fn flush(&mut self) -> Vec<MergedRequest<T>> {
        self.open.drain(..).map(|(_, open)| open.close()).collect()
    }
}

impl<T> Open<T> {
    /// A batch for `request`, which joins it next. The first request's envelope stands for all:
    /// the batch key includes it.
    fn new(rule: Arc<BatchRule>, head: PlannedRequest, parts: &Parts, overhead: usize) -> Self {
        let items = Items::new(parts.arrays.len(), parts.kind.separator());
        let counts = vec![0; parts.arrays.len()];
        Open {
            rule,
            kind: parts.kind,
            head,
            tags: Vec::new(),
            envelope: Envelope::of(parts),
            items,
            counts,
            bytes: overhead,
            opened: Instant::now(),
        }
    }

    /// Adds a request's array elements, the batch having room for them.
    fn join(&mut self, item: T, parts: &Parts) {
        self.items.push(parts);
        self.bytes += parts.bytes;
        for (have, add) in self
            .counts
            .iter_mut()
            .zip(parts.arrays.iter().map(Vec::len))
        {
            *have += add;
        }
        self.tags.push(item);
    }

    /// Whether `request` has this batch's key (its hash matched).
    fn takes(&self, request: &PlannedRequest, parts: &Parts) -> bool {
        let head = &self.head;
        let same_rule = match (
            &self.rule.group,
            request.batch.as_ref().and_then(|r| r.group.as_ref()),
        ) {
            (Some(group), Some(other)) => group == other,
            (None, None) => head.action == request.action && head.step == request.step,
            _ => false,
        };
        same_rule
            && self.kind == parts.kind
            && head.method == request.method
            && head.url == request.url
            && same_headers(&head.headers, &request.headers)
            && head.batch_key == request.batch_key
            && match (&head.failure, &request.failure) {
                // Rules written alike share one list (see `batch_key`).
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
            && self.envelope.matches(parts)
    }

    fn close(self) -> MergedRequest<T> {
        assemble(
            &self.head,
            &self.rule,
            self.kind,
            self.envelope,
            self.items,
            self.tags,
        )
    }
}

/// Headers equal: those of one connection share their text, so most compare by pointer.
fn same_headers(a: &[Header], b: &[Header]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (Arc::ptr_eq(&x.name, &y.name) || x.name == y.name)
                && (Arc::ptr_eq(&x.value, &y.value) || x.value == y.value)
        })
}

/// A hash of what must be equal for two requests to merge (checked by [`Open::takes`]): the
/// action and step, or the shared rule's name.
fn batch_key(request: &PlannedRequest, parts: &Parts) -> u64 {
    let mut hasher = FastHash::default().build_hasher();
    // A shared rule merges the requests of every action that names it.
    if let Some(group) = request.batch.as_ref().and_then(|rule| rule.group.as_ref()) {
        group.hash(&mut hasher);
    } else {
        request.action.hash(&mut hasher);
        request.step.hash(&mut hasher);
    }
    request.method.as_str().hash(&mut hasher);
    request.url.hash(&mut hasher);
    for header in &request.headers {
        header.name.hash(&mut hasher);
        header.value.hash(&mut hasher);
    }
    request.batch_key.hash(&mut hasher);
    // Requests that read their 2xx responses differently never share one. Rules written alike
    // were compiled into one list, so the list's address stands for what was written.
    request
        .failure
        .as_ref()
        .map(|rules| Arc::as_ptr(rules).cast::<()>() as usize)
        .hash(&mut hasher);
    for (i, (name, _)) in parts.envelope.iter().enumerate() {
        name.hash(&mut hasher);
        parts.envelope_value(i).hash(&mut hasher);
    }
    hasher.finish()
}
