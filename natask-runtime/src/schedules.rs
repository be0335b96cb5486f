//! Repeating schedules made at run time (nats-server 2.14+): the run-time
//! counterpart of `#[task(cron = "..")]`, for schedules that depend on
//! data, such as one report per tenant.
//!
//! Each schedule is one message on its own subject
//! `<prefix>.s.<queue>.<task>.cron.<key>` in the queue's stream, with
//! `Nats-Schedule: <expression>`, `Nats-Schedule-Target:
//! <prefix>.q.<queue>.<task>`, natask's task headers (without a task id:
//! the worker derives one per tick, as for cron tasks) and the task's JSON
//! body. The server stores a copy on the target at every tick. Publishing the
//! subject again replaces the schedule; the cron tasks' clean-up
//! (`cron::sync`, filter `<prefix>.s.<queue>.*.cron`) never matches these
//! subjects, which have one token more. `docs/scheduling.md` has the
//! details.

use futures_util::TryStreamExt;

use natask_core::cron::CronSyntaxError;
use natask_core::name::{self, NameError};
use natask_core::Task;

use crate::client::{kind_headers, Client, EnqueueError};
use crate::headers::{NATS_SCHEDULE, NATS_SCHEDULE_TARGET, NATS_SCHEDULE_TIME_ZONE};

/// A run-time schedule could not be stored, removed or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The key is not 1–64 ASCII letters, digits, `_` or `-` (it becomes a
    /// NATS subject token). Nothing was stored.
    #[error("`{key}` cannot be the key of a schedule of task `{task}`")]
    Key {
        /// The task's name.
        task: &'static str,
        /// The key given.
        key: String,
        /// What is wrong with it.
        #[source]
        source: NameError,
    },
    /// The expression is not one nats-server accepts as a repeating
    /// schedule (the grammar of `#[task(cron = "..")]`). Nothing was stored.
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
    #[error("queue `{queue}` cannot hold the schedules of task `{task}`")]
    Unsupported {
        /// The queue.
        queue: &'static str,
        /// The task's name.
        task: &'static str,
        /// Why.
        #[source]
        source: EnqueueError,
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
        "nats-server does not know the time zone `{zone}` of a schedule of task `{task}`; write an \
         IANA name from its time-zone database, such as `Europe/Berlin` or `UTC`"
    )]
    TimeZone {
        /// The task's name.
        task: &'static str,
        /// The zone given.
        zone: String,
    },
    /// A stored schedule's body does not decode into the task's payload
    /// (it was stored by another version of the task).
    #[error("the schedule `{key}` of task `{task}` does not decode into its payload")]
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
        "the schedules of task `{task}` on queue `{queue}` could not be read, stored or removed"
    )]
    Jetstream {
        /// The queue.
        queue: &'static str,
        /// The task's name.
        task: &'static str,
        /// async-nats's error.
        #[source]
        source: async_nats::Error,
    },
}

/// A repeating schedule for [`Client::schedule`]: an expression, and the
/// time zone its fields are read in (UTC unless given). A `&str` or
/// `String` converts into one with no time zone.
///
/// ```
/// use natask_runtime::Cron;
/// let at_six_in_berlin = Cron::new("0 0 6 * * *").with_time_zone("Europe/Berlin");
/// let every_minute: Cron = "@every 1m".into();
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

    /// Reads the expression's fields in the IANA time zone `zone` (e.g.
    /// `Europe/Berlin`; `Nats-Schedule-Time-Zone`). Not with `@every`.
    pub fn with_time_zone(mut self, zone: impl Into<String>) -> Cron {
        self.time_zone = Some(zone.into());
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

/// One run-time schedule, as [`Client::schedules`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Schedule<T> {
    /// The key it was stored under.
    pub key: String,
    /// Its expression, e.g. `0 0 6 * * *`.
    pub cron: String,
    /// The time zone the expression is read in; `None` is UTC.
    pub time_zone: Option<String>,
    /// The payload every tick runs with.
    pub task: T,
}

