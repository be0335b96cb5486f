//! Parses the arguments of `#[task(...)]`: the syntax of every value. Ranges
//! and relations between values are checked in `valid`.

use std::fmt;

use natask_core::duration::parse_ms;
use natask_core::retry::{parse_backoff, BackoffSpec};
use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Expr, ExprLit, Lit, LitStr};

use crate::ctxt::Ctxt;
use crate::suggest;

/// Most retries a task may ask for (checked in `valid`).
pub(crate) const MAX_RETRIES: u32 = 1_000;

/// The attribute whose arguments are parsed: each accepts its own keys,
/// and its messages name it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    Task,
    Event,
    Subscribe,
}

impl Macro {
    /// The keys it accepts, in the order its docs list them.
    fn keys(self) -> &'static [Key] {
        match self {
            Macro::Task => &[
                Key::Queue,
                Key::Name,
                Key::Retries,
                Key::Timeout,
                Key::Backoff,
                Key::Cron,
                Key::TimeZone,
                Key::Unique,
                Key::UniqueBy,
                Key::UniqueUntil,
                Key::Version,
                Key::Upgrade,
                Key::Payload,
                Key::Crate,
            ],
            Macro::Event => &[Key::Name, Key::Retention, Key::Crate],
            Macro::Subscribe => &[
                Key::Service,
                Key::Name,
                Key::Start,
                Key::Retries,
                Key::Timeout,
                Key::Backoff,
                Key::Crate,
            ],
        }
    }

    /// Every key's spelling, for messages.
    fn key_names(self) -> Vec<&'static str> {
        self.keys().iter().map(|k| k.as_str()).collect()
    }

    /// Its arguments as one would write them, for messages.
    fn example(self) -> &'static str {
        match self {
            Macro::Task => "#[task(queue = \"emails\", retries = 3)]",
            Macro::Event => "#[event(retention = \"7d\")]",
            Macro::Subscribe => "#[subscribe(service = \"billing\", retries = 3)]",
        }
    }
}

impl fmt::Display for Macro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Macro::Task => "`#[task]`",
            Macro::Event => "`#[event]`",
            Macro::Subscribe => "`#[subscribe]`",
        })
    }
}

/// A key of `#[task]`, `#[event]` or `#[subscribe]`.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Queue,
    Name,
    Retries,
    Timeout,
    Backoff,
    Cron,
    TimeZone,
    Unique,
    UniqueBy,
    UniqueUntil,
    Version,
    Upgrade,
    Payload,
    Crate,
    Service,
    Start,
    Retention,
}

impl Key {
    fn as_str(self) -> &'static str {
        match self {
            Key::Queue => "queue",
            Key::Name => "name",
            Key::Retries => "retries",
            Key::Timeout => "timeout",
            Key::Backoff => "backoff",
            Key::Cron => "cron",
            Key::TimeZone => "time_zone",
            Key::Unique => "unique",
            Key::UniqueBy => "unique_by",
            Key::UniqueUntil => "unique_until",
            Key::Version => "version",
            Key::Upgrade => "upgrade",
            Key::Payload => "payload",
            Key::Crate => "crate",
            Key::Service => "service",
            Key::Start => "start",
            Key::Retention => "retention",
        }
    }

    /// A value to show in a message that says how to write the key.
    fn example(self) -> &'static str {
        match self {
            Key::Timeout => "\"30s\"",
            Key::Queue => "\"emails\"",
            Key::Name => "\"send_email\"",
            Key::Retries => "3",
            Key::Backoff => "\"exponential(1s, x2, max 5m)\"",
            Key::Cron => "\"0 */5 * * * *\"",
            Key::TimeZone => "\"Europe/Berlin\"",
            Key::Unique => "\"10m\"",
            Key::UniqueBy => "\"tenant, report\"",
            Key::UniqueUntil => "\"started\"",
            Key::Version => "2",
            Key::Upgrade => "upgrade_send_email",
            Key::Payload => "SendEmail",
            Key::Crate => "::my_crate::natask",
            Key::Service => "\"billing\"",
            Key::Start => "\"new\"",
            Key::Retention => "\"7d\"",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// `version = 2`: the payload's version.
    pub(crate) version: Option<Spanned<u64>>,
    /// `upgrade = path::to::fn`: turns older payloads into this version's.
    pub(crate) upgrade: Option<syn::Path>,
    pub(crate) payload: Option<syn::Ident>,
    pub(crate) crate_path: Option<syn::Path>,
    /// `#[subscribe(service = "billing")]`.
    pub(crate) service: Option<Spanned<String>>,
    /// `#[subscribe(start = "all")]`, kept whole: `valid` checks the value.
    pub(crate) start: Option<LitStr>,
    /// `#[event(retention = "7d")]`, in milliseconds.
    pub(crate) retention_ms: Option<Spanned<u64>>,
}

