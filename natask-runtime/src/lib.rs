//! Typed background tasks on NATS JetStream.
//!
//! Annotate an `async fn` with [`#[task]`](macro@task); natask generates a
//! payload struct with a typed `enqueue`, and registers the handler at link
//! time. A [`Runtime`] collects every registered task, creates the JetStream
//! streams and consumers it needs, and serves them.
//!
//! ```no_run
//! use natask_runtime::{task, Client, Runtime, State, TaskContext, TaskError};
//!
//! struct Mailer;
//! impl Mailer {
//!     async fn send(&self, to: &str, subject: &str) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! #[task(queue = "emails", retries = 3)]
//! async fn send_email(mailer: State<Mailer>, ctx: &TaskContext, to: String, subject: String) -> Result<(), TaskError> {
//!     println!("attempt {} of {}", ctx.attempt(), ctx.id());
//!     mailer.send(&to, &subject).await?; // any std error converts, and is retried
//!     Ok(())
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("nats://127.0.0.1:4222").await?;
//!
//! // producer side: typed, no task-name strings
//! let id = SendEmail::new("ada@example.com".into(), "hello".into()).enqueue(&client).await?;
//!
//! // worker side: every #[task] linked into the binary is served
//! let runtime = Runtime::builder(client).state(Mailer).build().await?;
//! runtime.run().await?; // until ctrl-c or SIGTERM
//! # Ok(()) }
//! ```
//!
//! # Delayed tasks
//!
//! `SendEmail { .. }.enqueue_in(&client, delay)` and `.enqueue_at(&client,
//! due)` ([`Client::enqueue_in`], [`Client::enqueue_at`]) store the task as a
//! JetStream message schedule (nats-server 2.12+) that the server turns into
//! an ordinary task when it is due, 0–250 ms late; no natask process holds
//! it meanwhile. [`Client::cancel_scheduled`] removes a waiting one.
//! `docs/scheduling.md` in the repository has the details.
//!
//! `#[task(cron = "0 */5 * * * *")]` runs a task without payload on a
//! repeating server-side schedule (nats-server 2.14+);
//! [`Client::schedule`] makes such schedules at run time, with a payload and
//! a key (e.g. one per tenant), [`Client::unschedule`] removes one and
//! [`Client::schedules`] lists them.
//!
//! # Unique tasks
//!
//! `#[task(unique = "1h", unique_by = "tenant", unique_until = "started")]`
//! keeps at most one task per key: enqueueing while a task with the same
//! key holds its lock (in the key-value bucket `NATASK_UNIQUE`, with a
//! per-message TTL, nats-server 2.11+) stores nothing and returns that
//! task's id. [`Client::enqueue_with`] takes [`EnqueueOptions`]: a given
//! task id, so that a retried enqueue is absorbed by JetStream's duplicate
//! window, or a [`Unique`] key chosen per call. Both answer [`Enqueued`].
//!
//! ```no_run
//! use std::time::Duration;
//! use natask_runtime::{task, Client, EnqueueOptions, TaskId, Unique, Until};
//!
//! #[task(queue = "reports", unique = "1h", unique_by = "tenant, month", unique_until = "started")]
//! async fn build_report(tenant: String, month: u32, format: String) {}
//!
//! # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let first = BuildReport::new("acme".into(), 7, "pdf".into()).enqueue(&client).await?;
//! let again = BuildReport::new("acme".into(), 7, "csv".into()).enqueue(&client).await?;
//! assert!(first.created && !again.created && again.id == first.id);
//!
//! let task = BuildReport::new("acme".into(), 8, "pdf".into());
//! let unique = Unique::by("acme", Duration::from_secs(600)).until(Until::Succeeded);
//! client.enqueue_with(&task, EnqueueOptions::new().unique(unique)).await?;
//!
//! let id = TaskId::new(); // kept across the retries of one enqueue
//! let options = || EnqueueOptions::new().id(id).not_unique();
//! client.enqueue_with(&task, options()).await?;
//! let retried = client.enqueue_with(&task, options()).await?;
//! assert_eq!((retried.id, retried.created), (id, false));
//! # Ok(()) }
//! ```
//!
//! `docs/scheduling.md` ("Unique tasks") has the details.
//!
//! # Queue policy
//!
//! A queue's settings are declared once, as a [`QueuePolicy`] registered
//! with [`Client::with_queue`]; every producer and runtime built from that
//! client creates the queue's stream and consumer from it. An existing
//! stream or consumer is attached to as it is, never rewritten: each
//! setting that differs is logged as a warning, [`Client::queue_drift`]
//! lists them, and [`Client::update_queue`] applies the policy.
//! [`Provisioning::NoCreate`] never creates anything, for accounts whose
//! streams an operator manages. `docs/queues.md` in the repository has the
//! details.
//!
//! ```no_run
//! use std::time::Duration;
//! use natask_runtime::{Client, QueuePolicy, Runtime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("nats://127.0.0.1:4222")
//!     .await?
//!     .with_queue(
//!         QueuePolicy::new("emails")
//!             .max_in_flight(20) // across every worker process
//!             .concurrency(4)    // in each one
//!             .max_tasks(100_000)
//!             .ack_wait(Duration::from_secs(60)),
//!     )?;
//! for drift in client.update_queue("emails").await? {
//!     println!("changed {drift}"); // e.g. "max_in_flight: live 10000, wanted 20"
//! }
//! Runtime::builder(client).build().await?.run().await?;
//! # Ok(()) }
//! ```
//!
//! # Task state, results and cancellation
//!
//! [`Client::task_info`] tells where a task is ([`TaskState`]: queued,
//! scheduled, running, retrying, succeeded, dead, expired, cancelled), with
//! its attempts, last error, times and, once it succeeded, the handler's
//! `Ok` value as JSON; [`Client::wait`] awaits its outcome;
//! [`Client::cancel`] removes a waiting task or stops a running one. The
//! states live in a JetStream key-value bucket, per queue on by default
//! ([`QueuePolicy::tracking`]). A queue's
//! [`QueuePolicy::validity`] expires tasks not started in time.
//! `docs/queues.md` in the repository has the details.
//!
//! # Parameters: payload and injected
//!
//! The rule is syntactic: a parameter whose type is written `State<T>` gets
//! the value registered with [`RuntimeBuilder::state`]; one written
//! `&TaskContext` gets the attempt's [`TaskContext`]. Every other parameter
//! is payload and becomes a field of the generated struct, in order, so it
//! must be an owned `Serialize + Deserialize` type (a [`PayloadField`]).
//!
//! # Handler results
//!
//! A handler returns `Result<T, E>` with `T: Serialize` and `E:
//! Into<TaskError>` (any `std::error::Error + Send + Sync + 'static`), or
//! `()`: an [`IntoTaskResult`]. `Err` is retried with exponential backoff
//! until the task's attempts run out, then the task is moved to the
//! dead-letter stream; return [`TaskError::fatal`] to skip the retries,
//! [`TaskError::snooze`] to run again later. A panic or a timeout counts as a
//! failed attempt.
//!
//! # The linker pitfall
//!
//! Tasks are collected at link time, with no code running before `main`
//! ([`registry`] explains the choice of linkme). A crate is only linked if
//! the binary mentions it, so a worker whose tasks live in a library crate
//! it never uses must say so with one line:
//!
//! ```text
//! use my_tasks as _; // links the crate, and with it every #[task] in it
//! ```
//!
//! Without it, [`RuntimeBuilder::build`] fails with [`BuildError::NoTasks`]
//! (or [`BuildError::UnknownQueue`]) and says exactly that. Where link-time
//! collection is not available at all (Miri, some wasm targets), register
//! tasks by hand with [`RuntimeBuilder::register`].
//!
//! # JetStream layout
//!
//! One work-queue stream per queue (`NATASK_Q_<queue>`, subjects
//! `natask.q.<queue>.<task>`, and `natask.s.<queue>.<task>.<id>` for the
//! schedules of delayed tasks), one durable pull consumer `workers` per
//! queue shared by every worker process, and a dead-letter stream
//! `NATASK_DLQ`. `docs/wire-format.md` documents headers and payloads for
//! producers in other languages.

