//! Testing code that uses natask without a NATS server (feature
//! `testing`; add it to your dev-dependencies). `docs/testing.md` has
//! the whole story.
//!
//! - [`perform`] runs one attempt of a task through its real handler
//!   (payload decoding, `State<T>` injection, a [`TaskContext`](crate::TaskContext))
//!   and tells what a worker would do next: retry after which delay, or
//!   dead-letter for which reason.
//! - [`Client::recording`](crate::Client::recording) makes a client that
//!   records its enqueues instead of publishing them;
//!   [`assert_enqueued`], [`refute_enqueued`], [`enqueued`] and
//!   [`recorded`] read what it recorded.
//! - [`drain`] runs what a recording client recorded, retries and tasks
//!   enqueued by handlers included, until each task succeeds or would be
//!   dead-lettered.
//! - [`Client::inline`](crate::Client::inline) makes a client whose
//!   enqueues run the task at once, as `drain` would; [`ran`] hands out
//!   the outcomes.
//!
//! Not simulated: JetStream delivery and redelivery, leases, timeouts of
//! acks, pauses, queue limits, unique locks, cancellation, signatures,
//! the runtime's middleware, and anything another process does.

mod drain;
mod perform;
mod record;

pub use drain::{drain, Drain, Drained};
pub use natask_core::context::StateMap;
pub use perform::{perform, DeadReason, Next, Perform, Performed};
pub(crate) use record::Recorder;
pub use record::{assert_enqueued, clear, enqueued, ran, recorded, refute_enqueued, Recorded};
