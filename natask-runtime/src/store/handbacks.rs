//! Deliveries that must not spend an attempt.
//!
//! JetStream counts every delivery and cannot be told to count one less. A
//! snoozed task, or one handed back by a stopping worker, is delivered again
//! and would look like a failed attempt. The runtime therefore records such
//! hand-backs per task id in a key-value bucket and subtracts them:
//! `attempt = delivered - handbacks`. The bucket is read only on
//! redeliveries, so the common first delivery costs nothing.
//!
//! An event reaches every subscription with one id, and each subscription
//! counts its own deliveries: its hand-backs are kept under the id and the
//! subscription (`<id>.<consumer>`), a task's under its id alone.

use std::sync::Arc;

use async_nats::jetstream::{self, kv};

use natask_core::{wire, TaskId};

use crate::jetstream::assets::Bucket;
use crate::jetstream::provision::{ProvisionError, Provisioner};

#[derive(Clone)]
pub(crate) struct Handbacks {
    provisioner: Arc<Provisioner>,
}

impl Handbacks {
    /// The hand-backs of the bucket `provisioner` finds or creates; fails
    /// now if it can do neither.
    pub(crate) async fn open(provisioner: Arc<Provisioner>) -> Result<Handbacks, ProvisionError> {
        provisioner.bucket(Bucket::Handbacks).await?;
        Ok(Handbacks { provisioner })
    }

    async fn store(&self) -> Result<&kv::Store, ProvisionError> {
        self.provisioner.bucket(Bucket::Handbacks).await
    }

    /// Hand-backs recorded for `id`, delivered as `msg`; 0 when unknown or
    /// unreadable.
    pub(crate) async fn count(&self, id: TaskId, msg: &jetstream::Message) -> u64 {
        let read = match self.store().await {
            Ok(store) => store.get(key(id, msg)).await.map_err(Into::into),
            Err(e) => Err(async_nats::Error::from(e)),
        };
        match read {
            Ok(Some(v)) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            Ok(None) => 0,
            Err(e) => {
                tracing::warn!(%id, error = %e, "cannot read the task's hand-backs; counting every delivery as an attempt");
                0
            }
        }
    }

    /// Records one more hand-back of `id`, delivered as `msg` (`known`
    /// were recorded before).
    pub(crate) async fn record(&self, id: TaskId, msg: &jetstream::Message, known: u64) {
        let value = (known + 1).to_string();
        let written = match self.store().await {
            Ok(store) => store
                .put(key(id, msg), value.into_bytes().into())
                .await
                .map(drop)
                .map_err(Into::into),
            Err(e) => Err(async_nats::Error::from(e)),
        };
        if let Err(e) = written {
            tracing::warn!(%id, error = %e, "cannot record a hand-back; the next delivery will count as an attempt");
        }
    }

    /// Forgets `id`, delivered as `msg`, once it reached an outcome.
    pub(crate) async fn clear(&self, id: TaskId, msg: &jetstream::Message) {
        if let Ok(store) = self.store().await {
            let _ = store.purge(key(id, msg)).await;
        }
    }
}

/// The key of the hand-backs of `id` delivered as `msg`: the id, and for a
/// message a subscription's consumer delivered (not `workers`), that
/// consumer's name too.
fn key(id: TaskId, msg: &jetstream::Message) -> String {
    match msg.info() {
        Ok(info) if info.consumer != wire::CONSUMER => format!("{id}.{}", info.consumer),
        _ => id.to_string(),
    }
}
