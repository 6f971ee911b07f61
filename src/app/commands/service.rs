//! The command service: runs a command to completion (decided, appended
//! and durable, or refused), resolving conflicts with other writers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use shopstream_domain::DomainError;
use shopstream_infra::event_store::{AppendError, Direction};

use super::aggregates::AggregateCache;
use super::combining::{Hot, Turn};
use super::idempotency;
use super::{Command, CommandContext, CommandError, Committed, Conflict, UnitOfWork};

/// How hard the service tries before answering 409 `conflict`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The largest random pause between attempts.
    pub max_backoff: Duration,
    /// Whether commands queued behind a contended stream are decided
    /// together and appended in one append (see `combining`).
    pub combine: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 24,
            max_backoff: Duration::from_millis(20),
            combine: true,
        }
    }
}

/// What the service counts.
#[derive(Clone)]
pub struct CommandMetrics {
    /// Every command by name and outcome.
    pub outcomes: prometheus::IntCounterVec,
    /// Every attempt made again after a lost race, by command name.
    pub retries: prometheus::IntCounterVec,
    /// The commands of every combined batch.
    pub batches: prometheus::Histogram,
}

#[derive(Clone)]
pub struct CommandService {
    aggregates: AggregateCache,
    retry: RetryPolicy,
    metrics: Option<CommandMetrics>,
    /// Per-stream turns and combining queues of commands that already lost
    /// a race on that stream, so contenders in this process queue up
    /// instead of colliding.
    hot: moka::sync::Cache<String, Arc<Hot>>,
}

