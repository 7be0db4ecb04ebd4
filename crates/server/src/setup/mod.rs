//! What the server runs: the configuration and every mapping of the mappings folder, checked
//! together and compiled into connections. A setup is built whole or not at all: every problem
//! of the configuration and of every mapping is reported at once, and a running server keeps
//! its last good setup when a new one fails.

mod env;
mod listener;
mod mappings;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::Connection;
use ferry_engine::JsonPath;
use ferry_queue::OrderKey;

use crate::order_key::{default_paths, order_key};
use ferry_spec::config::{Config, SourceKind};
use ferry_spec::{ConfigDocument, Diagnostic, Diagnostics, Target, did_you_mean, escape_segment};
use indexmap::IndexMap;

pub use self::env::interpolate;
use self::env::interpolate_value;
pub(crate) use self::listener::Listener;
pub use self::listener::Reach;
use self::mappings::{Folder, load_mappings, reads};
pub use self::store::StoreSetup;

/// The configuration `ferry serve` uses when none is given: the bundled mappings, fed by one
/// source of each kind, in dry-run mode.
pub const EMBEDDED_CONFIG: &str = include_str!("embedded.yaml");

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A `ferry.yaml` file; relative folders in it are relative to its folder.
    File(PathBuf),
    /// [`EMBEDDED_CONFIG`]; relative folders are relative to the working directory.
    Embedded,
}

impl ConfigOrigin {
    /// The file to watch for changes, if any.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            ConfigOrigin::File(path) => Some(path),
            ConfigOrigin::Embedded => None,
        }
    }

    /// Only the store the configuration names, and its data folder: what `ferry dlq` needs,
    /// without loading the mappings.
    pub fn load_store(&self) -> Result<(StoreSetup, PathBuf), Diagnostics> {
        let (document, base) = self.load()?;
        let mut problems = Vec::new();
        let store = store::store(&document, &base, &mut problems);
        if problems.is_empty() {
            Ok((store, base.join(&document.config.data)))
        } else {
            Err(Diagnostics(problems))
        }
    }

    /// How a client on this machine reaches the server's listener: what `ferry tap` needs,
    /// without loading the mappings.
    pub fn load_reach(&self) -> Result<Reach, Diagnostics> {
        let (document, base) = self.load()?;
        let mut problems = Vec::new();
        let reach = listener::reach(&document, &base, &mut problems);
        if problems.is_empty() {
            Ok(reach)
        } else {
            Err(Diagnostics(problems))
        }
    }

    fn load(&self) -> Result<(ConfigDocument, PathBuf), Diagnostics> {
        match self {
            ConfigOrigin::File(path) => {
                let document = ferry_spec::load_config_file(path)?;
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                Ok((document, base))
            }
            ConfigOrigin::Embedded => Ok((
                ferry_spec::load_config_str("(embedded default configuration)", EMBEDDED_CONFIG)?,
                PathBuf::from("."),
            )),
        }
    }
}

/// A source, with its keys resolved.
#[derive(Debug, Clone)]
pub struct SourceSetup {
    pub kind: SourceKind,
    keys: Vec<String>,
    /// Who its events are about, for ordered connections: JSONPaths tried in turn.
    order: Vec<JsonPath>,
}

impl SourceSetup {
    /// The source's keys (Extole: its shared secrets).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// A connection ready to deliver.
pub struct ConnectionSetup {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) connection: Arc<Connection>,
    pub(crate) dry_run: bool,
    /// With `ordered: true`: the ordering key of its source's events.
    pub(crate) order: Option<OrderKey>,
}

impl std::fmt::Debug for ConnectionSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSetup")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("mapping", &self.connection.mapping().name)
            .field("dry_run", &self.dry_run)
            .field("ordered", &self.order.is_some())
            .finish_non_exhaustive()
    }
}

/// Everything the server runs, checked and compiled.
#[derive(Debug)]
pub struct Setup {
    pub(crate) config: Config,
    /// The mappings folder, resolved.
    pub(crate) mappings_dir: PathBuf,
    /// The data folder, resolved.
    pub(crate) data_dir: PathBuf,
    /// The HTTP listener, checked (certificates read).
    pub(crate) listener: Listener,
    /// Where the queue lives.
    pub(crate) store: StoreSetup,
    pub sources: IndexMap<String, SourceSetup>,
    pub connections: IndexMap<String, Arc<ConnectionSetup>>,
    keys: HashMap<(SourceKind, String), String>,
}

