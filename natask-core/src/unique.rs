//! Unique tasks: the vocabulary shared by `#[task(unique = "..")]` and the
//! runtime, which holds the locks.

use core::fmt;
use core::time::Duration;

/// How long the lock of a unique task is held: always until its TTL runs
/// out, and, with `until`, no longer than until the task reaches that stage.
///
/// The TTL is mandatory so that a lock whose task never reaches the stage
/// (its message was purged, or the producer died between taking the lock
/// and publishing) cannot block new tasks for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniquePolicy {
    /// The lock's lifetime at most, in whole seconds (at least one: the
    /// server's per-message TTL has a resolution of one second).
    pub ttl: Duration,
    /// The stage at which the worker releases the lock early, if any.
    pub until: Option<Until>,
}

/// The stage of a unique task at which a worker releases its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Until {
    /// When a worker starts its first attempt: at most one task *waiting*
    /// per key (a new one may be enqueued while it runs).
    Started,
    /// When an attempt succeeds: a task that fails and is retried keeps the
    /// key; one that ends in the dead-letter stream keeps it until its TTL.
    Succeeded,
    /// When it succeeds or ends in the dead-letter stream: at most one task
    /// per key waiting, running or being retried.
    Finished,
}

impl Until {
    /// Every stage, in the order a task reaches them.
    pub const ALL: [Until; 3] = [Until::Started, Until::Succeeded, Until::Finished];

    /// The stage as written in `#[task(unique_until = "..")]` and in the
    /// `Natask-Unique-Until` header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Until::Started => "started",
            Until::Succeeded => "succeeded",
            Until::Finished => "finished",
        }
    }

    /// The stage named `text` (as [`as_str`](Until::as_str) writes it).
    pub fn parse(text: &str) -> Option<Until> {
        Until::ALL.into_iter().find(|u| u.as_str() == text)
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        for u in Until::ALL {
            assert_eq!(Until::parse(u.as_str()), Some(u));
        }
        assert_eq!(Until::parse("Started"), None);
    }
}
