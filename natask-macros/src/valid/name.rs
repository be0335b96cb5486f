//! Task and queue names, checked by `natask_core::name::check` and reported
//! in the macro's words, and the name of the payload struct.

use proc_macro2::Span;
use syn::ext::IdentExt;

use crate::attr::{Macro, TaskArgs};
use crate::ctxt::Ctxt;

/// The task's wire name and where it came from: `name = ".."`, or the
/// function's name.
pub(super) fn task_name(cx: &mut Ctxt, args: &TaskArgs, fn_ident: &syn::Ident) -> (String, Span) {
    item_name(cx, "task name", args, fn_ident, Macro::Task)
}

/// The wire name of the item `kind` is on, and where it came from:
/// `name = ".."`, or the item's name (in snake_case for an event's struct).
pub(super) fn item_name(
    cx: &mut Ctxt,
    what: &str,
    args: &TaskArgs,
    ident: &syn::Ident,
    kind: Macro,
) -> (String, Span) {
    match &args.name {
        Some(n) => {
            check_name(cx, what, &n.value, n.span, None);
            (n.value.clone(), n.span)
        }
        None => {
            let name = ident.unraw().to_string();
            let name = match kind {
                Macro::Event => snake_case(&name),
                Macro::Task | Macro::Subscribe => name,
            };
            check_name(cx, what, &name, ident.span(), Some(kind));
            (name, ident.span())
        }
    }
}

/// `OrderPlaced` → `order_placed`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The queue: `queue = ".."`, or `default`.
pub(super) fn queue(cx: &mut Ctxt, args: &TaskArgs) -> String {
    match &args.queue {
        Some(q) => {
            check_name(cx, "queue name", &q.value, q.span, None);
            q.value.clone()
        }
        None => "default".to_owned(),
    }
}

/// The payload struct: `payload = ..`, or the function's name in CamelCase.
pub(super) fn payload(args: &TaskArgs, fn_ident: &syn::Ident) -> syn::Ident {
    args.payload.clone().unwrap_or_else(|| {
        syn::Ident::new(&camel_case(&fn_ident.unraw().to_string()), fn_ident.span())
    })
}

/// Checks a name with `natask_core::name::check` (a literal, or the
/// function's name when the task name derives from it) and reports its
/// error in the macro's words.
/// `derived`: the attribute whose item's name the name was taken from.
pub(super) fn check_name(
    cx: &mut Ctxt,
    what: &str,
    name: &str,
    span: Span,
    derived: Option<Macro>,
) {
    use natask_core::name::{NameError, MAX_LEN};
    let Some(error) = name_error(name) else {
        return;
    };
    let (subject, fix) = match derived {
        Some(kind) => {
            let (from, attr) = match kind {
                Macro::Event => ("the struct's name", "event"),
                Macro::Subscribe => ("the function's name", "subscribe"),
                Macro::Task => ("the function's name", "task"),
            };
            (
                format!("the {what} `{}`, taken from {from},", name.escape_debug()),
                format!("; or pin a valid one with `#[{attr}(name = \"...\")]`"),
            )
        }
        None => (
            format!("the {what} `{}`", name.escape_debug()),
            String::new(),
        ),
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
fn camel_case(name: &str) -> String {
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
    use super::super::tests::errors;
    use super::*;
    use quote::quote;

    #[test]
    fn camel_cases() {
        assert_eq!(camel_case("send_email"), "SendEmail");
        assert_eq!(camel_case("type"), "Type");
        assert_eq!(camel_case("a__b_"), "AB");
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
}
