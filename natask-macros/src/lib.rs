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

/// Turns an `async fn` into a background task.
///
/// ```no_run
/// use natask_runtime::{task, State, TaskContext, TaskError};
///
/// struct Mailer;
///
/// /// Sends one email.
/// #[task(queue = "emails", retries = 3, timeout = "30s", backoff = "exponential(1s, x2, max 5m)")]
/// async fn send_email(mailer: State<Mailer>, ctx: &TaskContext, to: String, subject: String) -> Result<(), TaskError> {
///     let _ = (mailer, ctx.attempt(), to, subject);
///     Ok(())
/// }
///
/// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
/// SendEmail::new("ada@example.com".into(), "hello".into()).enqueue(&client).await?;
/// # Ok(()) }
/// ```
///
/// Generates a payload struct named after the function in CamelCase (fields
/// are the payload parameters, in order, with the function's visibility),
/// `new` and `enqueue` on it, an implementation of `Task`, and a registry
/// entry the runtime collects at link time. The function itself stays as
/// written and callable, e.g. from a unit test.
///
/// # Parameters: payload and injected
///
/// The rule is syntactic, because a macro cannot see types:
/// - a parameter whose type is written `State<T>` (any path ending in `State`
///   with one type argument, e.g. `natask_runtime::State<Mailer>`) is shared
///   state the runtime injects (registered with `RuntimeBuilder::state`);
/// - a parameter whose type is written `&TaskContext` (any path ending in
///   `TaskContext`) is the running attempt's context;
/// - every other parameter is payload: it becomes a field of the struct, so
///   it must be an owned `Serialize + Deserialize` type (not a reference,
///   not `impl Trait`) written as a plain name (`to: String`).
///
/// Mark a parameter `#[payload]` to make it payload even though its type is
/// written `State<..>` (your own type called `State`). `#[serde(..)]` and doc
/// comments on a payload parameter move to its field; with
/// `#[serde(with = "..")]` the type itself need not implement serde.
/// `&mut TaskContext`, `TaskContext` by value, `&State<T>` and `State<&T>`
/// are errors that show the supported form.
///
/// # The generated struct
///
/// It implements `Serialize` and `Deserialize`, and `Debug` and `Clone`
/// when every payload type does (like a derive on a generic struct; a type
/// without `Debug` does not stop you from using it as payload, it only
/// removes `Debug` from the struct). The serde impls carry a
/// `where for<'__natask> Field: PayloadField` bound per field type, so that a
/// field type that is not serialisable gives one error at its parameter, not
/// a cascade from inside serde.
///
/// # Arguments
///
/// Keys form a closed set; an unknown key is an error that suggests the
/// closest one, and a key given twice, a value of the wrong kind, a value out
/// of range or a malformed duration is an error on that value.
///
/// ## `queue = "emails"`
/// The queue the task is published to; `default` when omitted. Queue names
/// follow the same rules as task names (below).
///
/// ## `name = "send_email"`
/// The wire name, by which workers find the handler. It defaults to the
/// function's name alone (`r#match` gives `match`): moving the function to
/// another module changes nothing. Renaming the function *does* change the
/// wire name, and tasks already queued under the old name would find no
/// handler; pin the old name while renaming:
/// `#[task(name = "send_email")] async fn deliver_email(..)`.
///
/// Names are 1 to 64 ASCII letters, digits, `_` or `-`: they become NATS
/// subject tokens and stream names, so `.`, `*`, `>`, whitespace, path
/// separators and non-printable or non-ASCII characters are compile errors,
/// also when the name comes from the function's name.
///
/// Two `#[task]`s with one name in a crate do not compile: the error, at the
/// second name, reads ``the name `task_named_send_email` is defined multiple
/// times`` and labels the first (each task exports a hidden macro named after
/// its task name; names with `-` give `task_with_dashes_at_.._named_..`).
/// Across crates, the runtime refuses to start and names both definitions;
/// check it in a unit test:
///
/// ```
/// // in a `#[test]` of the binary that links every crate with tasks:
/// natask_runtime::registry::validate().expect("two #[task]s share a name");
/// ```
///
/// ## `retries = 3`
/// Attempts after the first failed one, from 0 to 1000; the runtime's default
/// when omitted.
///
/// ## `timeout = "30s"`
/// Per-attempt timeout: a whole number and a unit (`ms`, `s`, `m`, `h`,
/// `d`), more than zero and at most `7d`; the runtime's default when omitted.
///
/// ## `backoff = "exponential(1s, x2, max 5m)"`
/// The delay before each retry; the runtime's default when omitted. Three
/// forms (durations as for `timeout`, each at most `7d`):
///
/// | form | meaning |
/// |---|---|
/// | `"fixed(5s)"` | always wait 5 s |
/// | `"exponential(500ms, x2, max 1m)"` | 500 ms, then ×2 per retry (a factor from `x1` to `x100`, e.g. `x1.5`), at most 1 min (not less than the first delay); ±20 % jitter |
/// | `"list(1s, 5s, 30s)"` | 1 s, 5 s, then 30 s for every later retry (at least one delay) |
///
/// ## `cron = "0 */5 * * * *"`
/// Runs the task on a repeating server-side schedule (nats-server 2.14+):
/// once per tick for the whole fleet, however many workers serve its queue.
/// The task takes no payload parameters (`&TaskContext` and `State<T>` are
/// fine). The expression is what nats-server accepts as a `Nats-Schedule`,
/// checked at compile time:
///
/// | form | example |
/// |---|---|
/// | six fields `sec min hour day-of-month month day-of-week` (`*`, `?`, `a-b`, `a,b`, `/step`, `JAN`–`DEC`, `SUN`–`SAT`) | `"0 */5 * * * *"`, `"0 0 9 * * MON-FRI"` |
/// | `@every` and a Go duration of at least `1s` | `"@every 30s"`, `"@every 1h30m"` |
/// | a predefined name | `"@hourly"`, `"@daily"`/`"@midnight"`, `"@weekly"`, `"@monthly"`, `"@yearly"`/`"@annually"` |
///
/// The fields are read in UTC unless `time_zone` says otherwise. A runtime
/// serving the queue puts the schedule in place as it builds, and removes
/// the schedules of cron tasks it does not serve; see `docs/scheduling.md`.
///
/// ## `time_zone = "Europe/Berlin"`
/// With `cron`: the IANA time zone its fields are read in
/// (`Nats-Schedule-Time-Zone`), so `cron = "0 0 6 * * *", time_zone =
/// "Europe/Berlin"` runs at 06:00 Berlin time, summer and winter. Not with
/// `@every` (an interval no zone changes; nats-server refuses it). The form
/// of the name is checked at compile time; whether the zone exists, by the
/// server when the runtime puts the schedule in place (a build error names
/// it).
///
/// ## `unique = "1h"`
/// Makes the task unique: every enqueue first takes a lock (nats-server
/// 2.11+), and while a task with the same key holds it, enqueueing stores
/// nothing and returns the holder's id. The value is the lock's TTL, the
/// longest it is held: whole seconds, at least `1s` (the server's per-message
/// TTL counts seconds). The `Enqueued { id, created }` that `enqueue`
/// returns says whether this call stored the task. Not with `cron` (nobody
/// enqueues a tick).
///
/// ```no_run
/// #[natask_runtime::task(queue = "reports", unique = "1h", unique_by = "tenant", unique_until = "started")]
/// async fn build_report(tenant: String, month: u32) {}
///
/// # async fn demo(client: natask_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let enqueued = BuildReport::new("acme".into(), 7).enqueue(&client).await?;
/// if !enqueued.created {
///     println!("a report for acme is already waiting: {}", enqueued.id);
/// }
/// # Ok(()) }
/// ```
///
/// ## `unique_by = "tenant, month"`
/// The payload parameters that make the key, separated by commas (in any
/// order; the key uses declaration order). All payload parameters when
/// omitted; a task without payload is unique by its name alone. Needs
/// `unique`.
///
/// ## `unique_until = "started"`
/// Releases the lock before its TTL when the task reaches a stage:
/// `"started"` (a worker begins its first attempt: at most one task waiting
/// per key), `"succeeded"` (an attempt succeeded; a task that ends in the
/// dead-letter stream keeps the key until the TTL), or `"finished"`
/// (succeeded or dead-lettered). Without it only the TTL ends the lock.
/// Needs `unique`.
///
/// ## `version = 2`
/// The payload's version (1 when omitted), sent as `Natask-Version`. A
/// worker hands back a task of a newer version than its handler's, and
/// dead-letters it after the grace (`unknown_version`). Compatible changes
/// (an added `Option` field, a rename with `#[serde(alias)]`) need no new
/// version; see `docs/evolution.md`.
///
/// ## `upgrade = upgrade_send_email`
/// A function `fn(u32, serde_json::Value) -> Result<SendEmail, TaskError>`
/// that turns a payload of an older version (the `u32`) into this one; the
/// handler then runs with what it returns. Checked at compile time; needs
/// `version = 2` or more.
///
/// ## `payload = SendMail`
/// Name of the generated struct, instead of the function's name in CamelCase.
///
/// ## `crate = ::path::to::natask_runtime`
/// Where the generated code finds natask, for crates that re-export it
/// (`#[my_platform::task(crate = ::my_platform::natask)]`). By default the
/// generated code names only `::natask_runtime::__private::..`, with absolute
/// paths, so local items called `Result`, `Box` or `natask_runtime` do not
/// interfere.
///
/// # Return type
///
/// `()` or `Result<T, E>` with `T: Serialize` (the task's result) and `E:
/// Into<TaskError>`: `TaskError` itself, any `std::error::Error + Send +
/// Sync + 'static`, and `anyhow::Error` with the `anyhow` feature. Anything
/// else is one error at the return type.
///
/// # Equivalent code without the macro
///
/// Simplified (the full expansion is in the docs of the `natask-macros`
/// crate): for `#[task(queue = "emails", retries = 3)] async fn
/// send_email(mailer: State<Mailer>, to: String) -> Result<(), TaskError>`,
///
/// ```text
/// async fn send_email(mailer: State<Mailer>, to: String) -> Result<(), TaskError> { .. }
///
/// #[derive(Serialize, Deserialize)]   // + Debug and Clone when the fields have them
/// pub struct SendEmail { pub to: String }
///
/// impl SendEmail {
///     pub fn new(to: String) -> Self { SendEmail { to } }
///     pub async fn enqueue(&self, client: &Client) -> Result<Enqueued, EnqueueError> {
///         client.enqueue(self).await
///     }
/// }
///
/// fn handler(inv: Invocation<'_>) -> HandlerFuture<'_> {
///     Box::pin(async move {
///         let payload: SendEmail = decode(inv.payload)?;
///         let mailer = inv.state::<Mailer>()?;
///         send_email(mailer, payload.to).await.into_task_result()
///     })
/// }
///
/// impl Task for SendEmail {
///     const NAME: &'static str = "send_email";
///     const QUEUE: &'static str = "emails";
///     const ENTRY: TaskEntry = TaskEntry {
///         name: "send_email", queue: "emails", retries: Some(3), timeout_ms: None,
///         backoff: None, cron: None, time_zone: None, handler,
///         states: &[StateKey::of::<Mailer>()], ..
///     };
/// }
///
/// #[distributed_slice(TASKS)]
/// static ENTRY: TaskEntry = SendEmail::ENTRY;
/// ```
///
/// # A common mistake
///
/// A borrowed payload parameter cannot be serialised into a message that a
/// worker reads later:
///
/// ```compile_fail
/// #[natask_runtime::task]
/// async fn greet(name: &str) {}
/// ```
///
/// ```text
/// error: payload parameters must be owned types, because the payload is serialised into the task message; use an owned type such as `String` instead of `&str`
///  --> src/lib.rs:2:22
///   |
/// 2 | async fn greet(name: &str) {}
///   |                      ^^^^
/// ```
#[proc_macro_attribute]
pub fn task(args: TokenStream, input: TokenStream) -> TokenStream {
    on_item(input, |item| match item {
        syn::Item::Fn(item) => task_fn(args.into(), item),
        other => not_for(&other, attr::Macro::Task),
    })
}

