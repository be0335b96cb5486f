//! `natask doctor`: whether the server can run natask, and where what
//! exists differs from what natask would create.

use natask_runtime::Client;
use serde::Serialize;

use crate::Outcome;

/// One check in `--json` output.
#[derive(Debug, Serialize)]
struct Check {
    /// What was checked, e.g. `jetstream`, `message_schedules`.
    check: &'static str,
    /// `ok`, `warn` or `fail`.
    status: &'static str,
    detail: String,
}

/// The whole report in `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    server_version: String,
    server_name: String,
    cluster: Option<String>,
    max_payload: usize,
    replicas: usize,
    checks: Vec<Check>,
}

/// `major.minor` of a version such as `2.12.1` or `v2.11.0-beta`.
fn version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn feature(have: Option<(u32, u32)>, check: &'static str, needs: (u32, u32), what: &str) -> Check {
    let ok = have.is_some_and(|v| v >= needs);
    Check {
        check,
        status: if ok { "ok" } else { "warn" },
        detail: format!(
            "{what} {} nats-server {}.{}+",
            if ok {
                "available:"
            } else {
                "unavailable: needs"
            },
            needs.0,
            needs.1
        ),
    }
}

/// `natask doctor`: exits 1 when a check fails (not on warnings).
pub(crate) async fn run(client: &Client, json: bool) -> Outcome {
    let info = client.nats().server_info();
    let have = version(&info.version);
    let mut checks = Vec::new();
    let jetstream = client.jetstream().query_account().await;
    checks.push(match &jetstream {
        Ok(account) => Check {
            check: "jetstream",
            status: "ok",
            detail: format!(
                "enabled: {} streams, {} consumers in this account",
                account.streams, account.consumers
            ),
        },
        Err(e) => Check {
            check: "jetstream",
            status: "fail",
            detail: format!("not usable: {e}; start nats-server with `-js` (JetStream)"),
        },
    });
    checks.push(feature(
        have,
        "consumer_pause",
        (2, 11),
        "queue pause/resume",
    ));
    checks.push(feature(
        have,
        "per_message_ttl",
        (2, 11),
        "unique tasks (per-message TTL)",
    ));
    checks.push(feature(
        have,
        "message_schedules",
        (2, 12),
        "delayed tasks (message schedules)",
    ));
    checks.push(feature(
        have,
        "recurring_schedules",
        (2, 14),
        "cron and recurring tasks",
    ));
    if jetstream.is_ok() {
        checks.push(match client.shared_drift().await {
            Ok(drift) if drift.is_empty() => Check {
                check: "shared_streams",
                status: "ok",
                detail: "the dead-letter stream and buckets match this client's replicas"
                    .to_owned(),
            },
            Ok(drift) => Check {
                check: "shared_streams",
                status: "warn",
                detail: drift
                    .iter()
                    .map(|(stream, d)| format!("{stream}: {d}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            Err(e) => Check {
                check: "shared_streams",
                status: "warn",
                detail: format!("could not compare: {e}"),
            },
        });
        for queue in client.queues().await? {
            let (status, detail) = match client.queue(&queue).drift().await {
                Ok(drift) if drift.is_empty() => ("ok", "matches natask's default policy".to_owned()),
                Ok(drift) => (
                    "warn",
                    format!(
                        "differs from natask's default policy (fine if the application sets its own): {}",
                        drift.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ),
                ),
                Err(e) => ("warn", format!("could not compare: {e}")),
            };
            checks.push(Check {
                check: "queue",
                status,
                detail: format!("queue `{queue}` {detail}"),
            });
        }
    }
    if jetstream.is_ok() {
        checks.push(permissions(client).await);
    }
    let report = Report {
        server_version: info.version.clone(),
        server_name: info.server_name.clone(),
        cluster: info.cluster.clone(),
        max_payload: info.max_payload,
        replicas: client.replicas(),
        checks,
    };
    if json {
        crate::output::json(&report)?;
    } else {
        out!(
            "server {} (nats-server {}){}, max_payload {} bytes, natask creates R{}",
            report.server_name,
            report.server_version,
            report
                .cluster
                .as_deref()
                .map(|c| format!(", cluster {c}"))
                .unwrap_or_default(),
            report.max_payload,
            report.replicas
        );
        for check in &report.checks {
            out!("{:<4}  {:<19}  {}", check.status, check.check, check.detail);
        }
    }
    if report.checks.iter().any(|c| c.status == "fail") {
        return Err("a check failed".into());
    }
    Ok(())
}

/// What the connection's user may not do, found by asking what an operator
/// asks (queue, consumer and dead-letter info, the catalog and the
/// registry; nothing that would create a stream) and reading the violations the server reported for
/// this connection meanwhile (and before). A refusal is a warning, not a
/// failure: a user may rightly lack a role's rights (docs/security.md).
async fn permissions(client: &Client) -> Check {
    for queue in client.queues().await.unwrap_or_default() {
        let _ = client.queue(&queue).info().await;
    }
    // Through the CLI's own listing, which creates no dead-letter stream.
    let select = crate::args::Select {
        queue: None,
        task: None,
    };
    let _ = crate::dlq::collect(client, &select, 1).await;
    let _ = client.catalog().await;
    let _ = client.workers().await;
    let refused = client.permission_watch().violations();
    if refused.is_empty() {
        return Check {
            check: "permissions",
            status: "ok",
            detail: "no request of this check was refused (an operator's reads; a worker or producer may need more)"
                .to_owned(),
        };
    }
    let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
    Check {
        check: "permissions",
        status: "warn",
        detail: format!(
            "the NATS user may not {} (docs/security.md lists what each role needs)",
            refused.join(", ")
        ),
    }
}
