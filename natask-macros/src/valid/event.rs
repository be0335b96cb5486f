//! The rules of `#[event]` and `#[subscribe]`, reusing those of `#[task]`
//! (names, durations, retries, backoff, the function and its parameters).

use natask_core::Start;
use proc_macro2::Span;
use syn::ItemStruct;

use super::{item, name, params, policy};
use crate::ast::TaskFn;
use crate::attr::{Macro, TaskArgs};
use crate::ctxt::Ctxt;
use crate::model::{Arg, Event, Subscriber, Task};

/// The event, resolved; `None` if `cx` holds any mistake.
pub(crate) fn event(cx: &mut Ctxt, args: &TaskArgs, item: &ItemStruct) -> Option<Event> {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &item.generics,
            "`#[event]` structs cannot be generic: an event's stream holds one concrete type; \
             replace the type parameters with concrete types",
        );
    }
    let (name, name_span) = name::item_name(cx, "event name", args, &item.ident, Macro::Event);
    let retention_ms = match &args.retention_ms {
        Some(r) if r.value < 1_000 => {
            cx.error_at(
                r.span,
                "`retention` must be at least 1s; write e.g. `retention = \"7d\"`",
            );
            0
        }
        Some(r) => r.value,
        None => natask_core::event::DEFAULT_RETENTION_MS,
    };
    if cx.has_errors() {
        return None;
    }
    Some(Event {
        item: item.clone(),
        name,
        name_span,
        retention_ms,
        crate_path: crate_path(args),
    })
}

/// The subscriber, resolved; `None` if `cx` holds any mistake.
pub(crate) fn subscriber(cx: &mut Ctxt, args: &TaskArgs, f: &TaskFn) -> Option<Subscriber> {
    let sig = &f.item.sig;
    item::check_signature(cx, sig, Macro::Subscribe);
    let (fields, mut handler_args) = params::resolve(cx, f);
    match fields.as_slice() {
        [] => cx.error_spanned_by(
            &sig.ident,
            "a `#[subscribe]` function takes the event it handles as one parameter, e.g. \
             `order: OrderPlaced`; this one has none (`State<T>` and `&TaskContext` are injected, not events)",
        ),
        [_] => {}
        [_, second, ..] => cx.error_spanned_by(
            &second.ident,
            "a `#[subscribe]` function takes exactly one event; this is a second payload parameter \
             (only `State<T>` and `&TaskContext` may come beside the event): subscribe to each event with its own function",
        ),
    }
    for arg in &mut handler_args {
        if matches!(arg, Arg::Payload(_)) {
            *arg = Arg::Event;
        }
    }
    let retries = policy::retries(cx, args.retries.as_ref());
    let timeout_ms = policy::timeout_ms(cx, args.timeout_ms.as_ref());
    let backoff = policy::backoff(cx, args.backoff.as_ref());
    let service = match &args.service {
        Some(s) => {
            name::check_name(cx, "service name", &s.value, s.span, None);
            Some((s.value.clone(), s.span))
        }
        None => {
            cx.error_at(
                Span::call_site(),
                "`#[subscribe]` needs the service the handler belongs to; write \
                 `#[subscribe(service = \"billing\")]` (every instance of a service shares its events)",
            );
            None
        }
    };
    let start = start(cx, args);
    let (handler, handler_span) =
        name::item_name(cx, "handler name", args, &sig.ident, Macro::Subscribe);
    if cx.has_errors() {
        return None;
    }
    let (service, service_span) = service?;
    let subscription = natask_core::wire::Names::subscription(&service, &handler);
    // Service and handler are valid names, so only the length can fail.
    if natask_core::name::check(&subscription).is_err() {
        cx.error_at(
            service_span,
            format!(
                "the subscription `{subscription}` (`<service>__<handler>`, the name of its consumer) is {} bytes long; \
                 at most {} are allowed, so shorten the service or the handler name (`name = \"...\"`)",
                subscription.len(),
                natask_core::name::MAX_LEN
            ),
        );
        return None;
    }
    let event = fields.into_iter().next()?.ty;
    let task = Task {
        item: f.item.clone(),
        vis: f.item.vis.clone(),
        fn_ident: sig.ident.clone(),
        docs: Vec::new(),
        payload: syn::Ident::new("__NataskEvent", Span::call_site()),
        name: handler,
        name_span: handler_span,
        queue: subscription,
        fields: Vec::new(),
        args: handler_args,
        retries,
        timeout_ms,
        backoff,
        cron: None,
        time_zone: None,
        unique: None,
        version: 1,
        upgrade: None,
        crate_path: crate_path(args),
        output: match &sig.output {
            syn::ReturnType::Type(_, ty) => Some((**ty).clone()),
            syn::ReturnType::Default => None,
        },
    };
    Some(Subscriber {
        task,
        event,
        service,
        start: start.unwrap_or(Start::New),
    })
}

/// `start = "new"` or `"all"`.
fn start(cx: &mut Ctxt, args: &TaskArgs) -> Option<Start> {
    let lit = args.start.as_ref()?;
    let value = lit.value();
    let start = Start::parse(&value);
    if start.is_none() {
        cx.error_spanned_by(
            lit,
            format!(
                "`start = \"{}\"` is not where a subscription starts; write `start = \"new\"` \
                 (events published from its creation on) or `start = \"all\"` (every event its stream still holds)",
                value.escape_debug()
            ),
        );
    }
    start
}

pub(super) fn crate_path(args: &TaskArgs) -> syn::Path {
    args.crate_path
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::natask_runtime))
}