// The docs of `#[event]` and `#[subscribe]` live in `docs/events.md` too.
/// Declares an integration event on a struct: every service that
/// subscribes to it (`#[subscribe]`) handles each event once.
///
/// ```no_run
/// use natask_runtime::{event, Client};
///
/// /// An order was placed.
/// #[event(retention = "30d")]
/// pub struct OrderPlaced {
///     pub order: u64,
///     pub total_cents: u64,
/// }
///
/// # async fn demo(client: Client) -> Result<(), natask_runtime::PublishError> {
/// let published = OrderPlaced { order: 7, total_cents: 1250 }.publish(&client).await?;
/// println!("event {}", published.id);
/// # Ok(()) }
/// ```
///
/// The struct gets `Serialize`, `Deserialize`, `Debug` and `Clone` (do not
/// derive them yourself; `#[serde(..)]` attributes on the struct and its
/// fields apply), an `Event` impl with its name and retention, and
/// `publish(&client)`, which stores it in the event's stream
/// `<PREFIX>_EV_<name>` (created on first publish) under the subject
/// `<prefix>.ev.<name>`. See `docs/events.md`.
///
/// # Arguments
///
/// ## `name = "order_placed"`
/// The event's wire name: its stream, subject and `Natask-Event` header.
/// Default: the struct's name in snake_case. 1 to 64 ASCII letters,
/// digits, `_` or `-`, checked at compile time. Two events of one name in
/// a crate are a compile error.
///
/// ## `retention = "7d"`
/// How long the stream keeps an event (its `max_age`): a subscription
/// created later with `start = "all"` sees the events still kept, and a
/// subscription that falls further behind loses the oldest. A whole
/// number followed by `ms`, `s`, `m`, `h` or `d`, at least `1s`. Default
/// 7 days. Applied when the stream is created.
///
/// ## `crate = ::my::natask`
/// Where `natask_runtime` is, for crates that re-export it.
///
/// # Equivalent code without the macro
///
/// ```text
/// #[derive(Serialize, Deserialize, Debug, Clone)]
/// pub struct OrderPlaced { pub order: u64, pub total_cents: u64 }
///
/// impl natask_runtime::Event for OrderPlaced {
///     const NAME: &'static str = "order_placed";
///     const RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;
/// }
///
/// impl OrderPlaced {
///     pub async fn publish(&self, client: &Client) -> Result<Published, PublishError> {
///         client.publish(self).await
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    on_item(input, |item| match item {
        syn::Item::Struct(item) => event_struct(args.into(), item),
        other => not_for(&other, attr::Macro::Event),
    })
}

