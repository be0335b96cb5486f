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
//! Durations are a whole number followed by `ms`, `s`, `m`, `h` or `d`; the
//! factor is `x` followed by a number (`x1.5`).

use std::time::Duration;

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
}
