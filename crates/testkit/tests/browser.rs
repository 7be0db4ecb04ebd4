//! The DevTools client against a page of its own: navigation, evaluation, waiting, clicks and
//! typing that reach the page's listeners as a user's would, and screenshots of the viewport.

use std::time::Duration;

use ferry_testkit::browser::{Browser, HEIGHT, WIDTH, png_size};
use serde_json::json;

const PAGE: &str = "data:text/html,<!doctype html><title>t</title>\
<input id=name><button id=go>go</button><p id=out></p>\
<script>\
document.getElementById('name').addEventListener('input', (e) => { window.typed = e.target.value; });\
document.getElementById('go').addEventListener('click', (e) => {\
  window.trusted = e.isTrusted;\
  setTimeout(() => { document.getElementById('out').textContent = 'hello ' + window.typed; }, 200);\
});\
</script>";

#[test]
fn a_page_is_driven_as_a_user_would() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    browser.navigate(PAGE);
    assert_eq!(browser.evaluate("document.title"), json!("t"));
    assert_eq!(
        browser.evaluate("new Promise((done) => setTimeout(() => done(6 * 7), 10))"),
        json!(42)
    );
    assert!(browser.try_evaluate("nope.nope").is_err());

    browser.fill("#name", "ada");
    assert_eq!(browser.evaluate("window.typed"), json!("ada"));
    browser.fill("#name", "ada <b>lovelace</b>");
    browser.click("#go");
    let said = browser.wait_for(
        "the answer",
        "document.getElementById('out').textContent",
        Duration::from_secs(30),
    );
    assert_eq!(said, json!("hello ada <b>lovelace</b>"));
    // A click through the DevTools input domain is a trusted event, as a person's is.
    assert_eq!(browser.evaluate("window.trusted"), json!(true));

    let png = browser.screenshot();
    assert_eq!(png_size(&png), Some((WIDTH, HEIGHT)));

    browser.evaluate("console.log('from the page', 7)");
    let log = browser.log();
    assert!(
        log.iter()
            .any(|line| line == "console.log: from the page 7"),
        "{log:?}"
    );
}
