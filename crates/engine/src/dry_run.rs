//! A dry run over a stream of events, written once for `ferry map`, golden cases and the fuzz
//! targets: each event is planned (with the values earlier events remembered), its multi-step
//! actions are followed through canned responses, and its batchable requests merge as the
//! mapping's batch rules say, the batches still open being flushed at the end.

use std::sync::Arc;

use serde_json::Value;

use crate::batch::{Batcher, MergedRequest};
use crate::canned::{CannedResponses, Followed};
use crate::connection::Connection;
use crate::plan::{Failure, FailureKind, Outcome};
use crate::state::MemoryState;

/// What a dry run shows, in the order it happened.
#[derive(Debug)]
pub enum Shown {
    /// What one event's action led to, with the canned response that answered it: a request
    /// sent alone, a skip or a failure.
    Event {
        /// The event's 1-based position.
        event: usize,
        /// The outcome.
        followed: Followed,
    },
    /// Requests merged as a batch rule says, tagged with the positions of their events.
    Batch(MergedRequest<usize>),
}

/// A dry run of one connection.
pub struct DryRun<'c> {
    connection: &'c Connection,
    canned: CannedResponses,
    state: MemoryState,
    /// Merges batchable requests when batching was asked for.
    batcher: Option<Batcher<usize>>,
    tracing: bool,
}

impl<'c> DryRun<'c> {
    /// A dry run answering steps with `canned`, merging batches when `batch` is set and
    /// explaining each plan when `tracing`.
    pub fn new(
        connection: &'c Connection,
        canned: CannedResponses,
        batch: bool,
        tracing: bool,
    ) -> DryRun<'c> {
        DryRun {
            connection,
            canned,
            state: MemoryState::default(),
            batcher: batch.then(Batcher::new),
            tracing,
        }
    }

    /// Plans the event at 1-based position `index`: what it shows now (batches it closed
    /// included), and the trace lines when tracing.
    pub fn event(&mut self, index: usize, event: &Value) -> (Vec<Shown>, Vec<String>) {
        let plan = if self.tracing {
            self.connection.plan_traced(event, &self.state)
        } else {
            self.connection.plan(event, &self.state)
        };
        let followed = self
            .connection
            .follow(event, &self.state, plan.outcomes, &self.canned);
        let mut shown = Vec::with_capacity(followed.len());
        for step in followed {
            match (step.outcome, &mut self.batcher) {
                (Outcome::Request(request), Some(batcher)) if request.batchable() => {
                    match batcher.push(index, request) {
                        Ok(closed) => shown.extend(closed.into_iter().map(Shown::Batch)),
                        Err(rejected) => shown.push(Shown::Event {
                            event: index,
                            followed: Followed {
                                outcome: Outcome::Failed(Failure {
                                    action: Some(Arc::clone(&rejected.request.action)),
                                    kind: FailureKind::Batch,
                                    message: self.connection.redact(&rejected.reason).into_owned(),
                                }),
                                answer: None,
                            },
                        }),
                    }
                }
                (outcome, _) => shown.push(Shown::Event {
                    event: index,
                    followed: Followed {
                        outcome,
                        answer: step.answer,
                    },
                }),
            }
        }
        self.state.apply(plan.remember);
        (shown, plan.trace)
    }

    /// The values the events so far remembered.
    pub fn state(&self) -> &MemoryState {
        &self.state
    }

    /// Closes the batches still open, oldest first.
    pub fn finish(&mut self) -> Vec<Shown> {
        self.batcher
            .as_mut()
            .map(|batcher| batcher.flush().into_iter().map(Shown::Batch).collect())
            .unwrap_or_default()
    }
}
