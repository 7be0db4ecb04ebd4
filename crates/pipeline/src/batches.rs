//! What becomes of a merged batch once it was sent. A 2xx response's item errors dead-letter
//! only the items they name; a 413 splits the batch in two, and a 400 or 422 halves it until
//! the refused items stand alone, so that the others are still delivered; any other failure
//! dead-letters each of its items.

use std::io;

use ferry_delivery::{Delivery, FailureKind, Outcome as Sent};
use ferry_engine::MergedRequest;
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
        let attempts = delivery.attempts;
        match delivery.outcome {
            Sent::Delivered(response) => {
                self.summary.delivered += 1;
                let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
                let failures = merged.failed_items(&body);
                let response = recorded_response(&response, self.connection());
                for (index, reason) in &failures.failed {
                    self.dead_letter_item(
                        &merged,
                        *index,
                        &format!("refused by the destination: {reason}"),
                        Last {
                            response: Some(response.clone()),
                            attempts,
                            ..Last::default()
                        },
                    )?;
                }
                self.summary.items_delivered += (merged.len() - failures.failed.len()) as u64;
                self.summary.unattributed.extend(failures.unattributed);
                Ok(())
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
}
