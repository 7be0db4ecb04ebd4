//! The console (`/console`) in a real headless Chromium, driven over the DevTools protocol
//! (`ferry_testkit::browser`), against the real `ferry serve` (SQLite store) delivering to a
//! destination on loopback: live events from the real Segment Node SDK with what each connection
//! made of them, a dead letter replayed from its page, the playground against `ferry map`, hostile
//! event text shown as text, and the access rules with an admin token.
//!
//! Chromium comes from Debian's `chromium` package (`apt-get install chromium`). Without it
//! these tests print a note and pass, unless `FERRY_REQUIRE_BROWSER_TESTS=1` (as in CI). The
//! SDK test also needs `npm ci --prefix tests/sdk` (`FERRY_REQUIRE_SDK_TESTS=1` as in CI).
//!
//! `FERRY_CONSOLE_SCREENSHOTS=docs/console` saves a screenshot of each page there (the images
//! of `docs/console.md`); every run captures them and checks their size.
//!
//! The tests take turns: each starts a browser and a server, and on a loaded two-core machine
//! the one-second measurement of the live view must not compete with another test's browser.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ferry_testkit::browser::{Browser, HEIGHT, WIDTH, png_size};
use serde_json::{Value, json};
use support::client::{basic, raw};
use support::node;
use support::{Destination, Ferry, SINK_KEY, WRITE_KEY, Workspace, http, post_batch};

/// Deadlines of everything but the one-second measurement: generous, for a loaded machine.
const WAIT: Duration = Duration::from_mins(1);
/// Events must show on the open overview within this of the SDK's flush.
const APPEAR_MS: i64 = 1000;
/// [`WAIT`] in milliseconds.
const WAIT_MS: i64 = 60_000;
/// The admin token of the access test.
const TOKEN: &str = "console-token-5b9e1c";
/// A name the browser resolves to 127.0.0.1 (`--host-resolver-rules`): a page opened from it
/// asks for a host that is not loopback, as a page opened from another machine would.
const OTHER_HOST: &str = "ferry.test";
/// The time the playground and `ferry map` pin the clock to.
const NOW: &str = "2026-11-02T09:00:00Z";

/// Text that would run if the page ever parsed event data as HTML.
const IMG: &str = r#"<img src=x onerror="window.__pwned=1">"#;
const SCRIPT: &str = "<script>window.__pwned=1</script>";

static TURN: Mutex<()> = Mutex::new(());

/// The second test mapping: every identify becomes `PUT /people` with the user's email and
/// other traits.
const PROFILES: &str = r#"version: 1
name: profiles
source: segment
settings:
  key: { type: string, required: true, secret: true, description: API key }
http:
  base_url: https://example.invalid
  auth: { bearer: "{{ settings.key }}" }
delivery:
  { retry: { max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 20 } }
actions:
  identify:
    when: { type: identify }
    request:
      method: PUT
      path: /people
      body:
        id: { from: $.messageId, required: true }
        user: { from: $.userId, required: true }
        email: { from: $.traits.email }
        traits: { rest_of: $.traits }
    dedupe_key: { from: $.messageId }
"#;

/// A browser, and the server it looks at: the Segment source `web` feeding the connections
/// `events` (the test mapping `sink`: tracks, as `POST /events`) and `profiles` (identifies, as
/// `PUT /people`), both sent to `destination`.
/// Dropped in this order: the browser, the server, its folder, the destination, the turn.
struct Console {
    browser: Browser,
    server: Ferry,
    workspace: Workspace,
    destination: Destination,
    _turn: MutexGuard<'static, ()>,
}

/// What the configuration adds.
#[derive(Default)]
struct Options {
    /// `server.admin_token`.
    token: Option<&'static str>,
    /// Bundled mappings copied into the server's mappings folder (for the playground).
    bundled: &'static [&'static str],
}

