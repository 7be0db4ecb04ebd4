//! Dry runs of multi-step actions: canned responses stand in for the destination, so that every
//! branch of a flow can be shown (`ferry map --responses`) and tested (golden cases).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::connection::Connection;
use crate::plan::{Outcome, StepResponse};
use crate::state::Recall;

/// Responses by step: keyed `action.step`, or by the step name alone for every action.
#[derive(Debug, Default, Clone)]
pub struct CannedResponses {
    by_step: HashMap<String, StepResponse>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedResponse {
    status: u16,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Value,
}

impl CannedResponses {
    /// Reads `{ STEP: { status, headers?, body? }, ... }`.
    pub fn from_value(value: Value) -> Result<CannedResponses, String> {
        let table: HashMap<String, CannedResponse> =
            serde_json::from_value(value).map_err(|e| {
                format!("responses must map step names to {{status, headers, body}}: {e}")
            })?;
        let by_step = table
            .into_iter()
            .map(|(step, r)| {
                let mut headers: Vec<(String, String)> = r.headers.into_iter().collect();
                headers.sort();
                let response = StepResponse {
                    status: r.status,
                    headers,
                    body: r.body,
                };
                (step, response)
            })
            .collect();
        Ok(CannedResponses { by_step })
    }

    /// Whether no response is canned.
    pub fn is_empty(&self) -> bool {
        self.by_step.is_empty()
    }

    /// The canned response to `step` of `action`.
    pub fn get(&self, action: &str, step: &str) -> Option<&StepResponse> {
        self.by_step
            .get(&format!("{action}.{step}"))
            .or_else(|| self.by_step.get(step))
    }
}

/// An outcome of a dry run, with the canned response that answered it, if any.
#[derive(Debug)]
pub struct Followed {
    /// What was planned.
    pub outcome: Outcome,
    /// The canned response fed to the action's next steps.
    pub answer: Option<StepResponse>,
}

impl Connection {
    /// Follows every multi-step action of `outcomes` through the canned responses: each step a
    /// response is canned for is answered and the action's next step planned after it. A step
    /// without a canned response keeps its continuation: what follows depends on the response.
    pub fn follow(
        &self,
        event: &Value,
        state: &dyn Recall,
        outcomes: Vec<Outcome>,
        canned: &CannedResponses,
    ) -> Vec<Followed> {
        let mut out = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let mut next = Some(outcome);
            while let Some(outcome) = next.take() {
                let answer = match &outcome {
                    Outcome::Request(request) => match (&request.continuation, &request.step) {
                        (Some(continuation), Some(step)) => canned
                            .get(&request.action, step)
                            .map(|answer| (continuation.clone(), answer.clone())),
                        _ => None,
                    },
                    _ => None,
                };
                match answer {
                    Some((continuation, answer)) => {
                        next = self.resume(event, state, &continuation, &answer);
                        out.push(Followed {
                            outcome,
                            answer: Some(answer),
                        });
                    }
                    None => out.push(Followed {
                        outcome,
                        answer: None,
                    }),
                }
            }
        }
        out
    }
}
