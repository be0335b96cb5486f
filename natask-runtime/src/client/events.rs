//! Publishing events: [`Client::publish`] stores an event in its stream,
//! where every service's subscription reads it (`docs/events.md`).

use std::time::Duration;

use async_nats::Subject;
use tracing::Instrument;

use natask_core::{wire, Event, TaskId};

use super::Client;
use crate::jetstream::headers::{EVENT, FORMAT, MSG_ID};
use crate::jetstream::permissions::PermissionViolation;
use crate::jetstream::provision::ProvisionError;
use crate::jetstream::publish;

/// A stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The event's id (also its `Nats-Msg-Id`), which every subscriber's
    /// [`TaskContext::id`](crate::TaskContext::id) shows.
    pub id: TaskId,
    /// Its sequence in the event's stream.
    pub sequence: u64,
}

/// An event could not be published. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event does not encode as JSON.
    #[error("event `{event}` could not be encoded as JSON")]
    Encode {
        /// The event's name.
        event: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// The event's stream could not be found or created.
    #[error("the stream of event `{event}` is not available")]
    Provision {
        /// The event's name.
        event: &'static str,
        /// What went wrong.
        #[source]
        source: ProvisionError,
    },
    /// No answer within the client's timeout, e.g. while NATS is
    /// unreachable. The event may or may not have been stored: publish it
    /// again with [`Client::publish_with_id`] and the same id, and
    /// JetStream stores it at most once (within the stream's two-minute
    /// deduplication window).
    #[error(
        "event `{event}` (id {id}) was not confirmed within {timeout:?} and may or may not be \
         stored; is NATS reachable? publish it again with Client::publish_with_id(.., {id}) to \
         store it at most once"
    )]
    Timeout {
        /// The event's name.
        event: &'static str,
        /// The id it was sent with.
        id: TaskId,
        /// The client's timeout.
        timeout: Duration,
    },
    /// The server refused a request this publish needed for lack of
    /// permission, and so never answered it. Reported only on connections
    /// with a [`PermissionWatch`](crate::PermissionWatch).
    #[error(
        "event `{event}` was not published: permission denied: the NATS user may not {violation} \
         (the server reported a permissions violation); grant it (docs/security.md lists what each \
         role needs)"
    )]
    PermissionDenied {
        /// The event's name.
        event: &'static str,
        /// What the server refused.
        violation: PermissionViolation,
    },
    /// JetStream did not store the event.
    #[error("event `{event}` was not stored; publish it again")]
    Publish {
        /// The event's name.
        event: &'static str,
        /// JetStream's error.
        #[source]
        source: async_nats::Error,
    },
}

impl Client {
    /// Publishes `event` to its stream, creating the stream if needed (no
    /// subscription needs to exist); every service subscribed to the event
    /// handles it once. `#[event]` also generates `event.publish(&client)`.
    ///
    /// ```no_run
    /// # use natask_runtime::{event, Client};
    /// #[event]
    /// struct OrderPlaced { order: u64 }
    ///
    /// # async fn demo(client: Client) -> Result<(), natask_runtime::PublishError> {
    /// let published = client.publish(&OrderPlaced { order: 7 }).await?;
    /// println!("event {}", published.id);
    /// # Ok(()) }
    /// ```
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Published, PublishError> {
        self.publish_with_id(event, TaskId::new()).await
    }

    /// Publishes `event` as event `id`: publishing again with the same id
    /// within the stream's two-minute deduplication window stores it once
    /// (as after a [`PublishError::Timeout`]).
    pub async fn publish_with_id<E: Event>(
        &self,
        event: &E,
        id: TaskId,
    ) -> Result<Published, PublishError> {
        let span = tracing::info_span!("publish", event = E::NAME, %id);
        let started = std::time::Instant::now();
        let timeout = self.timeout();
        let published = tokio::time::timeout(timeout, self.publish_as(event, id))
            .instrument(span)
            .await
            .unwrap_or(Err(PublishError::Timeout {
                event: E::NAME,
                id,
                timeout,
            }));
        match published {
            Err(e) if !matches!(e, PublishError::Encode { .. }) => {
                match self.permissions().since(started) {
                    Some(violation) => Err(PublishError::PermissionDenied {
                        event: E::NAME,
                        violation,
                    }),
                    None => Err(e),
                }
            }
            published => published,
        }
    }

    /// Publishes `event` as event `id`, in the `publish` span (whose trace
    /// context the message carries).
    async fn publish_as<E: Event>(&self, event: &E, id: TaskId) -> Result<Published, PublishError> {
        let payload = serde_json::to_vec(event).map_err(|source| PublishError::Encode {
            event: E::NAME,
            source,
        })?;
        self.provisioner()
            .ensure_event(E::NAME, Duration::from_millis(E::RETENTION_MS))
            .await
            .map_err(|source| PublishError::Provision {
                event: E::NAME,
                source,
            })?;
        // Format 2, as a task's: the id is the dedup id, the publish time
        // the stream's.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(EVENT, E::NAME);
        headers.insert(FORMAT, wire::FORMAT_VERSION);
        headers.insert(MSG_ID, id.to_string().as_str());
        #[cfg(feature = "opentelemetry")]
        crate::otel::inject(&mut headers);
        let subject = Subject::from(self.names().event_subject(E::NAME));
        let answered =
            publish::until_answered(self.jetstream(), subject, headers, payload.into(), false)
                .await
                .map_err(|e| PublishError::Publish {
                    event: E::NAME,
                    source: e.into(),
                })?;
        tracing::debug!("event published");
        Ok(Published {
            id,
            sequence: answered.ack.sequence,
        })
    }
}
