//! The one provisioning path: every stream, consumer and key-value bucket
//! natask uses is found or created here, so that a setting (replicas,
//! storage, [`Provisioning::NoCreate`], drift warnings, the server features
//! an asset needs) applies to all of them in one place.
//!
//! Provisioning attaches: an existing stream or consumer is used as it is,
//! whatever its settings (each difference from the queue's policy is logged
//! as a warning), so several producers and workers may start at once and
//! an operator's changes are never undone. Only
//! [`Queue::update`](crate::Queue::update) rewrites a queue.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::context::traits::TimeoutProvider;
use async_nats::jetstream::context::{ConsumerInfoError, ConsumerInfoErrorKind};
use async_nats::jetstream::{self, consumer, kv, stream};
use tokio::sync::OnceCell;

use natask_core::wire::Names;

use super::assets::{self, Bucket, ConsumerSettings};
use super::drift::{consumer_drift, replica_drift, stream_drift};
use super::error::{self as js_error, Code};
use super::permissions::{PermissionViolation, PermissionWatch};
use super::server::{self, Feature};
use crate::policy::{Provisioning, QueuePolicy};

mod error;
mod events;
mod update;

pub use error::ProvisionError;
pub(crate) use error::{MESSAGE_SCHEDULES, MESSAGE_TTL};
use update::Owner;

/// How natask provisions, and what it has provisioned: one per
/// [`Client`](crate::Client), shared by the runtimes built from it.
pub(crate) struct Provisioner {
    js: jetstream::Context,
    /// `js` with a quarter of its timeout, for lookups that are asked again
    /// until `js`'s timeout: a request about a stream whose leader just
    /// died is never answered, and the next one reaches the new leader.
    lookups: jetstream::Context,
    names: Names,
    mode: Provisioning,
    policies: Arc<HashMap<String, Arc<QueuePolicy>>>,
    task_retention: Duration,
    /// The replicas set with `Client::with_replicas`, if any.
    replicas: Option<usize>,
    /// The cluster-aware default, once read from the server.
    default_replicas: OnceLock<usize>,
    /// Each queue's stream, found or created once per client: concurrent
    /// first enqueues wait for one provisioning instead of racing.
    ensured: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// Queues whose stream is known to hold delayed tasks.
    schedulable: Mutex<HashSet<String>>,
    /// Policy differences already logged, so re-provisioning after a
    /// reconnect does not repeat them.
    warned: Mutex<HashSet<String>>,
    dead_letters: OnceCell<stream::Stream>,
    buckets: [OnceCell<kv::Store>; 5],
    /// The connection's permission violations, to name a refused request.
    permissions: PermissionWatch,
}

impl Provisioner {
    pub(crate) fn new(
        js: jetstream::Context,
        names: Names,
        mode: Provisioning,
        policies: Arc<HashMap<String, Arc<QueuePolicy>>>,
        task_retention: Duration,
        replicas: Option<usize>,
        permissions: PermissionWatch,
    ) -> Provisioner {
        let mut lookups = js.clone();
        lookups.set_timeout(super::publish::ack_wait(&js));
        Provisioner {
            js,
            lookups,
            names,
            mode,
            policies,
            task_retention,
            replicas,
            default_replicas: OnceLock::new(),
            ensured: Mutex::default(),
            schedulable: Mutex::default(),
            warned: Mutex::default(),
            dead_letters: OnceCell::new(),
            buckets: Default::default(),
            permissions,
        }
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.js
    }

    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    pub(crate) fn task_retention(&self) -> Duration {
        self.task_retention
    }

    /// The policy of `queue`: the registered one, or the defaults.
    pub(crate) fn policy(&self, queue: &str) -> Arc<QueuePolicy> {
        self.policies
            .get(queue)
            .cloned()
            .unwrap_or_else(|| Arc::new(QueuePolicy::new(queue)))
    }

    /// Whether tasks of `queue` have their state tracked (cheap).
    pub(crate) fn tracks(&self, queue: &str) -> bool {
        self.policies.get(queue).is_none_or(|p| p.tracking)
    }

