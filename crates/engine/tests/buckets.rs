//! What a bucket (`rest_of`) leaves out, precisely: a key read by a field that this event
//! writes, or by a field written whatever happens; a name written beside it; never a key read
//! only by a field, or named only by a spread object, that its `when` left out for the event.

mod support;

use serde_json::json;
use support::{HEAD, connect, json as body, plan, request};

fn mapping(fields: &str) -> String {
    format!(
        "{HEAD}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

#[test]
fn a_field_left_out_by_its_when_does_not_hide_its_key_from_the_bucket() {
    let fields = "        order_id: { from: $.properties.order_id, when: { event: Order Completed } }\n        product_id: { from: $.properties.product_id, when: { event: Product Viewed } }\n        metadata: { rest_of: $.properties }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let properties = json!({"order_id": "o1", "product_id": "p1", "color": "red"});
    let order = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "properties": properties}),
    );
    assert_eq!(
        body(request(&order)),
        json!({"order_id": "o1", "metadata": {"color": "red", "product_id": "p1"}})
    );
    let viewed = plan(
        &connection,
        &json!({"type": "track", "event": "Product Viewed", "properties": properties}),
    );
    assert_eq!(
        body(request(&viewed)),
        json!({"product_id": "p1", "metadata": {"color": "red", "order_id": "o1"}})
    );
}

#[test]
fn a_when_above_a_field_counts_as_its_own() {
    let fields = "        order:\n          when: { event: Order Completed }\n          fields: { id: { from: $.properties.order_id } }\n        metadata: { rest_of: $.properties }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let other = plan(
        &connection,
        &json!({"type": "track", "event": "Clicked", "properties": {"order_id": "o1"}}),
    );
    assert_eq!(
        body(request(&other)),
        json!({"metadata": {"order_id": "o1"}})
    );
    let order = plan(
        &connection,
        &json!({"type": "track", "event": "Order Completed", "properties": {"order_id": "o1"}}),
    );
    assert_eq!(
        body(request(&order)),
        json!({"order": {"id": "o1"}, "metadata": {}})
    );
}

#[test]
fn a_spread_object_left_out_by_its_when_hides_no_names() {
    let fields = "        ids:\n          spread: true\n          when: { filled: $.userId }\n          fields: { email: { from: $.userId } }\n        traits: { rest_of: $.traits, spread: true }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let anonymous = plan(
        &connection,
        &json!({"type": "track", "traits": {"email": "t@x.io", "plan": "pro"}}),
    );
    assert_eq!(
        body(request(&anonymous)),
        json!({"email": "t@x.io", "plan": "pro"})
    );
    let known = plan(
        &connection,
        &json!({"type": "track", "userId": "u@x.io", "traits": {"email": "t@x.io", "plan": "pro"}}),
    );
    assert_eq!(
        body(request(&known)),
        json!({"email": "u@x.io", "plan": "pro"})
    );
}

#[test]
fn where_inside_entries_reads_the_entry_key() {
    let fields = "        custom:\n          entries: $.traits\n          where: { not: { matches: { $key: \"^(email|name)$\" } } }\n          from: $\n";
    let connection = connect(&mapping(fields), &json!({}));
    let planned = plan(
        &connection,
        &json!({"type": "track", "traits": {"email": "e", "name": "n", "plan": "pro"}}),
    );
    assert_eq!(body(request(&planned)), json!({"custom": {"plan": "pro"}}));
}

#[test]
fn except_can_come_from_a_setting() {
    let text = format!(
        "{HEAD}settings:\n  hidden: {{ type: list, description: h }}\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n        props: {{ rest_of: $.properties, except: {{ setting: hidden }} }}\n"
    );
    let event = json!({"type": "track", "properties": {"a": 1, "b": 2, "c": 3}});
    let all = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&all, &event))),
        json!({"props": {"a": 1, "b": 2, "c": 3}})
    );
    let some = connect(&text, &json!({"hidden": ["b", "c"]}));
    assert_eq!(
        body(request(&plan(&some, &event))),
        json!({"props": {"a": 1}})
    );
}

