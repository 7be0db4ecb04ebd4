//! Type conversions (`as:`) and text transforms (`transform:`).

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use ferry_spec::model::{Conversion, TimeUnit, Transform, UserAgentPart, ValueType};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// Why a value could not be shaped.
pub type ShapeError = String;

/// Applies one transform. Numbers and booleans are treated as their text; lists and objects are
/// an error.
pub fn transform(value: &Value, transform: Transform) -> Result<Value, ShapeError> {
    let text = text_for(transform_name(transform), value)?;
    transform_text(&text, transform).map(Value::String)
}

/// `text` through `transforms`, in order (a remap's `match`); borrowed when there are none.
pub(crate) fn matched<'t>(
    text: &'t str,
    transforms: &[Transform],
) -> Result<Cow<'t, str>, ShapeError> {
    let mut out = Cow::Borrowed(text);
    for &transform in transforms {
        out = Cow::Owned(transform_text(&out, transform)?);
    }
    Ok(out)
}

/// Applies one transform to text.
fn transform_text(text: &str, transform: Transform) -> Result<String, ShapeError> {
    Ok(match transform {
        Transform::Lower => text.to_lowercase(),
        Transform::Upper => text.to_uppercase(),
        Transform::Trim => text.trim().to_owned(),
        Transform::SnakeCase => snake_case(text),
        Transform::SpacesToUnderscores => text.split_whitespace().collect::<Vec<_>>().join("_"),
        Transform::Sha256 => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            let digest = Sha256::digest(text.as_bytes());
            let mut hex = String::with_capacity(64);
            for byte in digest {
                hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
                hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
            }
            hex
        }
        Transform::Digits => text.chars().filter(char::is_ascii_digit).collect(),
        Transform::E164 => {
            e164(text).ok_or_else(|| format!("`{}` is not a phone number", short_text(text)))?
        }
    })
}

/// A phone number in E.164 form: `+` and its digits (at most 15), a leading `00` read as the
/// international prefix; spaces, dots, dashes and parentheses are dropped.
fn e164(text: &str) -> Option<String> {
    let text = text.trim();
    let (plus, rest) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if rest
        .chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')')))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.strip_prefix("00") {
        Some(international) if !plus => international.to_owned(),
        _ => digits,
    };
    (!digits.is_empty() && digits.len() <= 15 && !digits.starts_with('0'))
        .then(|| format!("+{digits}"))
}

fn transform_name(transform: Transform) -> &'static str {
    match transform {
        Transform::Lower => "lower",
        Transform::Upper => "upper",
        Transform::Trim => "trim",
        Transform::SnakeCase => "snake_case",
        Transform::SpacesToUnderscores => "spaces_to_underscores",
        Transform::Sha256 => "sha256",
        Transform::Digits => "digits",
        Transform::E164 => "e164",
    }
}

/// A word for the JSON type of `value`, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `Order Completed` -> `order_completed`, `firstName` -> `first_name`, `HTTPServer` -> `http_server`.
pub fn snake_case(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
                if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                    push_underscore(&mut out);
                }
            }
            out.extend(c.to_lowercase());
        } else {
            push_underscore(&mut out);
        }
    }
    out.trim_matches('_').to_owned()
}

fn push_underscore(out: &mut String) {
    if !out.is_empty() && !out.ends_with('_') {
        out.push('_');
    }
}