fn jetstream_error<T: Task>(e: impl Into<async_nats::Error>) -> ScheduleError {
    ScheduleError::Jetstream {
        queue: T::QUEUE,
        task: T::NAME,
        source: e.into(),
    }
}

impl Client {
    /// Runs `task` on the repeating schedule `cron` from now on, as the
    /// schedule `key` of task type `T`, until
    /// [`unschedule`](Self::unschedule)d; storing the same key again
    /// replaces its expression and payload. Like a `#[task(cron = "..")]`
    /// task, each tick runs once for the whole fleet, as a task with its own
    /// id; unlike one, the payload is yours, and the schedule is held by the
    /// server alone: no runtime puts it in place or removes it.
    ///
    /// `cron` takes what `#[task(cron = "..")]` takes (six fields with
    /// seconds first, `@every 30s`, `@daily`, ...), checked before anything
    /// is sent; `key` is 1–64 ASCII letters, digits, `_` or `-`. Needs
    /// nats-server 2.14 or newer. Storing an unchanged schedule again sends
    /// nothing, so that the interval of an `@every` schedule is not
    /// restarted. Enqueue middleware does not run (no producer publishes
    /// the ticks), and a unique task's ticks take no lock.
    ///
    /// ```no_run
    /// use natask_runtime::{task, Client};
    ///
    /// #[task(queue = "reports")]
    /// async fn tenant_report(tenant: String) {}
    ///
    /// # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
    /// // every day at 06:00 UTC, one schedule per tenant
    /// client.schedule("acme", "0 0 6 * * *", &TenantReport::new("acme".into())).await?;
    /// for s in client.schedules::<TenantReport>().await? {
    ///     println!("{}: {} for {}", s.key, s.cron, s.task.tenant);
    /// }
    /// client.unschedule::<TenantReport>("acme").await?;
    /// # Ok(()) }
    /// ```
    pub async fn schedule<T: Task>(
        &self,
        key: &str,
        cron: impl Into<Cron>,
        task: &T,
    ) -> Result<(), ScheduleError> {
        let schedule = cron.into();
        let cron = schedule.expression();
        name::check(key).map_err(|source| ScheduleError::Key {
            task: T::NAME,
            key: key.to_owned(),
            source,
        })?;
        natask_core::cron::check(cron)
            .and_then(|()| match schedule.time_zone() {
                Some(zone) => natask_core::cron::check_time_zone(cron, zone),
                None => Ok(()),
            })
            .map_err(|source| ScheduleError::Cron {
                task: T::NAME,
                cron: cron.to_owned(),
                source,
            })?;
        let body = serde_json::to_vec(task).map_err(|source| ScheduleError::Encode {
            task: T::NAME,
            source,
        })?;
        self.ensure_schedules(T::QUEUE)
            .await
            .map_err(|source| ScheduleError::Unsupported {
                queue: T::QUEUE,
                task: T::NAME,
                source,
            })?;
        let names = self.names();
        let subject = names.keyed_schedule_subject(T::QUEUE, T::NAME, key);
        let mut headers = kind_headers(T::NAME);
        headers.insert(NATS_SCHEDULE, cron);
        headers.insert(
            NATS_SCHEDULE_TARGET,
            names.task_subject(T::QUEUE, T::NAME).as_str(),
        );
        if let Some(zone) = schedule.time_zone() {
            headers.insert(NATS_SCHEDULE_TIME_ZONE, zone);
        }
        let stream = self
            .jetstream()
            .get_stream_no_info(names.queue_stream(T::QUEUE))
            .await
            .map_err(jetstream_error::<T>)?;
        if let Ok(stored) = stream.direct_get_last_for_subject(subject.as_str()).await {
            if crate::cron::unchanged(Some(&stored.headers), &headers) && stored.payload == body {
                tracing::debug!(
                    task = T::NAME,
                    queue = T::QUEUE,
                    key,
                    cron,
                    "schedule in place"
                );
                return Ok(());
            }
        }
        let published = match self
            .jetstream()
            .publish_with_headers(subject, headers, body.into())
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        if let Err(e) = published {
            let e: async_nats::Error = e.into();
            if let (true, Some(zone)) =
                (crate::cron::is_time_zone_invalid(&*e), schedule.time_zone())
            {
                return Err(ScheduleError::TimeZone {
                    task: T::NAME,
                    zone: zone.to_owned(),
                });
            }
            if crate::cron::is_pattern_invalid(&*e) {
                return Err(ScheduleError::Refused {
                    task: T::NAME,
                    cron: cron.to_owned(),
                    server_version: self.nats().server_info().version,
                });
            }
            return Err(jetstream_error::<T>(e));
        }
        tracing::info!(
            task = T::NAME,
            queue = T::QUEUE,
            key,
            cron,
            "schedule stored"
        );
        Ok(())
    }

