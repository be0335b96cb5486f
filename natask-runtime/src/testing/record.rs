//! Manual mode: a [`Client`] that records its enqueues instead of
//! publishing them, and assertions on what it recorded.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use futures_util::FutureExt;

use natask_core::context::StateMap;
use natask_core::{Backoff, Task, TaskEntry, TaskId};

use super::drain::{run_to_the_end, with_client, Drained};
use crate::client::options::{Due, EnqueueOptions, Enqueued, Unique, Uniqueness};
use crate::jetstream::time;
use crate::{Client, EnqueueError};

/// How long a recording client's requests to the server (task states,
/// cancellations, queues, dead letters) wait before they fail: its
/// connection never opens, so they could only time out.
const RECORDING_TIMEOUT: Duration = Duration::from_millis(50);

/// Where a recording client keeps what it was asked to enqueue.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    recorded: Mutex<Vec<Recorded>>,
    /// Set on an inline client: what to run its tasks with.
    inline: Option<Inline>,
}

/// How an inline client runs its tasks, and what became of them.
#[derive(Debug)]
struct Inline {
    states: StateMap,
    ran: Mutex<Vec<Drained>>,
    /// Whether an enqueue of this client is running tasks: an enqueue
    /// made by a handler meanwhile only records its task, which the
    /// running loop takes next.
    running: AtomicBool,
}

