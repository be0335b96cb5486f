//! The `#[task]`, `#[event]` and `#[subscribe]` attributes of natask. Use
//! them through `natask_runtime`; see that crate for the full guide.
//!
//! The crate is a pipeline, one module per step, as in serde and thiserror:
//! `attr` parses the arguments, `ast` splits the parameters into payload and
//! injected ones, `valid` checks every rule (collecting all mistakes, each a
//! `syn::Error` on the token at fault, in `ctxt`) and resolves the task into
//! one `model::Task`, and `expand` generates code from that model alone, one
//! module per item it emits; it never reports user errors. On any error the
//! function is still emitted unchanged, so one mistake does not cascade.
//! The grammars `#[task]` shares with the runtime (names, durations,
//! backoff policies, cron schedules) live in `natask-core`; `suggest` ends
//! the messages about misspelt words.
//! Each attribute's user docs, doctested, are in `docs/<attribute>.md`.
//!
//! # What `#[task]` generates
//!
//! The expansion of a representative task, rendered with `prettyplease`
//! (kept in `tests/snapshots/send_email.rs` and checked by a unit test):
//!
//! ```text
#![doc = include_str!("../tests/snapshots/send_email.rs")]
//! ```
//!
//! # What `#[event]` and `#[subscribe]` generate
//!
//! The same pipeline (`attr` with each attribute's own keys, `valid::event`
//! reusing the task's checks of names, durations, retries, backoff, the
//! signature and the parameters). A subscriber is a task's handler and
//! `TaskEntry` whose payload is the whole event, registered with its
//! service in a second link-time slice (`tests/snapshots/order_placed.rs`):
//!
//! ```text
#![doc = include_str!("../tests/snapshots/order_placed.rs")]
//! ```

use proc_macro::TokenStream;

mod ast;
mod attr;
mod ctxt;
mod expand;
mod model;
mod suggest;
mod valid;

#[doc = include_str!("../docs/task.md")]
#[proc_macro_attribute]
pub fn task(args: TokenStream, input: TokenStream) -> TokenStream {
    on_item(input, |item| match item {
        syn::Item::Fn(item) => task_fn(args.into(), item),
        other => not_for(&other, attr::Macro::Task),
    })
}

// The docs of `#[event]` and `#[subscribe]` live in `docs/events.md` too.
#[doc = include_str!("../docs/event.md")]
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    on_item(input, |item| match item {
        syn::Item::Struct(item) => event_struct(args.into(), item),
        other => not_for(&other, attr::Macro::Event),
    })
}

#[doc = include_str!("../docs/subscribe.md")]
#[proc_macro_attribute]
pub fn subscribe(args: TokenStream, input: TokenStream) -> TokenStream {
    on_item(input, |item| match item {
        syn::Item::Fn(item) => subscribe_fn(args.into(), item),
        other => not_for(&other, attr::Macro::Subscribe),
    })
}

/// Parses the annotated item and expands it, or reports why it does not
/// parse (with the input kept, so nothing else breaks).
fn on_item(
    input: TokenStream,
    expand: impl FnOnce(syn::Item) -> proc_macro2::TokenStream,
) -> TokenStream {
    match syn::parse::<syn::Item>(input.clone()) {
        Ok(item) => expand(item).into(),
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(proc_macro2::TokenStream::from(input));
            out.into()
        }
    }
}