impl Console {
    /// The browser, the destination and the server; `None` when Chromium is missing (and not
    /// required).
    fn open(options: &Options) -> Option<Console> {
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let browser =
            Browser::launch_with(&[&format!("--host-resolver-rules=MAP {OTHER_HOST} 127.0.0.1")])?;
        let destination = Destination::start();
        let workspace = Workspace::new(&destination.url);
        std::fs::write(workspace.path().join("mappings/profiles.yaml"), PROFILES)
            .expect("the mapping is written");
        for name in options.bundled {
            std::fs::copy(
                root().join("mappings").join(name),
                workspace.path().join("mappings").join(name),
            )
            .expect("a bundled mapping is copied");
        }
        let server_section = options
            .token
            .map(|token| format!("server: {{ admin_token: \"{token}\" }}\n"))
            .unwrap_or_default();
        workspace.write_config(&format!(
            "version: 1
mappings: mappings
data: data
{server_section}retry: {{ first_after_seconds: 1, at_most_every_seconds: 2 }}
sources:
  web: {{ type: segment, keys: [{WRITE_KEY}] }}
connections:
  events: {{ source: web, mapping: sink, settings: {{ key: '${{SINK_KEY}}' }}, base_url: \"{url}\" }}
  profiles: {{ source: web, mapping: profiles, settings: {{ key: '${{SINK_KEY}}' }}, base_url: \"{url}\" }}
",
            url = destination.url
        ));
        let server = Ferry::start(&workspace);
        Some(Console {
            browser,
            server,
            workspace,
            destination,
            _turn: turn,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// Opens `path` of the console and waits for its load.
    fn go(&mut self, path: &str) {
        let url = self.url(path);
        self.browser.navigate(&url);
    }

    /// [`Browser::wait_for`] with the generous deadline.
    fn wait_for(&mut self, what: &str, condition: &str) -> Value {
        self.browser.wait_for(what, condition, WAIT)
    }

    /// Opens the overview and waits until its live stream is subscribed.
    fn overview(&mut self) {
        self.go("/console");
        self.wait_for(
            "the live stream",
            "document.getElementById('live-state').textContent === 'live'",
        );
        // Loopback needs no token: the page does not ask for one.
        let asks = self.browser.evaluate(
            "document.getElementById('token-form').checkVisibility()
             || document.getElementById('notice').checkVisibility()",
        );
        assert_eq!(
            asks,
            json!(false),
            "the overview asks for a token on loopback"
        );
    }

    /// The rows of the live events, newest first: id, source, type, name, user, and the status
    /// of each connection's fate (`events`, `profiles`).
    fn rows(&mut self) -> Vec<Value> {
        let rows = self.browser.evaluate(ROWS);
        rows.as_array().cloned().unwrap_or_default()
    }

    /// Waits until the event of each id has a settled fate for both connections; the rows.
    fn wait_for_settled(&mut self, count: usize) -> Vec<Value> {
        self.wait_for(
            &format!("{count} events settled for both connections"),
            &format!(
                "(() => {{
                    const rows = {ROWS};
                    const settled = (status) => ['delivered', 'skipped', 'dead'].includes(status);
                    return rows.length >= {count}
                        && rows.every((row) => settled(row.fates.events) && settled(row.fates.profiles));
                }})()"
            ),
        );
        self.rows()
    }

    /// Saves a screenshot of the viewport as `NAME.png` where `FERRY_CONSOLE_SCREENSHOTS`
    /// says (relative to the repository), after checking its size.
    fn screenshot(&mut self, name: &str) {
        // Let the charts draw (they are drawn in the next animation frame).
        self.browser.evaluate(
            "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))",
        );
        let png = self.browser.screenshot();
        assert_eq!(png_size(&png), Some((WIDTH, HEIGHT)), "{name}.png");
        if let Some(dir) = std::env::var_os("FERRY_CONSOLE_SCREENSHOTS") {
            let dir = root().join(dir);
            std::fs::create_dir_all(&dir).expect("the screenshots' folder");
            std::fs::write(dir.join(format!("{name}.png")), png).expect("a screenshot is written");
        }
    }

    /// What the page logged that tells of a problem: an uncaught exception, an error, or a
    /// Content-Security-Policy violation.
    fn problems(&mut self) -> Vec<String> {
        self.browser
            .log()
            .into_iter()
            .filter(|line| {
                line.starts_with("uncaught")
                    || line.contains("Content Security Policy")
                    || line.starts_with("console.error")
            })
            .collect()
    }
}

/// The live rows as JSON, newest first.
const ROWS: &str = "[...document.querySelectorAll('#live-events tr[data-id]')].map((row) => ({
    id: Number(row.dataset.id),
    source: row.querySelector('td.event-source').textContent,
    type: row.querySelector('td.event-type').textContent,
    name: row.querySelector('td.event-name').textContent,
    user: row.querySelector('td.event-user').textContent,
    fates: Object.fromEntries([...row.querySelectorAll('td.fates div.fate')]
        .map((fate) => [fate.dataset.connection, fate.dataset.status])),
}))";

/// The repository.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Waits (at most [`WAIT`]) until `found` answers something.
fn eventually<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET PATH` with `Host: HOST` (and the admin token, when given): the status and body.
fn get_as(server: &Ferry, path: &str, host: &str, token: Option<&str>) -> (u16, String) {
    let authorization = token
        .map(|token| format!("authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n{authorization}connection: close\r\n\r\n");
    raw(&server.url, request.as_bytes())
}

// ---- live events from the Segment SDK ----------------------------------------------------

/// Whether the Segment Node SDK is installed; panics when it must be and is not.
fn segment_sdk_installed() -> bool {
    let package = root().join("tests/sdk/node_modules/@segment/analytics-node/package.json");
    if package.is_file() {
        return true;
    }
    assert!(
        std::env::var("FERRY_REQUIRE_SDK_TESTS").as_deref() != Ok("1"),
        "FERRY_REQUIRE_SDK_TESTS=1 but the Segment SDK is not installed: run `npm ci --prefix tests/sdk`"
    );
    eprintln!("skipped: this test needs the Segment SDK; run `npm ci --prefix tests/sdk`");
    false
}

/// Runs `tests/sdk/segment.mjs` against `url` and answers when its `closeAndFlush` resolved
/// (Unix milliseconds, read by node right then: the SDK had every call acknowledged).
fn run_segment_sdk(url: &str, dir: &Path) -> i64 {
    let script = root()
        .join("tests/sdk/segment.mjs")
        .canonicalize()
        .expect("tests/sdk/segment.mjs");
    let module = serde_json::to_string(&format!("file://{}", script.display())).expect("text");
    // The script's top-level await ends with the flush; the import resolves right after.
    let program = format!("await import({module}); console.log('flushed-at ' + Date.now());");
    let sdk = root().join("tests/sdk");
    let run = node::run(
        "segment",
        &["--input-type=module", "-e", &program],
        &[("FERRY_URL", url), ("FERRY_WRITE_KEY", WRITE_KEY)],
        &sdk,
        dir,
        Duration::from_mins(2),
    );
    let (stdout, stderr) = (run.stdout, run.stderr);
    assert!(
        run.status.success(),
        "the Segment SDK failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("flushed-at ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("node printed no flush time:\n{stdout}\n{stderr}"))
}

/// Records, in the page, when each live row first appeared (Unix milliseconds, by `id`).
const WATCH_ROWS: &str = "(() => {
    window.seenAt = {};
    const rows = document.getElementById('live-events');
    const note = (row) => {
        if (row.dataset && row.dataset.id && !(row.dataset.id in window.seenAt)) {
            window.seenAt[row.dataset.id] = Date.now();
        }
    };
    new MutationObserver((changes) => {
        for (const change of changes) for (const node of change.addedNodes) note(node);
    }).observe(rows, { childList: true });
    for (const row of rows.children) note(row);
    return true;
})()";

/// Records, in the page, when each row's fates were all settled for both connections.
const WATCH_FATES: &str = "(() => {
    window.settledAt = {};
    const rows = document.getElementById('live-events');
    const check = () => {
        for (const row of rows.querySelectorAll('tr[data-id]')) {
            if (row.dataset.id in window.settledAt) continue;
            const done = [...row.querySelectorAll('div.fate')]
                .filter((fate) => ['delivered', 'skipped', 'dead'].includes(fate.dataset.status));
            if (done.length >= 2) window.settledAt[row.dataset.id] = Date.now();
        }
    };
    new MutationObserver(check).observe(rows, { childList: true, subtree: true });
    check();
    return true;
})()";

#[test]
fn sdk_events_show_live_within_a_second_with_what_each_connection_made_of_them() {
    if !segment_sdk_installed() {
        return;
    }
    let Some(mut console) = Console::open(&Options::default()) else {
        return;
    };
    console.overview();
    console.browser.evaluate(WATCH_ROWS);
    console.browser.evaluate(WATCH_FATES);
    assert!(console.rows().is_empty(), "a fresh server shows no events");

    let flushed = run_segment_sdk(&console.server.url, console.workspace.path());

    // The page noted when each row came and when its fates were all settled. The rows must
    // be there within a second of the flush; the fates within the generous deadline only:
    // delivery runs at the lowest CPU priority, so on a busy machine it yields to the rest.
    let appeared = noted_within(&mut console, "seenAt", "showed", flushed, APPEAR_MS);
    let rows = console.wait_for_settled(5);
    let settled = noted_within(
        &mut console,
        "settledAt",
        "had every fate",
        flushed,
        WAIT_MS,
    );
    eprintln!(
        "the SDK's 5 events were on the page {appeared} ms, and every fate of them {settled} ms, \
         after the SDK's flush resolved (negative: before)"
    );
    let mut shown: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "source": row["source"], "type": row["type"], "name": row["name"],
                "user": row["user"], "fates": row["fates"],
            })
        })
        .collect();
    shown.reverse();
    let fates = |events: &str, profiles: &str| json!({ "events": events, "profiles": profiles });
    assert_eq!(
        shown,
        vec![
            json!({ "source": "web", "type": "identify", "name": "", "user": "u-1001", "fates": fates("skipped", "delivered") }),
            json!({ "source": "web", "type": "track", "name": "Signed Up", "user": "u-1001", "fates": fates("delivered", "skipped") }),
            json!({ "source": "web", "type": "track", "name": "Order Completed", "user": "u-1001", "fates": fates("delivered", "skipped") }),
            json!({ "source": "web", "type": "page", "name": "Pricing", "user": "u-1001", "fates": fates("skipped", "skipped") }),
            json!({ "source": "web", "type": "track", "name": "Referral Shared", "user": "u-1001", "fates": fates("delivered", "skipped") }),
        ],
        "the live rows, oldest first"
    );

    // The destination got what the page says was delivered.
    let received = console
        .destination
        .wait_for("4 deliveries", |r| r.len() >= 4);
    let mut delivered: Vec<String> = received
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.method,
                r.path,
                r.body["event"].as_str().unwrap_or("")
            )
        })
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        [
            "POST /events Order Completed",
            "POST /events Referral Shared",
            "POST /events Signed Up",
            "PUT /people ",
        ]
    );

    // The connections' counts follow (the overview is read every 2 s).
    let counts = console.wait_for(
        "the connections' delivered counts",
        "(() => {
            const count = (name) => Number(document.querySelector(
                `#connections tr[data-connection=${name}] td[data-count=delivered]`)?.textContent);
            return count('events') + count('profiles') >= 10 && [count('events'), count('profiles')];
        })()",
    );
    // An event a mapping skips counts as delivered: it settled without failing.
    assert_eq!(counts, json!([5, 5]));
    let sources = console.wait_for(
        "the source's received count",
        "document.querySelector('#sources tr[data-source=web]')?.children[3].textContent",
    );
    assert_eq!(sources, json!("5"));

    // One event's page: as stored, each connection's plan, trace and exchanges.
    let identify = rows
        .iter()
        .find(|row| row["type"] == "identify")
        .expect("the identify")["id"]
        .clone();
    identify_page(&mut console, &identify);
    let problems = console.problems();
    assert!(
        problems.is_empty(),
        "the page logged problems: {problems:?}"
    );
}

