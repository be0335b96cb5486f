//! Recurring schedules made at run time (nats-server 2.14+): the run-time
//! counterpart of `#[task(cron = "..")]`, for schedules that depend on
//! data, such as one report per tenant ([`Client::recurring`](crate::Client::recurring)).
//!
//! Each schedule is one message on its own subject
//! `<prefix>.s.<queue>.<task>.cron.<key>` in the queue's stream, with
//! `Nats-Schedule: <expression>`, `Nats-Schedule-Target:
//! <prefix>.q.<queue>.<task>`, natask's task headers (without a task id:
//! the worker derives one per tick, as for cron tasks) and the task's JSON
//! body. The server stores a copy on the target at every tick. Publishing the
//! subject again replaces the schedule; the cron tasks' clean-up
//! (`worker::cron`, filter `<prefix>.s.<queue>.*.cron`) never matches these
//! subjects, which have one token more. `docs/scheduling.md` has the
//! details.

use std::marker::PhantomData;

use futures_util::TryStreamExt;

use natask_core::cron::CronSyntaxError;
use natask_core::name::{self, NameError};
use natask_core::Task;

use super::enqueue::provision_error;
use super::Client;
use crate::jetstream::error;
use crate::jetstream::headers::{
    kind_headers, NATS_SCHEDULE, NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE,
};
use crate::jetstream::message_schedules::{self, Put, Refused};
use crate::EnqueueError;

/// A recurring schedule could not be stored, removed or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecurringError {
    /// The key is not 1–64 ASCII letters, digits, `_` or `-` (it becomes a
    /// NATS subject token). Nothing was stored.
    #[error("`{key}` cannot be the key of a recurring schedule of task `{task}`")]
    Key {
        /// The task's name.
        task: &'static str,
        /// The key given.
        key: String,
        /// What is wrong with it.
        #[source]
        source: NameError,
    },
    /// The expression (or its time zone) is not one nats-server accepts as
    /// a repeating schedule (the grammar of `#[task(cron = "..")]`).
    /// Nothing was stored.
    #[error("`{cron}` is not a schedule nats-server accepts, for task `{task}`")]
    Cron {
        /// The task's name.
        task: &'static str,
        /// The expression given.
        cron: String,
        /// What is wrong with it, and what to write instead.
        #[source]
        source: CronSyntaxError,
    },
    /// The payload could not be serialised to JSON. Nothing was stored.
    #[error("task `{task}` could not be encoded as JSON")]
    Encode {
        /// The task's name.
        task: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The queue's stream cannot hold schedules (nats-server before 2.12),
    /// or could not be created or updated to. Nothing was stored.
    #[error("queue `{queue}` cannot hold the recurring schedules of task `{task}`")]
    Unsupported {
        /// The queue.
        queue: &'static str,
        /// The task's name.
        task: &'static str,
        /// Why.
        #[source]
        source: Box<EnqueueError>,
    },
    /// The server refused the expression (error 10189): nats-server 2.12
    /// and 2.13 know only one-off schedules, and every version refuses a
    /// date that never occurs (`0 0 0 30 2 *`). Nothing was stored.
    #[error(
        "nats-server {server_version} refuses the schedule `{cron}` of task `{task}`; cron and \
         `@every` schedules need nats-server 2.14 or newer, and a date that never occurs is refused by all"
    )]
    Refused {
        /// The task's name.
        task: &'static str,
        /// The expression.
        cron: String,
        /// The version the server reports.
        server_version: String,
    },
    /// The server does not know the time zone (error 10223). Nothing was
    /// stored.
    #[error(
        "nats-server does not know the time zone `{time_zone}` of a schedule of task `{task}`; write an \
         IANA name from its time-zone database, such as `Europe/Berlin` or `UTC`"
    )]
    TimeZone {
        /// The task's name.
        task: &'static str,
        /// The zone given.
        time_zone: String,
    },
    /// A stored schedule's body does not decode into the task's payload
    /// (it was stored by another version of the task).
    #[error("the recurring schedule `{key}` of task `{task}` does not decode into its payload")]
    Decode {
        /// The task's name.
        task: &'static str,
        /// The schedule's key.
        key: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// JetStream refused or did not answer a read, publish or purge.
    #[error(
        "the recurring schedules of task `{task}` on queue `{queue}` could not be read, stored or removed"
    )]
    JetStream {
        /// The queue.
        queue: &'static str,
        /// The task's name.
        task: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

/// A repeating schedule: an expression, and the time zone its fields are
/// read in (UTC unless given). A `&str` or `String` converts into one with
/// no time zone.
///
/// ```
/// use natask_runtime::Cron;
/// let at_six_in_berlin = Cron::new("0 0 6 * * *").with_time_zone("Europe/Berlin");
/// let every_minute: Cron = "@every 1m".into();
/// assert_eq!(at_six_in_berlin.time_zone(), Some("Europe/Berlin"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    expression: String,
    time_zone: Option<String>,
}

