//! The producer side: a [`Client`] connects to NATS and enqueues tasks
//! (`enqueue`, `delayed`, `batch`), and hands out the handles an operator
//! thinks in: a queue ([`Client::queue`]), the dead letters
//! ([`Client::dead_letters`]), a task type's recurring schedules
//! ([`Client::recurring`]); task lookups by id live on the client itself
//! (`tasks`). Nothing here knows the worker side.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{jetstream, Subject};

use natask_core::name::{self, NameError};
use natask_core::wire::Names;
use natask_core::Task;

use crate::jetstream::permissions::{self, PermissionWatch};
use crate::jetstream::provision::{ProvisionError, Provisioner};
use crate::middleware::{self, Middleware};
use crate::policy::{Drift, InvalidReplicas, Provisioning, QueuePolicy, REPLICAS};
use crate::signing::SigningKey;
use crate::store::locks::Locks;
use crate::store::tasks::{TaskStore, DEFAULT_TASK_RETENTION};

mod batch;
pub(crate) mod context;
pub(crate) mod dead_letters;
mod delayed;
pub(crate) mod enqueue;
pub(crate) mod events;
mod fleet;
pub(crate) mod options;
pub(crate) mod queue;
pub(crate) mod recurring;
pub(crate) mod tasks;

/// How long requests wait by default on a single server.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long requests wait by default on a cluster: long enough to wait
/// out the election of a new leader for a stream whose leader died
/// (JetStream elects one 4 to 9 s after it lost the old one, measured in
/// `docs/cluster.md`).
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection to NATS that enqueues tasks. Cheap to clone; share one.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = natask_runtime::Client::connect("nats://127.0.0.1:4222").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    nats: async_nats::Client,
    settings: Settings,
    provisioner: Arc<Provisioner>,
    tasks: TaskStore,
    locks: Locks,
    /// The subject of each (queue, task) whose stream is known to exist.
    subjects: Mutex<HashMap<(&'static str, &'static str), Subject>>,
    /// The server's `max_payload`, once known (0 before).
    max_payload: AtomicUsize,
}

/// What a client is configured with; each `with_*` method changes one part.
#[derive(Clone)]
struct Settings {
    names: Names,
    /// Set with `with_timeout`; else [`DEFAULT_TIMEOUT`] or
    /// [`CLUSTER_TIMEOUT`].
    timeout: Option<Duration>,
    middleware: Vec<Arc<dyn Middleware>>,
    /// Policies registered with [`Client::with_queue`], by queue name.
    policies: Arc<HashMap<String, Arc<QueuePolicy>>>,
    provisioning: Provisioning,
    task_retention: Duration,
    replicas: Option<usize>,
    /// Set with `with_signing_key`: every task published is signed.
    signing: Option<SigningKey>,
    /// Fed by the connection's event callback, if natask installed it.
    permissions: PermissionWatch,
    /// Set on a [`Client::recording`] client: enqueues are recorded here
    /// instead of published.
    #[cfg(feature = "testing")]
    recorder: Option<Arc<crate::testing::Recorder>>,
}

/// Connecting to NATS failed.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to NATS at `{url}`; check the URLs, that nats-server is running, and the credentials")]
pub struct ConnectError {
    url: String,
    #[source]
    source: async_nats::ConnectError,
}

impl Client {
    /// Connects to NATS at `urls`: one URL (`nats://127.0.0.1:4222`) or a
    /// comma-separated list of a cluster's servers
    /// (`nats://a:4222,nats://b:4222,nats://c:4222`), as the `nats` CLI
    /// takes them; the connection moves to another listed server when one
    /// goes away. Credentials may be given in a URL
    /// (`nats://user:password@host:port`, or `nats://token@host:port`).
    pub async fn connect(urls: &str) -> Result<Client, ConnectError> {
        let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
        Self::connect_with(urls, options).await
    }

