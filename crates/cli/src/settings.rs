//! Settings for a connection from `--settings FILE` and `--set KEY=VALUE`.

use std::path::Path;

use anyhow::{Context as _, bail};
use std::sync::Arc;

use ferry_engine::{CompiledMapping, Connection};
use serde_json::{Map, Value};

/// Reads the settings file (YAML or JSON), then applies each `--set` on top.
pub fn gather(
    mapping: &CompiledMapping,
    file: Option<&Path>,
    sets: &[String],
) -> anyhow::Result<Map<String, Value>> {
    let mut settings = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the settings file `{}`", path.display()))?;
            match serde_yaml::from_str::<Value>(&text)
                .with_context(|| format!("`{}` is not valid YAML or JSON", path.display()))?
            {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                _ => bail!(
                    "`{}` must hold a map of setting names to values",
                    path.display()
                ),
            }
        }
        None => Map::new(),
    };
    for set in sets {
        let Some((name, text)) = set.split_once('=') else {
            bail!("`--set {set}` must look like `--set name=value`");
        };
        let value =
            ferry_engine::setting_from_text(mapping, name, text).map_err(anyhow::Error::msg)?;
        settings.insert(name.to_owned(), value);
    }
    Ok(settings)
}

/// A connection of `mapping` with the settings of `file` and `sets`.
pub fn connect(
    mapping: &Arc<CompiledMapping>,
    file: Option<&Path>,
    sets: &[String],
) -> anyhow::Result<Connection> {
    let settings = gather(mapping, file, sets)?;
    Ok(Connection::new(Arc::clone(mapping), &settings)?)
}
