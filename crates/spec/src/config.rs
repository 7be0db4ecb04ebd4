//! `ferry.yaml`, the configuration of `ferry serve`: where events come from (sources and their
//! keys), where they go (connections: a source, a mapping and its settings), and where mappings
//! and the durable store live. Loaded like a mapping: YAML syntax, then every JSON-Schema
//! problem at once, each with file, line, column and snippet. The server checks the rest
//! (mapping names, settings, environment variables) through [`ConfigDocument::diagnostic`].

use std::sync::LazyLock;

use indexmap::IndexMap;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Deserialize;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
use crate::document::{Target, locate};
use crate::explain::schema_problem;
use crate::load::{parse_yaml, typed};
use crate::source_map::SourceMap;

/// The configuration of `ferry serve`. String values may name environment variables as
/// `${NAME}` (write `$$` for a literal `$`), so that secrets stay out of the file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ferry serve configuration")]
pub struct Config {
    /// Version of the configuration format. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The HTTP listener: limits on slow or numerous clients, TLS, and access to `/admin/*`.
    #[serde(default)]
    pub server: Server,
    /// Folder of mapping files, relative to this file. Mappings are found by their `name`.
    #[serde(default = "default_mappings")]
    pub mappings: String,
    /// Folder of the durable store (created if missing), relative to this file.
    #[serde(default = "default_data")]
    pub data: String,
    /// Map events and record the requests (in `DATA/dry-run.ndjson` and the log) instead of
    /// sending them. A connection may override it.
    #[serde(default)]
    pub dry_run: bool,
    /// How the store commits.
    #[serde(default)]
    pub store: Store,
    /// When an event whose delivery failed for now (timeouts, 429, 5xx after the mapping's own
    /// attempts) is tried again, and for how long, before it becomes a dead letter.
    #[serde(default)]
    pub retry: Retry,
    /// Where events come from, by name.
    #[schemars(length(min = 1))]
    pub sources: IndexMap<String, Source>,
    /// Where events go, by name: each connection feeds one source's events through one
    /// mapping with its own settings. One mapping may serve several connections (say Braze
    /// production and staging).
    #[serde(default)]
    pub connections: IndexMap<String, Connection>,
}

/// The HTTP listener. The defaults suit a gateway on the public internet behind no proxy.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Most client connections open at once; a connection beyond it is closed at once, so
    /// that clients that hold connections open cannot take them all.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// A request's headers must arrive whole within this many seconds of the connection being
    /// ready for them. An idle keep-alive connection is closed after as long.
    #[serde(default = "default_header_timeout")]
    #[schemars(range(min = 1))]
    pub header_timeout_seconds: u64,
    /// A request's body must arrive whole within this many seconds of its headers; a slower
    /// one is answered 408 and nothing of it is stored.
    #[serde(default = "default_body_timeout")]
    #[schemars(range(min = 1))]
    pub body_timeout_seconds: u64,
    /// Serve HTTPS (TLS 1.2 and 1.3, HTTP/1.1) instead of plain HTTP.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Lets `/admin/*` answer clients beyond loopback that send `Authorization: Bearer TOKEN`
    /// (loopback clients are always answered). Use `${ENV_VAR}` to keep it out of this file.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Serve the console at `/console`: live events, what each connection made of them, dead
    /// letters and a mapping playground. It answers whom `/admin/*` answers.
    #[serde(default = "default_console")]
    pub console: bool,
}

impl std::fmt::Debug for Server {
    /// Never shows the admin token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("max_connections", &self.max_connections)
            .field("header_timeout_seconds", &self.header_timeout_seconds)
            .field("body_timeout_seconds", &self.body_timeout_seconds)
            .field("tls", &self.tls)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("console", &self.console)
            .finish()
    }
}

impl Default for Server {
    fn default() -> Server {
        Server {
            max_connections: default_max_connections(),
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            tls: None,
            admin_token: None,
            console: default_console(),
        }
    }
}

