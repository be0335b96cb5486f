//! Code generation from the resolved model (`crate::model::Task`), one
//! module per item emitted. The model is valid input, already checked by
//! `valid`; no user errors are reported from this module.
//!
//! How a mistake in a payload or return type stays one error: every impl on
//! the payload struct that needs its fields to be serialisable carries
//! `where for<'__natask> Field: PayloadField` (the `for<..>` keeps rustc from
//! rejecting the bound as trivially false), and the code that uses those
//! impls goes through `Probe` (autoref dispatch), which falls back to a
//! never-run path when the bound does not hold. What remains is the one
//! assertion per parameter, spanned at its type (`assertions`).

mod assertions;
mod event;
mod handler;
mod inherent;
mod payload;
mod registry;
mod schema;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Type;

pub(crate) use event::{expand_event, expand_subscriber};

use crate::model::Task;

pub(crate) fn expand(task: &Task) -> TokenStream {
    let krate = &task.crate_path;
    let p = quote!(#krate::__private);
    let item = &task.item;
    let definition = payload::definition(task, &p);
    let inherent = inherent::impl_block(task, &p);
    let debug_and_clone = payload::debug_and_clone(task);
    let guard = registry::name_guard(task);
    let handler = handler::handler_fn(task, &p);
    let assertions = assertions::assertions_fn(task, &p);
    let registration = registry::registration(task, &p);
    quote! {
        #item

        #definition

        #inherent

        #debug_and_clone

        const _: () = {
            #guard

            #handler

            #assertions

            #registration
        };
    }
}

/// `for<'__natask> T: #bound` for each distinct type of `types`: one bound
/// per distinct type is enough.
fn bounds<'a>(types: impl Iterator<Item = &'a Type>, bound: &TokenStream) -> Vec<TokenStream> {
    let mut distinct: Vec<&Type> = Vec::new();
    for ty in types {
        let key = quote!(#ty).to_string();
        if !distinct.iter().any(|t| quote!(#t).to_string() == key) {
            distinct.push(ty);
        }
    }
    distinct
        .iter()
        .map(|ty| quote!(for<'__natask> #ty: #bound))
        .collect()
}

/// `where` and `bounds`, or nothing when there are none.
fn where_clause(bounds: &[TokenStream]) -> Option<TokenStream> {
    (!bounds.is_empty()).then(|| quote!(where #(#bounds),*))
}

/// `PayloadField` bounds on the field types that serde handles itself (not
/// through `#[serde(with = ..)]`), for the serde derive and the `Task` impl.
fn payload_bounds(task: &Task, p: &TokenStream) -> Vec<TokenStream> {
    let types = task.fields.iter().filter(|f| f.asserted).map(|f| &f.ty);
    bounds(types, &quote!(#p::PayloadField))
}

/// `Some(value)` or `None`, spelt out for hygiene.
fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}
