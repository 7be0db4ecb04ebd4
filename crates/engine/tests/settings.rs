//! Settings in more places: rules between settings checked when a connection binds, paths
//! written in a destination's dotted form, and templates held by a setting.

mod support;

use std::sync::Arc;

use ferry_engine::Connection;
use serde_json::json;
use support::{HEAD, connect, failure, json as body, load, plan, rejected, request, requests};

fn mapping(settings: &str, fields: &str) -> String {
    format!(
        "{HEAD}settings:\n{settings}actions:\n  track:\n    when: {{ type: track }}\n    request:\n      method: POST\n      path: /events\n      body:\n{fields}"
    )
}

#[test]
fn a_setting_required_with_another_is_checked_when_a_connection_binds() {
    let settings = "  service_account_user: { type: string, description: service account }\n  project_id: { type: string, required_with: [service_account_user], description: the project of the service account }\n";
    let text = mapping(settings, "        p: { setting: project_id }\n");
    let mapping = load(&text);
    let bind = |settings: serde_json::Value| {
        Connection::new(Arc::clone(&mapping), settings.as_object().unwrap())
    };
    assert!(bind(json!({})).is_ok());
    assert!(bind(json!({"service_account_user": "svc", "project_id": "p1"})).is_ok());
    let error = bind(json!({"service_account_user": "svc"})).unwrap_err();
    assert_eq!(
        error.problems,
        [
            "setting `project_id` is required when `service_account_user` is set: the project of the service account"
        ]
    );
    let problems = rejected(&mapping_with_unknown());
    assert!(problems.contains("unknown setting `nobody`"), "{problems}");
}

fn mapping_with_unknown() -> String {
    mapping(
        "  a: { type: string, required_with: [nobody], description: a }\n",
        "        a: { setting: a }\n",
    )
}

#[test]
fn a_path_setting_may_be_written_in_the_dotted_form() {
    let settings =
        "  dedup_from: { type: path, default: $.messageId, description: where the dedup id is }\n";
    let text = mapping(settings, "        dedup_id: { from_setting: dedup_from }\n");
    let event = json!({"type": "track", "messageId": "m1", "properties": {"custom dedup": "c1"}});
    let default = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&default, &event))),
        json!({"dedup_id": "m1"})
    );
    let dotted = connect(&text, &json!({"dedup_from": "properties.custom dedup"}));
    assert_eq!(
        body(request(&plan(&dotted, &event))),
        json!({"dedup_id": "c1"})
    );
}

#[test]
fn a_setting_may_hold_a_template_rendered_per_event() {
    let settings = "  page_name: { type: template, default: \"Viewed {{ event.name }} page\", description: how a page is named }\n";
    let text = mapping(
        settings,
        "        name: { template: { setting: page_name } }\n",
    );
    let event = json!({"type": "track", "name": "Pricing", "category": "Docs"});
    let default = connect(&text, &json!({}));
    assert_eq!(
        body(request(&plan(&default, &event))),
        json!({"name": "Viewed Pricing page"})
    );
    let own = connect(
        &text,
        &json!({"page_name": "{{ event.category }}/{{ event.name }}"}),
    );
    assert_eq!(
        body(request(&plan(&own, &event))),
        json!({"name": "Docs/Pricing"})
    );
    let failing = connect(&text, &json!({"page_name": "{{ event.name / 2 }}"}));
    let message = failure(&plan(&failing, &event));
    assert!(
        message.starts_with("`name`: the template of setting `page_name`:"),
        "{message}"
    );
    let error = Connection::new(
        load(&text),
        json!({"page_name": "{{ event.name|nope }}"})
            .as_object()
            .unwrap(),
    )
    .unwrap_err();
    assert!(
        error.problems[0].contains("setting `page_name`: the template uses `nope`"),
        "{error}"
    );
}

#[test]
fn a_template_setting_reads_the_item_of_a_for_each_and_its_index() {
    let text = format!(
        "{HEAD}settings:\n  label: {{ type: template, default: \"{{{{ item.sku }}}} ({{{{ index + 1 }}}})\", description: how an item is labelled }}\nactions:\n  product:\n    when: {{ type: track }}\n    for_each: $.properties.products\n    request:\n      method: POST\n      path: /products\n      body:\n        label: {{ template: {{ setting: label }} }}\n"
    );
    let event = json!({"type": "track", "properties": {"products": [{"sku": "A"}, {"sku": "B"}]}});
    let plan = plan(&connect(&text, &json!({})), &event);
    let labels: Vec<_> = requests(&plan).into_iter().map(body).collect();
    assert_eq!(
        labels,
        [json!({"label": "A (1)"}), json!({"label": "B (2)"})]
    );
}
