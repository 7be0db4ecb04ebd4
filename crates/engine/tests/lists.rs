//! Values that may be one item or a list: `each` with `single_as_list` (a list of one) or
//! `keep_single` (the one item alone), computed values that are lists or objects, texts split
//! into lists, and the position of a `for_each` item (`$index`).

mod support;

use ferry_engine::Outcome;
use serde_json::{Value, json};
use support::{HEAD, connect, failure, json as body, plan, rejected, request, requests};

/// A mapping with one `track` action whose body is `fields` (YAML, indented by 8), after
/// `extra` top-level sections.
fn mapping(extra: &str, fields: &str) -> String {
    format!(
        "{HEAD}{extra}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

fn body_of(extra: &str, fields: &str, event: &Value) -> Value {
    body(request(&plan(
        &connect(&mapping(extra, fields), &json!({})),
        event,
    )))
}

fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

#[test]
fn single_as_list_takes_one_text_number_or_object_as_a_list_of_one() {
    let fields = "        em: { each: $.email, single_as_list: true, transform: [trim, lower, sha256] }\n        n: { each: $.n, single_as_list: true }\n        p: { each: $.p, single_as_list: true, fields: { id: { from: $.id } } }\n";
    let one = json!({"type": "track", "email": " A@B.com", "n": 7, "p": {"id": "x"}});
    assert_eq!(
        body_of("", fields, &one),
        json!({"em": [sha256("a@b.com")], "n": [7], "p": [{"id": "x"}]})
    );
    let many = json!({"type": "track", "email": ["a@b.com", "C@D.com"], "n": [1, 2], "p": [{"id": "x"}, {"id": "y"}]});
    assert_eq!(
        body_of("", fields, &many),
        json!({
            "em": [sha256("a@b.com"), sha256("c@d.com")],
            "n": [1, 2],
            "p": [{"id": "x"}, {"id": "y"}]
        })
    );
    // `null` and a missing value are missing, as for any list.
    let none = json!({"type": "track", "email": null});
    assert_eq!(body_of("", fields, &none), json!({}));
}

#[test]
fn without_single_as_list_a_single_value_is_an_error_naming_the_field() {
    let fields = "        em: { each: $.email }\n";
    let connection = connect(&mapping("", fields), &json!({}));
    let message = failure(&plan(
        &connection,
        &json!({"type": "track", "email": "a@b.com"}),
    ));
    assert_eq!(message, "`em`: `$.email` must be a list, not text");
}

#[test]
fn single_as_list_reads_a_computed_value_and_an_item_may_be_left_out() {
    let extra = "computed:\n  email: { from: [$.traits.email, $.context.traits.email] }\n";
    let fields = "        em: { each: $computed.email, single_as_list: true, omit_empty: true, where: { matches: { $: \"@\" } }, transform: [sha256] }\n";
    assert_eq!(
        body_of(
            extra,
            fields,
            &json!({"type": "track", "traits": {"email": "a@b.com"}})
        ),
        json!({"em": [sha256("a@b.com")]})
    );
    // `where` keeps no item: the list comes out empty and `omit_empty` leaves it out.
    assert_eq!(
        body_of(
            extra,
            fields,
            &json!({"type": "track", "traits": {"email": "nobody"}})
        ),
        json!({})
    );
}

#[test]
fn keep_single_sends_one_value_alone_and_several_as_a_list() {
    let fields = "        phone: { each: $.phone, keep_single: true, transform: [trim, sha256] }\n";
    assert_eq!(
        body_of(
            "",
            fields,
            &json!({"type": "track", "phone": " +15550100 "})
        ),
        json!({"phone": sha256("+15550100")})
    );
    assert_eq!(
        body_of("", fields, &json!({"type": "track", "phone": ["+1", "+2"]})),
        json!({"phone": [sha256("+1"), sha256("+2")]})
    );
    // An empty single value is left out with `omit_empty`, as an empty list would be.
    let empty = "        phone: { each: $.phone, keep_single: true, omit_empty: true }\n";
    assert_eq!(
        body_of("", empty, &json!({"type": "track", "phone": ""})),
        json!({})
    );
    // A single value its item leaves out is missing: the default applies.
    let guarded = "        phone: { each: $.phone, keep_single: true, where: { filled: $ }, default: none }\n";
    assert_eq!(
        body_of("", guarded, &json!({"type": "track", "phone": ""})),
        json!({"phone": "none"})
    );
}

#[test]
fn keep_single_and_single_as_list_exclude_each_other() {
    let text = mapping(
        "",
        "        phone: { each: $.phone, keep_single: true, single_as_list: true }\n",
    );
    let problems = rejected(&text);
    assert!(
        problems.contains("`keep_single` beside `single_as_list`"),
        "{problems}"
    );
    let alone = mapping("", "        phone: { from: $.phone, keep_single: true }\n");
    assert!(
        rejected(&alone).contains("`keep_single` shapes the list of `each`"),
        "{}",
        rejected(&alone)
    );
}

#[test]
fn a_computed_value_may_be_a_list_or_an_object() {
    let extra = "computed:\n  skus: { each: $.properties.products, from: $.sku }\n  ids: { items: [{ from: $.userId }, { from: $.anonymousId }] }\n  user: { fields: { id: { from: $.userId }, tags: { each: $.traits.tags, single_as_list: true } } }\n";
    let fields = "        skus: { from: $computed.skus }\n        first_sku: { from: \"$computed.skus[0]\" }\n        ids: { each: $computed.ids, transform: [upper] }\n        user: { from: $computed.user }\n        tags: { rest_of: $computed.user, only: [tags] }\n";
    let event = json!({
        "type": "track",
        "userId": "u1",
        "anonymousId": "a1",
        "traits": {"tags": "vip"},
        "properties": {"products": [{"sku": "s1"}, {"sku": "s2"}]}
    });
    assert_eq!(
        body_of(extra, fields, &event),
        json!({
            "skus": ["s1", "s2"],
            "first_sku": "s1",
            "ids": ["U1", "A1"],
            "user": {"id": "u1", "tags": ["vip"]},
            "tags": {"tags": ["vip"]}
        })
    );
}

#[test]
fn a_computed_list_that_fails_fails_the_fields_that_read_it() {
    let extra = "computed:\n  skus: { each: $.properties.products, from: $.sku, required: true }\n";
    let fields = "        skus: { from: $computed.skus }\n";
    let connection = connect(&mapping(extra, fields), &json!({}));
    let message = failure(&plan(&connection, &json!({"type": "track"})));
    assert_eq!(
        message,
        "`computed.skus` is required but `$.properties.products` is missing"
    );
}

#[test]
fn split_makes_a_list_of_trimmed_texts_and_keeps_a_list() {
    let fields = "        tags: { from: $.tags, split: \",\" }\n        count: { from: $.tags, split: \",\", count: true }\n        flags: { from: $.tags, apply: [{ split: \",\" }, { to_object: true }] }\n";
    assert_eq!(
        body_of("", fields, &json!({"type": "track", "tags": " a, b ,,c "})),
        json!({"tags": ["a", "b", "c"], "count": 3, "flags": {"a": true, "b": true, "c": true}})
    );
    assert_eq!(
        body_of("", fields, &json!({"type": "track", "tags": ["x", " y"]})),
        json!({"tags": ["x", " y"], "count": 2, "flags": {"x": true, " y": true}})
    );
    let connection = connect(&mapping("", fields), &json!({}));
    let message = failure(&plan(
        &connection,
        &json!({"type": "track", "tags": {"a": 1}}),
    ));
    assert!(message.starts_with("`tags`: "), "{message}");
    let empty = mapping("", "        tags: { from: $.tags, split: \"\" }\n");
    assert!(
        rejected(&empty).contains("`split: \"\"` has no separator to split at"),
        "{}",
        rejected(&empty)
    );
}

#[test]
fn index_is_the_position_of_the_for_each_item() {
    let text = format!(
        "{HEAD}actions:\n  product:\n    when: {{ type: track }}\n    for_each: {{ each: $.properties.products, where: {{ filled: $item.sku }} }}\n    request:\n      method: POST\n      path: \"/products/{{{{ item.sku }}}}\"\n      body:\n        sku: {{ from: $item.sku }}\n        position: {{ from: $index }}\n        first: {{ value: true, when: {{ equals: {{ $index: 0 }} }} }}\n"
    );
    let connection = connect(&text, &json!({}));
    let event =
        json!({"type": "track", "properties": {"products": [{"sku": "a"}, {}, {"sku": "c"}]}});
    let planned = plan(&connection, &event);
    let bodies: Vec<Value> = requests(&planned).into_iter().map(body).collect();
    assert_eq!(
        bodies,
        [
            json!({"sku": "a", "position": 0, "first": true}),
            json!({"sku": "c", "position": 2})
        ]
    );
}

#[test]
fn index_needs_a_for_each_and_has_no_members() {
    let outside = mapping("", "        position: { from: $index }\n");
    assert!(
        rejected(&outside)
            .contains("`$index` is the position of the item of the action's `for_each`"),
        "{}",
        rejected(&outside)
    );
    let member = mapping("", "        position: { from: $index.x }\n");
    assert!(
        rejected(&member).contains(
            "`$index` is the position of the `for_each` item, one number without members"
        ),
        "{}",
        rejected(&member)
    );
}

#[test]
fn a_spread_items_entry_adds_the_members_of_its_list() {
    let fields = "        ids:\n          items:\n            - { from: $.id, spread: true }\n            - { from: $.more, spread: true, as: string }\n            - { from: $.last }\n";
    let many = json!({"type": "track", "id": ["a", "b"], "more": 7, "last": ["x"]});
    // A list's members join the enclosing list; one value (after its operations) is added as
    // itself; an entry without `spread` adds its list as one entry.
    assert_eq!(
        body_of("", fields, &many),
        json!({"ids": ["a", "b", "7", ["x"]]})
    );
    let none = json!({"type": "track", "id": [], "last": "y"});
    assert_eq!(body_of("", fields, &none), json!({"ids": ["y"]}));
    let object = mapping(
        "",
        "        ids: { items: [{ fields: { a: { from: $.a } }, spread: true }] }\n",
    );
    assert!(
        rejected(&object).contains("an object has no items to spread into the enclosing list"),
        "{}",
        rejected(&object)
    );
    let each = mapping(
        "",
        "        ids: { items: [{ each: $.a, spread: true }] }\n",
    );
    assert!(
        rejected(&each).contains("an entry with `each` adds every item already"),
        "{}",
        rejected(&each)
    );
}

/// A mapping whose action plans one request per group a trait names under each group key.
fn unnesting(unnest: &str) -> String {
    format!(
        "{HEAD}settings:\n  keys: {{ type: list, description: group keys }}\nactions:\n  group:\n    when: {{ type: group }}\n    for_each:\n      each: $settings.keys\n      unnest: {unnest}\n    request:\n      method: POST\n      path: /groups\n      body:\n        key: {{ from: $item.key }}\n        id: {{ from: $item.id }}\n        position: {{ from: $index }}\n"
    )
}

#[test]
fn unnest_plans_a_run_for_each_value_of_each_item() {
    let text = unnesting("{ id: { from: $.traits, member: $item.key } }");
    let settings = json!({"keys": [{"key": "company"}, {"key": "team"}, {"key": "region"}]});
    let connection = connect(&text, &settings);
    let event = json!({"type": "group", "traits": {"company": ["Acme", "Beta"], "team": "Ops"}});
    let planned = plan(&connection, &event);
    let bodies: Vec<Value> = planned
        .outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Request(request) => Some(body(request)),
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"key": "company", "id": "Acme", "position": 0}),
            json!({"key": "company", "id": "Beta", "position": 0}),
            json!({"key": "team", "id": "Ops", "position": 1}),
        ]
    );
    // The key with no value skips its item, saying so; the others are planned.
    let skips: Vec<&str> = planned
        .outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Skipped(skip) => Some(&*skip.reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        skips,
        ["`for_each.unnest.id` gives no value for item 2 of `$settings.keys`"]
    );
    // Items that are not objects have no member to add.
    let texts = connect(
        &text.replace("member: $item.key", "member: $item"),
        &json!({"keys": ["company"]}),
    );
    assert_eq!(
        failure(&plan(&texts, &event)),
        "`for_each`: `unnest` adds `id` to each item, and item 0 is text, not an object"
    );
}

#[test]
fn unnest_names_one_member() {
    for two in ["{ }", "{ a: { from: $.a }, b: { from: $.b } }"] {
        let problems = rejected(&unnesting(two));
        assert!(
            problems.contains("`unnest` names one member of the item"),
            "{problems}"
        );
    }
    let spread = rejected(&unnesting(
        "{ a: { fields: { b: { from: $.b } }, spread: true } }",
    ));
    assert!(spread.contains("cannot be spread"), "{spread}");
}
