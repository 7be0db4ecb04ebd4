//! Buckets (`rest_of`) and recalls: what other fields of an action read.

use ferry_spec::escape_segment;
use ferry_spec::model::{self};

use crate::compiled::{CompiledAction, CompiledRequest, Field, Source};
use crate::path::{Path, Segment};

pub(super) fn visit_recalls(
    base: &str,
    fields: Option<&model::Ordered<model::Field>>,
    out: &mut Vec<(String, String)>,
) {
    let Some(fields) = fields else { return };
    for (key, field) in fields {
        let pointer = format!("{base}/{}", escape_segment(key));
        if let Some(recall) = &field.recall {
            out.push((format!("{pointer}/recall/name"), recall.name.clone()));
        }
        visit_recalls(&format!("{pointer}/fields"), field.fields.as_ref(), out);
        for (i, item) in field.items.iter().flatten().enumerate() {
            let item_pointer = format!("{pointer}/items/{i}");
            if let Some(recall) = &item.recall {
                out.push((format!("{item_pointer}/recall/name"), recall.name.clone()));
            }
            visit_recalls(&format!("{item_pointer}/fields"), item.fields.as_ref(), out);
        }
    }
}

/// The `recalled` conditions of a selector and its `not`.
pub(super) fn visit_recalled(
    base: &str,
    selector: &model::Selector,
    out: &mut Vec<(String, String)>,
) {
    if let Some(recalled) = &selector.recalled {
        out.push((format!("{base}/recalled/name"), recalled.name.clone()));
    }
    if let Some(not) = &selector.not {
        visit_recalled(&format!("{base}/not"), not, out);
    }
}

/// Marks the keys of each `rest_of` object that other fields of the same request read, and
/// notes which non-2xx statuses of each step a later step handles.
pub(super) fn settle_steps(action: &mut CompiledAction) {
    for step in &mut action.steps {
        settle_buckets(&mut step.request, action.dedupe_key.as_ref());
    }
    for i in 0..action.steps.len() {
        let mut handled: Vec<u16> = action.steps[i + 1..]
            .iter()
            .filter_map(|later| later.when.as_ref())
            .filter(|when| when.response == Some(i))
            .flat_map(|when| when.statuses.iter().copied())
            .filter(|status| !(200..300).contains(status))
            .collect();
        handled.sort_unstable();
        handled.dedup();
        action.steps[i].handled = handled;
    }
}

fn settle_buckets(request: &mut CompiledRequest, dedupe_key: Option<&Field>) {
    let mut read: Vec<Vec<Box<str>>> = Vec::new();
    let mut collect = |field: &Field| collect_reads(field, &mut read);
    request.query.iter().for_each(&mut collect);
    request.body.iter().flatten().for_each(&mut collect);
    if let Some(f) = dedupe_key {
        collect(f);
    }
    for (_, template) in &request.headers {
        read.extend(template.event_paths().map(<[Box<str>]>::to_vec));
    }
    read.extend(request.path.event_paths().map(<[Box<str>]>::to_vec));
    let mut mark = |field: &mut Field| mark_rests(field, &read);
    request.body.iter_mut().flatten().for_each(&mut mark);
}

pub(super) fn collect_reads(field: &Field, out: &mut Vec<Vec<Box<str>>>) {
    let keys = |path: &Path| -> Option<Vec<Box<str>>> {
        path.segments().map(|segments| {
            segments
                .iter()
                .map_while(|s| match s {
                    Segment::Key(k) => Some(k.clone()),
                    Segment::Index(_) => None,
                })
                .collect()
        })
    };
    match &field.source {
        Source::Paths { paths, .. } => out.extend(paths.iter().filter_map(keys)),
        Source::Template(template) => out.extend(template.event_paths().map(<[Box<str>]>::to_vec)),
        Source::Object { fields, .. } | Source::Items(fields) => {
            for f in fields {
                collect_reads(f, out);
            }
        }
        // Paths inside `each` are relative to the item; the list itself counts as read.
        Source::Each { path, .. } => out.extend(keys(path)),
        // Responses and setting-chosen paths are not known to read the event's bucketed keys.
        Source::Recall(_)
        | Source::Value(_)
        | Source::Setting(_)
        | Source::Response { .. }
        | Source::SettingPath(_) => {}
    }
}

pub(super) fn mark_rests(field: &mut Field, read: &[Vec<Box<str>>]) {
    if let Source::Each { item, .. } = &mut field.source {
        // Inside `each`, paths are relative to the item: an item's bucket leaves out what the
        // item's own fields read.
        let mut item_reads = Vec::new();
        if let Source::Object { fields, .. } = &item.source {
            for f in fields {
                collect_reads(f, &mut item_reads);
            }
        }
        mark_rests(item, &item_reads);
        return;
    }
    if let Source::Object { fields, rest } = &mut field.source {
        if let Some(rest) = rest
            && let Some(segments) = rest.path.segments()
        {
            let prefix: Option<Vec<&str>> = segments
                .iter()
                .map(|s| match s {
                    Segment::Key(k) => Some(&**k),
                    Segment::Index(_) => None,
                })
                .collect();
            if let Some(prefix) = prefix {
                for path in read {
                    if path.len() > prefix.len()
                        && path.iter().zip(&prefix).all(|(a, b)| &**a == *b)
                    {
                        rest.consumed.insert(path[prefix.len()].clone());
                    }
                }
            }
        }
        for f in fields {
            mark_rests(f, read);
        }
    }
    if let Source::Items(fields) = &mut field.source {
        for f in fields {
            mark_rests(f, read);
        }
    }
}
