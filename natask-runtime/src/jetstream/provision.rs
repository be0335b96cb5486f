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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::context::traits::TimeoutProvider;
use async_nats::jetstream::context::{ConsumerInfoError, ConsumerInfoErrorKind};
use async_nats::jetstream::{self, consumer, kv, stream};
use tokio::sync::OnceCell;

use natask_core::wire::{self, Names};

use super::assets::{self, Bucket, ConsumerSettings};
use super::drift::{consumer_drift, replica_drift, stream_drift};
use super::error::{self, Code};
use super::server::{self, Feature};
use crate::policy::{Drift, InvalidPolicy, Provisioning, QueuePolicy};

/// A stream, consumer or bucket could not be created, looked up or updated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// JetStream refused or did not answer a request about the stream (or
    /// its consumer).
    #[error("{} could not be created or found", what(stream, consumer.as_deref()))]
    JetStream {
        /// The stream's name.
        stream: String,
        /// The consumer's name, if the request was about the consumer.
        consumer: Option<String>,
        /// What JetStream answered.
        #[source]
        source: async_nats::Error,
    },
    /// The queue's policy is invalid.
    #[error(transparent)]
    InvalidPolicy(#[from] InvalidPolicy),
    /// The stream or consumer does not exist, and
    /// [`Provisioning::NoCreate`] forbids creating it.
    #[error(
        "{} does not exist, and this client may not create it (Provisioning::NoCreate); \
         whoever manages the NATS account must create it, e.g. by running a natask producer or \
         worker once with the default Provisioning::Create",
        what(stream, consumer.as_deref())
    )]
    Missing {
        /// The stream's name.
        stream: String,
        /// The consumer's name, if the stream exists but the consumer does not.
        consumer: Option<String>,
    },
    /// [`Queue::drift`](crate::Queue::drift) was asked about a queue whose
    /// stream does not exist yet.
    #[error(
        "stream `{stream}` does not exist yet; it is created by the first enqueue or by a runtime \
         serving the queue"
    )]
    NotFound {
        /// The stream's name.
        stream: String,
    },
    /// The stream needs a feature the server does not have.
    #[error("stream `{stream}` needs {feature}, which nats-server {server_version} does not have; upgrade the server")]
    Unsupported {
        /// The stream's name.
        stream: String,
        /// The feature, e.g. `message schedules (nats-server 2.12)`.
        feature: &'static str,
        /// The version the server reports.
        server_version: String,
    },
    /// The queue refuses tasks when full ([`WhenFull::Refuse`](crate::WhenFull::Refuse)
    /// with [`QueuePolicy::max_tasks`] or [`QueuePolicy::max_bytes`]) and was
    /// asked to hold delayed tasks, or the other way round: JetStream
    /// cannot do both in one stream.
    #[error(
        "stream `{stream}` cannot both refuse tasks when full (WhenFull::Refuse with max_tasks or \
         max_bytes) and hold delayed tasks: JetStream allows no message schedules on a discard-new \
         stream (error 10052) and cannot turn schedules off once on; give this queue \
         WhenFull::DropOldest or no size limit, or move its delayed and cron tasks to another queue"
    )]
    RefuseWithDelays {
        /// The stream's name.
        stream: String,
    },
    /// The policy asks for a change the server cannot make to an existing
    /// stream.
    #[error(
        "the {field} of stream `{stream}` is {live} and cannot be changed to {wanted} on an \
         existing stream; keep {live} in the queue's policy, or drain the queue, delete its stream \
         and provision it again"
    )]
    Immutable {
        /// The stream's name.
        stream: String,
        /// The setting, as in [`Drift::field`].
        field: &'static str,
        /// The value on the server.
        live: String,
        /// The value the policy asks for.
        wanted: String,
    },
}

/// What the feature of [`ProvisionError::Unsupported`] is called.
pub(crate) const MESSAGE_SCHEDULES: &str = "message schedules (nats-server 2.12)";
/// What the feature of [`ProvisionError::Unsupported`] is called.
pub(crate) const MESSAGE_TTL: &str = "per-message TTL (nats-server 2.11)";

