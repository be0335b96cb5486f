//! Running what a recording client recorded, as workers would, at once.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use natask_core::context::{StateKey, StateMap};
use natask_core::{Backoff, TaskId};

use super::perform::{DeadReason, Next, Perform, Performed};
use super::record::{recorder_of, Recorded};
use crate::Client;

/// How many snoozes in a row `drain` follows before it gives up on a task:
/// a handler that always snoozes would otherwise never end the drain.
const MAX_SNOOZES: u32 = 100;

/// How many tasks one drain runs at most: tasks that enqueue each other
/// forever would otherwise never end it.
const MAX_TASKS: usize = 10_000;

/// Runs every task `client` (a [`Client::recording`] client) recorded,
/// oldest first, through its real handler, as [`perform`](super::perform)
/// does: a failed attempt that a worker would retry is retried at once
/// (the backoff is not waited out), a snooze too, until the task succeeds
/// or a worker would dead-letter it. Delayed tasks run in their turn
/// without waiting for their due time. Tasks that handlers enqueue
/// through the same recording client (given to them as
/// [`state`](Drain::state)) run in the same drain, after those before
/// them; the recording client itself is their `State<Client>` unless
/// another was given. What ran is taken out of the recorder. Await it for one
/// [`Drained`] per task, in the order they ran.
///
/// ```
/// use natask_runtime::{task, testing, Client, State, TaskError};
///
/// #[task(queue = "orders")]
/// async fn place_order(client: State<Client>, order: u64) -> Result<(), TaskError> {
///     ShipOrder::new(order).enqueue(&client).await.map_err(TaskError::fatal)?;
///     Ok(())
/// }
///
/// #[task(queue = "orders")]
/// async fn ship_order(order: u64) -> Result<u64, TaskError> {
///     Ok(order)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client = Client::recording();
/// PlaceOrder::new(7).enqueue(&client).await.unwrap();
/// let drained = testing::drain(&client).await;
/// assert_eq!(drained.len(), 2);
/// assert_eq!(drained[1].last.output::<u64>(), 7);
/// # }
/// ```
pub fn drain(client: &Client) -> Drain {
    Drain {
        client: client.clone(),
        states: StateMap::new(),
        backoff: Backoff::DEFAULT,
    }
}

/// A drain, configured; built by [`drain`], run by `.await`.
#[must_use = "await it to run the recorded tasks"]
pub struct Drain {
    client: Client,
    states: StateMap,
    backoff: Backoff,
}

impl Drain {
    /// Registers shared state for `State<T>` parameters, like
    /// [`RuntimeBuilder::state`](crate::RuntimeBuilder::state).
    pub fn state<S: Send + Sync + 'static>(mut self, value: S) -> Self {
        self.states.insert(value);
        self
    }

    /// Registers shared state that is already in an `Arc`.
    pub fn state_arc<S: Send + Sync + 'static>(mut self, value: Arc<S>) -> Self {
        self.states.insert_arc(value);
        self
    }

    /// The backoff of tasks that declare none, for the delays reported in
    /// [`Drained::delays`] (default [`Backoff::DEFAULT`]).
    pub fn default_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    async fn run(self) -> Vec<Drained> {
        let recorder = Arc::clone(recorder_of(&self.client));
        let states = with_client(self.states, &self.client);
        let mut drained = Vec::new();
        while let Some(recorded) = recorder.take_first() {
            assert!(
                drained.len() < MAX_TASKS,
                "`drain` ran {MAX_TASKS} tasks and more keep coming; do the tasks enqueue each other forever?"
            );
            drained.push(run_to_the_end(recorded, &states, self.backoff).await);
        }
        drained
    }
}

/// `states`, with `client` as `State<Client>` unless one was given: the
/// handlers' enqueues are then recorded where the test reads them.
pub(super) fn with_client(mut states: StateMap, client: &Client) -> StateMap {
    if !states.contains(&StateKey::of::<Client>()) {
        states.insert(client.clone());
    }
    states
}

/// Runs `recorded` as workers would, retries and snoozes at once, until a
/// worker would be done with it.
pub(super) async fn run_to_the_end(
    recorded: Recorded,
    states: &StateMap,
    backoff: Backoff,
) -> Drained {
    let mut attempt = 1;
    let mut snoozes = 0;
    let mut delays = Vec::new();
    let last = loop {
        let performed = Perform::new(recorded.entry, recorded.body.clone())
            .states(states.clone())
            .id(recorded.id)
            .attempt(attempt)
            .default_backoff(backoff)
            .enqueued_at(recorded.enqueued_at);
        let performed = match recorded.due {
            Some(due) => performed.due_at(due),
            None => performed,
        }
        .await;
        match performed.next {
            Next::Retry { after } => {
                delays.push(after);
                attempt += 1;
            }
            Next::Snooze { after } if snoozes < MAX_SNOOZES => {
                delays.push(after);
                snoozes += 1;
            }
            _ => break performed,
        }
    };
    Drained {
        task: recorded.task,
        id: recorded.id,
        attempts: attempt,
        delays,
        last,
    }
}

impl IntoFuture for Drain {
    type Output = Vec<Drained>;
    type IntoFuture = Pin<Box<dyn Future<Output = Vec<Drained>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// What became of one task in a [`drain`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Drained {
    /// The task's wire name.
    pub task: &'static str,
    /// Its id.
    pub id: TaskId,
    /// The attempts it spent (snoozes spend none).
    pub attempts: u32,
    /// The delays a worker would have waited between its runs (retry
    /// backoffs and snoozes), which the drain did not wait.
    pub delays: Vec<std::time::Duration>,
    /// Its last attempt: [`Next::Done`] if it succeeded, [`Next::Dead`] if
    /// a worker would have dead-lettered it, [`Next::Snooze`] if it still
    /// snoozed after 100 snoozes in a row.
    pub last: Performed,
}

impl Drained {
    /// Whether the task succeeded.
    pub fn succeeded(&self) -> bool {
        self.last.next == Next::Done
    }

    /// Why and with what error the task was dead-lettered, if it was.
    pub fn dead(&self) -> Option<(DeadReason, &str)> {
        match &self.last.next {
            Next::Dead { reason, error } => Some((*reason, error)),
            _ => None,
        }
    }
}
