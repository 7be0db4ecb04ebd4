//! Checks that both loading a mapping and binding a connection apply: setting types, base URLs
//! and header values. A leaf module, so that the compiler and connections share it without
//! importing each other.

use ferry_spec::model::{Setting, SettingType};
use serde_json::Value;

/// A base URL must be an absolute http(s) URL with a host and no query or fragment.
pub(crate) fn check_base_url(text: &str) -> Result<(), String> {
    let url =
        url::Url::parse(text).map_err(|e| format!("`{text}` is not a valid base URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the base URL `{text}` must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the base URL `{text}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "the base URL `{text}` must not have a query or fragment"
        ));
    }
    Ok(())
}

/// Header values may not contain line breaks or other control characters.
pub(crate) fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!("header `{name}` would contain a control character"));
    }
    Ok(())
}

/// Checks that `value` has the setting's type and is one of its `one_of` choices, if it has
/// them; the error completes "setting `x` ...".
pub(crate) fn check_setting_value(setting: &Setting, value: &Value) -> Result<(), String> {
    check_setting_type(setting.kind, value)?;
    if !setting.one_of.is_empty() && !setting.one_of.contains(value) {
        let choices = setting
            .one_of
            .iter()
            .map(|c| format!("`{}`", crate::convert::short(c)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "is `{}`, which is not one of its choices: {choices}",
            crate::convert::short(value)
        ));
    }
    Ok(())
}

/// Checks that `value` has the setting type `kind`; the error completes "setting `x` ...".
pub(crate) fn check_setting_type(kind: SettingType, value: &Value) -> Result<(), String> {
    let ok = match kind {
        SettingType::String => value.is_string(),
        SettingType::Number => value.is_number(),
        SettingType::Integer => value.is_i64() || value.is_u64(),
        SettingType::Boolean => value.is_boolean(),
        SettingType::List => value.is_array(),
        SettingType::Map => value.is_object(),
        SettingType::Path | SettingType::Template => value.as_str().is_some_and(|s| !s.is_empty()),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be {}, not {}",
            type_name(kind),
            crate::convert::kind(value)
        ))
    }
}

fn type_name(kind: SettingType) -> &'static str {
    match kind {
        SettingType::String => "text",
        SettingType::Number => "a number",
        SettingType::Integer => "a whole number",
        SettingType::Boolean => "true or false",
        SettingType::List => "a list",
        SettingType::Map => "a map",
        SettingType::Path => {
            "a JSONPath such as `$.user_id`, or a dotted path such as `properties.order_id`"
        }
        SettingType::Template => "a template",
    }
}

pub(crate) fn setting_type_name(kind: SettingType) -> &'static str {
    match kind {
        SettingType::String => "string",
        SettingType::Number => "number",
        SettingType::Integer => "integer",
        SettingType::Boolean => "boolean",
        SettingType::List => "list",
        SettingType::Map => "map",
        SettingType::Path => "path",
        SettingType::Template => "template",
    }
}
