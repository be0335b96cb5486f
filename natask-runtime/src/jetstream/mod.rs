//! The JetStream layer: everything natask says to JetStream that is not
//! about one kind of task state. Header names and times as the wire
//! format writes them, which server error a failure is, what each stream,
//! consumer and bucket looks like, the one path that provisions them all,
//! the pull loop that fetches tasks, and the writes tried again until
//! confirmed across a leader election. It knows nothing of clients,
//! workers or stores.

pub(crate) mod assets;
pub(crate) mod confirm;
mod drift;
pub(crate) mod error;
pub(crate) mod headers;
pub(crate) mod message_schedules;
pub(crate) mod permissions;
pub(crate) mod provision;
pub(crate) mod publish;
pub(crate) mod pull;
pub(crate) mod server;
pub(crate) mod time;
