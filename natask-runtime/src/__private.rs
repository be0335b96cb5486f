//! Not public API: used by code `#[task]` generates.

pub use crate::{Client, EnqueueError, EnqueueOptions, Enqueued, UniquePolicy, Until};
pub use linkme;
pub use natask_core::handler::decode;
pub use natask_core::registry::TASKS;
pub use natask_core::task::{
    assert_payload_field, fail, DecodeFails, DecodeHolds, FinishFails, FinishHolds, PayloadField,
    Probe,
};
pub use natask_core::{
    Backoff, HandlerFuture, IntoTaskResult, Invocation, StateKey, Task, TaskEntry, TaskId,
};
pub use serde;

use core::future::Future;
use core::time::Duration;
use std::time::SystemTime;

/// `enqueue`, `enqueue_in` and `enqueue_at` on a generated struct, when
/// it is a [`Task`] (see [`Probe`]).
pub trait EnqueueHolds<T> {
    /// Enqueues `task`.
    fn enqueue_task<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

    /// Enqueues `task` as `options` say.
    fn enqueue_task_with<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

    /// Enqueues `task` to run after `delay`.
    fn enqueue_task_in<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        delay: Duration,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

    /// Enqueues `task` to run at `due`.
    fn enqueue_task_at<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        due: SystemTime,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;
}

impl<T: Task> EnqueueHolds<T> for Probe<T> {
    fn enqueue_task<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        client.enqueue(task)
    }

    fn enqueue_task_with<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        client.enqueue_with(task, options)
    }

    fn enqueue_task_in<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        delay: Duration,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        client.enqueue_in(task, delay)
    }

    fn enqueue_task_at<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        due: SystemTime,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        client.enqueue_at(task, due)
    }
}

/// The fallback, picked only when a payload assertion fails (never run).
pub trait EnqueueFails<T> {
    /// Never completes.
    fn enqueue_task<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

    /// Never completes.
    fn enqueue_task_with<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

    /// Never completes.
    fn enqueue_task_in<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        delay: Duration,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;

    /// Never completes.
    fn enqueue_task_at<'a>(
        &self,
        client: &'a Client,
        task: &'a T,
        due: SystemTime,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a;
}

impl<T> EnqueueFails<T> for &Probe<T> {
    fn enqueue_task<'a>(
        &self,
        _: &'a Client,
        _: &'a T,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        core::future::pending()
    }

    fn enqueue_task_with<'a>(
        &self,
        _: &'a Client,
        _: &'a T,
        _: EnqueueOptions,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        core::future::pending()
    }

    fn enqueue_task_in<'a>(
        &self,
        _: &'a Client,
        _: &'a T,
        _: Duration,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        core::future::pending()
    }

    fn enqueue_task_at<'a>(
        &self,
        _: &'a Client,
        _: &'a T,
        _: SystemTime,
    ) -> impl Future<Output = Result<Enqueued, EnqueueError>> + Send + 'a {
        core::future::pending()
    }
}