/// Waits until the page noted (in `window.NAME`, by row) the SDK's five events, and answers
/// how long after `flushed` the last of them was noted; fails past `limit_ms`.
fn noted_within(console: &mut Console, name: &str, what: &str, flushed: i64, limit_ms: i64) -> i64 {
    let deadline = Instant::now() + WAIT;
    let noted = loop {
        let noted = console.browser.evaluate(&format!("window.{name}"));
        if let Some(noted) = noted.as_object().filter(|n| n.len() >= 5) {
            break noted.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the SDK's 5 events never {what} within {WAIT:?}: {noted}\n{}",
            console.server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let last = noted
        .values()
        .filter_map(Value::as_i64)
        .max()
        .expect("times");
    let after = last - flushed;
    assert!(
        after <= limit_ms,
        "the SDK's events {what} {after} ms after its flush, more than {limit_ms} ms: {noted:?}"
    );
    after
}

/// The page of the SDK's identify: as stored, what `profiles` planned (secrets redacted), its
/// trace, and the exchange with the destination.
fn identify_page(console: &mut Console, id: &Value) {
    console.go(&format!("/console/events/{id}"));
    console.wait_for(
        "the event's page",
        "document.querySelector('section.connection[data-connection=profiles] .exchange')",
    );
    let stored: Value = serde_json::from_str(
        console
            .browser
            .evaluate("document.getElementById('event-body').textContent")
            .as_str()
            .expect("text"),
    )
    .expect("the stored event is shown as JSON");
    assert_eq!(stored["messageId"], "sdk-seg-identify");
    assert_eq!(stored["traits"]["email"], "ada@example.com");
    let planned: Value = serde_json::from_str(
        console
            .browser
            .evaluate(
                "document.querySelector('section.connection[data-connection=profiles] pre.planned-request').textContent",
            )
            .as_str()
            .expect("text"),
    )
    .expect("the planned request is shown as JSON");
    assert_eq!(planned["method"], "PUT");
    assert_eq!(planned["headers"]["Authorization"], "Bearer [redacted]");
    let page = console
        .browser
        .evaluate("document.getElementById('page').textContent");
    let page = page.as_str().expect("text");
    assert!(
        !page.contains(SINK_KEY),
        "the event page shows the secret key"
    );
    let trace = console.browser.evaluate(
        "document.querySelector('section.connection[data-connection=profiles] pre.trace').textContent",
    );
    assert!(
        trace
            .as_str()
            .is_some_and(|t| t.contains("email <- `$.traits.email`")),
        "{trace}"
    );
    // What was sent, and the destination's answer to its one attempt.
    let exchange = console.browser.evaluate(
        "(() => {
            const section = document.querySelector('section.connection[data-connection=profiles]');
            return {
                sent: section.querySelector('.exchange pre.sent').textContent,
                attempts: [...section.querySelectorAll('table.attempts tbody tr')]
                    .map((row) => row.lastElementChild.textContent),
            };
        })()",
    );
    let sent = exchange["sent"].as_str().expect("text");
    assert!(sent.starts_with("PUT http://127.0.0.1:"), "{sent}");
    assert!(sent.contains("/people"), "{sent}");
    assert!(!sent.contains(SINK_KEY), "the secret key is shown: {sent}");
    assert_eq!(exchange["attempts"], json!(["200"]));
}

