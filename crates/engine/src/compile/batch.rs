//! Batch rules: how planned requests merge into one HTTP request, written on an action or step,
//! or named under `batches` and shared by several actions.

use std::sync::Arc;
use std::time::Duration;

use ferry_spec::model::{self, BodyFormat};
use ferry_spec::{Target, did_you_mean, escape_segment};
use serde_json::Value;

use crate::batch_rule::{BatchRule, ItemErrorRule, Merge};
use crate::compiled::{CompiledRequest, Source};
use crate::template::Escape;

use super::Compiler;

impl Compiler<'_> {
    /// Compiles the mapping's named batch rules, each with its name as its group.
    pub(super) fn named_batches(&mut self) {
        let batches = &self.document.mapping.batches;
        for (name, batch) in batches {
            let pointer = format!("/batches/{}", escape_segment(name));
            let rule = self.batch_rule(&pointer, batch, None, Some(name.as_str().into()));
            self.batches.insert(name.clone(), rule);
        }
    }

    /// An action's or step's batch rule: written in place, or named under `batches`.
    pub(super) fn batch(
        &mut self,
        pointer: &str,
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

    /// A batch needs a JSON body, and `concat` needs list fields of that body. A request that
    /// uses a shared rule may bring only some of its arrays, but at least one.
    fn check_batchable(
        &mut self,
        pointer: &str,
        merge: Option<&Merge>,
        request: &CompiledRequest,
        shared: bool,
    ) {
        if request.body.is_none() {
            self.problem(
                pointer,
                Target::Key,
                "this request has no body, so there is nothing to merge",
            )
            .help = Some("give the request a JSON `body`, or remove `batch`".into());
        } else if request.format != BodyFormat::Json {
            self.problem(
                pointer,
                Target::Key,
                "only requests with a JSON body can be batched",
            )
            .help = Some("remove `format: form`, or remove `batch`".into());
        } else if let (Some(Merge::Concat(names)), Some(body)) =
            (merge, request.body.as_ref().map(|b| &b.fields))
        {
            if shared && !names.iter().any(|n| body.iter().any(|f| *f.key == **n)) {
                self.problem(
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
                let field = body.iter().find(|f| *f.key == **name);
                if shared && field.is_none() {
                    continue;
                }
                let is_list = field.is_some_and(|f| {
                    !f.spread
                        && f.computed_key.is_none()
                        && matches!(
                            f.source,
                            Source::Items(_) | Source::Each { .. } | Source::Value(Value::Array(_))
                        )
                });
                if !is_list {
                    let at = if shared {
                        pointer.to_owned()
                    } else {
                        format!("{pointer}/concat/{i}")
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
                        let keys: Vec<&str> = body.iter().map(|f| &*f.key).collect();
                        (
                            format!("the request body has no field `{name}` to concatenate"),
                            did_you_mean(name, keys.iter().copied())
                                .map(|n| format!("did you mean `{n}`?")),
                        )
                    };
                    self.problem(&at, Target::Value, message).help = help;
                }
            }
        }
    }

    fn batch_rule(
        &mut self,
        pointer: &str,
        batch: &model::Batch,
        request: Option<&CompiledRequest>,
        group: Option<Arc<str>>,
    ) -> Option<Arc<BatchRule>> {
        let errors_before = self.problems.len();
        let merge = match (batch.concat.is_empty(), &batch.wrap) {
            (false, None) => Some(Merge::Concat(
                batch.concat.iter().map(|c| c.as_str().into()).collect(),
            )),
            (true, Some(wrap)) => Some(Merge::Wrap(wrap.as_str().into())),
            (false, Some(_)) => {
                self.problem(&format!("{pointer}/wrap"), Target::Key, "a batch either concatenates arrays (`concat`) or wraps bodies (`wrap`), not both");
                None
            }
            (true, None) => {
                self.problem(pointer, Target::Key, "say how requests merge: `concat: [array, ...]` or `wrap: KEY`")
                    .help = Some("Braze-style bodies concatenate their arrays: `concat: [attributes, events, purchases]`".into());
                None
            }
        };
        if let Some(request) = request {
            self.check_batchable(pointer, merge.as_ref(), request, false);
        }
        let limit = self.mapping().http.max_body_bytes;
        if let Some(max) = batch.max_bytes
            && max > limit
        {
            self.problem(
                &format!("{pointer}/max_bytes"),
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
            .and_then(|key| self.template(&format!("{pointer}/key"), key, Escape::None));
        let item_errors = batch.item_errors.as_ref().and_then(|rule| {
            let at = format!("{pointer}/item_errors");
            let list = self.path(&format!("{at}/list"), &rule.list);
            let index = self.path(&format!("{at}/index"), &rule.index);
            let array = rule
                .array
                .as_ref()
                .map(|a| self.path(&format!("{at}/array"), a));
            let reason = rule
                .reason
                .as_ref()
                .map(|r| self.path(&format!("{at}/reason"), r));
            Some(ItemErrorRule {
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