/// Subscribes a service to an event: an `async fn` whose one payload
/// parameter is an `#[event]` type. Every service gets every event; the
/// instances of one service share them (one durable consumer per service
/// and handler).
///
/// ```no_run
/// use natask_runtime::{event, subscribe, State, TaskError};
///
/// #[event]
/// pub struct OrderPlaced { pub order: u64 }
///
/// struct Ledger;
///
/// #[subscribe(service = "billing", retries = 5, start = "all")]
/// async fn charge(order: OrderPlaced, ledger: State<Ledger>) -> Result<(), TaskError> {
///     let _ = (order.order, &*ledger);
///     Ok(())
/// }
/// ```
///
/// A `Runtime` serves every `#[subscribe]` linked into the binary
/// (`RuntimeBuilder::services` restricts them), through the same attempt
/// pipeline as tasks: retries with backoff, timeouts, panics as failed
/// attempts, dead letters, tracing spans and metrics. `State<T>` and
/// `&TaskContext` parameters are injected as for `#[task]`. In dead
/// letters, logs and metrics the subscription `<service>__<handler>`
/// stands where a task's queue stands, and the event's name where its
/// task name stands. See `docs/events.md`.
///
/// # Arguments
///
/// ## `service = "billing"`
/// Required. The service the handler belongs to. Every instance of a
/// service shares one durable consumer per handler, so each event is
/// handled once per service; services differ by this name. 1 to 64 ASCII
/// letters, digits, `_` or `-`.
///
/// ## `name = "charge"`
/// The handler's name, default the function's: with the service it names
/// the durable consumer `<service>__<handler>`. Renaming it starts a new
/// subscription.
///
/// ## `start = "new"`
/// Where a new subscription starts reading: `"new"` (default), the events
/// published after its consumer is created; `"all"`, every event the
/// stream still holds (see `#[event(retention)]`). Applied only when the
/// consumer is created.
///
/// ## `retries = 3`
/// Retries after the first attempt (default: the runtime's, 3).
///
/// ## `timeout = "30s"`
/// Per-attempt timeout (default: the runtime's, 5 minutes).
///
/// ## `backoff = "exponential(1s, x2, max 5m)"`
/// Delay before each retry, as for `#[task]`.
///
/// ## `crate = ::my::natask`
/// Where `natask_runtime` is, for crates that re-export it.
///
/// # Equivalent code without the macro
///
/// There is none in public API: the subscriber's entry is collected at
/// link time (`natask_runtime::registry::subscribers`).
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