    /// Connects like [`connect`](Self::connect) with a fully configured
    /// `async_nats::ConnectOptions` (TLS, nkeys, credentials files,
    /// reconnect settings, …). Credentials in a URL are added to `options`.
    ///
    /// natask installs the connection's event callback: it logs each event
    /// (disconnects, server errors) with `tracing` and keeps the server's
    /// permission violations in a [`PermissionWatch`], so that a request
    /// the server refused is reported as such, naming the subject, instead
    /// of as a timeout. An `event_callback` set in `options` is replaced;
    /// to keep your own, connect yourself and call
    /// [`PermissionWatch::observe`] from it (see [`from_nats`](Self::from_nats)).
    pub async fn connect_with(
        urls: &str,
        mut options: async_nats::ConnectOptions,
    ) -> Result<Client, ConnectError> {
        let mut addresses = Vec::new();
        let mut found = None;
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            // async-nats does not read credentials from the URL itself.
            let (address, credentials) = split_credentials(url);
            addresses.push(address);
            found = found.or(credentials);
        }
        match found {
            Some((user, Some(password))) => options = options.user_and_password(user, password),
            Some((token, None)) => options = options.token(token),
            None => {}
        }
        let watch = PermissionWatch::new();
        let nats = options
            .event_callback(permissions::callback(watch.clone()))
            .connect(addresses)
            .await
            .map_err(|source| ConnectError {
                url: redact_all(urls),
                source,
            })?;
        Ok(Client::watched(nats, watch))
    }

    /// Uses an existing async-nats connection (for custom TLS, auth or
    /// reconnect settings).
    ///
    /// natask cannot install an event callback on a connection made
    /// elsewhere, so it does not see the server's permission violations: a
    /// request the server refused reads as a timeout (or as the JetStream
    /// error it led to), unless the connection's own callback feeds a
    /// [`PermissionWatch`] given to
    /// [`with_permission_watch`](Self::with_permission_watch).
    pub fn from_nats(nats: async_nats::Client) -> Client {
        Self::watched(nats, PermissionWatch::new())
    }

    /// Reports the permission violations `watch` keeps (fed by the
    /// connection's event callback, see [`PermissionWatch`]) as such, in
    /// enqueue and provisioning errors.
    pub fn with_permission_watch(self, watch: PermissionWatch) -> Client {
        self.with(|s| s.permissions = watch)
    }

    fn watched(nats: async_nats::Client, permissions: PermissionWatch) -> Client {
        Self::build(
            nats,
            Settings {
                names: Names::default(),
                timeout: None,
                middleware: middleware::builtin(),
                policies: Arc::default(),
                provisioning: Provisioning::default(),
                task_retention: DEFAULT_TASK_RETENTION,
                replicas: None,
                signing: None,
                permissions,
                #[cfg(feature = "testing")]
                recorder: None,
            },
        )
    }

    fn build(nats: async_nats::Client, settings: Settings) -> Client {
        let mut js = jetstream::new(nats.clone());
        js.set_timeout(settings.timeout.unwrap_or_else(|| default_timeout(&nats)));
        let provisioner = Arc::new(Provisioner::new(
            js,
            settings.names.clone(),
            settings.provisioning,
            Arc::clone(&settings.policies),
            settings.task_retention,
            settings.replicas,
            settings.permissions.clone(),
        ));
        Client {
            inner: Arc::new(Inner {
                nats,
                tasks: TaskStore::new(Arc::clone(&provisioner)),
                locks: Locks::new(Arc::clone(&provisioner)),
                provisioner,
                settings,
                subjects: Mutex::default(),
                max_payload: AtomicUsize::new(0),
            }),
        }
    }

    /// A new client on the same connection, with this one's settings as
    /// `change` leaves them (and empty caches).
    fn with(&self, change: impl FnOnce(&mut Settings)) -> Client {
        let mut settings = self.inner.settings.clone();
        change(&mut settings);
        Self::build(self.inner.nats.clone(), settings)
    }

    /// Registers the policy of one queue (see [`QueuePolicy`]); a second
    /// policy for the same queue replaces the first. Every producer and
    /// runtime built from the returned client provisions the queue with it
    /// (checking it with [`QueuePolicy::validate`] first), and attaches to
    /// an existing stream or consumer without rewriting it (see
    /// [`Queue::update`](crate::Queue::update)).
    pub fn with_queue(self, policy: QueuePolicy) -> Result<Client, NameError> {
        name::check(&policy.name)?;
        let mut policies = (*self.inner.settings.policies).clone();
        policies.insert(policy.name.clone(), Arc::new(policy));
        Ok(self.with(|s| s.policies = Arc::new(policies)))
    }

    /// Whether this client (and every runtime built from it) may create a
    /// missing stream, consumer or bucket (default [`Provisioning::Create`]).
    /// With [`Provisioning::NoCreate`], for accounts whose streams an
    /// operator manages, a missing one is an error that names it; existing
    /// ones are attached to either way.
    pub fn with_provisioning(self, provisioning: Provisioning) -> Client {
        self.with(|s| s.provisioning = provisioning)
    }

    /// Uses `prefix` instead of `natask` for every subject and stream, so
    /// that two applications can share one NATS account.
    pub fn with_prefix(self, prefix: &str) -> Result<Client, NameError> {
        name::check(prefix)?;
        Ok(self.with(|s| s.names = Names::new(prefix)))
    }

    /// How long `enqueue` and JetStream requests wait for an answer
    /// (default 5 s on a single server, 15 s on a cluster, where an
    /// `enqueue` waits out the election of a new leader instead of failing).
    /// While NATS is unreachable, `enqueue` fails after this long with
    /// [`EnqueueError::Timeout`](crate::EnqueueError::Timeout) instead of
    /// hanging.
    pub fn with_timeout(self, timeout: Duration) -> Client {
        self.with(|s| s.timeout = Some(timeout))
    }

    /// Signs every task this client publishes with `key` (header
    /// `Natask-Signature`, ed25519 over the payload and the task headers):
    /// `enqueue` and its variants, recurring schedules, and the cron
    /// schedules of a runtime built from this client. Workers that
    /// [require signatures](crate::RuntimeBuilder::require_signatures) run
    /// only tasks signed by a key they trust. See `docs/security.md`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use natask_runtime::{Client, SigningKey};
    /// let key = SigningKey::from_file("/run/secrets/natask.seed")?;
    /// let client = Client::connect("nats://127.0.0.1:4222").await?.with_signing_key(key);
    /// # Ok(()) }
    /// ```
    pub fn with_signing_key(self, key: SigningKey) -> Client {
        self.with(|s| s.signing = Some(key))
    }

    /// Adds middleware whose [`on_enqueue`](Middleware::on_enqueue) runs
    /// before every task this client publishes, in the order added.
    pub fn with_middleware(self, middleware: impl Middleware) -> Client {
        self.with(|s| s.middleware.push(Arc::new(middleware)))
    }

    /// Keeps task states and cancellations for `retention` (default
    /// [`DEFAULT_TASK_RETENTION`]). Applies when this client creates the
    /// bucket `<PREFIX>_TASKS`; an existing bucket keeps its setting.
    pub fn with_task_retention(self, retention: Duration) -> Client {
        self.with(|s| s.task_retention = retention)
    }

    /// Creates every stream and bucket with `replicas` copies (1 to 5):
    /// the queues' streams (unless a [`QueuePolicy::replicas`] sets its
    /// own), the dead-letter stream and the task-state, hand-back and
    /// unique-lock buckets. Applies when this client creates them; see
    /// [`update_shared_streams`](Self::update_shared_streams) and
    /// [`Queue::update`](crate::Queue::update) for existing ones.
    ///
    /// Without it, natask decides once per client from what the server
    /// tells it: 3 on a JetStream cluster of 3 or more servers, else 1,
    /// and logs which and why.
    pub fn with_replicas(self, replicas: usize) -> Result<Client, InvalidReplicas> {
        if !REPLICAS.contains(&replicas) {
            return Err(InvalidReplicas(replicas));
        }
        Ok(self.with(|s| s.replicas = Some(replicas)))
    }

    /// The replicas this client creates streams and buckets with: the
    /// count set with [`with_replicas`](Self::with_replicas), else the
    /// cluster-aware default.
    pub fn replicas(&self) -> usize {
        self.inner.provisioner.replicas()
    }

    /// Where the streams every queue shares (`<PREFIX>_DLQ` and the
    /// buckets' `KV_<PREFIX>_TASKS`, `KV_<PREFIX>_HANDBACKS`,
    /// `KV_<PREFIX>_UNIQUE`) differ from what this client would create,
    /// as (stream name, difference): today their replicas. A runtime logs
    /// the same as a warning when it attaches to them.
    pub async fn shared_drift(&self) -> Result<Vec<(String, Drift)>, ProvisionError> {
        self.inner.provisioner.shared_drift().await
    }

    /// Gives the existing shared streams (see
    /// [`shared_drift`](Self::shared_drift)) this client's replicas, for
    /// example after moving from one server to a cluster; returns what was
    /// changed. JetStream moves the data to the new replicas by itself.
    pub async fn update_shared_streams(&self) -> Result<Vec<(String, Drift)>, ProvisionError> {
        self.inner.provisioner.update_shared_streams().await
    }

    /// Whether the connection to NATS is up. Cheap; no request is made.
    pub fn is_ready(&self) -> bool {
        self.inner.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// The underlying NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// The JetStream context natask uses.
    pub fn jetstream(&self) -> &jetstream::Context {
        self.inner.provisioner.js()
    }

    /// The subject and stream names in use.
    pub fn names(&self) -> &Names {
        self.inner.provisioner.names()
    }

    /// The queue `name`: its policy, state, pause and updates. Cheap; the
    /// name is checked by each request.
    pub fn queue(&self, name: &str) -> crate::Queue {
        crate::Queue::new(self.clone(), name)
    }

    /// The dead letters of every queue: list, read, replay and purge them.
    pub fn dead_letters(&self) -> crate::DeadLetters {
        crate::DeadLetters::new(self.clone())
    }

    /// The recurring schedules of task type `T` made at run time.
    pub fn recurring<T: Task>(&self) -> crate::Recurring<T> {
        crate::Recurring::new(self.clone())
    }

    /// How long enqueueing waits for JetStream's confirmation.
    pub(crate) fn timeout(&self) -> Duration {
        use async_nats::jetstream::context::traits::TimeoutProvider;
        self.jetstream().timeout()
    }

    /// A client on `nats` (which never connects) that records its enqueues
    /// in `recorder`; its requests to the server fail after `timeout`.
    #[cfg(feature = "testing")]
    pub(crate) fn recording_on(
        nats: async_nats::Client,
        recorder: Arc<crate::testing::Recorder>,
        timeout: Duration,
    ) -> Client {
        Self::from_nats(nats).with(|s| {
            s.recorder = Some(recorder);
            s.timeout = Some(timeout);
        })
    }

    /// Where a [`Client::recording`] client records its enqueues.
    #[cfg(feature = "testing")]
    pub(crate) fn recorder(&self) -> Option<&Arc<crate::testing::Recorder>> {
        self.inner.settings.recorder.as_ref()
    }

    /// The connection's permission violations (see [`PermissionWatch`]).
    /// The permission violations the server reported on this client's
    /// connection (see [`PermissionWatch`]); `natask doctor` lists them.
    pub fn permission_watch(&self) -> &PermissionWatch {
        self.permissions()
    }

    pub(crate) fn permissions(&self) -> &PermissionWatch {
        &self.inner.settings.permissions
    }

    /// The one provisioning path, shared with every runtime built from
    /// this client.
    pub(crate) fn provisioner(&self) -> &Arc<Provisioner> {
        &self.inner.provisioner
    }

    /// The bucket of task states.
    pub(crate) fn tasks(&self) -> &TaskStore {
        &self.inner.tasks
    }

    /// The bucket of unique locks.
    pub(crate) fn locks(&self) -> &Locks {
        &self.inner.locks
    }

    /// The key this client signs tasks with, if any.
    pub(crate) fn signing_key(&self) -> Option<&SigningKey> {
        self.inner.settings.signing.as_ref()
    }

    /// Whether tasks of `queue` have their state tracked (cheap).
    pub(crate) fn tracks(&self, queue: &str) -> bool {
        self.inner.provisioner.tracks(queue)
    }

    /// Whether `enqueue` records the `queued` state of `queue`'s tasks (cheap).
    pub(crate) fn tracks_queued(&self, queue: &str) -> bool {
        self.inner.provisioner.tracks_queued(queue)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("prefix", &self.names().prefix())
            .field("state", &self.inner.nats.connection_state())
            .finish()
    }
}

