//! Wire formats and credentials: JSON arrays, NDJSON, forms holding JSON, no body, and how each
//! batches; headers as one list in which a request's own replace the mapping's and the auth's;
//! auth per request; and dry runs that show which credential a connection chose.

mod support;

use ferry_engine::{Batcher, Body, Outcome};
use serde_json::{Value, json};
use support::{HEAD, connect, headers, json as body_json, plan, rejected, request, text};

const TRACK: &str = r#"{"type": "track", "event": "Signed Up", "userId": "u1", "properties": {"plan": "pro", "seats": 3}}"#;

fn track() -> Value {
    serde_json::from_str(TRACK).expect("JSON")
}

/// A mapping with settings `settings` and one action `track` whose request is `request`
/// (YAML, indented by 6) and whose other keys are `extra` (indented by 4).
fn mapping(settings: &str, auth: &str, request: &str, extra: &str) -> String {
    format!(
        "{HEAD}{auth}settings:\n  key: {{ type: string, secret: true, default: key-0001, description: k }}\n  token: {{ type: string, default: tok-0002, secret: true, description: t }}\n  user: {{ type: string, default: svc-user, description: u }}\n{settings}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n{request}{extra}"
    )
}

#[test]
fn a_json_array_body_holds_the_object_and_batches_merge_its_items() {
    let text_yaml = mapping(
        "",
        "",
        "      format: json_array\n      body:\n        event: { from: $.event }\n        properties: { rest_of: $.properties, omit_empty: true }\n",
        "    batch: { max_items: 2 }\n",
    );
    let connection = connect(&text_yaml, &json!({}));
    let planned = plan(&connection, &track());
    let one = request(&planned);
    assert!(matches!(one.body, Some(Body::JsonArray(_))));
    assert_eq!(
        text(one),
        r#"[{"event":"Signed Up","properties":{"plan":"pro","seats":3}}]"#
    );
    assert_eq!(headers(one, "content-type"), ["application/json"]);
    let mut batcher = Batcher::new();
    let mut closed = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let event = json!({"type": "track", "event": name});
        let Outcome::Request(planned) = plan(&connection, &event).outcomes.remove(0) else {
            panic!("a request");
        };
        closed.extend(batcher.push(i, planned).expect("batchable"));
    }
    closed.extend(batcher.flush());
    let bodies: Vec<String> = closed.iter().map(|m| text(&m.request)).collect();
    assert_eq!(
        bodies,
        [
            r#"[{"event":"a"},{"event":"b"}]"#.to_owned(),
            r#"[{"event":"c"}]"#.to_owned()
        ]
    );
    assert_eq!(
        text(&closed[0].item_request(1).unwrap()),
        r#"[{"event":"b"}]"#
    );
}

#[test]
fn an_ndjson_body_is_one_line_and_batches_are_lines() {
    let text_yaml = mapping(
        "",
        "",
        "      format: ndjson\n      body:\n        event: { from: $.event }\n",
        "    batch: { max_items: 10 }\n",
    );
    let connection = connect(&text_yaml, &json!({}));
    let planned = plan(&connection, &track());
    assert_eq!(text(request(&planned)), "{\"event\":\"Signed Up\"}\n");
    assert_eq!(
        headers(request(&planned), "content-type"),
        ["application/x-ndjson"]
    );
    let mut batcher = Batcher::new();
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let Outcome::Request(planned) = plan(&connection, &json!({"type": "track", "event": name}))
            .outcomes
            .remove(0)
        else {
            panic!("a request");
        };
        assert!(batcher.push(i, planned).expect("batchable").is_empty());
    }
    let merged = batcher.flush();
    assert_eq!(
        text(&merged[0].request),
        "{\"event\":\"a\"}\n{\"event\":\"b\"}\n"
    );
}