mod batch;
mod client;
mod cron;
mod dead_letter;
mod handback;
mod headers;
mod http;
#[cfg(feature = "metrics")]
mod metrics;
pub mod middleware;
#[cfg(feature = "opentelemetry")]
mod otel;
mod policy;
mod provision;
mod pull;
mod queue;
mod runtime;
mod schedule;
mod schedules;
mod tracking;
mod unique;
mod worker;

pub use client::{Client, ConnectError, EnqueueError};
pub use cron::CronError;
pub use dead_letter::{DeadLetter, DeadLetterError};
pub use http::Health;
pub use natask_core::task::assert_payload_field;
pub use natask_core::{
    name, wire, Backoff, HandlerFuture, Headers, IntoTaskResult, PayloadField, State, Task,
    TaskContext, TaskError, TaskErrorKind, TaskId,
};
pub use natask_macros::task;
pub use policy::{
    Drift, InvalidPolicy, Provisioning, QueuePolicy, Storage, WhenFull, DEFAULT_DEDUP_WINDOW,
    DEFAULT_MAX_IN_FLIGHT,
};
pub use provision::ProvisionError;
pub use queue::{QueueError, QueueInfo};
pub use runtime::{
    BuildError, RunError, Runtime, RuntimeBuilder, DEFAULT_ACK_WAIT, DEFAULT_CONCURRENCY,
    DEFAULT_RETRIES, DEFAULT_SHUTDOWN_GRACE, DEFAULT_TIMEOUT,
};
pub use schedule::CancelError;
pub use schedules::{Cron, Schedule, ScheduleError};
pub use tracking::{Cancelled, TaskInfo, TaskState, TrackingError, DEFAULT_TASK_RETENTION};
pub use unique::{EnqueueOptions, Enqueued, Unique, UniquePolicy, Until};