#[test]
fn the_names_an_event_lists_go_to_one_object_and_stay_out_of_the_bucket() {
    // Klaviyo: the traits `integrations.Klaviyo.fieldsToAppend` names are appended, not set.
    let fields = "        append: { entries: $.traits, where: { in: [$key, $event.integrations.K.append] }, from: $, omit_empty: true }\n        properties: { rest_of: $.traits, except: [email, { path: $.integrations.K.append }] }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let traits = json!({"email": "e", "plan": "pro", "tags": "new", "seen": "x"});
    let planned = plan(
        &connection,
        &json!({"type": "track", "traits": traits, "integrations": {"K": {"append": ["tags", "seen"]}}}),
    );
    assert_eq!(
        body(request(&planned)),
        json!({"append": {"tags": "new", "seen": "x"}, "properties": {"plan": "pro"}})
    );
    // One name instead of a list; and an event that lists none keeps every trait in the bucket.
    let one = plan(
        &connection,
        &json!({"type": "track", "traits": traits, "integrations": {"K": {"append": "tags"}}}),
    );
    assert_eq!(
        body(request(&one)),
        json!({"append": {"tags": "new"}, "properties": {"plan": "pro", "seen": "x"}})
    );
    let none = plan(&connection, &json!({"type": "track", "traits": traits}));
    assert_eq!(
        body(request(&none)),
        json!({"properties": {"plan": "pro", "tags": "new", "seen": "x"}})
    );
}

#[test]
fn names_a_pattern_matches_stay_out_of_the_bucket() {
    // GA4: parameter names with a reserved prefix are never sent.
    let fields = "        params: { rest_of: $.properties, except: [sku, { matches: \"^(?i:google_|ga_|firebase_)\" }] }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let planned = plan(
        &connection,
        &json!({"type": "track", "properties": {"sku": "s", "plan": "pro", "google_id": "g",
                "GA_session": 1, "firebase_user": "f", "my_ga_note": "kept"}}),
    );
    assert_eq!(
        body(request(&planned)),
        json!({"params": {"plan": "pro", "my_ga_note": "kept"}})
    );
}

#[test]
fn a_pattern_that_is_not_a_regular_expression_is_refused_where_it_is_written() {
    let fields = "        params: { rest_of: $.properties, except: [{ matches: \"^(ga_\" }] }\n";
    let problems = support::rejected(&mapping(fields));
    assert!(
        problems.contains("is not a regular expression") && problems.contains("test.yaml:13:62"),
        "{problems}"
    );
}

#[test]
fn only_keeps_the_names_listed_and_those_a_pattern_matches() {
    let fields = "        utm: { rest_of: $.properties, only: [source, { matches: \"^utm_\" }] }\n        none: { rest_of: $.properties, only: [{ matches: \"^x_\" }] }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let planned = plan(
        &connection,
        &json!({"type": "track", "properties": {"source": "ad", "utm_medium": "cpc", "utm_term": "shoes", "plan": "pro"}}),
    );
    assert_eq!(
        body(request(&planned)),
        json!({"utm": {"source": "ad", "utm_medium": "cpc", "utm_term": "shoes"}, "none": {}})
    );
}

#[test]
fn names_a_pattern_matches_are_refused_outside_a_bucket() {
    let text = "version: 1\nname: t\nsource: segment\nhttp: { base_url: \"https://api.example.com\" }\nactions:\n  a:\n    when: { event: [Signed Up, { matches: \"^Order\" }] }\n    request: { method: POST, path: /e }\n";
    let problems = support::rejected(text);
    assert!(
        problems.contains("allowed only in a bucket's `only` and `except`"),
        "{problems}"
    );
}

#[test]
fn names_from_the_event_are_refused_outside_a_buckets_except() {
    let fields = "        props: { rest_of: $.traits, only: [{ path: $.allowed }] }\n";
    let problems = support::rejected(&mapping(fields));
    assert!(
        problems.contains("allowed only in a bucket's `except`"),
        "{problems}"
    );
}

