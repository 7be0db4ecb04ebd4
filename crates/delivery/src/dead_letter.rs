//! Dead letters: requests that could not be delivered, kept as NDJSON (one JSON record per
//! line) so they can be inspected and replayed.
//!
//! **Redact before writing.** A record holds what it is given. The caller knows which headers,
//! query parameters and body fields of a destination carry secrets and must replace them
//! (e.g. with `"[redacted]"`) before building a [`RecordedRequest`]; this module writes what it
//! gets, verbatim.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::request::{Outgoing, Response};

/// One request that was not delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When it was given up on: RFC 3339, UTC (see [`timestamp`]).
    pub at: String,
    /// The mapping that produced the request.
    pub mapping: String,
    /// The connection (destination account) it was sent with, if named.
    #[serde(default)]
    pub connection: Option<String>,
    /// The source event.
    pub event: serde_json::Value,
    /// Why it was not delivered, e.g. `503 Service Unavailable after 5 attempts`.
    pub reason: String,
    /// The request as last sent, redacted by the caller.
    #[serde(default)]
    pub last_request: Option<RecordedRequest>,
    /// The last response received, if any.
    #[serde(default)]
    pub last_response: Option<RecordedResponse>,
    /// Attempts made.
    pub attempts: u32,
}

/// A request as written to a dead letter. Header pairs are kept in order, repeats included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body as text, invalid UTF-8 replaced.
    #[serde(default)]
    pub body: String,
}

/// A response as written to a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body as text, invalid UTF-8 replaced.
    #[serde(default)]
    pub body: String,
}

impl RecordedRequest {
    /// A verbatim copy of `request`, **secrets included**: redact the result (or the request
    /// before copying) before it is written.
    pub fn unredacted(request: &Outgoing) -> Self {
        Self {
            method: request.method.to_string(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
        }
    }
}

impl From<&Response> for RecordedResponse {
    fn from(response: &Response) -> Self {
        Self {
            status: response.status,
            headers: response.headers.clone(),
            body: response.body_text().into_owned(),
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds, e.g. `2026-03-01T12:00:00.123Z`.
pub fn timestamp(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Appends dead letters to an NDJSON file, one line per record, flushed to the operating
/// system as each is written; with [`fsync`](Self::fsync) also forced to disk.
///
/// Shareable between threads and tasks (`&self` appends; lines never interleave). Writes are
/// blocking file I/O, small and rare.
#[derive(Debug)]
pub struct DeadLetterWriter {
    file: Mutex<File>,
    fsync: bool,
}

impl DeadLetterWriter {
    /// Opens `path` for appending, creating it if needed, readable by its owner only (dead
    /// letters hold users' events). If the file ends in a partial line (a crash in the middle
    /// of a write), a newline is added so the next record starts on its own line; the partial
    /// one is then reported by the reader as a bad line.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        if file.metadata()?.len() > 0 {
            file.seek(SeekFrom::End(-1))?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Self {
            file: Mutex::new(file),
            fsync: false,
        })
    }

    /// Also forces each record to disk (`fsync`), surviving a power cut at the cost of speed.
    #[must_use]
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Appends one record as one line.
    pub fn append(&self, record: &DeadLetter) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line)?;
        file.flush()?;
        if self.fsync {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// A record read back, with the line it was on (counting from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub line: usize,
    pub record: DeadLetter,
}

/// A problem reading a dead-letter file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The line is not a dead-letter record; reading goes on with the next line.
    #[error("line {line}: not a dead-letter record: {message}")]
    BadLine {
        line: usize,
        message: String,
        /// The line as it is in the file, without its line ending, so that whoever rewrites the
        /// file can keep it.
        text: Vec<u8>,
    },
    /// The file could not be read; reading stops.
    #[error("line {line}: cannot read: {source}")]
    Io {
        line: usize,
        #[source]
        source: io::Error,
    },
}

/// Reads dead letters back: each item is a record with its line number, or the line number
/// of a line that is not a record. Blank lines are skipped.
#[derive(Debug)]
pub struct DeadLetterReader<R> {
    reader: R,
    line: usize,
    buffer: Vec<u8>,
    done: bool,
}

impl DeadLetterReader<BufReader<File>> {
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(BufReader::new(File::open(path)?)))
    }
}

impl<R: BufRead> DeadLetterReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        Self {
            reader,
            line: 0,
            buffer: Vec::new(),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for DeadLetterReader<R> {
    type Item = Result<Entry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buffer.clear();
            self.line += 1;
            let line = self.line;
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    if self.buffer.trim_ascii().is_empty() {
                        continue;
                    }
                    return Some(
                        serde_json::from_slice(&self.buffer)
                            .map(|record| Entry { line, record })
                            .map_err(|err| {
                                let text = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
                                let text = text.strip_suffix(b"\r").unwrap_or(text);
                                ReadError::BadLine {
                                    line,
                                    message: err.to_string(),
                                    text: text.to_vec(),
                                }
                            }),
                    );
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(ReadError::Io { line, source }));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(time), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn a_record_without_optional_parts_reads_back() {
        let line = r#"{"at":"2023-11-14T22:13:20.123Z","mapping":"m","event":{},"reason":"r","attempts":1}"#;
        let entries: Vec<_> = DeadLetterReader::new(line.as_bytes()).collect();
        let entry = entries[0].as_ref().unwrap();
        assert_eq!(entry.line, 1);
        assert_eq!(entry.record.connection, None);
        assert_eq!(entry.record.last_request, None);
    }

    #[test]
    fn a_bad_line_comes_back_as_it_is_in_the_file() {
        let text = b"not json\r\n\xff{\n{\"torn\"";
        let bad: Vec<Vec<u8>> = DeadLetterReader::new(&text[..])
            .map(|item| match item {
                Err(ReadError::BadLine { text, .. }) => text,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            bad,
            [&b"not json"[..], b"\xff{", br#"{"torn""#].map(<[u8]>::to_vec)
        );
    }
}
