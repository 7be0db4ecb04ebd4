//! One action's request: URL, query, headers, body and dedupe key.

use crate::batch_rule::{BatchRule, BodyLayout, Merge, Slot};
use crate::checks::check_header_value;
use crate::compiled::{CompiledStep, Field, Object};
use crate::connection::Header;
use crate::plan::{Body, PlannedRequest};
use crate::template::RenderError;
use ferry_spec::model::BodyFormat;
use serde_json::Value;
use std::sync::Arc;

use super::{Capture, Run, Scope, Step, Stop, text_of};

impl<'a> Run<'a> {
    pub(super) fn request(
        &mut self,
        step: &'a CompiledStep,
        dedupe_key: Option<&'a Field>,
        event: &'a Value,
    ) -> Step<PlannedRequest> {
        let connection = self.connection;
        let action = &step.request;
        let url = self.url(step, event)?;
        let mut headers: Vec<Header> = connection.headers.to_vec();
        for (name, template) in &action.headers {
            let value = match connection.render(template, Some(event)) {
                Ok(value) => value,
                Err(RenderError::Undefined(_)) => continue,
                Err(RenderError::Failed(why)) => {
                    return Err(Stop::Failed(format!("header `{name}`: {why}")));
                }
            };
            check_header_value(name, &value).map_err(Stop::Failed)?;
            let redacted = if connection.reads_secret(template) {
                connection
                    .render_redacted(template, Some(event))
                    .ok()
                    .map(Into::into)
            } else {
                None
            };
            headers.push(Header {
                name: Arc::clone(name),
                value: value.into(),
                redacted,
            });
        }
        let mut layout = None;
        let body = match (&action.body, action.format) {
            (None, _) => None,
            (Some(fields), BodyFormat::Json) => {
                // Most bodies fit: one allocation, no copy as it grows.
                let mut out = Vec::with_capacity(1024);
                layout = match step.batch.as_deref() {
                    Some(rule) if recordable(fields, rule) => {
                        self.body_with_layout(fields, rule, event, &mut out)?
                    }
                    _ => {
                        self.object(fields, None, Scope::of(event), &mut out)?;
                        None
                    }
                };
                let limit = connection.mapping.spec.http.max_body_bytes;
                if out.len() as u64 > limit {
                    return Err(Stop::Failed(format!(
                        "the body is {} bytes, over the mapping's limit of {limit} (`http.max_body_bytes`)",
                        out.len()
                    )));
                }
                Some(Body::Json(
                    String::from_utf8(out).expect("serde_json writes UTF-8"),
                ))
            }
            (Some(fields), BodyFormat::Form) => {
                Some(Body::Form(self.flat_fields(&fields.fields, event)?))
            }
        };
        let dedupe_key = match dedupe_key {
            Some(field) => self.value(field, Scope::of(event))?.map(|v| text_of(&v)),
            None => None,
        };
        let batch_key = match step.batch.as_ref().and_then(|b| b.key.as_ref()) {
            Some(template) => Some(connection.render(template, Some(event)).map_err(
                |e| match e {
                    RenderError::Undefined(why) => {
                        Stop::Failed(match connection.missing_in(template, event) {
                            Some(what) => format!("the batch key needs {what}"),
                            None => format!("the batch key cannot be rendered: {why}"),
                        })
                    }
                    RenderError::Failed(why) => {
                        Stop::Failed(format!("the batch key cannot be rendered: {why}"))
                    }
                },
            )?),
            None => None,
        };
        Ok(PlannedRequest {
            action: Arc::clone(self.action),
            method: action.method,
            url,
            headers,
            body,
            dedupe_key,
            step: step.name.clone(),
            batch: step.batch.clone(),
            batch_key,
            continuation: None,
            layout,
        })
    }

    /// The full URL: the base URL, the path (rendered once per connection when it reads no
    /// event value) and the query.
    fn url(&mut self, step: &'a CompiledStep, event: &'a Value) -> Step<String> {
        let connection = self.connection;
        let action = &step.request;
        let mut url = if let Some(url) = &connection.paths[step.slot] {
            url.to_string()
        } else {
            let path = connection
                .render(&action.path, Some(event))
                .map_err(|e| match e {
                    RenderError::Undefined(why) => {
                        Stop::Failed(match connection.missing_in(&action.path, event) {
                            Some(what) => format!("the request path needs {what}"),
                            None => {
                                format!("the request path needs a value the event lacks: {why}")
                            }
                        })
                    }
                    RenderError::Failed(why) => {
                        Stop::Failed(format!("the request path cannot be rendered: {why}"))
                    }
                })?;
            format!("{}{path}", connection.base_url)
        };
        if !action.query.is_empty() {
            let pairs = self.flat_fields(&action.query, event)?;
            if !pairs.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(
                    &url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&pairs)
                        .finish(),
                );
            }
        }
        Ok(url)
    }

    /// Writes a body whose requests merge by concatenating arrays, recording where its members
    /// and the items of those arrays are (`None` when an item could not be recorded: the
    /// batcher then reads the body itself).
    fn body_with_layout(
        &mut self,
        body: &'a Object,
        rule: &BatchRule,
        event: &'a Value,
        out: &mut Vec<u8>,
    ) -> Step<Option<Box<BodyLayout>>> {
        let names = rule.arrays();
        let mut layout = BodyLayout {
            arrays: vec![Vec::new(); names.len()],
            slots: Vec::with_capacity(body.fields.len()),
            ..BodyLayout::default()
        };
        let mut valid = true;
        out.push(b'{');
        let mut first = true;
        let mut written = None;
        for field in &body.fields {
            let array = names.iter().position(|n| **n == *field.key);
            if array.is_some() {
                self.capture = Some(Capture {
                    depth: 0,
                    items: Vec::with_capacity(4),
                    entered: false,
                    valid: true,
                });
            }
            let (start, was_first) = (out.len(), first);
            let result = self.field(field, Scope::of(event), out, &mut first, &mut written);
            let capture = self.capture.take();
            result?;
            if out.len() == start {
                continue;
            }
            let value = start + usize::from(!was_first) + field.key_json.len()..out.len();
            if let (Some(a), Some(capture)) = (array, capture) {
                valid &= capture.valid
                    && out.get(value.start) == Some(&b'[')
                    && (capture.entered || &out[value.clone()] == b"[]");
                layout.arrays[a] = capture.items;
                layout.slots.push(Slot::Array(a));
            } else {
                layout.slots.push(Slot::Envelope(layout.envelope.len()));
                layout.envelope.push((field.key.clone(), value));
            }
        }
        out.push(b'}');
        layout.len = out.len();
        Ok(valid.then(|| Box::new(layout)))
    }

    /// Query parameters and form fields: name and text of every present value.
    pub(super) fn flat_fields(
        &mut self,
        fields: &'a [Field],
        event: &'a Value,
    ) -> Step<Vec<(String, String)>> {
        let mut pairs = Vec::with_capacity(fields.len());
        for field in fields {
            if let Some(value) = self.value(field, Scope::of(event))? {
                pairs.push((field.key.to_string(), text_of(&value)));
            }
        }
        Ok(pairs)
    }
}

/// Whether the writer can record a body's layout for `rule`: its arrays are concatenated, and
/// every top-level member has a name known when the mapping compiled.
fn recordable(body: &Object, rule: &BatchRule) -> bool {
    matches!(rule.merge, Merge::Concat(_))
        && !body.dynamic
        && body
            .fields
            .iter()
            .all(|f| !f.spread && f.computed_key.is_none())
}
