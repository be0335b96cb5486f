//! Every rule `#[task]` enforces. Nothing here generates code.

use proc_macro2::Span;
use syn::{FnArg, Type};

use crate::ast::{ParamKind, TaskFn};
use crate::attr::TaskArgs;
use crate::ctxt::Ctxt;

/// Longest task or queue name (mirrors `natask_core::name::MAX_LEN`).
const MAX_NAME_LEN: usize = 64;

/// The names the task will use, once validated.
pub(crate) struct Names {
    pub(crate) task: String,
    pub(crate) queue: String,
    pub(crate) payload: syn::Ident,
}

pub(crate) fn validate(cx: &mut Ctxt, args: &TaskArgs, f: &TaskFn) -> Names {
    let sig = &f.item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "`#[task]` functions must be `async`; write `async fn`",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &sig.generics,
            "`#[task]` functions cannot be generic: the payload must be one concrete, serialisable type; \
             replace the type parameters with concrete types",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "`#[task]` functions cannot be variadic");
    }
    for param in &f.params {
        check_param(cx, param);
    }

    let fn_name = sig.ident.to_string();
    let fn_name = fn_name.strip_prefix("r#").unwrap_or(&fn_name);
    let task = match &args.name {
        Some(n) => {
            check_name(cx, "task name", &n.value, n.span, "");
            n.value.clone()
        }
        None => {
            check_name(
                cx,
                "task name",
                fn_name,
                sig.ident.span(),
                "; pin a valid one with `#[task(name = \"...\")]`",
            );
            fn_name.to_owned()
        }
    };
    let queue = match &args.queue {
        Some(q) => {
            check_name(cx, "queue name", &q.value, q.span, "");
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
        queue,
        payload,
    }
}

fn check_param(cx: &mut Ctxt, param: &crate::ast::Param) {
    match &param.kind {
        ParamKind::Receiver => cx.error_spanned_by(
            &param.arg,
            "`#[task]` cannot be used on a method: `self` cannot be part of a task's payload; \
             move the function out of the `impl` block and pass what it needs as parameters or `State<T>`",
        ),
        ParamKind::Payload { ident, ty } => {
            let FnArg::Typed(pat_type) = &param.arg else { return };
            if ident.is_none() {
                cx.error_spanned_by(
                    &pat_type.pat,
                    "payload parameters must be plain names such as `to: String`, because each becomes a field of the payload struct; \
                     destructure inside the function",
                );
            }
            check_payload_type(cx, ty);
        }
        ParamKind::State { inner } => {
            if matches!(**inner, Type::Reference(_)) {
                cx.error_spanned_by(inner, "shared state is owned by the runtime; write `State<T>` with an owned `T`");
            }
        }
        ParamKind::Context => {}
    }
}

fn check_payload_type(cx: &mut Ctxt, ty: &Type) {
    match ty {
        Type::Reference(r) => {
            if let Type::Path(p) = &*r.elem {
                let last = p.path.segments.last().map(|s| s.ident.to_string());
                if last.as_deref() == Some("TaskContext") {
                    cx.error_spanned_by(ty, "the task context is shared, not mutable; write `ctx: &TaskContext`");
                    return;
                }
                if matches!(last.as_deref(), Some("State")) {
                    cx.error_spanned_by(ty, "take shared state by value: write `State<T>`, not `&State<T>` (cloning it is cheap)");
                    return;
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
            "payload parameters cannot be `impl Trait`: the payload must be one concrete, serialisable type",
        ),
        Type::Paren(p) => check_payload_type(cx, &p.elem),
        _ => {}
    }
}

/// The rules of `natask_core::name::check`, applied to a literal.
fn check_name(cx: &mut Ctxt, what: &str, name: &str, span: Span, fix: &str) {
    let rule = "names become NATS subject tokens and stream names, so only ASCII letters, digits, `_` and `-` are allowed";
    if name.is_empty() {
        cx.error_at(span, format!("the {what} is empty; {rule}"));
    } else if name.len() > MAX_NAME_LEN {
        cx.error_at(
            span,
            format!(
                "the {what} `{name}` is {} bytes long; at most {MAX_NAME_LEN} are allowed{fix}",
                name.len()
            ),
        );
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        let shown = match c {
            ' ' => "a space".to_owned(),
            c if c.is_control() => format!("the control character {c:?}"),
            c => format!("`{c}`"),
        };
        cx.error_at(
            span,
            format!(
                "the {what} `{}` contains {shown}; {rule}{fix}",
                name.escape_debug()
            ),
        );
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
        assert!(
            e[6].starts_with("the queue name `a.b` contains `.`"),
            "{}",
            e[6]
        );
    }
}