    /// Whether `enqueue` records the `queued` state of `queue`'s tasks
    /// (off by default: it is read from the queue's stream).
    pub(crate) fn tracks_queued(&self, queue: &str) -> bool {
        self.policies
            .get(queue)
            .is_some_and(|p| p.tracking && p.track_queued)
    }

    /// A failed request about `stream`: refused by the server's
    /// permissions, if it reported a violation while the request waited.
    fn stream_error(&self, stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
        self.refused(ProvisionError::stream(stream, source))
    }

    /// A failed request about the consumer of `stream`, as
    /// [`stream_error`](Self::stream_error).
    fn consumer_error(&self, stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
        self.refused(ProvisionError::consumer(stream, source))
    }

    /// `error` as a refusal, if JetStream did not answer (a refused request
    /// is never answered) and the server reported a permissions violation
    /// within two timeouts (the longest a lookup is asked again).
    fn refused(&self, error: ProvisionError) -> ProvisionError {
        let ProvisionError::JetStream {
            stream,
            consumer,
            source,
        } = error
        else {
            return error;
        };
        match self.explain(&*source) {
            Some(violation) => ProvisionError::PermissionDenied {
                stream,
                consumer,
                violation,
            },
            None => ProvisionError::JetStream {
                stream,
                consumer,
                source,
            },
        }
    }

    /// The permissions violation that explains `source`, a failed request
    /// of this client: one reported within two timeouts (the longest a
    /// lookup is asked again), if JetStream did not answer.
    pub(crate) fn explain(
        &self,
        source: &(dyn std::error::Error + 'static),
    ) -> Option<PermissionViolation> {
        self.permissions.explain(source, self.js.timeout() * 2)
    }

    fn server_version(&self) -> String {
        self.js.client().server_info().version
    }

    /// The replicas of every stream and bucket natask creates (a queue
    /// policy may set its own): the count set with `Client::with_replicas`,
    /// else 3 on a JetStream cluster of 3 or more servers and 1 otherwise,
    /// decided once per client and logged.
    pub(crate) fn replicas(&self) -> usize {
        self.replicas.unwrap_or_else(|| {
            *self.default_replicas.get_or_init(|| {
                let info = self.js.client().server_info();
                let (replicas, why) = default_replicas(&info);
                tracing::info!(replicas, "natask creates its streams and buckets with {replicas} replica(s): {why} (Client::with_replicas sets another count)");
                replicas
            })
        })
    }

    /// The one path every stream takes: attached to as it is if it exists
    /// (for a queue's stream, warning about each setting that differs from
    /// its policy), else created from `config` unless the client may not
    /// create anything.
    async fn stream(
        &self,
        config: stream::Config,
        queue: Option<&QueuePolicy>,
    ) -> Result<stream::Stream, ProvisionError> {
        let name = config.name.clone();
        let attach = |stream: stream::Stream| {
            let live = &stream.cached_info().config;
            match queue {
                Some(policy) => {
                    let drift = stream_drift(live, policy, self.replicas());
                    self.warn_drift(Owner::Queue(policy.name()), "stream", &drift);
                }
                None => {
                    let drift: Vec<_> = replica_drift(live, &config).into_iter().collect();
                    self.warn_drift(Owner::Shared(&name), "stream", &drift);
                }
            }
            stream
        };
        if let Some(stream) = self.existing_stream(&name).await? {
            return Ok(attach(stream));
        }
        if self.mode == Provisioning::NoCreate {
            return Err(ProvisionError::Missing {
                stream: name,
                consumer: None,
            });
        }
        match self.js.create_stream(config.clone()).await {
            Ok(stream) => Ok(self.led(stream).await),
            // Another process created it meanwhile, perhaps from another policy.
            Err(e) if js_error::is(&e, Code::STREAM_NAME_EXIST) => {
                let stream = self
                    .js
                    .get_stream(&name)
                    .await
                    .map_err(|e| self.stream_error(&name, e))?;
                Ok(attach(stream))
            }
            Err(e) => Err(self.stream_error(&name, e)),
        }
    }

    /// `stream` once it has a leader: a replicated stream just created
    /// elects one first, and publishes meanwhile find nobody to answer.
    /// Waits at most the client's timeout (publishes are sent again while
    /// no leader answers anyway).
    async fn led(&self, mut stream: stream::Stream) -> stream::Stream {
        let deadline = tokio::time::Instant::now() + self.js.timeout();
        let mut pause = Duration::from_millis(10);
        while leaderless(stream.cached_info()) && tokio::time::Instant::now() + pause < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
            // an unanswered look is looked at again
            let _ = stream.info().await;
        }
        stream
    }