    /// Removes the schedule `key` of task type `T`: `true` if there was one.
    /// Ticks it already produced stay queued.
    pub async fn unschedule<T: Task>(&self, key: &str) -> Result<bool, ScheduleError> {
        name::check(key).map_err(|source| ScheduleError::Key {
            task: T::NAME,
            key: key.to_owned(),
            source,
        })?;
        let names = self.names();
        let stream = self
            .jetstream()
            .get_stream_no_info(names.queue_stream(T::QUEUE))
            .await
            .map_err(jetstream_error::<T>)?;
        let subject = names.keyed_schedule_subject(T::QUEUE, T::NAME, key);
        match stream.purge().filter(subject).await {
            Ok(purged) => Ok(purged.purged > 0),
            // No stream, so nothing was ever scheduled on it.
            Err(e) if crate::schedule::is_stream_not_found(&e) => Ok(false),
            Err(e) => Err(jetstream_error::<T>(e)),
        }
    }

    /// Every run-time schedule of task type `T`, by key.
    pub async fn schedules<T: Task>(&self) -> Result<Vec<Schedule<T>>, ScheduleError> {
        let names = self.names();
        let stream = self
            .jetstream()
            .get_stream_no_info(names.queue_stream(T::QUEUE))
            .await
            .map_err(jetstream_error::<T>)?;
        let subjects: Vec<(String, usize)> = match stream
            .info_with_subjects(names.keyed_schedule_filter(T::QUEUE, T::NAME))
            .await
        {
            Ok(subjects) => subjects.try_collect().await.map_err(jetstream_error::<T>)?,
            Err(e) if is_stream_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(jetstream_error::<T>(e)),
        };
        let mut schedules = Vec::with_capacity(subjects.len());
        for (subject, _) in subjects {
            let key = subject.rsplit('.').next().unwrap_or_default().to_owned();
            let stored = match stream.direct_get_last_for_subject(subject.as_str()).await {
                Ok(stored) => stored,
                // Removed since the listing.
                Err(e)
                    if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(jetstream_error::<T>(e)),
            };
            let cron = stored
                .headers
                .get(NATS_SCHEDULE)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let task = serde_json::from_slice(&stored.payload).map_err(|source| {
                ScheduleError::Decode {
                    task: T::NAME,
                    key: key.clone(),
                    source,
                }
            })?;
            let time_zone = stored
                .headers
                .get(NATS_SCHEDULE_TIME_ZONE)
                .map(|v| v.as_str().to_owned());
            schedules.push(Schedule {
                key,
                cron,
                time_zone,
                task,
            });
        }
        schedules.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(schedules)
    }
}

fn is_stream_not_found(e: &async_nats::jetstream::stream::InfoError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<async_nats::jetstream::Error>()
            .is_some_and(|js| js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
        {
            return true;
        }
        next = e.source();
    }
    false
}
