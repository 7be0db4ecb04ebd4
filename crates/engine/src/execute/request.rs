//! One action's request: URL, query, headers, body and dedupe key.

use std::sync::Arc;

use ferry_spec::model::BodyFormat;

use crate::batch_rule::{BatchRule, BodyLayout, Merge, Slot};
use crate::checks::check_header_value;
use crate::compiled::{CompiledStep, Field, Object};
use crate::connection::Header;
use crate::plan::{Body, FailureKind, PlannedRequest};
use crate::template::RenderError;

use super::value::text_of;
use super::{Capture, Run, Scope, Step, Stop};

impl<'a> Run<'a> {
    pub(super) fn request(
        &mut self,
        step: &'a CompiledStep,
        dedupe_key: Option<&'a Field>,
    ) -> Step<PlannedRequest> {
        let connection = self.connection;
        let event = self.event;
        let request = &step.request;
        let url = self.url(step)?;
        let mut headers = self.headers(step)?;
        let (body, layout) = match &request.body {
            Some(fields) => {
                let (body, layout) = self.body(fields, step)?;
                (Some(body), layout)
            }
            None => (None, None),
        };
        if let Some(body) = &body
            && !request.content_type_given
        {
            headers.push(connection.content_type(body));
        }
        let dedupe_key = match dedupe_key {
            Some(field) => self.value(field, Scope::of(event))?.map(|v| text_of(&v)),
            None => None,
        };
        let batch_key = match step.batch.as_ref().and_then(|b| b.key.as_ref()) {
            Some(template) => Some(self.render(template, event).map_err(|e| match e {
                RenderError::Undefined(_) => Stop::Failed(
                    FailureKind::Missing,
                    match connection.missing_in(template, event) {
                        Some(what) => format!("the batch key needs {what}"),
                        None => "the batch key reads a value that is missing".to_owned(),
                    },
                ),
                RenderError::Failed(why) => Stop::Failed(
                    FailureKind::Template,
                    format!("the batch key cannot be rendered: {why}"),
                ),
            })?),
            None => None,
        };
        Ok(PlannedRequest {
            action: Arc::clone(self.action),
            method: request.method,
            url,
            headers,
            body,
            dedupe_key,
            step: step.name.clone(),
            batch: step.batch.clone(),
            batch_key,
            continuation: None,
            failure: step.failure.clone(),
            layout,
        })
    }

    /// The request's headers: the mapping's and the auth's (as rendered for its step), then
    /// its own, each replacing a shared one of the same name.
    fn headers(&mut self, step: &'a CompiledStep) -> Step<Vec<Header>> {
        let connection = self.connection;
        let event = self.event;
        let request = &step.request;
        let shared = connection.slots[step.slot]
            .headers
            .as_ref()
            .map_err(|why| Stop::Failed(FailureKind::Setting, why.clone()))?;
        let mut headers: Vec<Header> = Vec::with_capacity(shared.len() + request.headers.len() + 1);
        headers.extend(shared.iter().cloned());
        for header in &request.headers {
            let value = match self.render(&header.value, event) {
                Ok(value) => value,
                Err(RenderError::Undefined(_)) => continue,
                Err(RenderError::Failed(why)) => {
                    return Err(Stop::Failed(
                        FailureKind::Template,
                        format!("header `{}`: {why}", header.name),
                    ));
                }
            };
            check_header_value(&header.name, &value)
                .map_err(|why| Stop::Failed(FailureKind::Invalid, why))?;
            let redacted = if connection.reads_secret(&header.value) {
                connection
                    .render_redacted(&header.value, Some(event))
                    .ok()
                    .map(Into::into)
            } else {
                None
            };
            if header.replaces {
                headers.retain(|h| !h.name.eq_ignore_ascii_case(&header.name));
            }
            headers.push(Header {
                name: Arc::clone(&header.name),
                value: value.into(),
                redacted,
            });
        }
        Ok(headers)
    }

