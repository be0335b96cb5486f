//! Repeating JetStream message schedules (`Nats-Schedule`, nats-server
//! 2.14+), put in place the same way for cron tasks (`worker::cron`) and
//! for recurring schedules made at run time (`client::recurring`): read
//! what the subject holds, publish only what changed, and tell the
//! server's refusals apart.

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;

use super::error::{self, SCHEDULE_PATTERN_INVALID, SCHEDULE_TIME_ZONE_INVALID};
use super::headers::{
    CONTENT_TYPE, FORMAT, NATS_SCHEDULE, NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE, TASK,
};

/// Why the server did not store a schedule.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Error 10189: nats-server 2.12 and 2.13 know only `@at` (measured on
    /// 2.12.0), and every version refuses a date that never occurs, such as
    /// `0 0 0 30 2 *`.
    Pattern,
    /// Error 10223: the server does not know the time zone.
    TimeZone,
    /// Any other failure of the read or the publish.
    JetStream(async_nats::Error),
}

/// Whether the schedule was published or already in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    Published,
    Unchanged,
}

/// Stores the schedule `headers` with `body` on `subject` of `stream`,
/// unless the subject already holds the same: republishing an unchanged
/// schedule would restart an `@every` interval (measured on nats-server
/// 2.15.1), so a fleet restarting more often than the interval would never
/// tick.
pub(crate) async fn put<I>(
    js: &jetstream::Context,
    stream: &stream::Stream<I>,
    subject: String,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Put, Refused> {
    if let Ok(stored) = stream.direct_get_last_for_subject(subject.as_str()).await {
        if unchanged(Some(&stored.headers), &headers) && stored.payload == body {
            return Ok(Put::Unchanged);
        }
    }
    let published = match js.publish_with_headers(subject, headers, body).await {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    published.map(|_| Put::Published).map_err(|e| {
        let e: async_nats::Error = e.into();
        if error::is(&*e, SCHEDULE_TIME_ZONE_INVALID) {
            Refused::TimeZone
        } else if error::is(&*e, SCHEDULE_PATTERN_INVALID) {
            Refused::Pattern
        } else {
            Refused::JetStream(e)
        }
    })
}

/// Whether a stored schedule's headers already say what `wanted` says.
pub(crate) fn unchanged(stored: Option<&HeaderMap>, wanted: &HeaderMap) -> bool {
    let Some(stored) = stored else { return false };
    [
        NATS_SCHEDULE,
        NATS_SCHEDULE_TARGET,
        NATS_SCHEDULE_TIME_ZONE,
        TASK,
        FORMAT,
        CONTENT_TYPE,
    ]
    .into_iter()
    .all(|name| {
        stored.get(name.clone()).map(|v| v.as_str()) == wanted.get(name).map(|v| v.as_str())
    })
}
