//! The JSON Schema of the payload, read from the parameters' types as
//! written, for the live catalog (`natask enqueue` checks a payload against
//! it before sending). Types the macro cannot see into (your own structs
//! and enums, `Uuid`, dates, fields with `#[serde(with = ..)]`) accept any
//! value and name the Rust type in `x-rust-type`; the worker's decode is
//! still the final check.

use serde_json::{json, Map, Value};
use syn::{GenericArgument, PathArguments, Type};

use crate::model::{Field, Task};

/// The schema, as compact JSON text.
pub(super) fn payload_schema(task: &Task) -> String {
    let mut schema = Map::new();
    schema.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    schema.insert("title".into(), json!(task.name));
    if task.fields.is_empty() {
        // A task without payload parameters has the body `null`.
        schema.insert("type".into(), json!("null"));
        return Value::Object(schema).to_string();
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &task.fields {
        let serde = SerdeAttrs::of(field);
        if serde.skip {
            continue;
        }
        let name = serde
            .rename
            .unwrap_or_else(|| unraw(&field.ident.to_string()));
        let mut property = if serde.custom {
            any(&field.ty)
        } else {
            of_type(&field.ty)
        };
        if let Some(doc) = doc(field) {
            if let Value::Object(p) = &mut property {
                p.insert("description".into(), json!(doc));
            }
        }
        if !serde.default && !is_option(&field.ty) {
            required.push(json!(name));
        }
        properties.insert(name, property);
    }
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), Value::Array(required));
    Value::Object(schema).to_string()
}

/// What `#[serde(..)]` on a payload parameter changes in its schema.
#[derive(Default)]
struct SerdeAttrs {
    rename: Option<String>,
    default: bool,
    skip: bool,
    /// `with`, `serialize_with` or `deserialize_with`: the type says nothing.
    custom: bool,
}

impl SerdeAttrs {
    fn of(field: &Field) -> SerdeAttrs {
        let mut out = SerdeAttrs::default();
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            // `valid` left these to serde, which reports malformed ones.
            let _ = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(ToString::to_string);
                match key.as_deref() {
                    Some("rename") => {
                        if let Ok(value) = meta.value() {
                            if let Ok(lit) = value.parse::<syn::LitStr>() {
                                out.rename = Some(lit.value());
                            }
                        }
                    }
                    Some("default") => {
                        out.default = true;
                        if let Ok(value) = meta.value() {
                            let _ = value.parse::<syn::Expr>();
                        }
                    }
                    Some("skip" | "skip_deserializing") => out.skip = true,
                    Some("with" | "serialize_with" | "deserialize_with") => {
                        out.custom = true;
                        if let Ok(value) = meta.value() {
                            let _ = value.parse::<syn::Expr>();
                        }
                    }
                    _ => {
                        if let Ok(value) = meta.value() {
                            let _ = value.parse::<syn::Expr>();
                        }
                    }
                }
                Ok(())
            });
        }
        out
    }
}

fn doc(field: &Field) -> Option<String> {
    let lines: Vec<String> = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

fn unraw(ident: &str) -> String {
    ident.strip_prefix("r#").unwrap_or(ident).to_owned()
}

/// The last path segment of `ty` and its generic type arguments.
fn segment(ty: &Type) -> Option<(String, Vec<&Type>)> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let args = match &last.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((last.ident.to_string(), args))
}

fn is_option(ty: &Type) -> bool {
    matches!(segment(ty), Some((name, args)) if name == "Option" && args.len() == 1)
}

/// The schema of a subscriber's payload, the event `ty`: the macro on the
/// function cannot see the struct's fields, so any value, naming the type.
pub(super) fn event_schema(title: &str, ty: &Type) -> String {
    let mut schema = Map::new();
    schema.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    schema.insert("title".into(), json!(title));
    if let Value::Object(any) = any(ty) {
        schema.extend(any);
    }
    Value::Object(schema).to_string()
}

/// Any value; names the Rust type.
fn any(ty: &Type) -> Value {
    let written = quote::quote!(#ty).to_string().replace(' ', "");
    json!({ "x-rust-type": written })
}

fn integer(min: Option<i128>, max: Option<u128>) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("integer"));
    if let Some(min) = min {
        schema.insert("minimum".into(), json!(min as f64));
        if let Ok(min) = i64::try_from(min) {
            schema.insert("minimum".into(), json!(min));
        }
    }
    if let Some(max) = max {
        schema.insert("maximum".into(), json!(max as f64));
        if let Ok(max) = u64::try_from(max) {
            schema.insert("maximum".into(), json!(max));
        }
    }
    Value::Object(schema)
}

