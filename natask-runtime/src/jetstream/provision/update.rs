//! Where a queue's or a shared stream's live configuration differs from
//! what this client would create: reported (a warning at attach,
//! `drift`) and applied on request (`Queue::update`,
//! `Client::update_shared_streams`).

use async_nats::jetstream::stream;

use super::{live_name, ProvisionError, Provisioner};
use crate::jetstream::assets::{self, Bucket};
use crate::jetstream::drift::{consumer_drift, replica_drift, stream_drift};
use crate::policy::{Drift, QueuePolicy};

impl Provisioner {
    /// Logs one warning per differing setting of the attached stream or
    /// consumer (`what`) of `owner`, once per client (and the runtimes built
    /// from it) and value.
    pub(super) fn warn_drift(&self, owner: Owner<'_>, what: &str, drift: &[Drift]) {
        for d in drift {
            let first = self
                .warned
                .lock()
                .expect("warned set poisoned")
                .insert(format!("{owner}\u{0}{what}\u{0}{d}"));
            if !first {
                continue;
            }
            let (wanted_by, fix) = match owner {
                Owner::Queue(_) => ("its policy says", "Queue::update applies the policy"),
                Owner::Shared(_) => (
                    "natask would create it with",
                    "Client::update_shared_streams applies the client's settings",
                ),
            };
            tracing::warn!(
                %owner,
                field = d.field,
                live = %d.live,
                wanted = %d.wanted,
                "the {what} of {owner} has {} = {} but {wanted_by} {}; natask attached to it as it is ({fix})",
                d.field,
                d.live,
                d.wanted,
            );
        }
    }

    /// The streams shared by every queue (dead letters and the buckets), as
    /// this client would create them.
    fn shared_configs(&self) -> Vec<stream::Config> {
        let replicas = self.replicas();
        let mut configs = vec![assets::dead_letter_stream_config(&self.names, replicas)];
        configs.extend(
            // The catalog and the registry are left out: losing them loses
            // no task (runtimes write them again), and a role that does not
            // use them need not be allowed to look at them.
            [Bucket::Tasks, Bucket::Handbacks, Bucket::Unique]
                .map(|b| b.stream_config(&self.names, self.task_retention, replicas)),
        );
        configs
    }

    /// The existing shared streams whose replicas differ from what this
    /// client would create: each live configuration, the replicas wanted,
    /// and the difference.
    async fn drifted_shared(&self) -> Result<Vec<(stream::Config, usize, Drift)>, ProvisionError> {
        let mut drifted = Vec::new();
        for wanted in self.shared_configs() {
            if let Some(stream) = self.existing_stream(&wanted.name).await? {
                let live = stream.cached_info().config.clone();
                if let Some(d) = replica_drift(&live, &wanted) {
                    drifted.push((live, wanted.num_replicas, d));
                }
            }
        }
        Ok(drifted)
    }

    /// Where the existing shared streams differ from what this client
    /// would create (their replicas), by stream name.
    pub(crate) async fn shared_drift(&self) -> Result<Vec<(String, Drift)>, ProvisionError> {
        let drifted = self.drifted_shared().await?;
        Ok(drifted
            .into_iter()
            .map(|(live, _, d)| (live.name, d))
            .collect())
    }

    /// Gives the existing shared streams this client's replicas; returns
    /// what was changed.
    pub(crate) async fn update_shared_streams(
        &self,
    ) -> Result<Vec<(String, Drift)>, ProvisionError> {
        let mut changed = Vec::new();
        for (mut live, replicas, d) in self.drifted_shared().await? {
            live.num_replicas = replicas;
            self.js
                .update_stream(&live)
                .await
                .map_err(|e| self.stream_error(&live.name, e))?;
            tracing::info!(stream = %live.name, from = %d.live, to = %d.wanted, "shared stream updated to the client's replicas");
            changed.push((live.name, d));
        }
        Ok(changed)
    }