// ---- dead letters --------------------------------------------------------------------------

/// The console API's dead letters (answered to loopback).
fn dead_letters(server: &Ferry) -> Vec<Value> {
    let (status, body) = http("GET", &format!("{}/console/api/dead", server.url), &[], "");
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).expect("JSON");
    listed["letters"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_dead_letter_replayed_from_its_page_reaches_the_destination() {
    let Some(mut console) = Console::open(&Options::default()) else {
        return;
    };
    // The destination refuses everything at first: the tracks are dead letters of `events`.
    console.destination.answer_with(400);
    let events = [
        json!({"type": "track", "event": "Order Completed", "userId": "ann", "messageId": "dead-1"}),
        json!({"type": "track", "event": "Signed Up", "userId": "bob", "messageId": "dead-2"}),
    ];
    assert_eq!(post_batch(&console.server.url, &events).0, 200);
    eventually("two dead letters", || {
        Some(dead_letters(&console.server)).filter(|l| l.len() == 2)
    });

    console.go("/console/dead");
    console.wait_for(
        "both dead letters listed",
        "document.querySelectorAll('#dead-letters tr[data-id]').length === 2",
    );
    // Inspect the first: its event, the reason, the last request and its 400.
    let first = console
        .browser
        .evaluate("document.querySelector('#dead-letters tr[data-id]').dataset.id");
    let first = first.as_str().expect("an id").to_owned();
    console.browser.click(&format!(
        "#dead-letters tr[data-id='{first}'] [data-action=inspect]"
    ));
    let detail = console.wait_for(
        "the inspected dead letter",
        "document.getElementById('dead-letter')?.textContent",
    );
    let detail = detail.as_str().expect("text");
    assert!(detail.contains("Last request"), "{detail}");
    assert!(detail.contains("POST "), "{detail}");
    assert!(detail.contains("400"), "{detail}");
    let inspected: Value = serde_json::from_str(
        console
            .browser
            .evaluate("document.querySelector('#dead-letter pre.dead-event').textContent")
            .as_str()
            .expect("text"),
    )
    .expect("the dead event is shown as JSON");
    let replayed_id = inspected["messageId"]
        .as_str()
        .expect("a messageId")
        .to_owned();
    assert!(!detail.contains(SINK_KEY), "the secret key is shown");

    // The destination answers 200 again; the dead letter is replayed from its row.
    console.destination.answer_with(200);
    console.browser.click(&format!(
        "#dead-letters tr[data-id='{first}'] [data-action=replay]"
    ));
    console.wait_for(
        "the replay's notice",
        "document.getElementById('notice').textContent.includes('queued again')",
    );
    console
        .destination
        .wait_for("the replayed event delivered", |_| {
            console.destination.ids().get(&replayed_id) == Some(&1)
        });
    console.wait_for(
        "the replayed letter gone from the list",
        &format!(
            "document.querySelectorAll('#dead-letters tr[data-id]').length === 1
             && !document.querySelector(\"#dead-letters tr[data-id='{first}']\")"
        ),
    );

    // The other one is purged with "Purge these", which asks to be clicked twice.
    console.browser.click("#purge-shown");
    let armed = console
        .browser
        .evaluate("document.getElementById('purge-shown').textContent");
    assert_eq!(armed, json!("Purge these: click again to confirm"));
    assert_eq!(dead_letters(&console.server).len(), 1, "one click purges");
    console.browser.click("#purge-shown");
    console.wait_for(
        "the list emptied",
        "document.getElementById('notice').textContent.includes('purged')
         && document.querySelectorAll('#dead-letters tr[data-id]').length === 0",
    );
    assert!(dead_letters(&console.server).is_empty());
    let other = if replayed_id == "dead-1" {
        "dead-2"
    } else {
        "dead-1"
    };
    assert_eq!(
        console.destination.ids().get(other),
        None,
        "the purged event was delivered"
    );
    let problems = console.problems();
    assert!(
        problems.is_empty(),
        "the page logged problems: {problems:?}"
    );
}

// ---- the playground --------------------------------------------------------------------------

/// `ferry map` of `mapping` with the settings file, the clock pinned and `--trace`: the
/// requests (its JSON lines) and the trace (its `event N: ...` lines on stderr).
fn ferry_map(
    dir: &Path,
    mapping: &Path,
    settings: &Path,
    events: &Path,
    batch: bool,
) -> (Vec<Value>, Vec<String>) {
    let mut command = Command::new(support::ferry::binary());
    command
        .arg("map")
        .arg("--mapping")
        .arg(mapping)
        .arg("--settings")
        .arg(settings)
        .args(["--now", NOW, "--trace"])
        .arg(events)
        .current_dir(dir);
    if batch {
        command.arg("--batch");
    }
    let out = command.output().expect("ferry map runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let requests: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(!requests.is_empty(), "ferry map planned nothing:\n{stderr}");
    let trace = stderr
        .lines()
        .filter(|line| line.starts_with("event "))
        .map(str::to_owned)
        .collect();
    (requests, trace)
}

/// Runs `mapping` (a file of the server's mappings folder) in the playground with `settings`
/// and `events`, as a user would, and compares the page with `ferry map`.
fn playground_matches_ferry_map(
    console: &mut Console,
    mapping: &str,
    settings: &str,
    events: &str,
    batch: bool,
) {
    let dir = console.workspace.path().to_path_buf();
    let settings_file = dir.join("playground-settings.yaml");
    std::fs::write(&settings_file, settings).expect("the settings");
    let events_file = dir.join("playground-events.ndjson");
    std::fs::write(&events_file, events).expect("the events");
    let (requests, trace) = ferry_map(
        &dir,
        &dir.join("mappings").join(mapping),
        &settings_file,
        &events_file,
        batch,
    );

    console.browser.select("#playground-mapping", mapping);
    console.browser.fill("#playground-settings", settings);
    console.browser.fill("#playground-events", events);
    console.browser.fill("#playground-now", NOW);
    let batched = console
        .browser
        .evaluate("document.getElementById('playground-batch').checked");
    if batched != json!(batch) {
        console.browser.click("#playground-batch");
    }
    assert_eq!(
        console
            .browser
            .evaluate("document.getElementById('playground-batch').checked"),
        json!(batch)
    );
    console.browser.click("#playground-run");
    let shown = console.wait_for(
        &format!("{} requests of {mapping}", requests.len()),
        &format!(
            "(() => {{
                const shown = [...document.querySelectorAll('#playground-requests pre.request')];
                return shown.length === {count} && shown.map((pre) => JSON.parse(pre.textContent));
            }})()",
            count = requests.len()
        ),
    );
    assert_eq!(
        shown,
        Value::Array(requests),
        "the playground's requests for {mapping} are not those of ferry map"
    );
    let shown_trace = console
        .browser
        .evaluate("document.getElementById('playground-trace').textContent");
    let shown_trace: Vec<&str> = shown_trace.as_str().expect("text").lines().collect();
    assert_eq!(
        shown_trace, trace,
        "the playground's trace for {mapping} is not that of ferry map --trace"
    );
}

