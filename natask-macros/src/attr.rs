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
mod tests;