/// The certificate and key of an HTTPS listener, as PEM files; paths are relative to this file
/// and may use `${ENV_VAR}`. Both are read again on every reload, so renewed certificates are
/// served without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The certificate chain, leaf first.
    pub certificate: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// How the store commits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Where events, delivery state, retries, dead letters and remembered values live:
    /// `sqlite` (the default) keeps them in one file in `data`, for one node; `nats` keeps
    /// them in NATS JetStream, shared by every `ferry serve` node with the same `servers`.
    #[serde(default)]
    pub backend: Backend,
    /// SQLite: `full` makes every acknowledged event survive a power cut (one fsync per group
    /// commit); `normal` survives a crash of ferry but may lose the last commits on a power cut.
    #[serde(default)]
    pub synchronous: Synchronous,
    /// How long a Segment `messageId` or Amplitude `insert_id` is remembered to drop repeats.
    /// On NATS, JetStream's duplicate window, which each server keeps in memory.
    #[serde(default = "default_dedupe_hours")]
    #[schemars(range(min = 0))]
    pub dedupe_hours: u32,
    /// NATS: the servers' URLs (`nats://host:4222`); one reachable is enough, the client
    /// learns the others. Strings may use `${ENV_VAR}`.
    #[serde(default)]
    pub servers: Vec<String>,
    /// NATS: copies of every stream and bucket (1, 3 or 5). An event is acknowledged once
    /// stored on a majority of them.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: u32,
    /// NATS: how ferry authenticates: `{ user, password }`, `{ token }` or `{ creds_file }`,
    /// each through `${ENV_VAR}` to keep secrets out of this file.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// NATS: how long an event a node claimed may go unsettled before JetStream hands it to
    /// another node. A node working longer on an event extends it; only a node that stopped
    /// loses its events to the others, after this long.
    #[serde(default = "default_ack_wait")]
    #[schemars(range(min = 1))]
    pub ack_wait_seconds: u64,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            backend: Backend::default(),
            synchronous: Synchronous::default(),
            dedupe_hours: default_dedupe_hours(),
            servers: Vec::new(),
            replicas: default_replicas(),
            credentials: None,
            ack_wait_seconds: default_ack_wait(),
        }
    }
}

/// See [`Store::backend`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Sqlite,
    Nats,
}

/// See [`Store::credentials`].
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Credentials {
    UserPassword(UserPassword),
    Token(Token),
    CredsFile(CredsFile),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::UserPassword(UserPassword { user, .. }) => {
                write!(f, "UserPassword {{ user: {user:?}, password: [redacted] }}")
            }
            Credentials::Token(_) => f.write_str("Token([redacted])"),
            Credentials::CredsFile(CredsFile { creds_file }) => {
                write!(f, "CredsFile({creds_file:?})")
            }
        }
    }
}

/// A NATS user and password.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPassword {
    /// The NATS user name.
    pub user: String,
    /// The user's password. Use `${ENV_VAR}`.
    pub password: String,
}

/// A NATS token.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The token. Use `${ENV_VAR}`.
    pub token: String,
}

/// A NATS `.creds` file (a user JWT and its NKey seed), relative to this file.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredsFile {
    /// The path of the `.creds` file, relative to this `ferry.yaml`.
    pub creds_file: String,
}

/// See [`Store::synchronous`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

