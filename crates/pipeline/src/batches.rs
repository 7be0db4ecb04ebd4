//! What becomes of a merged batch once it was sent. A 2xx response's item errors (and those of
//! an error status the rule's `item_errors` lists) dead-letter only the items they name; a 2xx
//! response the `failure` rule reads as a failure fails every item; a 413 splits the batch in
//! two, and a 400 or 422 halves it until the refused items stand alone, so that the others are
//! still delivered; any other failure dead-letters each of its items.

use std::io;

use ferry_delivery::{Delivery, FailureKind, Outcome as Sent, Response};
use ferry_engine::{MergedRequest, Refusal, StepResponse};
use serde_json::Value;

use crate::dead_letters::Last;
use crate::outgoing::recorded_response;
use crate::run::Run;
use crate::tracked::Item;

impl Run<'_> {
    pub(crate) fn finished_batch(
        &mut self,
        mut merged: MergedRequest<Item>,
        delivery: Delivery,
    ) -> io::Result<()> {
        self.count(&delivery);
        self.journal(&merged.items, &merged.request, &delivery);
        let attempts = delivery.attempts;
        match delivery.outcome {
            Sent::Delivered(_) if !self.pipeline.sender.answers_are_real() => {
                self.summary.delivered += 1;
                self.summary.items_delivered += merged.len() as u64;
                Ok(())
            }
            Sent::Delivered(response) => {
                self.summary.delivered += 1;
                let answer = StepResponse::from_bytes(response.status, Vec::new(), &response.body);
                if let Some(refusal) = self.connection().refusal(&merged.request, &answer) {
                    return self.refused_batch(&merged, &response, attempts, &refusal);
                }
                self.item_errors(&merged, &response, attempts)
            }
            Sent::TooLarge(response) => {
                if let Some(second) = merged.split() {
                    self.summary.splits += 1;
                    self.spawn_batch(merged);
                    self.spawn_batch(second);
                    Ok(())
                } else {
                    let reason = format!(
                        "{} for a single item, which cannot be split",
                        response.status_line()
                    );
                    let response = recorded_response(&response, self.connection());
                    self.dead_letter_item(
                        &merged,
                        0,
                        &reason,
                        Last {
                            response: Some(response),
                            attempts,
                            ..Last::default()
                        },
                    )
                }
            }
            Sent::Failed(failure)
                if failure.kind == FailureKind::Rejected
                    && failure.last_response.as_ref().is_some_and(|r| {
                        merged.rule().reports_item_errors_with(r.status)
                            && !merged
                                .failed_items(
                                    &serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                                )
                                .failed
                                .is_empty()
                    }) =>
            {
                // The destination names the items it refused; it took the others.
                let response = failure.last_response.expect("checked above");
                self.item_errors(&merged, &response, attempts)
            }
            Sent::Failed(failure) => {
                // A 400 or 422 for a batch may come from one bad item: halve the batch until the
                // refused items stand alone, so the others are still delivered.
                let refused_content = failure.kind == FailureKind::Rejected
                    && failure
                        .last_response
                        .as_ref()
                        .is_some_and(|r| matches!(r.status, 400 | 422));
                if refused_content && let Some(second) = merged.split() {
                    self.summary.splits += 1;
                    self.spawn_batch(merged);
                    self.spawn_batch(second);
                    return Ok(());
                }
                let response = failure
                    .last_response
                    .as_ref()
                    .map(|r| recorded_response(r, self.connection()));
                let batch = if merged.len() > 1 {
                    format!(" (a batch of {} requests)", merged.len())
                } else {
                    String::new()
                };
                for index in 0..merged.len() {
                    self.dead_letter_item(
                        &merged,
                        index,
                        &format!("{}{batch}", failure.reason),
                        Last {
                            response: response.clone(),
                            attempts,
                            retryable: failure.retryable(),
                            retry_after: failure.retry_after,
                            ..Last::default()
                        },
                    )?;
                }
                Ok(())
            }
        }
    }

    /// Dead-letters the items `response` names as failed; the others are delivered.
    fn item_errors(
        &mut self,
        merged: &MergedRequest<crate::tracked::Item>,
        response: &Response,
        attempts: u32,
    ) -> io::Result<()> {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let failures = merged.failed_items(&body);
        let recorded = recorded_response(response, self.connection());
        for (index, reason) in &failures.failed {
            self.dead_letter_item(
                merged,
                *index,
                &format!("refused by the destination: {reason}"),
                Last {
                    response: Some(recorded.clone()),
                    attempts,
                    ..Last::default()
                },
            )?;
        }
        self.summary.items_delivered += (merged.len() - failures.failed.len()) as u64;
        self.summary.unattributed.extend(failures.unattributed);
        Ok(())
    }

    /// Dead-letters every item of a batch whose 2xx response says it failed.
    fn refused_batch(
        &mut self,
        merged: &MergedRequest<crate::tracked::Item>,
        response: &Response,
        attempts: u32,
        refusal: &Refusal,
    ) -> io::Result<()> {
        let recorded = recorded_response(response, self.connection());
        for index in 0..merged.len() {
            self.dead_letter_item(
                merged,
                index,
                &format!(
                    "{}, but the response says the request failed: {}",
                    response.status_line(),
                    refusal.reason
                ),
                Last {
                    response: Some(recorded.clone()),
                    attempts,
                    retryable: refusal.retry,
                    ..Last::default()
                },
            )?;
        }
        Ok(())
    }
}
