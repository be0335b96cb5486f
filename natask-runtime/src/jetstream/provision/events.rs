//! Event streams and the consumers of subscriptions, through the same
//! paths as queues' (`docs/events.md`).

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

use super::{assets, once, ConsumerSettings, ProvisionError, Provisioner};

impl Provisioner {
    /// The stream of event `event`, found or created with `retention`.
    pub(crate) async fn event_stream(
        &self,
        event: &str,
        retention: Duration,
    ) -> Result<stream::Stream, ProvisionError> {
        let config = assets::event_stream_config(&self.names, event, retention, self.replicas());
        self.stream(config, None).await
    }

    /// Makes sure the stream of `event` exists (once per client, as
    /// [`ensure_queue`](Self::ensure_queue)).
    pub(crate) async fn ensure_event(
        &self,
        event: &str,
        retention: Duration,
    ) -> Result<(), ProvisionError> {
        once(&self.ensured(&format!("ev:{event}")), || async {
            self.event_stream(event, retention).await.map(drop)
        })
        .await
        .map(drop)
    }

    /// The durable consumer of subscription `subscription` to `event`
    /// (and the event's stream), as [`queue_consumer`](Self::queue_consumer)
    /// finds or creates a queue's; `start` applies only when it is created.
    pub(crate) async fn subscription_consumer(
        &self,
        event: &str,
        retention: Duration,
        subscription: &str,
        start: natask_core::Start,
        settings: &ConsumerSettings,
    ) -> Result<consumer::PullConsumer, ProvisionError> {
        let stream = self.event_stream(event, retention).await?;
        let _ = self.ensured(&format!("ev:{event}")).set(());
        let config =
            assets::subscription_consumer_config(&self.names, event, subscription, start, settings);
        self.consumer(&stream, config, subscription, settings).await
    }
}
