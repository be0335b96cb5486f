//! When a failed task runs again.
//!
//! The grammar `#[task(backoff = "...")]` accepts (checked at compile time):
//!
//! | form | meaning |
//! |---|---|
//! | `"fixed(5s)"` | always wait 5 s |
//! | `"exponential(500ms, x2, max 1m)"` | 500 ms, then ×2 per attempt, at most 1 min; ±20 % jitter |
//! | `"list(1s, 5s, 30s)"` | 1 s, 5 s, then 30 s for every later retry |
//!
//! Durations are a whole number followed by `ms`, `s`, `m`, `h` or `d`
//! ([`crate::duration`]); the factor is `x` followed by a number (`x1.5`).
//! [`parse_backoff`] reads it.

use std::fmt;
use std::time::Duration;

use crate::duration;

/// Jitter applied to exponential backoff: each delay is scaled by a factor
/// in `1 ± JITTER`, derived from the task id, so tasks failing together do
/// not retry in lockstep.
pub const JITTER: f64 = 0.2;

/// A retry delay policy. Built by `#[task(backoff = ...)]` or by hand.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// `base × factor^(retry - 1)`, capped, with jitter.
    Exponential {
        /// Delay before the first retry, in milliseconds.
        base_ms: u64,
        /// Growth per retry (at least 1).
        factor: f64,
        /// Cap, in milliseconds.
        max_ms: u64,
    },
    /// Delays per retry; the last one repeats.
    List(&'static [u64]),
}

impl Backoff {
    /// The default: `exponential(1s, x2, max 5m)`.
    pub const DEFAULT: Backoff = Backoff::Exponential {
        base_ms: 1_000,
        factor: 2.0,
        max_ms: 300_000,
    };

    /// A fixed delay.
    pub const fn fixed(delay: Duration) -> Backoff {
        Backoff::Fixed {
            delay_ms: delay.as_millis() as u64,
        }
    }

    /// Exponential backoff from `base`, multiplied by `factor` per retry, at most `max`.
    pub const fn exponential(base: Duration, factor: f64, max: Duration) -> Backoff {
        Backoff::Exponential {
            base_ms: base.as_millis() as u64,
            factor,
            max_ms: max.as_millis() as u64,
        }
    }

