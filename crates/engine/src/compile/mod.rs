//! Turns a parsed mapping into its compiled form, checking every path, template, setting
//! reference and rule, and reporting every problem at once with its place in the file.

use std::collections::HashSet;

use ferry_spec::model::{self, Mapping};
use ferry_spec::{Diagnostic, Diagnostics, Document, Target, did_you_mean, escape_segment};

use std::collections::HashMap;
use std::sync::Arc;

use crate::batch_rule::BatchRule;
use crate::compiled::{CompiledAction, CompiledMapping};
use crate::template::Templates;

mod action;
mod batch;
mod bucket;
mod field;
mod http;
mod jsonpath;
mod list;
mod recall;
mod selector;
mod source;

use bucket::settle_steps;
use http::check_header_name;
use recall::{visit_recalled, visit_recalls};

/// Message types of the Segment spec (plus `delete`, which Segment sends to destinations).
const SEGMENT_TYPES: &[&str] = &[
    "identify", "track", "page", "screen", "group", "alias", "delete",
];

/// Compiles a loaded mapping, or returns every problem in it.
pub fn compile(document: Document) -> Result<CompiledMapping, Diagnostics> {
    let mut compiler = Compiler {
        document: &document,
        problems: Vec::new(),
        templates: Templates::default(),
        steps_in_scope: None,
        batches: HashMap::new(),
        groups_in_use: Vec::new(),
        entries_depth: 0,
    };
    let mapping = &document.mapping;
    compiler.check_settings();
    compiler.named_batches();
    let base_url =
        compiler.settings_template("/http/base_url", &mapping.http.base_url, "http.base_url");
    let headers = compiler.mapping_headers();
    let mut slots = 0;
    let actions: Vec<CompiledAction> = mapping
        .actions
        .iter()
        .filter_map(|(name, action)| compiler.action(name, action, &mut slots))
        .collect();
    compiler.check_recalls(&actions);

    let Compiler {
        problems,
        templates,
        ..
    } = compiler;
    if !problems.is_empty() {
        let mut problems = problems;
        problems.sort_by_key(|d| (d.line, d.column));
        problems.dedup();
        return Err(Diagnostics(problems));
    }
    let base_url = base_url.expect("no problems means the base URL compiled");
    Ok(CompiledMapping {
        name: mapping.name.as_str().into(),
        file: document.file.clone(),
        spec: document.mapping,
        templates,
        base_url,
        headers,
        actions,
    })
}

struct Compiler<'d> {
    document: &'d Document,
    problems: Vec<Diagnostic>,
    templates: Templates,
    /// While compiling a step: where it stands among its action's steps.
    steps_in_scope: Option<StepScope>,
    /// The named batch rules (`None` for one with problems, already reported).
    batches: HashMap<String, Option<Arc<BatchRule>>>,
    /// The groups being expanded, innermost last, to report a group that uses itself.
    groups_in_use: Vec<String>,
    /// How many `entries` the field being compiled sits in (`$key` needs one).
    entries_depth: usize,
}

/// The steps around the one being compiled.
#[derive(Clone)]
struct StepScope {
    current: String,
    earlier: Vec<String>,
    later: Vec<String>,
}

/// Where a field sits: its pointer in the file and its dotted output label.
#[derive(Clone)]
struct Place {
    pointer: String,
    label: String,
}

impl Place {
    fn child(&self, key: &str, separator: &str) -> Place {
        Place {
            pointer: format!("{}/{}", self.pointer, escape_segment(key)),
            label: if self.label.is_empty() {
                key.to_owned()
            } else {
                format!("{}{separator}{key}", self.label)
            },
        }
    }
}

impl Compiler<'_> {
    fn mapping(&self) -> &Mapping {
        &self.document.mapping
    }

    fn problem(
        &mut self,
        pointer: &str,
        target: Target,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let diagnostic = self.document.diagnostic(pointer, target, message);
        self.problems.push(diagnostic);
        self.problems.last_mut().expect("just pushed")
    }

    fn check_settings(&mut self) {
        let settings: Vec<(String, model::Setting)> = self
            .mapping()
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, setting) in settings {
            let pointer = format!("/settings/{}", escape_segment(&name));
            if setting.required && setting.default.is_some() {
                self.problem(
                    &format!("{pointer}/default"),
                    Target::Key,
                    format!("setting `{name}` is required and also has a default"),
                )
                .help = Some(
                    "a default makes the setting optional: remove `required: true` or the default"
                        .into(),
                );
            }
            for (i, allowed) in setting.one_of.iter().enumerate() {
                if let Err(why) = crate::checks::check_setting_type(setting.kind, allowed) {
                    self.problem(
                        &format!("{pointer}/one_of/{i}"),
                        Target::Value,
                        format!("a choice of setting `{name}` {why}"),
                    );
                }
            }
            if let Some(default) = &setting.default
                && let Err(why) = crate::checks::check_setting_value(&setting, default)
            {
                self.problem(
                    &format!("{pointer}/default"),
                    Target::Value,
                    format!("the default of setting `{name}` {why}"),
                );
            }
        }
    }
}

impl Compiler<'_> {
    fn check_recalls(&mut self, actions: &[CompiledAction]) {
        let remembered: HashSet<&str> = actions
            .iter()
            .flat_map(|a| a.remember.iter().map(|r| &*r.store))
            .collect();
        let mut missing = Vec::new();
        for (name, action) in &self.mapping().actions {
            let action_base = format!("/actions/{}", escape_segment(name));
            visit_recalled(&format!("{action_base}/when"), &action.when, &mut missing);
            for (step, s) in &action.steps {
                if let Some(when) = &s.when {
                    let at = format!("{action_base}/steps/{}/when", escape_segment(step));
                    visit_recalled(&at, when, &mut missing);
                }
            }
            let requests = action
                .request
                .iter()
                .map(|r| (format!("{action_base}/request"), r))
                .chain(action.steps.iter().map(|(step, s)| {
                    (
                        format!("{action_base}/steps/{}/request", escape_segment(step)),
                        &s.request,
                    )
                }));
            for (base, request) in requests {
                visit_recalls(&format!("{base}/body"), request.body.as_ref(), &mut missing);
                visit_recalls(&format!("{base}/query"), Some(&request.query), &mut missing);
            }
        }
        for (name, group) in &self.mapping().groups {
            let base = format!("/groups/{}", escape_segment(name));
            visit_recalls(&base, Some(group), &mut missing);
        }
        if actions.len() < self.mapping().actions.len() || !self.document.pruned_actions.is_empty()
        {
            // Some actions failed to load or compile; their `remember` is unknown, so do not guess.
            return;
        }
        let mut stores: Vec<&str> = remembered.iter().copied().collect();
        stores.sort_unstable();
        for (pointer, store) in missing {
            if !remembered.contains(store.as_str()) {
                let help = match did_you_mean(&store, stores.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "add `remember: {{ {store}: {{ key: ..., value: ... }} }}` to the action that sees the value"
                    ),
                };
                self.problem(
                    &pointer,
                    Target::Value,
                    format!("`recall` reads the store `{store}`, but no action remembers it"),
                )
                .help = Some(help);
            }
        }
    }
}

fn list_pointer<T>(base: &str, list: &model::OneOrMany<T>, index: usize) -> String {
    match list {
        model::OneOrMany::One(_) => base.to_owned(),
        model::OneOrMany::Many(_) => format!("{base}/{index}"),
    }
}