impl Setup {
    /// Reads the configuration and the mappings it names, and checks them together.
    pub(crate) fn load(origin: &ConfigOrigin) -> Result<Setup, Diagnostics> {
        let (document, base) = origin.load()?;
        let config = document.config.clone();
        let mappings_dir = base.join(&config.mappings);
        let data_dir = base.join(&config.data);
        let mut problems = Vec::new();
        let listener = listener::listener(&document, &base, &mut problems);
        let store = store::store(&document, &base, &mut problems);
        let mappings = load_mappings(&mappings_dir, &mut problems);

        let (sources, keys) = resolve_sources(&document, &mut problems);
        let mut connections = IndexMap::new();
        for (name, spec) in &config.connections {
            let found = Found {
                sources: &sources,
                document: &document,
                folder: &mappings,
                mappings_dir: &mappings_dir,
            };
            if let Some(connection) = found.connect(name, spec, &mut problems) {
                connections.insert(name.clone(), Arc::new(connection));
            }
        }

        if problems.is_empty() {
            Ok(Setup {
                config,
                mappings_dir,
                data_dir,
                listener,
                store,
                sources,
                connections,
                keys,
            })
        } else {
            Err(Diagnostics(problems))
        }
    }

    /// The source of `kind` that `key` authenticates.
    pub(crate) fn source_for_key(&self, kind: SourceKind, key: &str) -> Option<&str> {
        self.keys.get(&(kind, key.to_owned())).map(String::as_str)
    }

    /// The connections fed by `source`.
    pub fn connections_of<'a>(
        &'a self,
        source: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ConnectionSetup>> + 'a {
        self.connections
            .values()
            .filter(move |c| c.source == source)
    }
}

/// The sources with their keys resolved, and the source each key authenticates.
fn resolve_sources(
    document: &ConfigDocument,
    problems: &mut Vec<Diagnostic>,
) -> (
    IndexMap<String, SourceSetup>,
    HashMap<(SourceKind, String), String>,
) {
    let config = &document.config;
    let mut sources = IndexMap::new();
    let mut keys = HashMap::new();
    for (name, source) in &config.sources {
        let mut resolved = Vec::new();
        for (i, key) in source.keys.iter().enumerate() {
            let pointer = format!("/sources/{}/keys/{i}", escape_segment(name));
            match interpolate(key) {
                Ok(key) if key.is_empty() => problems.push(document.diagnostic(
                    &pointer,
                    Target::Value,
                    "a key must not be empty",
                )),
                Ok(key) => {
                    if let Some(other) = keys.insert((source.kind, key.clone()), name.clone()) {
                        problems.push(document.diagnostic(
                            &pointer,
                            Target::Value,
                            format!(
                                "this key already authenticates the source `{other}`: \
                                 each key must name one source"
                            ),
                        ));
                    }
                    resolved.push(key);
                }
                Err(message) => {
                    problems.push(document.diagnostic(&pointer, Target::Value, message));
                }
            }
        }
        let order = match &source.order_key {
            None => default_paths(source.kind),
            Some(texts) => {
                let mut paths = Vec::with_capacity(texts.len());
                for (i, text) in texts.iter().enumerate() {
                    match JsonPath::parse(text) {
                        Ok(path) => paths.push(path),
                        Err(message) => problems.push(document.diagnostic(
                            &format!("/sources/{}/order_key/{i}", escape_segment(name)),
                            Target::Value,
                            format!("not a JSONPath: {message}"),
                        )),
                    }
                }
                paths
            }
        };
        sources.insert(
            name.clone(),
            SourceSetup {
                kind: source.kind,
                keys: resolved,
                order,
            },
        );
    }
    (sources, keys)
}

/// What a connection is checked against.
struct Found<'a> {
    sources: &'a IndexMap<String, SourceSetup>,
    document: &'a ConfigDocument,
    folder: &'a Folder,
    mappings_dir: &'a Path,
}