    /// The delay before the retry that follows failed attempt `attempt`
    /// (1-based). `seed` drives the jitter; the runtime passes the task id.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let retry = attempt.max(1) - 1;
        match *self {
            Backoff::Fixed { delay_ms } => Duration::from_millis(delay_ms),
            Backoff::List(delays) => {
                let i = (retry as usize).min(delays.len().saturating_sub(1));
                Duration::from_millis(delays.get(i).copied().unwrap_or(0))
            }
            Backoff::Exponential {
                base_ms,
                factor,
                max_ms,
            } => {
                let raw = base_ms as f64 * factor.max(1.0).powi(retry.min(1000) as i32);
                let capped = raw.min(max_ms as f64);
                // splitmix64 of seed and attempt: cheap, well spread
                let mut z = seed ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
                let scaled = capped * (1.0 - JITTER + 2.0 * JITTER * unit);
                Duration::from_millis(scaled.round() as u64)
            }
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// How each form is written, for the messages of [`BackoffSyntaxError`].
const FORMS: &str = "write `fixed(5s)`, `exponential(500ms, x2, max 1m)` or `list(1s, 5s, 30s)`";

/// A backoff policy as written in the grammar above, parsed: the owned
/// counterpart of [`Backoff`] (whose `List` borrows `'static` delays), for
/// code that reads the grammar rather than building a policy by hand.
///
/// Ranges are not the grammar's: a factor below `x1`, a cap shorter than the
/// first delay or an empty `list()` parse; `#[task]` refuses them.
/// Exhaustive, unlike [`Backoff`]: whoever reads the grammar must handle
/// every form it can produce.
#[derive(Debug, Clone, PartialEq)]
pub enum BackoffSpec {
    /// `fixed(5s)`.
    Fixed {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// `exponential(500ms, x2, max 1m)`.
    Exponential {
        /// Delay before the first retry, in milliseconds.
        base_ms: u64,
        /// Growth per retry.
        factor: f64,
        /// Cap, in milliseconds.
        max_ms: u64,
    },
    /// `list(1s, 5s, 30s)`: delays per retry, in milliseconds.
    List(Vec<u64>),
}

/// A backoff policy [`parse_backoff`] refuses; its message says what to
/// write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackoffSyntaxError {
    /// Not a form followed by its arguments in parentheses.
    Malformed {
        /// The policy as written.
        text: String,
    },
    /// A form other than `fixed`, `exponential` and `list`.
    UnknownForm {
        /// The form as written.
        form: String,
        /// The form it most likely misspells.
        suggestion: Option<&'static str>,
    },
    /// `fixed` with other than one delay.
    FixedArity {
        /// The policy as written.
        text: String,
    },
    /// `exponential` with other than a first delay, a factor and a cap.
    ExponentialArity {
        /// The policy as written.
        text: String,
    },
    /// A delay (or the duration of the cap) that is not a duration.
    Delay {
        /// The delay as written.
        delay: String,
        /// The policy as written.
        text: String,
    },
    /// A factor that is not `x` and a finite number.
    Factor {
        /// The factor as written.
        factor: String,
        /// The policy as written.
        text: String,
    },
    /// A cap that is not `max` and a duration.
    Cap {
        /// The cap as written.
        cap: String,
        /// The policy as written.
        text: String,
    },
}

impl fmt::Display for BackoffSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackoffSyntaxError::Malformed { text } => {
                write!(f, "`{text}` is not a backoff policy; {FORMS}")
            }
            BackoffSyntaxError::UnknownForm { form, suggestion } => {
                write!(f, "`{form}` is not a backoff policy")?;
                if let Some(suggestion) = suggestion {
                    write!(f, " (did you mean `{suggestion}`?)")?;
                }
                write!(f, "; {FORMS}")
            }
            BackoffSyntaxError::FixedArity { text } => {
                write!(f, "`fixed` takes one delay; write `fixed(5s)`, not `{text}`")
            }
            BackoffSyntaxError::ExponentialArity { text } => write!(
                f,
                "`exponential` takes a first delay, a factor and a cap; \
                 write `exponential(500ms, x2, max 1m)`, not `{text}`"
            ),
            BackoffSyntaxError::Delay { delay, text } => write!(
                f,
                "`{delay}` in backoff `{text}` is not a duration; {}",
                duration::HINT
            ),
            BackoffSyntaxError::Factor { factor, text } => write!(
                f,
                "`{factor}` in backoff `{text}` is not a growth factor; \
                 write `x` and a number, e.g. `x2` or `x1.5`"
            ),
            BackoffSyntaxError::Cap { cap, text } => write!(
                f,
                "`{cap}` in backoff `{text}` is not a cap; write `max` and a duration, e.g. `max 1m`"
            ),
        }
    }
}

impl std::error::Error for BackoffSyntaxError {}

/// Parses a backoff policy in the grammar above (white space around each
/// part is allowed).
///
/// ```
/// use natask_core::retry::{parse_backoff, BackoffSpec};
///
/// assert_eq!(
///     parse_backoff("exponential(500ms, x2, max 1m)"),
///     Ok(BackoffSpec::Exponential { base_ms: 500, factor: 2.0, max_ms: 60_000 })
/// );
/// assert_eq!(
///     parse_backoff("fixd(5s)").unwrap_err().to_string(),
///     "`fixd` is not a backoff policy (did you mean `fixed`?); \
///      write `fixed(5s)`, `exponential(500ms, x2, max 1m)` or `list(1s, 5s, 30s)`"
/// );
/// ```
pub fn parse_backoff(text: &str) -> Result<BackoffSpec, BackoffSyntaxError> {
    let t = text.trim();
    let (form, rest) = t.split_at(t.find('(').unwrap_or(t.len()));
    let Some(inner) = rest
        .strip_prefix('(')
        .and_then(|r| r.trim_end().strip_suffix(')'))
    else {
        return Err(BackoffSyntaxError::Malformed {
            text: text.to_owned(),
        });
    };
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    match form.trim() {
        "fixed" => match parts.as_slice() {
            [delay] => Ok(BackoffSpec::Fixed {
                delay_ms: delay_ms(delay, text)?,
            }),
            _ => Err(BackoffSyntaxError::FixedArity {
                text: text.to_owned(),
            }),
        },
        "exponential" => parse_exponential(&parts, text),
        "list" if parts == [""] => Ok(BackoffSpec::List(Vec::new())),
        "list" => parts
            .iter()
            .map(|delay| delay_ms(delay, text))
            .collect::<Result<_, _>>()
            .map(BackoffSpec::List),
        other => Err(BackoffSyntaxError::UnknownForm {
            form: other.to_owned(),
            suggestion: crate::spelling::closest(other, ["fixed", "exponential", "list"]),
        }),
    }
}