/// The link-time task registry.
pub mod registry {
    pub use natask_core::registry::{tasks, validate, RegistryError, TaskEntry};
}

// Not public API: used by code `#[task]` generates.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::{Client, EnqueueError};
    pub use crate::unique::{EnqueueOptions, Enqueued, UniquePolicy, Until};
    pub use linkme;
    pub use natask_core::handler::decode;
    pub use natask_core::registry::TASKS;
    pub use natask_core::task::{
        assert_payload_field, fail, DecodeFails, DecodeHolds, FinishFails, FinishHolds,
        PayloadField, Probe,
    };
    pub use natask_core::{
        Backoff, HandlerFuture, IntoTaskResult, Invocation, StateKey, Task, TaskEntry, TaskId,
    };
    pub use serde;

    use core::future::Future;
    use core::time::Duration;
    use std::time::SystemTime;

    /// `enqueue`, `enqueue_in` and `enqueue_at` on a generated struct, when
    /// it is a [`Task`] (see [`Probe`]).
    pub trait EnqueueHolds<T> {
        /// Enqueues `task`.
        fn enqueue_task<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

        /// Enqueues `task` as `options` say.
        fn enqueue_task_with<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            options: EnqueueOptions,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

        /// Enqueues `task` to run after `delay`.
        fn enqueue_task_in<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            delay: Duration,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

        /// Enqueues `task` to run at `due`.
        fn enqueue_task_at<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            due: SystemTime,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;
    }

    impl<T: Task> EnqueueHolds<T> for Probe<T> {
        fn enqueue_task<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            client.enqueue(task)
        }

        fn enqueue_task_with<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            options: EnqueueOptions,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            client.enqueue_with(task, options)
        }

        fn enqueue_task_in<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            delay: Duration,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            client.enqueue_in(task, delay)
        }

        fn enqueue_task_at<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            due: SystemTime,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            client.enqueue_at(task, due)
        }
    }

    /// The fallback, picked only when a payload assertion fails (never run).
    pub trait EnqueueFails<T> {
        /// Never completes.
        fn enqueue_task<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

        /// Never completes.
        fn enqueue_task_with<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            options: EnqueueOptions,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

        /// Never completes.
        fn enqueue_task_in<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            delay: Duration,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

        /// Never completes.
        fn enqueue_task_at<'a>(
            &self,
            client: &'a Client,
            task: &'a T,
            due: SystemTime,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;
    }

    impl<T> EnqueueFails<T> for &Probe<T> {
        fn enqueue_task<'a>(
            &self,
            _: &'a Client,
            _: &'a T,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            core::future::pending()
        }

        fn enqueue_task_with<'a>(
            &self,
            _: &'a Client,
            _: &'a T,
            _: EnqueueOptions,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            core::future::pending()
        }

        fn enqueue_task_in<'a>(
            &self,
            _: &'a Client,
            _: &'a T,
            _: Duration,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            core::future::pending()
        }

        fn enqueue_task_at<'a>(
            &self,
            _: &'a Client,
            _: &'a T,
            _: SystemTime,
        ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
            core::future::pending()
        }
    }
}
