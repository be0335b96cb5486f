//! The registry entry and the `Task` impl that ties the struct to it, and
//! the guard that makes two tasks with one name in a crate a compile error.

use natask_core::retry::BackoffSpec;
use natask_core::Until;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::{option, payload_bounds, where_clause};
use crate::model::{Task, Unique};

/// The entry, the `Task` impl and the entry's registration.
pub(super) fn registration(task: &Task, p: &TokenStream) -> TokenStream {
    let Task {
        payload,
        name,
        queue,
        ..
    } = task;
    let entry = entry(task, p);
    let task_where = where_clause(&payload_bounds(task, p));
    let unique_items = task.unique.as_ref().map(|u| unique_items(u, p));
    let version = Literal::u32_suffixed(task.version);
    quote! {
        #entry

        impl #p::Task for #payload #task_where {
            const NAME: &'static str = #name;
            const QUEUE: &'static str = #queue;
            const VERSION: u32 = #version;
            const ENTRY: #p::TaskEntry = __NATASK_ENTRY;
            #unique_items
        }

        #[#p::linkme::distributed_slice(#p::TASKS)]
        #[linkme(crate = #p::linkme)]
        static __NATASK_REGISTERED: #p::TaskEntry = __NATASK_ENTRY;
    }
}

/// `__NATASK_ENTRY`, the task's `TaskEntry`.
fn entry(task: &Task, p: &TokenStream) -> TokenStream {
    let name = &task.name;
    let schema = super::schema::payload_schema(task);
    entry_named(task, p, &quote!(#name), &schema)
}

/// `__NATASK_ENTRY`, named by the constant expression `name` (a
/// subscriber's entry is named by its event), with the payload's JSON
/// Schema `schema`.
pub(super) fn entry_named(
    task: &Task,
    p: &TokenStream,
    name: &TokenStream,
    schema: &str,
) -> TokenStream {
    let queue = &task.queue;
    let retries = option(task.retries.map(Literal::u32_suffixed).map(|n| quote!(#n)));
    let timeout = option(
        task.timeout_ms
            .map(Literal::u64_suffixed)
            .map(|ms| quote!(#ms)),
    );
    let backoff = option(task.backoff.as_ref().map(|b| backoff(b, p)));
    let cron = option(task.cron.as_ref().map(|c| quote!(#c)));
    let time_zone = option(task.time_zone.as_ref().map(|z| quote!(#z)));
    let states = task.states().map(|ty| quote!(#p::StateKey::of::<#ty>()));
    let unique = option(task.unique.as_ref().map(|u| unique_policy(u, p)));
    let version = Literal::u32_suffixed(task.version);
    quote! {
        const __NATASK_ENTRY: #p::TaskEntry = #p::TaskEntry {
            name: #name,
            queue: #queue,
            retries: #retries,
            timeout_ms: #timeout,
            backoff: #backoff,
            cron: #cron,
            time_zone: #time_zone,
            handler: __natask_handler,
            states: &[#(#states),*],
            schema: #schema,
            unique: #unique,
            version: #version,
            crate_name: ::core::env!("CARGO_PKG_NAME"),
            module_path: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
        };
    }
}

fn backoff(spec: &BackoffSpec, p: &TokenStream) -> TokenStream {
    match spec {
        BackoffSpec::Fixed { delay_ms } => {
            let d = Literal::u64_suffixed(*delay_ms);
            quote!(#p::Backoff::Fixed { delay_ms: #d })
        }
        BackoffSpec::Exponential {
            base_ms,
            factor,
            max_ms,
        } => {
            let base = Literal::u64_suffixed(*base_ms);
            let factor = Literal::f64_suffixed(*factor);
            let max = Literal::u64_suffixed(*max_ms);
            quote!(#p::Backoff::Exponential { base_ms: #base, factor: #factor, max_ms: #max })
        }
        BackoffSpec::List(delays) => {
            let delays = delays.iter().map(|d| Literal::u64_suffixed(*d));
            quote!(#p::Backoff::List(&[#(#delays),*]))
        }
    }
}

/// The items of the `Task` impl that make a task unique.
fn unique_items(unique: &Unique, p: &TokenStream) -> TokenStream {
    let policy = unique_policy(unique, p);
    let fields = &unique.fields;
    quote! {
        const UNIQUE: ::core::option::Option<#p::UniquePolicy> =
            ::core::option::Option::Some(#policy);

        fn unique_fields<__NataskSerializer: #p::serde::Serializer>(
            &self,
            __natask_serializer: __NataskSerializer,
        ) -> ::core::result::Result<__NataskSerializer::Ok, __NataskSerializer::Error> {
            #p::serde::Serialize::serialize(&(#(&self.#fields,)*), __natask_serializer)
        }
    }
}

/// The `UniquePolicy` of a unique task, as a constant expression.
fn unique_policy(unique: &Unique, p: &TokenStream) -> TokenStream {
    let ttl = Literal::u64_suffixed(unique.ttl_secs);
    let until = option(unique.until.map(|stage| {
        let variant = match stage {
            Until::Started => format_ident!("Started"),
            Until::Succeeded => format_ident!("Succeeded"),
            Until::Finished => format_ident!("Finished"),
        };
        quote!(#p::Until::#variant)
    }));
    quote! {
        #p::UniquePolicy {
            ttl: ::core::time::Duration::from_secs(#ttl),
            until: #until,
        }
    }
}

/// A `#[macro_export]`ed macro named after the task name: exported macros
/// share one namespace at the crate root, so a second `#[task]` with the same
/// name in the crate is a compile error at its name, with a label at the
/// first. Spanned at the name so both point at the user's tokens.
///
/// That error's message is rustc's own (``the name `..` is defined multiple
/// times``) and always shows the macro's name, so the name is written to be
/// read there: `task_named_send_email`, not `__natask_..`.
pub(super) fn name_guard(task: &Task) -> TokenStream {
    kind_name_guard("task", &task.name, task.name_span)
}

/// [`name_guard`] for a `kind` (`task`, `event`) named `name`.
pub(super) fn kind_name_guard(kind: &str, name: &str, span: proc_macro2::Span) -> TokenStream {
    let ident = format_ident!("{}", guard_ident(kind, name), span = span);
    quote_spanned! {span=>
        #[doc(hidden)]
        #[macro_export]
        macro_rules! #ident { () => {} }
    }
}

/// Injective from task names (`[A-Za-z0-9_-]{1,64}`) to identifiers: names
/// without `-` keep their spelling after `task_named_`; a `-` cannot be in an
/// identifier, so names with one are spelled with `_`, after the positions of
/// the dashes, under a prefix no dash-free name can produce
/// (`task_with_dashes_at_4_named_send_email`). Never the bare task name: a
/// task called `test` or `format` would then clash with the attribute or the
/// std macro.
fn guard_ident(kind: &str, task_name: &str) -> String {
    if !task_name.contains('-') {
        return format!("{kind}_named_{task_name}");
    }
    let positions: Vec<String> = task_name
        .match_indices('-')
        .map(|(i, _)| i.to_string())
        .collect();
    format!(
        "{kind}_with_dashes_at_{}_named_{}",
        positions.join("_and_"),
        task_name.replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_idents_are_injective() {
        assert_eq!(guard_ident("task", "send_email"), "task_named_send_email");
        assert_eq!(
            guard_ident("task", "send-email"),
            "task_with_dashes_at_4_named_send_email"
        );
        assert_eq!(
            guard_ident("task", "a-b-c"),
            "task_with_dashes_at_1_and_3_named_a_b_c"
        );
        let names = [
            "a-b",
            "a_b",
            "a-_",
            "a_-",
            "a--",
            "a__",
            "4_a_b",
            "a-b-c",
            "with_dashes_at_1_named_a_b",
            "a-b_named_c",
            "a_b-named-c",
        ];
        let idents: std::collections::HashSet<_> =
            names.iter().map(|n| guard_ident("task", n)).collect();
        assert_eq!(idents.len(), names.len());
    }
}
