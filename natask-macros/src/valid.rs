//! Every rule `#[task]` enforces. Nothing here generates code.

use proc_macro2::Span;
use syn::{FnArg, Type};

use crate::ast::{ParamKind, TaskFn};
use natask_core::retry::BackoffSpec;

use crate::attr::{TaskArgs, MAX_RETRIES};
use crate::ctxt::Ctxt;

/// Longest timeout or backoff delay: 7 days. Anything longer is a typo, or a
/// schedule rather than a retry policy.
const MAX_DURATION_MS: u64 = 7 * 86_400_000;

/// The names the task will use, once validated.
pub(crate) struct Names {
    pub(crate) task: String,
    /// Where the task name came from: the `name = ".."` literal or the fn name.
    pub(crate) task_span: Span,
    pub(crate) queue: String,
    pub(crate) payload: syn::Ident,
    /// `unique = ..`, once valid.
    pub(crate) unique: Option<Unique>,
}

/// A valid `unique` declaration.
pub(crate) struct Unique {
    pub(crate) ttl_secs: u64,
    /// The payload fields of the key, in declaration order.
    pub(crate) fields: Vec<syn::Ident>,
    /// The variant of `Until`, if any: `Started`, `Succeeded` or `Finished`.
    pub(crate) until: Option<&'static str>,
}

/// The stages of `unique_until`, and the variants of `Until` they name.
const STAGES: [(&str, &str); 3] = [
    ("started", "Started"),
    ("succeeded", "Succeeded"),
    ("finished", "Finished"),
];

pub(crate) fn validate(cx: &mut Ctxt, args: &TaskArgs, f: &TaskFn) -> Names {
    let sig = &f.item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "`#[task]` functions must be `async`; write `async fn`",
        );
    }
    if let Some(unsafety) = sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "`#[task]` functions cannot be `unsafe`: the runtime calls them with no one to uphold their contract; \
             remove `unsafe` and use an `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            "`#[task]` functions cannot have an `extern` ABI; remove it",
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "`#[task]` functions cannot be generic: the payload must be one concrete, serialisable type; \
             replace the type parameters with concrete types",
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "`#[task]` functions cannot have a `where` clause; remove it",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(
            variadic,
            "`#[task]` functions cannot be variadic; take the values as a `Vec<T>` parameter",
        );
    }
    for param in &f.params {
        check_param(cx, param);
    }
    check_policy(cx, args);
    if let (Some(zone), None) = (&args.time_zone, &args.cron) {
        cx.error_spanned_by(
            zone,
            "`time_zone` says when the ticks of a `cron` task fall; it needs `cron = \"...\"` \
             (delayed tasks take an absolute time: `enqueue_at`)",
        );
    }
    if let Some(cron) = &args.cron {
        match natask_core::cron::check(&cron.value()) {
            Err(e) => cx.error_spanned_by(cron, e),
            Ok(()) => {
                if let Some(zone) = &args.time_zone {
                    if let Err(e) = natask_core::cron::check_time_zone(&cron.value(), &zone.value())
                    {
                        cx.error_spanned_by(zone, e);
                    }
                }
            }
        }
        if let Some((param, _, _)) = f.payload().next() {
            cx.error_spanned_by(
                &param.arg,
                "cron tasks take no payload: the server produces every run from one fixed schedule; \
                 remove the payload parameters (a `cron` task may take `ctx: &TaskContext` and `State<T>`)",
            );
        }
    }

    let unique = check_unique(cx, args, f);

    let fn_name = sig.ident.to_string();
    let fn_name = fn_name.strip_prefix("r#").unwrap_or(&fn_name);
    let (task, task_span) = match &args.name {
        Some(n) => {
            check_name(cx, "task name", &n.value, n.span, false);
            (n.value.clone(), n.span)
        }
        None => {
            check_name(cx, "task name", fn_name, sig.ident.span(), true);
            (fn_name.to_owned(), sig.ident.span())
        }
    };
    let queue = match &args.queue {
        Some(q) => {
            check_name(cx, "queue name", &q.value, q.span, false);
            q.value.clone()
        }
        None => "default".to_owned(),
    };
    let payload = args
        .payload
        .clone()
        .unwrap_or_else(|| syn::Ident::new(&camel_case(fn_name), sig.ident.span()));
    Names {
        task,
        task_span,
        queue,
        payload,
        unique,
    }
}