#[test]
fn the_playground_shows_what_ferry_map_prints() {
    let Some(mut console) = Console::open(&Options {
        bundled: &["extole.yaml", "segment-braze.yaml"],
        ..Options::default()
    }) else {
        return;
    };
    console.go("/console/playground");
    console.wait_for(
        "the mapping files listed",
        "document.querySelector('#playground-mapping option[value=\"extole.yaml\"]')",
    );
    let options = console.browser.evaluate(
        "[...document.querySelectorAll('#playground-mapping option')].map((o) => o.value).filter(Boolean)",
    );
    assert_eq!(
        options,
        json!([
            "extole.yaml",
            "profiles.yaml",
            "segment-braze.yaml",
            "sink.yaml"
        ])
    );

    let segment = std::fs::read_to_string(root().join("examples/segment-events.ndjson"))
        .expect("the sample events");
    playground_matches_ferry_map(
        &mut console,
        "extole.yaml",
        "api_key: demo-key\n",
        &segment,
        false,
    );
    let braze = std::fs::read_to_string(root().join("examples/segment-braze-events.ndjson"))
        .expect("the sample events");
    playground_matches_ferry_map(
        &mut console,
        "segment-braze.yaml",
        "instance_url: https://rest.iad-01.braze.com\nrest_api_key: demo-key\n",
        &braze,
        true,
    );

    // A broken mapping: its problems, located as `ferry validate` prints them.
    let broken = "version: 1\nname: broken\nsource: segment\nactions:\n  track:\n    when: { type: track }\n    request: { method: POST, path: /x, body: { id: { from: $.messageId, requird: true } } }\n";
    console.browser.fill("#playground-file", "broken.yaml");
    console.browser.fill("#playground-yaml", broken);
    console.browser.click("#playground-run");
    let problems = console.wait_for(
        "the mapping's problems",
        "(() => {
            const shown = [...document.querySelectorAll('#playground-problems pre.problem')];
            return shown.length > 0 && shown.map((pre) => pre.textContent);
        })()",
    );
    let dir = console.workspace.path().to_path_buf();
    std::fs::write(dir.join("broken.yaml"), broken).expect("the broken mapping");
    let validated = Command::new(support::ferry::binary())
        .args(["validate", "broken.yaml"])
        .current_dir(&dir)
        .output()
        .expect("ferry validate runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    let problems = problems.as_array().expect("problems");
    assert_eq!(problems.len(), 2, "{problems:?}");
    for problem in problems {
        let problem = problem.as_str().expect("text");
        assert!(
            problem.contains("broken.yaml:") && printed.contains(problem.trim_end()),
            "the playground's problem\n{problem}\nis not one ferry validate prints:\n{printed}"
        );
    }
    let problems = console.problems();
    assert!(
        problems.is_empty(),
        "the page logged problems: {problems:?}"
    );
}

