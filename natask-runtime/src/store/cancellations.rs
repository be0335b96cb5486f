//! A runtime's view of cancellation requests: every `cancel.<id>` key of
//! the task-state bucket seen, and a token for each task running here, so
//! that a requested task does not start and a running one is stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use natask_core::TaskId;

use super::tasks::{TaskStore, CANCEL_PREFIX};
use crate::jetstream::pull;

/// Every cancellation request seen, and a
/// token for each task running here.
#[derive(Default)]
pub(crate) struct Cancellations {
    inner: Mutex<CancelState>,
}

#[derive(Default)]
struct CancelState {
    requested: HashMap<TaskId, Instant>,
    running: HashMap<TaskId, (CancellationToken, Arc<AtomicBool>)>,
    pruned: Option<Instant>,
}

/// A running task's registration; dropping it unregisters the task.
pub(crate) struct Running<'a> {
    cancellations: &'a Cancellations,
    id: TaskId,
    pub(crate) token: CancellationToken,
    pub(crate) flag: Arc<AtomicBool>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self
            .cancellations
            .inner
            .lock()
            .expect("cancellations poisoned");
        // A second delivery of the same task (after a lost lease) may have
        // registered since; leave its entry.
        if state
            .running
            .get(&self.id)
            .is_some_and(|(_, flag)| Arc::ptr_eq(flag, &self.flag))
        {
            state.running.remove(&self.id);
        }
    }
}

impl Cancellations {
    /// Registers `id` as running here, unless its cancellation was seen.
    pub(crate) fn start(&self, id: TaskId) -> Option<Running<'_>> {
        let mut state = self.inner.lock().expect("cancellations poisoned");
        if state.requested.contains_key(&id) {
            return None;
        }
        let token = CancellationToken::new();
        let flag = Arc::new(AtomicBool::new(false));
        state.running.insert(id, (token.clone(), Arc::clone(&flag)));
        Some(Running {
            cancellations: self,
            id,
            token,
            flag,
        })
    }

    /// Records a cancellation request; stops the task if it runs here.
    fn requested(&self, id: TaskId, retention: Duration) {
        let mut state = self.inner.lock().expect("cancellations poisoned");
        let now = Instant::now();
        state.requested.insert(id, now);
        if let Some((token, flag)) = state.running.get(&id) {
            flag.store(true, Ordering::Relaxed);
            token.cancel();
        }
        // Requests older than the bucket's retention are gone from it too.
        if state
            .pruned
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(60))
        {
            state.pruned = Some(now);
            state
                .requested
                .retain(|_, seen| now.duration_since(*seen) < retention);
        }
    }

    /// Follows every `cancel.<id>` key of the bucket (those already there
    /// first) until `stop`; watches again after a failure. `caught_up` is
    /// sent once the requests made before the call are known.
    pub(crate) async fn follow(
        self: Arc<Self>,
        tasks: TaskStore,
        stop: CancellationToken,
        caught_up: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut caught_up = Some(caught_up);
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            match watch(&tasks, &mut caught_up).await {
                Ok(watch) => {
                    if self.read(watch, &tasks, &stop, &mut caught_up).await {
                        failures = 0;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow task cancellations; retrying");
                }
            }
            failures += 1;
            if !pull::backoff(&stop, failures).await {
                return;
            }
        }
    }

    /// Reads the requests `watch` brings until it fails or `stop`; whether
    /// it brought any.
    async fn read(
        &self,
        mut watch: kv::Watch,
        tasks: &TaskStore,
        stop: &CancellationToken,
        caught_up: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> bool {
        let mut read = false;
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                () = stop.cancelled() => return read,
            };
            match entry {
                Some(Ok(entry)) => {
                    read = true;
                    let id = entry
                        .key
                        .strip_prefix(CANCEL_PREFIX)
                        .and_then(|id| id.parse().ok());
                    if let (kv::Operation::Put, Some(id)) = (entry.operation, id) {
                        self.requested(id, tasks.retention());
                    }
                    if entry.delta == 0 {
                        caught_up.take().map(|tx| tx.send(()));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "following task cancellations failed; watching again");
                    return read;
                }
                None => return read,
            }
        }
    }
}

/// A watch of every cancellation request, those already made first;
/// `caught_up` is sent at once when there are none.
async fn watch(
    tasks: &TaskStore,
    caught_up: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<kv::Watch, String> {
    let store = tasks.bucket().await.map_err(|e| e.to_string())?;
    let watch = store
        .watch_with_history(format!("{CANCEL_PREFIX}>"))
        .await
        .map_err(|e| e.to_string())?;
    if !has_cancellations(store).await {
        caught_up.take().map(|tx| tx.send(()));
    }
    Ok(watch)
}

/// Whether the bucket holds any cancellation request (if unsure, yes).
async fn has_cancellations(store: &kv::Store) -> bool {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let subject = format!("{}{CANCEL_PREFIX}>", store.prefix);
    match store.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(_) => true,
        Err(e) => e.kind() != LastRawMessageErrorKind::NoMessageFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_task_does_not_start_and_a_running_one_is_stopped() {
        let cancellations = Cancellations::default();
        let (a, b) = (TaskId::new(), TaskId::new());
        let running = cancellations.start(a).expect("not cancelled yet");
        cancellations.requested(a, Duration::from_secs(60));
        assert!(running.token.is_cancelled());
        assert!(running.flag.load(Ordering::Relaxed));
        cancellations.requested(b, Duration::from_secs(60));
        assert!(cancellations.start(b).is_none());
        drop(running);
        assert!(cancellations.inner.lock().unwrap().running.is_empty());
    }
}
