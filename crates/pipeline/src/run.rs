//! The run loop. One task plans every event in order (so remembered values and batches see
//! events in the order they came), and owns the batcher, the dead-letter file and the counts;
//! sends run as tasks, at most `max_in_flight` at a time, and report back to it. Here too are
//! planning each input, dispatching its requests (dropping repeats, or handing them to the
//! batcher) and what becomes of a single request once sent: its flow's next step, or a dead
//! letter.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ferry_delivery::{
    DeadLetterWriter, Delivery, Destination, FailureKind, Outcome as Sent, RecordedRequest,
    Response, SetupError,
};
use ferry_engine::{
    Batcher, Connection, MemoryState, MergedRequest, Outcome, PlannedRequest, StepResponse,
};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::dead_letters::Last;
use crate::dedupe::Seen;
use crate::journal::{Exchange, Note};
use crate::outgoing::{recorded, recorded_response};
use crate::rules::rules_for;
use crate::sender::Sender;
use crate::summary::Summary;
use crate::tracked::{Input, Item, Tracked};

/// Whether a run should stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// Keep going.
    No,
    /// Read no more input; finish what was read.
    Drain,
    /// Read no more input and give up on requests in flight, dead-lettering their events.
    Abort,
}

/// Most inputs the run loop takes from the channel at once.
const INPUTS_AT_ONCE: usize = 256;

/// What a send task reports.
enum Done {
    Single {
        item: Item,
        request: PlannedRequest,
        delivery: Delivery,
    },
    Batch {
        merged: MergedRequest<Item>,
        delivery: Delivery,
    },
    SingleAborted {
        item: Item,
        request: PlannedRequest,
    },
    BatchAborted {
        merged: MergedRequest<Item>,
    },
}

/// Why an aborted request's events are dead-lettered.
const ABORTED: &str =
    "interrupted before delivery finished; the destination may or may not have received it";

