//! Buckets (`rest_of`) and recalls: what other fields of an action read.

use ferry_spec::escape_segment;
use ferry_spec::model::{self};

use crate::compiled::{CompiledAction, Field, Source};
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
    }
}

/// Marks the keys of each `rest_of` object that other fields of the action read.
pub(super) fn settle_buckets(action: &mut CompiledAction) {
    let mut read: Vec<Vec<Box<str>>> = Vec::new();
    let mut collect = |field: &Field| collect_reads(field, &mut read);
    action.query.iter().for_each(&mut collect);
    action.body.iter().flatten().for_each(&mut collect);
    action.dedupe_key.iter().for_each(&mut collect);
    for (_, template) in &action.headers {
        read.extend(template.event_paths().map(<[Box<str>]>::to_vec));
    }
    read.extend(action.path.event_paths().map(<[Box<str>]>::to_vec));
    let mut mark = |field: &mut Field| mark_rests(field, &read);
    action.body.iter_mut().flatten().for_each(&mut mark);
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
        Source::Object { fields, .. } => fields.iter().for_each(|f| collect_reads(f, out)),
        // Paths inside `each` are relative to the item; the list itself counts as read.
        Source::Each { path, .. } => out.extend(keys(path)),
        Source::Recall(_) | Source::Value(_) | Source::Setting(_) => {}
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
}
