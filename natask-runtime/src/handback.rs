//! Deliveries that must not spend an attempt.
//!
//! JetStream counts every delivery and cannot be told to count one less. A
//! snoozed task, or one handed back by a stopping worker, is delivered again
//! and would look like a failed attempt. The runtime therefore records such
//! hand-backs per task id in a key-value bucket and subtracts them:
//! `attempt = delivered - handbacks`. The bucket is read only on
//! redeliveries, so the common first delivery costs nothing.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use natask_core::wire::Names;
use natask_core::TaskId;

use crate::policy::Provisioning;
use crate::provision::ProvisionError;

/// Records older than this are dropped by the server.
const RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

#[derive(Clone)]
pub(crate) struct Handbacks {
    store: kv::Store,
}

impl Handbacks {
    pub(crate) async fn provision(
        js: &jetstream::Context,
        names: &Names,
        provisioning: Provisioning,
    ) -> Result<Handbacks, ProvisionError> {
        let bucket = names.handback_bucket();
        let store = match js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) if provisioning == Provisioning::NoCreate => {
                return Err(ProvisionError::Missing {
                    stream: format!("KV_{bucket}"),
                    consumer: None,
                })
            }
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    description: "natask: deliveries per task that did not spend an attempt"
                        .to_owned(),
                    history: 1,
                    max_age: RETENTION,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| ProvisionError::Stream {
                    stream: format!("KV_{bucket}"),
                    source: e.into(),
                })?,
        };
        Ok(Handbacks { store })
    }

    /// Hand-backs recorded for `id`; 0 when unknown or unreadable.
    pub(crate) async fn count(&self, id: TaskId) -> u64 {
        match self.store.get(id.to_string()).await {
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

    /// Records one more hand-back (`known` were recorded before).
    pub(crate) async fn record(&self, id: TaskId, known: u64) {
        let value = (known + 1).to_string();
        if let Err(e) = self
            .store
            .put(id.to_string(), value.into_bytes().into())
            .await
        {
            tracing::warn!(%id, error = %e, "cannot record a hand-back; the next delivery will count as an attempt");
        }
    }

    /// Forgets `id` once it reached an outcome.
    pub(crate) async fn clear(&self, id: TaskId) {
        let _ = self.store.purge(id.to_string()).await;
    }
}
