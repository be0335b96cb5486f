//! Enqueueing one task: every way of enqueueing (`enqueue`, `enqueue_with`,
//! `enqueue_in`, `enqueue_at`) takes this one path: options resolved, the
//! unique lock taken, the message prepared (body, headers, middleware, size
//! check), published (sent again with the same `Nats-Msg-Id` while no
//! leader answers), and its first state recorded (which never turns a
//! stored task into an error).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use async_nats::jetstream::publish::PublishAck;
use async_nats::{HeaderMap, Subject};
use tracing::Instrument;

use natask_core::{Task, TaskId};

use super::options::{Due, EnqueueOptions, Enqueued, Unique, Uniqueness};
use super::Client;
use crate::jetstream::headers::{
    self, DUE_AT, ENQUEUED_AT, ID, MSG_ID, NATS_SCHEDULE, NATS_SCHEDULE_TARGET,
};
use crate::jetstream::{publish, time};
use crate::middleware::{self, Enqueue, Rejected};
use crate::store::locks::{Acquired, Lock, LockError};
use crate::store::tasks::{TaskInfo, TaskState};

mod error;

pub(crate) use error::{provision_error, publish_error};
pub use error::{EnqueueError, QueueLimit};

/// What JetStream answered to a task's publish.
pub(crate) struct Stored {
    /// The task's stream sequence (the original's, for a duplicate).
    pub(crate) sequence: u64,
    /// The stream had stored a message with this `Nats-Msg-Id` within its
    /// duplicate window, so this one was dropped.
    pub(crate) duplicate: bool,
}

impl Stored {
    /// JetStream's acknowledgement of a task of type `T`, counted in the
    /// metrics unless it was a duplicate.
    pub(crate) fn of<T: Task>(ack: &PublishAck) -> Stored {
        Self::new::<T>(ack.sequence, ack.duplicate)
    }

    #[cfg_attr(not(feature = "metrics"), allow(clippy::extra_unused_type_parameters))] // `T` names the metric
    fn new<T: Task>(sequence: u64, duplicate: bool) -> Stored {
        #[cfg(feature = "metrics")]
        if !duplicate {
            crate::metrics::enqueued(T::QUEUE, T::NAME);
        }
        Stored {
            sequence,
            duplicate,
        }
    }
}

/// Whether `e` may stand for a request the server never answered (what a
/// refused one looks like); the others are the server's or natask's own
/// answers.
fn unanswered(e: &EnqueueError) -> bool {
    matches!(
        e,
        EnqueueError::Timeout { .. }
            | EnqueueError::JetStream { .. }
            | EnqueueError::Unique { .. }
            | EnqueueError::Provision {
                source: crate::ProvisionError::JetStream { .. },
                ..
            }
    )
}

/// A delayed task's due time, resolved.
struct Delay {
    due: SystemTime,
    /// `due` in RFC 3339, for `Nats-Schedule: @at ..`.
    at: String,
}

impl Client {
    /// Enqueues `task`; returns its id once JetStream has stored it.
    ///
    /// The generated `SendEmail { .. }.enqueue(&client)` calls this. For a
    /// unique task (`#[task(unique = "..")]`) whose key is held, nothing is
    /// stored: the answer has the holder's id and `created: false`.
    pub async fn enqueue<T: Task>(&self, task: &T) -> Result<Enqueued, EnqueueError> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// Enqueues `task` as `options` say (a given id, uniqueness, a due
    /// time); returns its id and whether this call stored it, or found a
    /// task that holds the same unique key or id (see [`EnqueueOptions`]).
    /// Every other way of enqueueing one task calls this.
    pub async fn enqueue_with<T: Task>(
        &self,
        task: &T,
        options: EnqueueOptions,
    ) -> Result<Enqueued, EnqueueError> {
        #[cfg(feature = "testing")]
        if let Some(recorder) = self.recorder() {
            return recorder.enqueue(self, task, options).await;
        }
        let delay = resolve::<T>(options.due)?;
        if let Some(chosen) = options.id {
            if self.names_a_task::<T>(chosen).await {
                // An id names one task (`docs/wire-format.md`, "One id, one
                // task"): this enqueue is that task's again.
                return Ok(Enqueued {
                    id: chosen,
                    created: false,
                });
            }
        }
        let id = options.id.unwrap_or_else(TaskId::new);
        let options = options.id(id);
        let span = tracing::info_span!(
            "enqueue",
            task = T::NAME,
            queue = T::QUEUE,
            due = tracing::field::Empty
        );
        if let Some(delay) = &delay {
            span.record("due", delay.at.as_str());
        }
        let enqueue = async {
            if delay.is_some() {
                self.provisioner()
                    .schedules(T::QUEUE)
                    .await
                    .map_err(|e| provision_error(T::QUEUE, e))?;
            }
            self.guarded(task, options, |id, lock| {
                self.publish_one(task, id, lock, delay.as_ref())
            })
            .await
        };
        self.bounded::<T, _>(id, enqueue.instrument(span)).await
    }

