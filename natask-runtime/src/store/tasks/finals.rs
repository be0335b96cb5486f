//! Final states, and how a worker knows JetStream stored them.
//!
//! On a bucket with replicas, each final state asks for JetStream's
//! answer and is sent again while none comes (a leader election can lose
//! a write that was sent).
//!
//! On a bucket without replicas, states go out as plain publishes and one
//! of them at a time asks for an answer. One connection's publishes reach
//! a stream in the order they were sent, and a single server has no
//! leader to change, so the answer to a state covers every state sent
//! before it on the same connection. Were a reconnect to happen in
//! between (the connection's `connects` count moved), or no answer come,
//! every state of the batch is written again one by one, each waiting
//! for its answer ([`TaskStore::record`]). Measured with
//! `scripts/cpu-split`: the answer per task cost the server and the
//! worker about a fifth of a tracked task's throughput (BENCHMARKS.md).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use futures_util::future::{join_all, Either};

use super::{state_subject, TaskInfo, TaskStore};
use crate::jetstream::assets::Bucket;
use crate::jetstream::publish;

/// How long a batch waits, with no confirmation running, for a new
/// state to carry its confirmation before it sends one of its own.
const HANDOFF: Duration = Duration::from_millis(2);

/// A running confirmation: dropped before it ends (its tokio runtime shut
/// down), it lets the next state lead, so that the states after it are
/// still confirmed.
struct Leading(Arc<Mutex<Chain>>, bool);

impl Drop for Leading {
    fn drop(&mut self) {
        if self.1 {
            if let Ok(mut chain) = self.0.lock() {
                chain.confirming = false;
            }
        }
    }
}

/// The final states of one client's tasks on a bucket without replicas.
#[derive(Default)]
pub(super) struct Chain {
    /// A state that asked for an answer is in flight.
    confirming: bool,
    /// Sent as plain publishes and not yet covered by an answer, each
    /// with the connection's `connects` count when it was sent.
    pending: Vec<(TaskInfo, u64)>,
}

impl TaskStore {
    /// Sends a worker's final view of a task now (on the wire before the
    /// task's ack that follows), and returns the wait for JetStream's
    /// answer, if this state carries one, for the worker to await beside
    /// its handler slot.
    pub(crate) async fn send_final(
        &self,
        info: TaskInfo,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let Ok(store) = self.bucket().await else {
            return Some(Either::Left(self.clone().answered(None, info)));
        };
        let subject = state_subject(store, info.id);
        let js = self.provisioner.js();
        if store.stream.cached_info().config.num_replicas > 1 {
            let sent = js.publish(subject, info.encode()).await.ok();
            return Some(Either::Left(self.clone().answered(sent, info)));
        }
        let nats = js.client();
        let connects = connects(&nats);
        // A state that leads takes what is pending first: those were sent
        // before it, so its answer covers them; states pending after this
        // are the next batch's.
        let leads = {
            let mut chain = self.chain.lock().expect("final states poisoned");
            (!std::mem::replace(&mut chain.confirming, true))
                .then(|| std::mem::take(&mut chain.pending))
        };
        if let Some(mut batch) = leads {
            let ack = js.publish(subject, info.encode()).await.ok();
            batch.push((info, connects));
            return Some(Either::Right(self.clone().confirm(batch, ack)));
        }
        let sent = nats.publish(subject, info.encode()).await;
        let mut chain = self.chain.lock().expect("final states poisoned");
        if sent.is_err() {
            drop(chain);
            return Some(Either::Left(self.clone().answered(None, info)));
        }
        chain.pending.push((info, connects));
        if chain.confirming {
            return None;
        }
        // The confirmation ended while this state was sent: it confirms
        // what is pending itself.
        chain.confirming = true;
        let batch = std::mem::take(&mut chain.pending);
        drop(chain);
        Some(Either::Right(self.clone().confirm(batch, None)))
    }

    /// Waits for the answer to one state, `sent` (none if it was not
    /// sent), writing it again while none comes.
    async fn answered(self, sent: Option<PublishAckFuture>, info: TaskInfo) {
        if let Some(ack) = sent {
            let wait = publish::ack_wait(self.provisioner.js());
            if let Ok(Ok(_)) = tokio::time::timeout(wait, ack).await {
                return;
            }
        }
        self.record(&info).await;
    }

    /// Waits for the answer to `batch`'s last state (`ack`, or a write of
    /// it sent again now), writes the batch again one by one if it does
    /// not come, then confirms what was sent meanwhile, until nothing is
    /// pending.
    async fn confirm(self, mut batch: Vec<(TaskInfo, u64)>, mut ack: Option<PublishAckFuture>) {
        let js = self.provisioner.js().clone();
        let mut leading = Leading(Arc::clone(&self.chain), true);
        loop {
            if ack.is_none() {
                let resent = match (self.provisioner.opened(Bucket::Tasks), batch.last()) {
                    (Some(store), Some((last, _))) => js
                        .publish(state_subject(store, last.id), last.encode())
                        .await
                        .ok(),
                    _ => None,
                };
                ack = resent;
            }
            let answered = match ack.take() {
                Some(ack) => matches!(
                    tokio::time::timeout(publish::ack_wait(&js), ack).await,
                    Ok(Ok(_))
                ),
                None => false,
            };
            let connects = connects(&js.client());
            if !answered || batch.iter().any(|(_, sent)| *sent != connects) {
                join_all(batch.iter().map(|(info, _)| self.record(info))).await;
            }
            batch = {
                let mut chain = self.chain.lock().expect("final states poisoned");
                chain.confirming = false;
                leading.1 = false;
                if chain.pending.is_empty() {
                    return;
                }
                Vec::new()
            };
            // Under load a new state comes within the pause and carries
            // the next answer (no extra write); else this sends one.
            tokio::time::sleep(HANDOFF).await;
            let mut chain = self.chain.lock().expect("final states poisoned");
            if chain.confirming || chain.pending.is_empty() {
                return;
            }
            chain.confirming = true;
            leading.1 = true;
            batch.append(&mut chain.pending);
        }
    }
}

/// How often `nats` has connected: a state sent under another count may
/// have been lost with the connection before it.
fn connects(nats: &async_nats::Client) -> u64 {
    nats.statistics().connects.load(Ordering::Relaxed)
}