/// Converts `value` to the type `to`. Numbers in time conversions are read in `unit`.
pub fn convert(
    value: Cow<'_, Value>,
    to: Conversion,
    unit: TimeUnit,
) -> Result<Cow<'_, Value>, ShapeError> {
    let fail = |value: &Value, what: &str| {
        Err(format!(
            "cannot convert {} `{}` to {what}",
            kind(value),
            short(value)
        ))
    };
    match to {
        Conversion::String => match &*value {
            Value::String(_) => Ok(value),
            Value::Number(n) => Ok(Cow::Owned(Value::String(n.to_string()))),
            Value::Bool(b) => Ok(Cow::Owned(Value::String(b.to_string()))),
            other => Ok(Cow::Owned(Value::String(other.to_string()))),
        },
        Conversion::Number => match &*value {
            Value::Number(_) => Ok(value),
            Value::String(s) => match parse_number(s.trim()) {
                Some(n) => Ok(Cow::Owned(Value::Number(n))),
                None => fail(&value, "a number"),
            },
            _ => fail(&value, "a number"),
        },
        Conversion::Integer => match &*value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
            Value::Number(n) => match n.as_f64() {
                #[allow(clippy::cast_possible_truncation)]
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Ok(Cow::Owned(Value::from(f as i64)))
                }
                _ => fail(&value, "an integer"),
            },
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(Cow::Owned(Value::from(i))),
                Err(_) => fail(&value, "an integer"),
            },
            _ => fail(&value, "an integer"),
        },
        Conversion::Boolean => match &*value {
            Value::Bool(_) => Ok(value),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Cow::Owned(Value::Bool(true))),
            Value::String(s) if s.eq_ignore_ascii_case("false") => {
                Ok(Cow::Owned(Value::Bool(false)))
            }
            _ => fail(&value, "a boolean"),
        },
        Conversion::Iso8601 => {
            // Segment's SDKs already write this form: keep the text, without a copy.
            if let Value::String(text) = &*value
                && is_canonical_time(text)
            {
                return Ok(value);
            }
            let time = to_time(&value, unit).ok_or_else(|| time_error(&value))?;
            // `%Y-%m-%dT%H:%M:%S%.3fZ`, written without parsing a format string per value.
            Ok(Cow::Owned(Value::String(
                time.to_rfc3339_opts(SecondsFormat::Millis, true),
            )))
        }
        Conversion::Date => {
            // A plain date is a date already; anything else is read as a time, in UTC.
            if let Value::String(s) = &*value
                && let Ok(date) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            {
                return Ok(Cow::Owned(Value::String(
                    date.format("%Y-%m-%d").to_string(),
                )));
            }
            let time = to_time(&value, unit).ok_or_else(|| time_error(&value))?;
            Ok(Cow::Owned(Value::String(
                time.date_naive().format("%Y-%m-%d").to_string(),
            )))
        }
        Conversion::UnixSeconds => {
            let time = to_time(&value, unit).ok_or_else(|| time_error(&value))?;
            Ok(Cow::Owned(Value::from(time.timestamp())))
        }
        Conversion::UnixMillis => {
            let time = to_time(&value, unit).ok_or_else(|| time_error(&value))?;
            Ok(Cow::Owned(Value::from(time.timestamp_millis())))
        }
        Conversion::UnixMicros => {
            let time = to_time(&value, unit).ok_or_else(|| time_error(&value))?;
            Ok(Cow::Owned(Value::from(time.timestamp_micros())))
        }
        Conversion::List => match value {
            Cow::Borrowed(Value::Array(_)) | Cow::Owned(Value::Array(_)) => Ok(value),
            other => Ok(Cow::Owned(Value::Array(vec![other.into_owned()]))),
        },
    }
}

/// Checks a `format_time` pattern when the mapping loads.
pub(crate) fn check_time_format(pattern: &str) -> Result<(), String> {
    match StrftimeItems::new(pattern).find(|item| matches!(item, Item::Error)) {
        Some(_) => Err("it holds a `%` sequence that is not a strftime field".to_owned()),
        None => Ok(()),
    }
}

/// A time written with a strftime `pattern`, in UTC or in the time zone `zone`.
pub(crate) fn format_time(
    value: &Value,
    pattern: &str,
    zone: Option<chrono_tz::Tz>,
    unit: TimeUnit,
) -> Result<Value, ShapeError> {
    let time = to_time(value, unit).ok_or_else(|| time_error(value))?;
    let items = StrftimeItems::new(pattern);
    let mut out = String::new();
    let written = match zone {
        None => write!(out, "{}", time.format_with_items(items)),
        Some(zone) => write!(
            out,
            "{}",
            time.with_timezone(&zone).format_with_items(items)
        ),
    };
    written.map_err(|_| format!("cannot write the time with `{pattern}`"))?;
    Ok(Value::String(out))
}

/// The IANA time zone a text names (`Asia/Kolkata`).
pub(crate) fn time_zone(name: &str) -> Result<chrono_tz::Tz, ShapeError> {
    name.trim()
        .parse()
        .map_err(|_| format!("`{name}` is not a time zone (an IANA name such as `Europe/Paris`)"))
}

