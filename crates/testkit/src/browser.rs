//! A headless Chromium driven over the DevTools protocol, for the console's browser tests: a
//! small blocking client (one WebSocket, one page) that navigates, evaluates JavaScript, waits
//! for a condition, clicks and types as a user does, and captures screenshots.
//!
//! ```text
//! test --launch--> chromium --headless=new --remote-debugging-port=0 --user-data-dir=TMP
//!      <--TMP/DevToolsActivePort (port, browser path)--
//!      --WebSocket: Target.createTarget, Target.attachToTarget (flatten)--> one page session
//!      --{id, sessionId, method, params}--> ... <--{id, result} | {method, params} (events)--
//! ```
//!
//! Tests call [`Browser::launch`] (or [`chromium`] first): without Chromium it prints a note and
//! answers `None`, so that `cargo test --workspace` passes with only Rust installed, unless
//! `FERRY_REQUIRE_BROWSER_TESTS=1` says the tests must run, and then it panics. The browser (and
//! every process it started) is killed when the [`Browser`] is dropped.

use std::fs::File;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Set to `1` to make tests that need Chromium fail, instead of passing with a note, when it is
/// not installed (CI sets it).
pub const REQUIRE_VAR: &str = "FERRY_REQUIRE_BROWSER_TESTS";

/// The names Chromium goes by on `PATH`, in the order they are tried.
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// How long the browser may take to start and open its page.
const START: Duration = Duration::from_mins(1);
/// How long one protocol command may take (a navigation's load is waited for separately).
const COMMAND: Duration = Duration::from_mins(1);
/// How long a page may take to load.
const LOAD: Duration = Duration::from_mins(1);

/// The viewport every page is drawn in, and so the size of every screenshot.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 800;

/// The Chromium binary: `$CHROMIUM_BIN`, else the first of `chromium`, `chromium-browser`,
/// `google-chrome` found on `PATH`. `None`, after a note on stderr, when there is none; panics
/// instead when `FERRY_REQUIRE_BROWSER_TESTS=1`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(found) = find() {
        return Some(found);
    }
    assert!(
        std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
        "{REQUIRE_VAR}=1 but no Chromium was found (tried $CHROMIUM_BIN and {NAMES:?} on PATH): \
         run `apt-get install chromium`, or set CHROMIUM_BIN to the browser"
    );
    eprintln!(
        "skipped: this test needs Chromium; `apt-get install chromium` installs it \
         ({REQUIRE_VAR}=1 makes its absence a failure)"
    );
    None
}

fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM_BIN") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium with one page open, driven over the DevTools protocol.
pub struct Browser {
    socket: WebSocket<TcpStream>,
    process: Process,
    /// The page's session: every command is sent to it.
    session: String,
    next_id: u64,
    /// What the page logged: console messages, uncaught exceptions, browser log entries
    /// (Content-Security-Policy violations among them).
    log: Vec<String>,
    loaded: bool,
    /// The profile folder, removed with the browser.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Finds Chromium ([`chromium`]) and launches it: `None` when it is missing and not required.
    pub fn launch() -> Option<Browser> {
        Browser::launch_with(&[])
    }

    /// [`Browser::launch`] with more command-line options, such as
    /// `--host-resolver-rules=MAP ferry.test 127.0.0.1`.
    pub fn launch_with(extra: &[&str]) -> Option<Browser> {
        let binary = chromium()?;
        Some(Browser::start(&binary, extra))
    }

