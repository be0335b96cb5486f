//! Checks a payload against the JSON Schema `#[task]` writes into the
//! catalog. That schema uses a small part of JSON Schema (`type`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `items`, `prefixItems`,
//! `minItems`/`maxItems`, `properties`/`required`, `additionalProperties`,
//! `anyOf`); this checks exactly that part, and accepts whatever it does
//! not know (`x-rust-type` fields: the worker's decode checks those).

use serde_json::Value;

/// The first place where `value` does not match `schema`, as
/// `at <JSON pointer>: <what was wrong>`.
pub(crate) fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, value, "")
}

fn check_at(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    let fail = |what: String| {
        Err(format!(
            "at `{}`: {what}",
            if at.is_empty() { "/" } else { at }
        ))
    };
    if let Some(any_of) = schema.get("anyOf").and_then(Value::as_array) {
        if !any_of.iter().any(|s| check_at(s, value, at).is_ok()) {
            return fail(format!("{} matches none of the allowed forms", kind(value)));
        }
    }
    if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        let ok = match wanted {
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !ok {
            return fail(format!("expected {wanted}, got {}", kind(value)));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return fail(format!(
                    "{value} is below the minimum {}",
                    schema["minimum"]
                ));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return fail(format!(
                    "{value} is above the maximum {}",
                    schema["maximum"]
                ));
            }
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
            || schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
        {
            return fail(format!("a string of {len} characters is not allowed here"));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if let Some(min) = schema
            .get("minItems")
            .and_then(Value::as_u64)
            .filter(|m| len < *m)
        {
            return fail(format!("{len} items, at least {min} wanted"));
        }
        if let Some(max) = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .filter(|m| len > *m)
        {
            return fail(format!("{len} items, at most {max} wanted"));
        }
        let prefix = schema.get("prefixItems").and_then(Value::as_array);
        for (i, item) in items.iter().enumerate() {
            let item_schema = prefix
                .and_then(|p| p.get(i))
                .or_else(|| schema.get("items"));
            if let Some(item_schema) = item_schema {
                check_at(item_schema, item, &format!("{at}/{i}"))?;
            }
        }
    }
    if let Some(fields) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                return fail(format!("the field `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            let field_schema = properties
                .and_then(|p| p.get(name))
                .or_else(|| schema.get("additionalProperties"));
            if let Some(field_schema) = field_schema {
                check_at(field_schema, field, &format!("{at}/{}", escape(name)))?;
            }
        }
    }
    Ok(())
}

/// A JSON pointer token.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {value}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mail() -> Value {
        json!({
            "type": "object",
            "properties": {
                "to": { "type": "string" },
                "count": { "type": "integer", "minimum": 0, "maximum": 255 },
                "cc": { "anyOf": [ { "type": "array", "items": { "type": "string" } }, { "type": "null" } ] },
                "address": { "x-rust-type": "Address" }
            },
            "required": ["to", "count"]
        })
    }

    #[test]
    fn a_matching_payload_passes_and_each_mismatch_says_where() {
        let ok = json!({ "to": "a@b", "count": 3, "cc": ["c@d"], "address": { "any": 1 } });
        assert_eq!(check(&mail(), &ok), Ok(()));
        assert_eq!(
            check(&mail(), &json!({ "to": "a@b", "count": 3, "cc": null })),
            Ok(())
        );
        let cases = [
            (json!({ "count": 3 }), "at `/`: the field `to` is missing"),
            (
                json!({ "to": "a", "count": "seven" }),
                "at `/count`: expected integer, got the string \"seven\"",
            ),
            (
                json!({ "to": "a", "count": 300 }),
                "at `/count`: 300 is above the maximum 255",
            ),
            (
                json!({ "to": "a", "count": 1.5 }),
                "at `/count`: expected integer, got the number 1.5",
            ),
            (
                json!({ "to": "a", "count": 1, "cc": [1] }),
                "at `/cc`: an array matches none of the allowed forms",
            ),
            (json!([1]), "at `/`: expected object, got an array"),
        ];
        for (payload, said) in cases {
            assert_eq!(check(&mail(), &payload), Err(said.to_owned()), "{payload}");
        }
    }

    #[test]
    fn tuples_and_maps_are_checked_item_by_item() {
        let pair = json!({ "type": "array", "prefixItems": [{ "type": "integer" }, { "type": "string" }], "minItems": 2, "maxItems": 2 });
        assert_eq!(check(&pair, &json!([1, "a"])), Ok(()));
        assert_eq!(
            check(&pair, &json!([1, 2])),
            Err("at `/1`: expected string, got the number 2".into())
        );
        assert_eq!(
            check(&pair, &json!([1])),
            Err("at `/`: 1 items, at least 2 wanted".into())
        );
        let map = json!({ "type": "object", "additionalProperties": { "type": "number" } });
        assert_eq!(
            check(&map, &json!({ "a/b": "x" })),
            Err("at `/a~1b`: expected number, got the string \"x\"".into())
        );
    }
}
