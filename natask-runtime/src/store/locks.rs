//! The locks of unique tasks: the key-value bucket `<PREFIX>_UNIQUE`,
//! created with a per-message TTL (nats-server 2.11+).
//!
//! The lock key is the queue, the task name and a SHA-256 of the chosen
//! payload fields; its value is the id of the task holding it. Taking the
//! lock is a publish that expects the key to be empty, so of two producers
//! racing exactly one wins; the other reads the holder. The lock ends with
//! its TTL, or earlier when a worker releases it at the stage the task
//! names in its `Natask-Unique-Until` header. `docs/scheduling.md` ("Unique
//! tasks") has the details.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv;
use async_nats::HeaderMap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use natask_core::{TaskId, Until};

use crate::jetstream::assets::{Bucket, LOCK_MARKER_TTL};
use crate::jetstream::headers::{
    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL, UNIQUE, UNIQUE_UNTIL,
};
use crate::jetstream::provision::{ProvisionError, Provisioner};

/// Attempts to take a lock whose key keeps changing under us (a released or
/// expired lock leaves a marker that itself expires).
const ACQUIRE_ATTEMPTS: usize = 5;

/// The lock bucket could not be used.
#[derive(Debug)]
pub(crate) enum LockError {
    /// The server has no per-message TTL (before 2.11).
    Unsupported {
        /// The version the server reports.
        server_version: String,
    },
    /// The bucket could not be opened, read or written.
    Failed(async_nats::Error),
}

/// The bucket of unique locks, opened (or created) on first use.
#[derive(Clone)]
pub(crate) struct Locks {
    provisioner: Arc<Provisioner>,
}

impl Locks {
    pub(crate) fn new(provisioner: Arc<Provisioner>) -> Locks {
        Locks { provisioner }
    }

    /// The bucket's name.
    pub(crate) fn bucket_name(&self) -> String {
        Bucket::Unique.name(self.provisioner.names())
    }

    async fn store(&self) -> Result<&kv::Store, LockError> {
        let store = match self.provisioner.bucket(Bucket::Unique).await {
            Ok(store) => store,
            Err(ProvisionError::Unsupported { server_version, .. }) => {
                return Err(LockError::Unsupported { server_version })
            }
            Err(e) => return Err(LockError::Failed(e.into())),
        };
        if !store.stream.cached_info().config.allow_message_ttl {
            let bucket = self.bucket_name();
            return Err(LockError::Failed(
                format!(
                    "bucket `{bucket}` exists without per-message TTL; delete it (`nats kv del {bucket}`) and natask creates it again"
                )
                .into(),
            ));
        }
        Ok(store)
    }

    /// Takes `lock` for `id` for `ttl`, or finds who holds it.
    pub(crate) async fn acquire(
        &self,
        lock: &Lock,
        id: TaskId,
        ttl: Duration,
    ) -> Result<Acquired, LockError> {
        let store = self.store().await?;
        acquire(self.provisioner.js(), store, &lock.key, id, ttl)
            .await
            .map_err(LockError::Failed)
    }

    /// Releases the lock `key` taken at `revision` again, after the task it
    /// was taken for could not be stored.
    pub(crate) async fn give_back(&self, key: &str, revision: u64) {
        let released = match self.store().await {
            Ok(store) => store
                .purge_expect_revision_with_ttl(key, revision, LOCK_MARKER_TTL)
                .await
                .map_err(Into::into),
            Err(LockError::Failed(e)) => Err(e),
            Err(LockError::Unsupported { .. }) => return,
        };
        if let Err(e) = released {
            tracing::warn!(%key, error = %e, "the task was not stored and its unique lock could not be released; it ends with its TTL");
        }
    }

    /// A worker is about to run an attempt of the task with `headers`:
    /// releases its lock if it is held until the task starts.
    pub(crate) async fn started(&self, headers: Option<&HeaderMap>, id: TaskId) {
        self.release(headers, id, |until| until == Until::Started)
            .await;
    }

    /// The task with `headers` will never run (it was cancelled or
    /// expired): releases its lock, whatever stage it is held until.
    pub(crate) async fn abandoned(&self, headers: Option<&HeaderMap>, id: TaskId) {
        self.release(headers, id, |_| true).await;
    }

    /// A worker settled an attempt of the task with `headers`: releases its
    /// lock if it is held until the task succeeds (`succeeded`) or finishes
    /// (`for_good`: succeeded or dead-lettered).
    pub(crate) async fn settled(
        &self,
        headers: Option<&HeaderMap>,
        id: TaskId,
        succeeded: bool,
        for_good: bool,
    ) {
        self.release(headers, id, |until| match until {
            Until::Started => false,
            Until::Succeeded => succeeded,
            Until::Finished => for_good,
        })
        .await;
    }

