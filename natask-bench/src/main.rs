//! natask's benchmarks: each scenario runs natask and a raw async-nats
//! baseline doing the same JetStream work, back to back in one process run
//! on one fresh `nats-server`, and reports both figures and their ratio.
//! Scenarios 1–4 run natask at its default settings (task tracking on) with
//! a second row for tracking off; 10 adds apalis-nats on the same server.
//!
//! ```text
//! natask-bench all [--smoke] [--out DIR]    every scenario (BENCHMARKS.md)
//! natask-bench <scenario> [--smoke]         enqueue | pipelined | process | e2e | backlog | payload | observe | tracking | taskiq | apalis
//! natask-bench fill <natask|raw> <url> <n> [bytes]  queue n tasks on a running server (for profiling)
//! natask-bench worker <natask|natask-observed|raw> <url> <n> <concurrency>   handle n of them, print rate and peak RSS
//! ```
//!
//! `--smoke` shrinks every count (N = 1,000) and skips taskiq: the
//! integration test runs it to prove the benchmarks build and run. `--out`
//! writes `results.md` and the PNG plots there. Everything talks to
//! 127.0.0.1 only, and every load loop is bounded in count and in time.

mod apalis_side;
mod child;
mod peer;
mod plot;
mod probe;
mod raw;
mod report;
mod scenarios;
mod side;
mod tasks;

use std::path::PathBuf;

use report::Report;
use scenarios::{Latencies, Sizes};

/// Data for the plots, gathered while the scenarios run.
#[derive(Default)]
pub(crate) struct Plots {
    /// (concurrency, natask at its defaults tasks/s, raw tasks/s)
    throughput: Vec<(usize, f64, f64)>,
    latencies: Vec<Latencies>,
}

const SCENARIOS: &[&str] = &[
    "enqueue",
    "pipelined",
    "process",
    "e2e",
    "backlog",
    "payload",
    "observe",
    "tracking",
    "taskiq",
    "apalis",
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("worker") => runtime.block_on(child::run(&args[1..])),
        Some("fill") => runtime.block_on(child::fill(&args[1..])),
        Some("all") => runtime.block_on(run(SCENARIOS, &args[1..])),
        Some(one) if SCENARIOS.contains(&one) => runtime.block_on(run(&[one], &args[1..])),
        _ => {
            eprintln!(
                "usage: natask-bench all|{} [--smoke] [--out DIR]",
                SCENARIOS.join("|")
            );
            std::process::exit(2);
        }
    }
}

async fn run(which: &[&str], flags: &[String]) -> anyhow::Result<()> {
    let smoke = flags.iter().any(|f| f == "--smoke");
    let out = flags
        .iter()
        .position(|f| f == "--out")
        .and_then(|i| flags.get(i + 1))
        .map(PathBuf::from);
    let sizes = if smoke { Sizes::smoke() } else { Sizes::full() };
    let mut report = Report {
        preamble: machine(),
        ..Report::default()
    };
    report.preamble.push(format!("load before: {}", load()));
    let mut plots = Plots::default();
    for &scenario in which {
        eprintln!("== {scenario}");
        let started = std::time::Instant::now();
        let rows = match scenario {
            "enqueue" => scenarios::enqueue_each(&sizes).await?,
            "pipelined" => scenarios::pipelined(&sizes).await?,
            "process" => scenarios::process(&sizes, &mut plots).await?,
            "e2e" => scenarios::e2e(&sizes, &mut plots).await?,
            "backlog" => scenarios::backlog(&sizes).await?,
            "payload" => scenarios::payload(&sizes).await?,
            "observe" => {
                let rows = scenarios::observe(&sizes).await?;
                print_rows(&rows);
                report.observed.extend(rows);
                continue;
            }
            "tracking" => {
                let rows = scenarios::tracking(&sizes).await?;
                print_rows(&rows);
                report.tracking.extend(rows);
                continue;
            }
            "apalis" => {
                let rows = scenarios::apalis(&sizes).await?;
                eprintln!("   ({:.1} s)", started.elapsed().as_secs_f64());
                print_rows(&rows);
                report.apalis.extend(rows);
                continue;
            }
            "taskiq" if smoke => {
                report
                    .skipped
                    .push("taskiq (not part of the smoke run)".to_owned());
                continue;
            }
            "taskiq" => match peer::taskiq(&sizes).await? {
                Ok(rows) => {
                    report.peers.extend(rows.iter().cloned());
                    print_rows(&rows);
                    continue;
                }
                Err(why) => {
                    eprintln!("notice: taskiq skipped: {why}");
                    report.skipped.push(format!("taskiq: {why}"));
                    continue;
                }
            },
            other => anyhow::bail!("unknown scenario `{other}`"),
        };
        eprintln!("   ({:.1} s)", started.elapsed().as_secs_f64());
        print_rows(&rows);
        report.raw.extend(rows);
    }
    report.preamble.push(format!("load after: {}", load()));
    let markdown = report.markdown();
    println!("\n{markdown}");
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("results.md"), &markdown)?;
        if !plot::load_font() {
            eprintln!("notice: no TrueType font found (set NATASK_BENCH_FONT); plots skipped");
        } else {
            if !plots.throughput.is_empty() {
                plot::throughput(&plots.throughput, &dir.join("throughput.png"))
                    .map_err(|e| anyhow::anyhow!("throughput plot: {e}"))?;
            }
            if !plots.latencies.is_empty() {
                plot::latency(&plots.latencies, &dir.join("latency.png"))
                    .map_err(|e| anyhow::anyhow!("latency plot: {e}"))?;
            }
        }
        eprintln!("== wrote {}", dir.display());
    }
    Ok(())
}

fn print_rows(rows: &[report::Row]) {
    for r in rows {
        eprintln!(
            "   {:<45} {:<40} natask {:>10} {:<8} baseline {:>10}  ratio {:.2}",
            r.scenario,
            r.metric,
            report::number(r.natask),
            r.unit,
            report::number(r.baseline),
            r.ratio()
        );
    }
}

/// Cores, memory, versions: the lines above the tables.
fn machine() -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
    let server = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    vec![
        format!(
            "machine: {cores} cores, {mem_gib:.0} GiB RAM, {}",
            std::env::consts::ARCH
        ),
        format!(
            "{server}, file storage, 127.0.0.1; async-nats {}",
            locked("async-nats").join(" and ")
        ),
        format!(
            "apalis-nats {} on apalis {} (the older async-nats)",
            locked("apalis-nats").join(", "),
            locked("apalis").join(", ")
        ),
    ]
}

/// The versions of `package` locked when this binary was built, oldest
/// first (apalis-nats brings a second async-nats).
fn locked(package: &str) -> Vec<&'static str> {
    const LOCK: &str = include_str!("../../Cargo.lock");
    let name = format!("name = \"{package}\"");
    LOCK.split("[[package]]")
        .filter(|p| p.lines().any(|l| l == name))
        .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"'))
        .collect()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