/// The number of items of a list, members of an object or characters of a text.
pub(crate) fn count(value: &Value) -> Result<Value, ShapeError> {
    match value {
        Value::Array(items) => Ok(Value::from(items.len())),
        Value::Object(members) => Ok(Value::from(members.len())),
        Value::String(text) => Ok(Value::from(text.chars().count())),
        other => Err(format!(
            "`count` needs a list, an object or text, not {}",
            kind(other)
        )),
    }
}

/// A number (or numeric text) multiplied by `factor` (1 when there is none): two integers give
/// an integer while it fits, anything else a float.
pub(crate) fn times(value: &Value, factor: Option<&Value>) -> Result<Value, ShapeError> {
    let a = number_for("times", "a value that is a number", value)?;
    let Some(factor) = factor.filter(|f| !f.is_null()) else {
        return Ok(Value::Number(a));
    };
    let b = number_for("times", "a factor that is a number", factor)?;
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64())
        && let Some(product) = x.checked_mul(y)
    {
        return Ok(Value::from(product));
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if (x * y).is_finite() => {
            Ok(Number::from_f64(x * y).map_or(Value::Null, Value::Number))
        }
        _ => Err(format!(
            "`times`: `{}` times `{}` is beyond a 64-bit float",
            short(value),
            short(factor)
        )),
    }
}

/// A number (or numeric text) rounded to `places` decimal places, half away from zero; an
/// integer is kept as it is.
pub(crate) fn round(value: &Value, places: u8) -> Result<Value, ShapeError> {
    let number = number_for("round", "a number", value)?;
    if number.is_i64() || number.is_u64() {
        return Ok(Value::Number(number));
    }
    let scale = 10_f64.powi(i32::from(places));
    let Some(float) = number.as_f64().filter(|f| f.is_finite()) else {
        return Err(format!(
            "`round`: `{}` is beyond a 64-bit float",
            short(value)
        ));
    };
    let scaled = float * scale;
    if !scaled.is_finite() || scaled.abs() >= 2_f64.powi(52) {
        // No fraction left at this scale: the number is already as round as it can be.
        return Ok(Value::Number(number));
    }
    Ok(Number::from_f64(scaled.round() / scale).map_or(Value::Null, Value::Number))
}

/// A list of names as an object of those keys, each holding `filler`.
pub(crate) fn to_object(value: &Value, filler: &Value) -> Result<Value, ShapeError> {
    let names: Vec<String> = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("`to_object` needs names, not {}", kind(other))),
            })
            .collect::<Result<_, _>>()?,
        Value::String(text) => vec![text.clone()],
        other => {
            return Err(format!(
                "`to_object` needs a list of names, not {}",
                kind(other)
            ));
        }
    };
    Ok(Value::Object(
        names
            .into_iter()
            .map(|name| (name, filler.clone()))
            .collect(),
    ))
}

/// The first `chars` characters of a text (numbers and booleans as their text).
pub(crate) fn truncate(value: &Value, chars: usize) -> Result<Value, ShapeError> {
    let text = text_for("truncate", value)?;
    Ok(Value::String(match text.char_indices().nth(chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.into_owned(),
    }))
}

/// The text split at `separator` into its parts, trimmed, empty ones left out: `"a, b,"` is
/// `["a", "b"]`. (A list is kept as it is by the caller.)
pub(crate) fn split(value: &Value, separator: &str) -> Result<Value, ShapeError> {
    let text = text_for("split", value)?;
    Ok(Value::Array(
        text.split(separator)
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| Value::String(part.to_owned()))
            .collect(),
    ))
}

/// The first match of `regex` in the text: its first group when it has groups (missing when
/// that group took no part), else the whole match; `None` without a match.
pub(crate) fn capture(value: &Value, regex: &regex::Regex) -> Result<Option<Value>, ShapeError> {
    let text = text_for("capture", value)?;
    let Some(found) = regex.captures(&text) else {
        return Ok(None);
    };
    let part = if regex.captures_len() > 1 {
        found.get(1)
    } else {
        found.get(0)
    };
    Ok(part.map(|m| Value::String(m.as_str().to_owned())))
}

/// A part of a user-agent text; `None` when the parser does not know it.
pub(crate) fn user_agent(value: &Value, part: UserAgentPart) -> Result<Option<Value>, ShapeError> {
    let text = text_for("user_agent", value)?;
    let found = LAST_USER_AGENT.with_borrow_mut(|last| {
        if last.as_ref().is_none_or(|(seen, _)| **seen != *text) {
            *last = Some((text.as_ref().into(), UserAgentParts::parse(&text)));
        }
        let (_, parts) = last.as_ref().expect("just parsed");
        parts
            .as_ref()
            .and_then(|parts| parts.get(part))
            .map(str::to_owned)
    });
    Ok(found.map(Value::String))
}