/// A mapping whose `track` body is `fields`, with `settings` declared.
fn with_settings(settings: &str, fields: &str) -> String {
    format!(
        "{HEAD}settings:\n{settings}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

#[test]
fn names_are_read_from_a_member_of_each_item_of_a_list_setting() {
    let settings = "  increments: { type: list, default: [], description: d }\n";
    let fields = "        $add: { rest_of: $.traits, only: { setting: increments, member: traits }, omit_empty: true }\n        $set: { rest_of: $.traits, except: [city, { setting: increments, member: traits }] }\n";
    let text = with_settings(settings, fields);
    let event =
        json!({"type": "track", "traits": {"age": 12, "logins": 3, "city": "Oslo", "name": "Ann"}});
    let configured = connect(
        &text,
        &json!({"increments": [{"traits": "age"}, {"traits": "logins"}, {"traits": ""}]}),
    );
    assert_eq!(
        body(request(&plan(&configured, &event))),
        json!({"$add": {"age": 12, "logins": 3}, "$set": {"name": "Ann"}})
    );
    // An item that is text is a name itself.
    let plain = connect(&text, &json!({"increments": ["age"]}));
    assert_eq!(
        body(request(&plan(&plain, &event))),
        json!({"$add": {"age": 12}, "$set": {"logins": 3, "name": "Ann"}})
    );
    // The default, `[]`, names nothing: nothing is added, nothing but `city` left out.
    let unset = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&unset, &event))),
        json!({"$set": {"age": 12, "logins": 3, "name": "Ann"}})
    );
}

#[test]
fn dotted_names_reach_into_members_of_the_bucket_s_object() {
    // Mixpanel: the traits a connection lists (`address.city` among them) are set once, and
    // the profile's other traits keep the rest of `address`.
    let settings = "  set_once: { type: list, default: [], description: d }\n";
    let fields = "        $set_once: { rest_of: $.traits, only: [plan, { setting: set_once, member: property }, { matches: \"^utm_\" }], dotted: true }\n        $set: { rest_of: $.traits, except: [plan, { setting: set_once, member: property }], dotted: true }\n";
    let text = with_settings(settings, fields);
    let configured = connect(
        &text,
        &json!({"set_once": [{"property": "address.city"}, {"property": "firstName"},
                             {"property": "address.zip"}, {"property": "plan"}]}),
    );
    let event = json!({"type": "track", "traits": {"firstName": "Ann", "plan": "pro", "age": 3,
        "address": {"city": "Oslo", "street": "Storgata 1"}, "address.city": "flat key",
        "utm_source": "mail"}});
    let planned = plan(&configured, &event);
    assert_eq!(
        body(request(&planned)),
        json!({"$set_once": {"plan": "pro", "address.city": "Oslo", "firstName": "Ann", "utm_source": "mail"},
               "$set": {"age": 3, "address": {"street": "Storgata 1"}, "address.city": "flat key",
                        "utm_source": "mail"}})
    );
    // In the order listed: the mapping's names, then the setting's items, then the keys a
    // pattern matches; a path listed twice is written once.
    let sent = support::text(request(&planned));
    assert!(
        sent.contains(r#""$set_once":{"plan":"pro","address.city":"Oslo","firstName":"Ann","utm_source":"mail"}"#),
        "{sent}"
    );
    // Without the setting, `only` keeps `plan` alone, and `except` leaves the object whole.
    let unset = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&unset, &event))),
        json!({"$set_once": {"plan": "pro", "utm_source": "mail"},
               "$set": {"age": 3, "firstName": "Ann", "address": {"city": "Oslo", "street": "Storgata 1"},
                        "address.city": "flat key", "utm_source": "mail"}})
    );
}

