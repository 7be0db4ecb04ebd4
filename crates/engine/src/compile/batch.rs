//! Batch rules: how planned requests merge into one HTTP request, written on an action or step,
//! or named under `batches` and shared by several actions.

use std::sync::Arc;
use std::time::Duration;

use ferry_spec::model::{self, BodyFormat};
use ferry_spec::{DiagnosticKind, Pointer, Target, did_you_mean};
use serde_json::Value;

use crate::batch_rule::{BatchRule, ItemErrorRule, Merge};
use crate::compiled::{CompiledRequest, Single, Source};
use crate::template::Escape;

use super::Compiler;

impl Compiler<'_> {
    /// Compiles the mapping's named batch rules, each with its name as its group.
    pub(super) fn named_batches(&mut self) {
        let document: &ferry_spec::Document = self.document;
        for (name, batch) in &document.mapping.batches {
            let pointer = Pointer::root().key("batches").key(name);
            let rule = self.batch_rule(&pointer, batch, None, Some(name.as_str().into()));
            self.batches.insert(name.clone(), rule);
        }
    }

    /// An action's or step's batch rule: written in place, or named under `batches`.
    pub(super) fn batch(
        &mut self,
        pointer: &Pointer,
        batch: &model::BatchRef,
        request: Option<&CompiledRequest>,
    ) -> Option<Arc<BatchRule>> {
        match batch {
            model::BatchRef::Rule(rule) => self.batch_rule(pointer, rule, request, None),
            model::BatchRef::Named(name) => {
                let Some(found) = self.batches.get(name) else {
                    let near = did_you_mean(name, self.batches.keys().map(String::as_str))
                        .map(str::to_owned);
                    self.problem(
                        DiagnosticKind::Batch,
                        pointer,
                        Target::Value,
                        format!("no batch rule is named `{name}`"),
                    )
                    .help = Some(match near {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => "declare it under `batches:`, or write the rule here".into(),
                    });
                    return None;
                };
                let rule = found.clone()?;
                if let Some(request) = request {
                    self.check_batchable(pointer, Some(&rule.merge), request, true);
                }
                Some(rule)
            }
        }
    }

    /// A batch needs a body its rule can merge: `concat` or `wrap` for a JSON object, `concat`
    /// of list fields for a form, and neither for `json_array` and `ndjson`, whose items merge.
    /// A request that uses a shared rule may bring only some of its arrays, but at least one.
    fn check_batchable(
        &mut self,
        pointer: &Pointer,
        merge: Option<&Merge>,
        request: &CompiledRequest,
        shared: bool,
    ) {
        let Some(body) = &request.body else {
            self.problem(
                DiagnosticKind::Batch,
                pointer,
                Target::Key,
                "this request has no body, so there is nothing to merge",
            )
            .help = Some("give the request a `body`, or remove `batch`".into());
            return;
        };
        let fits = merge.is_none_or(|merge| self.merge_fits(pointer, request.format, merge));
        let Some(Merge::Concat(names)) = merge.filter(|_| fits) else {
            return;
        };
        let fields = &body.fields;
        if shared && !names.iter().any(|n| fields.iter().any(|f| *f.key == **n)) {
            self.problem(
                DiagnosticKind::Batch,
                pointer,
                Target::Value,
                format!(
                    "the request body has none of the arrays this batch rule concatenates: {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return;
        }
        for (i, name) in names.iter().enumerate() {
            let field = fields.iter().find(|f| *f.key == **name);
            if shared && field.is_none() {
                continue;
            }
            let is_list = field.is_some_and(|f| {
                !f.spread
                    && f.computed_key.is_none()
                    && matches!(
                        f.source,
                        Source::Items(_)
                            | Source::Each {
                                sum: false,
                                single: Single::Refused | Single::AsList,
                                ..
                            }
                            | Source::Value(Value::Array(_))
                    )
            });
            if !is_list {
                let at = if shared {
                    pointer.clone()
                } else {
                    pointer.key("concat").index(i)
                };
                let (message, help) = if field.is_some() {
                    (
                        format!(
                            "body field `{name}` is not a list (`items`, `each` or a list `value`), so it cannot be concatenated"
                        ),
                        Some(format!(
                            "make it a list: `{name}: {{ items: [ {{ fields: ... }} ] }}`"
                        )),
                    )
                } else {
                    let keys: Vec<&str> = fields.iter().map(|f| &*f.key).collect();
                    (
                        format!("the request body has no field `{name}` to concatenate"),
                        did_you_mean(name, keys.iter().copied())
                            .map(|n| format!("did you mean `{n}`?")),
                    )
                };
                self.problem(DiagnosticKind::Batch, &at, Target::Value, message)
                    .help = help;
            }
        }
    }

    /// Whether a body of `format` merges as `merge` says; reported when it does not.
    fn merge_fits(&mut self, pointer: &Pointer, format: BodyFormat, merge: &Merge) -> bool {
        let (message, help) = match (format, merge) {
            (BodyFormat::Json, Merge::Concat(_) | Merge::Wrap(_))
            | (BodyFormat::Form, Merge::Concat(_))
            | (BodyFormat::JsonArray | BodyFormat::Ndjson, Merge::Items) => return true,
            (BodyFormat::Json, Merge::Items) => (
                "say how JSON objects merge: `concat: [array, ...]` or `wrap: KEY`".to_owned(),
                "Braze-style bodies concatenate their arrays: `concat: [attributes, events, purchases]`; a body that is a JSON array of items merges them with `format: json_array`",
            ),
            (BodyFormat::Form, _) => (
                "a form body merges by concatenating the lists its fields hold: `concat: [field, ...]`".to_owned(),
                "give the form a list field (`items` or `each`, sent as JSON text) and concatenate it, or send JSON with `format: json_array`",
            ),
            (BodyFormat::JsonArray | BodyFormat::Ndjson, _) => (
                format!(
                    "a `{}` body merges its items as they are: `concat` and `wrap` have nothing to do",
                    format.as_str()
                ),
                "remove `concat` and `wrap`",
            ),
        };
        self.problem(DiagnosticKind::Batch, pointer, Target::Key, message)
            .help = Some(help.into());
        false
    }

    #[allow(clippy::too_many_lines)]
    fn batch_rule(
        &mut self,
        pointer: &Pointer,
        batch: &model::Batch,
        request: Option<&CompiledRequest>,
        group: Option<Arc<str>>,
    ) -> Option<Arc<BatchRule>> {
        let errors_before = self.problems.len();
        let merge = match (batch.concat.is_empty(), &batch.wrap) {
            (false, None) => Some(Merge::Concat(
                batch.concat.iter().map(|c| c.as_str().into()).collect(),
            )),
            (true, Some(wrap)) if wrap.is_empty() || wrap.starts_with('$') => {
                let what = if wrap.is_empty() {
                    "an empty text names none".to_owned()
                } else {
                    format!("`{wrap}` is a path, not a member's name")
                };
                self.problem(
                    DiagnosticKind::Batch,
                    &pointer.key("wrap"),
                    Target::Value,
                    format!("`wrap` names the body member that holds the merged bodies, and {what}"),
                )
                .help = Some("write a member name such as `wrap: events`; for a body that is a JSON array of the requests' bodies, use `format: json_array` on the request and leave `wrap` out".into());
                None
            }
            (true, Some(wrap)) => Some(Merge::Wrap(wrap.as_str().into())),
            (false, Some(_)) => {
                self.problem(
                    DiagnosticKind::Batch,
                    &pointer.key("wrap"),
                    Target::Key,
                    "a batch either concatenates arrays (`concat`) or wraps bodies (`wrap`), not both",
                );
                None
            }
            (true, None) => Some(Merge::Items),
        };
        if let Some(request) = request {
            self.check_batchable(pointer, merge.as_ref(), request, false);
        }
        let limit = self.mapping().http.max_body_bytes;
        if let Some(max) = batch.max_bytes
            && max > limit
        {
            self.problem(
                DiagnosticKind::Batch,
                &pointer.key("max_bytes"),
                Target::Value,
                format!("`max_bytes` is larger than `http.max_body_bytes` ({limit})"),
            )
            .help = Some(
                "leave `max_bytes` out to use `http.max_body_bytes`, or raise `http.max_body_bytes`"
                    .into(),
            );
        }
        let key = batch
            .key
            .as_ref()
            .and_then(|key| self.template(&pointer.key("key"), key, Escape::None));
        let item_errors = batch.item_errors.as_ref().and_then(|rule| {
            let at = pointer.key("item_errors");
            let list = self.path(&at.key("list"), &rule.list);
            let index = self.path(&at.key("index"), &rule.index);
            let array = rule.array.as_ref().map(|a| self.path(&at.key("array"), a));
            let reason = rule.reason.as_ref().map(|r| self.path(&at.key("reason"), r));
            let statuses: Vec<u16> = rule
                .status
                .as_ref()
                .map(|s| s.as_slice().to_vec())
                .unwrap_or_default();
            for (i, status) in statuses.iter().enumerate() {
                if !(400..=599).contains(status) {
                    let at = match &rule.status {
                        Some(model::OneOrMany::Many(_)) => at.key("status").index(i),
                        _ => at.key("status"),
                    };
                    self.problem(
                        DiagnosticKind::Batch,
                        &at,
                        Target::Value,
                        format!("`{status}` is not an error status: a 2xx response is read for item errors anyway"),
                    )
                    .help = Some("list the 4xx or 5xx statuses whose response names the failed items, e.g. `status: 400`".into());
                }
            }
            Some(ItemErrorRule {
                statuses,
                list: list?,
                index: index?,
                array: array.map(|a| a.ok_or(())).transpose().ok()?,
                reason: reason.map(|r| r.ok_or(())).transpose().ok()?,
            })
        });
        if self.problems.len() > errors_before {
            return None;
        }
        Some(Arc::new(BatchRule {
            merge: merge?,
            max_items: batch.max_items as usize,
            max_bytes: usize::try_from(batch.max_bytes.unwrap_or(limit)).unwrap_or(usize::MAX),
            linger: batch.linger_ms.map(Duration::from_millis),
            key,
            item_errors,
            group,
        }))
    }
}
