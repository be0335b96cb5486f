//! natask against its peers on one server: the natask half of scenario 7
//! (taskiq-nats runs in Python, `crate::peer`), and scenario 10,
//! apalis-nats, with raw async-nats in the same run for scale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::measure::{self, Rate};
use super::{natask_jobs, pad, per_s, Setup, Sizes, DEFAULT_SIZE};
use crate::probe::Probe;
use crate::report::{self, Row};
use crate::side::{self, Worker};

/// 7, natask's half: the same shape as the taskiq run (each enqueue
/// awaited, then 100 handlers), on the same server.
pub(crate) async fn natask_like_taskiq(
    url: &str,
    n: u64,
    cap: Duration,
) -> anyhow::Result<(f64, f64)> {
    let client = side::connect_untracked(url).await?;
    let pad = pad(DEFAULT_SIZE);
    let t = Instant::now();
    let sent = side::enqueue_each(&client, natask_jobs(n, &pad), t + cap).await?;
    let enqueue = per_s(sent, t.elapsed());
    let probe = Arc::new(Probe::new(Instant::now(), sent, false));
    let t = Instant::now();
    let worker = Worker::start(&client, Arc::clone(&probe), 100).await?;
    probe.wait(cap).await;
    let process = per_s(probe.handled(), t.elapsed());
    worker.stop().await?;
    Ok((enqueue, process))
}

/// apalis-nats' `push` returns before JetStream stores the task.
const UNACKED: &str =
    "apalis timed until its stream holds every task: its `push` does not await JetStream's ack";

/// The figures of one row of scenario 10.
struct Versus {
    natask: Rate,
    apalis: Rate,
    raw: Rate,
}

impl Versus {
    /// natask at its defaults against apalis-nats, with raw's figure, both
    /// ratios to it and what the time cap cut in the note.
    fn row(&self, scenario: &'static str, metric: &str, cap: Duration) -> Row {
        let raw = self.raw.per_s;
        let note = format!(
            "raw {} tasks/s: natask / raw {:.2}, apalis / raw {:.2}",
            report::number(raw),
            self.natask.per_s / raw,
            self.apalis.per_s / raw
        );
        let cuts = measure::cut_note(
            [
                ("natask", self.natask),
                ("apalis", self.apalis),
                ("raw", self.raw),
            ],
            cap,
        );
        Row::new(
            scenario,
            metric,
            "tasks/s",
            self.natask.per_s,
            self.apalis.per_s,
        )
        .note(note)
        .also(cuts)
    }
}

/// 10: apalis-nats (its defaults, a durable pull consumer) against natask
/// at its defaults and raw async-nats, on one server: enqueue awaiting
/// each, enqueue pipelined, and processing a backlog at each concurrency.
pub(crate) async fn apalis(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let s = Setup::new().await?;
    let pad = pad(DEFAULT_SIZE);
    let (n, cap) = (sizes.apalis, sizes.cap);
    let metric = format!("N = {n}");
    let mut rows = Vec::new();

    let each = Versus {
        natask: measure::natask_enqueue_each(&s, &s.client, n, &pad, cap).await?,
        apalis: measure::apalis_enqueue(&s, n, &pad, false, cap).await?,
        raw: measure::raw_publish_each(&s, n, &pad, cap).await?,
    };
    rows.push(
        each.row("10 vs apalis-nats: enqueue, awaiting each", &metric, cap)
            .also(UNACKED),
    );

    let pipelined = Versus {
        natask: measure::natask_pipelined(&s, &s.client, n, &pad).await?,
        apalis: measure::apalis_enqueue(&s, n, &pad, true, cap).await?,
        raw: measure::raw_pipelined(&s, n, &pad, cap).await?,
    };
    rows.push(
        pipelined
            .row(
                "10 vs apalis-nats: enqueue, pipelined",
                &format!("{metric}; natask 256 in flight, apalis `push_bulk` of 256"),
                cap,
            )
            .also(UNACKED),
    );

    for &c in &sizes.concurrencies {
        let processing = Versus {
            natask: measure::natask_process(&s, &s.client, n, &pad, c, cap).await?,
            apalis: measure::apalis_process(&s, n, &pad, c, cap).await?,
            raw: measure::raw_process(&s, n, &pad, c, cap).await?,
        };
        rows.push(processing.row(
            "10 vs apalis-nats: processing a backlog",
            &format!("{metric}, concurrency {c}"),
            cap,
        ));
    }
    Ok(rows)
}