    /// The body in the request's format, with where its merged items are when recorded.
    fn body(
        &mut self,
        fields: &'a Object,
        step: &'a CompiledStep,
    ) -> Step<(Body, Option<Box<BodyLayout>>)> {
        let connection = self.connection;
        let event = self.event;
        let mut layout = None;
        // Most bodies fit: one allocation, no copy as it grows.
        let mut out = Vec::with_capacity(1024);
        let body = match step.request.format {
            BodyFormat::Json => {
                layout = match step.batch.as_deref() {
                    Some(rule) if recordable(fields, rule) => {
                        self.body_with_layout(fields, rule.arrays(), &mut out)?
                    }
                    _ => {
                        self.object(fields, None, Scope::of(event), &mut out)?;
                        None
                    }
                };
                Body::Json(into_text(out))
            }
            BodyFormat::JsonArray => {
                out.push(b'[');
                self.object(fields, None, Scope::of(event), &mut out)?;
                out.push(b']');
                layout = Some(Box::new(BodyLayout::items(1..out.len() - 1, out.len())));
                Body::JsonArray(into_text(out))
            }
            BodyFormat::Ndjson => {
                self.object(fields, None, Scope::of(event), &mut out)?;
                let line = 0..out.len();
                out.push(b'\n');
                layout = Some(Box::new(BodyLayout::items(line, out.len())));
                Body::Ndjson(into_text(out))
            }
            BodyFormat::Form if static_members(fields) => {
                // The fields are read from where the writer recorded them: no parse needed.
                let names = match step.batch.as_deref() {
                    Some(rule) if matches!(rule.merge, Merge::Concat(_)) => rule.arrays(),
                    _ => &[],
                };
                let recorded = self.body_with_layout(fields, names, &mut out)?;
                let text = into_text(out);
                match recorded {
                    Some(recorded) => {
                        let (form, items) = form_of_layout(&text, &recorded, names);
                        layout = (!names.is_empty()).then_some(items);
                        Body::Form(form)
                    }
                    None => Body::Form(form_fields(&text)),
                }
            }
            BodyFormat::Form => {
                self.object(fields, None, Scope::of(event), &mut out)?;
                Body::Form(form_fields(&into_text(out)))
            }
        };
        let size = body.byte_len();
        let limit = connection.mapping.max_body_bytes();
        if size as u64 > limit {
            return Err(Stop::Failed(
                FailureKind::TooLarge,
                format!(
                    "the body is {size} bytes, over the mapping's limit of {limit} (`http.max_body_bytes`)"
                ),
            ));
        }
        Ok((body, layout))
    }

