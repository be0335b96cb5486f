//! Scenarios 1–4, the headline: natask as a new user gets it (default
//! settings, task tracking on) against raw async-nats, each with a second
//! row for natask with tracking off, all three on one server.

use super::measure::{self, percentile_ms};
use super::{pad, Setup, Sizes, DEFAULT_SIZE};
use crate::report::{Row, Target};
use crate::scenarios::Latencies;
use crate::Plots;

/// One headline figure of natask at its defaults, natask with tracking
/// off, and raw.
struct Headline {
    defaults: f64,
    untracked: f64,
    raw: f64,
}

impl Headline {
    /// Its two rows against the same raw figure: natask at its defaults,
    /// which carries the target (issue 15's goals are for the defaults) and
    /// the ratio tracking on / off, then natask with tracking off.
    fn rows(
        &self,
        scenario: &'static str,
        metric: &str,
        unit: &'static str,
        target: Option<Target>,
    ) -> [Row; 2] {
        let mut defaults = Row::new(
            scenario,
            format!("{metric}, defaults"),
            unit,
            self.defaults,
            self.raw,
        )
        .note(format!(
            "tracking on / off {:.2}",
            self.defaults / self.untracked
        ));
        if let Some(target) = target {
            defaults = defaults.target(target);
        }
        let untracked = Row::new(
            scenario,
            format!("{metric}, tracking off"),
            unit,
            self.untracked,
            self.raw,
        );
        [defaults, untracked]
    }
}

/// 1: one producer awaiting each ack.
pub(crate) async fn enqueue_each(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let (n, cap) = (sizes.enqueue_each, sizes.cap);
    let figures = Headline {
        defaults: measure::natask_enqueue_each(&s, &s.client, n, &pad, cap)
            .await?
            .per_s,
        untracked: measure::natask_enqueue_each(&s, &s.untracked, n, &pad, cap)
            .await?
            .per_s,
        raw: measure::raw_publish_each(&s, n, &pad, cap).await?.per_s,
    };
    Ok(figures
        .rows(
            "1 enqueue, awaiting each ack",
            &format!("N = {n}"),
            "tasks/s",
            Some(Target::AtLeast(0.90)),
        )
        .into())
}

/// 2: many publishes in flight.
pub(crate) async fn pipelined(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let n = sizes.pipelined;
    let figures = Headline {
        defaults: measure::natask_pipelined(&s, &s.client, n, &pad)
            .await?
            .per_s,
        untracked: measure::natask_pipelined(&s, &s.untracked, n, &pad)
            .await?
            .per_s,
        raw: measure::raw_pipelined(&s, n, &pad, sizes.cap).await?.per_s,
    };
    Ok(figures
        .rows(
            "2 enqueue, pipelined (256 in flight)",
            &format!("N = {n}"),
            "tasks/s",
            Some(Target::AtLeast(0.90)),
        )
        .into())
}

/// 3: processing a pre-filled backlog at several concurrencies.
pub(crate) async fn process(sizes: &Sizes, plots: &mut Plots) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let (n, cap) = (sizes.backlog, sizes.cap);
    let mut rows = Vec::new();
    for &c in &sizes.concurrencies {
        let defaults = measure::natask_process(&s, &s.client, n, &pad, c, cap).await?;
        let untracked = measure::natask_process(&s, &s.untracked, n, &pad, c, cap).await?;
        let raw = measure::raw_process(&s, n, &pad, c, cap).await?;
        plots.throughput.push((c, defaults.per_s, raw.per_s));
        let target = match c {
            // The raw consumer keeps its usual prefetch; natask pulls one at a time.
            1 => Some(Target::AtLeast(0.50)),
            64 | 256 => Some(Target::AtLeast(0.80)),
            _ => None,
        };
        let figures = Headline {
            defaults: defaults.per_s,
            untracked: untracked.per_s,
            raw: raw.per_s,
        };
        let [with_defaults, with_tracking_off] = figures.rows(
            "3 processing a backlog",
            &format!("N = {n}, concurrency {c}"),
            "tasks/s",
            target,
        );
        rows.push(with_defaults.also(measure::cut_note([("natask", defaults), ("raw", raw)], cap)));
        rows.push(with_tracking_off.also(measure::cut_note(
            [("natask", untracked), ("raw", raw)],
            cap,
        )));
    }
    Ok(rows)
}

/// 4: producer and worker together at a steady offered rate.
pub(crate) async fn e2e(sizes: &Sizes, plots: &mut Plots) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let (seconds, cap) = (sizes.e2e_seconds, sizes.cap);
    let concurrency = 64;
    let mut rows = Vec::new();
    for &rate in &sizes.e2e_rates {
        let defaults =
            measure::natask_e2e(&s, &s.client, rate, seconds, concurrency, &pad, cap).await?;
        let untracked =
            measure::natask_e2e(&s, &s.untracked, rate, seconds, concurrency, &pad, cap).await?;
        let raw = measure::raw_e2e(&s, rate, seconds, concurrency, &pad, cap).await?;
        let samples = format!(
            "{} / {} / {} samples (defaults / tracking off / raw)",
            defaults.len(),
            untracked.len(),
            raw.len()
        );
        for (name, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
            let figures = Headline {
                defaults: percentile_ms(&defaults, p),
                untracked: percentile_ms(&untracked, p),
                raw: percentile_ms(&raw, p),
            };
            let target = (name == "p50").then_some(Target::AtMost(1.25));
            rows.extend(
                figures
                    .rows(
                        "4 end to end, enqueue → handler start",
                        &format!("{rate}/s offered, {name}"),
                        "ms",
                        target,
                    )
                    .map(|row| row.also(&samples)),
            );
        }
        plots.latencies.push(Latencies {
            rate,
            natask: defaults,
            raw,
        });
    }
    Ok(rows)
}
