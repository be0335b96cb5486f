//! What a handler is given besides its payload: the task's context and the
//! shared state registered on the runtime.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::wire::TaskId;

/// Headers of a task message, in the order they arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Everything about the running attempt of a task.
///
/// A handler receives it by declaring a `ctx: &TaskContext` parameter.
#[derive(Debug, Clone)]
pub struct TaskContext {
    id: TaskId,
    task: &'static str,
    queue: &'static str,
    attempt: u32,
    max_attempts: u32,
    enqueued_at: Option<SystemTime>,
    due_at: Option<SystemTime>,
    version: u32,
    deadline: Instant,
    headers: Headers,
    cancelled: Arc<AtomicBool>,
}

impl TaskContext {
    /// Builds a context. The runtime does this for every attempt; tests may too.
    #[allow(clippy::too_many_arguments)] // a plain data constructor, every field is needed
    pub fn new(
        id: TaskId,
        task: &'static str,
        queue: &'static str,
        attempt: u32,
        max_attempts: u32,
        enqueued_at: Option<SystemTime>,
        timeout: Duration,
        headers: Headers,
    ) -> Self {
        TaskContext {
            id,
            task,
            queue,
            attempt,
            max_attempts,
            enqueued_at,
            due_at: None,
            version: 1,
            deadline: Instant::now() + timeout,
            headers,
            cancelled: Arc::default(),
        }
    }

    /// Shares `flag` as this context's cancellation flag: the runtime sets
    /// it when the task is cancelled while it runs.
    pub fn with_cancellation(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancelled = flag;
        self
    }

    /// Whether the task was cancelled (`Client::cancel`) while this attempt
    /// runs. The runtime then drops the handler's future, so async code
    /// stops at its next await point by itself; code that runs without
    /// awaiting for long (a loop in `spawn_blocking` holding a clone of
    /// this context) should check this and stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The task's id, as returned by `enqueue`.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's wire name.
    pub fn task_name(&self) -> &'static str {
        self.task
    }

    /// The queue the task came from.
    pub fn queue(&self) -> &'static str {
        self.queue
    }

    /// The attempt now running, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many attempts the task gets in all (retries + 1).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a failure of this attempt sends the task to the dead letters.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// When the task was enqueued, if the producer said so.
    pub fn enqueued_at(&self) -> Option<SystemTime> {
        self.enqueued_at
    }

    /// Sets [`due_at`](Self::due_at).
    pub fn with_due_at(mut self, due_at: Option<SystemTime>) -> Self {
        self.due_at = due_at;
        self
    }

    /// When a delayed task was due (`enqueue_in`/`enqueue_at`); `None` for
    /// a task enqueued to run at once.
    pub fn due_at(&self) -> Option<SystemTime> {
        self.due_at
    }

    /// Sets the payload version the message carried (`Natask-Version`).
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The payload version the task was enqueued with (`#[task(version =
    /// ..)]` of its producer; 1 when the message says none). A handler
    /// whose task declares an `upgrade` got the payload upgraded from it.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// When this attempt times out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The message headers other than natask's own (`Natask-*` and
    /// `Nats-Msg-Id`, which this context's accessors expose): those a
    /// middleware or producer added, such as `traceparent`.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// Shared state registered on the runtime builder, injected into handlers by
/// type: a parameter `mailer: State<Mailer>` receives what
/// `.state(Mailer::new())` registered. Cloning is cheap (an `Arc`).
pub struct State<T: ?Sized>(Arc<T>);

impl<T: ?Sized> State<T> {
    /// Wraps an `Arc`.
    pub fn from_arc(value: Arc<T>) -> Self {
        State(value)
    }

    /// The inner `Arc`.
    pub fn into_arc(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        State(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&&*self.0).finish()
    }
}

/// A state type a task needs, as recorded in its registry entry.
#[derive(Clone, Copy)]
pub struct StateKey {
    id: fn() -> TypeId,
    name: fn() -> &'static str,
}

impl StateKey {
    /// The key of `T`.
    pub const fn of<T: Send + Sync + 'static>() -> Self {
        StateKey {
            id: TypeId::of::<T>,
            name: std::any::type_name::<T>,
        }
    }

    /// The type's id.
    pub fn type_id(&self) -> TypeId {
        (self.id)()
    }

    /// The type's name, for error messages.
    pub fn type_name(&self) -> &'static str {
        (self.name)()
    }
}

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// Shared state by type.
#[derive(Default, Clone)]
pub struct StateMap(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl StateMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `value`, replacing an earlier value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// Registers a value that is already shared, replacing an earlier value
    /// of the same type.
    pub fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.0.insert(TypeId::of::<T>(), value);
    }

    /// Whether a value of the key's type is registered.
    pub fn contains(&self, key: &StateKey) -> bool {
        self.0.contains_key(&key.type_id())
    }

    /// The value of type `T`, if registered.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        let any = Arc::clone(self.0.get(&TypeId::of::<T>())?);
        any.downcast::<T>().ok().map(State)
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateMap({} values)", self.0.len())
    }
}

/// One call of a handler: the raw payload plus what can be injected.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The message body (JSON).
    pub payload: &'a [u8],
    /// The attempt's context.
    pub context: &'a TaskContext,
    /// The runtime's shared state.
    pub states: &'a StateMap,
}

impl Invocation<'_> {
    /// Looks up `State<T>`; used by generated code.
    #[doc(hidden)]
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<State<T>, crate::TaskError> {
        self.states.get::<T>().ok_or_else(|| {
            crate::TaskError::fatal(format!(
                "task `{}` needs `State<{}>`, which was not registered on the runtime builder",
                self.context.task_name(),
                std::any::type_name::<T>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_map_looks_up_by_type() {
        let mut m = StateMap::new();
        m.insert(41_u32);
        m.insert(String::from("x"));
        m.insert(42_u32);
        assert_eq!(*m.get::<u32>().unwrap(), 42);
        assert_eq!(&*m.get::<String>().unwrap(), "x");
        assert!(m.get::<u64>().is_none());
        assert!(m.contains(&StateKey::of::<String>()));
        assert!(!m.contains(&StateKey::of::<u8>()));
        assert_eq!(StateKey::of::<u8>().type_name(), "u8");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let mut h = Headers::new();
        h.push("Natask-Task", "a");
        assert_eq!(h.get("natask-task"), Some("a"));
        assert_eq!(h.get("missing"), None);
    }
}
