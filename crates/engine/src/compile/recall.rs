//! Which remembered-value stores a mapping reads (`recall` in fields, `recalled` in selectors),
//! so that a store no action remembers is reported where it is read.

use ferry_spec::escape_segment;
use ferry_spec::model;

/// Every `recall` in `fields` (and in the selectors and lists inside them), as the pointer of
/// its store name and the name.
pub(super) fn visit_recalls(
    base: &str,
    fields: Option<&model::Ordered<model::Field>>,
    out: &mut Vec<(String, String)>,
) {
    let Some(fields) = fields else { return };
    for (key, field) in fields {
        visit_field(&format!("{base}/{}", escape_segment(key)), field, out);
    }
}

fn visit_field(pointer: &str, field: &model::Field, out: &mut Vec<(String, String)>) {
    if let Some(recall) = &field.recall {
        out.push((format!("{pointer}/recall/name"), recall.name.clone()));
    }
    if let Some(when) = &field.when {
        visit_recalled(&format!("{pointer}/when"), when, out);
    }
    if let Some(filter) = &field.filter {
        visit_recalled(&format!("{pointer}/where"), filter, out);
    }
    if let Some(key) = &field.key {
        visit_field(&format!("{pointer}/key"), key, out);
    }
    visit_recalls(&format!("{pointer}/fields"), field.fields.as_ref(), out);
    for (i, item) in field.items.iter().flatten().enumerate() {
        visit_field(&format!("{pointer}/items/{i}"), item, out);
    }
}

/// The `recalled` conditions of a selector and of the selectors nested in it.
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
    for (key, list) in [("any", &selector.any), ("all", &selector.all)] {
        for (i, nested) in list.iter().enumerate() {
            visit_recalled(&format!("{base}/{key}/{i}"), nested, out);
        }
    }
}
