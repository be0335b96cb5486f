//! Cross-cutting code around enqueueing and processing, without touching
//! handlers: headers, validation, audit, timing, auth, rate limits.
//!
//! A [`Middleware`] has two hooks, both optional: [`on_enqueue`] runs in
//! [`Client::enqueue`](crate::Client::enqueue) before the task is published
//! (it may add headers or refuse the task), and [`around`] wraps every
//! handler call on the worker (it may time, skip, retry or replace it).
//! Middleware runs in the order it was added: the first added is the
//! outermost. natask's own tracing (and, with the `metrics` feature, its
//! metrics) are middleware too, always first.
//!
//! Why not tower: a tower `Service` is `poll_ready` + `call` with an owned
//! request, which forces the task context and payload to be cloned into the
//! request and the handler to be re-boxed as a `Service` for every call. The
//! processing path here already has one boxed future per task; a middleware
//! that wraps that future costs one more box and nothing else. Adapting a
//! tower layer is still possible inside [`around`].
//!
//! ```
//! use natask_runtime::middleware::{Enqueue, Middleware, Next, Rejected};
//! use natask_runtime::{HandlerFuture, TaskContext};
//!
//! /// Stamps every task with the tenant that enqueued it, and refuses none.
//! struct Tenant(&'static str);
//!
//! impl Middleware for Tenant {
//!     fn on_enqueue(&self, task: &mut Enqueue<'_>) -> Result<(), Rejected> {
//!         task.headers_mut().insert("Tenant", self.0);
//!         Ok(())
//!     }
//!
//!     fn around<'a>(&'a self, ctx: &'a TaskContext, next: Next<'a>) -> HandlerFuture<'a> {
//!         Box::pin(async move {
//!             let started = std::time::Instant::now();
//!             let result = next.run().await;
//!             println!("{} took {:?} for tenant {:?}", ctx.task_name(), started.elapsed(), ctx.headers().get("Tenant"));
//!             result
//!         })
//!     }
//! }
//! ```
//!
//! [`on_enqueue`]: Middleware::on_enqueue
//! [`around`]: Middleware::around

use std::fmt;
use std::sync::Arc;

use natask_core::{HandlerFuture, TaskContext, TaskId};

/// Code that runs around enqueueing and around processing. Both hooks do
/// nothing by default.
pub trait Middleware: Send + Sync + 'static {
    /// Called before a task is published; may change its headers or refuse it.
    fn on_enqueue(&self, task: &mut Enqueue<'_>) -> Result<(), Rejected> {
        let _ = task;
        Ok(())
    }

    /// Wraps a handler call; call `next.run()` to go on.
    fn around<'a>(&'a self, ctx: &'a TaskContext, next: Next<'a>) -> HandlerFuture<'a> {
        let _ = ctx;
        next.run()
    }
}

/// A task about to be published, as seen by [`Middleware::on_enqueue`].
pub struct Enqueue<'a> {
    pub(crate) task: &'static str,
    pub(crate) queue: &'static str,
    pub(crate) id: TaskId,
    pub(crate) payload: &'a [u8],
    pub(crate) headers: &'a mut async_nats::HeaderMap,
}

impl Enqueue<'_> {
    /// The task's name.
    pub fn task(&self) -> &'static str {
        self.task
    }

    /// The queue it goes to.
    pub fn queue(&self) -> &'static str {
        self.queue
    }

    /// Its id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The encoded payload (JSON).
    pub fn payload(&self) -> &[u8] {
        self.payload
    }

    /// The headers that will be published; natask's own are already set.
    pub fn headers_mut(&mut self) -> &mut async_nats::HeaderMap {
        self.headers
    }
}

/// A middleware refused to enqueue a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rest of the processing chain, handed to [`Middleware::around`].
pub struct Next<'a> {
    pub(crate) rest: &'a [Arc<dyn Middleware>],
    pub(crate) ctx: &'a TaskContext,
    pub(crate) inner: HandlerFuture<'a>,
}

impl<'a> Next<'a> {
    /// Runs the remaining middleware and the handler.
    pub fn run(self) -> HandlerFuture<'a> {
        match self.rest.split_first() {
            None => self.inner,
            Some((first, rest)) => first.around(
                self.ctx,
                Next {
                    rest,
                    ctx: self.ctx,
                    inner: self.inner,
                },
            ),
        }
    }
}

/// natask's own middleware, always outermost: tracing and, with the
/// `metrics` feature, metrics.
pub(crate) fn builtin() -> Vec<Arc<dyn Middleware>> {
    #[allow(unused_mut)] // pushed to only with the `metrics` feature
    let mut chain: Vec<Arc<dyn Middleware>> = vec![Arc::new(Tracing)];
    #[cfg(feature = "metrics")]
    chain.push(Arc::new(crate::metrics::Metrics::default()));
    chain
}

/// Runs every `on_enqueue` hook in order.
pub(crate) fn enqueue_chain(
    chain: &[Arc<dyn Middleware>],
    task: &mut Enqueue<'_>,
) -> Result<(), Rejected> {
    chain.iter().try_for_each(|m| m.on_enqueue(task))
}

/// The built-in tracing middleware: every handler call runs in a `task`
/// span (task, queue, id, attempt), a child of the producer's trace when
/// the `opentelemetry` feature is on and the task carries a `traceparent`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tracing;

impl Middleware for Tracing {
    fn on_enqueue(&self, task: &mut Enqueue<'_>) -> Result<(), Rejected> {
        #[cfg(feature = "opentelemetry")]
        crate::otel::inject(task.headers);
        let _ = task;
        Ok(())
    }

    fn around<'a>(&'a self, ctx: &'a TaskContext, next: Next<'a>) -> HandlerFuture<'a> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "task",
            task = ctx.task_name(),
            queue = ctx.queue(),
            id = %ctx.id(),
            attempt = ctx.attempt()
        );
        #[cfg(feature = "opentelemetry")]
        crate::otel::set_parent(&span, ctx.headers());
        Box::pin(next.run().instrument(span))
    }
}
