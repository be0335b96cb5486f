//! The IO-free vocabulary of [natask](https://docs.rs/natask-runtime): what a
//! task is, how tasks are collected at link time, how they look on the wire,
//! and what a handler may answer.
//!
//! Users depend on `natask-runtime`, which re-exports everything here that
//! they need. This crate has no IO and no async runtime, so the macro output
//! and other runtimes (a CLI, a test harness) can share it.
//!
//! The grammars of `#[task]`'s arguments live here too, so that the macro
//! checks them at compile time with the same code the runtime uses: names
//! ([`name`]), durations ([`duration`]), backoff policies ([`retry`]) and
//! cron schedules ([`cron`]), with [`spelling`] for their suggestions.
//!
//! ```
//! use natask_core::{name, wire};
//!
//! assert!(name::check("send_email").is_ok());
//! assert_eq!(wire::Names::new("natask").queue_stream("emails"), "NATASK_Q_emails");
//! ```

pub mod context;
pub mod cron;
pub mod duration;
pub mod error;
pub mod event;
pub mod handler;
pub mod name;
pub mod registry;
pub mod retry;
pub mod spelling;
pub mod task;
pub mod unique;
pub mod wire;

pub use context::{Headers, Invocation, State, StateKey, StateMap, TaskContext};
pub use error::{TaskError, TaskErrorKind};
pub use event::{Event, Start, SubscriberEntry};
pub use handler::{HandlerFn, HandlerFuture, IntoTaskResult, TaskOutput};
pub use registry::{RegistryError, TaskEntry};
pub use retry::Backoff;
pub use task::{PayloadField, Task};
pub use unique::{UniquePolicy, Until};
pub use wire::TaskId;