#[test]
fn form_fields_hold_lists_and_objects_as_json_text_and_batches_concatenate_them() {
    let text_yaml = mapping(
        "",
        "",
        "      format: form\n      body:\n        api_key: { setting: user }\n        data:\n          items:\n            - fields: { event: { from: $.event }, properties: { rest_of: $.properties } }\n        seats: { from: $.properties.seats }\n",
        "    batch: { concat: [data], max_items: 10 }\n",
    );
    let connection = connect(&text_yaml, &json!({}));
    let planned = plan(&connection, &track());
    let one = request(&planned);
    assert_eq!(
        text(one),
        "api_key=svc-user&data=%5B%7B%22event%22%3A%22Signed+Up%22%2C%22properties%22%3A%7B%22plan%22%3A%22pro%22%7D%7D%5D&seats=3"
    );
    assert_eq!(
        headers(one, "content-type"),
        ["application/x-www-form-urlencoded"]
    );
    // The writer records where the items are; a body with a member named per event is read
    // instead. Both merge the same.
    let spread = connect(
        &text_yaml.replace(
            "        seats:",
            "        more: { fields: { n: { value: 1 } }, spread: true }\n        seats:",
        ),
        &json!({}),
    );
    for (connection, extra) in [(&connection, ""), (&spread, "n")] {
        let mut batcher = Batcher::new();
        for (i, name) in ["a", "b\",]\u{e9}"].into_iter().enumerate() {
            let event = json!({"type": "track", "event": name, "properties": {"seats": 1}});
            let Outcome::Request(planned) = plan(connection, &event).outcomes.remove(0) else {
                panic!("a request");
            };
            assert!(batcher.push(i, planned).expect("batchable").is_empty());
        }
        let merged = batcher.flush();
        let Some(Body::Form(fields)) = &merged[0].request.body else {
            panic!("a form");
        };
        let mut expected = vec![
            ("api_key".to_owned(), "svc-user".to_owned()),
            (
                "data".to_owned(),
                "[{\"event\":\"a\",\"properties\":{}},{\"event\":\"b\\\",]\u{e9}\",\"properties\":{}}]"
                    .to_owned(),
            ),
        ];
        if !extra.is_empty() {
            expected.push((extra.to_owned(), "1".to_owned()));
        }
        expected.push(("seats".to_owned(), "1".to_owned()));
        assert_eq!(fields, &expected);
    }
}

#[test]
fn a_request_without_a_body_sends_no_content_type() {
    let connection = connect(&mapping("", "", "", ""), &json!({}));
    let planned = plan(&connection, &track());
    assert!(request(&planned).body.is_none());
    assert!(headers(request(&planned), "content-type").is_empty());
    let problems = rejected(&mapping("", "", "      format: ndjson\n", ""));
    assert!(
        problems.contains(
            "`format: ndjson` says how the body is written, and this request has no body"
        ),
        "{problems}"
    );
}

#[test]
fn a_request_header_replaces_the_same_header_of_the_mapping_and_of_the_auth() {
    let auth = "  auth: { header: { name: X-Api-Key, value: \"{{ settings.key }}\" } }\n  headers: { Accept: application/json, User-Agent: ferry }\n";
    let own = "      headers:\n        content-type: application/vnd.api+json\n        x-api-key: \"{{ event.userId }}\"\n        ACCEPT: text/plain\n      body:\n        id: { from: $.userId }\n";
    let connection = connect(&mapping("", auth, own, ""), &json!({}));
    let planned = plan(&connection, &track());
    let sent = request(&planned);
    let names: Vec<(&str, &str)> = sent.headers.iter().map(|h| (&*h.name, &*h.value)).collect();
    assert_eq!(
        names,
        [
            ("User-Agent", "ferry"),
            ("content-type", "application/vnd.api+json"),
            ("x-api-key", "u1"),
            ("ACCEPT", "text/plain"),
        ]
    );
}

