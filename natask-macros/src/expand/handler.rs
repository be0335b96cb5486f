//! The handler the registry entry points at: decodes the payload, fetches
//! the injected parameters and calls the function.

use proc_macro2::Literal;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{Arg, Task};

pub(super) fn handler_fn(task: &Task, p: &TokenStream) -> TokenStream {
    let Task {
        payload, fn_ident, ..
    } = task;
    let mut call_args = Vec::new();
    let mut state_lets = Vec::new();
    for (i, arg) in task.args.iter().enumerate() {
        match arg {
            Arg::Payload(ident) => call_args.push(quote!(__natask_payload.#ident)),
            Arg::State(ty) => {
                let var = format_ident!("__natask_state_{}", i);
                state_lets.push(quote! {
                    let #var = match __natask_inv.state::<#ty>() {
                        ::core::result::Result::Ok(__natask_s) => __natask_s,
                        ::core::result::Result::Err(__natask_e) => return #p::fail(__natask_e),
                    };
                });
                call_args.push(quote!(#var));
            }
            Arg::Context => call_args.push(quote!(__natask_inv.context)),
            Arg::Event => call_args.push(quote!(__natask_payload)),
        }
    }
    let plain = quote!((&#p::Probe::<#payload>::NEW).decode_payload(__natask_inv.payload));
    // An older payload goes through the task's `upgrade`, whose type is
    // checked here, at the path the user wrote.
    let decode = match &task.upgrade {
        None => plain,
        Some(upgrade) => {
            let version = Literal::u32_suffixed(task.version);
            let checked = quote_spanned! {upgrade.span()=>
                let __natask_upgrade: fn(
                    u32,
                    #p::serde_json::Value,
                ) -> ::core::result::Result<#payload, #p::TaskError> = #upgrade;
            };
            quote! {{
                #checked
                let __natask_version = __natask_inv.context.version();
                if __natask_version < #version {
                    #p::upgrade(__natask_inv.payload, __natask_version, __natask_upgrade)
                } else {
                    #plain
                }
            }}
        }
    };
    quote! {
        fn __natask_handler<'__natask>(
            __natask_inv: #p::Invocation<'__natask>,
        ) -> #p::HandlerFuture<'__natask> {
            #[allow(unused_imports)]
            use #p::{DecodeFails as _, DecodeHolds as _, FinishFails as _, FinishHolds as _};
            let __natask_payload: #payload = match #decode {
                ::core::result::Result::Ok(__natask_payload) => __natask_payload,
                ::core::result::Result::Err(__natask_e) => return #p::fail(__natask_e),
            };
            #(#state_lets)*
            let __natask_future = #fn_ident(#(#call_args),*);
            (&#p::Probe::of(&__natask_future)).finish(__natask_future)
        }
    }
}