    /// The full URL: the base URL, the path (rendered once per connection when it reads no
    /// event value), the query and the auth's query parameter.
    fn url(&mut self, step: &'a CompiledStep) -> Step<String> {
        let connection = self.connection;
        let event = self.event;
        let request = &step.request;
        let slot = &connection.slots[step.slot];
        let mut url = match &slot.url {
            Ok(Some(url)) => url.to_string(),
            Ok(None) => {
                let path = self.render(&request.path, event).map_err(|e| match e {
                    RenderError::Undefined(name) => Stop::Failed(
                        FailureKind::Missing,
                        match connection.missing_in(&request.path, event) {
                            Some(what) => format!("the request path needs {what}"),
                            None => format!(
                                "the request path needs `{}`, which is missing",
                                name.unwrap_or_else(|| "a value".to_owned())
                            ),
                        },
                    ),
                    RenderError::Failed(why) => Stop::Failed(
                        FailureKind::Template,
                        format!("the request path cannot be rendered: {why}"),
                    ),
                })?;
                format!("{}{path}", connection.base_url)
            }
            Err(why) => return Err(Stop::Failed(FailureKind::Setting, why.clone())),
        };
        let mut pairs = if request.query.is_empty() {
            Vec::new()
        } else {
            self.flat_fields(&request.query)?
        };
        if let Some((name, value)) = &slot.query_auth {
            pairs.push((name.to_string(), value.to_string()));
        }
        if !pairs.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish(),
            );
        }
        Ok(url)
    }

    /// Writes a body whose requests merge by concatenating arrays, recording where its members
    /// and the items of those arrays are (`None` when an item could not be recorded: the
    /// batcher then reads the body itself).
    fn body_with_layout(
        &mut self,
        body: &'a Object,
        names: &[Box<str>],
        out: &mut Vec<u8>,
    ) -> Step<Option<Box<BodyLayout>>> {
        let event = self.event;
        let mut layout = BodyLayout {
            arrays: vec![Vec::new(); names.len()],
            array_values: vec![0..0; names.len()],
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
                layout.array_values[a] = value;
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

    /// Query parameters: name and text of every present value.
    pub(super) fn flat_fields(&mut self, fields: &'a [Field]) -> Step<Vec<(String, String)>> {
        let event = self.event;
        let mut pairs = Vec::with_capacity(fields.len());
        for field in fields {
            if let Some(value) = self.value(field, Scope::of(event))? {
                pairs.push((field.key.to_string(), text_of(&value)));
            }
        }
        Ok(pairs)
    }
}

fn into_text(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("the writer writes UTF-8")
}

/// The form fields of an object the engine wrote, from where it recorded its members (`names`
/// being the merged arrays), and where the items of those arrays are in their fields' values.
fn form_of_layout(
    object: &str,
    recorded: &BodyLayout,
    names: &[Box<str>],
) -> (Vec<(String, String)>, Box<BodyLayout>) {
    let mut fields = Vec::with_capacity(recorded.slots.len());
    // Only the items and the values' total length are read from it (`form_parts`).
    let mut items = BodyLayout {
        arrays: vec![Vec::new(); names.len()],
        ..BodyLayout::default()
    };
    for slot in &recorded.slots {
        let (name, value) = match *slot {
            Slot::Envelope(i) => {
                let (name, range) = &recorded.envelope[i];
                (&**name, form_text(&object[range.clone()]))
            }
            Slot::Array(a) => {
                let value = &recorded.array_values[a];
                items.arrays[a] = recorded.arrays[a]
                    .iter()
                    .map(|item| item.start - value.start..item.end - value.start)
                    .collect();
                (&*names[a], object[value.clone()].to_owned())
            }
        };
        items.len += value.len();
        fields.push((name.to_owned(), value));
    }
    (fields, Box::new(items))
}

/// The members of a JSON object written by the engine, as form fields: text as it is, anything
/// else as its compact JSON text (`null` as nothing).
fn form_fields(object: &str) -> Vec<(String, String)> {
    crate::batch::members(object)
        .expect("the engine writes objects serde_json reads")
        .into_iter()
        .map(|(name, raw)| (name.into_owned(), form_text(raw.get())))
        .collect()
}

/// A form field's text for a member's JSON: text decoded, `null` as nothing, a list or an
/// object as the JSON the engine wrote.
fn form_text(json: &str) -> String {
    match json.as_bytes()[0] {
        b'"' => {
            serde_json::from_str::<String>(json).expect("the engine writes text serde_json reads")
        }
        b'n' => String::new(),
        _ => json.to_owned(),
    }
}

/// Whether the writer can record a body's layout for `rule`: its arrays are concatenated, and
/// every top-level member has a name known when the mapping compiled.
fn recordable(body: &Object, rule: &BatchRule) -> bool {
    matches!(rule.merge, Merge::Concat(_)) && static_members(body)
}

/// Whether every top-level member of `body` has a name known when the mapping compiled.
fn static_members(body: &Object) -> bool {
    !body.dynamic
        && body
            .fields
            .iter()
            .all(|f| !f.spread && f.computed_key.is_none())
}
