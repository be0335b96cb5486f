//! Code generation. Everything here is valid input, already checked by
//! `valid`; no user errors are reported from this module.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{ParamKind, TaskFn};
use crate::attr::TaskArgs;
use crate::valid::Names;

pub(crate) fn expand(args: &TaskArgs, f: &TaskFn, names: &Names) -> TokenStream {
    let krate = args
        .crate_path
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::natask_runtime));
    let p = quote!(#krate::__private);
    let item = &f.item;
    let vis = &item.vis;
    let fn_ident = &item.sig.ident;
    let payload = &names.payload;
    let task_name = &names.task;
    let queue = &names.queue;

    let docs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let mut fields = Vec::new();
    let mut field_idents = Vec::new();
    let mut field_types = Vec::new();
    for (param, ident, ty) in f.payload() {
        let ident = ident
            .clone()
            .expect("validated: payload parameters are plain names");
        let ident = syn::Ident::new(ident.to_string().trim_start_matches("r#"), ident.span());
        let ident = if is_keyword(&ident) {
            format_ident!("r#{}", ident)
        } else {
            ident
        };
        let attrs = &param.field_attrs;
        fields.push(quote!(#(#attrs)* #vis #ident: #ty));
        field_idents.push(ident);
        field_types.push(ty);
    }

    let mut call_args = Vec::new();
    let mut state_keys = Vec::new();
    let mut state_lets = Vec::new();
    let mut payload_index = 0;
    for (i, param) in f.params.iter().enumerate() {
        match &param.kind {
            ParamKind::Payload { .. } => {
                let ident = &field_idents[payload_index];
                payload_index += 1;
                call_args.push(quote!(__natask_payload.#ident));
            }
            ParamKind::State { inner } => {
                let var = format_ident!("__natask_state_{}", i);
                state_lets.push(quote!(let #var = __natask_inv.state::<#inner>()?;));
                state_keys.push(quote!(#p::StateKey::of::<#inner>()));
                call_args.push(quote!(#var));
            }
            ParamKind::Context => call_args.push(quote!(__natask_inv.context)),
            ParamKind::Receiver => unreachable!("validated: no receiver"),
        }
    }

    let retries = match &args.retries {
        Some(r) => {
            let n = r.value;
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    let timeout = match &args.timeout_ms {
        Some(t) => {
            let ms = t.value;
            quote!(::core::option::Option::Some(#ms))
        }
        None => quote!(::core::option::Option::None),
    };

    // Payload types are asserted where the user wrote them, so a missing
    // `Serialize` points at the parameter, not at the derive.
    let type_asserts = field_types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            #p::assert_payload_field::<#ty>();
        }
    });
    let output_assert = match &item.sig.output {
        syn::ReturnType::Type(_, ty) => quote_spanned! {ty.span()=>
            #p::assert_task_output::<#ty>();
        },
        syn::ReturnType::Default => quote!(),
    };

    let struct_def = if fields.is_empty() {
        quote!(#vis struct #payload;)
    } else {
        quote!(#vis struct #payload { #(#fields,)* })
    };
    let serde_crate = format!("{}::serde", quote!(#p).to_string().replace(' ', ""));
    let new_doc = format!(
        "Creates the payload of task `{task_name}`, parameters in the order of `{fn_ident}`."
    );
    let enqueue_doc = format!(
        "Enqueues this task on queue `{queue}`; returns its id once JetStream has stored it."
    );

    quote! {
        #item

        #(#docs)*
        #[derive(#p::serde::Serialize, #p::serde::Deserialize, ::core::fmt::Debug, ::core::clone::Clone)]
        #[serde(crate = #serde_crate)]
        #struct_def

        impl #payload {
            #[doc = #new_doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn new(#(#field_idents: #field_types),*) -> Self {
                #payload { #(#field_idents),* }
            }

            #[doc = #enqueue_doc]
            #vis async fn enqueue(
                &self,
                client: &#p::Client,
            ) -> ::core::result::Result<#p::TaskId, #p::EnqueueError> {
                client.enqueue(self).await
            }
        }

        const _: () = {
            fn __natask_handler<'__natask>(
                __natask_inv: #p::Invocation<'__natask>,
            ) -> #p::HandlerFuture<'__natask> {
                ::std::boxed::Box::pin(async move {
                    let __natask_payload: #payload = #p::decode(__natask_inv.payload)?;
                    #(#state_lets)*
                    #p::IntoTaskResult::into_task_result(#fn_ident(#(#call_args),*).await)
                })
            }

            #[allow(dead_code)]
            fn __natask_assertions() {
                #(#type_asserts)*
                #output_assert
            }

            impl #p::Task for #payload {
                const NAME: &'static str = #task_name;
                const QUEUE: &'static str = #queue;
                const ENTRY: #p::TaskEntry = #p::TaskEntry {
                    name: #task_name,
                    queue: #queue,
                    retries: #retries,
                    timeout_ms: #timeout,
                    handler: __natask_handler,
                    states: &[#(#state_keys),*],
                    crate_name: ::core::env!("CARGO_PKG_NAME"),
                    module_path: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                };
            }

            #[#p::linkme::distributed_slice(#p::TASKS)]
            #[linkme(crate = #p::linkme)]
            static __NATASK_ENTRY: #p::TaskEntry = <#payload as #p::Task>::ENTRY;
        };
    }
}

fn is_keyword(ident: &syn::Ident) -> bool {
    syn::parse_str::<syn::Ident>(&ident.to_string()).is_err()
}
