//! Unique tasks: the declaration lands in `Task::UNIQUE`, the key is the
//! chosen fields in declaration order, and `enqueue` answers `Enqueued`.
use std::time::Duration;

use natask_runtime::{task, Client, EnqueueError, Enqueued, Task, UniquePolicy, Until};

#[task(queue = "reports", unique = "1h", unique_by = "month, tenant", unique_until = "succeeded")]
async fn build_report(tenant: String, format: String, month: u32) {
    let _ = (tenant, format, month);
}

/// All payload fields, held until the TTL alone.
#[task(unique = "30s")]
async fn sync_account(r#type: String, id: u64) {
    let _ = (r#type, id);
}

/// No payload: unique by the task name.
#[task(unique = "5m", unique_until = "finished")]
async fn rebuild_index() {}

#[task]
async fn not_unique(n: u8) {
    let _ = n;
}

fn key<T: Task>(task: &T) -> String {
    let mut out = Vec::new();
    task.unique_fields(&mut serde_json::Serializer::new(&mut out)).unwrap();
    String::from_utf8(out).unwrap()
}

// `enqueue` answers `Enqueued` for every task; a unique task's says
// whether it stored one
#[allow(dead_code)]
async fn producer(client: &Client) -> Result<Enqueued, EnqueueError> {
    let _: natask_runtime::TaskId = NotUnique::new(1).enqueue(client).await?.id;
    BuildReport::new("acme".into(), "pdf".into(), 7).enqueue(client).await
}

fn main() {
    assert_eq!(
        BuildReport::UNIQUE,
        Some(UniquePolicy { ttl: Duration::from_secs(3600), until: Some(Until::Succeeded) })
    );
    assert_eq!(key(&BuildReport::new("acme".into(), "pdf".into(), 7)), r#"["acme",7]"#);
    assert_eq!(
        SyncAccount::UNIQUE,
        Some(UniquePolicy { ttl: Duration::from_secs(30), until: None })
    );
    assert_eq!(key(&SyncAccount::new("user".into(), 9)), r#"["user",9]"#);
    assert_eq!(RebuildIndex::UNIQUE.unwrap().until, Some(Until::Finished));
    assert_eq!(key(&RebuildIndex), "null");
    assert_eq!(NotUnique::UNIQUE, None);
}