impl Cron {
    /// A schedule with `expression`, read in UTC.
    pub fn new(expression: impl Into<String>) -> Cron {
        Cron {
            expression: expression.into(),
            time_zone: None,
        }
    }

    /// Reads the expression's fields in the IANA time zone `time_zone` (e.g.
    /// `Europe/Berlin`; `Nats-Schedule-Time-Zone`). Not with `@every`.
    pub fn with_time_zone(mut self, time_zone: impl Into<String>) -> Cron {
        self.time_zone = Some(time_zone.into());
        self
    }

    /// The expression, e.g. `0 0 6 * * *`.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone, if one was given; `None` is UTC.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }
}

impl From<&str> for Cron {
    fn from(expression: &str) -> Cron {
        Cron::new(expression)
    }
}

impl From<String> for Cron {
    fn from(expression: String) -> Cron {
        Cron::new(expression)
    }
}

/// One recurring schedule, as [`Recurring::list`] reads it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecurringTask<T> {
    /// The key it was stored under.
    pub key: String,
    /// Its expression and time zone.
    pub cron: Cron,
    /// The payload every tick runs with.
    pub task: T,
}

/// The recurring schedules of task type `T`, as
/// [`Client::recurring`](crate::Client::recurring) hands them out. Cheap to
/// clone.
///
/// Like a `#[task(cron = "..")]` task, each tick runs once for the whole
/// fleet, as a task with its own id; unlike one, the payload is yours, and
/// the schedule is held by the server alone: no runtime puts it in place or
/// removes it. Needs nats-server 2.14 or newer. Enqueue middleware does not
/// run (no producer publishes the ticks), and a unique task's ticks take no
/// lock.
///
/// ```no_run
/// use natask_runtime::{task, Client, Cron};
///
/// #[task(queue = "reports")]
/// async fn tenant_report(tenant: String) {}
///
/// # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
/// let reports = client.recurring::<TenantReport>();
/// // every day at 06:00 UTC, one schedule per tenant
/// reports.set("acme", "0 0 6 * * *", &TenantReport::new("acme".into())).await?;
/// reports
///     .set("globex", Cron::new("0 0 6 * * *").with_time_zone("Asia/Tokyo"), &TenantReport::new("globex".into()))
///     .await?;
/// for s in reports.list().await? {
///     println!("{}: {} for {}", s.key, s.cron.expression(), s.task.tenant);
/// }
/// reports.remove("acme").await?;
/// # Ok(()) }
/// ```
pub struct Recurring<T> {
    client: Client,
    task: PhantomData<fn() -> T>,
}