fn what(stream: &str, consumer: Option<&str>) -> String {
    match consumer {
        Some(consumer) => format!("consumer `{consumer}` on stream `{stream}`"),
        None => format!("stream `{stream}`"),
    }
}

impl ProvisionError {
    fn stream(stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
        ProvisionError::JetStream {
            stream: stream.to_owned(),
            consumer: None,
            source: source.into(),
        }
    }

    fn consumer(stream: &str, source: impl Into<async_nats::Error>) -> ProvisionError {
        ProvisionError::JetStream {
            stream: stream.to_owned(),
            consumer: Some(wire::CONSUMER.to_owned()),
            source: source.into(),
        }
    }
}

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
    buckets: [OnceCell<kv::Store>; 3],
}

impl Provisioner {
    pub(crate) fn new(
        js: jetstream::Context,
        names: Names,
        mode: Provisioning,
        policies: Arc<HashMap<String, Arc<QueuePolicy>>>,
        task_retention: Duration,
        replicas: Option<usize>,
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
            Err(e) if error::is(&e, Code::STREAM_NAME_EXIST) => {
                let stream = self
                    .js
                    .get_stream(&name)
                    .await
                    .map_err(|e| ProvisionError::stream(&name, e))?;
                Ok(attach(stream))
            }
            Err(e) => Err(ProvisionError::stream(&name, e)),
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
        let deadline = tokio::time::Instant::now() + self.js.timeout();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.lookups.get_stream(name).await {
                Ok(stream) => return Ok(Some(stream)),
                Err(e) if error::is_stream_not_found(&e) => return Ok(None),
                Err(e)
                    if error::is_unavailable(&e)
                        && tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(stream = name, error = %e, "JetStream cannot answer yet; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(ProvisionError::stream(name, e)),
            }
        }
    }

