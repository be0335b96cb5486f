//! Permission violations, as the server reports them: NATS does not answer
//! a request whose publish (or whose reply subscription) it refuses; it
//! sends the connection `-ERR 'Permissions Violation for Publish to
//! "<subject>"'` and drops the message, so the request only times out.
//! async-nats hands that line to the connection's event callback, nowhere
//! else. A [`PermissionWatch`] installed there keeps the last violations,
//! so that a request that failed can be reported as the refusal it was.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many violations a watch keeps (the newest).
const KEPT: usize = 32;

/// Keeps the permission violations the server reported on one connection,
/// so natask can name the refused subject instead of reporting a timeout.
///
/// [`Client::connect_with`](crate::Client::connect_with) (and `connect`,
/// `from_context`) installs one as the connection's event callback. A
/// connection made elsewhere and handed to
/// [`Client::from_nats`](crate::Client::from_nats) has none: install one in
/// your own callback and give it to the client with
/// [`Client::with_permission_watch`](crate::Client::with_permission_watch):
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use natask_runtime::{Client, PermissionWatch};
///
/// let watch = PermissionWatch::new();
/// let seen = watch.clone();
/// let nats = async_nats::ConnectOptions::new()
///     .event_callback(move |event| {
///         seen.observe(&event);
///         async {}
///     })
///     .connect("nats://127.0.0.1:4222")
///     .await?;
/// let client = Client::from_nats(nats).with_permission_watch(watch);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct PermissionWatch {
    seen: Arc<Mutex<VecDeque<PermissionViolation>>>,
}

/// What a permissions violation refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsOperation {
    /// Publishing to the subject (a JetStream API request, a task, a
    /// key-value write).
    Publish,
    /// Subscribing to the subject (a reply inbox, a consumer's deliveries).
    Subscribe,
}

/// One permissions violation the server reported: the operation it
/// refused and the subject. Shown as ``publish to `<subject>` ``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionViolation {
    operation: NatsOperation,
    subject: String,
    at: Instant,
}

impl PermissionViolation {
    /// What was refused.
    pub fn operation(&self) -> NatsOperation {
        self.operation
    }

    /// The subject it was refused on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The violation in a server's `-ERR` text, if it is one:
    /// `Permissions Violation for Publish to "<subject>"` or
    /// `Permissions Violation for Subscription to "<subject>"` (the server
    /// may add `using queue "<group>"`).
    fn parse(text: &str) -> Option<PermissionViolation> {
        let rest = text.trim().strip_prefix("Permissions Violation for ")?;
        let (operation, rest) = if let Some(rest) = rest.strip_prefix("Publish to ") {
            (NatsOperation::Publish, rest)
        } else if let Some(rest) = rest.strip_prefix("Subscription to ") {
            (NatsOperation::Subscribe, rest)
        } else {
            return None;
        };
        let subject = rest.strip_prefix('"')?.split('"').next()?;
        Some(PermissionViolation {
            operation,
            subject: subject.to_owned(),
            at: Instant::now(),
        })
    }
}

impl std::fmt::Display for PermissionViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let operation = match self.operation {
            NatsOperation::Publish => "publish",
            NatsOperation::Subscribe => "subscribe",
        };
        write!(f, "{operation} to `{}`", self.subject)
    }
}

impl PermissionWatch {
    /// A watch that has seen nothing yet.
    pub fn new() -> PermissionWatch {
        PermissionWatch::default()
    }

    /// Keeps `event` if it is a permissions violation; call it from the
    /// connection's event callback with every event.
    pub fn observe(&self, event: &async_nats::Event) {
        let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = event else {
            return;
        };
        if let Some(violation) = PermissionViolation::parse(text) {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() == KEPT {
                seen.pop_front();
            }
            seen.push_back(violation);
        }
    }

    /// Every violation kept (the last 32), oldest first, each subject once.
    pub fn violations(&self) -> Vec<PermissionViolation> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<PermissionViolation> = Vec::new();
        for violation in seen.iter() {
            let known = out
                .iter()
                .any(|v| v.subject == violation.subject && v.operation == violation.operation);
            if !known {
                out.push(violation.clone());
            }
        }
        out
    }

    /// The newest violation reported at `since` or later.
    pub(crate) fn since(&self, since: Instant) -> Option<PermissionViolation> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().rev().find(|v| v.at >= since).cloned()
    }

    /// The violation that explains `source`, a failed request: JetStream
    /// did not answer it (the server answers no request it refuses), and
    /// the server reported a violation within the last `window`.
    pub(crate) fn explain(
        &self,
        source: &(dyn std::error::Error + 'static),
        window: Duration,
    ) -> Option<PermissionViolation> {
        if super::error::code(source).is_some() {
            return None;
        }
        self.within(window)
    }

    /// The newest violation reported within the last `window`.
    pub(crate) fn within(&self, window: Duration) -> Option<PermissionViolation> {
        let since = Instant::now().checked_sub(window)?;
        self.since(since)
    }
}

/// Logs every connection event, as async-nats does not without a callback
/// either, and keeps permission violations in `watch`.
pub(crate) fn callback(
    watch: PermissionWatch,
) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
    move |event| {
        watch.observe(&event);
        match &event {
            async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_) => {
                tracing::warn!(%event, "NATS connection event");
            }
            _ => tracing::info!(%event, "NATS connection event"),
        }
        std::future::ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> async_nats::Event {
        async_nats::Event::ServerError(async_nats::ServerError::Other(text.to_owned()))
    }

    #[test]
    fn server_violations_are_kept_with_their_subject() {
        let watch = PermissionWatch::new();
        let start = Instant::now();
        watch.observe(&error(
            r#"Permissions Violation for Publish to "$JS.API.STREAM.INFO.NATASK_Q_a""#,
        ));
        let seen = watch.since(start).expect("a violation");
        assert_eq!(seen.operation(), NatsOperation::Publish);
        assert_eq!(
            seen.to_string(),
            "publish to `$JS.API.STREAM.INFO.NATASK_Q_a`"
        );

        watch.observe(&error(
            r#"Permissions Violation for Subscription to "_INBOX.x.*" using queue "q""#,
        ));
        let seen = watch.within(Duration::from_secs(60)).expect("a violation");
        assert_eq!(seen.to_string(), "subscribe to `_INBOX.x.*`");
    }

    #[test]
    fn other_errors_and_older_violations_are_not_reported() {
        let watch = PermissionWatch::new();
        watch.observe(&error("Maximum Payload Violation"));
        watch.observe(&async_nats::Event::ServerError(
            async_nats::ServerError::AuthorizationViolation,
        ));
        assert_eq!(watch.within(Duration::from_secs(60)), None);
        watch.observe(&error(r#"Permissions Violation for Publish to "a""#));
        assert_eq!(watch.since(Instant::now() + Duration::from_secs(1)), None);
    }
}