impl<T> Clone for Recurring<T> {
    fn clone(&self) -> Self {
        Recurring {
            client: self.client.clone(),
            task: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Recurring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recurring")
            .field("task", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Task> Recurring<T> {
    pub(crate) fn new(client: Client) -> Recurring<T> {
        Recurring {
            client,
            task: PhantomData,
        }
    }

    /// Runs `task` on the repeating schedule `cron` from now on, as the
    /// schedule `key`, until [`remove`](Self::remove)d; setting the same key
    /// again replaces its expression and payload.
    ///
    /// `cron` takes what `#[task(cron = "..")]` takes (six fields with
    /// seconds first, `@every 30s`, `@daily`, ...), checked before anything
    /// is sent; `key` is 1–64 ASCII letters, digits, `_` or `-`. Setting an
    /// unchanged schedule again sends nothing, so that the interval of an
    /// `@every` schedule is not restarted.
    pub async fn set(
        &self,
        key: &str,
        cron: impl Into<Cron>,
        task: &T,
    ) -> Result<(), RecurringError> {
        let cron = cron.into();
        self.check_key(key)?;
        check_cron::<T>(&cron)?;
        let body = serde_json::to_vec(task).map_err(|source| RecurringError::Encode {
            task: T::NAME,
            source,
        })?;
        self.client
            .provisioner()
            .schedules(T::QUEUE)
            .await
            .map_err(|source| RecurringError::Unsupported {
                queue: T::QUEUE,
                task: T::NAME,
                source: Box::new(provision_error(T::QUEUE, source)),
            })?;
        let names = self.client.names();
        let mut headers = kind_headers(T::NAME, T::VERSION);
        headers.insert(NATS_SCHEDULE, cron.expression());
        headers.insert(
            NATS_SCHEDULE_TARGET,
            names.task_subject(T::QUEUE, T::NAME).as_str(),
        );
        if let Some(zone) = cron.time_zone() {
            headers.insert(NATS_SCHEDULE_TIME_ZONE, zone);
        }
        if let Some(key) = self.client.signing_key() {
            key.sign(T::QUEUE, &mut headers, &body);
        }
        let stream = self.stream().await?;
        let subject = names.keyed_schedule_subject(T::QUEUE, T::NAME, key);
        let js = self.client.jetstream();
        let put = message_schedules::put(js, &stream, subject, headers, body.into())
            .await
            .map_err(|refused| self.refused(refused, &cron))?;
        let (queue, task, cron) = (T::QUEUE, T::NAME, cron.expression());
        match put {
            Put::Unchanged => {
                tracing::debug!(task, queue, key, cron, "recurring schedule in place")
            }
            Put::Published => tracing::info!(task, queue, key, cron, "recurring schedule stored"),
        }
        Ok(())
    }

    /// Removes the schedule `key`: `true` if there was one. Ticks it
    /// already produced stay queued.
    pub async fn remove(&self, key: &str) -> Result<bool, RecurringError> {
        self.check_key(key)?;
        let stream = self.stream().await?;
        let subject = self
            .client
            .names()
            .keyed_schedule_subject(T::QUEUE, T::NAME, key);
        match stream.purge().filter(subject).await {
            Ok(purged) => Ok(purged.purged > 0),
            // No stream, so nothing was ever scheduled on it.
            Err(e) if error::is_stream_not_found(&e) => Ok(false),
            Err(e) => Err(failed::<T>(e)),
        }
    }

    /// Every recurring schedule of `T`, by key.
    pub async fn list(&self) -> Result<Vec<RecurringTask<T>>, RecurringError> {
        let stream = self.stream().await?;
        let filter = self.client.names().keyed_schedule_filter(T::QUEUE, T::NAME);
        let subjects: Vec<(String, usize)> = match stream.info_with_subjects(filter).await {
            Ok(subjects) => subjects.try_collect().await.map_err(failed::<T>)?,
            Err(e) if error::is_stream_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(failed::<T>(e)),
        };
        let mut schedules = Vec::with_capacity(subjects.len());
        for (subject, _) in subjects {
            let stored = match stream.direct_get_last_for_subject(subject.as_str()).await {
                Ok(stored) => stored,
                // Removed since the listing.
                Err(e)
                    if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(failed::<T>(e)),
            };
            let key = subject.rsplit('.').next().unwrap_or_default().to_owned();
            schedules.push(read::<T>(key, &stored)?);
        }
        schedules.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(schedules)
    }

    async fn stream(&self) -> Result<async_nats::jetstream::stream::Stream<()>, RecurringError> {
        self.client
            .jetstream()
            .get_stream_no_info(self.client.names().queue_stream(T::QUEUE))
            .await
            .map_err(failed::<T>)
    }

    fn check_key(&self, key: &str) -> Result<(), RecurringError> {
        name::check(key).map_err(|source| RecurringError::Key {
            task: T::NAME,
            key: key.to_owned(),
            source,
        })
    }

    fn refused(&self, refused: Refused, cron: &Cron) -> RecurringError {
        match (refused, cron.time_zone()) {
            (Refused::TimeZone, Some(zone)) => RecurringError::TimeZone {
                task: T::NAME,
                time_zone: zone.to_owned(),
            },
            (Refused::Pattern | Refused::TimeZone, _) => RecurringError::Refused {
                task: T::NAME,
                cron: cron.expression().to_owned(),
                server_version: self.client.nats().server_info().version,
            },
            (Refused::JetStream(e), _) => failed::<T>(e),
        }
    }
}

/// Checks `cron` with the grammar `#[task(cron = "..")]` is checked with.
fn check_cron<T: Task>(cron: &Cron) -> Result<(), RecurringError> {
    let expression = cron.expression();
    natask_core::cron::check(expression)
        .and_then(|()| match cron.time_zone() {
            Some(zone) => natask_core::cron::check_time_zone(expression, zone),
            None => Ok(()),
        })
        .map_err(|source| RecurringError::Cron {
            task: T::NAME,
            cron: expression.to_owned(),
            source,
        })
}

/// The stored schedule `key`.
fn read<T: Task>(
    key: String,
    stored: &async_nats::jetstream::message::StreamMessage,
) -> Result<RecurringTask<T>, RecurringError> {
    let header = |name| stored.headers.get(name).map(|v| v.as_str().to_owned());
    let mut cron = Cron::new(header(NATS_SCHEDULE).unwrap_or_default());
    if let Some(zone) = header(NATS_SCHEDULE_TIME_ZONE) {
        cron = cron.with_time_zone(zone);
    }
    let task =
        serde_json::from_slice(&stored.payload).map_err(|source| RecurringError::Decode {
            task: T::NAME,
            key: key.clone(),
            source,
        })?;
    Ok(RecurringTask { key, cron, task })
}

fn failed<T: Task>(e: impl Into<async_nats::Error>) -> RecurringError {
    RecurringError::JetStream {
        queue: T::QUEUE,
        task: T::NAME,
        source: e.into(),
    }
}