thread_local! {
    /// The user-agent text parsed last on this thread, and its parts: mappings read two or three
    /// parts of each event's user agent (browser, version, OS), each through its own operation.
    static LAST_USER_AGENT: std::cell::RefCell<Option<(Box<str>, Option<UserAgentParts>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The parts the parser found in a user-agent text; empty where it found none.
struct UserAgentParts {
    browser: Box<str>,
    browser_version: Box<str>,
    os: Box<str>,
    os_version: Box<str>,
    device: Box<str>,
}

impl UserAgentParts {
    fn parse(text: &str) -> Option<UserAgentParts> {
        static PARSER: std::sync::LazyLock<woothee::parser::Parser> =
            std::sync::LazyLock::new(woothee::parser::Parser::new);
        let parsed = PARSER.parse(text)?;
        let known = |part: &str| -> Box<str> {
            if part == woothee::woothee::VALUE_UNKNOWN {
                Box::from("")
            } else {
                part.into()
            }
        };
        Some(UserAgentParts {
            browser: known(parsed.name),
            browser_version: known(parsed.version),
            os: known(parsed.os),
            os_version: known(&parsed.os_version),
            device: known(parsed.category),
        })
    }

    /// A part, when the parser knows it.
    fn get(&self, part: UserAgentPart) -> Option<&str> {
        let found = match part {
            UserAgentPart::Browser => &self.browser,
            UserAgentPart::BrowserVersion => &self.browser_version,
            UserAgentPart::Os => &self.os,
            UserAgentPart::OsVersion => &self.os_version,
            UserAgentPart::Device => &self.device,
        };
        (!found.is_empty()).then_some(&**found)
    }
}

/// The text of a value for an operation that reads text.
fn text_for<'v>(operation: &str, value: &'v Value) -> Result<Cow<'v, str>, ShapeError> {
    match value {
        Value::String(s) => Ok(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Ok(Cow::Owned(n.to_string())),
        Value::Bool(b) => Ok(Cow::Owned(b.to_string())),
        other => Err(format!("`{operation}` needs text, not {}", kind(other))),
    }
}

/// The number an arithmetic `operation` reads: a number, or numeric text; `wanted` says what it
/// needs, for the message.
fn number_for(operation: &str, wanted: &str, value: &Value) -> Result<Number, ShapeError> {
    match value {
        Value::Number(n) => Ok(n.clone()),
        Value::String(s) => parse_number(s.trim())
            .ok_or_else(|| format!("`{operation}` needs {wanted}, not text `{}`", short(value))),
        other => Err(format!("`{operation}` needs {wanted}, not {}", kind(other))),
    }
}

/// Whether `text` is a valid time already written as `as: iso8601` writes it:
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_canonical_time(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0_u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if punctuation.iter().any(|&(at, c)| b[at] != c) {
        return false;
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second), Some(_)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
        digits(20..23),
    ) else {
        return false;
    };
    hour < 24
        && minute < 60
        && second < 60
        && i32::try_from(year)
            .ok()
            .and_then(|year| NaiveDate::from_ymd_opt(year, month, day))
            .is_some()
}

fn time_error(value: &Value) -> String {
    format!(
        "cannot read {} `{}` as a time (expected ISO-8601 text or a unix number)",
        kind(value),
        short(value)
    )
}

fn parse_number(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::from(i));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

pub(crate) fn to_time(value: &Value, unit: TimeUnit) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(time) = DateTime::parse_from_rfc3339(s) {
                return Some(time.with_timezone(&Utc));
            }
            // Amplitude's export format and other offset-less times are UTC.
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
                .map(|naive| naive.and_utc())
                .or_else(|| {
                    let number = parse_number(s)?;
                    to_time(&Value::Number(number), unit)
                })
        }
        Value::Number(n) => {
            let number = n.as_f64()?;
            #[allow(clippy::cast_possible_truncation)]
            let micros = match unit {
                TimeUnit::Seconds => (number * 1_000_000.0).round() as i64,
                TimeUnit::Milliseconds => (number * 1000.0).round() as i64,
                TimeUnit::Microseconds => number.round() as i64,
            };
            DateTime::from_timestamp_micros(micros)
        }
        _ => None,
    }
}

