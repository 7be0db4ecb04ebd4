//! Turns a parsed mapping into its compiled form, checking every path, template, setting
//! reference and rule, and reporting every problem at once with its place in the file.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_spec::model::{self, Mapping};
use ferry_spec::{
    Diagnostic, DiagnosticKind, Diagnostics, Document, Pointer, Target, did_you_mean,
};

use crate::batch_rule::BatchRule;
use crate::compiled::{
    CompiledAction, CompiledHttp, CompiledMapping, FailureRule, Field, NameSource, RemapSetting,
    SELECTOR_SLOTS, Selector,
};
use crate::path::ParentIds;
use crate::template::Templates;

mod action;
mod batch;
mod bucket;
mod field;
mod http;
mod jsonpath;
mod list;
mod names;
mod selector;
mod source;

use bucket::settle_steps;
use field::Slot;
use http::check_header_name;

/// Message types of the Segment spec (plus `delete`, which Segment sends to destinations).
const SEGMENT_TYPES: &[&str] = &[
    "identify", "track", "page", "screen", "group", "alias", "delete",
];

/// Compiles a loaded mapping, or returns every problem in it.
pub(crate) fn compile(document: Document) -> Result<CompiledMapping, Diagnostics> {
    let mut compiler = Compiler {
        document: &document,
        problems: Vec::new(),
        templates: Templates::default(),
        steps_in_scope: None,
        batches: HashMap::new(),
        groups_in_use: Vec::new(),
        entries_depth: 0,
        for_each_in_scope: false,
        computed_known: Vec::new(),
        recalls: Vec::new(),
        name_sources: Vec::new(),
        remap_settings: Vec::new(),
        failures: HashMap::new(),
        whens: HashMap::new(),
        parents: ParentIds::default(),
    };
    let mapping = &document.mapping;
    compiler.check_settings();
    compiler.named_batches();
    let http = Pointer::root().key("http");
    let base_url = compiler.settings_template(
        &http.key("base_url"),
        &mapping.http.base_url,
        "http.base_url",
    );
    let (headers, auth) = compiler.mapping_headers();
    let computed = compiler.computed();
    let refuse = compiler.refusals(&Pointer::root().key("refuse"), &mapping.refuse);
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
        name_sources,
        remap_settings,
        parents,
        whens,
        ..
    } = compiler;
    number_shared_whens(whens.into_values());
    if !problems.is_empty() {
        let mut problems = problems;
        problems.sort_by_key(|d| (d.line, d.column));
        problems.dedup();
        return Err(Diagnostics(problems));
    }
    let base_url = base_url.expect("no problems means the base URL compiled");
    let file = document.file.clone();
    let http = CompiledHttp {
        base_url,
        headers,
        auth,
    };
    Ok(CompiledMapping {
        name: document.mapping.name.as_str().into(),
        file,
        spec: document.mapping,
        templates,
        http,
        computed,
        refuse,
        actions,
        name_sources,
        remap_settings,
        parents: parents.count(),
    })
}

/// Gives a slot to each field `when` that more than one part holds (fields written under one
/// anchor, or a field and the buckets asking whether it was written): a run keeps its answer
/// there. The others are tested where they are read, at no cost for the memory.
fn number_shared_whens(whens: impl Iterator<Item = Arc<Selector>>) {
    let shared = whens.filter(|when| Arc::strong_count(when) > 2);
    for (slot, when) in (0..SELECTOR_SLOTS).zip(shared) {
        let slot = u8::try_from(slot).expect("slots fit in a byte");
        when.slot.set(slot).expect("a selector is numbered once");
    }
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
    /// Whether the action being compiled has `for_each` (`$item` needs it).
    for_each_in_scope: bool,
    /// The computed values a path may read: those declared, or while they compile, those
    /// before the one compiling.
    computed_known: Vec<String>,
    /// Every store a `recall` or `recalled` reads, with where: checked once every action's
    /// `remember` is known.
    recalls: Vec<(Pointer, String)>,
    /// The list settings names are read from, each with its member, in the order first used.
    name_sources: Vec<NameSource>,
    /// The settings remaps read as tables, each (with its matching rule) once.
    remap_settings: Vec<RemapSetting>,
    /// The `failure` rules compiled so far, by what was written: rules written alike share one
    /// list, so that their requests merge into one batch.
    failures: HashMap<String, Arc<[FailureRule]>>,
    /// The fields' `when` selectors compiled so far, by what was written: selectors written
    /// alike (an anchor used on many fields) share one, which a run tests once per event.
    whens: HashMap<String, Arc<Selector>>,
    /// The parents of the event paths compiled so far, walked once per event.
    parents: ParentIds,
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
    pointer: Pointer,
    label: String,
}

