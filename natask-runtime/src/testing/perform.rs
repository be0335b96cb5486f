//! Running one attempt of a task's handler, as a worker would, and
//! telling what the worker would do next.

use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;

use natask_core::context::StateMap;
use natask_core::{Backoff, Headers, Invocation, Task, TaskContext, TaskEntry, TaskError, TaskId};

use crate::worker::attempt::{next_step, panic_message, NextStep};
use crate::worker::dead_letter::Reason;
use crate::{DEFAULT_RETRIES, DEFAULT_TIMEOUT};

/// Runs one attempt of `task` through its real handler: the payload is
/// encoded and decoded as on the wire, `State<T>` parameters get what
/// [`state`](Perform::state) registered, and `&TaskContext` a context with
/// the attempt, id and deadline asked for. Await it for the [`Performed`].
///
/// ```
/// use natask_runtime::{task, testing, State, TaskError};
///
/// struct Greeting(&'static str);
///
/// #[task(queue = "greetings")]
/// async fn greet(greeting: State<Greeting>, name: String) -> Result<String, TaskError> {
///     Ok(format!("{}, {name}", greeting.0))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let performed = testing::perform(Greet::new("Ada".into()))
///     .state(Greeting("Hello"))
///     .await;
/// assert_eq!(performed.output::<String>(), "Hello, Ada");
/// # }
/// ```
pub fn perform<T: Task>(task: T) -> Perform {
    let payload = serde_json::to_vec(&task)
        .unwrap_or_else(|e| panic!("`perform`: task `{}` does not encode: {e}", T::NAME));
    Perform::new(T::ENTRY, payload)
}

/// One attempt to run, configured; built by [`perform`], run by `.await`.
#[must_use = "await it to run the handler"]
pub struct Perform {
    entry: TaskEntry,
    payload: Vec<u8>,
    states: StateMap,
    id: TaskId,
    attempt: u32,
    max_attempts: Option<u32>,
    timeout: Option<Duration>,
    backoff: Backoff,
    enqueued_at: SystemTime,
    due_at: Option<SystemTime>,
    headers: Headers,
}

impl Perform {
    pub(super) fn new(entry: TaskEntry, payload: Vec<u8>) -> Perform {
        Perform {
            entry,
            payload,
            states: StateMap::new(),
            id: TaskId::new(),
            attempt: 1,
            max_attempts: None,
            timeout: None,
            backoff: Backoff::DEFAULT,
            enqueued_at: SystemTime::now(),
            due_at: None,
            headers: Headers::new(),
        }
    }

    /// Registers shared state for `State<T>` parameters, like
    /// [`RuntimeBuilder::state`](crate::RuntimeBuilder::state).
    pub fn state<S: Send + Sync + 'static>(mut self, value: S) -> Self {
        self.states.insert(value);
        self
    }

    /// Registers shared state that is already in an `Arc`, like
    /// [`RuntimeBuilder::state_arc`](crate::RuntimeBuilder::state_arc).
    pub fn state_arc<S: Send + Sync + 'static>(mut self, value: Arc<S>) -> Self {
        self.states.insert_arc(value);
        self
    }

    pub(super) fn states(mut self, states: StateMap) -> Self {
        self.states = states;
        self
    }

    /// The attempt to run, from 1 (default 1).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// The attempts the task gets in all (default: the task's `retries` + 1,
    /// or [`DEFAULT_RETRIES`] + 1 as a runtime would).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// The task's id (default a new one); it also seeds the retry backoff.
    pub fn id(mut self, id: TaskId) -> Self {
        self.id = id;
        self
    }

    /// How long the attempt may run, and so the context's
    /// [`deadline`](TaskContext::deadline) (default: the task's `timeout`,
    /// or [`DEFAULT_TIMEOUT`]). A handler still running then fails with a
    /// timeout error, as in a worker.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The backoff of tasks that declare none (default [`Backoff::DEFAULT`],
    /// as [`RuntimeBuilder::default_backoff`](crate::RuntimeBuilder::default_backoff)).
    pub fn default_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// When a delayed task was due, for [`TaskContext::due_at`].
    pub fn due_at(mut self, due_at: SystemTime) -> Self {
        self.due_at = Some(due_at);
        self
    }

    pub(super) fn enqueued_at(mut self, at: SystemTime) -> Self {
        self.enqueued_at = at;
        self
    }

    /// Adds a header the handler sees in [`TaskContext::headers`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(name, value);
        self
    }

    async fn run(self) -> Performed {
        let entry = self.entry;
        if let Some(missing) = entry.states.iter().find(|k| !self.states.contains(k)) {
            panic!(
                "task `{}` needs `State<{type_name}>`, but no value of that type was given; \
                 add `.state(value)` with a `{type_name}`",
                entry.name,
                type_name = missing.type_name()
            );
        }
        let max_attempts = self
            .max_attempts
            .unwrap_or_else(|| entry.retries.unwrap_or(DEFAULT_RETRIES).saturating_add(1));
        let timeout = self.timeout.unwrap_or_else(|| {
            entry
                .timeout_ms
                .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
        });
        let ctx = TaskContext::new(
            self.id,
            entry.name,
            entry.queue,
            self.attempt,
            max_attempts,
            Some(self.enqueued_at),
            timeout,
            self.headers,
        )
        .with_due_at(self.due_at)
        // The payload is this version's own: no upgrade runs.
        .with_version(entry.version);
        let invocation = Invocation {
            payload: &self.payload,
            context: &ctx,
            states: &self.states,
        };
        let handler = AssertUnwindSafe((entry.handler)(invocation)).catch_unwind();
        let result = match tokio::time::timeout(timeout, handler).await {
            Err(_) => Err(TaskError::timeout(timeout)),
            Ok(Err(panic)) => Err(TaskError::panic(panic_message(&*panic))),
            Ok(Ok(result)) => result,
        };
        let backoff = entry.backoff.unwrap_or(self.backoff);
        let (result, next) = match result {
            Ok(output) => {
                let value = serde_json::from_slice(&output).unwrap_or(serde_json::Value::Null);
                (Ok(value), Next::Done)
            }
            Err(error) => {
                let next = match next_step(error.kind(), &ctx, backoff) {
                    NextStep::Snooze(after) => Next::Snooze { after },
                    NextStep::Retry(after) => Next::Retry { after },
                    NextStep::Dead(reason) => Next::Dead {
                        reason: DeadReason::from(reason),
                        error: error.to_string(),
                    },
                };
                (Err(error), next)
            }
        };
        Performed {
            task: entry.name,
            queue: entry.queue,
            id: self.id,
            attempt: self.attempt,
            max_attempts,
            result,
            next,
        }
    }
}