/// The arguments of `exponential(..)`, split at the commas.
fn parse_exponential(parts: &[&str], text: &str) -> Result<BackoffSpec, BackoffSyntaxError> {
    let [base, factor, cap] = parts else {
        return Err(BackoffSyntaxError::ExponentialArity {
            text: text.to_owned(),
        });
    };
    let bad_factor = || BackoffSyntaxError::Factor {
        factor: (*factor).to_owned(),
        text: text.to_owned(),
    };
    let factor_value: f64 = factor
        .strip_prefix('x')
        .ok_or_else(bad_factor)?
        .trim()
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite())
        .ok_or_else(bad_factor)?;
    let max = cap
        .strip_prefix("max")
        .filter(|m| m.starts_with(' '))
        .ok_or_else(|| BackoffSyntaxError::Cap {
            cap: (*cap).to_owned(),
            text: text.to_owned(),
        })?;
    Ok(BackoffSpec::Exponential {
        base_ms: delay_ms(base, text)?,
        factor: factor_value,
        max_ms: delay_ms(max, text)?,
    })
}

/// One delay of the policy `text`.
fn delay_ms(delay: &str, text: &str) -> Result<u64, BackoffSyntaxError> {
    duration::parse_ms(delay).map_err(|_| BackoffSyntaxError::Delay {
        delay: delay.to_owned(),
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_list() {
        assert_eq!(
            Backoff::fixed(Duration::from_secs(5)).delay(7, 1),
            Duration::from_secs(5)
        );
        let list = Backoff::List(&[1_000, 5_000, 30_000]);
        let delays: Vec<_> = (1..=5).map(|a| list.delay(a, 0).as_secs()).collect();
        assert_eq!(delays, [1, 5, 30, 30, 30]);
        assert_eq!(Backoff::List(&[]).delay(1, 0), Duration::ZERO);
    }

    #[test]
    fn exponential_grows_is_capped_and_jittered() {
        let b = Backoff::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(60));
        for seed in [0, 1, u64::MAX, 0xdead_beef] {
            for (attempt, nominal) in [(1, 500.0), (2, 1000.0), (3, 2000.0), (20, 60_000.0)] {
                let d = b.delay(attempt, seed).as_millis() as f64;
                assert!(
                    d >= nominal * 0.8 - 1.0 && d <= nominal * 1.2 + 1.0,
                    "{attempt} {seed}: {d}"
                );
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|s| b.delay(1, s)).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
        assert!(Backoff::DEFAULT.delay(u32::MAX, 3) <= Duration::from_secs(360));
    }

    #[test]
    fn backoff_grammar() {
        assert_eq!(
            parse_backoff("fixed(5s)"),
            Ok(BackoffSpec::Fixed { delay_ms: 5_000 })
        );
        assert_eq!(
            parse_backoff(" exponential( 500ms , x1.5, max 1m ) "),
            Ok(BackoffSpec::Exponential {
                base_ms: 500,
                factor: 1.5,
                max_ms: 60_000
            })
        );
        assert_eq!(
            parse_backoff("list(1s, 5s, 30s)"),
            Ok(BackoffSpec::List(vec![1_000, 5_000, 30_000]))
        );
        assert_eq!(parse_backoff("list()"), Ok(BackoffSpec::List(vec![])));
        for (bad, message) in [
            ("5s", "`5s` is not a backoff policy; write `fixed(5s)`"),
            ("fixed(5s", "`fixed(5s` is not a backoff policy;"),
            (
                "fixed(5x)",
                "`5x` in backoff `fixed(5x)` is not a duration;",
            ),
            ("fixed(1s, 2s)", "`fixed` takes one delay;"),
            (
                "exponential(1s, 2, max 1m)",
                "`2` in backoff `exponential(1s, 2, max 1m)` is not a growth factor;",
            ),
            ("exponential(1s, xfast, max 1m)", "`xfast` in backoff"),
            (
                "exponential(1s, x2, 1m)",
                "`1m` in backoff `exponential(1s, x2, 1m)` is not a cap;",
            ),
            (
                "exponential(1s, x2)",
                "`exponential` takes a first delay, a factor and a cap;",
            ),
            ("linear(1s)", "`linear` is not a backoff policy; write"),
        ] {
            let got = parse_backoff(bad).unwrap_err().to_string();
            assert!(got.starts_with(message), "{bad}: {got}");
        }
    }
}
