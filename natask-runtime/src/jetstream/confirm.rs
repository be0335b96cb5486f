//! Writes that must reach a replicated stream or consumer across a leader
//! election: tried again until JetStream confirms them.
//!
//! While a stream has no leader a publish to it goes unanswered, and while
//! a consumer has none an ack finds nobody listening (`503`, no
//! responders); a write that reached a leader which died before it
//! replicated the write is lost without an answer. A plain ack is a
//! publish with no answer at all: one lost this way brings the task back
//! one ack wait later, to run again. So the writes whose loss costs a
//! second run or a wrong task state are sent as requests, each try bounded
//! by [`TRY`] (a try sent during the election must not hold back the next
//! one once a new leader is in place), and tried again until a deadline:
//! the task's lease, past which JetStream delivers the task again anyway.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use async_nats::Subject;
use tokio::time::Instant;

use super::publish;

/// How long one try waits for its answer.
pub(crate) const TRY: Duration = Duration::from_secs(1);
/// The shortest try, when the deadline is closer than [`TRY`].
const MIN_TRY: Duration = Duration::from_millis(100);

/// Runs `op` until it succeeds, each try bounded by [`TRY`] and the next
/// after a pause as a publish's resend ([`publish::pause`]: 25 ms doubling
/// to 400 ms, so the new leader is found within 400 ms of its election);
/// gives up with the last error once the next try would start after
/// `deadline`. One try is always made.
pub(crate) async fn until<T, E, F, Fut>(
    deadline: Instant,
    mut op: F,
) -> Result<T, async_nats::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<async_nats::Error>,
{
    let mut failures = 0;
    loop {
        let tried_at = Instant::now();
        let bound = TRY
            .min(deadline.saturating_duration_since(tried_at))
            .max(MIN_TRY);
        let error: async_nats::Error = match tokio::time::timeout(bound, op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.into(),
            Err(_) => Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {bound:?}"),
            )),
        };
        // A try that timed out has waited already.
        let pause = publish::pause(failures).saturating_sub(tried_at.elapsed());
        failures += 1;
        if Instant::now() + pause > deadline {
            return Err(error);
        }
        tokio::time::sleep(pause).await;
    }
}

/// The subject `msg` is acknowledged on, and the connection to send it on.
pub(crate) fn ack_subject(
    msg: &jetstream::Message,
) -> Result<(async_nats::Client, Subject), async_nats::Error> {
    let reply = msg
        .reply
        .clone()
        .ok_or("the message has no reply subject; it is not a JetStream delivery")?;
    Ok((msg.context.client(), reply))
}

/// Acknowledges a message on `reply` with `kind` and waits for the
/// consumer's leader to confirm it, which a clustered consumer does once
/// the ack is replicated; tried again until `deadline`. An ack sent twice
/// is confirmed twice.
pub(crate) async fn ack(
    nats: &async_nats::Client,
    reply: Subject,
    kind: AckKind,
    deadline: Instant,
) -> Result<(), async_nats::Error> {
    let payload = bytes::Bytes::from(kind);
    until(deadline, || {
        let request = async_nats::Request::new()
            .payload(payload.clone())
            .timeout(Some(TRY));
        nats.send_request(reply.clone(), request)
    })
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failing_write_is_tried_until_the_deadline_and_a_late_success_counts() {
        let started = Instant::now();
        let mut tries = 0;
        let result: Result<(), _> = until(started + Duration::from_secs(2), || {
            tries += 1;
            async { Err::<(), _>("no responders") }
        })
        .await;
        assert_eq!(result.unwrap_err().to_string(), "no responders");
        // 25 + 50 + 100 + 200 + 400 + 400 + 400 + 400 ms of pauses fit in
        // 2 s; the next would not.
        assert_eq!(tries, 9);

        let mut tries = 0;
        let result = until(Instant::now() + Duration::from_secs(10), || {
            tries += 1;
            let n = tries;
            async move {
                if n < 3 {
                    // an unanswered try waits out its bound
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>(n)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(
            Instant::now() - started,
            Duration::from_millis(1_975) + 2 * TRY
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_try_is_made_even_past_the_deadline() {
        let mut tries = 0;
        let result = until(Instant::now(), || {
            tries += 1;
            async { Ok::<_, std::io::Error>(()) }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(tries, 1);
    }
}
