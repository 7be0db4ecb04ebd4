//! `${NAME}` in configuration strings: the value of the environment variable `NAME`, so that
//! secrets stay out of `ferry.yaml`.

use serde_json::Value;

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
pub(crate) fn interpolate_value(value: &Value) -> Result<Value, String> {
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
}