#[test]
fn except_leaves_out_the_keys_of_an_object_an_event_value_holds() {
    // What one bucket took, another leaves out: the computed object's keys, dotted or not.
    let fields = "        union: { rest_of: $computed.union, as: list }\n        $set: { rest_of: $.traits, except: [{ path: $computed.union }], dotted: true, keep_null: true }\n";
    let text = format!(
        "{HEAD}computed:\n  union: {{ rest_of: $.traits, only: [tags, address.lines, gone], dotted: true }}\nactions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    );
    let connection = connect(&text, &json!({}));
    let event = json!({"type": "track", "traits": {"tags": "a", "gone": null, "plan": "pro",
        "address": {"lines": ["x", null], "city": "Oslo"}}});
    // `as: list` keeps a list as it is and makes any other value a list of one.
    assert_eq!(
        body(request(&plan(&connection, &event))),
        json!({"union": {"tags": ["a"], "address.lines": ["x", null]},
               "$set": {"gone": null, "plan": "pro", "address": {"city": "Oslo"}}})
    );
}

#[test]
fn the_set_once_example_of_the_guide_sends_what_it_says() {
    // docs/writing-a-mapping.md, "Dotted names".
    let text = format!(
        "{HEAD}settings:\n  set_once_properties: {{ type: list, default: [], description: d }}\ncomputed:\n  set_once: {{ rest_of: $.traits, only: {{ setting: set_once_properties, member: property }}, dotted: true, omit_empty: true }}\nactions:\n  set_once:\n    when: {{ type: identify, filled: $computed.set_once }}\n    request:\n      method: POST\n      path: /engage\n      body:\n        $set_once: {{ entries: $computed.set_once, key: {{ from: $key, remap: {{ table: {{ address.city: $city }}, otherwise: keep }} }}, from: $ }}\n  identify:\n    when: {{ type: identify }}\n    request:\n      method: POST\n      path: /engage\n      body:\n        $set: {{ rest_of: $.traits, except: [{{ path: $computed.set_once }}], dotted: true, keep_null: true }}\n"
    );
    let connection = connect(
        &text,
        &json!({"set_once_properties": [{"property": "plan"}, {"property": "address.city"}]}),
    );
    let planned = plan(
        &connection,
        &json!({"type": "identify", "traits": {"plan": "pro", "age": 3,
                "address": {"city": "Oslo", "zip": "0150"}}}),
    );
    let sent: Vec<String> = support::requests(&planned)
        .into_iter()
        .map(support::text)
        .collect();
    assert_eq!(
        sent,
        [
            r#"{"$set_once":{"$city":"Oslo","plan":"pro"}}"#,
            r#"{"$set":{"address":{"zip":"0150"},"age":3}}"#
        ]
    );
}

#[test]
fn dotted_needs_a_bucket() {
    let fields = "        a: { from: $.traits.a, dotted: true }\n";
    let problems = support::rejected(&mapping(fields));
    assert!(
        problems.contains("`dotted` shapes a `rest_of` bucket")
            && problems.contains("test.yaml:13:32"),
        "{problems}"
    );
}

#[test]
fn a_setting_in_a_list_of_names_adds_none_when_it_is_unset() {
    let settings =
        "  once: { type: list, description: d }\n  more: { type: list, description: d }\n";
    let fields = "        kept: { rest_of: $.traits, except: [city, { setting: once, member: property }, { setting: more }] }\n        only: { rest_of: $.traits, only: [name, { setting: more }] }\n        alone: { rest_of: $.traits, only: { setting: more } }\n";
    let text = with_settings(settings, fields);
    let event = json!({"type": "track", "traits": {"city": "Oslo", "name": "Ann", "plan": "pro", "age": 3}});
    let unset = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&unset, &event))),
        json!({
            "kept": {"name": "Ann", "plan": "pro", "age": 3},
            "only": {"name": "Ann"},
            "alone": {"city": "Oslo", "name": "Ann", "plan": "pro", "age": 3}
        })
    );
    let set = connect(
        &text,
        &json!({"once": [{"property": "plan"}], "more": ["age"]}),
    );
    assert_eq!(
        body(request(&plan(&set, &event))),
        json!({
            "kept": {"name": "Ann"},
            "only": {"name": "Ann", "age": 3},
            "alone": {"age": 3}
        })
    );
}

#[test]
fn event_names_may_come_from_a_member_of_a_setting_s_items() {
    let text = format!(
        "{HEAD}settings:\n  events: {{ type: list, default: [{{ name: Signed Up }}], description: d }}\nactions:\n  track:\n    when: {{ type: track, event: {{ setting: events, member: name }}, loose: true }}\n    request: {{ method: POST, path: /events }}\n"
    );
    let connection = connect(&text, &json!({}));
    assert!(matches!(
        plan(&connection, &json!({"type": "track", "event": "signed up"}))
            .outcomes
            .as_slice(),
        [ferry_engine::Outcome::Request(_)]
    ));
    let skipped = plan(&connection, &json!({"type": "track", "event": "Clicked"}));
    assert_eq!(
        support::skip(&skipped),
        "no action matches type `track`, event `Clicked`"
    );
}

#[test]
fn a_names_setting_must_be_a_list_whose_default_holds_names() {
    let settings = "  increments: { type: map, description: d }\n  once: { type: list, default: [{ property: 3 }], description: d }\n";
    let fields = "        a: { rest_of: $.traits, only: { setting: increments, member: traits } }\n        b: { rest_of: $.traits, except: [city, { setting: once, member: property }] }\n";
    let problems = support::rejected(&with_settings(settings, fields));
    assert!(
        problems
            .contains("setting `increments` is a `map` setting; a list of names needs a `list`"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "`{\"property\":3}` holds no name: `member: property` at line 17 reads each item's `property`, which must be text"
        ),
        "{problems}"
    );
}

