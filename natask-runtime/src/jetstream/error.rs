//! Which JetStream error an error is, wherever async-nats put its code.
//!
//! async-nats carries the server's error code in two places: in the kind of
//! a request's error (`GetStreamErrorKind::JetStream`, ...) and, for
//! publishes and paged requests, as a source in the error's chain. Every
//! check natask makes on a server error goes through [`code`], so a new
//! error kind is taught here once.

// `UpdateStreamError` is `CreateStreamError`: one branch reads both.
use async_nats::jetstream::context::{
    CreateStreamError, CreateStreamErrorKind, GetStreamError, GetStreamErrorKind,
};
use async_nats::jetstream::stream::{
    ConsumerError, ConsumerErrorKind, DeleteMessageError, DeleteMessageErrorKind, PurgeError,
    PurgeErrorKind,
};
use async_nats::jetstream::{self, ErrorCode};

/// "message schedules pattern is invalid": nats-server 2.12 and 2.13 know
/// only `@at`, and every version refuses a date that never occurs.
pub(crate) const SCHEDULE_PATTERN_INVALID: ErrorCode = ErrorCode(10189);
/// "message schedules time zone is invalid".
pub(crate) const SCHEDULE_TIME_ZONE_INVALID: ErrorCode = ErrorCode(10223);
pub(crate) use async_nats::jetstream::ErrorCode as Code;

/// The JetStream error code `e` carries, itself or in its chain of sources.
pub(crate) fn code(e: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(code) = own_code(e) {
            return Some(code);
        }
        next = e.source();
    }
    None
}

/// Whether `e` is (or wraps) the JetStream error `wanted`.
pub(crate) fn is(e: &(dyn std::error::Error + 'static), wanted: ErrorCode) -> bool {
    code(e) == Some(wanted)
}

/// Whether `e` says the stream does not exist.
pub(crate) fn is_stream_not_found(e: &(dyn std::error::Error + 'static)) -> bool {
    is(e, Code::STREAM_NOT_FOUND)
}

/// Whether a stream lookup failed because JetStream could not answer yet
/// (no answer, no responders, or the cluster says it is not available, as
/// during a leader election), not because of the stream.
pub(crate) fn is_unavailable(e: &GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::Request)
        || matches!(
            code(e),
            Some(Code::CLUSTER_NOT_AVAILABLE | Code::CLUSTER_NOT_LEADER)
        )
}

/// The description of the JetStream error `e` carries, without its code
/// (async-nats shows it only through `Display`).
pub(crate) fn description(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(js) = e.downcast_ref::<jetstream::Error>() {
            let shown = js.to_string();
            return Some(shown.split(" (code").next().unwrap_or_default().to_owned());
        }
        next = e.source();
    }
    None
}

fn own_code(e: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    if let Some(js) = e.downcast_ref::<jetstream::Error>() {
        return Some(js.error_code());
    }
    // The request errors whose kind carries the server's error.
    macro_rules! kinds {
        ($($error:ty => $kind:ident),* $(,)?) => {$(
            if let Some(e) = e.downcast_ref::<$error>() {
                if let $kind::JetStream(js) = e.kind() {
                    return Some(js.error_code());
                }
            }
        )*};
    }
    kinds!(
        GetStreamError => GetStreamErrorKind,
        CreateStreamError => CreateStreamErrorKind,
        ConsumerError => ConsumerErrorKind,
        PurgeError => PurgeErrorKind,
        DeleteMessageError => DeleteMessageErrorKind,
    );
    None
}
