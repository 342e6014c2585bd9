//! A tiny closed-schema validator that words its first error the way the gateway's
//! `formatValidationErrors` does (AJV without `allErrors`): `at root: unexpected
//! property 'foo'`, `at /client/id: must be equal to one of the allowed values`,
//! `must have required property 'to'`. The schemas it checks are in `params.rs`.
//!
//! Hand-written on purpose: a JSON Schema crate words its errors its own way, stops
//! at a different first error and counts string length in code points, while the
//! fake must answer with AJV's words, AJV's first error and UTF-16 lengths.

use serde_json::{Map, Value};

pub enum Schema {
    Any,
    /// A string with optional length bounds, enum or `YYYY-MM-DD` pattern.
    Str {
        min: usize,
        max: Option<usize>,
        one_of: Option<&'static [&'static str]>,
        date: bool,
    },
    Int {
        minimum: Option<i64>,
    },
    Bool,
    Array(Box<Schema>),
    /// `properties` in schema order; `closed` = `additionalProperties: false`.
    Object {
        props: Vec<Prop>,
        closed: bool,
    },
    Record(Box<Schema>),
    AnyOf(Vec<Schema>),
    /// `Type.Literal(x)`.
    Const(&'static str),
}

pub struct Prop {
    pub name: &'static str,
    pub schema: Schema,
    pub required: bool,
}

pub fn req(name: &'static str, schema: Schema) -> Prop {
    Prop {
        name,
        schema,
        required: true,
    }
}

pub fn opt(name: &'static str, schema: Schema) -> Prop {
    Prop {
        name,
        schema,
        required: false,
    }
}

pub fn string() -> Schema {
    Schema::Str {
        min: 0,
        max: None,
        one_of: None,
        date: false,
    }
}

pub fn non_empty() -> Schema {
    Schema::Str {
        min: 1,
        max: None,
        one_of: None,
        date: false,
    }
}

pub fn bounded(min: usize, max: usize) -> Schema {
    Schema::Str {
        min,
        max: Some(max),
        one_of: None,
        date: false,
    }
}

pub fn one_of(values: &'static [&'static str]) -> Schema {
    Schema::Str {
        min: 0,
        max: None,
        one_of: Some(values),
        date: false,
    }
}

pub fn date() -> Schema {
    Schema::Str {
        min: 0,
        max: None,
        one_of: None,
        date: true,
    }
}

pub fn int(minimum: Option<i64>) -> Schema {
    Schema::Int { minimum }
}

pub fn array(items: Schema) -> Schema {
    Schema::Array(Box::new(items))
}

pub fn closed(props: Vec<Prop>) -> Schema {
    Schema::Object {
        props,
        closed: true,
    }
}

pub fn literals(values: &'static [&'static str]) -> Schema {
    Schema::AnyOf(values.iter().map(|value| Schema::Const(value)).collect())
}

/// Returns the first error, formatted; `None` when `value` matches.
#[must_use]
pub fn check(schema: &Schema, value: &Value) -> Option<String> {
    let mut errors = Vec::new();
    validate(schema, value, "", &mut errors);
    if errors.is_empty() {
        return None;
    }
    let mut unique: Vec<String> = Vec::new();
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    Some(unique.join("; "))
}

fn at(path: &str, message: &str) -> String {
    match path {
        "" => message.to_string(),
        _ => format!("at {path}: {message}"),
    }
}