    /// The stream named `name`, if it exists; asks again while JetStream
    /// cannot answer yet (a leader election), up to the client's timeout.
    async fn existing_stream(&self, name: &str) -> Result<Option<stream::Stream>, ProvisionError> {
        let found = ask_again(self.js.timeout(), name, js_error::is_unavailable, || {
            self.lookups.get_stream(name)
        })
        .await;
        match found {
            Ok(stream) => Ok(Some(stream)),
            Err(e) if js_error::is_stream_not_found(&e) => Ok(None),
            Err(e) => Err(self.stream_error(name, e)),
        }
    }

    /// The shared consumer of `stream`, if it exists; asks again while
    /// JetStream cannot answer yet, up to the client's timeout (`stream`
    /// comes from [`existing_stream`](Self::existing_stream), so each
    /// request has the lookups' short timeout).
    async fn existing_consumer(
        &self,
        stream: &stream::Stream,
        consumer: &str,
    ) -> Result<Option<consumer::PullConsumer>, ProvisionError> {
        let unavailable =
            |e: &async_nats::Error| match e.downcast_ref::<ConsumerInfoError>().map(|e| e.kind()) {
                Some(ConsumerInfoErrorKind::NotFound) => false,
                Some(
                    ConsumerInfoErrorKind::Request
                    | ConsumerInfoErrorKind::TimedOut
                    | ConsumerInfoErrorKind::NoResponders
                    | ConsumerInfoErrorKind::Offline,
                ) => true,
                _ => matches!(
                    js_error::code(&**e),
                    Some(Code::CLUSTER_NOT_AVAILABLE | Code::CLUSTER_NOT_LEADER)
                ),
            };
        let name = live_name(stream);
        let found = ask_again(self.js.timeout(), &name, unavailable, || {
            stream.get_consumer(consumer)
        })
        .await;
        match found {
            Ok(consumer) => Ok(Some(consumer)),
            Err(e)
                if matches!(
                    e.downcast_ref::<ConsumerInfoError>().map(|e| e.kind()),
                    Some(ConsumerInfoErrorKind::NotFound)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.consumer_error(&name, e)),
        }
    }

    /// The stream of `queue`, found or created from its policy.
    pub(crate) async fn queue_stream(&self, queue: &str) -> Result<stream::Stream, ProvisionError> {
        let policy = self.policy(queue);
        policy.validate()?;
        let config = assets::queue_stream_config(&self.names, &policy, self.replicas());
        self.stream(config, Some(&policy)).await
    }

    /// Makes sure the stream of `queue` exists (once per client; callers
    /// that come while it is being provisioned wait for that one attempt).
    pub(crate) async fn ensure_queue(&self, queue: &str) -> Result<(), ProvisionError> {
        once(&self.ensured(queue), || async {
            self.queue_stream(queue).await.map(drop)
        })
        .await
        .map(drop)
    }

    /// The once-cell of `queue`'s stream.
    fn ensured(&self, queue: &str) -> Arc<OnceCell<()>> {
        let mut ensured = self.ensured.lock().expect("ensured map poisoned");
        Arc::clone(ensured.entry(queue.to_owned()).or_default())
    }

