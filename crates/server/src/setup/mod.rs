//! What the server runs: the configuration and every mapping of the mappings folder, checked
//! together and compiled into connections. A setup is built whole or not at all: every problem
//! of the configuration and of every mapping is reported at once, and a running server keeps
//! its last good setup when a new one fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::{CompiledMapping, Connection};
use ferry_spec::config::{Config, SourceKind};
use ferry_spec::model::SourceDialect;
use ferry_spec::{ConfigDocument, Diagnostic, Diagnostics, Target, did_you_mean, escape_segment};
use indexmap::IndexMap;
use serde_json::Value;

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
    pub fn file(&self) -> Option<&Path> {
        match self {
            ConfigOrigin::File(path) => Some(path),
            ConfigOrigin::Embedded => None,
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
}

impl SourceSetup {
    /// The source's keys (Extole: its shared secrets).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// A connection ready to deliver.
pub struct ConnectionSetup {
    pub name: String,
    pub source: String,
    pub connection: Arc<Connection>,
    pub dry_run: bool,
}

impl std::fmt::Debug for ConnectionSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSetup")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("mapping", &self.connection.mapping().name)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Everything the server runs, checked and compiled.
#[derive(Debug)]
pub struct Setup {
    pub origin: ConfigOrigin,
    pub config: Config,
    /// The mappings folder, resolved.
    pub mappings_dir: PathBuf,
    /// The data folder, resolved.
    pub data_dir: PathBuf,
    pub sources: IndexMap<String, SourceSetup>,
    pub connections: IndexMap<String, Arc<ConnectionSetup>>,
    keys: HashMap<(SourceKind, String), String>,
}

impl Setup {
    /// Reads the configuration and the mappings it names, and checks them together.
    pub fn load(origin: &ConfigOrigin) -> Result<Setup, Diagnostics> {
        let (document, base) = origin.load()?;
        let config = document.config.clone();
        let mappings_dir = base.join(&config.mappings);
        let data_dir = base.join(&config.data);
        let mut problems = Vec::new();
        let mappings = load_mappings(&mappings_dir, &mut problems);

        let (sources, keys) = resolve_sources(&document, &mut problems);
        let mut connections = IndexMap::new();
        for (name, spec) in &config.connections {
            let found = Found {
                document: &document,
                mappings: &mappings,
                mappings_dir: &mappings_dir,
            };
            if let Some(connection) = found.connect(name, spec, &mut problems) {
                connections.insert(name.clone(), Arc::new(connection));
            }
        }

        if problems.is_empty() {
            Ok(Setup {
                origin: origin.clone(),
                config,
                mappings_dir,
                data_dir,
                sources,
                connections,
                keys,
            })
        } else {
            Err(Diagnostics(problems))
        }
    }

    /// The source of `kind` that `key` authenticates.
    pub fn source_for_key(&self, kind: SourceKind, key: &str) -> Option<&str> {
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
        sources.insert(
            name.clone(),
            SourceSetup {
                kind: source.kind,
                keys: resolved,
            },
        );
    }
    (sources, keys)
}

/// What a connection is checked against.
struct Found<'a> {
    document: &'a ConfigDocument,
    mappings: &'a HashMap<Arc<str>, Arc<CompiledMapping>>,
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
        let Some(mapping) = self.mappings.get(spec.mapping.as_str()) else {
            if !self.mappings_dir.is_dir() {
                // Already reported: the folder cannot be read.
                return None;
            }
            problems.push(self.unknown(
                &format!("{at}/mapping"),
                format!(
                    "no mapping in `{}` is named `{}`",
                    self.mappings_dir.display(),
                    spec.mapping
                ),
                &spec.mapping,
                self.mappings.keys().map(|k| &**k),
            ));
            return None;
        };
        if let Some(kind) = source
            && !reads(mapping.spec.source, kind)
        {
            problems.push(self.document.diagnostic(
                &format!("{at}/mapping"),
                Target::Value,
                format!(
                    "the mapping `{}` reads {} events, but the source `{}` sends {} events",
                    spec.mapping,
                    mapping.spec.source.as_str(),
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
        })
    }
}

/// Compiles every mapping file directly in `dir`, by mapping name. Problems of every file are
/// collected.
fn load_mappings(
    dir: &Path,
    problems: &mut Vec<Diagnostic>,
) -> HashMap<Arc<str>, Arc<CompiledMapping>> {
    let mut mappings = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(
                Diagnostic::at(
                    &dir.display().to_string(),
                    "",
                    None,
                    format!("cannot read the mappings folder: {error}"),
                )
                .with_help(
                    "`mappings` in the configuration names it, relative to the configuration's \
                     folder (for the embedded configuration, the current folder: run `ferry serve` \
                     from the ferry repository, or pass `--config`)",
                ),
            );
            return mappings;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for file in files {
        match ferry_engine::load(&file) {
            Ok(mapping) => {
                let name = Arc::clone(&mapping.name);
                if let Some(earlier) = mappings.insert(Arc::clone(&name), Arc::new(mapping)) {
                    problems.push(Diagnostic::at(
                        &file.display().to_string(),
                        "",
                        None,
                        format!(
                            "the mapping name `{name}` is also used by `{}`",
                            earlier.file
                        ),
                    ));
                }
            }
            Err(found) => problems.extend(found.0),
        }
    }
    mappings
}

/// Whether a mapping written for `dialect` can read events of a source of `kind`.
fn reads(dialect: SourceDialect, kind: SourceKind) -> bool {
    matches!(
        (dialect, kind),
        (SourceDialect::Json, _)
            | (SourceDialect::Segment, SourceKind::Segment)
            | (SourceDialect::Amplitude, SourceKind::Amplitude)
            | (SourceDialect::Extole, SourceKind::Extole)
    )
}

/// Replaces every `${NAME}` with the environment variable `NAME`; `$$` is a literal `$`.
pub fn interpolate(text: &str) -> Result<String, String> {
    interpolate_with(text, |name| std::env::var(name).ok())
}

fn interpolate_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(format!("`${{` without a closing `}}` in `{text}`"));
            };
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not an environment variable name"));
            }
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => return Err(format!("the environment variable `{name}` is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`interpolate`] over every string inside `value`.
fn interpolate_value(value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => Value::String(interpolate(text)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(interpolate_value)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), interpolate_value(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_environment_variables() {
        assert_eq!(interpolate_with("${KEY}", env).unwrap(), "s3cret");
        assert_eq!(interpolate_with("a-${KEY}-b", env).unwrap(), "a-s3cret-b");
        assert_eq!(interpolate_with("$$5 and $x", env).unwrap(), "$5 and $x");
        assert_eq!(interpolate_with("${EMPTY}", env).unwrap(), "");
        assert_eq!(
            interpolate_with("${MISSING}", env).unwrap_err(),
            "the environment variable `MISSING` is not set"
        );
        assert!(interpolate_with("${KEY", env).is_err());
        assert!(interpolate_with("${A B}", env).is_err());
    }

    #[test]
    fn the_embedded_configuration_serves_every_bundled_mapping() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = EMBEDDED_CONFIG.replace(
            "mappings: mappings",
            &format!("mappings: {}/mappings", root.display()),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.yaml");
        std::fs::write(&file, text).unwrap();
        let setup = Setup::load(&ConfigOrigin::File(file)).unwrap_or_else(|d| panic!("{d}"));
        let mut mappings: Vec<&str> = setup
            .connections
            .values()
            .map(|c| &*c.connection.mapping().name)
            .collect();
        mappings.sort_unstable();
        assert_eq!(
            mappings,
            ["amplitude-extole", "braze", "extole", "promoter"]
        );
        assert!(setup.connections.values().all(|c| c.dry_run));
    }

    #[test]
    fn every_problem_of_the_configuration_and_the_mappings_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mappings = dir.path().join("mappings");
        std::fs::create_dir(&mappings).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
        std::fs::copy(root.join("extole.yaml"), mappings.join("extole.yaml")).unwrap();
        std::fs::write(mappings.join("broken.yaml"), "version: 1\nname: broken\n").unwrap();
        let config = "version: 1
sources:
  web: { type: segment, keys: [k1] }
  app: { type: amplitude, keys: [k1, '${FERRY_TEST_UNSET_VARIABLE}'] }
connections:
  a: { source: nowhere, mapping: extole, settings: { api_key: x } }
  b: { source: web, mapping: extol }
  c: { source: app, mapping: extole, settings: { api_key: x } }
  d: { source: web, mapping: extole, settings: { unknown: 1 } }
";
        let file = dir.path().join("ferry.yaml");
        std::fs::write(&file, config).unwrap();
        let problems = Setup::load(&ConfigOrigin::File(file)).unwrap_err();
        let shown = problems.to_string();
        for expected in [
            "broken.yaml",
            "FERRY_TEST_UNSET_VARIABLE",
            "no source is named `nowhere`",
            "no mapping in",
            "did you mean `extole`?",
            "reads segment events, but the source `app` sends amplitude events",
            "connection `d`",
        ] {
            assert!(
                shown.contains(expected),
                "missing `{expected}` in:\n{shown}"
            );
        }
        assert!(shown.contains("ferry.yaml:6:"), "{shown}");
    }
}