impl Found<'_> {
    /// A problem naming something that does not exist, with the nearest name that does.
    fn unknown<'k>(
        &self,
        pointer: &str,
        message: String,
        wanted: &str,
        known: impl Iterator<Item = &'k str>,
    ) -> Diagnostic {
        let problem = self.document.diagnostic(pointer, Target::Value, message);
        match did_you_mean(wanted, known) {
            Some(near) => problem.with_help(format!("did you mean `{near}`?")),
            None => problem,
        }
    }

    /// The problem of a connection naming a mapping that is not loaded: one that failed to
    /// load (its own problems say why), or one that does not exist.
    fn missing_mapping(&self, at: &str, mapping: &str, problems: &mut Vec<Diagnostic>) {
        if !self.mappings_dir.is_dir() {
            // Already reported: the folder cannot be read.
            return;
        }
        if let Some(file) = self.folder.failed(mapping) {
            // Its own problems are reported with it.
            problems.push(self.document.diagnostic(
                &format!("{at}/mapping"),
                Target::Value,
                format!(
                    "the mapping `{}` failed to load (`{}`): see its problems",
                    mapping,
                    file.display()
                ),
            ));
            return;
        }
        problems.push(self.unknown(
            &format!("{at}/mapping"),
            format!(
                "no mapping in `{}` is named `{}`",
                self.mappings_dir.display(),
                mapping
            ),
            mapping,
            self.folder.mappings.keys().map(|k| &**k),
        ));
    }

    /// The connection `name`, or `None` with its problems added to `problems`.
    fn connect(
        &self,
        name: &str,
        spec: &ferry_spec::config::Connection,
        problems: &mut Vec<Diagnostic>,
    ) -> Option<ConnectionSetup> {
        let config = &self.document.config;
        let at = format!("/connections/{}", escape_segment(name));
        let source = config.sources.get(&spec.source).map(|s| s.kind);
        if source.is_none() {
            problems.push(self.unknown(
                &format!("{at}/source"),
                format!("no source is named `{}`", spec.source),
                &spec.source,
                config.sources.keys().map(String::as_str),
            ));
        }
        let Some(mapping) = self.folder.mappings.get(spec.mapping.as_str()) else {
            self.missing_mapping(&at, &spec.mapping, problems);
            return None;
        };
        if let Some(kind) = source
            && !reads(mapping.dialect(), kind)
        {
            problems.push(self.document.diagnostic(
                &format!("{at}/mapping"),
                Target::Value,
                format!(
                    "the mapping `{}` reads {} events, but the source `{}` sends {} events",
                    spec.mapping,
                    mapping.dialect().as_str(),
                    spec.source,
                    kind.as_str()
                ),
            ));
        }
        let mut settings = serde_json::Map::new();
        for (key, value) in &spec.settings {
            let pointer = format!("{at}/settings/{}", escape_segment(key));
            match interpolate_value(value) {
                Ok(value) => {
                    settings.insert(key.clone(), value);
                }
                Err(message) => {
                    problems.push(self.document.diagnostic(&pointer, Target::Value, message));
                }
            }
        }
        let mut connection = match Connection::new(Arc::clone(mapping), &settings) {
            Ok(connection) => connection,
            Err(error) => {
                let pointer = if spec.settings.is_empty() {
                    at.clone()
                } else {
                    format!("{at}/settings")
                };
                let target = if spec.settings.is_empty() {
                    Target::Key
                } else {
                    Target::Value
                };
                for problem in &error.problems {
                    problems.push(self.document.diagnostic(
                        &pointer,
                        target,
                        format!("connection `{name}`: {problem}"),
                    ));
                }
                return None;
            }
        };
        if let Some(base_url) = &spec.base_url {
            let resolved = interpolate(base_url).and_then(|url| {
                connection
                    .override_base_url(&url)
                    .map_err(|e| e.problems.join("; "))
            });
            if let Err(message) = resolved {
                problems.push(self.document.diagnostic(
                    &format!("{at}/base_url"),
                    Target::Value,
                    message,
                ));
                return None;
            }
        }
        Some(ConnectionSetup {
            name: name.to_owned(),
            source: spec.source.clone(),
            connection: Arc::new(connection),
            dry_run: spec.dry_run.unwrap_or(config.dry_run),
            order: spec
                .ordered
                .then(|| {
                    self.sources
                        .get(&spec.source)
                        .map(|s| order_key(s.order.clone()))
                })
                .flatten(),
        })
    }
}
