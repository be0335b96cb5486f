//! The never-called function that asserts the written types, each spanned
//! where the user wrote it, so that a missing `Serialize` or a return type
//! that is no task result is one error at that type, not at the derive or
//! deep in the handler.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::Task;

pub(super) fn assertions_fn(task: &Task, p: &TokenStream) -> TokenStream {
    let type_asserts = task.fields.iter().filter(|f| f.asserted).map(|f| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=>
            #p::assert_payload_field::<#ty>();
        }
    });
    // A qualified path rather than a generic fn with a bound: the error then
    // has no "required by a bound in .." note naming natask's internals.
    // (Payload types cannot do the same: `PayloadField` has no items, and an
    // item on it would have rustc report its serde supertraits instead.)
    let output_assert = task.output.as_ref().map(|ty| {
        quote_spanned! {ty.span()=>
            let _ = <#ty as #p::IntoTaskResult>::into_task_result;
        }
    });
    quote! {
        #[allow(dead_code)]
        fn __natask_assertions() {
            #(#type_asserts)*
            #output_assert
        }
    }
}
