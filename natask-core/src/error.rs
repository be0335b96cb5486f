//! What a failed handler tells the runtime.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// How the runtime treats a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// Try again after the task's backoff, while attempts remain; then dead-letter.
    Retry,
    /// Do not try again: dead-letter the task now.
    Fatal,
    /// Run the task again after the given delay.
    Snooze(Duration),
    /// The payload could not be decoded into the task's type; no retry can fix that.
    Decode,
    /// The handler panicked. Counts as a failed attempt.
    Panic,
    /// The handler ran past its timeout. Counts as a failed attempt.
    Timeout,
}

/// The error a task handler returns.
///
/// Any `std::error::Error + Send + Sync + 'static` converts into a
/// retryable `TaskError`, so `?` works in handlers. Say what should happen
/// explicitly with [`TaskError::retry`], [`TaskError::fatal`] and
/// [`TaskError::snooze`].
///
/// `TaskError` deliberately does not implement `std::error::Error` itself
/// (like `anyhow::Error`): that is what makes the blanket conversion possible.
///
/// With the `anyhow` feature, `anyhow::Error` converts too (retryable), so
/// `?` works on `anyhow::Result` and a handler may return
/// `anyhow::Result<T>`. Coherence forbids a separate
/// `From<anyhow::Error>` next to the blanket one, so under the feature the
/// blanket conversion is `impl<E: Into<anyhow::Error>> From<E>`: it accepts
/// exactly the same error types plus `anyhow::Error`, and
/// [`get_ref`](TaskError::get_ref) still returns the original error, so
/// downcasting is unaffected.
///
/// ```
/// use natask_core::{TaskError, TaskErrorKind};
///
/// fn parse(n: &str) -> Result<u32, TaskError> {
///     Ok(n.parse::<u32>()?) // retryable by default
/// }
/// assert_eq!(parse("x").unwrap_err().kind(), TaskErrorKind::Retry);
///
/// let e = TaskError::fatal("account closed");
/// assert_eq!(e.kind(), TaskErrorKind::Fatal);
/// assert_eq!(e.to_string(), "account closed");
/// ```
pub struct TaskError {
    kind: TaskErrorKind,
    error: BoxError,
}

impl TaskError {
    fn new(kind: TaskErrorKind, error: impl Into<BoxError>) -> Self {
        TaskError {
            kind,
            error: error.into(),
        }
    }

    /// A failure worth retrying (the default for `?`).
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self::new(TaskErrorKind::Retry, error)
    }

    /// A failure no retry can fix: the task goes to the dead letters now.
    pub fn fatal(error: impl Into<BoxError>) -> Self {
        Self::new(TaskErrorKind::Fatal, error)
    }

    /// Not a failure: run this task again after `delay`.
    pub fn snooze(delay: Duration) -> Self {
        Self::new(
            TaskErrorKind::Snooze(delay),
            format!("snoozed for {delay:?}"),
        )
    }

    /// The payload could not be decoded. Used by generated code.
    #[doc(hidden)]
    pub fn decode(error: impl Into<BoxError>) -> Self {
        Self::new(TaskErrorKind::Decode, error)
    }

    /// The handler panicked with `message`.
    pub fn panic(message: impl Into<String>) -> Self {
        Self::new(
            TaskErrorKind::Panic,
            format!("handler panicked: {}", message.into()),
        )
    }

    /// The handler ran longer than `timeout`.
    pub fn timeout(timeout: Duration) -> Self {
        Self::new(
            TaskErrorKind::Timeout,
            format!("handler timed out after {timeout:?}"),
        )
    }

    /// Turns this error into a fatal one, keeping its message.
    pub fn into_fatal(mut self) -> Self {
        self.kind = TaskErrorKind::Fatal;
        self
    }

    /// How the runtime treats this error.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The underlying error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        #[cfg(feature = "anyhow")]
        if let Some(e) = self.error.downcast_ref::<AnyhowError>() {
            return &*e.0;
        }
        &*self.error
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)?;
        let mut source = self.error.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskError")
            .field("kind", &self.kind)
            .field("error", &self.error)
            .finish()
    }
}

#[cfg(not(feature = "anyhow"))]
impl<E: StdError + Send + Sync + 'static> From<E> for TaskError {
    fn from(error: E) -> Self {
        TaskError::retry(error)
    }
}

// Every `StdError + Send + Sync + 'static` is `Into<anyhow::Error>`, and so
// is `anyhow::Error` itself: the same set as above, plus anyhow.
#[cfg(feature = "anyhow")]
impl<E: Into<anyhow::Error>> From<E> for TaskError {
    fn from(error: E) -> Self {
        TaskError::retry(AnyhowError(error.into()))
    }
}

/// Keeps an `anyhow::Error` as the boxed error; `Display` and `source`
/// are those of the error it wraps, so messages are unchanged.
#[cfg(feature = "anyhow")]
#[derive(Debug)]
struct AnyhowError(anyhow::Error);

#[cfg(feature = "anyhow")]
impl fmt::Display for AnyhowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

#[cfg(feature = "anyhow")]
impl StdError for AnyhowError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        (*self.0).source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("sending failed")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn display_walks_the_source_chain() {
        let e: TaskError = Outer(std::io::Error::other("connection reset")).into();
        assert_eq!(e.to_string(), "sending failed: connection reset");
        assert_eq!(e.kind(), TaskErrorKind::Retry);
        assert_eq!(e.into_fatal().kind(), TaskErrorKind::Fatal);
    }

    #[test]
    fn std_errors_stay_downcastable() {
        let e: TaskError = std::io::Error::other("disk full").into();
        assert!(e.get_ref().downcast_ref::<std::io::Error>().is_some());
        assert_eq!(e.to_string(), "disk full");
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn anyhow_errors_convert_with_their_chain() {
        fn handler() -> Result<(), TaskError> {
            let r: anyhow::Result<()> = Err(anyhow::anyhow!("connection reset"));
            anyhow::Context::context(r, "sending failed")?;
            Ok(())
        }
        let e = handler().unwrap_err();
        assert_eq!(e.kind(), TaskErrorKind::Retry);
        assert_eq!(e.to_string(), "sending failed: connection reset");
    }

    #[test]
    fn constructors_set_kinds() {
        assert_eq!(
            TaskError::snooze(Duration::from_secs(2)).kind(),
            TaskErrorKind::Snooze(Duration::from_secs(2))
        );
        assert_eq!(
            TaskError::panic("boom").to_string(),
            "handler panicked: boom"
        );
        assert_eq!(
            TaskError::timeout(Duration::from_millis(1500)).to_string(),
            "handler timed out after 1.5s"
        );
    }
}
