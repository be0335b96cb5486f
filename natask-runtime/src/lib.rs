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
//! let id = SendEmail::new("ada@example.com".into(), "hello".into()).enqueue(&client).await?.id;
//!
//! // worker side: every #[task] linked into the binary is served
//! let runtime = Runtime::builder(client).state(Mailer).build().await?;
//! runtime.run().await?; // until ctrl-c or SIGTERM
//! # Ok(()) }
//! ```
//!
//! # Events
//!
//! A task goes to one worker; an event goes to every service that
//! subscribes to it, and to one instance of each. [`#[event]`](macro@event)
//! on a struct makes it an [`Event`] with `publish(&client)`
//! ([`Client::publish`]), stored in the event's own stream (limits
//! retention, kept `retention`); [`#[subscribe(service = "..")]`](macro@subscribe)
//! on an `async fn` taking the event declares a service's handler. Each
//! (service, handler) has its own durable consumer, shared by the
//! service's instances; a [`Runtime`] serves every linked subscriber
//! through the same attempt pipeline as tasks (retries, dead letters,
//! spans, metrics), [`RuntimeBuilder::services`] picks services.
//!
//! ```no_run
//! use natask_runtime::{event, subscribe, Client, Runtime, TaskError};
//!
//! #[event(retention = "7d")]
//! pub struct OrderPlaced { pub order: u64 }
//!
//! #[subscribe(service = "billing", retries = 3, start = "new")]
//! async fn charge(order: OrderPlaced) -> Result<(), TaskError> {
//!     println!("charging order {}", order.order);
//!     Ok(())
//! }
//!
//! # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! OrderPlaced { order: 7 }.publish(&client).await?;
//! Runtime::builder(client).services(["billing"]).build().await?.run().await?;
//! # Ok(()) }
//! ```
//!
//! `docs/events.md` in the repository has the layout, the guarantees and
//! why this shape.
//!
//! # Delayed tasks
//!
//! `SendEmail { .. }.enqueue_in(&client, delay)` and `.enqueue_at(&client,
//! due)` ([`Client::enqueue_in`], [`Client::enqueue_at`]) store the task as a
//! JetStream message schedule (nats-server 2.12+) that the server turns into
//! an ordinary task when it is due, 0–250 ms late; no natask process holds
//! it meanwhile. [`Client::cancel`] removes a waiting one, as it removes any
//! task. `docs/scheduling.md` in the repository has the details.
//!
//! # Recurring tasks
//!
//! `#[task(cron = "0 */5 * * * *")]` runs a task without payload on a
//! repeating server-side schedule (nats-server 2.14+);
//! [`Client::recurring`] makes such schedules at run time, with a payload and
//! a key (e.g. one per tenant): [`Recurring::set`], [`Recurring::remove`],
//! [`Recurring::list`].
//!
//! # Unique tasks
//!
//! `#[task(unique = "1h", unique_by = "tenant", unique_until = "started")]`
//! keeps at most one task per key: enqueueing while a task with the same
//! key holds its lock (in the key-value bucket `NATASK_UNIQUE`, with a
//! per-message TTL, nats-server 2.11+) stores nothing and returns that
//! task's id. [`Client::enqueue_with`] takes [`EnqueueOptions`]: a given
//! task id, so that a retried enqueue is absorbed by JetStream's duplicate
//! window, or a [`Unique`] key chosen per call. Every enqueue answers
//! [`Enqueued`]: the task's id, and whether this call stored it.
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
//! setting that differs is logged as a warning, [`Queue::drift`] lists
//! them, and [`Queue::update`] applies the policy ([`Client::queue`] hands
//! out a queue's handle, which also pauses, resumes and inspects it).
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
//! for drift in client.queue("emails").update().await? {
//!     println!("changed {drift}"); // e.g. "max_in_flight: live 10000, wanted 20"
//! }
//! Runtime::builder(client).build().await?.run().await?;
//! # Ok(()) }
//! ```
//!
//! # Task state, results and cancellation
//!
//! [`Client::task_info`] tells where a task is ([`TaskState`]: queued,
//! delayed, running, retrying, succeeded, dead, expired, cancelled), with
//! its attempts, last error, times and, once it succeeded, the handler's
//! `Ok` value as JSON; [`Client::wait`] awaits its outcome;
//! [`Client::cancel`] removes a waiting or delayed task or stops a running
//! one. The
//! states live in a JetStream key-value bucket, per queue on by default
//! ([`QueuePolicy::tracking`]). A queue's
//! [`QueuePolicy::validity`] expires tasks not started in time.
//! `docs/queues.md` in the repository has the details.
//!
//! # Authentication and permissions
//!
//! [`Client::connect_with`] takes any `async_nats::ConnectOptions` (nkeys,
//! credentials files, TLS); [`Client::from_context`] connects as
//! `nats --context NAME` does. A request the server refuses for lack of
//! permission is reported as such, naming the subject (the
//! `PermissionDenied` variants of [`EnqueueError`], [`ProvisionError`],
//! [`QueueError`], [`DeadLetterError`] and [`TrackingError`]), through the
//! [`PermissionWatch`] `connect_with` installs. `docs/security.md` in the
//! repository lists every auth method and the exact NATS permissions of a
//! producer, a worker and an operator.
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
//! # Testing without a server
//!
//! With the feature `testing` (in your dev-dependencies), `testing::perform`
//! runs one attempt of a task through its real handler and tells what a
//! worker would do next (retry after which delay, dead-letter and why),
//! `Client::recording()` is a client that records its enqueues instead of
//! publishing them (`testing::assert_enqueued`, `enqueued`), and
//! `testing::drain` runs what it recorded, retries included;
//! `Client::inline(states)` runs each task as it is enqueued. None of them
//! needs a NATS server; `docs/testing.md` in the repository has the
//! details and what they do not simulate.
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
//! `NATASK_DLQ` ([`Client::dead_letters`] lists, replays and purges them).
//! `docs/wire-format.md` documents headers and payloads for producers in
//! other languages.
//!
//! # How the crate is built
//!
//! Four layers, each using only those above it in this list, and the
//! folders of `src/` follow them:
//!
//! 1. `jetstream/`: what natask says to JetStream. Header names and times
//!    as the wire format writes them, which server error a failure is, the
//!    configuration of every stream, consumer and bucket natask creates,
//!    the **one provisioning path** they all take (where replicas,
//!    storage, [`Provisioning::NoCreate`], drift warnings and the server
//!    features an asset needs apply), repeating message schedules, the
//!    pull loop that fetches tasks, and the writes tried again until
//!    JetStream confirms them across a leader election (`confirm`).
//! 2. `store/`: what natask keeps besides the tasks, each in a bucket the
//!    first layer provisions: task states and cancellation requests,
//!    unique locks, and the deliveries that spent no attempt.
//! 3. `client/` (the producer side): [`Client`], enqueueing (one path for
//!    every way of enqueueing), delayed tasks, batches, and the handles an
//!    operator thinks in: [`Queue`], [`DeadLetters`], [`Recurring`]. It
//!    never uses the worker side.
//! 4. `worker/` (the worker side): [`Runtime`] and its builder, the fetch
//!    loop of each queue, one attempt split into classify → run → settle,
//!    dead-lettering, cron schedules, pause logging and the HTTP endpoint.
//!
//! Beside them, used by both sides and owning their own pieces:
//! `policy` (the [`QueuePolicy`] vocabulary), [`middleware`], and the
//! optional `metrics` and `otel`.