    /// Publishes task `id` (under `lock`), now or as a delayed task, and
    /// starts recording its first state (in the background: a stored task
    /// is `Ok` whatever becomes of that write, and the enqueue costs one
    /// round trip); answers whether JetStream found it a duplicate.
    async fn publish_one<T: Task>(
        &self,
        task: &T,
        id: TaskId,
        lock: Option<Lock>,
        delay: Option<&Delay>,
    ) -> Result<bool, EnqueueError> {
        let target = self.task_subject::<T>(&self.subject_of::<T>().await?, id);
        let (headers, payload) = self.prepare(task, id, |headers| {
            Lock::mark(lock.as_ref(), headers);
            if let Some(delay) = delay {
                headers.insert(NATS_SCHEDULE, format!("@at {}", delay.at).as_str());
                headers.insert(NATS_SCHEDULE_TARGET, target.as_str());
                headers.insert(DUE_AT, time::unix_millis(delay.due).to_string().as_str());
                // The copy the schedule stores when due is the task: it
                // needs its id and enqueue time spelled out, as its
                // `Nats-Msg-Id` and stream timestamp are the copy's own.
                headers.insert(ID, id.to_string().as_str());
                headers.insert(
                    ENQUEUED_AT,
                    time::unix_millis(SystemTime::now()).to_string().as_str(),
                );
            }
        })?;
        let subject = match delay {
            Some(_) => Subject::from(self.names().schedule_subject(
                T::QUEUE,
                T::NAME,
                &id.to_string(),
            )),
            None => target,
        };
        let stored = self
            .publish_task::<T>(subject.clone(), headers, payload)
            .await?;
        tracing::debug!(%id, duplicate = stored.duplicate, delayed = delay.is_some(), "enqueued");
        // A duplicate's state was recorded by the publish that stored it.
        // A delayed task's state is kept whenever tracking is on: cancelling
        // it needs its schedule subject.
        let record = match delay {
            Some(_) => self.tracks(T::QUEUE),
            None => self.tracks_queued(T::QUEUE),
        };
        if !stored.duplicate && record {
            let mut info = initial_state::<T>(id, TaskState::Queued, Some(stored.sequence));
            if let Some(delay) = delay {
                info.state = TaskState::Delayed;
                info.seq = None;
                info.due_at = Some(delay.due);
                info.delayed_subject = Some(subject.to_string());
            }
            self.tasks().record_new_in_background(info);
        }
        Ok(stored.duplicate)
    }

    /// Runs `publish(id, lock)` under the unique lock `options` ask for, if
    /// any; `publish` answers whether JetStream found the message a
    /// duplicate. A lock this call took is released again if `publish`
    /// fails.
    pub(crate) async fn guarded<T, F, Fut>(
        &self,
        task: &T,
        options: EnqueueOptions,
        publish: F,
    ) -> Result<Enqueued, EnqueueError>
    where
        T: Task,
        F: FnOnce(TaskId, Option<Lock>) -> Fut,
        Fut: Future<Output = Result<bool, EnqueueError>>,
    {
        let id = options.id.unwrap_or_else(TaskId::new);
        let unique = match options.unique {
            Uniqueness::Declared => Unique::declared(task),
            Uniqueness::Off => None,
            Uniqueness::Key(unique) => Some(unique),
        };
        let Some(unique) = unique else {
            let duplicate = publish(id, None).await?;
            return Ok(Enqueued {
                id,
                created: !duplicate,
            });
        };
        let (lock, revision) = match self.take_lock::<T>(unique, id).await? {
            Taken::Held(holder) => {
                return Ok(Enqueued {
                    id: holder,
                    created: false,
                })
            }
            Taken::Lock(lock, revision) => (lock, revision),
        };
        let key = lock.key.clone();
        match publish(id, Some(lock)).await {
            Ok(duplicate) => Ok(Enqueued {
                id,
                created: !duplicate,
            }),
            Err(e) => {
                if let Some(revision) = revision {
                    self.locks().give_back(&key, revision).await;
                }
                Err(e)
            }
        }
    }

    /// Whether a chosen id already names a task of a tracked queue: one
    /// whose state is kept, or that waits in `T`'s queue. Only ids the
    /// caller chose are looked up (a new id names nothing); a failed read
    /// counts as no.
    async fn names_a_task<T: Task>(&self, id: TaskId) -> bool {
        if !self.tracks(T::QUEUE) {
            return false;
        }
        let found = match self.tasks().get(id).await {
            Ok(None) => self.waiting_in(T::QUEUE, id).await,
            kept => kept,
        };
        match found {
            Ok(found) => found.is_some(),
            Err(error) => {
                tracing::debug!(%id, %error, "could not read the state of a chosen task id; enqueueing");
                false
            }
        }
    }