impl IntoFuture for Perform {
    type Output = Performed;
    type IntoFuture = Pin<Box<dyn Future<Output = Performed> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// What one attempt did, and what a worker would do next.
#[derive(Debug)]
#[non_exhaustive]
pub struct Performed {
    /// The task's wire name.
    pub task: &'static str,
    /// Its queue.
    pub queue: &'static str,
    /// Its id.
    pub id: TaskId,
    /// The attempt that ran, from 1.
    pub attempt: u32,
    /// The attempts the task gets in all.
    pub max_attempts: u32,
    /// The handler's `Ok` value as JSON, or its error: returned, or made
    /// from a panic ([`TaskErrorKind::Panic`](crate::TaskErrorKind::Panic))
    /// or a timeout ([`TaskErrorKind::Timeout`](crate::TaskErrorKind::Timeout)).
    pub result: Result<serde_json::Value, TaskError>,
    /// What a worker does next.
    pub next: Next,
}

impl Performed {
    /// Whether the handler succeeded.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The handler's `Ok` value, decoded as `R`.
    ///
    /// # Panics
    /// If the handler failed, or its value is not an `R`.
    #[track_caller]
    pub fn output<R: serde::de::DeserializeOwned>(&self) -> R {
        match &self.result {
            Ok(value) => serde_json::from_value(value.clone()).unwrap_or_else(|e| {
                panic!(
                    "task `{}` returned {value}, which does not decode as `{}`: {e}",
                    self.task,
                    std::any::type_name::<R>()
                )
            }),
            Err(error) => panic!(
                "task `{}` failed on attempt {} with {:?} error `{error}`; it returned no value",
                self.task,
                self.attempt,
                error.kind()
            ),
        }
    }

    /// The handler's error, if it failed.
    pub fn error(&self) -> Option<&TaskError> {
        self.result.as_ref().err()
    }
}

/// What a worker does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// The task succeeded; it is removed from its queue.
    Done,
    /// The task runs again as its next attempt, after this delay (the
    /// task's backoff, seeded by its id).
    Retry {
        /// The backoff delay.
        after: Duration,
    },
    /// The handler snoozed: the task runs again after this delay without
    /// spending an attempt.
    Snooze {
        /// The delay asked for.
        after: Duration,
    },
    /// The task is dead-lettered.
    Dead {
        /// Why (`Natask-Reason` on the dead letter).
        reason: DeadReason,
        /// The error recorded with it.
        error: String,
    },
}

/// Why a task that ran was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadReason {
    /// It failed on its last attempt (`exhausted`).
    Exhausted,
    /// The handler returned a fatal error (`fatal`).
    Fatal,
    /// The payload did not decode into the task's type (`decode`).
    Decode,
}

impl From<Reason> for DeadReason {
    fn from(reason: Reason) -> Self {
        match reason {
            Reason::Fatal => DeadReason::Fatal,
            Reason::Decode => DeadReason::Decode,
            // The decision for a task that ran names only these three.
            _ => DeadReason::Exhausted,
        }
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeadReason::Exhausted => "exhausted",
            DeadReason::Fatal => "fatal",
            DeadReason::Decode => "decode",
        })
    }
}
