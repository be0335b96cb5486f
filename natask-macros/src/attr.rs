//! Parses the arguments of `#[task(...)]`: the syntax of every value. Ranges
//! and relations between values are checked in `valid`.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Lit, LitStr};

use natask_core::retry::{parse_backoff, BackoffSpec};

use crate::ctxt::Ctxt;

/// Every key `#[task]` accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "queue",
    "name",
    "retries",
    "timeout",
    "backoff",
    "cron",
    "time_zone",
    "unique",
    "unique_by",
    "unique_until",
    "payload",
    "crate",
];

/// A value together with the tokens it came from, for spans.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

#[derive(Default)]
pub(crate) struct TaskArgs {
    pub(crate) queue: Option<Spanned<String>>,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) retries: Option<Spanned<u64>>,
    pub(crate) timeout_ms: Option<Spanned<u64>>,
    pub(crate) backoff: Option<Spanned<BackoffSpec>>,
    /// The literal, kept whole: `valid` checks its syntax on its span.
    pub(crate) cron: Option<LitStr>,
    /// `time_zone = "Europe/Berlin"` for `cron`, kept whole for its span.
    pub(crate) time_zone: Option<LitStr>,
    /// `unique = "10m"`: the lock's TTL in milliseconds (`valid` checks it
    /// is whole seconds).
    pub(crate) unique_ms: Option<Spanned<u64>>,
    /// `unique_by = "a, b"`, kept whole: `valid` checks the names against
    /// the payload parameters.
    pub(crate) unique_by: Option<LitStr>,
    /// `unique_until = "started"`, kept whole: `valid` checks the stage.
    pub(crate) unique_until: Option<LitStr>,
    pub(crate) payload: Option<syn::Ident>,
    pub(crate) crate_path: Option<syn::Path>,
}

impl TaskArgs {
    pub(crate) fn parse(cx: &mut Ctxt, tokens: proc_macro2::TokenStream) -> TaskArgs {
        let mut args = TaskArgs::default();
        let mut seen: Vec<String> = Vec::new();
        let parser = syn::meta::parser(|meta| {
            args.parse_one(cx, &mut seen, meta);
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
            cx.push(syn::Error::new(
                e.span(),
                format!(
                    "expected `key = value` arguments separated by commas, e.g. `#[task(queue = \"emails\", retries = 3)]`; {e}"
                ),
            ));
        }
        args
    }

    fn parse_one(&mut self, cx: &mut Ctxt, seen: &mut Vec<String>, meta: ParseNestedMeta<'_>) {
        let key_span = meta
            .path
            .segments
            .first()
            .map_or_else(Span::call_site, |s| s.ident.span());
        let Some(key) = meta.path.get_ident().map(|i| i.to_string()) else {
            cx.error_spanned_by(
                &meta.path,
                format!("unknown `#[task]` argument; expected one of {}", list(KEYS)),
            );
            skip_value(&meta);
            return;
        };
        let key = key.trim_start_matches("r#").to_owned();
        if !KEYS.contains(&key.as_str()) {
            let hint = match closest(&key) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => String::new(),
            };
            cx.error_at(
                key_span,
                format!(
                    "unknown `#[task]` argument `{key}`; expected one of {}{hint}",
                    list(KEYS)
                ),
            );
            skip_value(&meta);
            return;
        }
        let value = match meta.value() {
            Ok(stream) => {
                if key == "crate" || key == "payload" {
                    // A quoted path is the likely mistake (serde writes
                    // `crate = "..."`); taking the literal whole also keeps
                    // the rest of the arguments parseable.
                    if stream.peek(Lit) {
                        Value::Expr(stream.parse::<Expr>())
                    } else {
                        Value::Path(stream.parse::<syn::Path>())
                    }
                } else {
                    Value::Expr(stream.parse::<Expr>())
                }
            }
            Err(_) => {
                cx.error_at(
                    key_span,
                    format!("`{key}` needs a value; write `{key} = {}`", example(&key)),
                );
                skip_value(&meta);
                return;
            }
        };
        if seen.contains(&key) {
            cx.error_at(
                key_span,
                format!("`{key}` is given twice; remove one of them"),
            );
            return;
        }
        seen.push(key.clone());
        match key.as_str() {
            "queue" => self.queue = value.lit_str(cx, &key).map(spanned_string),
            "name" => self.name = value.lit_str(cx, &key).map(spanned_string),
            "retries" => self.retries = value.retries(cx),
            "unique" => self.unique_ms = value.lit_str(cx, &key).and_then(|s| duration(cx, s)),
            "unique_by" => self.unique_by = value.lit_str(cx, &key),
            "unique_until" => self.unique_until = value.lit_str(cx, &key),
            "timeout" => self.timeout_ms = value.lit_str(cx, &key).and_then(|s| duration(cx, s)),
            "backoff" => {
                self.backoff = value
                    .lit_str(cx, &key)
                    .and_then(|s| match parse_backoff(&s.value()) {
                        Ok(b) => Some(Spanned {
                            value: b,
                            span: s.span(),
                        }),
                        Err(e) => {
                            cx.error_spanned_by(&s, e);
                            None
                        }
                    })
            }
            "cron" => self.cron = value.lit_str(cx, &key),
            "time_zone" => self.time_zone = value.lit_str(cx, &key),
            "payload" => {
                self.payload = value.path(cx, &key).and_then(|p| match p.get_ident() {
                    Some(i) => Some(i.clone()),
                    None => {
                        cx.error_spanned_by(
                            &p,
                            "`payload` names the generated struct, not a path; write a plain name such as `payload = SendEmail`",
                        );
                        None
                    }
                })
            }
            "crate" => self.crate_path = value.path(cx, &key),
            _ => unreachable!("checked against KEYS above"),
        }
    }
}