#[test]
fn two_headers_of_one_name_are_refused_when_the_mapping_loads() {
    let twice = "  auth: { bearer: \"{{ settings.key }}\" }\n  headers: { authorization: \"Token {{ settings.key }}\" }\n";
    let problems = rejected(&mapping("", twice, "", ""));
    assert!(
        problems.contains("`http.auth` sets the `Authorization` header already: two would be sent"),
        "{problems}"
    );
    let cased = "  headers: { X-Trace: a, x-trace: b }\n";
    let problems = rejected(&mapping("", cased, "", ""));
    assert!(
        problems.contains("`x-trace` is the header `X-Trace` again"),
        "{problems}"
    );
    let own = "      headers: { X-Id: a, x-id: b }\n";
    let problems = rejected(&mapping("", "", own, ""));
    assert!(
        problems.contains("`x-id` is the header `X-Id` again"),
        "{problems}"
    );
}

#[test]
fn a_request_authenticates_its_own_way() {
    let auth = "  auth: { bearer: \"{{ settings.token }}\" }\n";
    let actions = format!(
        "{}  engage:\n    when: {{ type: identify }}\n    request:\n      method: POST\n      path: /engage\n      auth: {{ query: {{ name: token, value: \"{{{{ settings.token }}}}\" }} }}\n  import:\n    when: {{ type: identify }}\n    request:\n      method: POST\n      path: /import\n      auth: {{ basic: {{ username: \"{{{{ settings.user }}}}\", password: \"{{{{ settings.key }}}}\" }} }}\n",
        ""
    );
    let text_yaml = format!("{}{actions}", mapping("", auth, "", ""));
    let connection = connect(&text_yaml, &json!({}));
    let tracked = plan(&connection, &track());
    assert_eq!(
        headers(request(&tracked), "authorization"),
        ["Bearer tok-0002"]
    );
    let identified = plan(&connection, &json!({"type": "identify", "userId": "u1"}));
    let [engage, import] = support::requests(&identified)[..] else {
        panic!("two requests");
    };
    assert_eq!(engage.url, "https://api.example.com/engage?token=tok-0002");
    assert!(headers(engage, "authorization").is_empty());
    assert_eq!(
        headers(import, "authorization"),
        ["Basic c3ZjLXVzZXI6a2V5LTAwMDE="]
    );
    // Shown, only the secret settings' values are hidden: which credential was chosen is not.
    let shown = import.headers[0].display_value();
    assert_eq!(shown, "Basic c3ZjLXVzZXI6W3JlZGFjdGVkXQ==");
    assert_eq!(
        base64_decode(shown.trim_start_matches("Basic ")),
        "svc-user:[redacted]"
    );
    assert_eq!(
        connection.redact(&engage.url),
        "https://api.example.com/engage?token=[redacted]"
    );
}

#[test]
fn an_optional_setting_a_request_needs_fails_only_that_request() {
    let settings = "  project: { type: string, description: p }\n";
    let actions = "  import:\n    when: { type: track }\n    request:\n      method: POST\n      path: \"/import/{{ settings.project }}\"\n";
    let text_yaml = format!("{}{actions}", mapping(settings, "", "", ""));
    let connection = connect(&text_yaml, &json!({}));
    let planned = plan(&connection, &track());
    assert!(matches!(planned.outcomes[0], Outcome::Request(_)));
    match &planned.outcomes[1] {
        Outcome::Failed(failure) => assert!(
            failure
                .message
                .contains("setting `project`, which is not set"),
            "{failure:?}"
        ),
        other => panic!("the import fails: {other:?}"),
    }
    let set = connect(&text_yaml, &json!({"project": "p1"}));
    let planned = plan(&set, &track());
    assert_eq!(
        support::requests(&planned)[1].url,
        "https://api.example.com/import/p1"
    );
}

#[test]
fn a_json_body_written_by_a_request_is_its_object() {
    let connection = connect(
        &mapping("", "", "      body:\n        id: { from: $.userId }\n", ""),
        &json!({}),
    );
    assert_eq!(
        body_json(request(&plan(&connection, &track()))),
        json!({"id": "u1"})
    );
}

fn base64_decode(text: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64"),
    )
    .expect("UTF-8")
}
