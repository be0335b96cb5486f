//! Not public API: used by code `#[task]` generates.

pub use crate::{
    Client, EnqueueError, EnqueueOptions, Enqueued, PublishError, Published, UniquePolicy, Until,
};
pub use linkme;
pub use natask_core::event::{Event, Start, SubscriberEntry, SUBSCRIBERS};
pub use natask_core::handler::{decode, upgrade};
pub use natask_core::registry::TASKS;
pub use natask_core::task::{
    assert_payload_field, fail, DecodeFails, DecodeHolds, FinishFails, FinishHolds, PayloadField,
    Probe,
};
pub use natask_core::{
    Backoff, HandlerFuture, IntoTaskResult, Invocation, StateKey, Task, TaskEntry, TaskError,
    TaskId,
};
pub use serde;
pub use serde_json;

use core::future::Future;

/// `enqueue` and its siblings on a generated struct, when it is a [`Task`]
/// (see [`Probe`]): each passes the [`EnqueueOptions`] it stands for.
pub trait EnqueueHolds<T> {
    /// Enqueues `task` as `options` say.
    fn enqueue_task<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;
}

impl<T: Task> EnqueueHolds<T> for Probe<T> {
    fn enqueue_task<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        client.enqueue_with(task, options)
    }
}

/// The fallback, picked only when a payload assertion fails (never run).
pub trait EnqueueFails<T> {
    /// Never completes.
    fn enqueue_task<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;
}

impl<T> EnqueueFails<T> for &Probe<T> {
    fn enqueue_task<'a>(
        &self,
        _: &'a Client,
        _: &'a T,
        _: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        core::future::pending()
    }
}