/// After an unknown or malformed key, consume its `= value` so the next
/// argument is still parsed (and its mistakes reported too).
fn skip_value(meta: &ParseNestedMeta<'_>) {
    if let Ok(stream) = meta.value() {
        let _ = stream.parse::<Expr>();
    } else if meta.input.peek(syn::token::Paren) {
        let _ = meta.parse_nested_meta(|m| {
            skip_value(&m);
            Ok(())
        });
    }
}

/// A duration literal, parsed; an error on the literal otherwise.
fn duration(cx: &mut Ctxt, s: LitStr) -> Option<Spanned<u64>> {
    match natask_core::duration::parse_ms(&s.value()) {
        Ok(ms) => Some(Spanned {
            value: ms,
            span: s.span(),
        }),
        Err(e) => {
            cx.error_spanned_by(&s, e);
            None
        }
    }
}

fn spanned_string(s: LitStr) -> Spanned<String> {
    Spanned {
        value: s.value(),
        span: s.span(),
    }
}

enum Value {
    Expr(syn::Result<Expr>),
    /// `crate` and `payload`, unless the value is a literal (an `Expr`).
    Path(syn::Result<syn::Path>),
}

impl Value {
    fn lit_str(self, cx: &mut Ctxt, key: &str) -> Option<LitStr> {
        match self {
            Value::Expr(Ok(Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }))) => Some(s),
            Value::Expr(Ok(other)) => {
                let example = match (&other, key) {
                    // `timeout = 30`: keep the number, add the unit it lacks
                    (
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(i), ..
                        }),
                        "timeout",
                    ) => format!("\"{}s\"", i.base10_digits()),
                    _ => example(key).to_owned(),
                };
                cx.error_spanned_by(
                    &other,
                    format!("`{key}` takes a string literal; write `{key} = {example}`"),
                );
                None
            }
            Value::Expr(Err(e)) | Value::Path(Err(e)) => {
                cx.push(e);
                None
            }
            Value::Path(Ok(_)) => unreachable!("only `crate` and `payload` parse as paths"),
        }
    }

    fn retries(self, cx: &mut Ctxt) -> Option<Spanned<u64>> {
        match self {
            Value::Expr(Ok(Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }))) => match i.base10_parse::<u64>() {
                Ok(n) => Some(Spanned {
                    value: n,
                    span: i.span(),
                }),
                Err(_) => {
                    cx.error_spanned_by(
                        &i,
                        format!("`retries = {i}` is not a count of retries; write a whole number from 0 to {MAX_RETRIES}"),
                    );
                    None
                }
            },
            Value::Expr(Ok(other @ Expr::Unary(_))) => {
                cx.error_spanned_by(
                    &other,
                    "`retries` cannot be negative; write `retries = 0` for a task that is never retried",
                );
                None
            }
            Value::Expr(Ok(Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }))) => {
                cx.error_spanned_by(
                    &s,
                    format!(
                        "`retries` takes an integer, not a string; write `retries = {}`",
                        s.value()
                            .parse::<u64>()
                            .map_or_else(|_| "3".to_owned(), |n| n.to_string())
                    ),
                );
                None
            }
            Value::Expr(Ok(other)) => {
                cx.error_spanned_by(
                    &other,
                    "`retries` takes an integer literal; write `retries = 3`",
                );
                None
            }
            Value::Expr(Err(e)) | Value::Path(Err(e)) => {
                cx.push(e);
                None
            }
            Value::Path(Ok(_)) => unreachable!("only `crate` and `payload` parse as paths"),
        }
    }

    fn path(self, cx: &mut Ctxt, key: &str) -> Option<syn::Path> {
        match self {
            Value::Path(Ok(p)) => Some(p),
            Value::Expr(Ok(Expr::Lit(ExprLit { lit, .. }))) => {
                let what = if key == "payload" {
                    "a plain name"
                } else {
                    "a path"
                };
                let kind = if matches!(lit, Lit::Str(_)) {
                    "a string"
                } else {
                    "a literal"
                };
                // `crate = "my::natask"`: suggest the same path, unquoted
                let unquoted = match &lit {
                    Lit::Str(s) if key == "payload" => {
                        s.parse::<syn::Ident>().is_ok().then(|| s.value())
                    }
                    Lit::Str(s) => s.parse::<syn::Path>().is_ok().then(|| s.value()),
                    _ => None,
                };
                let example = unquoted.unwrap_or_else(|| example(key).to_owned());
                cx.error_spanned_by(
                    &lit,
                    format!("`{key}` takes {what}, not {kind}; write `{key} = {example}`"),
                );
                None
            }
            Value::Path(Err(e)) | Value::Expr(Err(e)) => {
                cx.push(e);
                None
            }
            Value::Expr(Ok(_)) => unreachable!("`crate` and `payload` parse as paths or literals"),
        }
    }
}