    /// Launches `binary` headless with a fresh profile, opens one page with a
    /// [`WIDTH`]x[`HEIGHT`] viewport, and connects to it. Panics, with the browser's output,
    /// when it does not start.
    pub fn start(binary: &Path, extra: &[&str]) -> Browser {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut process = spawn(binary, extra, dir.path());
        let (port, path) = devtools_address(binary, &mut process, dir.path());
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("the DevTools port answers");
        stream.set_nodelay(true).expect("no delay");
        stream
            .set_read_timeout(Some(START))
            .expect("a read timeout");
        let (socket, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("the DevTools WebSocket opens");
        // From now on a read gives up every 100 ms, so that waits can keep their deadlines.
        socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a read timeout");
        let mut browser = Browser {
            socket,
            process,
            session: String::new(),
            next_id: 0,
            log: Vec::new(),
            loaded: false,
            dir,
        };
        let target = browser
            .send(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .expect("a page opens");
        let attached = browser
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .expect("the page can be driven");
        attached["sessionId"]
            .as_str()
            .expect("a session id")
            .clone_into(&mut browser.session);
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    /// Sends a command to the page and answers its result; panics when the browser answers an
    /// error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
            .unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    /// Sends a command (to the page when `session` names it) and answers its result, or the
    /// error the browser answered (a page that navigated away while it ran, say).
    fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::Map::new();
        message.insert("id".to_owned(), json!(id));
        message.insert("method".to_owned(), json!(method));
        message.insert("params".to_owned(), params);
        if let Some(session) = session {
            message.insert("sessionId".to_owned(), json!(session));
        }
        let message = Value::Object(message);
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|error| panic!("{method} cannot be sent: {error}"));
        let deadline = Instant::now() + COMMAND;
        loop {
            let Some(message) = self.read(deadline) else {
                panic!(
                    "{method} had no answer within {COMMAND:?}; the page logged:\n{}",
                    self.log_text()
                );
            };
            if message["id"].as_u64() == Some(id) {
                if let Some(error) = message.get("error") {
                    return Err(error.to_string());
                }
                return Ok(message["result"].clone());
            }
            if message.get("method").is_some() {
                self.note(&message);
            }
        }
    }

    /// The next message from the browser, or `None` at `deadline`.
    fn read(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("the browser sends JSON"));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(error))
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(error) => panic!(
                    "the DevTools connection failed: {error}; the browser's output:\n{}",
                    std::fs::read_to_string(self.dir.path().join("chromium.log"))
                        .unwrap_or_default()
                ),
            }
        }
    }

    /// Keeps what an event tells about the page: its log, and whether it loaded.
    fn note(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Page.loadEventFired") => self.loaded = true,
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|arg| {
                        arg.get("value").map_or_else(
                            || arg["description"].as_str().unwrap_or("").to_owned(),
                            |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect();
                self.log.push(format!(
                    "console.{}: {}",
                    params["type"].as_str().unwrap_or("log"),
                    args.join(" ")
                ));
            }
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or_else(|| details["text"].as_str())
                    .unwrap_or("an exception");
                self.log.push(format!("uncaught: {text}"));
            }
            Some("Log.entryAdded") => {
                let entry = &params["entry"];
                self.log.push(format!(
                    "{} {}: {}",
                    entry["source"].as_str().unwrap_or(""),
                    entry["level"].as_str().unwrap_or(""),
                    entry["text"].as_str().unwrap_or("")
                ));
            }
            _ => {}
        }
    }

    /// Reads the events that arrived since the last command.
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(message) = self.read(now) {
            if message.get("method").is_some() {
                self.note(&message);
            }
        }
    }

    /// What the page logged so far: console messages, uncaught exceptions and the browser's
    /// log entries (a Content-Security-Policy violation is one), oldest first.
    pub fn log(&mut self) -> Vec<String> {
        self.drain();
        self.log.clone()
    }

    fn log_text(&self) -> String {
        if self.log.is_empty() {
            "(nothing)".to_owned()
        } else {
            self.log.join("\n")
        }
    }

    /// Opens `url` and waits until the page's `load` event.
    pub fn navigate(&mut self, url: &str) {
        self.drain();
        self.loaded = false;
        let navigated = self.call("Page.navigate", json!({ "url": url }));
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            panic!("{url} did not open: {error}");
        }
        let deadline = Instant::now() + LOAD;
        while !self.loaded {
            if let Some(message) = self.read(deadline) {
                if message.get("method").is_some() {
                    self.note(&message);
                }
                continue;
            }
            panic!(
                "{url} did not load within {LOAD:?}; the page logged:\n{}",
                self.log_text()
            );
        }
    }

    /// Evaluates `expression` in the page (awaiting it when it is a promise) and answers its
    /// value as JSON, or the exception it threw.
    /// A page that navigates while the expression runs answers an error too.
    pub fn try_evaluate(&mut self, expression: &str) -> Result<Value, String> {
        let session = self.session.clone();
        let answer = self.send(
            Some(&session),
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
                "userGesture": true,
            }),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception");
            return Err(text.to_owned());
        }
        Ok(answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// [`Browser::try_evaluate`], panicking (with what the page logged) on an exception.
    pub fn evaluate(&mut self, expression: &str) -> Value {
        match self.try_evaluate(expression) {
            Ok(value) => value,
            Err(error) => {
                self.drain();
                panic!(
                    "`{expression}` threw: {error}\nthe page logged:\n{}",
                    self.log_text()
                )
            }
        }
    }

    /// Waits until `condition` (a JavaScript expression) is truthy, evaluating it every 25 ms,
    /// and answers its value; panics after `timeout`, naming `what`, with the last value (or
    /// exception) and what the page logged.
    pub fn wait_for(&mut self, what: &str, condition: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_evaluate(condition);
            if let Ok(value) = &last
                && truthy(value)
            {
                return value.clone();
            }
            if Instant::now() >= deadline {
                self.drain();
                panic!(
                    "timed out after {timeout:?} waiting for {what} (`{condition}` was {last:?});\n\
                     the page logged:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Clicks the middle of the first element `selector` matches with the mouse, as a user
    /// does (scrolled into view first), and checks that the click reached it: while the page
    /// moves under the pointer (a panel redrawn beside it, say), it tries again. Panics when
    /// nothing matches, or when no click reaches the element within a minute.
    pub fn click(&mut self, selector: &str) {
        let selector_js = serde_json::to_string(selector).expect("text");
        let deadline = Instant::now() + COMMAND;
        loop {
            // Where the element is, whether it is what the pointer would hit there, and a
            // listener that notes the click.
            let point = self.evaluate(&format!(
                "(() => {{
                    const element = document.querySelector({selector_js});
                    if (!element) return null;
                    element.scrollIntoView({{ block: 'center', inline: 'center' }});
                    const box = element.getBoundingClientRect();
                    const x = box.left + box.width / 2;
                    const y = box.top + box.height / 2;
                    const hit = element.contains(document.elementFromPoint(x, y));
                    if (hit) {{
                        window.__ferryClicked = false;
                        element.addEventListener('click', () => {{ window.__ferryClicked = true; }},
                            {{ once: true, capture: true }});
                    }}
                    return {{ x, y, hit }};
                }})()"
            ));
            assert!(
                !point.is_null(),
                "nothing to click: no element matches `{selector}`"
            );
            if point["hit"] == json!(true) {
                let (x, y) = (point["x"].clone(), point["y"].clone());
                self.call(
                    "Input.dispatchMouseEvent",
                    json!({ "type": "mouseMoved", "x": x, "y": y }),
                );
                for kind in ["mousePressed", "mouseReleased"] {
                    self.call(
                        "Input.dispatchMouseEvent",
                        json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
                    );
                }
                // Reached, or the click made the page navigate away (a new page has no note).
                match self.try_evaluate("window.__ferryClicked") {
                    Ok(Value::Bool(false)) => {}
                    _ => return,
                }
            }
            assert!(
                Instant::now() < deadline,
                "no click reached `{selector}` within {COMMAND:?}: something else is over it"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the text of the input or text area `selector` matches with `text`, as typing
    /// it would: focused, its text selected, then `text` inserted (one `input` event). Checks
    /// that the element then holds `text`, and types it again when it does not (the focus
    /// moved away meanwhile, say).
    pub fn fill(&mut self, selector: &str, text: &str) {
        let selector_js = serde_json::to_string(selector).expect("text");
        let text_js = serde_json::to_string(text).expect("text");
        for _ in 0..5 {
            let found = self.evaluate(&format!(
                "(() => {{
                    const element = document.querySelector({selector_js});
                    if (!element) return false;
                    element.scrollIntoView({{ block: 'center' }});
                    element.focus();
                    element.select();
                    return true;
                }})()"
            ));
            assert_eq!(
                found,
                Value::Bool(true),
                "nothing to type into: no element matches `{selector}`"
            );
            if text.is_empty() {
                for kind in ["keyDown", "keyUp"] {
                    self.call(
                        "Input.dispatchKeyEvent",
                        json!({ "type": kind, "key": "Delete", "code": "Delete", "windowsVirtualKeyCode": 46 }),
                    );
                }
            } else {
                self.call("Input.insertText", json!({ "text": text }));
            }
            let typed = self.evaluate(&format!(
                "document.querySelector({selector_js})?.value === {text_js}"
            ));
            if typed == json!(true) {
                return;
            }
        }
        panic!("`{selector}` does not hold what was typed into it");
    }

    /// Picks the option `value` of the select `selector` matches, as a user does (a `change`
    /// event follows).
    pub fn select(&mut self, selector: &str, value: &str) {
        let selector_js = serde_json::to_string(selector).expect("text");
        let value_js = serde_json::to_string(value).expect("text");
        let picked = self.evaluate(&format!(
            "(() => {{
                const element = document.querySelector({selector_js});
                if (!element) return 'no element matches';
                if (![...element.options].some((o) => o.value === {value_js})) return 'no such option';
                element.value = {value_js};
                element.dispatchEvent(new Event('input', {{ bubbles: true }}));
                element.dispatchEvent(new Event('change', {{ bubbles: true }}));
                return 'picked';
            }})()"
        ));
        assert_eq!(
            picked,
            json!("picked"),
            "cannot pick `{value}` in `{selector}`"
        );
    }

    /// A PNG of the viewport ([`WIDTH`]x[`HEIGHT`]).
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": false }),
        );
        let data = shot["data"].as_str().expect("the screenshot's data");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("the screenshot is base64")
    }

    /// Saves [`Browser::screenshot`] to `path`.
    pub fn save_screenshot(&mut self, path: &Path) {
        let png = self.screenshot();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the screenshot's folder");
        }
        std::fs::write(path, png).expect("the screenshot is written");
    }
}