fn check_unique(cx: &mut Ctxt, args: &TaskArgs, f: &TaskFn) -> Option<Unique> {
    let Some(ttl) = &args.unique_ms else {
        for (key, lit) in [
            ("unique_by", &args.unique_by),
            ("unique_until", &args.unique_until),
        ] {
            if let Some(lit) = lit {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "`{key}` belongs to a unique task, which also needs `unique = \"<ttl>\"`, \
                         the longest the lock is held; add e.g. `unique = \"10m\"`"
                    ),
                );
            }
        }
        return None;
    };
    let mut valid = true;
    if ttl.value < 1_000 {
        cx.error_at(
            ttl.span,
            "a unique lock must be held for at least one second, the resolution of the server's \
             per-message TTL; write e.g. `unique = \"10m\"`",
        );
        valid = false;
    } else if ttl.value % 1_000 != 0 {
        cx.error_at(
            ttl.span,
            "a unique lock is held for whole seconds (the server's per-message TTL has no finer \
             resolution); write a duration in `s`, `m`, `h` or `d`",
        );
        valid = false;
    }
    if args.cron.is_some() {
        cx.error_at(
            ttl.span,
            "cron tasks cannot be unique: the server produces their runs, no enqueue takes a lock; \
             remove `unique` or `cron`",
        );
        valid = false;
    }
    let payload: Vec<&syn::Ident> = f
        .payload()
        .filter_map(|(_, ident, _)| ident.as_ref())
        .collect();
    let plain = |i: &syn::Ident| i.to_string().trim_start_matches("r#").to_owned();
    let fields = match &args.unique_by {
        None => payload.iter().map(|i| (*i).clone()).collect(),
        Some(lit) => {
            let text = lit.value();
            let mut chosen: Vec<syn::Ident> = Vec::new();
            let names: Vec<&str> = text.split(',').map(str::trim).collect();
            if names.iter().all(|n| n.is_empty()) {
                cx.error_spanned_by(
                    lit,
                    "`unique_by` names no payload parameter; list some, e.g. `unique_by = \"tenant, report\"`, \
                     or remove it to use all of them",
                );
                valid = false;
            }
            for name in names.iter().filter(|n| !n.is_empty()) {
                match payload.iter().find(|i| plain(i) == *name) {
                    Some(ident) if chosen.iter().any(|c| c == *ident) => {
                        cx.error_spanned_by(
                            lit,
                            format!("`{name}` is named twice in `unique_by`; remove one"),
                        );
                        valid = false;
                    }
                    Some(ident) => chosen.push((*ident).clone()),
                    None => {
                        let expected = if payload.is_empty() {
                            "the task has none; remove `unique_by` (the task is then unique by its name alone)".to_owned()
                        } else {
                            let names: Vec<String> = payload.iter().map(|i| plain(i)).collect();
                            let names: Vec<&str> = names.iter().map(String::as_str).collect();
                            crate::suggest::expected_one_of(name, &names)
                        };
                        cx.error_spanned_by(
                            lit,
                            format!(
                                "`{name}` in `unique_by` is not a payload parameter; {expected}"
                            ),
                        );
                        valid = false;
                    }
                }
            }
            // declaration order, whatever order `unique_by` lists them in
            payload
                .iter()
                .filter(|i| chosen.contains(i))
                .map(|i| (*i).clone())
                .collect()
        }
    };
    let until = match &args.unique_until {
        None => None,
        Some(lit) => {
            let text = lit.value();
            match STAGES.iter().find(|(stage, _)| *stage == text) {
                Some((_, variant)) => Some(*variant),
                None => {
                    let hint = crate::suggest::did_you_mean(&text, &STAGES.map(|(s, _)| s));
                    cx.error_spanned_by(
                        lit,
                        format!(
                            "`{text}` is not a stage of a task; `unique_until` takes `started`, `succeeded` or `finished`{hint}"
                        ),
                    );
                    valid = false;
                    None
                }
            }
        }
    };
    valid.then_some(Unique {
        ttl_secs: ttl.value / 1_000,
        fields,
        until,
    })
}

