//! What `#[event]` and `#[subscribe]` generate. A subscriber reuses the
//! task's handler, assertions and registry entry: the worker runs it
//! through the same attempt pipeline as a task.

use natask_core::Start;
use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{assertions, handler, registry, schema};
use crate::model::{Event, Subscriber};

/// The struct with its derives, its `Event` impl and `publish`.
pub(crate) fn expand_event(event: &Event) -> TokenStream {
    let krate = &event.crate_path;
    let p = quote!(#krate::__private);
    let item = &event.item;
    let (ident, vis) = (&item.ident, &item.vis);
    let name = &event.name;
    let retention = Literal::u64_suffixed(event.retention_ms);
    let serde_crate = format!("{}::serde", p.to_string().replace(' ', ""));
    let guard = registry::kind_name_guard("event", name, event.name_span);
    quote! {
        #[derive(
            #p::serde::Serialize,
            #p::serde::Deserialize,
            ::core::fmt::Debug,
            ::core::clone::Clone
        )]
        #[serde(crate = #serde_crate)]
        #item

        impl #p::Event for #ident {
            const NAME: &'static str = #name;
            const RETENTION_MS: u64 = #retention;
        }

        impl #ident {
            /// Publishes this event to its stream: every service subscribed
            /// to it handles it once (see `Client::publish`).
            #[allow(dead_code)]
            #vis async fn publish(
                &self,
                client: &#p::Client,
            ) -> ::core::result::Result<#p::Published, #p::PublishError> {
                client.publish(self).await
            }
        }

        const _: () = {
            #guard
        };
    }
}

/// The function, and in a `const _` block its handler, assertions and
/// subscriber entry.
pub(crate) fn expand_subscriber(sub: &Subscriber) -> TokenStream {
    let task = &sub.task;
    let krate = &task.crate_path;
    let p = quote!(#krate::__private);
    let item = &task.item;
    let event = &sub.event;
    // Spanned at the event type, so a type that is no event is one error
    // there (rustc reports each of these once).
    let event_name = quote_spanned! {event.span()=> <#event as #p::Event>::NAME};
    let retention = quote_spanned! {event.span()=> <#event as #p::Event>::RETENTION_MS};
    let handler = handler::handler_fn(task, &p);
    let assertions = assertions::assertions_fn(task, &p);
    let schema = schema::event_schema(&task.name, event);
    let entry = registry::entry_named(task, &p, &event_name, &schema);
    let service = &sub.service;
    let handler_name = &task.name;
    let start = match sub.start {
        Start::New => quote!(#p::Start::New),
        Start::All => quote!(#p::Start::All),
    };
    quote! {
        #item

        const _: () = {
            type __NataskEvent = #event;

            #handler

            #assertions

            #entry

            #[#p::linkme::distributed_slice(#p::SUBSCRIBERS)]
            #[linkme(crate = #p::linkme)]
            static __NATASK_SUBSCRIBER: #p::SubscriberEntry = #p::SubscriberEntry {
                service: #service,
                handler: #handler_name,
                event: #event_name,
                retention_ms: #retention,
                start: #start,
                task: __NATASK_ENTRY,
            };
        };
    }
}
