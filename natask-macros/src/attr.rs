//! Parses the arguments of `#[task(...)]`.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Lit, LitStr};

use crate::ctxt::Ctxt;

/// Every key `#[task]` accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &["queue", "name", "retries", "timeout", "payload", "crate"];

/// A value together with the tokens it came from, for spans.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

#[derive(Default)]
pub(crate) struct TaskArgs {
    pub(crate) queue: Option<Spanned<String>>,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) retries: Option<Spanned<u32>>,
    pub(crate) timeout_ms: Option<Spanned<u64>>,
    pub(crate) payload: Option<syn::Ident>,
    pub(crate) crate_path: Option<syn::Path>,
}

impl TaskArgs {
    pub(crate) fn parse(cx: &mut Ctxt, tokens: proc_macro2::TokenStream) -> TaskArgs {
        let mut args = TaskArgs::default();
        let parser = syn::meta::parser(|meta| {
            args.parse_one(cx, meta);
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
            cx.push(e);
        }
        args
    }

    fn parse_one(&mut self, cx: &mut Ctxt, meta: ParseNestedMeta<'_>) {
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
            return;
        };
        let value = match meta.value() {
            Ok(stream) => {
                if key == "crate" || key == "payload" {
                    Value::Path(stream.parse::<syn::Path>())
                } else {
                    Value::Expr(stream.parse::<Expr>())
                }
            }
            Err(_) => {
                cx.error_at(
                    key_span,
                    format!("`{key}` needs a value; write `{key} = ...`"),
                );
                return;
            }
        };
        match key.as_str() {
            "queue" => {
                let v = value.lit_str(cx, &key).map(|s| Spanned {
                    value: s.value(),
                    span: s.span(),
                });
                set(cx, &mut self.queue, key_span, &key, v)
            }
            "name" => {
                let v = value.lit_str(cx, &key).map(|s| Spanned {
                    value: s.value(),
                    span: s.span(),
                });
                set(cx, &mut self.name, key_span, &key, v)
            }
            "retries" => {
                let v = value.retries(cx);
                set(cx, &mut self.retries, key_span, &key, v)
            }
            "timeout" => {
                let v = value.lit_str(cx, &key).and_then(|s| duration(cx, &s));
                set(cx, &mut self.timeout_ms, key_span, &key, v)
            }
            "payload" => {
                let ident = value.path(cx).and_then(|p| match p.get_ident() {
                    Some(i) => Some(i.clone()),
                    None => {
                        cx.error_spanned_by(
                            &p,
                            "`payload` takes a struct name such as `payload = SendEmail`",
                        );
                        None
                    }
                });
                set(cx, &mut self.payload, key_span, &key, ident)
            }
            "crate" => {
                let v = value.path(cx);
                set(cx, &mut self.crate_path, key_span, &key, v)
            }
            _ => {
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
            }
        }
    }
}

enum Value {
    Expr(syn::Result<Expr>),
    Path(syn::Result<syn::Path>),
}

impl Value {
    fn lit_str(self, cx: &mut Ctxt, key: &str) -> Option<LitStr> {
        match self {
            Value::Expr(Ok(Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }))) => Some(s),
            Value::Expr(Ok(other)) => {
                cx.error_spanned_by(
                    &other,
                    format!(
                        "`{key}` takes a string literal, e.g. `{key} = {}`",
                        example(key)
                    ),
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

    fn retries(self, cx: &mut Ctxt) -> Option<Spanned<u32>> {
        match self {
            Value::Expr(Ok(Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }))) => match i.base10_parse::<u32>() {
                Ok(n) => Some(Spanned {
                    value: n,
                    span: i.span(),
                }),
                Err(_) => {
                    cx.error_spanned_by(
                        &i,
                        "`retries` must be a whole number from 0 to 4294967295",
                    );
                    None
                }
            },
            Value::Expr(Ok(other @ Expr::Unary(_))) => {
                cx.error_spanned_by(&other, "`retries` cannot be negative; write `retries = 0` for a task that is never retried");
                None
            }
            Value::Expr(Ok(other)) => {
                cx.error_spanned_by(
                    &other,
                    "`retries` takes an integer literal, e.g. `retries = 3`",
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

    fn path(self, cx: &mut Ctxt) -> Option<syn::Path> {
        match self {
            Value::Path(Ok(p)) => Some(p),
            Value::Path(Err(e)) | Value::Expr(Err(e)) => {
                cx.push(e);
                None
            }
            Value::Expr(Ok(_)) => unreachable!("`crate` and `payload` parse as paths"),
        }
    }
}

fn set<T>(cx: &mut Ctxt, slot: &mut Option<T>, key_span: Span, key: &str, value: Option<T>) {
    if slot.is_some() {
        cx.error_at(
            key_span,
            format!("`{key}` is given twice; remove one of them"),
        );
    } else {
        *slot = value;
    }
}

fn example(key: &str) -> &'static str {
    match key {
        "timeout" => "\"30s\"",
        "queue" => "\"emails\"",
        _ => "\"send_email\"",
    }
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `500ms`, `30s`, `5m`, `2h` or `1d` into milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let hint = "write a whole number followed by `ms`, `s`, `m`, `h` or `d`, e.g. `\"30s\"`";
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; {hint}"))?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}` is not a duration; {hint}")),
    };
    let ms = number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    if ms == 0 {
        return Err(format!(
            "a timeout of `{text}` would fail every attempt; give a positive duration"
        ));
    }
    Ok(ms)
}

fn duration(cx: &mut Ctxt, lit: &LitStr) -> Option<Spanned<u64>> {
    match parse_duration_ms(&lit.value()) {
        Ok(ms) => Some(Spanned {
            value: ms,
            span: lit.span(),
        }),
        Err(message) => {
            cx.error_spanned_by(lit, message);
            None
        }
    }
}

/// The valid key closest to `key`, if it is close enough to be a typo.
fn closest(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, k)| *d * 2 <= k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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
            payload = Mail,
            crate = ::my::natask
        ));
        errors.unwrap();
        assert_eq!(args.queue.unwrap().value, "emails");
        assert_eq!(args.name.unwrap().value, "mail");
        assert_eq!(args.retries.unwrap().value, 3);
        assert_eq!(args.timeout_ms.unwrap().value, 120_000);
        assert_eq!(args.payload.unwrap().to_string(), "Mail");
        let path = args.crate_path.unwrap();
        assert_eq!(quote!(#path).to_string(), ":: my :: natask");
    }

    #[test]
    fn reports_every_mistake_together() {
        let (_, errors) = parse(quote!(
            qeue = "x",
            retries = "3",
            retries = -1,
            timeout = "30x"
        ));
        assert_eq!(
            errors.unwrap_err(),
            "unknown `#[task]` argument `qeue`; expected one of `queue`, `name`, `retries`, `timeout`, `payload`, `crate`; did you mean `queue`? \
             | `retries` takes an integer literal, e.g. `retries = 3` \
             | `retries` cannot be negative; write `retries = 0` for a task that is never retried \
             | `30x` is not a duration; write a whole number followed by `ms`, `s`, `m`, `h` or `d`, e.g. `\"30s\"`"
        );
    }

    #[test]
    fn duplicated_keys_are_refused() {
        let (_, errors) = parse(quote!(queue = "a", queue = "b"));
        assert_eq!(
            errors.unwrap_err(),
            "`queue` is given twice; remove one of them"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("s").is_err());
        assert!(parse_duration_ms("1.5s").is_err());
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(closest("retry"), Some("retries"));
        assert_eq!(closest("timout"), Some("timeout"));
        assert_eq!(closest("colour"), None);
    }
}
