//! Results: rows of natask against a baseline, printed and written as Markdown.

use std::fmt::Write as _;

/// What a row's target asks of the ratio natask / baseline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// The ratio must be at least this (throughput).
    AtLeast(f64),
    /// The ratio must be at most this (latency, cost).
    AtMost(f64),
}

/// One measurement of natask and its baseline, from the same run.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) metric: String,
    pub(crate) unit: &'static str,
    pub(crate) natask: f64,
    pub(crate) baseline: f64,
    pub(crate) target: Option<Target>,
    /// The target applies to the natask figure itself, not to the ratio.
    pub(crate) target_on_natask: bool,
    pub(crate) note: String,
}

impl Row {
    pub(crate) fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
        natask: f64,
        baseline: f64,
    ) -> Row {
        Row {
            scenario,
            metric: metric.into(),
            unit,
            natask,
            baseline,
            target: None,
            target_on_natask: false,
            note: String::new(),
        }
    }

    pub(crate) fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    /// A target on the natask figure itself (e.g. memory), not the ratio.
    pub(crate) fn natask_target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self.target_on_natask = true;
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// Adds `note` after the row's note.
    pub(crate) fn also(mut self, note: impl AsRef<str>) -> Row {
        let note = note.as_ref();
        if !note.is_empty() && !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(note);
        self
    }

    pub(crate) fn ratio(&self) -> f64 {
        if self.baseline == 0.0 {
            f64::NAN
        } else {
            self.natask / self.baseline
        }
    }

    fn verdict(&self) -> String {
        let r = if self.target_on_natask {
            self.natask
        } else {
            self.ratio()
        };
        let of = if self.target_on_natask { "natask " } else { "" };
        match self.target {
            None => String::new(),
            Some(Target::AtLeast(t)) => {
                format!("{of}≥ {t:.2} {}", if r >= t { "met" } else { "**missed**" })
            }
            Some(Target::AtMost(t)) => {
                format!("{of}≤ {t:.2} {}", if r <= t { "met" } else { "**missed**" })
            }
        }
    }
}

/// Every row of a run, split by baseline.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// natask against raw async-nats.
    pub(crate) raw: Vec<Row>,
    /// natask against taskiq-nats.
    pub(crate) peers: Vec<Row>,
    /// natask at its defaults against apalis-nats.
    pub(crate) apalis: Vec<Row>,
    /// natask with tracing and metrics on against natask with them off.
    pub(crate) observed: Vec<Row>,
    /// natask with task tracking on, against off.
    pub(crate) tracking: Vec<Row>,
    /// Lines printed above the tables (machine, versions, load).
    pub(crate) preamble: Vec<String>,
    /// Scenarios that could not run, and why.
    pub(crate) skipped: Vec<String>,
}

pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        "–".to_owned()
    } else if v.abs() >= 100.0 {
        let s = format!("{:.0}", v);
        // thousands separators
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn table(out: &mut String, rows: &[Row], baseline: &str) {
    let _ = writeln!(
        out,
        "| scenario | metric | unit | natask | {baseline} | natask / {baseline} | target | note |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            r.scenario,
            r.metric,
            r.unit,
            number(r.natask),
            number(r.baseline),
            r.ratio(),
            r.verdict(),
            r.note
        );
    }
}

impl Report {
    /// The whole report as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        for line in &self.preamble {
            let _ = writeln!(out, "{line}  ");
        }
        if !self.raw.is_empty() {
            out.push_str("\n### natask against raw async-nats (same server, same run)\n\n");
            table(&mut out, &self.raw, "raw");
        }
        if !self.peers.is_empty() {
            out.push_str("\n### natask against taskiq-nats (same server, same run)\n\n");
            table(&mut out, &self.peers, "taskiq");
        }
        if !self.apalis.is_empty() {
            out.push_str(
                "\n### natask (default settings) against apalis-nats (same server, same run)\n\n",
            );
            table(&mut out, &self.apalis, "apalis");
        }
        if !self.observed.is_empty() {
            out.push_str(
                "\n### natask with tracing and metrics on, against off (same server, same run)\n\n",
            );
            table(&mut out, &self.observed, "off");
        }
        if !self.tracking.is_empty() {
            out.push_str(
                "\n### natask with task tracking on (the default), against off (same server, same run)\n\n",
            );
            table(&mut out, &self.tracking, "off");
        }
        for s in &self.skipped {
            let _ = writeln!(out, "\nskipped: {s}");
        }
        out
    }
}
