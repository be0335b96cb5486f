//! `cron` and its `time_zone`: a schedule the server runs the task on.

use syn::LitStr;

use crate::ast::TaskFn;
use crate::attr::TaskArgs;
use crate::ctxt::Ctxt;

/// The schedule and its time zone, each checked with `natask_core::cron`;
/// a cron task takes no payload.
pub(super) fn resolve(
    cx: &mut Ctxt,
    args: &TaskArgs,
    f: &TaskFn,
) -> (Option<String>, Option<String>) {
    if let (Some(zone), None) = (&args.time_zone, &args.cron) {
        cx.error_spanned_by(
            zone,
            "`time_zone` says when the ticks of a `cron` task fall; it needs `cron = \"...\"` \
             (delayed tasks take an absolute time: `enqueue_at`)",
        );
    }
    if let Some(cron) = &args.cron {
        match natask_core::cron::check(&cron.value()) {
            Err(e) => cx.error_spanned_by(cron, e),
            Ok(()) => {
                if let Some(zone) = &args.time_zone {
                    if let Err(e) = natask_core::cron::check_time_zone(&cron.value(), &zone.value())
                    {
                        cx.error_spanned_by(zone, e);
                    }
                }
            }
        }
        if let Some((param, _, _)) = f.payload().next() {
            cx.error_spanned_by(
                &param.arg,
                "cron tasks take no payload: the server produces every run from one fixed schedule; \
                 remove the payload parameters (a `cron` task may take `ctx: &TaskContext` and `State<T>`)",
            );
        }
    }
    (
        args.cron.as_ref().map(LitStr::value),
        args.time_zone.as_ref().map(LitStr::value),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::errors;
    use quote::quote;

    #[test]
    fn cron_tasks_take_no_payload() {
        let e = errors(
            quote!(cron = "@hourly"),
            quote!(
                async fn f(c: &TaskContext, to: String) {}
            ),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("cron tasks take no payload"));
    }
}