impl TaskArgs {
    /// The arguments of `#[task(..)]`.
    pub(crate) fn parse(cx: &mut Ctxt, tokens: proc_macro2::TokenStream) -> TaskArgs {
        TaskArgs::parse_for(cx, tokens, Macro::Task)
    }

    /// The arguments of `kind`'s attribute; the keys the others take are
    /// unknown here.
    pub(crate) fn parse_for(
        cx: &mut Ctxt,
        tokens: proc_macro2::TokenStream,
        kind: Macro,
    ) -> TaskArgs {
        let mut args = TaskArgs::default();
        let mut seen: Vec<Key> = Vec::new();
        let parser = syn::meta::parser(|meta| {
            args.parse_one(cx, &mut seen, meta, kind);
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
            cx.push(syn::Error::new(
                e.span(),
                format!(
                    "expected `key = value` arguments separated by commas, e.g. `{}`; {e}",
                    kind.example()
                ),
            ));
        }
        args
    }

    fn parse_one(
        &mut self,
        cx: &mut Ctxt,
        seen: &mut Vec<Key>,
        meta: ParseNestedMeta<'_>,
        kind: Macro,
    ) {
        let Some((key, key_span)) = known_key(cx, &meta, kind) else {
            skip_value(&meta);
            return;
        };
        let Ok(stream) = meta.value() else {
            cx.error_at(
                key_span,
                format!("`{key}` needs a value; write `{key} = {}`", key.example()),
            );
            skip_value(&meta);
            return;
        };
        let value = Value::parse(stream, key);
        if seen.contains(&key) {
            cx.error_at(
                key_span,
                format!("`{key}` is given twice; remove one of them"),
            );
            return;
        }
        seen.push(key);
        match value {
            Ok(value) => self.set(cx, key, value),
            Err(e) => cx.push(e),
        }
    }

    fn set(&mut self, cx: &mut Ctxt, key: Key, value: Value) {
        match key {
            Key::Queue => self.queue = value.lit_str(cx, key).map(spanned_string),
            Key::Name => self.name = value.lit_str(cx, key).map(spanned_string),
            Key::Retries => self.retries = value.retries(cx),
            Key::Unique => {
                self.unique_ms = value.lit_str(cx, key).and_then(|s| parsed(cx, s, parse_ms))
            }
            Key::UniqueBy => self.unique_by = value.lit_str(cx, key),
            Key::UniqueUntil => self.unique_until = value.lit_str(cx, key),
            Key::Timeout => {
                self.timeout_ms = value.lit_str(cx, key).and_then(|s| parsed(cx, s, parse_ms))
            }
            Key::Backoff => {
                self.backoff = value
                    .lit_str(cx, key)
                    .and_then(|s| parsed(cx, s, parse_backoff))
            }
            Key::Cron => self.cron = value.lit_str(cx, key),
            Key::TimeZone => self.time_zone = value.lit_str(cx, key),
            Key::Version => self.version = value.version(cx),
            Key::Upgrade => self.upgrade = value.path(cx, key),
            Key::Payload => self.payload = value.path(cx, key).and_then(|p| plain_name(cx, p)),
            Key::Crate => self.crate_path = value.path(cx, key),
            Key::Service => self.service = value.lit_str(cx, key).map(spanned_string),
            Key::Start => self.start = value.lit_str(cx, key),
            Key::Retention => {
                self.retention_ms = value.lit_str(cx, key).and_then(|s| parsed(cx, s, parse_ms))
            }
        }
    }
}

/// The key of one argument; an error, and `None`, for a key `kind` does
/// not know.
fn known_key(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>, kind: Macro) -> Option<(Key, Span)> {
    let names = kind.key_names();
    let Some(ident) = meta.path.get_ident() else {
        cx.error_spanned_by(
            &meta.path,
            format!(
                "unknown {kind} argument; expected one of {}",
                suggest::list(&names)
            ),
        );
        return None;
    };
    let name = ident.unraw().to_string();
    let key = kind.keys().iter().copied().find(|k| k.as_str() == name);
    if key.is_none() {
        cx.error_at(
            ident.span(),
            format!(
                "unknown {kind} argument `{name}`; {}",
                suggest::expected_one_of(&name, &names)
            ),
        );
    }
    key.map(|k| (k, ident.span()))
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

/// A literal in one of natask-core's grammars (a duration, a backoff
/// policy), parsed; its error on the literal otherwise.
fn parsed<T, E: fmt::Display>(
    cx: &mut Ctxt,
    s: LitStr,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<Spanned<T>> {
    match parse(&s.value()) {
        Ok(value) => Some(Spanned {
            value,
            span: s.span(),
        }),
        Err(e) => {
            cx.error_spanned_by(&s, e);
            None
        }
    }
}

/// `payload = SendMail`: one identifier, not a path.
fn plain_name(cx: &mut Ctxt, path: syn::Path) -> Option<syn::Ident> {
    if let Some(ident) = path.get_ident() {
        return Some(ident.clone());
    }
    cx.error_spanned_by(
        &path,
        "`payload` names the generated struct, not a path; write a plain name such as `payload = SendEmail`",
    );
    None
}

fn spanned_string(s: LitStr) -> Spanned<String> {
    Spanned {
        value: s.value(),
        span: s.span(),
    }
}

/// The value of one argument, parsed as the key expects it.
enum Value {
    Expr(Expr),
    /// `crate` and `payload`, unless the value is a literal (an `Expr`).
    Path(syn::Path),
}

impl ToTokens for Value {
    fn to_tokens(&self, tokens: &mut proc_macro2::TokenStream) {
        match self {
            Value::Expr(e) => e.to_tokens(tokens),
            Value::Path(p) => p.to_tokens(tokens),
        }
    }
}

impl Value {
    fn parse(stream: ParseStream<'_>, key: Key) -> syn::Result<Value> {
        // A quoted path is the likely mistake (serde writes `crate = "..."`);
        // taking the literal whole also keeps the rest of the arguments
        // parseable.
        if matches!(key, Key::Crate | Key::Payload | Key::Upgrade) && !stream.peek(Lit) {
            stream.parse().map(Value::Path)
        } else {
            stream.parse().map(Value::Expr)
        }
    }

    fn lit_str(self, cx: &mut Ctxt, key: Key) -> Option<LitStr> {
        if let Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        })) = self
        {
            return Some(s);
        }
        let example = match (&self, key) {
            // `timeout = 30`: keep the number, add the unit it lacks
            (
                Value::Expr(Expr::Lit(ExprLit {
                    lit: Lit::Int(i), ..
                })),
                Key::Timeout,
            ) => format!("\"{}s\"", i.base10_digits()),
            _ => key.example().to_owned(),
        };
        cx.error_spanned_by(
            &self,
            format!("`{key}` takes a string literal; write `{key} = {example}`"),
        );
        None
    }