fn check_policy(cx: &mut Ctxt, args: &TaskArgs) {
    if let Some(r) = &args.retries {
        if r.value > u64::from(MAX_RETRIES) {
            cx.error_at(
                r.span,
                format!(
                    "`retries = {}` is more than the {MAX_RETRIES} retries natask allows; \
                     a task that needs more is better snoozed (`TaskError::snooze`) or re-enqueued",
                    r.value
                ),
            );
        }
    }
    if let Some(t) = &args.timeout_ms {
        if t.value == 0 {
            cx.error_at(
                t.span,
                "a timeout of zero would fail every attempt; give a positive duration such as `\"30s\"`",
            );
        } else if t.value > MAX_DURATION_MS {
            cx.error_at(
                t.span,
                "this timeout is longer than the 7 days natask allows; split the work into smaller tasks",
            );
        }
    }
    if let Some(b) = &args.backoff {
        let delays: Vec<u64> = match &b.value {
            BackoffSpec::Fixed { delay_ms } => vec![*delay_ms],
            BackoffSpec::Exponential {
                base_ms: base,
                factor,
                max_ms: max,
            } => {
                if *factor < 1.0 {
                    cx.error_at(
                        b.span,
                        format!(
                            "a backoff factor of `x{factor}` would shrink the delay; use a factor of at least `x1`"
                        ),
                    );
                } else if *factor > 100.0 {
                    cx.error_at(
                        b.span,
                        format!(
                            "a backoff factor of `x{factor}` reaches the cap after one retry; use a factor from `x1` to `x100`"
                        ),
                    );
                }
                if max < base {
                    cx.error_at(
                        b.span,
                        "the backoff cap is smaller than the first delay; write a `max` at least as long as the first delay",
                    );
                }
                vec![*base, *max]
            }
            BackoffSpec::List(delays) => {
                if delays.is_empty() {
                    cx.error_at(
                        b.span,
                        "a `list` backoff needs at least one delay; write e.g. `list(1s, 5s, 30s)`",
                    );
                }
                delays.clone()
            }
        };
        if delays.iter().any(|d| *d > MAX_DURATION_MS) {
            cx.error_at(
                b.span,
                "a backoff delay is longer than the 7 days natask allows; shorten it",
            );
        }
    }
}

