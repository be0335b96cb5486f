//! The benchmarks build and run: every scenario but taskiq, at N = 1,000,
//! apalis-nats included. Timings are printed, never asserted.

use std::process::Command;
use std::time::Instant;

#[test]
fn every_scenario_runs_at_smoke_size() {
    let out = tempfile::tempdir().expect("temporary directory");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_natask-bench"))
        .args(["all", "--smoke", "--out"])
        .arg(out.path())
        .output()
        .expect("run natask-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "natask-bench failed:\n{stderr}\n{stdout}"
    );
    for scenario in [
        "1 enqueue",
        "2 enqueue",
        "3 processing",
        "4 end to end",
        "5 backlog",
        "6 payload",
        "8 tracing + metrics",
        "9 task tracking",
        "10 vs apalis-nats",
    ] {
        assert!(
            stdout.contains(scenario),
            "no `{scenario}` row in:\n{stdout}"
        );
    }
    // The headline runs natask at its defaults and with tracking off.
    for scenario in [
        "| 1 enqueue",
        "| 2 enqueue",
        "| 3 processing",
        "| 4 end to end",
    ] {
        for setting in [", defaults |", ", tracking off |"] {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(scenario) && l.contains(setting)),
                "no `{scenario}` row with `{setting}` in:\n{stdout}"
            );
        }
    }
    for row in [
        "| 10 vs apalis-nats: enqueue, awaiting each |",
        "| 10 vs apalis-nats: enqueue, pipelined |",
    ] {
        assert!(stdout.contains(row), "no `{row}` row in:\n{stdout}");
    }
    for c in [1, 64, 256] {
        let row =
            format!("| 10 vs apalis-nats: processing a backlog | N = 1000, concurrency {c} |");
        assert!(stdout.contains(&row), "no `{row}` row in:\n{stdout}");
    }
    assert!(stdout.contains("skipped: taskiq"), "{stdout}");
    let results =
        std::fs::read_to_string(out.path().join("results.md")).expect("results.md written");
    assert!(results.contains("| natask |"), "{results}");
    eprintln!("smoke run took {:?}", started.elapsed());
}
