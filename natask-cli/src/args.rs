//! The command line, as clap parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Inspect and operate natask queues, tasks, dead letters and schedules.
#[derive(Debug, Parser)]
#[command(name = "natask", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where and how to connect; secrets are never printed.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// NATS server URL, or a comma-separated list of a cluster's servers.
    #[arg(
        long,
        short = 's',
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub(crate) server: String,
    /// A `nats` CLI context to connect with (url, credentials, TLS);
    /// takes precedence over `--server` and the credential options.
    #[arg(long, env = "NATS_CONTEXT", global = true)]
    pub(crate) context: Option<String>,
    /// A credentials file (JWT and nkey seed).
    #[arg(long, env = "NATS_CREDS", global = true)]
    pub(crate) creds: Option<PathBuf>,
    /// User name (with `--password`).
    #[arg(long, env = "NATS_USER", global = true, requires = "password")]
    pub(crate) user: Option<String>,
    /// Password (with `--user`).
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        global = true,
        requires = "user"
    )]
    pub(crate) password: Option<String>,
    /// Authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// The prefix of natask's subjects and streams (`Client::with_prefix`).
    #[arg(long, env = "NATASK_PREFIX", default_value = "natask", global = true)]
    pub(crate) prefix: String,
}

/// One `natask` command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every natask queue under the prefix: depth, in flight, paused, dead letters, oldest task.
    Queues(Json),
    /// One queue: info, pause, resume, drift.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// One task by id: show, wait, cancel.
    #[command(subcommand)]
    Tasks(TaskCommand),
    /// Dead letters: ls, show, replay, purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Delayed tasks, cron tasks and recurring schedules.
    #[command(subcommand)]
    Schedules(ScheduleCommand),
    /// Publish a task by name with a JSON payload, checked against the catalog's schema.
    Enqueue(Enqueue),
    /// Running runtimes (the worker registry): host, pid, version, queues, tasks in flight.
    Workers(Json),
    /// The tasks the runtimes serve: queue, retries, timeout, backoff, cron, uniqueness, payload.
    Catalog {
        /// Only this queue's tasks.
        #[arg(long, short = 'q')]
        queue: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Check the server: version, JetStream, the features natask needs, replicas, drift.
    Doctor(Json),
    /// Serve a web dashboard: queues, dead letters, schedules, tasks, workers, catalog.
    Web(Web),
}

/// `natask web ...`.
#[derive(Debug, Args)]
pub(crate) struct Web {
    /// The address to listen on; port 0 picks a free one. The bound
    /// address is printed on stdout (`listening on http://...`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// Listen on an address other than loopback (put TLS and
    /// `--web-token` in front of it).
    #[arg(long)]
    pub(crate) allow_remote: bool,
    /// Require this token on every request (`?token=` once sets a cookie,
    /// or `Authorization: Bearer`). `--token` is the NATS token.
    #[arg(long, env = "NATASK_WEB_TOKEN", hide_env_values = true)]
    pub(crate) web_token: Option<String>,
    /// How often the queues overview reloads itself (`5s`); `0s` never.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub(crate) refresh: Duration,
}

/// `--json` for scripts.
#[derive(Debug, Args)]
pub(crate) struct Json {
    /// Print JSON (stable field names, docs/operations.md) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `natask queue ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// What the queue holds and whether it is paused.
    Info {
        /// The queue.
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Pause the queue for every worker (nats-server 2.11+).
    Pause {
        /// The queue.
        name: String,
        /// Resume by itself after this long (`10m`, `1h 30m`); default: until resumed.
        #[arg(long = "for", value_parser = duration)]
        duration: Option<Duration>,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue.
        name: String,
    },
    /// Where the queue's stream and consumer differ from its default policy.
    Drift {
        /// The queue.
        name: String,
        #[command(flatten)]
        json: Json,
    },
}

/// `natask tasks ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// The state of a task.
    Show {
        /// The task id.
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Wait until the task finishes; exit 1 unless it succeeded.
    Wait {
        /// The task id.
        id: String,
        /// How long to wait (`30s`, `5m`).
        #[arg(long, default_value = "30s", value_parser = duration)]
        timeout: Duration,
        #[command(flatten)]
        json: Json,
    },
    /// Cancel a queued, delayed, retrying or running task.
    Cancel {
        /// The task id.
        id: String,
        #[command(flatten)]
        json: Json,
    },
}

/// `natask dlq ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters, oldest first.
    Ls {
        #[command(flatten)]
        select: Select,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        json: Json,
    },
    /// One dead letter: why, its headers and payload.
    Show {
        /// The task id.
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Put dead letters back on their queues, attempts reset.
    Replay {
        /// The task id of one dead letter.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter (of `--queue`/`--task`, if given).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        select: Select,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        select: Select,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Which dead letters: of a queue, of a task, or all.
#[derive(Debug, Args)]
pub(crate) struct Select {
    /// Only this queue's.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only this task's (by task name).
    #[arg(long)]
    pub(crate) task: Option<String>,
}

/// `natask schedules ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Delayed tasks not yet due, cron tasks and recurring schedules.
    Ls {
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Remove one schedule by its subject (as `schedules ls` shows it).
    Rm {
        /// The schedule's subject, e.g. `natask.s.reports.tenant_report.cron.acme`.
        subject: String,
    },
}

/// `natask enqueue ...`.
#[derive(Debug, Args)]
pub(crate) struct Enqueue {
    /// The task's name, e.g. `send_email`.
    pub(crate) task: String,
    /// Its queue; found in the catalog when not given.
    #[arg(long, short = 'q')]
    pub(crate) queue: Option<String>,
    /// Send the payload without checking it against the catalog's schema.
    #[arg(long)]
    pub(crate) no_check: bool,
    /// Sign the task with this ed25519 seed file (64 hexadecimal digits or
    /// 32 bytes), for workers that require signatures (docs/security.md).
    #[arg(long, env = "NATASK_SIGNING_KEY")]
    pub(crate) signing_key: Option<std::path::PathBuf>,
    /// The payload: a JSON object with the task's payload fields.
    #[arg(long = "json", visible_alias = "payload", default_value = "null")]
    pub(crate) payload: String,
    /// Run it after this delay (`10m`, `1h`): a server-side schedule (nats-server 2.12+).
    #[arg(long = "in", value_parser = duration, conflicts_with = "at")]
    pub(crate) delay: Option<Duration>,
    /// Run it at this time, RFC 3339 in UTC (`2030-01-01T09:00:00Z`).
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    pub(crate) at: Option<std::time::SystemTime>,
}

/// Parses `30s`, `10m`, `1h 30m`.
fn duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}
