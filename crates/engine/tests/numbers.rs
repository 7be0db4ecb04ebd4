//! Numbers reach the destination exactly as the sender wrote them whenever a mapping copies
//! them: integers beyond 64 bits, decimals with more digits than an `f64` holds, exponents.

use std::sync::Arc;

use ferry_engine::{Body, Connection, NoState, Outcome};
use serde_json::Value;

const MAPPING: &str = r#"version: 1
name: numbers
source: segment
settings:
  shop: { type: integer, default: 42, description: a number a template reads }
http:
  base_url: https://api.example.com
actions:
  track:
    when: { type: track }
    request:
      method: POST
      path: "/shops/{{ settings.shop }}/users/{{ event.userId }}"
      body:
        value: { from: $.properties.cart_value }
        all: { rest_of: $.properties }
"#;

fn plan(event: &str) -> (String, String) {
    let mapping = ferry_engine::load_str("numbers.yaml", MAPPING).unwrap_or_else(|d| panic!("{d}"));
    let connection = Connection::new(Arc::new(mapping), &serde_json::Map::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let event: Value = serde_json::from_str(event).expect("the event is JSON");
    let plan = connection.plan(&event, &NoState);
    match plan.outcomes.as_slice() {
        [Outcome::Request(request)] => match &request.body {
            Some(Body::Json(text)) => (request.url.clone(), text.clone()),
            other => panic!("expected a JSON body, got {other:?}"),
        },
        other => panic!("expected one request, got {other:?}"),
    }
}

#[test]
fn copied_numbers_keep_every_digit() {
    let (_, body) = plan(
        r#"{"type":"track","event":"Order","userId":"u1","properties":{
            "cart_value":123456789012345678901234567890,
            "price":0.1000000000000000055511151231257827,
            "huge":1e400,
            "small":-12.50}}"#,
    );
    assert!(
        body.contains(r#""value":123456789012345678901234567890"#),
        "{body}"
    );
    // (`cart_value` is read by `value`, so the bucket leaves it out.)
    for written in [
        r#""price":0.1000000000000000055511151231257827"#,
        r#""small":-12.50"#,
        // serde_json writes an exponent with its sign.
        r#""huge":1e+400"#,
    ] {
        assert!(body.contains(written), "`{written}` not in {body}");
    }
}

#[test]
fn templates_read_numbers_as_numbers() {
    let (url, _) =
        plan(r#"{"type":"track","event":"Order","userId":1234567890123,"properties":{}}"#);
    assert_eq!(url, "https://api.example.com/shops/42/users/1234567890123");
}
