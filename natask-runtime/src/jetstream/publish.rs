//! Publishing to a stream across a leader election: a message nobody
//! answered (no leader yet, a connection moving to another server, an
//! acknowledgement lost with the leader that died) is sent again with the
//! same headers — and so the same `Nats-Msg-Id` — until JetStream answers.
//! Callers bound the whole with their own timeout.

use std::time::Duration;

use async_nats::jetstream::context::traits::TimeoutProvider;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;

use super::error;

/// JetStream's answer to a message sent until answered.
pub(crate) struct Answered {
    pub(crate) ack: PublishAck,
    /// Whether an earlier send may have been stored without an answer: a
    /// "duplicate" answer is then most likely that send's.
    pub(crate) unanswered: bool,
}

impl Answered {
    /// Whether the message was stored before this publish (a duplicate
    /// that none of this publish's own sends can explain).
    pub(crate) fn duplicate(&self) -> bool {
        self.ack.duplicate && !self.unanswered
    }
}

/// How long one send waits for its acknowledgement before the message is
/// sent again: a quarter of the context's timeout (at least 250 ms), so a
/// lost acknowledgement costs a resend, not the whole timeout.
pub(crate) fn ack_wait(js: &jetstream::Context) -> Duration {
    (js.timeout() / 4).max(Duration::from_millis(250))
}

/// The pause before resend number `n` (from 0): 25 ms doubling to 400 ms.
pub(crate) fn pause(n: u32) -> Duration {
    Duration::from_millis(25 << n.min(4))
}

/// Whether a publish that failed with `e` may be sent again: nothing
/// answered, or the cluster said it is not available yet. Anything else is
/// the stream's answer about this message.
pub(crate) fn is_transient(e: &PublishError) -> bool {
    match e.kind() {
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe => true,
        PublishErrorKind::Other => matches!(
            error::code(e),
            Some(ErrorCode::CLUSTER_NOT_AVAILABLE | ErrorCode::CLUSTER_NOT_LEADER)
        ),
        _ => false,
    }
}

/// Whether a send that failed with `e` may have been stored: everything
/// but "no responders", which means nobody received it.
pub(crate) fn maybe_stored(e: &PublishError) -> bool {
    e.kind() != PublishErrorKind::StreamNotFound
}

/// Sends `payload` with `headers` to `subject` until JetStream answers,
/// or fails with an error that is not [transient](is_transient).
/// `unanswered`: whether an earlier send of the same message may have been
/// stored without an answer.
pub(crate) async fn until_answered(
    js: &jetstream::Context,
    subject: Subject,
    headers: HeaderMap,
    payload: Bytes,
    mut unanswered: bool,
) -> Result<Answered, PublishError> {
    let wait = ack_wait(js);
    let mut resend = 0;
    loop {
        let answer = match js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
            .await
        {
            Ok(ack) => tokio::time::timeout(wait, ack)
                .await
                .unwrap_or_else(|_| Err(PublishError::new(PublishErrorKind::TimedOut))),
            Err(e) => Err(e),
        };
        match answer {
            Ok(ack) => return Ok(Answered { ack, unanswered }),
            Err(e) if is_transient(&e) => {
                unanswered |= maybe_stored(&e);
                tracing::debug!(%subject, resend, error = %e, "no answer from JetStream; sending again");
                tokio::time::sleep(pause(resend)).await;
                resend += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_back_off_to_400ms() {
        let pauses: Vec<u64> = (0..7).map(|n| pause(n).as_millis() as u64).collect();
        assert_eq!(pauses, [25, 50, 100, 200, 400, 400, 400]);
    }
}