    /// What differs between the live stream and consumer of `queue` and its
    /// policy. The consumer's `ack_wait` counts only if the policy sets one.
    pub(crate) async fn queue_drift(&self, queue: &str) -> Result<Vec<Drift>, ProvisionError> {
        let policy = self.policy(queue);
        policy.validate()?;
        let name = self.names.queue_stream(queue);
        let Some(stream) = self.existing_stream(&name).await? else {
            return Err(ProvisionError::NotFound { stream: name });
        };
        let mut drift = stream_drift(&stream.cached_info().config, &policy, self.replicas());
        if let Some(consumer) = self
            .existing_consumer(&stream, natask_core::wire::CONSUMER)
            .await?
        {
            drift.extend(consumer_drift(
                &consumer.cached_info().config,
                policy.max_in_flight,
                policy.ack_wait,
            ));
        }
        Ok(drift)
    }

    /// Updates the stream and (if it exists) the consumer of `queue` to its
    /// policy; returns what was changed.
    pub(crate) async fn update_queue(&self, queue: &str) -> Result<Vec<Drift>, ProvisionError> {
        let policy = self.policy(queue);
        let stream = self.queue_stream(queue).await?;
        let live = stream.cached_info().config.clone();
        let mut changed = stream_drift(&live, &policy, self.replicas());
        if !changed.is_empty() {
            self.update_stream(live, &policy, &changed).await?;
        }
        if let Some(consumer) = self
            .existing_consumer(&stream, natask_core::wire::CONSUMER)
            .await?
        {
            let mut config = consumer.cached_info().config.clone();
            let drift = consumer_drift(&config, policy.max_in_flight, policy.ack_wait);
            if !drift.is_empty() {
                config.max_ack_pending = policy.max_in_flight;
                config.ack_wait = policy.ack_wait.unwrap_or(config.ack_wait);
                stream
                    .update_consumer(config)
                    .await
                    .map_err(|e| self.consumer_error(&live_name(&stream), e))?;
                changed.extend(drift);
            }
        }
        for d in &changed {
            tracing::info!(queue, field = d.field, from = %d.live, to = %d.wanted, "queue updated to its policy");
        }
        Ok(changed)
    }

    /// Rewrites the live stream `live` of a queue to `policy`, refusing
    /// what the server cannot change.
    async fn update_stream(
        &self,
        mut live: stream::Config,
        policy: &QueuePolicy,
        drift: &[Drift],
    ) -> Result<(), ProvisionError> {
        let name = live.name.clone();
        if let Some(d) = drift
            .iter()
            .find(|d| matches!(d.field, "storage" | "retention"))
        {
            return Err(ProvisionError::Immutable {
                stream: name,
                field: d.field,
                live: d.live.clone(),
                wanted: d.wanted.clone(),
            });
        }
        let wanted = assets::queue_stream_config(&self.names, policy, self.replicas());
        live.num_replicas = wanted.num_replicas;
        live.max_messages = wanted.max_messages;
        live.max_bytes = wanted.max_bytes;
        if assets::limited(policy) {
            if wanted.discard == stream::DiscardPolicy::New && live.allow_message_schedules {
                return Err(ProvisionError::RefuseWithDelays { stream: name });
            }
            live.discard = wanted.discard;
        }
        live.duplicate_window = wanted.duplicate_window;
        self.js
            .update_stream(&live)
            .await
            .map_err(|e| self.stream_error(&name, e))?;
        Ok(())
    }
}

/// Whose stream or consumer differs from what natask would create.
#[derive(Clone, Copy)]
pub(super) enum Owner<'a> {
    /// A queue's, compared with its policy.
    Queue(&'a str),
    /// A shared stream or bucket (by stream name), compared with the
    /// client's settings.
    Shared(&'a str),
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Queue(queue) => write!(f, "queue `{queue}`"),
            Owner::Shared(stream) => write!(f, "stream `{stream}`"),
        }
    }
}
