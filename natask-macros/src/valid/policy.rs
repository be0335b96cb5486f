//! The retry policy: how often a task is retried, how long an attempt may
//! run and how long it waits before each retry.

use natask_core::retry::BackoffSpec;

use crate::attr::{Spanned, TaskArgs, MAX_RETRIES};
use crate::ctxt::Ctxt;

/// Longest timeout or backoff delay: 7 days. Anything longer is a typo, or a
/// schedule rather than a retry policy.
const MAX_DURATION_MS: u64 = 7 * 86_400_000;

/// `retries = n`, at most `MAX_RETRIES`.
pub(super) fn retries(cx: &mut Ctxt, retries: Option<&Spanned<u64>>) -> Option<u32> {
    let r = retries?;
    let n = u32::try_from(r.value).ok().filter(|n| *n <= MAX_RETRIES);
    if n.is_none() {
        cx.error_at(
            r.span,
            format!(
                "`retries = {}` is more than the {MAX_RETRIES} retries natask allows; \
                 a task that needs more is better snoozed (`TaskError::snooze`) or re-enqueued",
                r.value
            ),
        );
    }
    n
}

/// `version = n` (1 or more, 1 when not given) and `upgrade = path`,
/// which needs a version above 1: there is nothing older to upgrade.
pub(super) fn version(cx: &mut Ctxt, args: &TaskArgs) -> (u32, Option<syn::Path>) {
    let version = match &args.version {
        None => 1,
        Some(v) => match u32::try_from(v.value).ok().filter(|n| *n >= 1) {
            Some(n) => n,
            None => {
                cx.error_at(
                    v.span,
                    format!(
                        "`version = {}` is not a payload version; versions count from 1 \
                         (the first, which needs no `version`): write `version = 2` for the second",
                        v.value
                    ),
                );
                1
            }
        },
    };
    if let (Some(upgrade), 1) = (&args.upgrade, version) {
        if args.version.as_ref().is_none_or(|v| v.value == 1) {
            cx.error_spanned_by(
                upgrade,
                "`upgrade` turns payloads of older versions into this one, so it needs \
                 `version = 2` or more; add `version = 2`",
            );
        }
    }
    (version, args.upgrade.clone())
}

/// `timeout = ".."`: more than zero, at most `MAX_DURATION_MS`.
pub(super) fn timeout_ms(cx: &mut Ctxt, timeout: Option<&Spanned<u64>>) -> Option<u64> {
    let t = timeout?;
    if t.value == 0 {
        cx.error_at(
            t.span,
            "a timeout of zero would fail every attempt; give a positive duration such as `\"30s\"`",
        );
    } else if t.value > MAX_DURATION_MS {
        cx.error_at(
            t.span,
            "this timeout is longer than the 7 days natask allows; split the work into smaller tasks",
        );
    }
    Some(t.value)
}

/// `backoff = ".."`: the ranges its grammar leaves open.
pub(super) fn backoff(
    cx: &mut Ctxt,
    backoff: Option<&Spanned<BackoffSpec>>,
) -> Option<BackoffSpec> {
    let b = backoff?;
    let delays: Vec<u64> = match &b.value {
        BackoffSpec::Fixed { delay_ms } => vec![*delay_ms],
        BackoffSpec::Exponential {
            base_ms,
            factor,
            max_ms,
        } => {
            if *factor < 1.0 {
                cx.error_at(
                    b.span,
                    format!(
                        "a backoff factor of `x{factor}` would shrink the delay; use a factor of at least `x1`"
                    ),
                );
            } else if *factor > 100.0 {
                cx.error_at(
                    b.span,
                    format!(
                        "a backoff factor of `x{factor}` reaches the cap after one retry; use a factor from `x1` to `x100`"
                    ),
                );
            }
            if max_ms < base_ms {
                cx.error_at(
                    b.span,
                    "the backoff cap is smaller than the first delay; write a `max` at least as long as the first delay",
                );
            }
            vec![*base_ms, *max_ms]
        }
        BackoffSpec::List(delays) => {
            if delays.is_empty() {
                cx.error_at(
                    b.span,
                    "a `list` backoff needs at least one delay; write e.g. `list(1s, 5s, 30s)`",
                );
            }
            delays.clone()
        }
    };
    if delays.iter().any(|d| *d > MAX_DURATION_MS) {
        cx.error_at(
            b.span,
            "a backoff delay is longer than the 7 days natask allows; shorten it",
        );
    }
    Some(b.value.clone())
}

#[cfg(test)]
mod tests {
    use super::super::tests::errors;
    use quote::quote;

    #[test]
    fn policy_ranges() {
        let e = errors(
            quote!(retries = 1001, timeout = "0s"),
            quote!(
                async fn f() {}
            ),
        );
        assert!(e[0].starts_with("`retries = 1001` is more than the 1000 retries"));
        assert!(e[1].starts_with("a timeout of zero"));
        for (backoff, message) in [
            (
                "exponential(1s, x0.5, max 1m)",
                "a backoff factor of `x0.5` would shrink the delay",
            ),
            (
                "exponential(1m, x2, max 1s)",
                "the backoff cap is smaller than the first delay",
            ),
            ("list()", "a `list` backoff needs at least one delay"),
            ("fixed(8d)", "a backoff delay is longer than the 7 days"),
        ] {
            let e = errors(
                quote!(backoff = #backoff),
                quote!(
                    async fn f() {}
                ),
            );
            assert!(
                e.len() == 1 && e[0].starts_with(message),
                "{backoff}: {e:?}"
            );
        }
        assert!(errors(
            quote!(backoff = "list(0s, 1s)"),
            quote!(
                async fn f() {}
            )
        )
        .is_empty());
    }
}