/// The schedule of retries from the store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Wait before the first retry; each later wait doubles.
    #[serde(default = "default_first_retry")]
    #[schemars(range(min = 1))]
    pub first_after_seconds: u64,
    /// Longest wait between two retries.
    #[serde(default = "default_longest_retry")]
    #[schemars(range(min = 1))]
    pub at_most_every_seconds: u64,
    /// Give up (dead-letter) once an event was first received this long ago.
    #[serde(default = "default_give_up")]
    #[schemars(range(min = 0))]
    pub give_up_after_hours: u64,
    /// How long a failing request may be retried in memory (with the mapping's backoff and
    /// attempts) beyond one request timeout, before its event goes back to the store to be
    /// retried on the schedule above. Keeps a destination that is down from holding events,
    /// and delivery slots, in flight.
    #[serde(default = "default_inline_retry")]
    #[schemars(range(min = 0))]
    pub inline_seconds: u64,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            first_after_seconds: default_first_retry(),
            at_most_every_seconds: default_longest_retry(),
            give_up_after_hours: default_give_up(),
            inline_seconds: default_inline_retry(),
        }
    }
}

/// A source of events: an SDK or service that posts to ferry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The wire format it speaks: `segment` (Segment's HTTP Tracking API at `/v1/...`),
    /// `amplitude` (Amplitude's HTTP V2 API at `/2/httpapi`) or `extole` (Extole's webhooks at
    /// `/webhooks/extole/SOURCE`).
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// The keys that authenticate it: Segment write keys, Amplitude API keys, or the Extole
    /// webhook's shared secret. Use `${ENV_VAR}` to keep them out of this file.
    #[schemars(length(min = 1))]
    pub keys: Vec<String>,
    /// Who an event is about, for connections with `ordered: true`: JSONPaths tried in turn,
    /// the first present wins. By default: Segment `$.userId` then `$.anonymousId`; Amplitude
    /// `$.user_id` then `$.device_id`; Extole `$.external_id` then `$.email`.
    #[serde(default)]
    pub order_key: Option<Vec<String>>,
}

/// The wire format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Segment,
    Amplitude,
    Extole,
}

impl SourceKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Segment => "segment",
            SourceKind::Amplitude => "amplitude",
            SourceKind::Extole => "extole",
        }
    }
}

/// A destination account: one source's events, one mapping, its settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The source whose events it receives.
    pub source: String,
    /// The `name` of the mapping in the mappings folder.
    pub mapping: String,
    /// The mapping's settings. String values may use `${ENV_VAR}`.
    #[serde(default)]
    pub settings: serde_json::Map<String, Value>,
    /// Send to this base URL instead of the mapping's (a staging host, a local test server).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Overrides the top-level `dry_run` for this connection.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Deliver the events of one user one after another, in the order they were accepted:
    /// while one is being delivered or waits for a retry, that user's later events wait (other
    /// users' keep flowing); a dead letter lets them go. The user is the source's `order_key`.
    #[serde(default)]
    pub ordered: bool,
}

fn default_listen() -> String {
    "127.0.0.1:8088".to_owned()
}

fn default_mappings() -> String {
    "mappings".to_owned()
}

fn default_data() -> String {
    "ferry-data".to_owned()
}

fn default_dedupe_hours() -> u32 {
    24
}

fn default_replicas() -> u32 {
    1
}

fn default_ack_wait() -> u64 {
    30
}

fn default_first_retry() -> u64 {
    30
}

fn default_longest_retry() -> u64 {
    3600
}

fn default_give_up() -> u64 {
    24
}

fn default_inline_retry() -> u64 {
    5
}

fn default_console() -> bool {
    true
}

fn default_max_connections() -> u32 {
    1024
}

fn default_header_timeout() -> u64 {
    10
}

fn default_body_timeout() -> u64 {
    30
}

/// The JSON Schema (draft-07) of `ferry.yaml`.
pub fn config_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    generator.into_root_schema_for::<Config>().to_value()
}

/// The schema as committed in `schemas/ferry.schema.json`.
pub fn config_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config_schema()).expect("a schema serializes");
    text.push('\n');
    text
}

static SCHEMA: LazyLock<Value> = LazyLock::new(config_schema);

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&SCHEMA).expect("the generated config schema is a valid JSON Schema")
});