impl Place {
    fn child(&self, key: &str, separator: &str) -> Place {
        Place {
            pointer: self.pointer.key(key),
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
        kind: DiagnosticKind,
        pointer: &Pointer,
        target: Target,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let diagnostic = self.document.diagnostic(kind, pointer, target, message);
        self.problems.push(diagnostic);
        self.problems.last_mut().expect("just pushed")
    }

    fn check_settings(&mut self) {
        let document: &Document = self.document;
        for (name, setting) in &document.mapping.settings {
            let pointer = Pointer::root().key("settings").key(name);
            if setting.required && setting.default.is_some() {
                self.problem(
                    DiagnosticKind::Setting,
                    &pointer.key("default"),
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
                        DiagnosticKind::Setting,
                        &pointer.key("one_of").index(i),
                        Target::Value,
                        format!("a choice of setting `{name}` {why}"),
                    );
                }
            }
            if let Some(default) = &setting.default
                && let Err(why) = crate::checks::check_setting_value(setting, default)
            {
                self.problem(
                    DiagnosticKind::Setting,
                    &pointer.key("default"),
                    Target::Value,
                    format!("the default of setting `{name}` {why}"),
                );
            }
            for (i, other) in setting.required_with.iter().enumerate() {
                let at = pointer.key("required_with").index(i);
                if other == name {
                    self.problem(
                        DiagnosticKind::Setting,
                        &at,
                        Target::Value,
                        format!("setting `{name}` cannot be required with itself"),
                    );
                } else {
                    self.setting_ref(&at, other);
                }
            }
            if !setting.required_with.is_empty() && setting.required {
                self.problem(
                    DiagnosticKind::Setting,
                    &pointer.key("required_with"),
                    Target::Key,
                    format!("setting `{name}` is required anyway: `required_with` adds nothing"),
                );
            }
        }
    }

    /// The mapping's computed values, in order; each may read those before it.
    fn computed(&mut self) -> Vec<Field> {
        let document: &Document = self.document;
        let base = Pointer::root().key("computed");
        let mut out = Vec::new();
        for (name, field) in &document.mapping.computed {
            let place = Place {
                pointer: base.key(name),
                label: format!("computed.{name}"),
            };
            if let Some(compiled) = self.field(&place, name, field, Slot::Member) {
                if compiled.spread || compiled.computed_key.is_some() {
                    self.problem(
                        DiagnosticKind::Computed,
                        &place.pointer,
                        Target::Key,
                        "a computed value is read by its name: it cannot be spread or named per event",
                    );
                }
                out.push(compiled);
            }
            self.computed_known.push(name.clone());
        }
        out
    }

    fn check_recalls(&mut self, actions: &[CompiledAction]) {
        if actions.len() < self.mapping().actions.len() || !self.document.pruned_actions.is_empty()
        {
            // Some actions failed to load or compile; their `remember` is unknown, so do not guess.
            return;
        }
        let remembered: HashSet<&str> = actions
            .iter()
            .flat_map(|a| a.remember.iter().map(|r| &*r.store))
            .collect();
        let mut stores: Vec<&str> = remembered.iter().copied().collect();
        stores.sort_unstable();
        for (pointer, store) in std::mem::take(&mut self.recalls) {
            if !remembered.contains(store.as_str()) {
                let help = match did_you_mean(&store, stores.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "add `remember: {{ {store}: {{ key: ..., value: ... }} }}` to the action that sees the value"
                    ),
                };
                self.problem(
                    DiagnosticKind::Recall,
                    &pointer,
                    Target::Value,
                    format!("`recall` reads the store `{store}`, but no action remembers it"),
                )
                .help = Some(help);
            }
        }
    }
}

/// The model's `OneOrMany` as a slice, with the pointer of each item.
fn each_item<'a, T>(
    base: &'a Pointer,
    list: &'a model::OneOrMany<T>,
) -> impl Iterator<Item = (Pointer, &'a T)> + 'a {
    list.as_slice()
        .iter()
        .enumerate()
        .map(move |(i, item)| (base.item(list, i), item))
}