mod client;
mod jetstream;
#[cfg(feature = "metrics")]
mod metrics;
pub mod middleware;
#[cfg(feature = "opentelemetry")]
mod otel;
mod policy;
mod signing;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use client::context::ContextError;
pub use client::dead_letters::{DeadLetter, DeadLetterError, DeadLetters};
pub use client::enqueue::{EnqueueError, QueueLimit};
pub use client::events::{PublishError, Published};
pub use client::options::{EnqueueOptions, Enqueued, Unique};
pub use client::queue::{Queue, QueueError, QueueInfo};
pub use client::recurring::{Cron, Recurring, RecurringError, RecurringTask};
pub use client::tasks::Cancelled;
pub use client::{Client, ConnectError};
pub use jetstream::permissions::{NatsOperation, PermissionViolation, PermissionWatch};
pub use jetstream::provision::ProvisionError;
pub use natask_core::task::assert_payload_field;
pub use natask_core::{
    event::Start, name, wire, Backoff, Event, HandlerFuture, Headers, IntoTaskResult, PayloadField,
    State, Task, TaskContext, TaskError, TaskErrorKind, TaskId, UniquePolicy, Until,
};
pub use natask_macros::{event, subscribe, task};
pub use policy::{
    Drift, InvalidPolicy, InvalidReplicas, Provisioning, QueuePolicy, Storage, WhenFull,
    DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_IN_FLIGHT, DEFAULT_PREFETCH,
};
pub use signing::{KeyError, PublicKey, SigningKey};
pub use store::fleet::{
    CatalogEntry, CatalogUnique, FleetError, ServedQueue, WorkerInfo, DEFAULT_HEARTBEAT,
};
pub use store::tasks::{TaskInfo, TaskState, TrackingError, DEFAULT_TASK_RETENTION};
pub use worker::builder::{
    BuildError, RuntimeBuilder, DEFAULT_ACK_WAIT, DEFAULT_CONCURRENCY, DEFAULT_RETRIES,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_TIMEOUT,
};
pub use worker::cron::CronError;
pub use worker::http::{Health, HealthError};
pub use worker::{RunError, Runtime};

/// The link-time task registry.
pub mod registry {
    pub use natask_core::event::{subscribers, SubscriberEntry};
    pub use natask_core::registry::{tasks, validate, RegistryError, TaskEntry};
}

// Not public API: used by code `#[task]` generates.
#[doc(hidden)]
pub mod __private;
