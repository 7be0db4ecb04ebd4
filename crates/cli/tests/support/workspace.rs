//! A folder with a `ferry.yaml`, the one test mapping `sink`, and a data folder; removed when
//! dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The Segment write key of the test source `web`.
pub const WRITE_KEY: &str = "write-key-1";
/// The connection's secret key: the server reads it from `$SINK_KEY`, as the configuration says.
pub const SINK_KEY: &str = "sink-SECRET-key-0042";

/// The test mapping: every track becomes `POST /events` with a bearer key (a secret setting),
/// the event's id, user and name, and a `version` constant that tests change to see reloads;
/// the messageId is its dedupe key, as in the bundled mappings. With `batch_items`, requests
/// are merged as `{"events": [...]}`.
pub fn sink_mapping(version: &str) -> String {
    sink_mapping_with(version, None, "")
}

/// [`sink_mapping`] with a batch rule and extra `delivery` keys (`, timeout_ms: 60000`).
pub fn sink_mapping_with(version: &str, batch_items: Option<usize>, delivery: &str) -> String {
    let mut text = format!(
        r#"version: 1
name: sink
source: segment
settings:
  key: {{ type: string, required: true, secret: true, description: API key }}
http:
  base_url: https://example.invalid
  auth: {{ bearer: "{{{{ settings.key }}}}" }}
delivery:
  {{ retry: {{ max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 20 }}{delivery} }}
actions:
  track:
    when: {{ type: track }}
    request:
      method: POST
      path: /events
      body:
        id: {{ from: $.messageId, required: true }}
        user: {{ from: $.userId }}
        event: {{ from: $.event }}
        version: {{ value: "{version}" }}
    dedupe_key: {{ from: $.messageId }}
"#
    );
    if let Some(items) = batch_items {
        let _ = writeln!(
            text,
            "    batch: {{ wrap: events, max_items: {items}, linger_ms: 20 }}"
        );
    }
    text
}

/// Writes `text` to `path` as editors save: a new file renamed over the old one, so that a
/// running server never reads it half-written.
pub fn save(path: &Path, text: &str) {
    let mut draft = path.as_os_str().to_owned();
    draft.push(".draft");
    std::fs::write(&draft, text).expect("the file is written");
    std::fs::rename(&draft, path).expect("the file is replaced");
}

/// What the generated configuration says beyond its one source and connection.
#[derive(Debug, Clone)]
pub struct WorkspaceOptions {
    /// The destination's base URL.
    pub destination: String,
    pub dry_run: bool,
    /// `store.synchronous`: `full` or `normal`.
    pub synchronous: &'static str,
    /// Merge requests `{"events": [...]}` of at most this many.
    pub batch_items: Option<usize>,
    /// Extra `delivery` keys of the mapping, e.g. `", concurrency: 64"`.
    pub delivery: String,
    /// The durable retry schedule: first wait and longest wait, in seconds.
    pub retry: (u64, u64),
    /// The whole `store:` value (a YAML flow mapping) instead of `{ synchronous: ... }`: a
    /// NATS store, say.
    pub store: Option<String>,
    /// More top-level configuration, as YAML lines.
    pub extra: String,
    /// More keys of the connection `sink`, as one YAML line (`ordered: true`).
    pub connection: String,
}

impl WorkspaceOptions {
    pub fn to(destination: &str) -> WorkspaceOptions {
        WorkspaceOptions {
            destination: destination.to_owned(),
            dry_run: false,
            synchronous: "full",
            batch_items: None,
            delivery: String::new(),
            retry: (1, 2),
            store: None,
            extra: String::new(),
            connection: String::new(),
        }
    }
}

pub struct Workspace {
    dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    pub options: WorkspaceOptions,
}

impl Workspace {
    /// The sink mapping and a configuration sending the `web` source's events to `destination`.
    pub fn new(destination: &str) -> Workspace {
        Workspace::with(WorkspaceOptions::to(destination))
    }

    pub fn with(options: WorkspaceOptions) -> Workspace {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir(dir.path().join("mappings")).expect("the mappings folder");
        let workspace = Workspace {
            config: dir.path().join("ferry.yaml"),
            data: dir.path().join("data"),
            dir,
            options,
        };
        workspace.write_mapping(&sink_mapping_with(
            "v1",
            workspace.options.batch_items,
            &workspace.options.delivery,
        ));
        workspace.write_config(&workspace.config_text());
        workspace
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration the options describe.
    pub fn config_text(&self) -> String {
        let o = &self.options;
        format!(
            "version: 1
mappings: mappings
data: data
dry_run: {dry_run}
store: {store}
# Events whose delivery failed come back quickly, so that a test can wait for them.
retry: {{ first_after_seconds: {first}, at_most_every_seconds: {longest} }}
sources:
  web: {{ type: segment, keys: [{WRITE_KEY}] }}
connections:
  sink:
    source: web
    mapping: sink
    settings: {{ key: '${{SINK_KEY}}' }}
    base_url: \"{destination}\"
{connection}{extra}",
            dry_run = o.dry_run,
            store = o
                .store
                .clone()
                .unwrap_or_else(|| format!("{{ synchronous: {} }}", o.synchronous)),
            connection = if o.connection.is_empty() {
                String::new()
            } else {
                format!("    {}\n", o.connection)
            },
            first = o.retry.0,
            longest = o.retry.1,
            destination = o.destination,
            extra = o.extra,
        )
    }

    /// Replaces `ferry.yaml` at once (see [`Workspace::write_mapping`]).
    pub fn write_config(&self, text: &str) {
        save(&self.config, text);
    }

    /// Replaces `mappings/sink.yaml`.
    /// Replaces `mappings/sink.yaml` at once, as editors save (a new file renamed over the
    /// old one), so that a running server never reads it half-written.
    pub fn write_mapping(&self, text: &str) {
        save(&self.path().join("mappings/sink.yaml"), text);
    }

    /// Runs `ferry ARGS...` in the folder (e.g. `dlq list`), to its end.
    pub fn ferry(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(super::ferry::binary())
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("ferry runs")
    }

    /// `ferry dlq list --json`, parsed.
    pub fn dead_letters(&self) -> Vec<serde_json::Value> {
        let listed = self.ferry(&["dlq", "list", "--json", "--limit", "1000000"]);
        assert!(
            listed.status.success(),
            "ferry dlq list failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}
