//! Scenario 7: taskiq with taskiq-nats, the peer a Python shop would pick,
//! in a venv under `target/`, on a server of its own shared with natask.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use natask_testing::NatsServer;
use serde::Deserialize;

use crate::report::Row;
use crate::scenarios::{self, Sizes, DEFAULT_SIZE};

#[derive(Debug, Deserialize)]
struct TaskiqResult {
    enqueue_per_s: f64,
    process_per_s: f64,
    handled: u64,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// The venv's python with taskiq and taskiq-nats, installing them on first
/// use; `Err` says why there is none.
async fn python() -> Result<PathBuf, String> {
    let venv = workspace().join("target").join("bench-venv");
    let python = venv.join("bin").join("python");
    let ready = |p: &PathBuf| {
        std::process::Command::new(p)
            .args(["-c", "import taskiq, taskiq_nats"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    eprintln!(
        "== installing taskiq and taskiq-nats into {}",
        venv.display()
    );
    let run = |cmd: &mut std::process::Command| cmd.status().map(|s| s.success()).unwrap_or(false);
    if !run(std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv))
    {
        return Err("python3 -m venv failed (is python3 with venv installed?)".to_owned());
    }
    if !run(std::process::Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "taskiq",
        "taskiq-nats",
    ])) {
        return Err(
            "pip install taskiq taskiq-nats failed (is pip available and PyPI reachable?)"
                .to_owned(),
        );
    }
    if ready(&python) {
        Ok(python)
    } else {
        Err("taskiq was installed but does not import".to_owned())
    }
}

async fn run_taskiq(
    python: &PathBuf,
    url: &str,
    n: u64,
    batch: u32,
) -> anyhow::Result<TaskiqResult> {
    let script = workspace()
        .join("natask-bench")
        .join("taskiq")
        .join("bench.py");
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .args([
            url,
            &n.to_string(),
            &DEFAULT_SIZE.to_string(),
            &batch.to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(900), output)
        .await
        .context("taskiq run took over 15 minutes")??;
    anyhow::ensure!(
        output.status.success(),
        "taskiq run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("taskiq printed `{line}`"))
}

/// natask and taskiq-nats (defaults, and tuned with 256-message pulls).
/// `Err(notice)` when taskiq cannot be installed here.
pub(crate) async fn taskiq(sizes: &Sizes) -> anyhow::Result<Result<Vec<Row>, String>> {
    let python = match python().await {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    let server = NatsServer::start();
    let url = server.url();
    let n = sizes.taskiq;
    let (enqueue, process) = scenarios::natask_like_taskiq(&url, n, sizes.cap).await?;
    let mut rows = Vec::new();
    for (batch, label) in [
        (1, "taskiq-nats defaults (pull batch 1)"),
        (256, "taskiq-nats tuned (pull batch 256)"),
    ] {
        let t = run_taskiq(&python, &url, n, batch).await?;
        let note = if t.handled < n {
            format!("{label}; taskiq handled {} of {n}", t.handled)
        } else {
            label.to_owned()
        };
        rows.push(
            Row::new(
                "7 vs taskiq: enqueue, awaiting each",
                format!("N = {n}"),
                "tasks/s",
                enqueue,
                t.enqueue_per_s,
            )
            .note(note.clone()),
        );
        rows.push(
            Row::new(
                "7 vs taskiq: processing, 100 handlers",
                format!("N = {n}"),
                "tasks/s",
                process,
                t.process_per_s,
            )
            .note(note),
        );
    }
    Ok(Ok(rows))
}