    /// The shared consumer of `stream`, if it exists; asks again while
    /// JetStream cannot answer yet, up to the client's timeout (`stream`
    /// comes from [`existing_stream`](Self::existing_stream), so each
    /// request has the lookups' short timeout).
    async fn existing_consumer(
        &self,
        stream: &stream::Stream,
    ) -> Result<Option<consumer::PullConsumer>, ProvisionError> {
        let deadline = tokio::time::Instant::now() + self.js.timeout();
        let mut pause = Duration::from_millis(50);
        loop {
            let e = match stream.get_consumer(wire::CONSUMER).await {
                Ok(consumer) => return Ok(Some(consumer)),
                Err(e) => e,
            };
            let kind = e.downcast_ref::<ConsumerInfoError>().map(|e| e.kind());
            let unavailable = match &kind {
                Some(ConsumerInfoErrorKind::NotFound) => return Ok(None),
                Some(
                    ConsumerInfoErrorKind::Request
                    | ConsumerInfoErrorKind::TimedOut
                    | ConsumerInfoErrorKind::NoResponders
                    | ConsumerInfoErrorKind::Offline,
                ) => true,
                _ => matches!(
                    error::code(&*e),
                    Some(Code::CLUSTER_NOT_AVAILABLE | Code::CLUSTER_NOT_LEADER)
                ),
            };
            if !unavailable || tokio::time::Instant::now() + pause >= deadline {
                return Err(ProvisionError::consumer(&live_name(stream), e));
            }
            tracing::debug!(stream = %live_name(stream), error = %e, "JetStream cannot answer yet; asking again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
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
        self.ensured(queue)
            .get_or_try_init(|| async { self.queue_stream(queue).await.map(drop) })
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
        let name = stream.cached_info().config.name.clone();
        if let Some(consumer) = self.existing_consumer(&stream).await? {
            let live = &consumer.cached_info().config;
            let drift = consumer_drift(live, settings.max_ack_pending, Some(settings.ack_wait));
            self.warn_drift(Owner::Queue(queue), "consumer", &drift);
            return Ok(consumer);
        }
        if self.mode == Provisioning::NoCreate {
            return Err(ProvisionError::Missing {
                stream: name,
                consumer: Some(wire::CONSUMER.to_owned()),
            });
        }
        // get_or_create: another worker may have created it meanwhile.
        let config = assets::consumer_config(queue, &self.names, settings);
        stream
            .get_or_create_consumer(wire::CONSUMER, config)
            .await
            .map_err(|e| ProvisionError::consumer(&name, e))
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
                .map_err(|e| ProvisionError::stream(&config.name, e))?;
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
        self.dead_letters
            .get_or_try_init(|| {
                let config = assets::dead_letter_stream_config(&self.names, self.replicas());
                self.stream(config, None)
            })
            .await
    }

    /// The key-value bucket `bucket`, found or created (once per client).
    pub(crate) async fn bucket(&self, bucket: Bucket) -> Result<&kv::Store, ProvisionError> {
        self.buckets[bucket as usize]
            .get_or_try_init(|| async {
                let config =
                    bucket.stream_config(&self.names, self.task_retention, self.replicas());
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

    /// The bucket `bucket`, if this client has opened it already.
    pub(crate) fn opened(&self, bucket: Bucket) -> Option<&kv::Store> {
        self.buckets[bucket as usize].get()
    }

    /// Logs one warning per differing setting of the attached stream or
    /// consumer (`what`) of `owner`, once per client (and the runtimes built
    /// from it) and value.
    fn warn_drift(&self, owner: Owner<'_>, what: &str, drift: &[Drift]) {
        for d in drift {
            let first = self
                .warned
                .lock()
                .expect("warned set poisoned")
                .insert(format!("{owner}\u{0}{what}\u{0}{d}"));
            if !first {
                continue;
            }
            let (wanted_by, fix) = match owner {
                Owner::Queue(_) => ("its policy says", "Queue::update applies the policy"),
                Owner::Shared(_) => (
                    "natask would create it with",
                    "Client::update_shared_streams applies the client's settings",
                ),
            };
            tracing::warn!(
                %owner,
                field = d.field,
                live = %d.live,
                wanted = %d.wanted,
                "the {what} of {owner} has {} = {} but {wanted_by} {}; natask attached to it as it is ({fix})",
                d.field,
                d.live,
                d.wanted,
            );
        }
    }

    /// The streams shared by every queue (dead letters and the buckets), as
    /// this client would create them.
    fn shared_configs(&self) -> Vec<stream::Config> {
        let replicas = self.replicas();
        let mut configs = vec![assets::dead_letter_stream_config(&self.names, replicas)];
        configs.extend(
            [Bucket::Tasks, Bucket::Handbacks, Bucket::Unique]
                .map(|b| b.stream_config(&self.names, self.task_retention, replicas)),
        );
        configs
    }

    /// Where the existing shared streams differ from what this client
    /// would create (their replicas), by stream name.
    pub(crate) async fn shared_drift(&self) -> Result<Vec<(String, Drift)>, ProvisionError> {
        let mut drift = Vec::new();
        for wanted in self.shared_configs() {
            if let Some(stream) = self.existing_stream(&wanted.name).await? {
                if let Some(d) = replica_drift(&stream.cached_info().config, &wanted) {
                    drift.push((wanted.name, d));
                }
            }
        }
        Ok(drift)
    }

    /// Gives the existing shared streams this client's replicas; returns
    /// what was changed.
    pub(crate) async fn update_shared_streams(
        &self,
    ) -> Result<Vec<(String, Drift)>, ProvisionError> {
        let drift = self.shared_drift().await?;
        for (name, d) in &drift {
            let mut live = self
                .js
                .get_stream(name)
                .await
                .map_err(|e| ProvisionError::stream(name, e))?
                .cached_info()
                .config
                .clone();
            live.num_replicas = d.wanted.parse().expect("a replica count");
            self.js
                .update_stream(&live)
                .await
                .map_err(|e| ProvisionError::stream(name, e))?;
            tracing::info!(stream = %name, from = %d.live, to = %d.wanted, "shared stream updated to the client's replicas");
        }
        Ok(drift)
    }

    /// What differs between the live stream and consumer of `queue` and its
    /// policy. The consumer's `ack_wait` counts only if the policy sets one.
    pub(crate) async fn queue_drift(&self, queue: &str) -> Result<Vec<Drift>, ProvisionError> {
        let policy = self.policy(queue);
        policy.validate()?;
        let name = self.names.queue_stream(queue);
        let Some(stream) = self.existing_stream(&name).await? else {
            return Err(ProvisionError::NotFound { stream: name });
        };
        let mut drift = stream_drift(&stream.cached_info().config, &policy, self.replicas());
        if let Some(consumer) = self.existing_consumer(&stream).await? {
            drift.extend(consumer_drift(
                &consumer.cached_info().config,
                policy.max_in_flight,
                policy.ack_wait,
            ));
        }
        Ok(drift)
    }

    /// Updates the stream and (if it exists) the consumer of `queue` to its
    /// policy; returns what was changed.
    pub(crate) async fn update_queue(&self, queue: &str) -> Result<Vec<Drift>, ProvisionError> {
        let policy = self.policy(queue);
        let stream = self.queue_stream(queue).await?;
        let live = stream.cached_info().config.clone();
        let mut changed = stream_drift(&live, &policy, self.replicas());
        if !changed.is_empty() {
            self.update_stream(live, &policy, &changed).await?;
        }
        if let Some(consumer) = self.existing_consumer(&stream).await? {
            let mut config = consumer.cached_info().config.clone();
            let drift = consumer_drift(&config, policy.max_in_flight, policy.ack_wait);
            if !drift.is_empty() {
                config.max_ack_pending = policy.max_in_flight;
                config.ack_wait = policy.ack_wait.unwrap_or(config.ack_wait);
                stream
                    .update_consumer(config)
                    .await
                    .map_err(|e| ProvisionError::consumer(&live_name(&stream), e))?;
                changed.extend(drift);
            }
        }
        for d in &changed {
            tracing::info!(queue, field = d.field, from = %d.live, to = %d.wanted, "queue updated to its policy");
        }
        Ok(changed)
    }

    /// Rewrites the live stream `live` of a queue to `policy`, refusing
    /// what the server cannot change.
    async fn update_stream(
        &self,
        mut live: stream::Config,
        policy: &QueuePolicy,
        drift: &[Drift],
    ) -> Result<(), ProvisionError> {
        let name = live.name.clone();
        if let Some(d) = drift
            .iter()
            .find(|d| matches!(d.field, "storage" | "retention"))
        {
            return Err(ProvisionError::Immutable {
                stream: name,
                field: d.field,
                live: d.live.clone(),
                wanted: d.wanted.clone(),
            });
        }
        let wanted = assets::queue_stream_config(&self.names, policy, self.replicas());
        live.num_replicas = wanted.num_replicas;
        live.max_messages = wanted.max_messages;
        live.max_bytes = wanted.max_bytes;
        if assets::limited(policy) {
            if wanted.discard == stream::DiscardPolicy::New && live.allow_message_schedules {
                return Err(ProvisionError::RefuseWithDelays { stream: name });
            }
            live.discard = wanted.discard;
        }
        live.duplicate_window = wanted.duplicate_window;
        self.js
            .update_stream(&live)
            .await
            .map_err(|e| ProvisionError::stream(&name, e))?;
        Ok(())
    }
}

/// Whose stream or consumer differs from what natask would create.
#[derive(Clone, Copy)]
enum Owner<'a> {
    /// A queue's, compared with its policy.
    Queue(&'a str),
    /// A shared stream or bucket (by stream name), compared with the
    /// client's settings.
    Shared(&'a str),
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Queue(queue) => write!(f, "queue `{queue}`"),
            Owner::Shared(stream) => write!(f, "stream `{stream}`"),
        }
    }
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
