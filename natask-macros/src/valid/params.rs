//! The parameters: each payload parameter becomes a field of the struct,
//! each injected one an argument the handler fetches.

use quote::ToTokens;
use syn::{FnArg, Type};

use crate::ast::{Param, ParamKind, TaskFn};
use crate::ctxt::Ctxt;
use crate::model::{Arg, Field};

/// The payload fields and the handler's arguments, in parameter order.
pub(super) fn resolve(cx: &mut Ctxt, f: &TaskFn) -> (Vec<Field>, Vec<Arg>) {
    let mut fields = Vec::new();
    let mut args = Vec::new();
    for param in &f.params {
        match &param.kind {
            ParamKind::Receiver => cx.error_spanned_by(
                &param.arg,
                "`#[task]` cannot be used on a method: `self` cannot be part of a task's payload; \
                 move the function out of the `impl` block and pass what it needs as parameters or `State<T>`",
            ),
            ParamKind::Payload {
                ident,
                ty,
                forced,
                custom_serde,
            } => {
                let ident = ident_of(cx, param, ident);
                if let Some((ty, message)) = payload_type_error(ty, *forced) {
                    cx.error_spanned_by(ty, message);
                }
                if let Some(ident) = ident {
                    args.push(Arg::Payload(ident.clone()));
                    fields.push(Field {
                        ident,
                        ty: (**ty).clone(),
                        attrs: param.field_attrs.clone(),
                        asserted: !custom_serde,
                    });
                }
            }
            ParamKind::State { inner } => {
                if matches!(**inner, Type::Reference(_)) {
                    cx.error_spanned_by(
                        inner,
                        "shared state is owned by the runtime, so it cannot hold a reference; write `State<T>` with an owned `T`, e.g. `State<Mailer>`",
                    );
                }
                args.push(Arg::State((**inner).clone()));
            }
            ParamKind::Context => args.push(Arg::Context),
        }
    }
    (fields, args)
}

/// The name of a payload parameter, which names its field; an error if it
/// is a pattern instead.
fn ident_of(cx: &mut Ctxt, param: &Param, ident: &Option<syn::Ident>) -> Option<syn::Ident> {
    if ident.is_none() {
        let pattern: &dyn ToTokens = match &param.arg {
            FnArg::Typed(pat_type) => &pat_type.pat,
            other => other,
        };
        cx.error_spanned_by(
            pattern,
            "payload parameters must be plain names such as `to: String`, because each becomes a field of the payload struct; \
             destructure inside the function",
        );
    }
    ident.clone()
}

/// Why `ty` cannot be the type of a payload parameter, spanned at the part
/// at fault; `forced` for a parameter marked `#[payload]`.
fn payload_type_error(ty: &Type, forced: bool) -> Option<(&Type, &'static str)> {
    let message = match ty {
        Type::Reference(r) => match last_ident(&r.elem).as_deref() {
            Some("TaskContext") if !forced && r.mutability.is_some() => {
                "the task context is shared, not mutable; write `ctx: &TaskContext`"
            }
            Some("State") if !forced => {
                "shared state is taken by value, not by reference; write `State<T>` (cloning it is cheap)"
            }
            _ => {
                "payload parameters must be owned types, because the payload is serialised into the task message; \
                 use an owned type such as `String` instead of `&str`"
            }
        },
        Type::ImplTrait(_) => {
            "payload parameters cannot be `impl Trait`: the payload must be one concrete, serialisable type; \
             write the concrete type"
        }
        Type::Paren(p) => return payload_type_error(&p.elem, forced),
        _ if forced => return None,
        _ => match last_ident(ty).as_deref() {
            Some("TaskContext") => {
                "the task context is lent by the runtime, not passed by value; write `ctx: &TaskContext`"
            }
            Some("State") => {
                "injected state is written `State<T>` with exactly one type, e.g. `State<Mailer>`; \
                 to use your own type named `State` as payload, mark the parameter `#[payload]`"
            }
            _ => return None,
        },
    };
    Some((ty, message))
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::errors;
    use quote::quote;

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
}
