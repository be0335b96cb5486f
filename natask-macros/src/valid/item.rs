//! The item `#[task]` is on: a free `async fn` the runtime can call.

use quote::ToTokens;

use crate::attr::Macro;
use crate::ctxt::Ctxt;

/// The error for `kind` (`#[task]`, `#[subscribe]`) on anything but a
/// function, at its keyword.
pub(crate) fn not_a_fn(item: &syn::Item, kind: Macro) -> syn::Error {
    let (what, span): (&str, Box<dyn ToTokens>) = match item {
        syn::Item::Fn(i) => ("a function", Box::new(i.sig.fn_token)),
        syn::Item::Struct(i) => ("a struct", Box::new(i.struct_token)),
        syn::Item::Enum(i) => ("an enum", Box::new(i.enum_token)),
        syn::Item::Impl(i) => {
            return syn::Error::new_spanned(
                i.impl_token,
                format!("{kind} cannot be used on an `impl` block; put it on a free `async fn` outside the block"),
            )
        }
        syn::Item::Trait(i) => ("a trait", Box::new(i.trait_token)),
        syn::Item::Mod(i) => ("a module", Box::new(i.mod_token)),
        syn::Item::Static(i) => ("a static", Box::new(i.static_token)),
        syn::Item::Const(i) => ("a constant", Box::new(i.const_token)),
        syn::Item::Type(i) => ("a type alias", Box::new(i.type_token)),
        other => ("this item", Box::new(other.clone())),
    };
    let fix = match kind {
        Macro::Event => "put it on a `struct`, whose fields are the event's payload",
        Macro::Subscribe => "put it on an `async fn`, whose one payload parameter is the event",
        Macro::Task => "put it on an `async fn`, whose parameters become the payload",
    };
    syn::Error::new_spanned(span, format!("{kind} cannot be used on {what}; {fix}"))
}

/// The function's qualifiers and generics; its parameters are checked in
/// `params`.
pub(super) fn check_signature(cx: &mut Ctxt, sig: &syn::Signature, kind: Macro) {
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("{kind} functions must be `async`; write `async fn`"),
        );
    }
    if let Some(unsafety) = sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            format!("{kind} functions cannot be `unsafe`: the runtime calls them with no one to uphold their contract; \
             remove `unsafe` and use an `unsafe` block inside"),
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format!("{kind} functions cannot have an `extern` ABI; remove it"),
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format!("{kind} functions cannot be generic: the payload must be one concrete, serialisable type; \
             replace the type parameters with concrete types"),
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            format!("{kind} functions cannot have a `where` clause; remove it"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(
            variadic,
            format!("{kind} functions cannot be variadic; take the values as a `Vec<T>` parameter"),
        );
    }
}
