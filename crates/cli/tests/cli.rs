//! The `ferry` binary, run as a user runs it, from the workspace root.

mod common;

use std::path::Path;

use common::ferry;

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}` is not JSON: {e}")))
        .collect()
}

const IDENTIFY: &str = r#"{"type":"identify","userId":"u1","timestamp":"2026-11-02T09:15:00Z","traits":{"email":"a@example.com","plan":"pro"}}"#;

#[test]
fn map_prints_one_json_line_per_request_with_secrets_redacted() {
    let out = ferry(
        &[
            "map",
            "--mapping",
            "extole",
            "--set",
            "api_key=sk_live_SECRET",
        ],
        Some(IDENTIFY),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = lines(&out.stdout);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["mapping"], "extole");
    assert_eq!(request["action"], "identify");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://api.extole.io/v6/events");
    assert_eq!(request["headers"]["Authorization"], "Bearer [redacted]");
    assert_eq!(request["body"]["data"]["plan"], "pro");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("sk_live_SECRET"), "the secret leaked: {all}");
}

#[test]
fn show_secrets_prints_them() {
    let out = ferry(
        &[
            "map",
            "-m",
            "extole",
            "--set",
            "api_key=sk_live_SECRET",
            "--show-secrets",
            "-",
        ],
        Some(IDENTIFY),
    );
    assert_eq!(
        lines(&out.stdout)[0]["headers"]["Authorization"],
        "Bearer sk_live_SECRET"
    );
}

#[test]
fn a_bad_event_is_reported_with_its_position_and_the_rest_still_go_through() {
    let input = format!(
        "{IDENTIFY}\n{{not json\n{{\"type\":\"identify\",\"timestamp\":\"2026-11-02T09:15:00Z\"}}\n{IDENTIFY}\n"
    );
    let out = ferry(
        &["map", "--mapping", "extole", "--set", "api_key=k"],
        Some(&input),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed event makes the exit status non-zero"
    );
    assert_eq!(
        lines(&out.stdout).len(),
        2,
        "the two good events are still mapped"
    );
    let errors = lines(&out.stderr);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["event"], 2);
    assert_eq!(errors[0]["line"], 2);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    assert_eq!(errors[1]["event"], 3);
    assert_eq!(errors[1]["action"], "identify");
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .contains("`data.partner_user_id` is required")
    );
}

#[test]
fn map_reads_a_json_array_file_and_remembers_across_events() {
    let dir = std::env::temp_dir().join(format!("ferry-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.json");
    std::fs::write(
        &file,
        r#"[{"type":"identify","userId":"7","traits":{"email":"seven@example.com"}},
            {"type":"track","userId":"7","event":"Friend Invited"}]"#,
    )
    .unwrap();
    let out = ferry(
        &[
            "map",
            "-m",
            "promoter",
            "--set",
            "api_key=k",
            "--set",
            "campaign_id=12",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = lines(&out.stdout);
    assert_eq!(requests[1]["action"], "survey");
    assert_eq!(requests[1]["body"]["email"], "seven@example.com");
    assert_eq!(requests[1]["body"]["campaign"], 12);
    assert_eq!(requests[1]["headers"]["Authorization"], "Token [redacted]");
}

#[test]
fn missing_required_settings_are_named() {
    let out = ferry(&["map", "--mapping", "promoter"], Some(IDENTIFY));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing required setting `api_key`"), "{err}");
    assert!(
        err.contains("missing required setting `campaign_id`"),
        "{err}"
    );
}

#[test]
fn unknown_settings_get_a_suggestion() {
    let out = ferry(
        &["map", "--mapping", "extole", "--set", "api_kye=k"],
        Some(IDENTIFY),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown setting `api_kye`; did you mean `api_key`?"),
        "{err}"
    );
}

#[test]
fn trace_explains_selection_and_field_sources() {
    let out = ferry(
        &["map", "-m", "extole", "--set", "api_key=k", "--trace"],
        Some(IDENTIFY),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("action `track`: not selected: type is `identify`, not `track`"),
        "{err}"
    );
    assert!(err.contains("data.email <- `$.traits.email`"), "{err}");
    assert!(err.contains("data.first_name: omitted"), "{err}");
    assert!(err.contains("data <- rest of $.traits: plan"), "{err}");
}

#[test]
fn validate_accepts_the_bundled_mappings_and_rejects_a_bad_one_with_its_location() {
    let out = ferry(&["validate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = std::env::temp_dir().join(format!("ferry-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings/extole.yaml"),
    )
    .unwrap()
    .replace(
        "email: { from: [$.traits.email",
        "email: { fromm: [$.traits.email",
    );
    std::fs::write(&bad, text).unwrap();
    let out = ferry(&["validate", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `fromm`"), "{err}");
    assert!(err.contains("bad.yaml:"), "{err}");
    assert!(err.contains("did you mean `from`?"), "{err}");
}

#[test]
fn test_runs_the_golden_cases() {
    let out = ferry(&["test"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}

#[test]
fn schema_prints_the_committed_schema() {
    let out = ferry(&["schema"], None);
    let committed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mapping.schema.json"),
    )
    .unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn settings_come_from_a_file_and_set_wins_over_it() {
    let dir = std::env::temp_dir().join(format!("ferry-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("extole.settings.yaml");
    std::fs::write(
        &file,
        "api_key: from-file-key\nevent_names:\n  Signed Up: registration\n",
    )
    .unwrap();
    let event =
        r#"{"type":"track","userId":"u1","event":"Signed Up","timestamp":"2026-11-02T09:16:10Z"}"#;
    let out = ferry(
        &[
            "map",
            "-m",
            "extole",
            "--settings",
            file.to_str().unwrap(),
            "--set",
            "api_key=from-flag-key",
            "--show-secrets",
        ],
        Some(event),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let request = &lines(&out.stdout)[0];
    assert_eq!(request["body"]["event_name"], "registration");
    assert_eq!(request["headers"]["Authorization"], "Bearer from-flag-key");
}

const BRAZE: &[&str] = &[
    "--mapping",
    "braze",
    "--set",
    "instance_url=https://rest.iad-01.braze.com",
    "--set",
    "rest_api_key=braze-SECRET-key",
];

fn braze_events(count: usize) -> String {
    (1..=count)
        .map(|i| {
            format!(
                r#"{{"event_name":"Shared","event_time":"2026-11-20T10:00:00Z","external_id":"user-{i}"}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn map_batch_merges_151_braze_events_into_3_requests_of_at_most_75() {
    let mut args = vec!["map", "--batch"];
    args.extend_from_slice(BRAZE);
    let out = ferry(&args, Some(&braze_events(151)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = lines(&out.stdout);
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| r["body"]["events"].as_array().expect("events array").len())
        .collect();
    assert_eq!(sizes, [75, 75, 1]);
    assert_eq!(requests[2]["event"], 151);
    assert_eq!(requests[0]["events"].as_array().map(Vec::len), Some(75));
    assert_eq!(
        requests[0]["body"]["attributes"][74]["external_id"],
        "user-75"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SECRET"));
}

#[test]
fn map_without_responses_marks_the_step_that_waits_and_with_them_plans_the_branch() {
    let event = r#"{"event_name":"Subscribed","event_time":"2026-11-20T10:00:00Z","email":"new@example.com"}"#;
    let mut args = vec!["map"];
    args.extend_from_slice(BRAZE);
    let out = ferry(&args, Some(event));
    let requests = lines(&out.stdout);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["step"], "lookup");
    assert_eq!(requests[0]["awaits_response"], true);

    let responses =
        std::env::temp_dir().join(format!("ferry-responses-{}.yaml", std::process::id()));
    std::fs::write(
        &responses,
        "lookup: { status: 200, body: { message: success, users: [{ braze_id: b-1 }] } }\n",
    )
    .expect("temp file");
    let path = responses.display().to_string();
    args.extend_from_slice(&["--responses", &path]);
    let out = ferry(&args, Some(event));
    std::fs::remove_file(&responses).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = lines(&out.stdout);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["answered"], 200);
    assert_eq!(requests[1]["step"], "update_known_user");
    assert_eq!(requests[1]["body"]["events"][0]["braze_id"], "b-1");
    assert!(requests[1].get("awaits_response").is_none());
}

/// A mapping that writes the time it maps an event, and its golden case with `now:`.
const STAMPED: &str = r#"version: 1
name: stamped
source: segment
http:
  base_url: https://api.example.com
actions:
  track:
    when: { type: track }
    request:
      method: POST
      path: /events
      format: ndjson
      body:
        sent_at: { now: true }
        expires: { now: true, format_time: "%Y-%m-%d" }
"#;

#[test]
fn a_pinned_clock_makes_map_and_golden_cases_repeat() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mapping = dir.path().join("stamped.yaml");
    std::fs::write(&mapping, STAMPED).expect("written");
    let path = mapping.to_str().expect("UTF-8");
    let out = ferry(
        &["map", "-m", path, "--now", "2026-11-02T10:00:00+01:00"],
        Some(r#"{"type":"track"}"#),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = lines(&out.stdout);
    assert_eq!(
        requests[0]["body"],
        "{\"sent_at\":\"2026-11-02T09:00:00.000Z\",\"expires\":\"2026-11-02\"}\n"
    );
    assert_eq!(
        requests[0]["headers"]["Content-Type"],
        "application/x-ndjson"
    );
    let bad = ferry(&["map", "-m", path, "--now", "tomorrow"], Some("{}"));
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`--now tomorrow` is not an ISO-8601 time")
    );
    let cases = dir.path().join("cases/stamped");
    std::fs::create_dir_all(&cases).expect("created");
    std::fs::write(
        cases.join("pinned.yaml"),
        "description: the clock is pinned\nnow: 2026-11-02T09:00:00Z\nevents:\n  - { type: track }\n",
    )
    .expect("written");
    for _ in 0..2 {
        let out = ferry(&["test", path, "--accept"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let snapshot = std::fs::read_to_string(cases.join("pinned.snap")).expect("accepted");
    assert!(
        snapshot.contains("{\"sent_at\":\"2026-11-02T09:00:00.000Z\",\"expires\":\"2026-11-02\"}"),
        "{snapshot}"
    );
    let checked = ferry(&["test", path], None);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
}