/// Completes when `halt` says to abort (never, once nobody can say so).
async fn aborted(mut halt: watch::Receiver<Halt>) {
    if halt.wait_for(|h| *h == Halt::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Remembered values, shared by the pipelines of one connection (a reloaded mapping's pipeline
/// takes over from the one before it).
pub type SharedState = Arc<RwLock<MemoryState>>;

/// Delivers the events of one connection.
pub struct Pipeline {
    pub(crate) connection: Arc<Connection>,
    pub(crate) sender: Sender,
    pub(crate) dead_letters: Option<DeadLetterWriter>,
    pub(crate) connection_name: Option<String>,
    max_in_flight: usize,
    state: SharedState,
}

/// The state the run loop owns.
pub(crate) struct Run<'p> {
    pub(crate) pipeline: &'p Pipeline,
    batcher: Batcher<Item>,
    tasks: JoinSet<Done>,
    pub(crate) seen: Seen,
    pub(crate) summary: Summary,
    halt: watch::Receiver<Halt>,
    cancelled: Arc<AtomicBool>,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        // Runs before the fields are dropped: any event still held by a task or a batch was
        // interrupted, not delivered.
        self.cancelled.store(true, Ordering::Release);
    }
}

impl Pipeline {
    /// A pipeline for `connection`, sending by the rules of its mapping's `delivery` section and
    /// writing what cannot be delivered to `dead_letters`.
    pub fn new(
        connection: Arc<Connection>,
        dead_letters: DeadLetterWriter,
    ) -> Result<Pipeline, SetupError> {
        Pipeline::build(connection, Some(dead_letters), None)
    }

    /// A pipeline for events taken from a durable queue ([`Input::Queued`]): their dead letters
    /// go to their tickets, so there is no dead-letter file.
    ///
    /// The queue retries later and durably, so a request is retried in memory only while its
    /// waits fit in `inline_retry` beyond one attempt's timeout (within the mapping's own
    /// attempts and total budget): a destination that is down for longer hands its events back
    /// to the queue as retryable failures, instead of holding them, and the slots they take,
    /// in flight. A wait the destination asks for is kept on the failure.
    pub fn queued(
        connection: Arc<Connection>,
        inline_retry: Duration,
    ) -> Result<Pipeline, SetupError> {
        Pipeline::build(connection, None, Some(inline_retry))
    }

    fn build(
        connection: Arc<Connection>,
        dead_letters: Option<DeadLetterWriter>,
        inline_retry: Option<Duration>,
    ) -> Result<Pipeline, SetupError> {
        let mut rules = rules_for(connection.mapping().delivery());
        if let Some(inline) = inline_retry {
            rules.max_total = rules.max_total.min(rules.timeout.saturating_add(inline));
        }
        let in_flight = rules
            .concurrency
            .map_or(64, |c| c as usize * 4)
            .clamp(8, 1024);
        Ok(Pipeline {
            sender: Sender::Http(Destination::new(rules)?),
            connection,
            dead_letters,
            connection_name: None,
            max_in_flight: in_flight,
            state: SharedState::default(),
        })
    }

    /// Sends nothing: every request is handed to `record` with its secrets redacted, and
    /// answered with `200 {}`.
    #[must_use]
    pub fn dry_run(mut self, record: Arc<dyn Fn(RecordedRequest) + Send + Sync>) -> Pipeline {
        self.sender = Sender::DryRun(record);
        self
    }

    /// Reads and keeps remembered values in `state` instead of a store of its own.
    #[must_use]
    pub fn with_state(mut self, state: SharedState) -> Pipeline {
        self.state = state;
        self
    }

    /// The connection this pipeline delivers for.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Names the connection in dead letters.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Pipeline {
        self.connection_name = Some(name.into());
        self
    }

    /// Sends every input of `events` until the channel closes and all work is done, calling
    /// `progress` as counts change. Fails only when a dead letter cannot be written: then
    /// nothing could be promised about the rest.
    pub async fn run(
        &self,
        events: mpsc::Receiver<Input>,
        progress: &mut (dyn FnMut(&Summary) + Send),
    ) -> io::Result<Summary> {
        let (_keep, halt) = watch::channel(Halt::No);
        self.run_until(events, halt, progress).await
    }

    /// Like [`Pipeline::run`], and stops early when `halt` says so:
    /// - [`Halt::Drain`]: takes no more input (the reader's next send fails, so it can say where
    ///   it stopped); what was read is still delivered or dead-lettered.
    /// - [`Halt::Abort`]: also gives up on requests in flight and open batches: their events are
    ///   dead-lettered as interrupted (the destination may or may not have received them).
    pub async fn run_until(
        &self,
        mut events: mpsc::Receiver<Input>,
        mut halt: watch::Receiver<Halt>,
        progress: &mut (dyn FnMut(&Summary) + Send),
    ) -> io::Result<Summary> {
        let mut halt_open = true;
        let mut run = Run {
            pipeline: self,
            batcher: Batcher::new(),
            tasks: JoinSet::new(),
            seen: Seen::default(),
            summary: Summary::default(),
            halt: halt.clone(),
            cancelled: Arc::default(),
        };
        let mut input_open = true;
        let mut inputs = Vec::with_capacity(INPUTS_AT_ONCE);
        loop {
            if !input_open {
                // Nothing more will join the open batches: send them now.
                for merged in run.batcher.flush() {
                    run.spawn_batch(merged);
                }
                if run.tasks.is_empty() {
                    break;
                }
            }
            let due = run.batcher.next_due().map(tokio::time::Instant::from_std);
            let room = self.max_in_flight.saturating_sub(run.tasks.len());
            tokio::select! {
                biased;
                Some(done) = run.tasks.join_next(), if !run.tasks.is_empty() => {
                    let done = done.expect("send tasks do not panic");
                    run.finished(done)?;
                }
                // Take what the reader has queued in one go, so the two threads do not trade
                // places for every event.
                taken = events.recv_many(&mut inputs, room.min(INPUTS_AT_ONCE)), if input_open && room > 0 => {
                    if taken == 0 {
                        input_open = false;
                    }
                    for input in inputs.drain(..) {
                        run.accept(input)?;
                    }
                }
                changed = halt.changed(), if halt_open => {
                    if changed.is_err() || *halt.borrow_and_update() == Halt::No {
                        // Nobody can halt this run any more.
                        halt_open = changed.is_ok();
                    } else {
                        events.close();
                    }
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    for merged in run.batcher.due(std::time::Instant::now()) {
                        run.spawn_batch(merged);
                    }
                }
            }
            progress(&run.summary);
        }
        Ok(std::mem::take(&mut run.summary))
    }
}