    fn mark_ensured(&self, queue: &str) {
        let _ = self.ensured(queue).set(());
    }

    /// The shared consumer of `queue` (and its stream): attached to as it
    /// is if it exists (warning about every difference from `settings`),
    /// else created with `settings` unless the client may not create it.
    pub(crate) async fn queue_consumer(
        &self,
        queue: &str,
        settings: &ConsumerSettings,
    ) -> Result<consumer::PullConsumer, ProvisionError> {
        let stream = self.queue_stream(queue).await?;
        self.mark_ensured(queue);
        let config = assets::consumer_config(queue, &self.names, settings);
        self.consumer(&stream, config, queue, settings).await
    }

    /// The one path every consumer takes: the consumer `config` names on
    /// `stream`, attached to as it is if it exists (warning about every
    /// difference from `settings`, as `owner`'s), else created unless the
    /// client may not create it.
    async fn consumer(
        &self,
        stream: &stream::Stream,
        config: consumer::pull::Config,
        owner: &str,
        settings: &ConsumerSettings,
    ) -> Result<consumer::PullConsumer, ProvisionError> {
        let name = live_name(stream);
        let durable = config.durable_name.clone().unwrap_or_default();
        if let Some(consumer) = self.existing_consumer(stream, &durable).await? {
            let live = &consumer.cached_info().config;
            let drift = consumer_drift(live, settings.max_ack_pending, Some(settings.ack_wait));
            self.warn_drift(Owner::Queue(owner), "consumer", &drift);
            return Ok(consumer);
        }
        if self.mode == Provisioning::NoCreate {
            return Err(ProvisionError::Missing {
                stream: name,
                consumer: Some(durable),
            });
        }
        // get_or_create: another worker may have created it meanwhile.
        stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| self.consumer_error(&name, e))
    }

    /// Makes the stream of `queue` hold delayed tasks (once per client):
    /// creates it, or turns on message schedules and adds the schedule
    /// subjects to a stream created before natask had delayed tasks (the
    /// server cannot turn the flag off again). Servers before 2.12 silently
    /// drop the flag and would store schedules as plain messages: that is
    /// [`ProvisionError::Unsupported`].
    pub(crate) async fn schedules(&self, queue: &str) -> Result<(), ProvisionError> {
        if self
            .schedulable
            .lock()
            .expect("schedulable set poisoned")
            .contains(queue)
        {
            return Ok(());
        }
        let stream = self.queue_stream(queue).await?;
        self.mark_ensured(queue);
        let mut config = stream.cached_info().config.clone();
        let subject = self.names.schedule_filter(queue);
        if !(config.allow_message_schedules && config.subjects.contains(&subject)) {
            if config.discard == stream::DiscardPolicy::New {
                return Err(ProvisionError::RefuseWithDelays {
                    stream: config.name,
                });
            }
            config.allow_message_schedules = true;
            if !config.subjects.contains(&subject) {
                config.subjects.push(subject);
            }
            let info = self
                .js
                .update_stream(&config)
                .await
                .map_err(|e| self.stream_error(&config.name, e))?;
            if !info.config.allow_message_schedules {
                return Err(ProvisionError::Unsupported {
                    stream: config.name,
                    feature: MESSAGE_SCHEDULES,
                    server_version: self.server_version(),
                });
            }
        }
        self.schedulable
            .lock()
            .expect("schedulable set poisoned")
            .insert(queue.to_owned());
        Ok(())
    }

    /// The dead-letter stream, found or created (once per client).
    pub(crate) async fn dead_letters(&self) -> Result<&stream::Stream, ProvisionError> {
        once(&self.dead_letters, || {
            let config = assets::dead_letter_stream_config(&self.names, self.replicas());
            self.stream(config, None)
        })
        .await
    }

    /// The key-value bucket `bucket`, found or created (once per client).
    pub(crate) async fn bucket(&self, bucket: Bucket) -> Result<&kv::Store, ProvisionError> {
        once(&self.buckets[bucket as usize], || async {
            let config = bucket.stream_config(&self.names, self.task_retention, self.replicas());
            if config.allow_message_ttl
                && !server::supports(&self.server_version(), Feature::MessageTtl)
            {
                return Err(ProvisionError::Unsupported {
                    stream: config.name,
                    feature: MESSAGE_TTL,
                    server_version: self.server_version(),
                });
            }
            let stream = self.stream(config, None).await?;
            Ok(kv::Store {
                name: bucket.name(&self.names),
                stream_name: stream.cached_info().config.name.clone(),
                prefix: format!("$KV.{}.", bucket.name(&self.names)),
                put_prefix: None,
                use_jetstream_prefix: false,
                stream,
            })
        })
        .await
    }

    /// The bucket `bucket` if it exists, never creating it (for readers
    /// such as `Client::workers`, which must not make what they read).
    pub(crate) async fn existing_bucket(
        &self,
        bucket: Bucket,
    ) -> Result<Option<kv::Store>, ProvisionError> {
        if let Some(store) = self.opened(bucket) {
            return Ok(Some(store.clone()));
        }
        let name = bucket.name(&self.names);
        let Some(stream) = self.existing_stream(&format!("KV_{name}")).await? else {
            return Ok(None);
        };
        Ok(Some(kv::Store {
            stream_name: stream.cached_info().config.name.clone(),
            prefix: format!("$KV.{name}."),
            put_prefix: None,
            use_jetstream_prefix: false,
            name,
            stream,
        }))
    }

    /// The bucket `bucket`, if this client has opened it already.
    pub(crate) fn opened(&self, bucket: Bucket) -> Option<&kv::Store> {
        self.buckets[bucket as usize].get()
    }
}