// ---- hostile event text --------------------------------------------------------------------

/// Nothing of the event data became markup: no `img` or `script` in the page's body, and
/// nothing ran.
const UNHARMED: &str =
    "document.body.querySelectorAll('img, script, iframe, object, embed').length === 0
    && window.__pwned === undefined";

#[test]
fn event_text_that_looks_like_html_is_shown_as_text() {
    let Some(mut console) = Console::open(&Options::default()) else {
        return;
    };
    let identify = json!({
        "type": "identify", "messageId": "xss-identify", "userId": IMG,
        "traits": { "email": IMG, "name": SCRIPT },
    });
    let track = json!({
        "type": "track", "messageId": "xss-track", "userId": IMG, "event": SCRIPT,
        "properties": { "note": format!("{IMG}{SCRIPT}") },
    });

    // Live: the events arrive on the open overview through the stream.
    console.overview();
    assert_eq!(
        post_batch(&console.server.url, &[identify.clone(), track.clone()]).0,
        200
    );
    let check = |console: &mut Console| {
        let rows = console.wait_for_settled(2);
        let track_row = rows.iter().find(|r| r["type"] == "track").expect("a track");
        assert_eq!(track_row["name"], SCRIPT);
        assert_eq!(track_row["user"], IMG);
        let identify_row = rows
            .iter()
            .find(|r| r["type"] == "identify")
            .expect("an identify");
        assert_eq!(identify_row["user"], IMG);
        // An image's error handler would run after its load fails: give it the time to.
        console
            .browser
            .evaluate("new Promise((done) => setTimeout(done, 300))");
        assert_eq!(console.browser.evaluate(UNHARMED), json!(true));
        rows
    };
    check(&mut console);
    // Loaded: the same events from the list the page reads when it opens.
    console.overview();
    let rows = check(&mut console);

    // Each event's page: as stored, the planned requests, the trace and the exchanges.
    for row in &rows {
        let (id, sent) = if row["type"] == "track" {
            (&row["id"], &track)
        } else {
            (&row["id"], &identify)
        };
        console.go(&format!("/console/events/{id}"));
        console.wait_for(
            "the event's page",
            "document.querySelectorAll('section.connection').length === 2",
        );
        let stored: Value = serde_json::from_str(
            console
                .browser
                .evaluate("document.getElementById('event-body').textContent")
                .as_str()
                .expect("text"),
        )
        .expect("JSON");
        for key in ["userId", "event", "traits", "properties"] {
            assert_eq!(stored[key], sent[key], "{key} as shown");
        }
        let planned = console.browser.evaluate(
            "[...document.querySelectorAll('pre.planned-request')].map((pre) => JSON.parse(pre.textContent))",
        );
        let planned = planned.as_array().expect("requests");
        assert_eq!(planned.len(), 1, "{planned:?}");
        assert_eq!(planned[0]["body"]["user"], IMG);
        let text = console
            .browser
            .evaluate("document.getElementById('page').textContent");
        assert!(text.as_str().expect("text").contains(SCRIPT));
        console
            .browser
            .evaluate("new Promise((done) => setTimeout(done, 300))");
        assert_eq!(console.browser.evaluate(UNHARMED), json!(true));
    }
    let problems = console.problems();
    assert!(
        problems.is_empty(),
        "the page logged problems: {problems:?}"
    );
}