/// Pushes the first failure (AJV stops at the first error without `allErrors`; only
/// `anyOf` reports one error per branch plus its own).
fn validate(schema: &Schema, value: &Value, path: &str, errors: &mut Vec<String>) -> bool {
    match schema {
        Schema::Any => true,
        Schema::Str {
            min,
            max,
            one_of,
            date,
        } => {
            let Value::String(text) = value else {
                errors.push(at(path, "must be string"));
                return false;
            };
            let chars = text.encode_utf16().count();
            if chars < *min {
                errors.push(at(
                    path,
                    &format!("must NOT have fewer than {min} characters"),
                ));
                return false;
            }
            if let Some(max) = max
                && chars > *max
            {
                errors.push(at(
                    path,
                    &format!("must NOT have more than {max} characters"),
                ));
                return false;
            }
            if *date && !is_date(text) {
                errors.push(at(path, "must match pattern \"^\\d{4}-\\d{2}-\\d{2}$\""));
                return false;
            }
            if let Some(values) = one_of
                && !values.contains(&text.as_str())
            {
                errors.push(at(path, "must be equal to one of the allowed values"));
                return false;
            }
            true
        }
        Schema::Int { minimum } => {
            let Some(number) = as_integer(value) else {
                errors.push(at(path, "must be integer"));
                return false;
            };
            if let Some(minimum) = minimum
                && number < *minimum
            {
                errors.push(at(path, &format!("must be >= {minimum}")));
                return false;
            }
            true
        }
        Schema::Bool => {
            if value.is_boolean() {
                return true;
            }
            errors.push(at(path, "must be boolean"));
            false
        }
        Schema::Const(expected) => {
            if value.as_str() == Some(expected) {
                return true;
            }
            errors.push(at(path, "must be equal to constant"));
            false
        }
        Schema::Array(items) => {
            let Value::Array(entries) = value else {
                errors.push(at(path, "must be array"));
                return false;
            };
            for (index, entry) in entries.iter().enumerate() {
                if !validate(items, entry, &format!("{path}/{index}"), errors) {
                    return false;
                }
            }
            true
        }
        Schema::Record(values) => {
            let Value::Object(map) = value else {
                errors.push(at(path, "must be object"));
                return false;
            };
            for (key, entry) in map {
                if !validate(values, entry, &format!("{path}/{}", escape(key)), errors) {
                    return false;
                }
            }
            true
        }
        Schema::Object { props, closed } => {
            let Value::Object(map) = value else {
                errors.push(at(path, "must be object"));
                return false;
            };
            validate_object(props, *closed, map, path, errors)
        }
        Schema::AnyOf(branches) => {
            let mut branch_errors = Vec::new();
            for branch in branches {
                let mut these = Vec::new();
                if validate(branch, value, path, &mut these) {
                    return true;
                }
                branch_errors.extend(these);
            }
            errors.extend(branch_errors);
            errors.push(at(path, "must match a schema in anyOf"));
            false
        }
    }
}

fn validate_object(
    props: &[Prop],
    closed: bool,
    map: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) -> bool {
    for prop in props.iter().filter(|prop| prop.required) {
        if !map.contains_key(prop.name) {
            errors.push(at(
                path,
                &format!("must have required property '{}'", prop.name),
            ));
            return false;
        }
    }
    if closed {
        for key in map.keys() {
            if !props.iter().any(|prop| prop.name == key) {
                let where_ = match path {
                    "" => "at root".to_string(),
                    _ => format!("at {path}"),
                };
                errors.push(format!("{where_}: unexpected property '{key}'"));
                return false;
            }
        }
    }
    for prop in props {
        if let Some(entry) = map.get(prop.name)
            && !validate(
                &prop.schema,
                entry,
                &format!("{path}/{}", prop.name),
                errors,
            )
        {
            return false;
        }
    }
    true
}

/// JSON pointer escaping, as AJV's `instancePath`.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// JSON numbers that are whole, as JSON Schema's `integer`.
#[must_use]
pub fn as_integer(value: &Value) -> Option<i64> {
    if let Some(number) = value.as_i64() {
        return Some(number);
    }
    let float = value.as_f64()?;
    if float.fract() == 0.0 && float.abs() < 9.007_199_254_740_992e15 {
        // Safe: a whole float below 2^53 fits in i64.
        return Some(float as i64);
    }
    None
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_whole_floats_only() {
        assert_eq!(as_integer(&json!(4.0)), Some(4));
        assert_eq!(as_integer(&json!(4.5)), None);
        assert_eq!(as_integer(&json!("4")), None);
    }
}
