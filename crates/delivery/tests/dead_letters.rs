//! Dead letters are appended one line each, survive a torn last line, and read back with
//! their line numbers; lines that are not records are reported by number.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::SystemTime;

use bytes::Bytes;
use ferry_delivery::{
    DeadLetter, DeadLetterReader, DeadLetterWriter, Method, Outgoing, ReadError, RecordedRequest,
    RecordedResponse, Response, timestamp,
};
use serde_json::json;

fn letter(n: u32) -> DeadLetter {
    let request = Outgoing::new(Method::POST, "https://api.example.com/v5/track?key=s3cret")
        .with_header("Authorization", "Bearer s3cret")
        .with_body(r#"{"user":"ada"}"#);
    // The caller redacts: the URL's key and the Authorization header.
    let mut recorded = RecordedRequest::unredacted(&request);
    recorded.url = "https://api.example.com/v5/track?key=[redacted]".into();
    recorded.headers[0].1 = "[redacted]".into();
    let response = Response {
        status: 503,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Bytes::from_static(b"try later"),
    };
    DeadLetter {
        at: timestamp(SystemTime::now()),
        mapping: "extole-signup".into(),
        connection: n.is_multiple_of(2).then(|| "extole-prod".into()),
        event: json!({"type": "track", "n": n}),
        reason: "503 Service Unavailable after 5 attempts".into(),
        last_request: Some(recorded),
        last_response: Some(RecordedResponse::from(&response)),
        attempts: 5,
    }
}

#[test]
fn dead_letters_are_one_json_line_each_and_read_back_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let writer = DeadLetterWriter::open(&path).unwrap();
    writer.append(&letter(1)).unwrap();
    writer.append(&letter(2)).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains("s3cret"), "{text}");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["mapping"], "extole-signup");
    assert_eq!(first["last_response"]["status"], 503);
    assert_eq!(first["last_response"]["body"], "try later");
    assert_eq!(first["last_request"]["method"], "POST");
    assert_eq!(first["last_request"]["body"], r#"{"user":"ada"}"#);

    let entries: Vec<_> = DeadLetterReader::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].line, entries[1].line), (1, 2));
    assert_eq!(entries[0].record, letter(1).with_at(&entries[0].record.at));
    assert_eq!(entries[1].record.connection.as_deref(), Some("extole-prod"));
}

#[test]
fn bad_lines_are_reported_by_number_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let writer = DeadLetterWriter::open(&path).unwrap();
    writer.append(&letter(1)).unwrap();
    {
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"not json\n\n{\"mapping\":\"no other fields\"}\n")
            .unwrap();
    }
    writer.append(&letter(2)).unwrap();

    let items: Vec<_> = DeadLetterReader::open(&path).unwrap().collect();

    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().line, 1);
    assert!(
        matches!(items[1], Err(ReadError::BadLine { line: 2, .. })),
        "{items:?}"
    );
    // Line 3 is blank and skipped.
    let Err(err @ ReadError::BadLine { line: 4, .. }) = &items[2] else {
        panic!("{items:?}");
    };
    assert!(
        err.to_string()
            .starts_with("line 4: not a dead-letter record"),
        "{err}"
    );
    assert_eq!(items[3].as_ref().unwrap().line, 5);
}

#[test]
fn a_torn_last_line_does_not_swallow_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    DeadLetterWriter::open(&path)
        .unwrap()
        .append(&letter(1))
        .unwrap();
    {
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"at":"2026-01-01T00:00:00.000Z","mapp"#)
            .unwrap();
    }

    let writer = DeadLetterWriter::open(&path).unwrap().fsync(true);
    writer.append(&letter(2)).unwrap();

    let items: Vec<_> = DeadLetterReader::open(&path).unwrap().collect();
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[0].is_ok());
    assert!(
        matches!(items[1], Err(ReadError::BadLine { line: 2, .. })),
        "{items:?}"
    );
    let last = items[2].as_ref().unwrap();
    assert_eq!(last.line, 3);
    assert_eq!(last.record.event["n"], 2);
}

trait WithAt {
    fn with_at(self, at: &str) -> Self;
}

impl WithAt for DeadLetter {
    fn with_at(mut self, at: &str) -> Self {
        at.clone_into(&mut self.at);
        self
    }
}

#[cfg(unix)]
#[test]
fn a_new_dead_letter_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let writer = DeadLetterWriter::open(&path).unwrap();
    writer.append(&letter(1)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
