//! Planned requests as JSON lines, as `ferry map` prints them and the console's playground
//! shows them: one object a request, its JSON body embedded as written (in field order).

use std::io::{self, Write};

use ferry_engine::{Body, Connection, PlannedRequest};
use serde_json::json;

/// Writes planned requests of one mapping as JSON lines, secrets redacted unless asked.
pub struct RequestLines<'a> {
    /// The mapping's name, the first member of every line.
    pub mapping: &'a str,
    /// The connection that planned the requests: what to redact.
    pub connection: &'a Connection,
    /// Print secret settings instead of `[redacted]`.
    pub show_secrets: bool,
}

impl RequestLines<'_> {
    fn text(&self, text: &str) -> String {
        if self.show_secrets {
            text.to_owned()
        } else {
            self.connection.redact(text).into_owned()
        }
    }

    /// One planned request as a JSON line. `events` are the 1-based positions of the events it
    /// carries (several when merged); `answered` is the status of the canned response that
    /// answered it.
    pub fn write(
        &self,
        out: &mut impl Write,
        events: &[usize],
        request: &PlannedRequest,
        answered: Option<u16>,
    ) -> io::Result<()> {
        out.write_all(b"{\"mapping\":")?;
        serde_json::to_writer(&mut *out, self.mapping)?;
        match events {
            [one] => write!(out, ",\"event\":{one}")?,
            many => {
                out.write_all(b",\"events\":")?;
                serde_json::to_writer(&mut *out, many)?;
            }
        }
        out.write_all(b",\"action\":")?;
        serde_json::to_writer(&mut *out, &*request.action)?;
        // A shared batch rule merges requests of several actions: name it too.
        if events.len() > 1
            && let Some(group) = request.batch.as_ref().and_then(|rule| rule.group())
        {
            out.write_all(b",\"batch\":")?;
            serde_json::to_writer(&mut *out, group)?;
        }
        if let Some(step) = &request.step {
            out.write_all(b",\"step\":")?;
            serde_json::to_writer(&mut *out, &**step)?;
        }
        write!(out, ",\"method\":\"{}\",\"url\":", request.method.as_str())?;
        serde_json::to_writer(&mut *out, &self.text(&request.url))?;
        out.write_all(b",\"headers\":{")?;
        for (i, header) in request.headers.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &*header.name)?;
            out.write_all(b":")?;
            let value = if self.show_secrets {
                header.value.to_string()
            } else {
                self.text(header.display_value())
            };
            serde_json::to_writer(&mut *out, &value)?;
        }
        out.write_all(b"},\"body\":")?;
        match &request.body {
            Some(Body::Json(text) | Body::JsonArray(text)) => {
                out.write_all(self.text(text).as_bytes())?;
            }
            Some(Body::Ndjson(text)) => serde_json::to_writer(&mut *out, &self.text(text))?,
            Some(Body::Form(fields)) => {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(self.text(v))))
                    .collect();
                serde_json::to_writer(&mut *out, &map)?;
            }
            None => out.write_all(b"null")?,
        }
        if let Some(key) = &request.dedupe_key {
            out.write_all(b",\"dedupe_key\":")?;
            serde_json::to_writer(&mut *out, &self.text(key))?;
        }
        match (answered, &request.continuation) {
            (Some(status), _) => write!(out, ",\"answered\":{status}")?,
            (None, Some(_)) => out.write_all(b",\"awaits_response\":true")?,
            (None, None) => {}
        }
        out.write_all(b"}\n")
    }
}
