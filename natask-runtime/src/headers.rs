//! natask's header names as `HeaderName` constants, built once at compile
//! time instead of parsed from a string on every insert or lookup. The
//! server's schedule headers come from `async_nats::header`.

use async_nats::HeaderName;
use natask_core::wire;

pub(crate) use async_nats::header::{
    NATS_SCHEDULE, NATS_SCHEDULER, NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE,
};

pub(crate) const MSG_ID: HeaderName = HeaderName::from_static(wire::HEADER_MSG_ID);
pub(crate) const ID: HeaderName = HeaderName::from_static(wire::HEADER_ID);
pub(crate) const TASK: HeaderName = HeaderName::from_static(wire::HEADER_TASK);
pub(crate) const FORMAT: HeaderName = HeaderName::from_static(wire::HEADER_FORMAT);
pub(crate) const ENQUEUED_AT: HeaderName = HeaderName::from_static(wire::HEADER_ENQUEUED_AT);
pub(crate) const DUE_AT: HeaderName = HeaderName::from_static(wire::HEADER_DUE_AT);
pub(crate) const CONTENT_TYPE: HeaderName = HeaderName::from_static(wire::HEADER_CONTENT_TYPE);
pub(crate) const UNIQUE: HeaderName = HeaderName::from_static(wire::HEADER_UNIQUE);
pub(crate) const UNIQUE_UNTIL: HeaderName = HeaderName::from_static(wire::HEADER_UNIQUE_UNTIL);