/// A parsed configuration with what is needed to locate problems in it.
#[derive(Debug)]
pub struct ConfigDocument {
    /// The file name, as the user gave it.
    pub file: String,
    pub config: Config,
    text: String,
    source_map: SourceMap,
}

impl ConfigDocument {
    /// A problem at the JSON pointer `pointer` of the configuration.
    pub fn diagnostic(
        &self,
        pointer: &str,
        target: Target,
        message: impl Into<String>,
    ) -> Diagnostic {
        locate(
            DiagnosticKind::Config,
            &self.file,
            &self.text,
            &self.source_map,
            pointer,
            target,
            message,
        )
    }
}

/// Parses the configuration `text` (named `file` in messages); any problem rejects it, and
/// every problem found is reported.
pub fn load_config_str(file: &str, text: &str) -> Result<ConfigDocument, Diagnostics> {
    let (_, json, source_map) = parse_yaml(file, text, "the configuration")?;
    let mut problems: Vec<Diagnostic> = VALIDATOR
        .iter_errors(&json)
        .flat_map(|error| {
            schema_problem(
                file,
                text,
                &source_map,
                &error,
                &SCHEMA,
                "the configuration",
            )
        })
        .collect();
    if !problems.is_empty() {
        problems.sort_by_key(|d| (d.line, d.column));
        problems.dedup();
        return Err(Diagnostics(problems));
    }
    let config = typed::<Config, _>(file, text, &source_map, json)
        .map_err(|problem| Diagnostics(vec![problem]))?;
    Ok(ConfigDocument {
        file: file.to_owned(),
        config,
        text: text.to_owned(),
        source_map,
    })
}

/// Reads and parses the configuration file at `path`.
pub fn load_config_file(path: &std::path::Path) -> Result<ConfigDocument, Diagnostics> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        Diagnostics(vec![Diagnostic::at(
            DiagnosticKind::Read,
            &file,
            "",
            None,
            format!("cannot read the configuration: {error}"),
        )])
    })?;
    load_config_str(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_is_left_out() {
        let doc = load_config_str(
            "ferry.yaml",
            "version: 1\nsources:\n  web: { type: segment, keys: [k1] }\n",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(doc.config.listen, "127.0.0.1:8088");
        assert_eq!(doc.config.store.synchronous, Synchronous::Full);
        assert_eq!(doc.config.retry.first_after_seconds, 30);
        assert!(doc.config.connections.is_empty());
    }

    #[test]
    fn a_section_left_out_means_the_same_as_an_empty_one() {
        let load = |extra: &str| {
            load_config_str(
                "ferry.yaml",
                &format!("version: 1\nsources:\n  web: {{ type: segment, keys: [k1] }}\n{extra}"),
            )
            .unwrap_or_else(|d| panic!("{d}"))
            .config
        };
        let absent = load("");
        let empty = load("server: {}\nstore: {}\nretry: {}\n");
        assert_eq!(absent.server, empty.server);
        assert_eq!(absent.store, empty.store);
        assert_eq!(absent.retry, empty.retry);
        assert_eq!(absent.server, Server::default());
        assert_eq!(absent.store, Store::default());
        assert_eq!(absent.retry, Retry::default());
        assert_eq!(absent.server.header_timeout_seconds, 10);
    }

    #[test]
    fn every_schema_problem_is_located() {
        let text = "version: 1\nlisten: 1\nsources:\n  web: { type: segmnt, keys: [] }\nconnections:\n  a: { source: web, mapping: x, setings: {} }\n";
        let problems = load_config_str("ferry.yaml", text).unwrap_err();
        let shown = problems.to_string();
        assert_eq!(problems.0.len(), 4, "{shown}");
        assert!(shown.contains("ferry.yaml:4:"), "{shown}");
        assert!(shown.contains("did you mean `segment`?"), "{shown}");
        assert!(shown.contains("unknown key `setings`"), "{shown}");
        assert!(shown.contains("did you mean `settings`?"), "{shown}");
    }
}