/// The error for `kind` on an item it does not go on, and the item.
fn not_for(item: &syn::Item, kind: attr::Macro) -> proc_macro2::TokenStream {
    let mut out = valid::not_a_fn(item, kind).to_compile_error();
    out.extend(quote::quote!(#item));
    out
}

/// Every mistake `cx` holds, and the item as written: emitted anyway so
/// that one mistake does not cascade into "cannot find" errors at every
/// use.
fn with_errors(cx: ctxt::Ctxt, item: &impl quote::ToTokens) -> proc_macro2::TokenStream {
    let mut out = cx
        .check()
        .err()
        .map_or_else(proc_macro2::TokenStream::new, |e| e.to_compile_error());
    out.extend(quote::quote!(#item));
    out
}

fn event_struct(args: proc_macro2::TokenStream, item: syn::ItemStruct) -> proc_macro2::TokenStream {
    let mut cx = ctxt::Ctxt::default();
    let args = attr::TaskArgs::parse_for(&mut cx, args, attr::Macro::Event);
    match valid::event(&mut cx, &args, &item) {
        Some(event) => expand::expand_event(&event),
        None => with_errors(cx, &item),
    }
}

fn subscribe_fn(args: proc_macro2::TokenStream, item: syn::ItemFn) -> proc_macro2::TokenStream {
    let mut cx = ctxt::Ctxt::default();
    let args = attr::TaskArgs::parse_for(&mut cx, args, attr::Macro::Subscribe);
    let f = ast::TaskFn::from_item(item);
    match valid::subscriber(&mut cx, &args, &f) {
        Some(sub) => expand::expand_subscriber(&sub),
        None => with_errors(cx, &f.item),
    }
}

fn task_fn(args: proc_macro2::TokenStream, item: syn::ItemFn) -> proc_macro2::TokenStream {
    let mut cx = ctxt::Ctxt::default();
    let args = attr::TaskArgs::parse(&mut cx, args);
    let f = ast::TaskFn::from_item(item);
    match valid::validate(&mut cx, &args, &f) {
        Some(task) => expand::expand(&task),
        None => with_errors(cx, &f.item),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// Renders the expansion of `#[task(args)] item` as `cargo expand` would.
    fn expand(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        let out = super::task_fn(args, syn::parse2(item).unwrap());
        prettyplease::unparse(&syn::parse2(out).unwrap())
    }

    /// The expansion of a representative task, checked in at
    /// `tests/snapshots/send_email.rs` so a reviewer sees what `#[task]`
    /// generates. `UPDATE_SNAPSHOTS=1 cargo test -p natask-macros` rewrites it.
    #[test]
    fn snapshot_send_email() {
        let got = expand(
            quote!(
                queue = "emails",
                retries = 3,
                timeout = "30s",
                backoff = "exponential(1s, x2, max 5m)"
            ),
            quote! {
                /// Sends one email.
                pub async fn send_email(
                    mailer: State<Mailer>,
                    ctx: &TaskContext,
                    to: String,
                    #[serde(default)] subject: String,
                ) -> Result<(), TaskError> {
                    mailer.send(&to, &subject).await?;
                    Ok(())
                }
            },
        );
        check_snapshot("send_email", "`#[task]` on `send_email`", &got);
    }

    /// The expansion of a unique task, checked in at
    /// `tests/snapshots/build_report.rs`.
    #[test]
    fn snapshot_build_report() {
        let got = expand(
            quote!(
                queue = "reports",
                unique = "1h",
                unique_by = "tenant",
                unique_until = "started"
            ),
            quote! {
                async fn build_report(tenant: String, month: u32) {}
            },
        );
        check_snapshot("build_report", "`#[task]` on `build_report`", &got);
    }

    /// The expansion of an event and of a subscriber to it, checked in at
    /// `tests/snapshots/order_placed.rs`.
    #[test]
    fn snapshot_order_placed() {
        let event = super::event_struct(
            quote!(retention = "30d"),
            syn::parse2(quote! {
                /// An order was placed.
                pub struct OrderPlaced {
                    pub order: u64,
                    pub total_cents: u64,
                }
            })
            .unwrap(),
        );
        let subscriber = super::subscribe_fn(
            quote!(service = "billing", retries = 3, start = "all"),
            syn::parse2(quote! {
                async fn charge(
                    order: OrderPlaced,
                    ledger: State<Ledger>,
                    ctx: &TaskContext,
                ) -> Result<(), TaskError> {
                    ledger.charge(order.order).await?;
                    Ok(())
                }
            })
            .unwrap(),
        );
        let got = prettyplease::unparse(&syn::parse2(quote!(#event #subscriber)).unwrap());
        check_snapshot(
            "order_placed",
            "`#[event]` on `OrderPlaced` and `#[subscribe]` on `charge`",
            &got,
        );
    }

    #[test]
    fn events_and_subscribers_report_their_mistakes() {
        let out = super::subscribe_fn(
            quote!(start = "first", retries = "3"),
            syn::parse2(quote!(
                async fn f(a: A, b: B) {}
            ))
            .unwrap(),
        )
        .to_string();
        for message in [
            "a `#[subscribe]` function takes exactly one event",
            "`retries` takes an integer, not a string",
            "`#[subscribe]` needs the service",
            "is not where a subscription starts",
        ] {
            assert!(out.contains(message), "{message}: {out}");
        }
        assert!(out.contains("async fn f"), "the function is kept: {out}");
        let out = super::event_struct(
            quote!(name = "a.b", retention = "0s", queue = "q"),
            syn::parse2(quote!(
                struct E;
            ))
            .unwrap(),
        )
        .to_string();
        for message in [
            "unknown `#[event]` argument `queue`",
            "`retention` must be at least 1s",
            "the event name `a.b` contains `.`",
        ] {
            assert!(out.contains(message), "{message}: {out}");
        }
    }

    /// `what`: the macro and item, for the file's header.
    fn check_snapshot(task: &str, what: &str, got: &str) {
        let path = format!("{}/tests/snapshots/{task}.rs", env!("CARGO_MANIFEST_DIR"));
        let header = format!(
            "// Generated by `snapshot_{task}` in natask-macros/src/lib.rs: the\n\
             // expansion of {what}. Do not edit by hand.\n\n"
        );
        let got = format!("{header}{got}");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "expansion changed; review it and rerun with UPDATE_SNAPSHOTS=1:\n{got}"
        );
    }

    #[test]
    fn errors_keep_the_function() {
        let out = super::task_fn(
            quote!(retries = "3"),
            syn::parse2(quote!(
                async fn f() {}
            ))
            .unwrap(),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("async fn f"), "{out}");
    }
}