fn check_param(cx: &mut Ctxt, param: &crate::ast::Param) {
    match &param.kind {
        ParamKind::Receiver => cx.error_spanned_by(
            &param.arg,
            "`#[task]` cannot be used on a method: `self` cannot be part of a task's payload; \
             move the function out of the `impl` block and pass what it needs as parameters or `State<T>`",
        ),
        ParamKind::Payload {
            ident, ty, forced, ..
        } => {
            let FnArg::Typed(pat_type) = &param.arg else { return };
            if ident.is_none() {
                cx.error_spanned_by(
                    &pat_type.pat,
                    "payload parameters must be plain names such as `to: String`, because each becomes a field of the payload struct; \
                     destructure inside the function",
                );
            }
            check_payload_type(cx, ty, *forced);
        }
        ParamKind::State { inner } => {
            if matches!(**inner, Type::Reference(_)) {
                cx.error_spanned_by(
                    inner,
                    "shared state is owned by the runtime, so it cannot hold a reference; write `State<T>` with an owned `T`, e.g. `State<Mailer>`",
                );
            }
        }
        ParamKind::Context => {}
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

fn check_payload_type(cx: &mut Ctxt, ty: &Type, forced: bool) {
    match ty {
        Type::Reference(r) => {
            if !forced {
                match last_ident(&r.elem).as_deref() {
                    Some("TaskContext") if r.mutability.is_some() => {
                        cx.error_spanned_by(
                            ty,
                            "the task context is shared, not mutable; write `ctx: &TaskContext`",
                        );
                        return;
                    }
                    Some("State") => {
                        cx.error_spanned_by(
                            ty,
                            "shared state is taken by value, not by reference; write `State<T>` (cloning it is cheap)",
                        );
                        return;
                    }
                    _ => {}
                }
            }
            cx.error_spanned_by(
                ty,
                "payload parameters must be owned types, because the payload is serialised into the task message; \
                 use an owned type such as `String` instead of `&str`",
            );
        }
        Type::ImplTrait(_) => cx.error_spanned_by(
            ty,
            "payload parameters cannot be `impl Trait`: the payload must be one concrete, serialisable type; \
             write the concrete type",
        ),
        Type::Paren(p) => check_payload_type(cx, &p.elem, forced),
        _ if forced => {}
        _ => match last_ident(ty).as_deref() {
            Some("TaskContext") => cx.error_spanned_by(
                ty,
                "the task context is lent by the runtime, not passed by value; write `ctx: &TaskContext`",
            ),
            Some("State") => cx.error_spanned_by(
                ty,
                "injected state is written `State<T>` with exactly one type, e.g. `State<Mailer>`; \
                 to use your own type named `State` as payload, mark the parameter `#[payload]`",
            ),
            _ => {}
        },
    }
}

/// Checks a name with `natask_core::name::check` (a literal, or the
/// function's name when the task name derives from it) and reports its
/// error in the macro's words.
fn check_name(cx: &mut Ctxt, what: &str, name: &str, span: Span, derived: bool) {
    use natask_core::name::{NameError, MAX_LEN};
    let Some(error) = name_error(name) else {
        return;
    };
    let (subject, fix) = if derived {
        (
            format!(
                "the {what} `{}`, taken from the function's name,",
                name.escape_debug()
            ),
            "; or pin a valid one with `#[task(name = \"...\")]`",
        )
    } else {
        (format!("the {what} `{}`", name.escape_debug()), "")
    };
    let message = match error {
        NameError::Empty => {
            format!("the {what} is empty; give it 1 to {MAX_LEN} ASCII letters, digits, `_` or `-`")
        }
        NameError::InvalidByte { byte, at } => {
            // Every byte before `at` is ASCII, so `at` starts a char: name
            // it whole (`é`, not its first byte).
            let c = name
                .get(at..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or(char::from(byte));
            format!(
                "{subject} contains {}; use only ASCII letters, digits, `_` and `-`{fix}",
                why_not(c)
            )
        }
        NameError::TooLong { len } => format!(
            "{subject} is {len} bytes long; NATS names here may have at most {MAX_LEN}, so shorten it{fix}"
        ),
        other => format!("{subject} is not a valid name: {other}{fix}"),
    };
    cx.error_at(span, message);
}

/// The error of `natask_core::name::check`, except that a name both too long
/// and with a byte outside the name alphabet is reported for the byte (the
/// likelier mistake, and what `#[task]` has always said), where `check`
/// reports the length.
fn name_error(name: &str) -> Option<natask_core::name::NameError> {
    use natask_core::name::{check, is_name_byte, NameError};
    match check(name) {
        Ok(()) => None,
        Err(NameError::TooLong { len }) => Some(
            name.bytes()
                .enumerate()
                .find(|(_, byte)| !is_name_byte(*byte))
                .map_or(NameError::TooLong { len }, |(at, byte)| {
                    NameError::InvalidByte { byte, at }
                }),
        ),
        Err(e) => Some(e),
    }
}

/// Why `c` cannot stand in a NATS name.
fn why_not(c: char) -> String {
    match c {
        '.' => "`.`, which separates the tokens of a NATS subject".to_owned(),
        '*' | '>' => format!("`{c}`, a NATS subject wildcard"),
        '/' | '\\' => {
            format!("`{c}`, a path separator (stream names become file names on the server)")
        }
        ' ' => "a space, and NATS names cannot contain whitespace".to_owned(),
        c if c.is_whitespace() && c.is_ascii() => format!(
            "whitespace ({}), and NATS names cannot contain whitespace",
            c.escape_debug()
        ),
        c if c.is_control() || c.is_whitespace() => {
            format!("the non-printable character `{}`", c.escape_unicode())
        }
        c if !c.is_ascii() => format!("`{c}`, which is not ASCII"),
        c => format!("`{c}`, which NATS stream names do not allow"),
    }
}

/// `send_email` → `SendEmail`.
pub(crate) fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("Task");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> Vec<String> {
        let mut cx = Ctxt::default();
        let args = TaskArgs::parse(&mut cx, args);
        let f = TaskFn::from_item(syn::parse2(item).unwrap());
        validate(&mut cx, &args, &f);
        cx.check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn camel_cases() {
        assert_eq!(camel_case("send_email"), "SendEmail");
        assert_eq!(camel_case("type"), "Type");
        assert_eq!(camel_case("a__b_"), "AB");
    }

    #[test]
    fn a_good_task_passes() {
        assert!(errors(
            quote!(queue = "emails"),
            quote!(
                async fn send_email(m: State<M>, c: &TaskContext, to: String) {}
            )
        )
        .is_empty());
    }

    #[test]
    fn misuse_is_reported() {
        let e = errors(
            quote!(queue = "a.b"),
            quote!(
                fn f<T>(x: &str, y: impl Send, (a, b): (u8, u8), c: &mut TaskContext) {}
            ),
        );
        assert_eq!(e.len(), 7, "{e:#?}");
        assert!(e[0].starts_with("`#[task]` functions must be `async`"));
        assert_eq!(
            e[6],
            "the queue name `a.b` contains `.`, which separates the tokens of a NATS subject; use only ASCII letters, digits, `_` and `-`"
        );
    }

    #[test]
    fn injected_forms() {
        let e = errors(
            quote!(),
            quote!(
                async fn f(
                    a: &State<M>,
                    b: State<&M>,
                    c: TaskContext,
                    d: State,
                    #[payload] e: State<u8>,
                    g: &TaskContext,
                ) {
                }
            ),
        );
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e[0].starts_with("shared state is taken by value"));
        assert!(e[1].starts_with("shared state is owned by the runtime"));
        assert!(e[2].starts_with("the task context is lent"));
        assert!(e[3].starts_with("injected state is written `State<T>`"));
    }

    #[test]
    fn names_follow_nats_rules() {
        let long = "x".repeat(65);
        let long_dotted = format!("{long}.");
        for (name, message) in [
            ("", "the task name is empty"),
            ("a b", "the task name `a b` contains a space"),
            ("a*", "the task name `a*` contains `*`, a NATS subject wildcard"),
            ("a>", "the task name `a>` contains `>`, a NATS subject wildcard"),
            ("a/b", "the task name `a/b` contains `/`, a path separator"),
            ("a\tb", "the task name `a\\tb` contains whitespace (\\t)"),
            ("a\u{7}", "the task name `a\\u{7}` contains the non-printable character `\\u{7}`"),
            ("é", "the task name `é` contains `é`, which is not ASCII"),
            ("a$", "the task name `a$` contains `$`, which NATS stream names do not allow"),
            (&long, "the task name `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx` is 65 bytes long"),
            // too long as well, but the character is the mistake to name
            (&long_dotted, "the task name `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.` contains `.`"),
        ] {
            let e = errors(quote!(name = #name), quote!(async fn f() {}));
            assert!(e.len() == 1 && e[0].starts_with(message), "{name:?}: {e:?}");
        }
        let e = errors(
            quote!(),
            quote!(
                async fn envoyer_été() {}
            ),
        );
        assert_eq!(
            e,
            ["the task name `envoyer_été`, taken from the function's name, contains `é`, which is not ASCII; \
              use only ASCII letters, digits, `_` and `-`; or pin a valid one with `#[task(name = \"...\")]`"]
        );
    }

    #[test]
    fn policy_ranges() {
        let e = errors(
            quote!(retries = 1001, timeout = "0s"),
            quote!(
                async fn f() {}
            ),
        );
        assert!(e[0].starts_with("`retries = 1001` is more than the 1000 retries"));
        assert!(e[1].starts_with("a timeout of zero"));
        for (backoff, message) in [
            (
                "exponential(1s, x0.5, max 1m)",
                "a backoff factor of `x0.5` would shrink the delay",
            ),
            (
                "exponential(1m, x2, max 1s)",
                "the backoff cap is smaller than the first delay",
            ),
            ("list()", "a `list` backoff needs at least one delay"),
            ("fixed(8d)", "a backoff delay is longer than the 7 days"),
        ] {
            let e = errors(
                quote!(backoff = #backoff),
                quote!(
                    async fn f() {}
                ),
            );
            assert!(
                e.len() == 1 && e[0].starts_with(message),
                "{backoff}: {e:?}"
            );
        }
        assert!(errors(
            quote!(backoff = "list(0s, 1s)"),
            quote!(
                async fn f() {}
            )
        )
        .is_empty());
    }

    #[test]
    fn cron_tasks_take_no_payload() {
        let e = errors(
            quote!(cron = "@hourly"),
            quote!(
                async fn f(c: &TaskContext, to: String) {}
            ),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("cron tasks take no payload"));
    }
}