/// Clears [`Inline::running`] when the loop ends, even by a panic.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// One recorded enqueue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recorded {
    /// The task's wire name.
    pub task: &'static str,
    /// Its queue.
    pub queue: &'static str,
    /// Its id (the one given with [`EnqueueOptions::id`], or a new one).
    pub id: TaskId,
    /// The payload, as JSON.
    pub payload: serde_json::Value,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// When it is due, for a delayed task (`enqueue_in`, `enqueue_at`).
    pub due: Option<SystemTime>,
    /// The headers it would be published with, after the client's
    /// middleware ran.
    pub headers: HeaderMap,
    pub(super) entry: TaskEntry,
    pub(super) body: Vec<u8>,
    /// The unique lock's key, for a unique task.
    unique: Option<String>,
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` on queue `{}`: {} ({})",
            self.task,
            self.queue,
            self.payload,
            match self.due.and_then(time::rfc3339) {
                Some(due) => format!("due {due}"),
                None => "due now".to_owned(),
            }
        )
    }
}

/// The key of the unique lock `uniqueness` asks `task` to take, if any,
/// refused as the real enqueue refuses it.
fn unique_key<T: Task>(task: &T, uniqueness: Uniqueness) -> Result<Option<String>, EnqueueError> {
    let unique = match uniqueness {
        Uniqueness::Declared => Unique::declared(task),
        Uniqueness::Off => None,
        Uniqueness::Key(unique) => Some(unique),
    };
    unique.map(Unique::lock_key::<T>).transpose()
}

impl Recorder {
    /// Records `task`, and on an inline client runs it (and what its
    /// handler enqueues) before answering.
    pub(crate) async fn enqueue<T: Task>(
        &self,
        client: &Client,
        task: &T,
        options: EnqueueOptions,
    ) -> Result<Enqueued, EnqueueError> {
        let enqueued = self.record(client, task, options)?;
        let Some(inline) = &self.inline else {
            return Ok(enqueued);
        };
        if inline.running.swap(true, Ordering::SeqCst) {
            return Ok(enqueued);
        }
        let _running = Running(&inline.running);
        let states = with_client(inline.states.clone(), client);
        while let Some(recorded) = self.take_first() {
            let drained = run_to_the_end(recorded, &states, Backoff::DEFAULT).await;
            inline.ran.lock().expect("recorder poisoned").push(drained);
        }
        Ok(enqueued)
    }

    /// Records `task` as `client` would have enqueued it: encoded, with its
    /// headers and the client's middleware (which may reject it). A chosen
    /// id already recorded is answered as JetStream would answer its
    /// duplicate: `created: false`, nothing stored; so is a unique task
    /// whose key a recorded task (one not yet run) holds, with the
    /// holder's id.
    pub(crate) fn record<T: Task>(
        &self,
        client: &Client,
        task: &T,
        options: EnqueueOptions,
    ) -> Result<Enqueued, EnqueueError> {
        let now = SystemTime::now();
        let due = match options.due {
            Some(Due::In(delay)) if !delay.is_zero() => Some(
                now.checked_add(delay)
                    .ok_or(EnqueueError::TooFarAhead { task: T::NAME })?,
            ),
            Some(Due::At(at)) if at > now => Some(at),
            _ => None,
        };
        let id = options.id.unwrap_or_else(TaskId::new);
        let unique = unique_key(task, options.unique)?;
        let (headers, body) = client.prepare(task, id, |_| {})?;
        let mut recorded = self.recorded.lock().expect("recorder poisoned");
        if options.id.is_some() && recorded.iter().any(|r| r.id == id) {
            return Ok(Enqueued { id, created: false });
        }
        if let Some(holder) = recorded
            .iter()
            .find(|r| unique.is_some() && r.unique == unique)
        {
            return Ok(Enqueued {
                id: holder.id,
                created: false,
            });
        }
        recorded.push(Recorded {
            task: T::NAME,
            queue: T::QUEUE,
            id,
            payload: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            enqueued_at: now,
            due,
            headers,
            entry: T::ENTRY,
            body,
            unique,
        });
        Ok(Enqueued { id, created: true })
    }

    /// Every recorded enqueue, oldest first.
    pub(crate) fn all(&self) -> Vec<Recorded> {
        self.recorded.lock().expect("recorder poisoned").clone()
    }

    /// Forgets every recorded enqueue.
    pub(crate) fn clear(&self) {
        self.recorded.lock().expect("recorder poisoned").clear();
    }

    /// Takes the oldest recorded enqueue out.
    pub(super) fn take_first(&self) -> Option<Recorded> {
        let mut recorded = self.recorded.lock().expect("recorder poisoned");
        (!recorded.is_empty()).then(|| recorded.remove(0))
    }

    /// A list of what was recorded, for failure messages.
    fn listing(&self) -> String {
        let recorded = self.recorded.lock().expect("recorder poisoned");
        if recorded.is_empty() {
            return "nothing was enqueued".to_owned();
        }
        let mut out = format!("enqueued were ({}):", recorded.len());
        for r in recorded.iter() {
            let _ = write!(out, "\n  - {r}");
        }
        out
    }
}

impl Client {
    /// A client whose enqueues run the task at once, through its real
    /// handler with `states` for its `State<T>` parameters (and itself
    /// for `State<Client>`, unless `states` has one), as
    /// [`drain`](crate::testing::drain) runs it: retried at once until it
    /// succeeds or a worker would dead-letter it. Tasks its handler
    /// enqueues through this client run after it, before the first
    /// enqueue returns. The enqueue answers as usual, whatever the task's
    /// outcome; [`ran`](crate::testing::ran) hands out the outcomes. Like
    /// [`Client::recording`], it never connects.
    ///
    /// ```
    /// use natask_runtime::testing::{self, StateMap};
    /// use natask_runtime::{task, Client, State, TaskError};
    ///
    /// struct Rate(u64);
    ///
    /// #[task(queue = "billing")]
    /// async fn charge(rate: State<Rate>, hours: u64) -> Result<u64, TaskError> {
    ///     Ok(rate.0 * hours)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut states = StateMap::new();
    /// states.insert(Rate(90));
    /// let client = Client::inline(states);
    /// Charge::new(3).enqueue(&client).await.unwrap();
    /// assert_eq!(testing::ran(&client)[0].last.output::<u64>(), 270);
    /// # }
    /// ```
    ///
    /// # Panics
    /// Outside a Tokio runtime (`#[tokio::test]` provides one).
    pub fn inline(states: StateMap) -> Client {
        let inline = Inline {
            states,
            ran: Mutex::default(),
            running: AtomicBool::new(false),
        };
        Client::recording_on(
            never_connected(),
            Arc::new(Recorder {
                recorded: Mutex::default(),
                inline: Some(inline),
            }),
            RECORDING_TIMEOUT,
        )
    }

    /// A client that records every enqueue (`enqueue`, `enqueue_with`,
    /// `enqueue_in`, `enqueue_at`, `enqueue_many` and the generated
    /// `.enqueue(&client)`) instead of publishing it, and never connects
    /// to NATS. Read what it recorded with [`enqueued`](crate::testing::enqueued),
    /// [`assert_enqueued`](crate::testing::assert_enqueued) and
    /// [`recorded`](crate::testing::recorded); run it with
    /// [`drain`](crate::testing::drain). Clones, and clients made from it
    /// with `with_*`, share its records.
    ///
    /// Requests that need a server (`task_info`, `cancel`, `wait`, queues,
    /// dead letters, recurring schedules, provisioning) fail within 50 ms
    /// (their timeout error), and a runtime cannot be built on it.
    ///
    /// # Panics
    /// Outside a Tokio runtime (`#[tokio::test]` provides one).
    pub fn recording() -> Client {
        Client::recording_on(never_connected(), Arc::default(), RECORDING_TIMEOUT)
    }
}