/// Starts `binary` headless with its profile in `dir/profile` and its output in
/// `dir/chromium.log`, in a process group of its own.
fn spawn(binary: &Path, extra: &[&str], dir: &Path) -> Process {
    let profile = dir.join("profile");
    std::fs::create_dir(&profile).expect("the profile folder");
    let log = File::create(dir.join("chromium.log")).expect("the browser's log");
    let mut command = Command::new(binary);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // No crash reporter: it would run in a process group of its own.
            "--disable-breakpad",
            "--disable-crash-reporter",
            "--disable-dev-shm-usage",
            "--mute-audio",
            "--hide-scrollbars",
            "--password-store=basic",
            "--use-mock-keychain",
            // Plain-HTTP test servers: no attempt at HTTPS first.
            "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,Translate,MediaRouter",
            // Timers and frames run on time although nothing is on screen.
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--force-color-profile=srgb",
            "--font-render-hinting=none",
            &format!("--window-size={WIDTH},{HEIGHT}"),
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(extra)
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log"))
        .stderr(log)
        // A process group of its own, so that dropping the browser ends its helpers too.
        .process_group(0);
    Process(command.spawn().unwrap_or_else(|error| {
        panic!("{} does not start: {error}", binary.display());
    }))
}

/// The DevTools port and browser path, from the `DevToolsActivePort` file the browser writes
/// in its profile once it listens.
fn devtools_address(binary: &Path, process: &mut Process, dir: &Path) -> (u16, String) {
    let port_file = dir.join("profile/DevToolsActivePort");
    let output = || std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
    let deadline = Instant::now() + START;
    loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next())
                && let Ok(port) = port.trim().parse::<u16>()
            {
                return (port, path.trim().to_owned());
            }
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!(
                "{} exited with {status} before it listened:\n{}",
                binary.display(),
                output()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} wrote no DevToolsActivePort within {START:?}:\n{}",
            binary.display(),
            output()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Politely first; then [`Process`] kills whatever is left.
        let _ = self.socket.send(Message::text(
            json!({ "id": 0, "method": "Browser.close" }).to_string(),
        ));
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.process.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The browser's process, leader of a process group of its own: dropped (a test's panic
/// included), it sends SIGKILL to the group, the renderers and helpers with it, and reaps it.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// JavaScript's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The width and height a PNG's header gives.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((width, height))
}
