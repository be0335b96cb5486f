//! The inherent impl of the payload struct: `new` and the enqueue methods.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

use crate::model::Task;

pub(super) fn impl_block(task: &Task, p: &TokenStream) -> TokenStream {
    let Task {
        vis,
        payload,
        name,
        queue,
        fn_ident,
        ..
    } = task;
    let idents: Vec<_> = task.fields.iter().map(|f| &f.ident).collect();
    let types = task.fields.iter().map(|f| &f.ty);
    let construct = if idents.is_empty() {
        quote!(#payload)
    } else {
        quote!(#payload { #(#idents),* })
    };
    let new_doc =
        format!(" Creates the payload of task `{name}`, parameters in the order of `{fn_ident}`.");
    let methods = [
        enqueue_method(
            task,
            p,
            "enqueue",
            &enqueue_doc(task),
            None,
            quote!(#p::EnqueueOptions::new()),
        ),
        enqueue_method(
            task,
            p,
            "enqueue_with",
            &format!(
                " Enqueues this task on queue `{queue}` as `options` say (a given id, uniqueness); \
                 returns its id and whether this call stored it, once JetStream has."
            ),
            Some(("options", quote!(#p::EnqueueOptions))),
            quote!(options),
        ),
        enqueue_method(
            task,
            p,
            "enqueue_in",
            &format!(
                " Enqueues this task on queue `{queue}` to run once `delay` has passed (a JetStream \
                 message schedule, nats-server 2.12+; a zero delay enqueues at once); returns its id \
                 once JetStream has stored it."
            ),
            Some(("delay", quote!(::core::time::Duration))),
            quote!(#p::EnqueueOptions::new().delay(delay)),
        ),
        enqueue_method(
            task,
            p,
            "enqueue_at",
            &format!(
                " Enqueues this task on queue `{queue}` to run at `due` (a JetStream message \
                 schedule, nats-server 2.12+; a time not in the future enqueues at once); returns its \
                 id once JetStream has stored it."
            ),
            Some(("due", quote!(::std::time::SystemTime))),
            quote!(#p::EnqueueOptions::new().due_at(due)),
        ),
    ];
    quote! {
        impl #payload {
            #[doc = #new_doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn new(#(#idents: #types),*) -> Self {
                #construct
            }

            #(#methods)*
        }
    }
}

/// The doc of `enqueue`. It returns an `Enqueued` for every task; a unique
/// task's doc says when it finds the holder of its key instead of storing a
/// task.
fn enqueue_doc(task: &Task) -> String {
    let queue = &task.queue;
    let Some(unique) = &task.unique else {
        return format!(
            " Enqueues this task on queue `{queue}`; returns its id once JetStream has stored it."
        );
    };
    let key = if unique.fields.is_empty() {
        "task name".to_owned()
    } else {
        let fields: Vec<String> = unique
            .fields
            .iter()
            .map(|i| format!("`{}`", i.unraw()))
            .collect();
        fields.join(", ")
    };
    let until = unique
        .until
        .map(|stage| format!(", or until the task has {stage}"))
        .unwrap_or_default();
    format!(
        " Enqueues this task on queue `{queue}` unless a task with the same {key} holds \
         the unique lock (held for {} s{until}); returns the id of the task stored, or of \
         the one found (`created: false`).",
        unique.ttl_secs
    )
}

/// One enqueue method. They differ only in their name, their doc, the
/// parameter (a name and its type) they take after `client`, and the
/// `EnqueueOptions` they pass on: every one goes through the one enqueue of
/// `Probe` (autoref dispatch, see `natask_core::task::Probe`).
fn enqueue_method(
    task: &Task,
    p: &TokenStream,
    name: &str,
    doc: &str,
    param: Option<(&str, TokenStream)>,
    options: TokenStream,
) -> TokenStream {
    let vis = &task.vis;
    let name = format_ident!("{}", name);
    let param = param.map(|(ident, ty)| {
        let ident = format_ident!("{}", ident);
        quote!(#ident: #ty,)
    });
    quote! {
        #[doc = #doc]
        #vis async fn #name(
            &self,
            client: &#p::Client,
            #param
        ) -> ::core::result::Result<#p::Enqueued, #p::EnqueueError> {
            #[allow(unused_imports)]
            use #p::{EnqueueFails as _, EnqueueHolds as _};
            (&#p::Probe::<Self>::NEW).enqueue_task(client, self, #options).await
        }
    }
}