/// An async-nats client that never opens its connection.
fn never_connected() -> async_nats::Client {
    assert!(
        tokio::runtime::Handle::try_current().is_ok(),
        "a recording or inline client must be made inside a Tokio runtime (`#[tokio::test]`)"
    );
    // The client's connection task waits for its first attempt forever (a
    // century), so no connection is ever opened, and async-nats needs no
    // server to hand out a client.
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .reconnect_delay_callback(|_| Duration::from_secs(100 * 365 * 24 * 3600))
        .connect("nats://127.0.0.1:4222")
        .now_or_never()
        .expect("async-nats hands out a retrying client at once")
        .expect("the address parses")
}

/// The recorder of a recording client.
#[track_caller]
pub(super) fn recorder_of(client: &Client) -> &Arc<Recorder> {
    client.recorder().unwrap_or_else(|| {
        panic!(
            "this client publishes to NATS; make it with `Client::recording()` to record enqueues"
        )
    })
}

/// Every enqueue `client` (a [`Client::recording`] client) recorded, oldest
/// first, whatever its task.
#[track_caller]
pub fn recorded(client: &Client) -> Vec<Recorded> {
    recorder_of(client).all()
}

/// The tasks of type `T` `client` (a [`Client::recording`] client) was asked
/// to enqueue, oldest first, decoded from what it recorded.
#[track_caller]
pub fn enqueued<T: Task>(client: &Client) -> Vec<T> {
    recorder_of(client)
        .all()
        .into_iter()
        .filter(|r| r.task == T::NAME)
        .map(|r| {
            serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("recorded task `{}` does not decode: {e}", T::NAME))
        })
        .collect()
}

/// Asserts that `client` (a [`Client::recording`] client) recorded a task of
/// type `T` for which `matches` holds; the panic lists what was enqueued.
///
/// ```
/// use natask_runtime::{task, testing, Client};
///
/// #[task(queue = "emails")]
/// async fn send_email(to: String) {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client = Client::recording();
/// SendEmail::new("ada@example.com".into()).enqueue(&client).await.unwrap();
/// testing::assert_enqueued::<SendEmail>(&client, |t| t.to == "ada@example.com");
/// # }
/// ```
#[track_caller]
pub fn assert_enqueued<T: Task>(client: &Client, matches: impl Fn(&T) -> bool) {
    if !enqueued::<T>(client).iter().any(matches) {
        panic!(
            "expected a `{}` task (queue `{}`) matching the predicate to be enqueued, but none was; {}",
            T::NAME,
            T::QUEUE,
            recorder_of(client).listing()
        );
    }
}

/// Asserts that `client` (a [`Client::recording`] client) recorded no task of
/// type `T` for which `matches` holds; the panic lists what was enqueued.
#[track_caller]
pub fn refute_enqueued<T: Task>(client: &Client, matches: impl Fn(&T) -> bool) {
    let found = enqueued::<T>(client).iter().filter(|t| matches(t)).count();
    if found > 0 {
        panic!(
            "expected no `{}` task (queue `{}`) matching the predicate to be enqueued, but {found} was; {}",
            T::NAME,
            T::QUEUE,
            recorder_of(client).listing()
        );
    }
}

/// Takes the outcomes of the tasks `client` (a [`Client::inline`] client)
/// ran since the last call, in the order they ran.
#[track_caller]
pub fn ran(client: &Client) -> Vec<Drained> {
    let inline = recorder_of(client).inline.as_ref().unwrap_or_else(|| {
        panic!("this client does not run tasks; make it with `Client::inline(states)`")
    });
    std::mem::take(&mut *inline.ran.lock().expect("recorder poisoned"))
}

/// Forgets every enqueue `client` (a [`Client::recording`] client) recorded.
#[track_caller]
pub fn clear(client: &Client) {
    recorder_of(client).clear();
}