    /// Releases the lock of the task with `headers` (id `id`) if its
    /// `Natask-Unique-Until` stage is one `reached` accepts and the lock
    /// still holds this task (after its TTL another task may hold the key).
    async fn release(
        &self,
        headers: Option<&HeaderMap>,
        id: TaskId,
        reached: impl Fn(Until) -> bool,
    ) {
        let Some(headers) = headers else { return };
        let (Some(key), Some(until)) = (
            headers.get(UNIQUE).map(|v| v.as_str()),
            headers
                .get(UNIQUE_UNTIL)
                .and_then(|v| Until::parse(v.as_str())),
        ) else {
            return;
        };
        if !reached(until) {
            return;
        }
        let store = match self.store().await {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(%id, key, error = ?e, "cannot open the bucket of unique locks; the lock ends with its TTL");
                return;
            }
        };
        match store.entry(key).await {
            Ok(Some(entry))
                if entry.operation == kv::Operation::Put
                    && entry.value.as_ref() == id.to_string().as_bytes() =>
            {
                match store
                    .purge_expect_revision_with_ttl(key, entry.revision, LOCK_MARKER_TTL)
                    .await
                {
                    Ok(()) => tracing::debug!(%id, key, %until, "unique lock released"),
                    Err(e) => {
                        tracing::warn!(%id, key, error = %e, "cannot release the unique lock; it ends with its TTL")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%id, key, error = %e, "cannot read the unique lock; it ends with its TTL")
            }
        }
    }
}

/// `key` as JSON with object keys sorted and no whitespace, so that equal
/// values give equal text whatever the map type's order (and whether
/// serde_json preserves insertion order).
pub(crate) fn canonical_json<K: Serialize + ?Sized>(key: &K) -> Result<String, serde_json::Error> {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let value = serde_json::to_value(key)?;
    let mut out = String::new();
    write(&value, &mut out);
    Ok(out)
}

/// The lock key of a `task` on `queue` with canonical key `json`:
/// `<queue>.<task>.<first 128 bits of SHA-256, hex>`, a valid KV key.
pub(crate) fn lock_key(queue: &str, task: &str, json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    let mut key = format!("{queue}.{task}.");
    for byte in &digest[..16] {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The lock a publish runs under.
pub(crate) struct Lock {
    pub(crate) key: String,
    pub(crate) until: Option<Until>,
}

impl Lock {
    /// Adds `Natask-Unique` (and `Natask-Unique-Until`) to a task's headers.
    pub(crate) fn mark(lock: Option<&Lock>, headers: &mut HeaderMap) {
        if let Some(lock) = lock {
            headers.insert(UNIQUE, lock.key.as_str());
            if let Some(until) = lock.until {
                headers.insert(UNIQUE_UNTIL, until.as_str());
            }
        }
    }
}

pub(crate) enum Acquired {
    /// This call created the lock, at this revision.
    New(u64),
    /// The lock already holds this id: an earlier try of the same enqueue.
    Ours,
    /// Another task holds it.
    Held(TaskId),
}

/// Takes the lock `key` for `id` for `ttl`, or finds who holds it.
async fn acquire(
    js: &async_nats::jetstream::Context,
    store: &kv::Store,
    key: &str,
    id: TaskId,
    ttl: Duration,
) -> Result<Acquired, async_nats::Error> {
    let subject = format!("{}{key}", store.prefix);
    let value = id.to_string();
    // Whole seconds, rounded up: the resolution of `Nats-TTL`.
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let mut expected = 0;
    for _ in 0..ACQUIRE_ATTEMPTS {
        // `kv::Store::create_with_ttl` would do, were it not to drop the TTL
        // when the key holds a delete marker (async-nats 0.51), which is
        // exactly the state of a released or expired lock.
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        headers.insert(NATS_MESSAGE_TTL, seconds.to_string().as_str());
        let ack = js
            .publish_with_headers(subject.clone(), headers, value.clone().into())
            .await?
            .await;
        match ack {
            Ok(ack) => return Ok(Acquired::New(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
            Err(e) => return Err(e.into()),
        }
        match store.entry(key).await? {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let holder = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse::<TaskId>().ok())
                    .ok_or_else(|| {
                        format!("the lock `{key}` holds no task id; was it written by hand?")
                    })?;
                return Ok(if holder == id {
                    Acquired::Ours
                } else {
                    Acquired::Held(holder)
                });
            }
            Some(marker) => expected = marker.revision,
            None => expected = 0,
        }
    }
    Err(format!("the lock `{key}` kept changing while it was taken; try again").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_are_canonical() {
        let a: HashMap<&str, u8> = [("b", 2), ("a", 1), ("c", 3)].into();
        let b: HashMap<&str, u8> = [("c", 3), ("a", 1), ("b", 2)].into();
        assert_eq!(canonical_json(&a).unwrap(), r#"{"a":1,"b":2,"c":3}"#);
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
        assert_eq!(
            canonical_json(&("acme", 7, [1.5])).unwrap(),
            r#"["acme",7,[1.5]]"#
        );
    }

    #[test]
    fn lock_keys_are_valid_kv_keys_and_stable() {
        let key = lock_key("reports", "build-report", r#"["acme",7]"#);
        // a change here breaks the uniqueness of tasks enqueued before an upgrade
        assert_eq!(key, "reports.build-report.133605be9a69d72a0cffb7fb31755937");
        assert!(key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_ne!(key, lock_key("reports", "build-report", r#"["acme",8]"#));
    }
}