impl Run<'_> {
    pub(crate) fn connection(&self) -> &Connection {
        &self.pipeline.connection
    }

    fn accept(&mut self, input: Input) -> io::Result<()> {
        self.summary.events += 1;
        let (index, event, ticket) = match input {
            Input::Event { index, event } => (index, event, None),
            Input::Queued { ticket, event } => (
                usize::try_from(ticket.id()).unwrap_or(0),
                event,
                Some(ticket),
            ),
            Input::Unreadable {
                index,
                text,
                reason,
            } => {
                self.summary.dead_lettered += 1;
                let letter = self.pipeline.letter(
                    Value::String(text),
                    &format!("event {index} is not an event: {reason}"),
                    None,
                    None,
                    0,
                );
                return self.pipeline.write_dead_letter(&letter);
            }
        };
        let plan = {
            let state = self
                .pipeline
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            self.pipeline.connection.plan(&event, &*state)
        };
        if let Some(ticket) = &ticket {
            let requests = plan
                .outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Request(_)))
                .count();
            ticket.start(requests);
            if !plan.remember.is_empty() {
                ticket.remember(&plan.remember);
            }
            let connection = &self.pipeline.connection;
            ticket.journal(|journal| {
                journal
                    .planned
                    .extend(plan.outcomes.iter().map(|o| Note::of(o, connection)));
            });
        }
        let item = Arc::new(Tracked {
            index,
            event,
            ticket,
            cancelled: Arc::clone(&self.cancelled),
            deduped: std::sync::Mutex::default(),
        });
        for outcome in plan.outcomes {
            self.outcome(&item, outcome)?;
        }
        if !plan.remember.is_empty() {
            self.pipeline
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(plan.remember);
        }
        Ok(())
    }

    fn outcome(&mut self, item: &Item, outcome: Outcome) -> io::Result<()> {
        match outcome {
            Outcome::Request(request) => self.dispatch(item, request),
            Outcome::Skipped(skip) => {
                if skip.action.is_none() {
                    self.summary.skipped += 1;
                }
                Ok(())
            }
            Outcome::Failed(failure) => {
                self.summary.dead_lettered += 1;
                let reason = match &failure.action {
                    Some(action) => format!(
                        "event {}: action `{action}` cannot map it: {}",
                        item.index, failure.message
                    ),
                    None => format!("event {}: {}", item.index, failure.message),
                };
                self.fail(item, &reason, Last::default())
            }
        }
    }

    /// Sends a planned request, through the batcher when its rule allows.
    fn dispatch(&mut self, item: &Item, request: PlannedRequest) -> io::Result<()> {
        if let Some(key) = &request.dedupe_key
            && request.step.is_none()
        {
            if !self.seen.first_time(&request.action, key) {
                self.summary.duplicates += 1;
                return Ok(());
            }
            item.deduped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((Arc::clone(&request.action), key.clone()));
        }
        if request.batch.is_some() && request.continuation.is_none() {
            match self.batcher.push(Arc::clone(item), request) {
                Ok(closed) => {
                    for merged in closed {
                        self.spawn_batch(merged);
                    }
                }
                Err(rejected) => {
                    self.summary.dead_lettered += 1;
                    let last = recorded(&rejected.request, self.connection());
                    self.fail(&rejected.item, &rejected.reason, Last::request(last))?;
                }
            }
            return Ok(());
        }
        let sender = self.pipeline.sender.clone();
        let connection = Arc::clone(&self.pipeline.connection);
        let item = Arc::clone(item);
        let halt = self.halt.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                delivery = sender.send(&request, &connection) => Done::Single {
                    item,
                    request,
                    delivery,
                },
                () = aborted(halt) => Done::SingleAborted { item, request },
            }
        });
        Ok(())
    }

    pub(crate) fn spawn_batch(&mut self, merged: MergedRequest<Item>) {
        let sender = self.pipeline.sender.clone();
        let connection = Arc::clone(&self.pipeline.connection);
        let halt = self.halt.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                delivery = sender.send(&merged.request, &connection) => {
                    Done::Batch { merged, delivery }
                }
                () = aborted(halt) => Done::BatchAborted { merged },
            }
        });
    }

    pub(crate) fn count(&mut self, delivery: &Delivery) {
        self.summary.requests += 1;
        self.summary.retries += u64::from(delivery.attempts.saturating_sub(1));
        for attempt in &delivery.history {
            match attempt.status {
                Some(status) => *self.summary.statuses.entry(status).or_default() += 1,
                None => self.summary.transport_errors += 1,
            }
        }
    }

    /// Writes the exchange of `request` in the journals of the watched events it carried.
    pub(crate) fn journal(&self, items: &[Item], request: &PlannedRequest, delivery: &Delivery) {
        let mut watched = items
            .iter()
            .filter_map(|item| item.ticket.as_ref())
            .filter(|ticket| ticket.is_watched())
            .peekable();
        if watched.peek().is_none() {
            return;
        }
        let exchange = Arc::new(Exchange::of(
            request,
            items.len(),
            delivery,
            self.connection(),
        ));
        for ticket in watched {
            ticket.journal(|journal| journal.exchanges.push(Arc::clone(&exchange)));
        }
    }

    fn finished(&mut self, done: Done) -> io::Result<()> {
        match done {
            Done::Single {
                item,
                request,
                delivery,
            } => self.finished_single(&item, &request, delivery),
            Done::Batch { merged, delivery } => self.finished_batch(merged, delivery),
            Done::SingleAborted { item, request } => {
                self.summary.dead_lettered += 1;
                let last = recorded(&request, self.connection());
                if let Some(ticket) = &item.ticket {
                    ticket.interrupt();
                }
                self.fail(&item, ABORTED, Last::request(last))
            }
            Done::BatchAborted { merged } => {
                for index in 0..merged.len() {
                    if let Some(ticket) = &merged.items[index].ticket {
                        ticket.interrupt();
                    }
                    self.dead_letter_item(&merged, index, ABORTED, Last::default())?;
                }
                Ok(())
            }
        }
    }

    fn finished_single(
        &mut self,
        item: &Item,
        request: &PlannedRequest,
        delivery: Delivery,
    ) -> io::Result<()> {
        self.count(&delivery);
        self.journal(std::slice::from_ref(item), request, &delivery);
        let attempts = delivery.attempts;
        let answered = match delivery.outcome {
            // A 2xx answer the request's `failure` rule reads as a failure is one.
            Sent::Delivered(response)
                if request.continuation.is_none() && self.pipeline.sender.answers_are_real() =>
            {
                let answer = StepResponse::from_bytes(
                    response.status,
                    response.headers.clone(),
                    &response.body,
                );
                match self.connection().refusal(request, &answer) {
                    Some(refusal) => Err((
                        refusal.retry,
                        None,
                        format!(
                            "{}, but the response says the request failed: {}",
                            response.status_line(),
                            refusal.reason
                        ),
                        Some(recorded_response(&response, self.connection())),
                    )),
                    None => Ok(response),
                }
            }
            Sent::Delivered(response) => Ok(response),
            Sent::Failed(failure)
                if failure.kind == FailureKind::Rejected
                    && request.continuation.as_ref().is_some_and(|c| {
                        failure
                            .last_response
                            .as_ref()
                            .is_some_and(|r| self.connection().expects(c, r.status))
                    }) =>
            {
                Ok(failure.last_response.expect("checked above"))
            }
            Sent::Failed(failure) => Err((
                failure.retryable(),
                failure.retry_after,
                failure.reason,
                failure
                    .last_response
                    .map(|r| recorded_response(&r, self.connection())),
            )),
            Sent::TooLarge(response) => Err((
                false,
                None,
                format!(
                    "{} for a single request, which cannot be split",
                    response.status_line()
                ),
                Some(recorded_response(&response, self.connection())),
            )),
        };
        match answered {
            Ok(response) => {
                self.summary.delivered += 1;
                if let Some(continuation) = &request.continuation {
                    self.resume(item, continuation, response)
                } else {
                    self.summary.items_delivered += 1;
                    Ok(())
                }
            }
            Err((retryable, retry_after, reason, last_response)) => {
                self.summary.dead_lettered += 1;
                let step = request
                    .step
                    .as_deref()
                    .map(|s| format!(" step `{s}`"))
                    .unwrap_or_default();
                let last = recorded(request, self.connection());
                self.fail(
                    item,
                    &format!("action `{}`{step}: {reason}", request.action),
                    Last {
                        request: Some(last),
                        response: last_response,
                        attempts,
                        retryable,
                        retry_after,
                    },
                )
            }
        }
    }

    /// Feeds a step's response to its action's next step.
    fn resume(
        &mut self,
        item: &Item,
        continuation: &ferry_engine::Continuation,
        response: Response,
    ) -> io::Result<()> {
        let answer = StepResponse::from_bytes(response.status, response.headers, &response.body);
        let next = {
            let state = self
                .pipeline
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            self.pipeline
                .connection
                .resume(&item.event, &*state, continuation, &answer)
        };
        if let Some(outcome) = next {
            self.outcome(item, outcome)
        } else {
            self.summary.items_delivered += 1;
            Ok(())
        }
    }
}
