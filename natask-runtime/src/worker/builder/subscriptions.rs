//! The subscriptions a runtime serves: the linked `#[subscribe]` handlers
//! of the services picked, each provisioned and served by a worker loop
//! like a queue's.

use std::collections::HashMap;
use std::time::Duration;

use natask_core::{event, SubscriberEntry};

use super::{BuildError, RuntimeBuilder};
use crate::jetstream::assets::ConsumerSettings;
use crate::worker::fetch::{QueueWorker, Source};

impl RuntimeBuilder {
    /// The subscriptions to serve: linked (unless
    /// [`only_registered`](Self::only_registered)), one per definition,
    /// only the services asked for, each with its state.
    pub(super) fn subscriptions(&self) -> Result<Vec<&'static SubscriberEntry>, BuildError> {
        // Queues picked and no services: the selection has no services.
        let picked = self.queues.is_none() || self.services.is_some();
        let mut linked: Vec<&'static SubscriberEntry> = if self.use_linked && picked {
            event::subscribers().iter().collect()
        } else {
            Vec::new()
        };
        // Only the services picked: another service's mistake is not
        // this runtime's.
        if let Some(wanted) = &self.services {
            if let Some(service) = wanted
                .iter()
                .find(|w| !linked.iter().any(|s| s.service == *w))
            {
                let mut known: Vec<_> = linked.iter().map(|s| format!("`{}`", s.service)).collect();
                known.sort();
                known.dedup();
                return Err(BuildError::UnknownService {
                    service: service.clone(),
                    known: known.join(", "),
                });
            }
            linked.retain(|s| wanted.iter().any(|w| w == s.service));
        }
        let mut out: Vec<&'static SubscriberEntry> = Vec::new();
        for sub in linked {
            let same = out
                .iter()
                .find(|o| o.event == sub.event && o.task.queue == sub.task.queue);
            match same {
                Some(seen) if seen.task.location() == sub.task.location() => {}
                Some(seen) => {
                    return Err(BuildError::DuplicateSubscription {
                        subscription: sub.task.queue,
                        event: sub.event,
                        first: seen.task.location(),
                        second: sub.task.location(),
                    })
                }
                None => out.push(sub),
            }
        }
        out.sort_by_key(|s| (s.event, s.task.queue));
        self.check_states(out.iter().map(|s| &s.task))?;
        Ok(out)
    }

    /// Provisions the consumer of subscription `sub` (and its event's
    /// stream); the worker loop that will serve it, through the same
    /// attempt pipeline as a queue. Its policy is the one registered under
    /// the subscription's name, if any. Events are not tracked.
    pub(super) async fn subscribe(
        &self,
        sub: &'static SubscriberEntry,
    ) -> Result<QueueWorker, BuildError> {
        let subscription = sub.task.queue;
        let policy = self.client.provisioner().policy(subscription);
        policy.validate()?;
        let settings = ConsumerSettings::of(&policy, self.config.ack_wait);
        let retention = Duration::from_millis(sub.retention_ms);
        let consumer = self
            .client
            .provisioner()
            .subscription_consumer(sub.event, retention, subscription, sub.start, &settings)
            .await?;
        let handlers = HashMap::from([(sub.event, sub.task)]);
        let source = Source::Subscription(sub);
        let worker = self.worker(subscription, source, consumer, handlers, &policy, settings);
        tracing::info!(
            service = sub.service,
            event = sub.event,
            subscription,
            concurrency = worker.concurrency,
            "serving subscription"
        );
        Ok(worker)
    }
}
