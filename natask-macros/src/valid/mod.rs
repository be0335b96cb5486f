//! Every rule `#[task]` enforces, and the model they resolve
//! (`crate::model::Task`). Nothing here generates code.
//!
//! Each check reports its mistakes to the `Ctxt` and resolves its part of
//! the model as well as it can; [`validate`] runs them all, in the order
//! their errors are listed, and returns the model only if nothing at all
//! was reported, so no part resolved around a mistake is ever expanded.

mod event;
mod item;
mod name;
mod params;
mod policy;
mod schedule;
mod unique;

pub(crate) use event::{event, subscriber};
pub(crate) use item::not_a_fn;

use crate::ast::TaskFn;
use crate::attr::{Macro, TaskArgs};
use crate::ctxt::Ctxt;
use crate::model::Task;

/// The task, resolved; `None` if `cx` holds any mistake, in the arguments
/// (parsed before) or in the function.
pub(crate) fn validate(cx: &mut Ctxt, args: &TaskArgs, f: &TaskFn) -> Option<Task> {
    let sig = &f.item.sig;
    item::check_signature(cx, sig, Macro::Task);
    let (fields, handler_args) = params::resolve(cx, f);
    let retries = policy::retries(cx, args.retries.as_ref());
    let timeout_ms = policy::timeout_ms(cx, args.timeout_ms.as_ref());
    let backoff = policy::backoff(cx, args.backoff.as_ref());
    let (cron, time_zone) = schedule::resolve(cx, args, f);
    let unique = unique::resolve(cx, args, &fields);
    let (name, name_span) = name::task_name(cx, args, &sig.ident);
    let queue = name::queue(cx, args);
    let (version, upgrade) = policy::version(cx, args);
    if cx.has_errors() {
        return None;
    }
    Some(Task {
        item: f.item.clone(),
        vis: f.item.vis.clone(),
        fn_ident: sig.ident.clone(),
        docs: f
            .item
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        payload: name::payload(args, &sig.ident),
        name,
        name_span,
        queue,
        fields,
        args: handler_args,
        retries,
        timeout_ms,
        backoff,
        cron,
        time_zone,
        unique,
        version,
        upgrade,
        crate_path: event::crate_path(args),
        output: match &sig.output {
            syn::ReturnType::Type(_, ty) => Some((**ty).clone()),
            syn::ReturnType::Default => None,
        },
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use quote::quote;

    /// The messages `#[task(args)] item` reports, in order.
    pub(in crate::valid) fn errors(
        args: proc_macro2::TokenStream,
        item: proc_macro2::TokenStream,
    ) -> Vec<String> {
        let mut cx = Ctxt::default();
        let args = TaskArgs::parse(&mut cx, args);
        let f = TaskFn::from_item(syn::parse2(item).unwrap());
        let task = validate(&mut cx, &args, &f);
        let errors: Vec<String> = cx
            .check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(task.is_some(), errors.is_empty(), "{errors:?}");
        errors
    }

    #[test]
    fn a_good_task_passes() {
        assert!(errors(
            quote!(queue = "emails"),
            quote!(
                async fn send_email(m: State<M>, c: &TaskContext, to: String) {}
            )
        )
        .is_empty());
    }

    #[test]
    fn misuse_is_reported() {
        let e = errors(
            quote!(queue = "a.b"),
            quote!(
                fn f<T>(x: &str, y: impl Send, (a, b): (u8, u8), c: &mut TaskContext) {}
            ),
        );
        assert_eq!(e.len(), 7, "{e:#?}");
        assert!(e[0].starts_with("`#[task]` functions must be `async`"));
        assert_eq!(
            e[6],
            "the queue name `a.b` contains `.`, which separates the tokens of a NATS subject; use only ASCII letters, digits, `_` and `-`"
        );
    }

    #[test]
    fn the_model_follows_the_function() {
        let mut cx = Ctxt::default();
        let args = TaskArgs::parse(&mut cx, quote!(retries = 3, unique = "1m"));
        let f = TaskFn::from_item(
            syn::parse2(quote!(
                /// Sends.
                pub async fn r#send(
                    m: State<M>,
                    to: String,
                    ctx: &TaskContext,
                    #[serde(with = "x")] at: T,
                ) {
                }
            ))
            .unwrap(),
        );
        let task = validate(&mut cx, &args, &f).unwrap();
        assert_eq!(task.name, "send");
        assert_eq!(task.payload.to_string(), "Send");
        assert_eq!(task.queue, "default");
        assert_eq!(task.retries, Some(3));
        assert_eq!(task.docs.len(), 1);
        let fields: Vec<_> = task
            .fields
            .iter()
            .map(|f| (f.ident.to_string(), f.asserted))
            .collect();
        assert_eq!(fields, [("to".to_owned(), true), ("at".to_owned(), false)]);
        assert_eq!(task.states().count(), 1);
        assert_eq!(task.args.len(), 4);
        assert_eq!(
            task.unique.map(|u| (u.ttl_secs, u.fields.len())),
            Some((60, 2))
        );
    }
}