fn of_type(ty: &Type) -> Value {
    match ty {
        Type::Reference(r) => return of_type(&r.elem),
        Type::Paren(p) => return of_type(&p.elem),
        Type::Group(g) => return of_type(&g.elem),
        Type::Tuple(t) if t.elems.is_empty() => return json!({ "type": "null" }),
        Type::Tuple(t) => {
            let items: Vec<Value> = t.elems.iter().map(of_type).collect();
            let n = items.len();
            return json!({ "type": "array", "prefixItems": items, "minItems": n, "maxItems": n });
        }
        Type::Array(a) => {
            let items = of_type(&a.elem);
            return match &a.len {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => match n.base10_parse::<u64>() {
                    Ok(n) => {
                        json!({ "type": "array", "items": items, "minItems": n, "maxItems": n })
                    }
                    Err(_) => json!({ "type": "array", "items": items }),
                },
                _ => json!({ "type": "array", "items": items }),
            };
        }
        Type::Slice(s) => return json!({ "type": "array", "items": of_type(&s.elem) }),
        _ => {}
    }
    let Some((name, args)) = segment(ty) else {
        return any(ty);
    };
    match (name.as_str(), args.as_slice()) {
        ("String" | "str", []) => json!({ "type": "string" }),
        ("Cow", [inner]) => of_type(inner),
        ("char", []) => json!({ "type": "string", "minLength": 1, "maxLength": 1 }),
        ("bool", []) => json!({ "type": "boolean" }),
        ("u8", []) => integer(Some(0), Some(u8::MAX.into())),
        ("u16", []) => integer(Some(0), Some(u16::MAX.into())),
        ("u32", []) => integer(Some(0), Some(u32::MAX.into())),
        ("u64" | "usize", []) => integer(Some(0), Some(u64::MAX.into())),
        ("u128", []) => integer(Some(0), None),
        ("i8", []) => integer(Some(i8::MIN.into()), Some(i8::MAX as u128)),
        ("i16", []) => integer(Some(i16::MIN.into()), Some(i16::MAX as u128)),
        ("i32", []) => integer(Some(i32::MIN.into()), Some(i32::MAX as u128)),
        ("i64" | "isize", []) => integer(Some(i64::MIN.into()), Some(i64::MAX as u128)),
        ("i128", []) => integer(None, None),
        ("f32" | "f64", []) => json!({ "type": "number" }),
        ("Option", [inner]) => json!({ "anyOf": [of_type(inner), { "type": "null" }] }),
        ("Box" | "Arc" | "Rc", [inner]) => of_type(inner),
        ("Vec" | "VecDeque" | "LinkedList" | "BinaryHeap", [item]) => {
            json!({ "type": "array", "items": of_type(item) })
        }
        ("HashSet" | "BTreeSet", [item]) => {
            json!({ "type": "array", "items": of_type(item), "uniqueItems": true })
        }
        ("HashMap" | "BTreeMap", [key, value]) if is_string(key) => {
            json!({ "type": "object", "additionalProperties": of_type(value) })
        }
        ("Value", []) => json!({}),
        _ => any(ty),
    }
}

fn is_string(ty: &Type) -> bool {
    matches!(segment(ty), Some((name, args)) if args.is_empty() && name == "String")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(ty: &str) -> Value {
        of_type(&syn::parse_str(ty).unwrap())
    }

    #[test]
    fn types_map_to_json_schema() {
        assert_eq!(schema_of("String"), json!({"type": "string"}));
        assert_eq!(schema_of("&'static str"), json!({"type": "string"}));
        assert_eq!(
            schema_of("u8"),
            json!({"type": "integer", "minimum": 0, "maximum": 255})
        );
        assert_eq!(
            schema_of("Option<Vec<bool>>"),
            json!({"anyOf": [{"type": "array", "items": {"type": "boolean"}}, {"type": "null"}]})
        );
        assert_eq!(
            schema_of("std::collections::HashMap<String, f64>"),
            json!({"type": "object", "additionalProperties": {"type": "number"}})
        );
        assert_eq!(
            schema_of("(u8, String)")["prefixItems"][1],
            json!({"type": "string"})
        );
        assert_eq!(
            schema_of("my::Address"),
            json!({"x-rust-type": "my::Address"})
        );
        assert_eq!(schema_of("serde_json::Value"), json!({}));
    }
}