    /// Takes the lock `unique` asks for, for task `id`.
    async fn take_lock<T: Task>(&self, unique: Unique, id: TaskId) -> Result<Taken, EnqueueError> {
        let policy = unique.policy;
        let ttl = policy.ttl;
        let lock = Lock {
            key: unique.lock_key::<T>()?,
            until: policy.until,
        };
        let acquired = self.locks().acquire(&lock, id, ttl).await;
        match acquired.map_err(|e| self.lock_error::<T>(e))? {
            Acquired::Held(holder) => {
                tracing::debug!(%holder, key = %lock.key, "a task with this unique key exists");
                Ok(Taken::Held(holder))
            }
            Acquired::Ours => Ok(Taken::Lock(lock, None)),
            Acquired::New(revision) => Ok(Taken::Lock(lock, Some(revision))),
        }
    }

    fn lock_error<T: Task>(&self, error: LockError) -> EnqueueError {
        match error {
            LockError::Unsupported { server_version } => EnqueueError::UniqueUnsupported {
                task: T::NAME,
                server_version,
            },
            LockError::Failed(source) => EnqueueError::Unique {
                task: T::NAME,
                bucket: self.locks().bucket_name(),
                source,
            },
        }
    }

    /// Runs one enqueue of task `id`, a `T`, within the client's timeout.
    /// A failure while the server reported a permissions violation is that
    /// refusal: the server answers no request it refuses, so the enqueue
    /// failed for want of an answer.
    pub(crate) async fn bounded<T: Task, R>(
        &self,
        id: TaskId,
        enqueue: impl Future<Output = Result<R, EnqueueError>>,
    ) -> Result<R, EnqueueError> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout(), enqueue)
            .await
            .unwrap_or_else(|_| Err(self.timed_out::<T>(id)));
        match result {
            Err(e) if unanswered(&e) => match self.permissions().since(started) {
                Some(violation) => Err(EnqueueError::PermissionDenied {
                    task: T::NAME,
                    queue: T::QUEUE,
                    violation,
                }),
                None => Err(e),
            },
            result => result,
        }
    }

    /// Task `id`, a `T`, was not confirmed within the client's timeout.
    pub(crate) fn timed_out<T: Task>(&self, id: TaskId) -> EnqueueError {
        EnqueueError::Timeout {
            task: T::NAME,
            id,
            queue: T::QUEUE,
            timeout: self.timeout(),
        }
    }

    /// Publishes one prepared task of type `T` on `subject` and waits until
    /// JetStream has stored it, or found it a duplicate (same `Nats-Msg-Id`
    /// inside the window) and stored nothing. While nothing answers (a
    /// stream leader being elected, a connection moving to another server,
    /// a lost acknowledgement) it sends the same message again, until the
    /// caller's bound ([`bounded`](Self::bounded)) ends it: a failover
    /// costs latency, not an error, and the `Nats-Msg-Id` keeps the task
    /// stored once.
    pub(crate) async fn publish_task<T: Task>(
        &self,
        subject: Subject,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<Stored, EnqueueError> {
        self.send_until_answered::<T>(subject, headers, payload.into(), false)
            .await
    }

    /// [`publish_task`](Self::publish_task) for a message that may have been sent
    /// before (`unanswered`, see [`publish::until_answered`]).
    pub(crate) async fn send_until_answered<T: Task>(
        &self,
        subject: Subject,
        headers: HeaderMap,
        payload: bytes::Bytes,
        unanswered: bool,
    ) -> Result<Stored, EnqueueError> {
        let answered =
            publish::until_answered(self.jetstream(), subject, headers, payload, unanswered)
                .await
                .map_err(|e| publish_error::<T>(e.into()))?;
        Ok(Stored::new::<T>(
            answered.ack.sequence,
            answered.duplicate(),
        ))
    }

    /// Everything before the publish of task `id`: the body, the headers
    /// (`extra` adds its own before the middleware runs), the middleware
    /// and the size check.
    pub(crate) fn prepare<T: Task>(
        &self,
        task: &T,
        id: TaskId,
        extra: impl FnOnce(&mut HeaderMap),
    ) -> Result<(HeaderMap, Vec<u8>), EnqueueError> {
        let payload = serde_json::to_vec(task).map_err(|source| EnqueueError::Encode {
            task: T::NAME,
            source,
        })?;
        let mut headers = task_headers(T::NAME, T::VERSION, id);
        extra(&mut headers);
        let mut enqueue = Enqueue {
            task: T::NAME,
            queue: T::QUEUE,
            id,
            payload: &payload,
            headers: &mut headers,
        };
        middleware::enqueue_chain(&self.inner.settings.middleware, &mut enqueue).map_err(
            |Rejected(reason)| EnqueueError::Rejected {
                task: T::NAME,
                reason,
            },
        )?;
        if let Some(key) = self.signing_key() {
            key.sign(T::QUEUE, &mut headers, &payload);
        }
        let size = payload.len() + headers::wire_len(&headers);
        let limit = self.max_payload();
        if limit > 0 && size > limit {
            return Err(EnqueueError::TooLarge {
                task: T::NAME,
                size,
                limit,
            });
        }
        Ok((headers, payload))
    }

    fn max_payload(&self) -> usize {
        let known = self.inner.max_payload.load(Ordering::Relaxed);
        if known > 0 {
            return known;
        }
        // Unknown until the first connection has been made.
        let limit = self.inner.nats.server_info().max_payload;
        self.inner.max_payload.store(limit, Ordering::Relaxed);
        limit
    }

    /// The subject of task `T`, once its queue's stream is known to exist.
    pub(crate) async fn subject_of<T: Task>(&self) -> Result<Subject, EnqueueError> {
        let key = (T::QUEUE, T::NAME);
        let known = self
            .inner
            .subjects
            .lock()
            .expect("subject cache poisoned")
            .get(&key)
            .cloned();
        if let Some(subject) = known {
            return Ok(subject);
        }
        self.provisioner()
            .ensure_queue(T::QUEUE)
            .await
            .map_err(|e| provision_error(T::QUEUE, e))?;
        let subject = Subject::from(self.names().task_subject(T::QUEUE, T::NAME));
        self.inner
            .subjects
            .lock()
            .expect("subject cache poisoned")
            .insert(key, subject.clone());
        Ok(subject)
    }
}