impl CommandService {
    pub fn new(aggregates: AggregateCache, retry: RetryPolicy) -> Self {
        Self {
            aggregates,
            retry,
            metrics: None,
            hot: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    /// Takes the locks of every contended stream, in name order (so two
    /// commands never wait on each other's locks).
    async fn queue_behind(
        &self,
        contended: &BTreeSet<String>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut guards = Vec::with_capacity(contended.len());
        for stream in contended {
            guards.push(self.hot(stream).turn.clone().lock_owned().await);
        }
        guards
    }

    /// Whether commands are queued for (or hold) a stream's turn now.
    fn queued(&self, stream: &str) -> bool {
        self.hot.get(stream).is_some_and(|hot| hot.busy())
    }

    pub(super) fn hot(&self, stream: &str) -> Arc<Hot> {
        self.hot.get_with_by_ref(stream, Default::default)
    }

    pub fn with_metrics(mut self, metrics: CommandMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub(super) fn metrics(&self) -> Option<&CommandMetrics> {
        self.metrics.as_ref()
    }

    pub fn aggregates(&self) -> &AggregateCache {
        &self.aggregates
    }

    /// Runs a command to completion: decided, appended and durable, or
    /// refused.
    #[tracing::instrument(
        name = "command",
        skip_all,
        fields(command = C::NAME, stream = %command.target(), correlation_id = %ctx.correlation_id)
    )]
    pub async fn execute<C: Command>(
        &self,
        ctx: &CommandContext,
        command: &C,
    ) -> Result<Committed<C::Output>, CommandError> {
        let mut result = self.run(ctx, command).await;
        if let Err(
            CommandError::PreconditionFailed(conflict) | CommandError::Contention(conflict),
        ) = &mut result
        {
            self.explain(conflict).await;
        }
        let outcome = match &result {
            Ok(c) if c.replayed => "replayed",
            Ok(_) => "done",
            Err(CommandError::Domain(_)) => "refused",
            Err(CommandError::Forbidden) => "forbidden",
            Err(CommandError::PreconditionFailed(_)) => "precondition_failed",
            Err(CommandError::Contention(_)) => "contention",
            Err(CommandError::IdempotencyKeyReused) => "key_reused",
            Err(_) => "failed",
        };
        if let Some(m) = &self.metrics {
            m.outcomes.with_label_values(&[C::NAME, outcome]).inc();
        }
        if let Err(e) = &result {
            tracing::debug!(outcome, error = %e, "command not carried out");
        }
        result
    }

    async fn run<C: Command>(
        &self,
        ctx: &CommandContext,
        command: &C,
    ) -> Result<Committed<C::Output>, CommandError> {
        let target = command.target();
        let mut idempotency = match &ctx.idempotency {
            Some(key) => match idempotency::lookup::<C::Output>(self, ctx, key, C::NAME).await? {
                idempotency::Lookup::Replay(committed) => return Ok(committed),
                idempotency::Lookup::Fresh(expected) => Some((key, expected)),
            },
            None => None,
        };

        // Streams this command lost a race on: read fresh from now on and,
        // within this process, written in turns: a turn decides everything
        // queued for it together (`combining`), or this command alone.
        let mut contended = BTreeSet::new();
        let mut last_conflict = Conflict::on(&target, None);
        // Whether contended attempts may join their stream's combining queue.
        let mut combine = self.retry.combine;
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                if let Some(m) = &self.metrics {
                    m.retries.with_label_values(&[C::NAME]).inc();
                }
                self.pause(attempt).await;
            }
            if let Some(stream) = Self::combinable(ctx, &contended).filter(|_| combine) {
                match self.combined(ctx, command, stream).await {
                    Turn::Answer(answer) => return answer,
                    Turn::Again { lost_on, alone } => {
                        combine = !alone;
                        if let Some((stream, expected)) = lost_on {
                            last_conflict = Conflict::on(&stream, expected);
                            contended.insert(stream);
                        }
                        continue;
                    }
                }
            }
            let _queued = self.queue_behind(&contended).await;
            let mut uow = UnitOfWork::new(self, ctx, &target, &contended);
            let decided = command.decide(&mut uow).await;
            // What the command answers once its events are durable: its
            // output, or a refusal that its staged events record.
            let outcome: Result<C::Output, DomainError> = match decided {
                Ok(output) => Ok(output),
                Err(CommandError::Stale) => continue,
                Err(CommandError::Domain(refusal)) if uow.refuses_after_commit() => Err(refusal),
                Err(CommandError::Domain(refusal)) => match uow.ensure_fresh().await {
                    Ok(()) => {
                        // A twin of this request may have succeeded while we
                        // decided: its answer is ours.
                        if let Some(committed) = self.recorded(ctx, C::NAME).await? {
                            return Ok(committed);
                        }
                        return Err(CommandError::Domain(refusal));
                    }
                    Err(CommandError::Stale) => continue,
                    Err(other) => return Err(other),
                },
                Err(other) => return Err(other),
            };
            if uow.writes.iter().all(|w| w.events.is_empty()) {
                // Nothing to write: answer only if nothing moved meanwhile.
                match uow.ensure_fresh().await {
                    Ok(()) => {}
                    Err(CommandError::Stale) => continue,
                    Err(other) => return Err(other),
                }
                // No append will check If-Match, so check it here, on
                // state just proven current.
                if let Some(expected) = ctx.if_match
                    && uow.target_revision() != Some(expected)
                {
                    return Err(CommandError::PreconditionFailed(Conflict::on(
                        &target,
                        Some(expected),
                    )));
                }
                if let Some(committed) = self.recorded(ctx, C::NAME).await? {
                    return Ok(committed);
                }
                return Ok(Committed {
                    revision: uow.target_revision(),
                    position: uow.position(),
                    output: outcome?,
                    replayed: false,
                });
            }
            // A stream with commands queued for its turn: join them rather
            // than race their combined append (and make it fail for all).
            // Only before any turn is taken: a command holding turns (alone,
            // on several streams) would see its own.
            if combine
                && contended.is_empty()
                && ctx.if_match.is_none()
                && idempotency.is_none()
                && let Some(queued) = uow
                    .writes
                    .iter()
                    .find(|w| !w.events.is_empty() && self.queued(&w.stream))
            {
                let queued = queued.stream.clone();
                drop(uow);
                contended.insert(queued);
                continue;
            }
            if let (Some((key, expected)), Ok(output)) = (&idempotency, &outcome) {
                uow.writes.push(idempotency::record(
                    key,
                    *expected,
                    C::NAME,
                    output,
                    uow.target_revision_after(),
                    ctx,
                )?);
            }
            let lost_on = match uow.commit().await {
                Ok(position) => {
                    return Ok(Committed {
                        revision: uow.target_revision_after(),
                        position,
                        output: outcome?,
                        replayed: false,
                    });
                }
                Err(AppendError::Conflict {
                    stream, expected, ..
                }) => {
                    last_conflict = Conflict::on(&stream, expected.exact());
                    stream
                }
                Err(e @ AppendError::Invalid(_)) => return Err(CommandError::Append(e)),
                Err(AppendError::Store(e)) => return Err(e.into()),
            };
            drop(uow);
            if let Some(expected) = ctx.if_match
                && lost_on == target
            {
                return Err(CommandError::PreconditionFailed(Conflict::on(
                    &target,
                    Some(expected),
                )));
            }
            if let Some((key, expected)) = &mut idempotency {
                // The same request sent twice at once may have won the race,
                // whichever stream the conflict names.
                match idempotency::lookup::<C::Output>(self, ctx, key, C::NAME).await? {
                    idempotency::Lookup::Replay(committed) => return Ok(committed),
                    idempotency::Lookup::Fresh(now) => *expected = now,
                }
            }
            tracing::debug!(stream = %lost_on, attempt, "append conflicted; deciding again");
            contended.insert(lost_on);
        }
        Err(CommandError::Contention(last_conflict))
    }

    /// Says what the stream of a conflict holds now: its latest revision
    /// and the events after the one expected. A stream that cannot be read
    /// now leaves the conflict as it was: the refusal stands either way.
    async fn explain(&self, conflict: &mut Conflict) {
        let store = self.aggregates.store();
        let from = conflict.expected_revision.map_or(0, |r| r + 1);
        // The events first, the latest revision after them: other writers
        // may append between the two reads, and read in this order the
        // latest is never older than an event listed.
        let read = async {
            let since = store
                .read_stream(
                    &conflict.stream,
                    Some(from),
                    Direction::Forward,
                    Conflict::MAX_EVENTS,
                )
                .await?;
            let latest = store
                .read_stream(&conflict.stream, None, Direction::Backward, 1)
                .await?;
            Ok::<_, shopstream_infra::event_store::StoreError>((latest, since))
        };
        match read.await {
            Ok((latest, since)) => conflict.explain(latest.first(), &since),
            Err(e) => tracing::debug!(error = %e, "a conflict's stream could not be read"),
        }
    }

    /// The recorded answer to this request's idempotency key, if a twin of
    /// the request has committed one.
    async fn recorded<O: DeserializeOwned>(
        &self,
        ctx: &CommandContext,
        command: &str,
    ) -> Result<Option<Committed<O>>, CommandError> {
        let Some(key) = &ctx.idempotency else {
            return Ok(None);
        };
        Ok(
            match idempotency::lookup::<O>(self, ctx, key, command).await? {
                idempotency::Lookup::Replay(committed) => Some(committed),
                idempotency::Lookup::Fresh(_) => None,
            },
        )
    }

    /// A random pause before another attempt: only from the third on, as
    /// the second runs behind the contended streams' locks already.
    async fn pause(&self, attempt: u32) {
        if attempt <= 2 {
            return;
        }
        let cap = self.retry.max_backoff.as_micros() as u64;
        let window = (1000u64 << attempt.min(10)).min(cap).max(1);
        let micros = rand::random_range(0..window);
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
}