/// The value of `cell`, made by `init` once (callers that come while it is
/// being made wait for that one attempt). Once made, it is answered without
/// awaiting anything: the making (several KiB of provisioning future) is
/// boxed, so that it does not grow every future on a task's path that
/// reads a stream or a bucket.
async fn once<T, E, F, Fut>(cell: &OnceCell<T>, init: F) -> Result<&T, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    Box::pin(cell.get_or_try_init(init)).await
}

/// The replicas natask creates with when the client sets none, and why:
/// 3 when the server says it is in a cluster and advertises 3 or more
/// servers to clients, else 1.
fn default_replicas(info: &async_nats::ServerInfo) -> (usize, String) {
    match &info.cluster {
        None => (1, "the server is not part of a cluster".to_owned()),
        Some(cluster) if info.connect_urls.len() >= 3 => (
            3,
            format!(
                "the server is in cluster `{cluster}` of {} servers",
                info.connect_urls.len()
            ),
        ),
        Some(cluster) if info.connect_urls.is_empty() => (
            1,
            format!("cluster `{cluster}` does not advertise its servers to clients (no_advertise)"),
        ),
        Some(cluster) => (
            1,
            format!(
                "cluster `{cluster}` has {} servers, fewer than the 3 that R3 needs",
                info.connect_urls.len()
            ),
        ),
    }
}

/// Whether a replicated stream has no leader yet.
fn leaderless(info: &stream::Info) -> bool {
    info.config.num_replicas > 1 && info.cluster.as_ref().is_none_or(|c| c.leader.is_none())
}

fn live_name(stream: &stream::Stream) -> String {
    stream.cached_info().config.name.clone()
}

/// Asks `ask` until its answer is not JetStream's "cannot answer yet"
/// (`unavailable`: no leader during an election, no responders, a timed
/// out request) or the next pause would pass `within`; pauses 50 ms,
/// doubling up to 1 s. Returns the last answer.
async fn ask_again<T, E, F, Fut>(
    within: Duration,
    what: &str,
    unavailable: impl Fn(&E) -> bool,
    mut ask: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(50);
    loop {
        match ask().await {
            Err(e) if unavailable(&e) && tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(what, error = %e, "JetStream cannot answer yet; asking again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            answer => return answer,
        }
    }
}
