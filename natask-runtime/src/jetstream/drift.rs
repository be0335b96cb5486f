//! Where a live stream or consumer differs from what natask would create.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

use natask_core::wire::Names;

use super::assets::{limited, queue_stream_config};
use crate::policy::{Drift, QueuePolicy};

fn limit(n: i64) -> String {
    if n < 0 {
        "unlimited".to_owned()
    } else {
        n.to_string()
    }
}

/// Where the live stream `live` differs from `policy`, with `replicas`
/// for a policy that sets none.
pub(crate) fn stream_drift(
    live: &stream::Config,
    policy: &QueuePolicy,
    replicas: usize,
) -> Vec<Drift> {
    let wanted = queue_stream_config(&Names::default(), policy, replicas);
    let mut drift = Vec::new();
    if live.retention != wanted.retention {
        drift.push(Drift::new(
            "retention",
            format!("{:?}", live.retention),
            format!("{:?}", wanted.retention),
        ));
    }
    if live.storage != wanted.storage {
        let name = |s| match s {
            stream::StorageType::Memory => "memory",
            _ => "file",
        };
        drift.push(Drift::new(
            "storage",
            name(live.storage),
            name(wanted.storage),
        ));
    }
    drift.extend(replica_drift(live, &wanted));
    if live.max_messages != wanted.max_messages {
        drift.push(Drift::new(
            "max_tasks",
            limit(live.max_messages),
            limit(wanted.max_messages),
        ));
    }
    if live.max_bytes != wanted.max_bytes {
        drift.push(Drift::new(
            "max_bytes",
            limit(live.max_bytes),
            limit(wanted.max_bytes),
        ));
    }
    // Without a limit the discard policy never applies, so a stream created
    // before policies (discard old) is not reported.
    if limited(policy) && live.discard != wanted.discard {
        let when_full = |d| match d {
            stream::DiscardPolicy::New => "refuse",
            _ => "drop_oldest",
        };
        drift.push(Drift::new(
            "when_full",
            when_full(live.discard),
            when_full(wanted.discard),
        ));
    }
    if live.duplicate_window != wanted.duplicate_window {
        drift.push(Drift::new(
            "dedup_window",
            format!("{:?}", live.duplicate_window),
            format!("{:?}", wanted.duplicate_window),
        ));
    }
    drift
}

/// Whether the live stream `live` has other replicas than `wanted`: the
/// one setting of a shared stream or bucket that natask reports.
pub(crate) fn replica_drift(live: &stream::Config, wanted: &stream::Config) -> Option<Drift> {
    (live.num_replicas.max(1) != wanted.num_replicas.max(1)).then(|| {
        Drift::new(
            "replicas",
            live.num_replicas.max(1),
            wanted.num_replicas.max(1),
        )
    })
}

/// Where the live consumer `live` differs from `max_in_flight` and (if
/// given) `ack_wait`.
pub(crate) fn consumer_drift(
    live: &consumer::Config,
    max_in_flight: i64,
    ack_wait: Option<Duration>,
) -> Vec<Drift> {
    let mut drift = Vec::new();
    if live.max_ack_pending != max_in_flight {
        drift.push(Drift::new(
            "max_in_flight",
            live.max_ack_pending,
            max_in_flight,
        ));
    }
    if let Some(wanted) = ack_wait.filter(|w| *w != live.ack_wait) {
        drift.push(Drift::new(
            "ack_wait",
            format!("{:?}", live.ack_wait),
            format!("{wanted:?}"),
        ));
    }
    drift
}