/// Whether `value` has the JSON type `want`.
pub fn has_type(value: &Value, want: ValueType) -> bool {
    match want {
        ValueType::String => value.is_string(),
        ValueType::Number => value.is_number(),
        ValueType::Integer => value.is_i64() || value.is_u64(),
        ValueType::Boolean => value.is_boolean(),
        ValueType::List => value.is_array(),
        ValueType::Object => value.is_object(),
    }
}

/// `text`, `a number`, ... for messages.
pub fn type_name(want: ValueType) -> &'static str {
    match want {
        ValueType::String => "text",
        ValueType::Number => "a number",
        ValueType::Integer => "a whole number",
        ValueType::Boolean => "true or false",
        ValueType::List => "a list",
        ValueType::Object => "an object",
    }
}

/// A value cut to a readable length for messages.
pub fn short(value: &Value) -> String {
    match value {
        Value::String(s) => short_text(s),
        other => short_text(&other.to_string()),
    }
}

/// `text`, cut to its first 40 characters.
fn short_text(text: &str) -> String {
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}…")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(value: Value, to: Conversion) -> Result<Value, String> {
        convert(Cow::Owned(value), to, TimeUnit::Seconds).map(Cow::into_owned)
    }

    #[test]
    fn canonical_times_are_kept_and_others_normalised() {
        let iso = |text: &str| conv(json!(text), Conversion::Iso8601);
        assert_eq!(
            iso("2026-11-02T09:17:00.000Z"),
            Ok(json!("2026-11-02T09:17:00.000Z"))
        );
        assert_eq!(
            iso("2026-11-02T09:17:00Z"),
            Ok(json!("2026-11-02T09:17:00.000Z"))
        );
        assert!(iso("2026-02-30T09:17:00.000Z").is_err());
        assert!(iso("2026-11-02T24:17:00.000Z").is_err());
        assert!(!is_canonical_time("2026-11-02T09:17:00.000+00:00"));
    }

    #[test]
    fn dates_are_calendar_days_in_utc() {
        assert_eq!(
            conv(json!("1990-05-17"), Conversion::Date),
            Ok(json!("1990-05-17"))
        );
        assert_eq!(
            conv(json!("1990-05-17T23:30:00-02:00"), Conversion::Date),
            Ok(json!("1990-05-18"))
        );
        assert_eq!(conv(json!(0), Conversion::Date), Ok(json!("1970-01-01")));
        assert!(conv(json!("someday"), Conversion::Date).is_err());
    }

    #[test]
    fn converts_between_scalar_types() {
        assert_eq!(conv(json!(99.99), Conversion::String), Ok(json!("99.99")));
        assert_eq!(conv(json!("a"), Conversion::List), Ok(json!(["a"])));
        assert_eq!(
            conv(json!({"a": 1}), Conversion::List),
            Ok(json!([{"a": 1}]))
        );
        assert_eq!(
            conv(json!([1, null]), Conversion::List),
            Ok(json!([1, null]))
        );
        assert_eq!(conv(json!("12"), Conversion::Integer), Ok(json!(12)));
        assert_eq!(conv(json!("12.5"), Conversion::Number), Ok(json!(12.5)));
        assert_eq!(conv(json!("TRUE"), Conversion::Boolean), Ok(json!(true)));
        assert!(
            conv(json!("abc"), Conversion::Number)
                .unwrap_err()
                .contains("cannot convert text `abc`")
        );
        assert!(conv(json!(""), Conversion::Integer).is_err());
    }

    #[test]
    fn multiplies_by_a_factor_keeping_integers_whole() {
        assert_eq!(super::times(&json!(10), Some(&json!(3))), Ok(json!(30)));
        assert_eq!(
            super::times(&json!("2.5"), Some(&json!("4"))),
            Ok(json!(10.0))
        );
        assert_eq!(super::times(&json!(19.99), None), Ok(json!(19.99)));
        assert_eq!(super::times(&json!(7), Some(&json!(null))), Ok(json!(7)));
        // An integer product that overflows is computed as a float.
        assert_eq!(
            super::times(&json!(i64::MAX), Some(&json!(2))),
            Ok(json!(1.844_674_407_370_955_2e19))
        );
        let bad = super::times(&json!(3), Some(&json!("two"))).unwrap_err();
        assert!(
            bad.contains("a factor that is a number, not text `two`"),
            "{bad}"
        );
        let bad = super::times(&json!([1]), Some(&json!(2))).unwrap_err();
        assert!(
            bad.contains("a value that is a number, not a list"),
            "{bad}"
        );
    }

    #[test]
    fn rounds_numbers_half_away_from_zero() {
        let round = |value: Value, places| super::round(&value, places);
        assert_eq!(round(json!(12.345), 2), Ok(json!(12.35)));
        assert_eq!(round(json!(-0.125), 2), Ok(json!(-0.13)));
        assert_eq!(round(json!("9.999"), 2), Ok(json!(10.0)));
        assert_eq!(round(json!(2.5), 0), Ok(json!(3.0)));
        // Integers, and floats with no fraction left at that scale, are kept as they are.
        assert_eq!(round(json!(12), 2), Ok(json!(12)));
        assert_eq!(round(json!("7"), 1), Ok(json!(7)));
        assert_eq!(round(json!(1e300), 2), Ok(json!(1e300)));
        assert!(round(json!("abc"), 2).unwrap_err().contains("text `abc`"));
        assert!(round(json!([1.5]), 2).unwrap_err().contains("not a list"));
    }

    #[test]
    fn normalises_times_to_utc() {
        assert_eq!(
            conv(json!("2024-05-01T12:00:00+02:00"), Conversion::Iso8601),
            Ok(json!("2024-05-01T10:00:00.000Z"))
        );
        assert_eq!(
            conv(json!("2022-02-28 20:07:01.795"), Conversion::Iso8601),
            Ok(json!("2022-02-28T20:07:01.795Z"))
        );
        assert_eq!(
            conv(json!(1_700_000_000), Conversion::Iso8601),
            Ok(json!("2023-11-14T22:13:20.000Z"))
        );
        assert_eq!(
            conv(json!("2023-11-14T22:13:20Z"), Conversion::UnixMillis),
            Ok(json!(1_700_000_000_000_i64))
        );
        let millis = convert(
            Cow::Owned(json!(1_700_000_000_123_i64)),
            Conversion::Iso8601,
            TimeUnit::Milliseconds,
        );
        assert_eq!(
            millis.unwrap().into_owned(),
            json!("2023-11-14T22:13:20.123Z")
        );
        assert!(conv(json!("yesterday"), Conversion::Iso8601).is_err());
    }

    #[test]
    fn iso8601_output_matches_its_strftime_format() {
        let times = [
            DateTime::parse_from_rfc3339("2016-12-31T23:59:60.5Z").unwrap(),
            DateTime::parse_from_rfc3339("0999-01-02T03:04:05.678+01:00").unwrap(),
        ]
        .map(|t| t.with_timezone(&Utc))
        .into_iter()
        .chain(
            [
                0,
                1_700_000_000_123,
                -62_198_755_200_000,
                253_402_300_800_000,
            ]
            .map(|ms| DateTime::from_timestamp_millis(ms).unwrap()),
        );
        for time in times {
            assert_eq!(
                time.to_rfc3339_opts(SecondsFormat::Millis, true),
                time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }
    }

    #[test]
    fn snake_cases_names() {
        assert_eq!(snake_case("Order Completed"), "order_completed");
        assert_eq!(snake_case("firstName"), "first_name");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    #[test]
    fn transforms_text() {
        let t = |v: Value, t: Transform| transform(&v, t);
        assert_eq!(
            t(json!("  A@B.com "), Transform::Trim),
            Ok(json!("A@B.com"))
        );
        assert_eq!(t(json!("A@B.com"), Transform::Lower), Ok(json!("a@b.com")));
        assert_eq!(
            t(json!("a@b.com"), Transform::Sha256),
            Ok(json!(
                "fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf"
            ))
        );
        assert_eq!(
            t(
                json!(" Order \t Completed\n"),
                Transform::SpacesToUnderscores
            ),
            Ok(json!("Order_Completed"))
        );
        assert_eq!(
            t(json!(12), Transform::SpacesToUnderscores),
            Ok(json!("12"))
        );
        assert!(t(json!({"a": 1}), Transform::Lower).is_err());
    }
}
