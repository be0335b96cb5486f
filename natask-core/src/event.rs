//! Events: the trait `#[event]` implements, and the link-time registry of
//! the subscribers `#[subscribe]` declares.
//!
//! A task goes to one worker; an event goes to every service that
//! subscribes to it, and to one instance of each. Each subscriber is a
//! [`SubscriberEntry`]: the task entry the worker's attempt pipeline runs
//! (retries, backoff, timeout, dead letters), plus the service it belongs
//! to and where a new subscription starts reading.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::registry::TaskEntry;

/// How long an event stream keeps its events when `#[event]` sets no
/// `retention`: 7 days.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// An event type: the struct `#[event]` annotates.
///
/// You do not implement this yourself; `#[event]` does.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a natask event",
    label = "not annotated with `#[event]`",
    note = "annotate the struct with `#[natask_runtime::event]`; `#[subscribe]` handlers take one event as their payload"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event's wire name, e.g. `order_placed`.
    const NAME: &'static str;
    /// How long its stream keeps an event, in milliseconds
    /// (`#[event(retention = "7d")]`, [`DEFAULT_RETENTION_MS`] by default).
    const RETENTION_MS: u64 = DEFAULT_RETENTION_MS;
}

/// Where a new subscription starts reading its event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Start {
    /// Only events published after the subscription's consumer is created
    /// (`start = "new"`, the default).
    New,
    /// Every event the stream still holds (`start = "all"`).
    All,
}

impl Start {
    /// The spelling `#[subscribe(start = ..)]` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Start::New => "new",
            Start::All => "all",
        }
    }

    /// Reads `new` or `all`.
    ///
    /// ```
    /// use natask_core::event::Start;
    /// assert_eq!(Start::parse("all"), Some(Start::All));
    /// assert_eq!(Start::parse("first"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Start> {
        match s {
            "new" => Some(Start::New),
            "all" => Some(Start::All),
            _ => None,
        }
    }
}

/// One `#[subscribe]` handler: which service it belongs to, which event it
/// takes and where it starts. `task` is what the worker runs: its `name`
/// is the event's name and its `queue` the subscription's consumer,
/// `<service>__<handler>` (see [`crate::wire::Names::subscription`]).
#[derive(Clone, Copy)]
pub struct SubscriberEntry {
    /// The service, e.g. `billing`: every instance of it shares the
    /// subscription's consumer.
    pub service: &'static str,
    /// The handler's name (the function's, unless `name = ..` says).
    pub handler: &'static str,
    /// The event's wire name.
    pub event: &'static str,
    /// The event stream's retention in milliseconds ([`Event::RETENTION_MS`]).
    pub retention_ms: u64,
    /// Where a new subscription starts.
    pub start: Start,
    /// The entry the worker's attempt pipeline runs.
    pub task: TaskEntry,
}

impl fmt::Debug for SubscriberEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberEntry")
            .field("service", &self.service)
            .field("handler", &self.handler)
            .field("event", &self.event)
            .field("retention_ms", &self.retention_ms)
            .field("start", &self.start)
            .field("task", &self.task)
            .finish()
    }
}

/// The distributed slice `#[subscribe]` adds to. Not public API.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static SUBSCRIBERS: [SubscriberEntry];

/// Every subscriber linked into this binary.
pub fn subscribers() -> &'static [SubscriberEntry] {
    &SUBSCRIBERS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_crate_links_no_subscribers() {
        assert!(subscribers().is_empty());
        assert_eq!(Start::parse(Start::All.as_str()), Some(Start::All));
        assert_eq!(Start::parse(Start::New.as_str()), Some(Start::New));
    }
}