impl Client {
    /// The subject task `id` of type `T` is published to, from its task
    /// type's subject: on a tracked queue, its own (as
    /// [`Names::waiting_subject`](natask_core::wire::Names::waiting_subject)),
    /// where `task_info` and `cancel` find it while it waits; on an
    /// untracked queue, or one that writes the `queued` state to the
    /// bucket instead (`track_queued(true)`), the task type's, which costs
    /// the server less (a subject per message is an entry in the stream's
    /// subject index, and a consumer's next message is looked up through it).
    pub(crate) fn task_subject<T: Task>(&self, of_type: &Subject, id: TaskId) -> Subject {
        if !self.tracks(T::QUEUE) || self.tracks_queued(T::QUEUE) {
            return of_type.clone();
        }
        let mut buffer = uuid::Uuid::encode_buffer();
        let id = id.as_uuid().hyphenated().encode_lower(&mut buffer);
        Subject::from(format!("{of_type}.{id}"))
    }
}

/// What taking a unique lock found.
enum Taken {
    /// Another task holds it.
    Held(TaskId),
    /// This enqueue holds it; taken now at this revision, or earlier.
    Lock(Lock, Option<u64>),
}

/// The due time `due` asks for, if it is in the future.
fn resolve<T: Task>(due: Option<Due>) -> Result<Option<Delay>, EnqueueError> {
    let now = SystemTime::now();
    let due = match due {
        None => return Ok(None),
        Some(Due::In(delay)) if delay.is_zero() => return Ok(None),
        Some(Due::In(delay)) => now
            .checked_add(delay)
            .ok_or(EnqueueError::TooFarAhead { task: T::NAME })?,
        Some(Due::At(due)) if due <= now => return Ok(None),
        Some(Due::At(due)) => due,
    };
    match time::rfc3339(due) {
        Some(at) => Ok(Some(Delay { due, at })),
        None => Err(EnqueueError::TooFarAhead { task: T::NAME }),
    }
}

/// A task's headers as a producer sends them: the kind's, plus its id as
/// the deduplication id, which names the task in format 2.
fn task_headers(task: &str, version: u32, id: TaskId) -> HeaderMap {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = &*id.as_uuid().hyphenated().encode_lower(&mut buffer);
    let mut headers = headers::kind_headers(task, version);
    headers.insert(MSG_ID, id);
    headers
}

/// The state a producer records for a task of type `T` it stores, with
/// the task's stream sequence if known.
pub(crate) fn initial_state<T: Task>(id: TaskId, state: TaskState, seq: Option<u64>) -> TaskInfo {
    let mut info = TaskInfo::new(id, T::NAME, T::QUEUE, state);
    info.enqueued_at = Some(SystemTime::now());
    info.seq = seq;
    info
}