    fn retries(self, cx: &mut Ctxt) -> Option<Spanned<u64>> {
        let message = match &self {
            Value::Expr(Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            })) => match i.base10_parse::<u64>() {
                Ok(n) => {
                    return Some(Spanned {
                        value: n,
                        span: i.span(),
                    })
                }
                Err(_) => format!(
                    "`retries = {i}` is not a count of retries; write a whole number from 0 to {MAX_RETRIES}"
                ),
            },
            Value::Expr(Expr::Unary(_)) => {
                "`retries` cannot be negative; write `retries = 0` for a task that is never retried"
                    .to_owned()
            }
            Value::Expr(Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            })) => format!(
                "`retries` takes an integer, not a string; write `retries = {}`",
                s.value()
                    .parse::<u64>()
                    .map_or_else(|_| "3".to_owned(), |n| n.to_string())
            ),
            _ => "`retries` takes an integer literal; write `retries = 3`".to_owned(),
        };
        cx.error_spanned_by(&self, message);
        None
    }

    fn version(self, cx: &mut Ctxt) -> Option<Spanned<u64>> {
        if let Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        })) = &self
        {
            if let Ok(n) = i.base10_parse::<u64>() {
                return Some(Spanned {
                    value: n,
                    span: i.span(),
                });
            }
        }
        cx.error_spanned_by(
            &self,
            "`version` takes a whole number from 1 (the first version) up; write `version = 2`",
        );
        None
    }

    fn path(self, cx: &mut Ctxt, key: Key) -> Option<syn::Path> {
        let what = if key == Key::Payload {
            "a plain name"
        } else {
            "a path"
        };
        let lit = match self {
            Value::Path(p) => return Some(p),
            Value::Expr(Expr::Lit(ExprLit { lit, .. })) => lit,
            Value::Expr(other) => {
                cx.error_spanned_by(
                    &other,
                    format!("`{key}` takes {what}; write `{key} = {}`", key.example()),
                );
                return None;
            }
        };
        let kind = if matches!(lit, Lit::Str(_)) {
            "a string"
        } else {
            "a literal"
        };
        // `crate = "my::natask"`: suggest the same path, unquoted
        let unquoted = match &lit {
            Lit::Str(s) if key == Key::Payload => {
                s.parse::<syn::Ident>().is_ok().then(|| s.value())
            }
            Lit::Str(s) => s.parse::<syn::Path>().is_ok().then(|| s.value()),
            _ => None,
        };
        let example = unquoted.unwrap_or_else(|| key.example().to_owned());
        cx.error_spanned_by(
            &lit,
            format!("`{key}` takes {what}, not {kind}; write `{key} = {example}`"),
        );
        None
    }
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
    fn each_attribute_takes_its_own_keys() {
        let mut cx = Ctxt::default();
        let tokens = quote!(
            service = "billing",
            name = "charge",
            start = "all",
            retries = 2,
            timeout = "1m",
            backoff = "fixed(5s)",
            crate = ::my::natask
        );
        let args = TaskArgs::parse_for(&mut cx, tokens, Macro::Subscribe);
        cx.check().unwrap();
        assert_eq!(args.service.unwrap().value, "billing");
        assert_eq!(args.start.unwrap().value(), "all");
        assert_eq!(args.retries.unwrap().value, 2);
        let mut cx = Ctxt::default();
        let args = TaskArgs::parse_for(&mut cx, quote!(retention = "2h"), Macro::Event);
        cx.check().unwrap();
        assert_eq!(args.retention_ms.unwrap().value, 7_200_000);
        // and none of the others'
        let mut cx = Ctxt::default();
        TaskArgs::parse_for(&mut cx, quote!(service = "a"), Macro::Event);
        TaskArgs::parse_for(&mut cx, quote!(retention = "1d"), Macro::Subscribe);
        TaskArgs::parse_for(&mut cx, quote!(start = "new"), Macro::Task);
        let errors: Vec<String> = cx
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "unknown `#[event]` argument `service`; expected one of `name`, `retention`, `crate`",
                "unknown `#[subscribe]` argument `retention`; expected one of `service`, `name`, `start`, `retries`, `timeout`, `backoff`, `crate`",
                "unknown `#[task]` argument `start`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `version`, `upgrade`, `payload`, `crate`",
            ]
        );
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
            "unknown `#[task]` argument `qeue`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `version`, `upgrade`, `payload`, `crate`; did you mean `queue`? \
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
             | unknown `#[task]` argument `retries2`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `version`, `upgrade`, `payload`, `crate`; did you mean `retries`? \
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
    fn expressions_for_paths_are_refused() {
        let (_, errors) = parse(quote!(crate = 1 + 2, payload = "Mail".into()));
        assert_eq!(
            errors.unwrap_err(),
            "`crate` takes a path; write `crate = ::my_crate::natask` \
             | `payload` takes a plain name; write `payload = SendEmail`"
        );
    }
}