/// [`CLUSTER_TIMEOUT`] when the server `nats` is connected to is part of a
/// cluster, else [`DEFAULT_TIMEOUT`].
fn default_timeout(nats: &async_nats::Client) -> Duration {
    match nats.server_info().cluster {
        Some(_) => CLUSTER_TIMEOUT,
        None => DEFAULT_TIMEOUT,
    }
}

/// Splits `scheme://user:password@host` into `scheme://host` and the
/// credentials, percent-decoded (`p%40ss` is `p@ss`), as URLs write them.
fn split_credentials(url: &str) -> (String, Option<(String, Option<String>)>) {
    let decoded = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let address = format!("{}{}", &url[..scheme + 3], &url[at + 1..]);
            let credentials = match userinfo.split_once(':') {
                Some((user, password)) => (decoded(user), Some(decoded(password))),
                None => (decoded(userinfo), None),
            };
            (address, Some(credentials))
        }
        _ => (url.to_owned(), None),
    }
}

/// Drops the passwords from a list of URLs before it appears in an error.
fn redact_all(urls: &str) -> String {
    urls.split(',')
        .map(|url| redact(url.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Drops the secret from a URL before it appears in an error: the
/// password of `user:password@`, or all of `token@` (a token, or an nkey
/// seed, alone before the `@` is a secret, not a user name).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_errors() {
        assert_eq!(redact("nats://u:secret@h:4222"), "nats://u:***@h:4222");
        assert_eq!(redact("nats://s3cret-token@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("nats://SUAM_SEED@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("nats://h:4222"), "nats://h:4222");
        assert_eq!(
            redact_all("nats://u:a@h:1, nats://u:b@i:2"),
            "nats://u:***@h:1,nats://u:***@i:2"
        );
    }

    #[test]
    fn credentials_come_out_of_the_url() {
        assert_eq!(
            split_credentials("nats://u:p:w@h:1"),
            (
                "nats://h:1".to_owned(),
                Some(("u".to_owned(), Some("p:w".to_owned())))
            )
        );
        assert_eq!(
            split_credentials("tls://tok@h"),
            ("tls://h".to_owned(), Some(("tok".to_owned(), None)))
        );
        assert_eq!(split_credentials("h:4222"), ("h:4222".to_owned(), None));
        assert_eq!(
            split_credentials("nats://us%65r:p%40ss%3Aw@h"),
            (
                "nats://h".to_owned(),
                Some(("user".to_owned(), Some("p@ss:w".to_owned())))
            )
        );
    }
}
