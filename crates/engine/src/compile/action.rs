//! Actions: their requests or steps, `remember` and dedupe keys.

use ferry_spec::model::{self, BodyFormat};
use ferry_spec::{Target, escape_segment};

use crate::compiled::{CompiledAction, CompiledRequest, CompiledStep, Remember};
use crate::path::Path;
use crate::template::Escape;

use super::bucket::object_of;
use super::field::Slot;
use super::{Compiler, Place, StepScope, check_header_name, list_pointer, settle_steps};

impl Compiler<'_> {
    #[allow(clippy::too_many_lines)]
    pub(super) fn action(
        &mut self,
        name: &str,
        action: &model::Action,
        slots: &mut usize,
    ) -> Option<CompiledAction> {
        let base = format!("/actions/{}", escape_segment(name));
        let errors_before = self.problems.len();
        self.steps_in_scope = None;
        let when = self.selector(&format!("{base}/when"), &action.when);
        let mut steps = Vec::new();
        match (&action.request, action.steps.is_empty()) {
            (Some(request), true) => {
                let request = self.request(&format!("{base}/request"), request);
                let batch = action
                    .batch
                    .as_ref()
                    .and_then(|b| self.batch(&format!("{base}/batch"), b, request.as_ref()));
                if let Some(request) = request {
                    steps.push(CompiledStep {
                        name: None,
                        when: None,
                        request,
                        batch,
                        slot: *slots,
                        handled: Vec::new(),
                    });
                    *slots += 1;
                }
            }
            (None, false) => {
                if action.batch.is_some() {
                    self.problem(
                        &format!("{base}/batch"),
                        Target::Key,
                        "an action with `steps` declares `batch` on the step it applies to",
                    );
                }
                let names: Vec<String> = action.steps.keys().cloned().collect();
                let mut earlier: Vec<String> = Vec::new();
                for (at, (step_name, step)) in action.steps.iter().enumerate() {
                    let pointer = format!("{base}/steps/{}", escape_segment(step_name));
                    self.steps_in_scope = Some(StepScope {
                        current: step_name.clone(),
                        earlier: earlier.clone(),
                        later: names[at + 1..].to_vec(),
                    });
                    let step_when = step
                        .when
                        .as_ref()
                        .map(|w| self.selector(&format!("{pointer}/when"), w));
                    let request = self.request(&format!("{pointer}/request"), &step.request);
                    let batch = step
                        .batch
                        .as_ref()
                        .and_then(|b| self.batch(&format!("{pointer}/batch"), b, request.as_ref()));
                    earlier.push(step_name.clone());
                    if let Some(request) = request {
                        steps.push(CompiledStep {
                            name: Some(step_name.as_str().into()),
                            when: step_when,
                            request,
                            batch,
                            slot: *slots,
                            handled: Vec::new(),
                        });
                        *slots += 1;
                    }
                }
                self.steps_in_scope = None;
            }
            (Some(_), false) => {
                self.problem(
                    &format!("{base}/steps"),
                    Target::Key,
                    "an action has either one `request` or several `steps`, not both",
                )
                .help = Some("move the request into a step".into());
            }
            (None, true) => {
                self.problem(
                    &base,
                    Target::Key,
                    format!("action `{name}` has neither `request` nor `steps`"),
                )
                .help = Some("add `request: { method: POST, path: /... }`".into());
            }
        }
        let remember = action
            .remember
            .iter()
            .filter_map(|(store, rule)| {
                let pointer = format!("{base}/remember/{}", escape_segment(store));
                let key = self.path(&format!("{pointer}/key"), &rule.key);
                let value: Vec<Path> = rule
                    .value
                    .as_slice()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        self.path(
                            &list_pointer(&format!("{pointer}/value"), &rule.value, i),
                            p,
                        )
                    })
                    .collect();
                Some(Remember {
                    store: store.as_str().into(),
                    key: key?,
                    value,
                })
            })
            .collect();
        let dedupe_key = action.dedupe_key.as_ref().and_then(|field| {
            let place = Place {
                pointer: format!("{base}/dedupe_key"),
                label: "dedupe_key".into(),
            };
            let compiled = self.field(&place, "dedupe_key", field, Slot::Flat)?;
            Some(compiled)
        });
        if self.problems.len() > errors_before {
            return None;
        }
        let mut compiled = CompiledAction {
            name: name.into(),
            when,
            steps,
            remember,
            dedupe_key,
        };
        settle_steps(&mut compiled);
        Some(compiled)
    }

    fn request(&mut self, base: &str, request: &model::Request) -> Option<CompiledRequest> {
        let errors_before = self.problems.len();
        let path_pointer = format!("{base}/path");
        if !request.path.starts_with('/') {
            let help = if request.path.contains("://") || request.path.starts_with("{{") {
                "put only the path here, e.g. `/v1/events`: the scheme and host come from \
                 `http.base_url`, and event data can never choose them"
                    .to_owned()
            } else {
                format!(
                    "write `/{}`: the path is added to `http.base_url`",
                    request.path
                )
            };
            self.problem(
                &path_pointer,
                Target::Value,
                "the request path must start with `/`",
            )
            .help = Some(help);
        }
        let path = self.template(&path_pointer, &request.path, Escape::PathSegment);
        let root = Place {
            pointer: format!("{base}/query"),
            label: String::new(),
        };
        let query = self.fields(&root, &request.query, "&", Slot::Flat);
        let mut headers = Vec::new();
        for (header, value) in &request.headers {
            let pointer = format!("{base}/headers/{}", escape_segment(header));
            check_header_name(header)
                .err()
                .map(|why| self.problem(&pointer, Target::Key, why));
            if let Some(t) = self.template(&pointer, value, Escape::None) {
                headers.push((header.as_str().into(), t));
            }
        }
        let body = request.body.as_ref().map(|body| {
            let root = Place {
                pointer: format!("{base}/body"),
                label: String::new(),
            };
            let slot = if request.format == BodyFormat::Form {
                Slot::Flat
            } else {
                Slot::Member
            };
            object_of(self.fields(&root, body, ".", slot), None)
        });
        if self.problems.len() > errors_before {
            return None;
        }
        Some(CompiledRequest {
            method: request.method,
            path: path?,
            query,
            headers,
            body,
            format: request.format,
        })
    }
}
