//! How one enqueue goes ([`EnqueueOptions`]: a given id, uniqueness, a
//! due time) and what it did ([`Enqueued`]).
//!
//! Two ways of storing a task only once, both answered with an
//! [`Enqueued`]:
//!
//! - **Idempotent enqueue**: [`EnqueueOptions::id`] gives the task id, which
//!   is also its `Nats-Msg-Id`. Enqueueing again with the same id inside the
//!   queue's duplicate window (2 minutes by default) stores nothing: the
//!   publish acknowledgement says `duplicate`, and `created` is `false`.
//! - **Uniqueness by key**: a lock in the bucket `<PREFIX>_UNIQUE`
//!   (`store::locks`); while a task holds the lock of its key, enqueueing
//!   another with the same key stores nothing and answers the holder's id.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use natask_core::{Task, TaskId, UniquePolicy, Until};

use crate::store::locks::{canonical_json, lock_key};
use crate::EnqueueError;

/// How one enqueue goes: [`Client::enqueue_with`](crate::Client::enqueue_with).
///
/// ```no_run
/// use std::time::Duration;
/// use natask_runtime::{task, Client, EnqueueOptions, TaskId, Unique, Until};
///
/// #[task(queue = "reports")]
/// async fn build_report(tenant: String, month: u32) {}
///
/// # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
/// // a retry of this call (e.g. after a timeout) stores no second task
/// let id = TaskId::new();
/// let task = BuildReport::new("acme".into(), 7);
/// let first = client.enqueue_with(&task, EnqueueOptions::new().id(id)).await?;
/// let again = client.enqueue_with(&task, EnqueueOptions::new().id(id)).await?;
/// assert!(!again.created && again.id == first.id);
///
/// // at most one report per tenant waiting, for up to an hour
/// let unique = Unique::by(&task.tenant, Duration::from_secs(3600)).until(Until::Started);
/// let enqueued = client.enqueue_with(&task, EnqueueOptions::new().unique(unique)).await?;
/// if !enqueued.created {
///     println!("already waiting: {}", enqueued.id);
/// }
///
/// // the same, due in ten minutes
/// client.enqueue_with(&task, EnqueueOptions::new().delay(Duration::from_secs(600))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct EnqueueOptions {
    pub(crate) id: Option<TaskId>,
    pub(crate) unique: Uniqueness,
    pub(crate) due: Option<Due>,
}

#[derive(Debug, Default)]
pub(crate) enum Uniqueness {
    /// What the task declares (`#[task(unique = "..")]`, [`Task::UNIQUE`]).
    #[default]
    Declared,
    Off,
    Key(Unique),
}

/// When a delayed task is due, as asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    In(Duration),
    At(SystemTime),
}

impl EnqueueOptions {
    /// The defaults: a fresh task id, the uniqueness the task declares, due
    /// at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `id` as the task id and as its deduplication id (`Nats-Msg-Id`):
    /// enqueueing the same id again inside the queue's duplicate window
    /// (see [`QueuePolicy::dedup_window`](crate::QueuePolicy::dedup_window))
    /// stores nothing and answers `created: false` with this id. Keep the id
    /// across the retries of one logical enqueue, e.g. after
    /// [`EnqueueError::Timeout`](crate::EnqueueError::Timeout).
    ///
    /// A task id names one task. Past the window, on a tracked queue, the
    /// id is looked up first: while a task with this id has a kept state
    /// (24 h by default), enqueueing it again stores nothing and answers
    /// `created: false` too. Use a fresh id for new work
    /// (`docs/wire-format.md`, "One id, one task").
    pub fn id(mut self, id: TaskId) -> Self {
        self.id = Some(id);
        self
    }

    /// Makes this enqueue unique by `unique`'s key, instead of what the task
    /// declares.
    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Uniqueness::Key(unique);
        self
    }

    /// Ignores the uniqueness the task declares: this enqueue always stores
    /// a task (and takes no lock).
    pub fn not_unique(mut self) -> Self {
        self.unique = Uniqueness::Off;
        self
    }

    /// Makes the task a delayed one, due once `delay` has passed
    /// ([`Client::enqueue_in`](crate::Client::enqueue_in)); a zero delay
    /// enqueues at once.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.due = Some(Due::In(delay));
        self
    }

    /// Makes the task a delayed one, due at `due`
    /// ([`Client::enqueue_at`](crate::Client::enqueue_at)); a time not in
    /// the future (by this machine's clock) enqueues at once.
    pub fn due_at(mut self, due: SystemTime) -> Self {
        self.due = Some(Due::At(due));
        self
    }
}

/// The key and lifetime of a unique enqueue: while a task holds the lock
/// of its key, enqueueing another with the same key stores nothing and
/// returns the holder's id.
pub struct Unique {
    /// The canonical JSON of the key, or why it could not be made.
    pub(crate) key: Result<String, serde_json::Error>,
    pub(crate) policy: UniquePolicy,
}

impl std::fmt::Debug for Unique {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unique")
            .field("key", &self.key.as_deref().ok())
            .field("ttl", &self.policy.ttl)
            .field("until", &self.policy.until)
            .finish()
    }
}

impl Unique {
    /// Unique by `key`, any serialisable value (a field, a tuple of fields,
    /// a string), held for at most `ttl` (at least one second; fractions
    /// are rounded up to whole seconds). The key is hashed together with
    /// the queue and task name, so keys of different tasks never collide.
    pub fn by<K: Serialize + ?Sized>(key: &K, ttl: Duration) -> Unique {
        Unique {
            key: canonical_json(key),
            policy: UniquePolicy { ttl, until: None },
        }
    }

    /// Releases the lock when the task reaches `until`, if that comes
    /// before the TTL runs out.
    pub fn until(mut self, until: Until) -> Unique {
        self.policy.until = Some(until);
        self
    }

    /// The key of the lock `T`'s task takes, once the key encoded and the
    /// TTL is at least a second (the server's per-message TTL resolution).
    pub(crate) fn lock_key<T: Task>(self) -> Result<String, EnqueueError> {
        let json = self.key.map_err(|source| EnqueueError::Encode {
            task: T::NAME,
            source,
        })?;
        let ttl = self.policy.ttl;
        if ttl < Duration::from_secs(1) {
            return Err(EnqueueError::UniqueTtl { task: T::NAME, ttl });
        }
        Ok(lock_key(T::QUEUE, T::NAME, &json))
    }

    /// The uniqueness `T` declares for `task`, if any.
    pub(crate) fn declared<T: Task>(task: &T) -> Option<Unique> {
        T::UNIQUE.map(|policy| Unique {
            key: canonical_json(&Fields(task)),
            policy,
        })
    }
}

/// What an enqueue did: every way of enqueueing answers one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The task's id: the new task's, or the existing one's when `created`
    /// is `false`.
    pub id: TaskId,
    /// `true` if this call stored a task; `false` if it found one: a task
    /// holding the same unique key, or the same id enqueued before.
    pub created: bool,
}

/// [`Task::unique_fields`] as a value.
struct Fields<'a, T>(&'a T);

impl<T: Task> Serialize for Fields<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.unique_fields(s)
    }
}