// ---- access ----------------------------------------------------------------------------------

#[test]
fn beyond_loopback_the_console_asks_for_the_admin_token_and_keeps_it_in_the_tab() {
    let Some(mut console) = Console::open(&Options {
        token: Some(TOKEN),
        ..Options::default()
    }) else {
        return;
    };
    let port = console.server.address.port();
    let other = format!("{OTHER_HOST}:{port}");

    // The API: loopback hosts are answered; another host only with the token.
    let server = &console.server;
    assert_eq!(
        get_as(server, "/console/api/overview", "127.0.0.1", None).0,
        200
    );
    assert_eq!(
        get_as(server, "/console/api/overview", "localhost", None).0,
        200
    );
    for path in [
        "/console/api/overview",
        "/console/api/events",
        "/console/api/dead",
    ] {
        let (status, body) = get_as(server, path, &other, None);
        assert_eq!(status, 403, "{path} without the token: {body}");
        assert!(body.contains("Authorization: Bearer"), "{body}");
        assert_eq!(get_as(server, path, &other, Some("wrong")).0, 403, "{path}");
        assert_eq!(get_as(server, path, &other, Some(TOKEN)).0, 200, "{path}");
    }
    // The pages hold no data: they are served to anyone.
    assert_eq!(get_as(server, "/console", &other, None).0, 200);
    // A change must be JSON, and from this origin.
    let purge = |content_type: &str, origin: &str| {
        let request = format!(
            "POST /console/api/dead/purge HTTP/1.1\r\nhost: {other}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: {content_type}\r\n{origin}content-length: 12\r\nconnection: close\r\n\r\n{{\"all\":true}}"
        );
        raw(&server.url, request.as_bytes()).0
    };
    assert_eq!(purge("text/plain", ""), 415);
    assert_eq!(
        purge("application/json", "origin: http://evil.example\r\n"),
        403
    );
    assert_eq!(
        purge("application/json", &format!("origin: http://{other}\r\n")),
        200
    );

    // The page, opened from the other host: it asks for the token and shows no data.
    let page = format!("http://{other}/console");
    console.browser.navigate(&page);
    console.wait_for(
        "the token form",
        "document.getElementById('token-form').checkVisibility()
         && document.getElementById('notice').checkVisibility()
         && document.getElementById('notice').textContent.includes('admin token')",
    );
    assert_eq!(
        console
            .browser
            .evaluate("document.querySelectorAll('#connections tr[data-connection]').length"),
        json!(0)
    );
    console.wait_for(
        "the live state",
        "document.getElementById('live-state').textContent === 'needs the admin token'",
    );
    console.screenshot("token");

    console.browser.fill("#token-input", TOKEN);
    console.browser.click("#token-form button[type=submit]");
    console.wait_for(
        "the page with data, after a reload",
        "document.querySelector('#connections tr[data-connection=events]')
         && document.getElementById('live-state').textContent === 'live'
         && !document.getElementById('token-form').checkVisibility()",
    );
    // The token stays in this tab: not in the URL, not in a cookie.
    assert_eq!(
        console
            .browser
            .evaluate("sessionStorage.getItem('ferry-admin-token')"),
        json!(TOKEN)
    );
    assert_eq!(console.browser.evaluate("document.cookie"), json!(""));
    assert_eq!(console.browser.evaluate("location.href"), json!(page));

    // The live stream carries the token too: an event shows.
    let event =
        json!({"type": "track", "event": "Signed Up", "userId": "tok", "messageId": "tok-1"});
    assert_eq!(post_batch(&console.server.url, &[event]).0, 200);
    console.wait_for(
        "the event, live",
        "[...document.querySelectorAll('#live-events td.event-user')].some((td) => td.textContent === 'tok')",
    );
    let problems: Vec<String> = console
        .problems()
        .into_iter()
        // The refused first reads are logged by the browser as failed loads.
        .filter(|line| !line.contains("403"))
        .collect();
    assert!(
        problems.is_empty(),
        "the page logged problems: {problems:?}"
    );
}

#[test]
fn the_console_can_be_turned_off() {
    let destination = Destination::start();
    let workspace = Workspace::new(&destination.url);
    let text = workspace
        .config_text()
        .replace("version: 1\n", "version: 1\nserver: { console: false }\n");
    workspace.write_config(&text);
    let server = Ferry::start(&workspace);
    for path in [
        "/console",
        "/console/dead",
        "/console/assets/console.js",
        "/console/api/overview",
        "/console/api/stream",
    ] {
        let (status, body) = http("GET", &format!("{}{path}", server.url), &[], "");
        assert_eq!(status, 404, "{path}: {body}");
    }
    // The rest of the server is on.
    let (status, _) = http(
        "POST",
        &format!("{}/v1/batch", server.url),
        &[("Authorization", &basic(WRITE_KEY))],
        r#"{"batch":[{"type":"track","event":"x","userId":"u","messageId":"off-1"}]}"#,
    );
    assert_eq!(status, 200);
}

// ---- every page, as the docs show it ---------------------------------------------------------