/// Most retries a task may ask for (checked in `valid`).
pub(crate) const MAX_RETRIES: u64 = 1_000;

fn example(key: &str) -> &'static str {
    match key {
        "timeout" => "\"30s\"",
        "queue" => "\"emails\"",
        "retries" => "3",
        "backoff" => "\"exponential(1s, x2, max 5m)\"",
        "cron" => "\"0 */5 * * * *\"",
        "time_zone" => "\"Europe/Berlin\"",
        "unique" => "\"10m\"",
        "unique_by" => "\"tenant, report\"",
        "unique_until" => "\"started\"",
        "payload" => "SendEmail",
        "crate" => "::my_crate::natask",
        _ => "\"send_email\"",
    }
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The valid key closest to `key`, if it is close enough to be a typo.
fn closest(key: &str) -> Option<&'static str> {
    natask_core::spelling::closest(key, KEYS.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(tokens: proc_macro2::TokenStream) -> (TaskArgs, Result<(), String>) {
        let mut cx = Ctxt::default();
        let args = TaskArgs::parse(&mut cx, tokens);
        let errors = cx.check().map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        });
        (args, errors)
    }

    #[test]
    fn parses_every_key() {
        let (args, errors) = parse(quote!(
            queue = "emails",
            name = "mail",
            retries = 3,
            timeout = "2m",
            backoff = "list(1s, 5s)",
            payload = Mail,
            crate = ::my::natask
        ));
        errors.unwrap();
        assert_eq!(args.queue.unwrap().value, "emails");
        assert_eq!(args.name.unwrap().value, "mail");
        assert_eq!(args.retries.unwrap().value, 3);
        assert_eq!(args.timeout_ms.unwrap().value, 120_000);
        assert_eq!(
            args.backoff.unwrap().value,
            BackoffSpec::List(vec![1_000, 5_000])
        );
        assert_eq!(args.payload.unwrap().to_string(), "Mail");
        let path = args.crate_path.unwrap();
        assert_eq!(quote!(#path).to_string(), ":: my :: natask");
    }

    #[test]
    fn reports_every_mistake_together() {
        let (_, errors) = parse(quote!(
            qeue = "x",
            retries = "3",
            timeout = "30x",
            backoff = "fixd(1s)"
        ));
        assert_eq!(
            errors.unwrap_err(),
            "unknown `#[task]` argument `qeue`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `payload`, `crate`; did you mean `queue`? \
             | `retries` takes an integer, not a string; write `retries = 3` \
             | `30x` is not a duration; write a whole number followed by `ms`, `s`, `m`, `h` or `d`, e.g. `30s` \
             | `fixd` is not a backoff policy (did you mean `fixed`?); write `fixed(5s)`, `exponential(500ms, x2, max 1m)` or `list(1s, 5s, 30s)`"
        );
    }

    #[test]
    fn wrong_literal_kinds() {
        let (_, errors) = parse(quote!(queue = emails, retries = -1, retries2 = 1, name = 3));
        assert_eq!(
            errors.unwrap_err(),
            "`queue` takes a string literal; write `queue = \"emails\"` \
             | `retries` cannot be negative; write `retries = 0` for a task that is never retried \
             | unknown `#[task]` argument `retries2`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `payload`, `crate`; did you mean `retries`? \
             | `name` takes a string literal; write `name = \"send_email\"`"
        );
        let (_, errors) = parse(quote!(retries = 99999999999999999999999));
        assert!(errors
            .unwrap_err()
            .starts_with("`retries = 99999999999999999999999` is not a count"));
    }

    #[test]
    fn flags_and_paths_are_refused() {
        let (_, errors) = parse(quote!(retries, payload = a::B));
        assert_eq!(
            errors.unwrap_err(),
            "`retries` needs a value; write `retries = 3` \
             | `payload` names the generated struct, not a path; write a plain name such as `payload = SendEmail`"
        );
    }

    #[test]
    fn quoted_paths_are_refused() {
        let (_, errors) = parse(quote!(
            crate = "::my::natask",
            payload = "Mail",
            queue = "emails"
        ));
        assert_eq!(
            errors.unwrap_err(),
            "`crate` takes a path, not a string; write `crate = ::my::natask` \
             | `payload` takes a plain name, not a string; write `payload = Mail`"
        );
        let (_, errors) = parse(quote!(crate = 3, payload = "a::B"));
        assert_eq!(
            errors.unwrap_err(),
            "`crate` takes a path, not a literal; write `crate = ::my_crate::natask` \
             | `payload` takes a plain name, not a string; write `payload = SendEmail`"
        );
    }

    #[test]
    fn duplicated_keys_are_refused() {
        let (args, errors) = parse(quote!(queue = "a", queue = "b"));
        assert_eq!(
            errors.unwrap_err(),
            "`queue` is given twice; remove one of them"
        );
        assert_eq!(args.queue.unwrap().value, "a");
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(closest("retry"), Some("retries"));
        assert_eq!(closest("timout"), Some("timeout"));
        assert_eq!(closest("backof"), Some("backoff"));
        assert_eq!(closest("colour"), None);
    }
}