#[test]
fn flatten_joins_keys_with_a_separator_and_keys_list_items_by_a_pattern() {
    let fields = "        dotted: { rest_of: $.properties, flatten: { separator: \".\" } }\n        indexed: { rest_of: $.properties, flatten: { separator: \".\", lists: \"[{i}]\" } }\n        flat: { rest_of: $.properties, flatten: { lists: \"_{i}\" }, omit_empty: true }\n        legacy: { rest_of: $.properties, flatten: true }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let event = json!({"type": "track", "properties": {
        "friend": {"names": {"first": "Alice"}, "age": 25},
        "items": [{"sku": "a", "tags": ["x"]}, {"sku": "b"}],
        "levels": ["L1", "L2"],
        "ids": [],
        "empty": ""
    }});
    assert_eq!(
        body(request(&plan(&connection, &event))),
        json!({
            "dotted": {
                "friend.names.first": "Alice", "friend.age": 25,
                "items": [{"sku": "a", "tags": ["x"]}, {"sku": "b"}],
                "levels": ["L1", "L2"], "ids": [], "empty": ""
            },
            "indexed": {
                "friend.names.first": "Alice", "friend.age": 25,
                "items[0].sku": "a", "items[0].tags[0]": "x", "items[1].sku": "b",
                "levels[0]": "L1", "levels[1]": "L2", "empty": ""
            },
            "flat": {
                "friend_names_first": "Alice", "friend_age": 25,
                "items_0_sku": "a", "items_0_tags_0": "x", "items_1_sku": "b",
                "levels_0": "L1", "levels_1": "L2"
            },
            "legacy": {
                "friend_names_first": "Alice", "friend_age": 25,
                "items": [{"sku": "a", "tags": ["x"]}, {"sku": "b"}],
                "levels": ["L1", "L2"], "ids": [], "empty": ""
            }
        })
    );
}

#[test]
fn a_flatten_rule_needs_a_separator_and_an_index_in_its_list_pattern() {
    let fields = "        a: { rest_of: $.properties, flatten: { separator: \"\" } }\n        b: { rest_of: $.properties, flatten: { lists: \"[i]\" } }\n        c: { rest_of: $.properties, flatten: { lists: \"{i}\" } }\n";
    let problems = support::rejected(&mapping(fields));
    for expected in [
        "an empty `separator` would run a parent's key and its child's together",
        "`lists: \"[i]\"` cannot key a list's items: it has no `{i}` to write the index with",
        "`lists: \"{i}\"` cannot key a list's items: an index alone would run into the list's key (`items0`)",
    ] {
        assert!(problems.contains(expected), "{expected}\n{problems}");
    }
}

#[test]
fn a_when_written_alike_in_several_places_is_tested_where_each_is_read() {
    // One anchor on a field of the event, a field of each item and a field beside a bucket of
    // each item: the selector is shared, its answer is not, since `$` differs.
    let fields = "        sku: { from: $.properties.sku, when: &has_sku { filled: $.sku } }\n        products:\n          each: $.properties.products\n          fields:\n            id: { from: $.sku, when: *has_sku }\n            other: { rest_of: $, spread: true }\n        metadata: { rest_of: $.properties, except: [products] }\n";
    let connection = connect(&mapping(fields), &json!({}));
    let event = json!({"type": "track", "properties": {
        "sku": "top", "products": [{"sku": "a", "n": 1}, {"sku": "", "n": 2}]
    }});
    // At the event, `$.sku` is missing: `sku` is left out and stays in the bucket.
    assert_eq!(
        body(request(&plan(&connection, &event))),
        json!({
            "products": [{"id": "a", "n": 1}, {"sku": "", "n": 2}],
            "metadata": {"sku": "top"}
        })
    );
    let with_sku =
        json!({"type": "track", "sku": "s", "properties": {"sku": "top", "products": [{"n": 3}]}});
    assert_eq!(
        body(request(&plan(&connection, &with_sku))),
        json!({"sku": "top", "products": [{"n": 3}], "metadata": {}})
    );
}