/// Traffic of a small shop: tracks, identifies and pages of several users at a changing rate,
/// for seven seconds (forty when the screenshots are kept, so that the charts have a shape);
/// the user `refuse-me` is refused by the destination (dead letters), and one request comes
/// with a wrong write key (refused whole).
fn shop_traffic(server: &Ferry) {
    let ticks = if std::env::var_os("FERRY_CONSOLE_SCREENSHOTS").is_some() {
        200
    } else {
        36
    };
    let users = [
        "ada",
        "grace",
        "alan",
        "edsger",
        "barbara",
        "katherine",
        "donald",
    ];
    let names = [
        "Product Viewed",
        "Order Completed",
        "Signed Up",
        "Product Viewed",
    ];
    let mut n = 0usize;
    for tick in 0..ticks {
        let burst = [1, 2, 4, 3, 1, 0, 2, 5, 3, 1, 2, 1][tick % 12];
        let batch: Vec<Value> = (0..burst)
            .map(|_| {
                n += 1;
                // Now and then an order of a user the destination refuses: a dead letter.
                let user = if n % 45 == 17 {
                    "refuse-me"
                } else {
                    users[(n * 5 + n / 7) % users.len()]
                };
                let id = format!("shop-{n}");
                match n % 6 {
                    0 => json!({"type": "identify", "messageId": id, "userId": user,
                        "traits": {"email": format!("{user}@example.com"), "plan": "pro"}}),
                    1 => {
                        json!({"type": "page", "messageId": id, "userId": user, "name": "Pricing"})
                    }
                    _ => json!({"type": "track", "messageId": id, "userId": user,
                        "event": names[n % names.len()],
                        "properties": {"order_id": format!("o-{n}"), "revenue": 20 + n % 40}}),
                }
            })
            .collect();
        if !batch.is_empty() {
            assert_eq!(post_batch(&server.url, &batch).0, 200);
        }
        if tick == ticks / 2 {
            let (status, _) = http(
                "POST",
                &format!("{}/v1/batch", server.url),
                &[("Authorization", &basic("not-a-key"))],
                r#"{"batch":[{"type":"track","event":"x","userId":"u"}]}"#,
            );
            assert_eq!(status, 401);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A mapping with a mistake, for the playground's problems.
fn broken_sink() -> String {
    support::sink_mapping("v1").replace("method: POST", "methd: POST")
}

#[test]
fn every_page_is_captured_for_the_docs() {
    let Some(mut console) = Console::open(&Options::default()) else {
        return;
    };
    console.destination.refuse(true);
    console.destination.delay(Duration::from_millis(15));
    console.overview();
    shop_traffic(&console.server);
    console.wait_for(
        "every event settled",
        "(() => {
            const rows = [...document.querySelectorAll('#live-events tr[data-id]')];
            return rows.length > 40 && rows.every((row) =>
                [...row.querySelectorAll('div.fate')].filter((fate) =>
                    ['delivered', 'skipped', 'dead'].includes(fate.dataset.status)).length === 2);
        })()",
    );
    console.wait_for(
        "the dead letters counted",
        "Number(document.querySelector('#connections tr[data-connection=events] td[data-count=dead]')?.textContent) > 0",
    );
    console.screenshot("overview");

    // One order, delivered.
    let order = console.wait_for(
        "an order",
        "[...document.querySelectorAll('#live-events tr[data-id]')].find((row) =>
            row.querySelector('td.event-name').textContent === 'Order Completed'
            && row.querySelector('div.fate[data-connection=events][data-status=delivered]'))?.dataset.id",
    );
    let order = order.as_str().expect("an id").to_owned();
    console.go(&format!("/console/events/{order}"));
    console.wait_for(
        "the order's exchange",
        "document.querySelector('section.connection[data-connection=events] .exchange')",
    );
    console.screenshot("event");

    // The dead letters, one inspected.
    console.go("/console/dead");
    console.wait_for(
        "the dead letters",
        "document.querySelector('#dead-letters tr[data-id] [data-action=inspect]')",
    );
    console
        .browser
        .click("#dead-letters tr[data-id] [data-action=inspect]");
    console.wait_for(
        "the inspected letter",
        "document.querySelector('#dead-letter pre.dead-event')",
    );
    console.browser.evaluate("window.scrollTo(0, 0)");
    console.screenshot("dead-letters");

    // The playground: the test mapping over a recent event.
    console.go("/console/playground");
    console.wait_for(
        "the mapping files",
        "document.querySelector('#playground-mapping option[value=\"sink.yaml\"]')
         && document.querySelectorAll('#playground-recent option').length > 1",
    );
    console.browser.select("#playground-mapping", "sink.yaml");
    console
        .browser
        .fill("#playground-settings", "key: demo-key\n");
    console.browser.fill("#playground-now", NOW);
    console.browser.select("#playground-recent", &order);
    console.wait_for(
        "the order's request",
        "document.querySelector('#playground-requests pre.request')",
    );
    console.browser.evaluate("window.scrollTo(0, 0)");
    console.screenshot("playground");

    console.browser.fill("#playground-yaml", &broken_sink());
    console.wait_for(
        "the mapping's problem",
        "document.querySelector('#playground-problems pre.problem')",
    );
    console.browser.evaluate("window.scrollTo(0, 0)");
    console.screenshot("playground-error");
    let problems = console.problems();
    assert!(
        problems.is_empty(),
        "the page logged problems: {problems:?}"
    );
}
