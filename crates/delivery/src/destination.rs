//! The send loop: admit, attempt, classify, wait, again.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::backoff::{Backoff, Wait, WaitSource, choose_wait, server_hint};
use crate::classify::{Verdict, classify_status};
use crate::client::{HttpClient, Prepared};
use crate::human;
use crate::limit::Limits;
use crate::outcome::{AttemptRecord, Delivery, Failure, FailureKind, Outcome};
use crate::request::{Outgoing, Response};
use crate::rules::{Rules, SetupError};

/// One destination: its rules, its HTTP client (connections pooled per host), its rate
/// limiter and its concurrency slots.
///
/// Cloning is cheap and shares all of them: give every task sending to the same destination
/// (the same account's API) a clone, so that the limits hold across them.
#[derive(Debug, Clone)]
pub struct Destination {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Rules,
    backoff: Backoff,
    client: HttpClient,
    limits: Limits,
}

impl Destination {
    pub fn new(rules: Rules) -> Result<Self, SetupError> {
        rules.validate()?;
        let client = HttpClient::new(&rules)?;
        let limits = Limits::new(rules.rate_limit, rules.concurrency)?;
        let backoff = Backoff {
            initial: rules.initial_backoff,
            max: rules.max_backoff,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                rules,
                backoff,
                client,
                limits,
            }),
        })
    }

    /// Sends `request`, retrying as the rules say, and reports the outcome with the history
    /// of its attempts. Never panics on a bad request or a bad response: every problem ends
    /// up in the outcome.
    pub async fn send(&self, request: &Outgoing) -> Delivery {
        let called = Instant::now();
        match HttpClient::prepare(request) {
            Ok(prepared) => self.send_prepared(&prepared, called).await,
            Err(reason) => Delivery {
                outcome: Outcome::Failed(Failure {
                    kind: FailureKind::InvalidRequest,
                    reason,
                    last_response: None,
                    retry_after: None,
                }),
                attempts: 0,
                history: Vec::new(),
                elapsed: called.elapsed(),
            },
        }
    }

    async fn send_prepared(&self, prepared: &Prepared, called: Instant) -> Delivery {
        let Inner {
            rules,
            backoff,
            client,
            limits,
        } = &*self.inner;
        let (method, target) = (prepared.method(), prepared.target.as_str());
        let mut run = Run {
            history: Vec::new(),
            last_response: None,
            called,
        };
        // The budget starts when the first attempt is admitted (see `Rules::max_total`).
        let mut budget_start: Option<Instant> = None;
        // What went wrong with the last attempt, for the reason of a failure.
        let mut problem = String::new();
        // The wait the last answer asked for, if it asked.
        let mut asked: Option<Duration> = None;

        loop {
            let attempt = run.attempts() + 1;
            let admission = match budget_start {
                None => limits.admit().await,
                Some(start) => {
                    let remaining = rules.max_total.saturating_sub(start.elapsed());
                    let Ok(admission) = tokio::time::timeout(remaining, limits.admit()).await
                    else {
                        let reason = format!(
                            "{problem}; the {} total budget ran out waiting for the rate or \
                             concurrency limit, after {}",
                            human(rules.max_total),
                            attempts(run.attempts())
                        );
                        return run.fail(FailureKind::BudgetExhausted, reason, asked);
                    };
                    admission
                }
            };
            let start = *budget_start.get_or_insert_with(Instant::now);
            let remaining = rules.max_total.saturating_sub(start.elapsed());
            let began = Instant::now();
            let at = SystemTime::now();
            let result = client.attempt(prepared, rules.timeout.min(remaining)).await;
            drop(admission);
            let took = began.elapsed();

            let hint = match result {
                Ok(response) => {
                    let status = response.status;
                    run.history.push(AttemptRecord {
                        status: Some(status),
                        error: None,
                        at,
                        took,
                    });
                    let verdict = classify_status(status, &rules.retry_statuses);
                    tracing::debug!(%method, target, attempt, status, ?verdict, "response");
                    match verdict {
                        Verdict::Success => return run.finish(Outcome::Delivered(response)),
                        Verdict::TooLarge => return run.finish(Outcome::TooLarge(response)),
                        Verdict::Permanent => {
                            tracing::warn!(%method, target, attempt, status, "rejected");
                            let reason = response.status_line();
                            run.last_response = Some(response);
                            return run.fail(FailureKind::Rejected, reason, None);
                        }
                        Verdict::Retryable => {
                            problem = response.status_line();
                            let hint = server_hint(status, &response.headers, SystemTime::now());
                            run.last_response = Some(response);
                            asked = hint.map(|hint| hint.wait);
                            hint
                        }
                    }
                }
                Err(error) => {
                    problem = error.to_string();
                    asked = None;
                    run.history.push(AttemptRecord {
                        status: None,
                        error: Some(error),
                        at,
                        took,
                    });
                    None
                }
            };

            if attempt >= rules.max_attempts {
                tracing::warn!(%method, target, attempt, problem, "giving up: attempts exhausted");
                let reason = format!("{problem} after {}", attempts(attempt));
                return run.fail(FailureKind::AttemptsExhausted, reason, asked);
            }
            let wait = choose_wait(hint, rules.respect_retry_after, backoff.delay(attempt));
            let remaining = rules.max_total.saturating_sub(start.elapsed());
            if wait.duration >= remaining {
                tracing::warn!(%method, target, attempt, problem, "giving up: total budget exhausted");
                let reason = over_budget(&problem, wait, remaining, rules, attempt);
                return run.fail(FailureKind::BudgetExhausted, reason, asked);
            }
            let wait_ms = u64::try_from(wait.duration.as_millis()).unwrap_or(u64::MAX);
            tracing::info!(%method, target, attempt, problem, wait_ms, "retrying");
            tokio::time::sleep(wait.duration).await;
        }
    }
}

/// The reason for giving up because the next wait would overrun the total budget.
fn over_budget(problem: &str, wait: Wait, remaining: Duration, rules: &Rules, n: u32) -> String {
    let asked = match wait.source {
        WaitSource::Server(header) => {
            format!(
                "the server asked to wait {} ({header})",
                human(wait.duration)
            )
        }
        WaitSource::Backoff => format!("the next wait of {}", human(wait.duration)),
    };
    format!(
        "{problem}; {asked}, more than the {} left of the {} total budget; gave up after {}",
        human(remaining),
        human(rules.max_total),
        attempts(n)
    )
}

/// The state of one `send`, and how it ends.
struct Run {
    history: Vec<AttemptRecord>,
    last_response: Option<Response>,
    called: Instant,
}

impl Run {
    fn attempts(&self) -> u32 {
        u32::try_from(self.history.len()).unwrap_or(u32::MAX)
    }

    fn finish(self, outcome: Outcome) -> Delivery {
        Delivery {
            outcome,
            attempts: self.attempts(),
            elapsed: self.called.elapsed(),
            history: self.history,
        }
    }

    fn fail(
        mut self,
        kind: FailureKind,
        reason: String,
        retry_after: Option<Duration>,
    ) -> Delivery {
        let last_response = self.last_response.take();
        self.finish(Outcome::Failed(Failure {
            kind,
            reason,
            last_response,
            retry_after,
        }))
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}
