//! Reading events: one JSON object, a JSON array of them, or newline-delimited JSON, streamed so
//! that a large file is never held in memory in line mode.

use std::io::{self, BufRead};

use serde_json::Value;

/// Where an event was in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based number of the event in the input.
    pub index: usize,
    /// 1-based line, where the input has one event per line.
    pub line: Option<usize>,
}

/// One event read, or why it could not be.
pub type Item = (Position, Result<Value, BadEvent>);

/// Input that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEvent {
    /// Why, with the column (and line) of the problem.
    pub reason: String,
    /// The text as read, where it is known (one line of NDJSON), so that nothing is lost.
    pub text: String,
}

impl BadEvent {
    fn new(reason: String, text: &str) -> BadEvent {
        BadEvent {
            reason,
            text: text.trim_end().to_owned(),
        }
    }
}

/// Calls `each` for every event of `input`, in order.
pub fn read_events(
    mut input: impl BufRead,
    mut each: impl FnMut(Item) -> io::Result<()>,
) -> io::Result<()> {
    let first = loop {
        let buffer = input.fill_buf()?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => break Some(buffer[at]),
            None if buffer.is_empty() => break None,
            None => {
                let len = buffer.len();
                input.consume(len);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => read_array(input, each),
        Some(_) => {
            let mut line = String::new();
            let mut number = 0;
            let mut index = 0;
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                number += 1;
                if line.trim().is_empty() {
                    continue;
                }
                index += 1;
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => each((
                        Position {
                            index,
                            line: Some(number),
                        },
                        Ok(value),
                    ))?,
                    // A pretty-printed document spans lines: read it as a whole.
                    Err(error) if error.is_eof() && index == 1 => {
                        let mut rest = line.clone();
                        input.read_to_string(&mut rest)?;
                        return read_documents(&rest, each);
                    }
                    Err(error) => each((
                        Position {
                            index,
                            line: Some(number),
                        },
                        Err(BadEvent::new(
                            format!(
                                "invalid JSON at column {}: {}",
                                error.column(),
                                strip(&error)
                            ),
                            &line,
                        )),
                    ))?,
                }
            }
        }
    }
}

fn read_array(
    mut input: impl BufRead,
    mut each: impl FnMut(Item) -> io::Result<()>,
) -> io::Result<()> {
    let mut text = String::new();
    input.read_to_string(&mut text)?;
    match serde_json::from_str::<Vec<Value>>(&text) {
        Ok(events) => {
            for (i, event) in events.into_iter().enumerate() {
                each((
                    Position {
                        index: i + 1,
                        line: None,
                    },
                    Ok(event),
                ))?;
            }
            Ok(())
        }
        Err(error) => each((
            Position {
                index: 1,
                line: Some(error.line()),
            },
            Err(BadEvent::new(
                format!(
                    "invalid JSON array at line {} column {}: {}",
                    error.line(),
                    error.column(),
                    strip(&error)
                ),
                "",
            )),
        )),
    }
}

fn read_documents(text: &str, mut each: impl FnMut(Item) -> io::Result<()>) -> io::Result<()> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut index = 0;
    loop {
        let line = line_of(text, stream.byte_offset());
        match stream.next() {
            None => return Ok(()),
            Some(Ok(value)) => {
                index += 1;
                each((
                    Position {
                        index,
                        line: Some(line),
                    },
                    Ok(value),
                ))?;
            }
            Some(Err(error)) => {
                index += 1;
                return each((
                    Position {
                        index,
                        line: Some(error.line()),
                    },
                    Err(BadEvent::new(
                        format!(
                            "invalid JSON at line {} column {}: {}",
                            error.line(),
                            error.column(),
                            strip(&error)
                        ),
                        text.get(stream.byte_offset()..).unwrap_or_default(),
                    )),
                ));
            }
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let skipped = text[offset..].len() - text[offset..].trim_start().len();
    text[..offset + skipped].matches('\n').count() + 1
}

/// serde_json's message without its " at line L column C" suffix.
fn strip(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(usize, Option<usize>, Result<Value, String>)> {
        let mut items = Vec::new();
        read_events(text.as_bytes(), |(p, v)| {
            items.push((p.index, p.line, v.map_err(|bad| bad.reason)));
            Ok(())
        })
        .unwrap();
        items
    }

    #[test]
    fn reads_ndjson_with_line_numbers_and_keeps_going_after_a_bad_line() {
        let items = read("{\"a\":1}\n\n{bad\n{\"a\":2}\n");
        assert_eq!(items.len(), 3);
        assert_eq!((items[1].0, items[1].1), (2, Some(3)));
        assert!(items[1].2.as_ref().unwrap_err().contains("invalid JSON"));
        let mut texts = Vec::new();
        read_events("{\"a\":1}\n{bad\n".as_bytes(), |(_, v)| {
            texts.extend(v.err().map(|bad| bad.text));
            Ok(())
        })
        .unwrap();
        assert_eq!(texts, ["{bad"]);
        assert_eq!(items[2].2.as_ref().unwrap()["a"], 2);
    }

    #[test]
    fn reads_arrays_and_pretty_printed_objects() {
        assert_eq!(read("  [{\"a\":1},{\"a\":2}]").len(), 2);
        let pretty = read("{\n  \"a\": 1\n}\n{\n  \"a\": 2\n}\n");
        assert_eq!(pretty.len(), 2);
        assert_eq!(pretty[1].1, Some(4));
    }
}
