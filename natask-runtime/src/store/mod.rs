//! The store layer: what natask keeps about tasks besides the tasks
//! themselves, each in a key-value bucket the JetStream layer provisions.
//! Task states and cancellation requests (`tasks`, `cancellations`), the
//! locks of unique tasks (`locks`), the deliveries that did not spend an
//! attempt (`handbacks`), and the live catalog and worker registry
//! (`fleet`). Producers and workers both use these; a store
//! knows neither.

pub(crate) mod cancellations;
pub(crate) mod fleet;
pub(crate) mod handbacks;
pub(crate) mod locks;
pub(crate) mod tasks;
