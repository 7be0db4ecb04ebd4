//! Actions: their refusals, `for_each`, requests or steps, `remember`, dedupe keys and the
//! rules that read failures out of 2xx responses.

use std::sync::Arc;

use ferry_spec::model::{self, BodyFormat};
use ferry_spec::{DiagnosticKind, Pointer, Target};

use crate::compiled::{
    ActionHeader, AuthRule, CompiledAction, CompiledRequest, CompiledStep, FailureRule, Field,
    ForEach, Refusal, Remember,
};
use crate::path::Path;
use crate::template::Escape;

use super::field::Slot;
use super::{Compiler, Place, StepScope, check_header_name, each_item, settle_steps};

impl Compiler<'_> {
    /// Refusal rules (`refuse` of the mapping or of an action) at `base`.
    pub(super) fn refusals(&mut self, base: &Pointer, rules: &[model::Refusal]) -> Vec<Refusal> {
        rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                let at = base.index(i);
                let when = self.selector(&at.key("when"), &rule.when);
                let reason = self.template(&at.key("reason"), &rule.reason, Escape::None)?;
                Some(Refusal { when, reason })
            })
            .collect()
    }

    #[allow(clippy::too_many_lines)]
    pub(super) fn action(
        &mut self,
        name: &str,
        action: &model::Action,
        slots: &mut usize,
    ) -> Option<CompiledAction> {
        let base = Pointer::root().key("actions").key(name);
        let errors_before = self.problems.len();
        self.steps_in_scope = None;
        self.for_each_in_scope = false;
        let when = self.selector(&base.key("when"), &action.when);
        let refuse = self.refusals(&base.key("refuse"), &action.refuse);
        let for_each = action
            .for_each
            .as_ref()
            .and_then(|rule| self.for_each(&base.key("for_each"), rule));
        self.for_each_in_scope = action.for_each.is_some();
        let mut steps = Vec::new();
        match (&action.request, action.steps.is_empty()) {
            (Some(request), true) => {
                let request = self.request(&base.key("request"), request);
                let batch = action
                    .batch
                    .as_ref()
                    .and_then(|b| self.batch(&base.key("batch"), b, request.as_ref()));
                let failure = action
                    .failure
                    .as_ref()
                    .and_then(|rules| self.failure(&base.key("failure"), rules));
                if let Some(request) = request {
                    steps.push(CompiledStep {
                        name: None,
                        when: None,
                        request,
                        batch,
                        failure,
                        slot: *slots,
                        handled: Vec::new(),
                    });
                    *slots += 1;
                }
            }
            (None, false) => {
                for (key, set) in [
                    ("batch", action.batch.is_some()),
                    ("failure", action.failure.is_some()),
                ] {
                    if set {
                        self.problem(
                            DiagnosticKind::Step,
                            &base.key(key),
                            Target::Key,
                            format!(
                                "an action with `steps` declares `{key}` on the step it applies to"
                            ),
                        );
                    }
                }
                if action.for_each.is_some() {
                    self.problem(
                        DiagnosticKind::Step,
                        &base.key("for_each"),
                        Target::Key,
                        "`for_each` plans one request per item; an action with `steps` plans a flow per event",
                    )
                    .help = Some("use `for_each` on an action with one `request`".into());
                }
                let names: Vec<String> = action.steps.keys().cloned().collect();
                let mut earlier: Vec<String> = Vec::new();
                for (at, (step_name, step)) in action.steps.iter().enumerate() {
                    let pointer = base.key("steps").key(step_name);
                    self.steps_in_scope = Some(StepScope {
                        current: step_name.clone(),
                        earlier: earlier.clone(),
                        later: names[at + 1..].to_vec(),
                    });
                    let step_when = step
                        .when
                        .as_ref()
                        .map(|w| self.selector(&pointer.key("when"), w));
                    let request = self.request(&pointer.key("request"), &step.request);
                    let batch = step
                        .batch
                        .as_ref()
                        .and_then(|b| self.batch(&pointer.key("batch"), b, request.as_ref()));
                    let failure = step
                        .failure
                        .as_ref()
                        .and_then(|rules| self.failure(&pointer.key("failure"), rules));
                    earlier.push(step_name.clone());
                    if let Some(request) = request {
                        steps.push(CompiledStep {
                            name: Some(step_name.as_str().into()),
                            when: step_when,
                            request,
                            batch,
                            failure,
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
                    DiagnosticKind::Step,
                    &base.key("steps"),
                    Target::Key,
                    "an action has either one `request` or several `steps`, not both",
                )
                .help = Some("move the request into a step".into());
            }
            (None, true) => {
                self.problem(
                    DiagnosticKind::Request,
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
                let pointer = base.key("remember").key(store);
                let key = self.path(&pointer.key("key"), &rule.key);
                let value: Vec<Path> = each_item(&pointer.key("value"), &rule.value)
                    .filter_map(|(at, p)| self.path(&at, p))
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
                pointer: base.key("dedupe_key"),
                label: "dedupe_key".into(),
            };
            self.field(&place, "dedupe_key", field, Slot::Flat)
        });
        self.for_each_in_scope = false;
        if self.problems.len() > errors_before {
            return None;
        }
        let mut compiled = CompiledAction {
            name: name.into(),
            when,
            refuse,
            for_each,
            steps,
            remember,
            dedupe_key,
        };
        settle_steps(&mut compiled);
        Some(compiled)
    }

    fn for_each(&mut self, pointer: &Pointer, rule: &model::ForEach) -> Option<ForEach> {
        let (text, filter, unnest, at) = match rule {
            model::ForEach::Path(text) => (text, None, None, pointer.clone()),
            model::ForEach::Filtered(rule) => (
                &rule.each,
                rule.filter.as_deref(),
                rule.unnest.as_ref(),
                pointer.key("each"),
            ),
        };
        let path = self.path(&at, text);
        if path
            .as_ref()
            .is_some_and(|p| p.root() == crate::path::Root::Item)
        {
            self.problem(
                DiagnosticKind::Path,
                &at,
                Target::Value,
                "`for_each` reads a list of the event or of a setting; `$item` is what it gives",
            );
            return None;
        }
        self.for_each_in_scope = true;
        let filter = filter.map(|w| self.selector(&pointer.key("where"), w));
        let unnest = match unnest {
            Some(given) => Some(self.unnest(&pointer.key("unnest"), given)?),
            None => None,
        };
        self.for_each_in_scope = false;
        Some(ForEach {
            path: path?,
            filter,
            unnest,
        })
    }

    /// `unnest`: one name, and the field whose values (read per item) make the runs.
    fn unnest(&mut self, pointer: &Pointer, given: &model::Ordered<model::Field>) -> Option<Field> {
        let mut named = given.iter();
        let (Some((name, field)), None) = (named.next(), named.next()) else {
            self.problem(
                DiagnosticKind::Field,
                pointer,
                Target::Value,
                "`unnest` names one member of the item, and the field that gives its values",
            )
            .help = Some(
                "e.g. `unnest: { group_id: { from: $.traits, member: $item.groupKey } }`".into(),
            );
            return None;
        };
        let place = Place {
            pointer: pointer.key(name),
            label: format!("for_each.unnest.{name}"),
        };
        let compiled = self.field(&place, name, field, Slot::Member)?;
        if compiled.spread || compiled.computed_key.is_some() {
            self.problem(
                DiagnosticKind::Field,
                &place.pointer,
                Target::Key,
                "an unnested value is read as `$item.NAME`: it cannot be spread or named per event",
            );
            return None;
        }
        Some(compiled)
    }

    /// The `failure` rules of an action or step, in order. Rules written alike (on several
    /// actions that share a batch rule, say) compile to one shared list, so that their requests
    /// are known to read responses alike when the batcher compares them.
    fn failure(
        &mut self,
        pointer: &Pointer,
        rules: &model::OneOrMany<model::FailureRule>,
    ) -> Option<Arc<[FailureRule]>> {
        // A rule that names a step's response reads the steps around it: never shared.
        let shareable = !rules.as_slice().iter().any(|r| reads_response(&r.when));
        let written = serde_json::to_string(rules).expect("a rule serializes");
        if shareable && let Some(known) = self.failures.get(&written) {
            return Some(Arc::clone(known));
        }
        let errors_before = self.problems.len();
        let compiled: Vec<FailureRule> = each_item(pointer, rules)
            .map(|(at, rule)| {
                let when = self.selector(&at.key("when"), &rule.when);
                let reason = rule
                    .reason
                    .as_ref()
                    .and_then(|r| self.path(&at.key("reason"), r));
                FailureRule {
                    when,
                    reason,
                    retry: rule.retry,
                }
            })
            .collect();
        if self.problems.len() > errors_before {
            return None;
        }
        let compiled: Arc<[FailureRule]> = compiled.into();
        if shareable {
            self.failures.insert(written, Arc::clone(&compiled));
        }
        Some(compiled)
    }

    #[allow(clippy::too_many_lines)]
    fn request(&mut self, base: &Pointer, request: &model::Request) -> Option<CompiledRequest> {
        let errors_before = self.problems.len();
        let path_pointer = base.key("path");
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
                DiagnosticKind::Request,
                &path_pointer,
                Target::Value,
                "the request path must start with `/`",
            )
            .help = Some(help);
        }
        let path = self.template(&path_pointer, &request.path, Escape::PathSegment);
        let root = Place {
            pointer: base.key("query"),
            label: String::new(),
        };
        let query = self.fields(&root, &request.query, "&", Slot::Flat);
        let auth = match &request.auth {
            Some(auth) => self.auth(&base.key("auth"), auth, "request.auth"),
            None => None,
        };
        // The headers this request's own headers may replace: the mapping's, then its auth's.
        let mut shared: Vec<Arc<str>> = self
            .mapping()
            .http
            .headers
            .keys()
            .map(|k| Arc::from(k.as_str()))
            .collect();
        let auth_header = match (&request.auth, &auth) {
            (Some(_), Some(AuthRule::Header { name, .. })) => Some(Arc::clone(name)),
            (Some(_), _) => None,
            (None, _) => self.mapping_auth_header(),
        };
        shared.extend(auth_header);
        let mut headers: Vec<ActionHeader> = Vec::new();
        for (header, value) in &request.headers {
            let pointer = base.key("headers").key(header);
            if let Err(why) = check_header_name(header) {
                self.problem(DiagnosticKind::Header, &pointer, Target::Key, why);
            } else if let Some(earlier) =
                headers.iter().find(|h| h.name.eq_ignore_ascii_case(header))
            {
                let earlier = Arc::clone(&earlier.name);
                self.problem(
                    DiagnosticKind::Header,
                    &pointer,
                    Target::Key,
                    format!("`{header}` is the header `{earlier}` again: header names are compared without regard to case"),
                )
                .help = Some("keep one of them".into());
            }
            if let Some(t) = self.template(&pointer, value, Escape::None) {
                headers.push(ActionHeader {
                    name: header.as_str().into(),
                    value: t,
                    replaces: shared.iter().any(|s| s.eq_ignore_ascii_case(header)),
                });
            }
        }
        let content_type_given = shared
            .iter()
            .chain(headers.iter().map(|h| &h.name))
            .any(|name| name.eq_ignore_ascii_case("content-type"));
        let body = request.body.as_ref().map(|body| {
            let root = Place {
                pointer: base.key("body"),
                label: String::new(),
            };
            let fields = self.fields(&root, body, ".", Slot::Member);
            self.object_of(fields, None)
        });
        if request.body.is_none() && request.format != BodyFormat::Json {
            self.problem(
                DiagnosticKind::Request,
                &base.key("format"),
                Target::Key,
                format!(
                    "`format: {}` says how the body is written, and this request has no body",
                    request.format.as_str()
                ),
            );
        }
        if self.problems.len() > errors_before {
            return None;
        }
        Some(CompiledRequest {
            method: request.method,
            path: path?,
            query,
            headers,
            auth,
            body,
            format: request.format,
            content_type_given,
        })
    }

    /// The header `http.auth` sets, if it sets one.
    fn mapping_auth_header(&self) -> Option<Arc<str>> {
        let auth = self.mapping().http.auth.as_ref()?;
        if auth.bearer.is_some() || auth.basic.is_some() {
            Some("Authorization".into())
        } else {
            auth.header.as_ref().map(|h| Arc::from(h.name.as_str()))
        }
    }
}

/// Whether `selector`, or one nested in it, names a step's response.
fn reads_response(selector: &model::Selector) -> bool {
    selector.response.is_some()
        || selector.not.as_deref().is_some_and(reads_response)
        || selector.any.iter().chain(&selector.all).any(reads_response)
}
