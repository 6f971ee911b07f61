//! The command service: load, decide, append, and resolve conflicts.
//!
//! Every command is a struct implementing [`Command`]. Its `decide` loads the
//! aggregates it needs through a [`UnitOfWork`], calls the pure domain, and
//! stages the resulting events. The service then appends everything staged
//! in one atomic append, every stream expected at the revision it was read
//! at. When another writer got there first the append conflicts: the service
//! brings the conflicting stream's cached copy up to date (a tail read, not a
//! replay) and decides again, a bounded number of times with jitter. A
//! refusal, or a decision to do nothing, is only given after checking that
//! every aggregate it was based on is current, so a stale cache never
//! refuses a command that would succeed.
//!
//! # Layout
//! - [`customers`]: registration, passwords, roles, the first admin.
//! - [`catalogue`]: products and their SKU claims.
//! - [`inventory`]: stock receipts.
//! - [`carts`]: carts and checkout.
//! - [`orders`]: payment, cancellation, shipping.

pub mod carts;
pub mod catalogue;
pub mod customers;
pub mod inventory;
pub mod orders;

mod idempotency;

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shopstream_domain::values::{CustomerId, Role};
use shopstream_domain::{Aggregate, DomainError, EventSet, stream_name};
use shopstream_infra::event_store::{
    AppendError, ExpectedRevision, Metadata, NewEvent, StreamWrite,
};
use uuid::Uuid;

use super::CommandError;
use super::aggregates::{AggregateCache, Snapshot};
pub use idempotency::IdempotencyKey;

/// Who sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    Customer {
        id: CustomerId,
        role: Role,
    },
    /// The service itself (start-up tasks).
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Anonymous => "anonymous".into(),
            Actor::Customer { id, .. } => format!("customer:{id}"),
            Actor::System => "system".into(),
        }
    }

    pub fn customer_id(&self) -> Option<CustomerId> {
        match self {
            Actor::Customer { id, .. } => Some(*id),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Actor::System
                | Actor::Customer {
                    role: Role::Admin,
                    ..
                }
        )
    }

    /// Allowed to act on something `owner` owns: the owner, or an admin when
    /// `admin_too`.
    pub fn may_act_for(&self, owner: CustomerId, admin_too: bool) -> Result<(), CommandError> {
        if self.customer_id() == Some(owner) || (admin_too && self.is_admin()) {
            Ok(())
        } else {
            Err(CommandError::Forbidden)
        }
    }
}

/// Everything about a command that is not the command itself.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    pub correlation_id: String,
    /// `If-Match`: the revision the client expects the target stream at.
    pub if_match: Option<u64>,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

impl CommandContext {
    pub fn new(actor: Actor, correlation_id: impl Into<String>) -> Self {
        Self {
            actor,
            correlation_id: correlation_id.into(),
            if_match: None,
            idempotency: None,
            now: Utc::now(),
        }
    }
}

/// A command: what it addresses and how it decides.
pub trait Command {
    /// What a successful command answers with; stored for idempotent replay.
    type Output: Serialize + DeserializeOwned;

    /// A name for logs, metrics and idempotency records.
    const NAME: &'static str;

    /// The stream of the resource the request addresses (for a create, the
    /// created one): `If-Match` is checked against it and `ETag` reports it.
    fn target(&self) -> String;

    /// Loads, decides and stages. Its future is `Send` so commands can run
    /// on any runtime thread.
    fn decide(
        &self,
        uow: &mut UnitOfWork<'_>,
    ) -> impl std::future::Future<Output = Result<Self::Output, CommandError>> + Send;
}

/// A command's effect once durable.
#[derive(Debug, Clone)]
pub struct Committed<O> {
    pub output: O,
    /// The target stream's revision after the command.
    pub revision: Option<u64>,
    /// A position of `$all` that includes everything the command wrote.
    pub position: u64,
    /// Answered from an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// How hard the service tries before answering 409 `conflict`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The largest random pause between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 24,
            max_backoff: Duration::from_millis(20),
        }
    }
}

#[derive(Clone)]
pub struct CommandService {
    aggregates: AggregateCache,
    retry: RetryPolicy,
    outcomes: Option<prometheus::IntCounterVec>,
    retries: Option<prometheus::IntCounterVec>,
    /// Per-stream locks taken by commands that already lost a race on that
    /// stream, so contenders in this process queue up instead of colliding.
    hot: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
}

impl CommandService {
    pub fn new(aggregates: AggregateCache, retry: RetryPolicy) -> Self {
        Self {
            aggregates,
            retry,
            outcomes: None,
            retries: None,
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
            let lock = self
                .hot
                .get_with(stream.clone(), || Arc::new(tokio::sync::Mutex::new(())));
            guards.push(lock.lock_owned().await);
        }
        guards
    }

    /// Counts every command by name and outcome, and every attempt made
    /// again after a lost race by command name.
    pub fn with_metrics(
        mut self,
        outcomes: prometheus::IntCounterVec,
        retries: prometheus::IntCounterVec,
    ) -> Self {
        self.outcomes = Some(outcomes);
        self.retries = Some(retries);
        self
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
        let result = self.run(ctx, command).await;
        let outcome = match &result {
            Ok(c) if c.replayed => "replayed",
            Ok(_) => "done",
            Err(CommandError::Domain(_)) => "refused",
            Err(CommandError::Forbidden) => "forbidden",
            Err(CommandError::PreconditionFailed) => "precondition_failed",
            Err(CommandError::Contention) => "contention",
            Err(CommandError::IdempotencyKeyReused) => "key_reused",
            Err(_) => "failed",
        };
        if let Some(outcomes) = &self.outcomes {
            outcomes.with_label_values(&[C::NAME, outcome]).inc();
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
        // within this process, written one contender at a time.
        let mut contended = BTreeSet::new();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                if let Some(retries) = &self.retries {
                    retries.with_label_values(&[C::NAME]).inc();
                }
                self.pause(attempt).await;
            }
            let _queued = self.queue_behind(&contended).await;
            let mut uow = UnitOfWork::new(self, ctx, &target, &contended);
            let decided = command.decide(&mut uow).await;
            let output = match decided {
                Ok(output) => output,
                Err(CommandError::Stale) => continue,
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
                    return Err(CommandError::PreconditionFailed);
                }
                if let Some(committed) = self.recorded(ctx, C::NAME).await? {
                    return Ok(committed);
                }
                if let Some(refusal) = uow.refusal {
                    return Err(CommandError::Domain(refusal));
                }
                return Ok(Committed {
                    revision: uow.target_revision(),
                    position: uow.position(),
                    output,
                    replayed: false,
                });
            }
            if let (Some((key, expected)), None) = (&idempotency, &uow.refusal) {
                uow.writes.push(idempotency::record(
                    key,
                    *expected,
                    C::NAME,
                    &output,
                    uow.target_revision_after(),
                    ctx,
                )?);
            }
            let lost_on = match uow.commit().await {
                Ok(position) => {
                    if let Some(refusal) = uow.refusal {
                        return Err(CommandError::Domain(refusal));
                    }
                    return Ok(Committed {
                        revision: uow.target_revision_after(),
                        position,
                        output,
                        replayed: false,
                    });
                }
                Err(AppendError::Conflict { stream, .. }) => stream,
                Err(AppendError::Invalid(why)) => return Err(CommandError::Internal(why)),
                Err(AppendError::Store(e)) => return Err(e.into()),
            };
            drop(uow);
            if ctx.if_match.is_some() && lost_on == target {
                return Err(CommandError::PreconditionFailed);
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
        Err(CommandError::Contention)
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

/// What one attempt at a command read and what it will write.
pub struct UnitOfWork<'s> {
    service: &'s CommandService,
    ctx: &'s CommandContext,
    target: &'s str,
    /// Streams to read up to their end rather than trust the cache for.
    contended: &'s BTreeSet<String>,
    /// Streams read through the cache, with the revision they were read at.
    read: Vec<(String, Option<u64>, Freshness<'s>)>,
    writes: Vec<StreamWrite>,
    /// Cache updates to make once the writes are durable.
    after_commit: Vec<CacheUpdate<'s>>,
    target_after: Option<Option<u64>>,
    position: u64,
    /// A refusal recorded by staged events: commit them, then refuse.
    refusal: Option<DomainError>,
    causation_id: String,
}

/// Puts a committed aggregate's new snapshot (at a position) in the cache.
type CacheUpdate<'s> = Box<dyn FnOnce(&AggregateCache, u64) + Send + 's>;

/// Tells whether a stream read at a revision has moved on since.
type Freshness<'s> = Box<
    dyn Fn(
            &'s AggregateCache,
            String,
            Option<u64>,
        ) -> futures::future::BoxFuture<'s, Result<bool, CommandError>>
        + Send
        + Sync
        + 's,
>;

impl<'s> UnitOfWork<'s> {
    fn new(
        service: &'s CommandService,
        ctx: &'s CommandContext,
        target: &'s str,
        contended: &'s BTreeSet<String>,
    ) -> Self {
        Self {
            service,
            ctx,
            target,
            contended,
            read: Vec::new(),
            writes: Vec::new(),
            after_commit: Vec::new(),
            target_after: None,
            position: 0,
            refusal: None,
            causation_id: Uuid::now_v7().to_string(),
        }
    }

    pub fn ctx(&self) -> &CommandContext {
        self.ctx
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.ctx.now
    }

    /// Refuses unless an admin (or the system) acts.
    pub fn require_admin(&self) -> Result<(), CommandError> {
        if self.ctx.actor.is_admin() {
            Ok(())
        } else {
            Err(CommandError::Forbidden)
        }
    }

    /// An aggregate to decide on, as cached. A stale copy is caught by the
    /// append's revision check, or by `ensure_fresh` before a refusal; a
    /// stream this command already lost a race on is read to its end.
    pub async fn load<A: Aggregate>(
        &mut self,
        id: impl Display,
    ) -> Result<Snapshot<A>, CommandError> {
        let aggregates = &self.service.aggregates;
        let stream = stream_name::<A>(&id);
        let snapshot = if self.contended.contains(&stream) {
            aggregates.load_fresh::<A>(id).await?
        } else {
            aggregates.load::<A>(id).await?
        };
        self.check_precondition(&snapshot)?;
        self.position = self.position.max(snapshot.position);
        self.read.push((
            snapshot.stream.clone(),
            snapshot.revision,
            Box::new(|cache, stream, revision| {
                Box::pin(async move { cache.moved_on::<A>(&stream, revision).await })
            }),
        ));
        Ok(snapshot)
    }

    /// An aggregate consulted but not written (a product's price for a cart
    /// line): read up to the stream's current end.
    pub async fn read<A: Aggregate>(
        &mut self,
        id: impl Display,
    ) -> Result<Snapshot<A>, CommandError> {
        let snapshot = self.service.aggregates.load_fresh::<A>(id).await?;
        self.position = self.position.max(snapshot.position);
        Ok(snapshot)
    }

    /// A new aggregate under an id made for it just now, so it has no stream.
    pub fn create<A: Aggregate>(&mut self, id: impl Display) -> Snapshot<A> {
        Snapshot {
            stream: stream_name::<A>(id),
            state: A::default(),
            revision: None,
            position: 0,
        }
    }

    fn check_precondition<A>(&self, snapshot: &Snapshot<A>) -> Result<(), CommandError> {
        match self.ctx.if_match {
            Some(expected) if snapshot.stream == self.target => {
                if snapshot.revision == Some(expected) {
                    Ok(())
                } else {
                    // The cached copy may be stale; the append decides for
                    // certain, but a copy already past `expected` is proof.
                    match snapshot.revision {
                        Some(r) if r > expected => Err(CommandError::PreconditionFailed),
                        None => Err(CommandError::PreconditionFailed),
                        _ => Ok(()),
                    }
                }
            }
            _ => Ok(()),
        }
    }

    /// Stages events for an aggregate's stream, expected at the revision the
    /// snapshot was read at; returns the state after them.
    pub fn stage<A: Aggregate>(&mut self, snapshot: &Snapshot<A>, events: Vec<A::Event>) -> A {
        let mut state = snapshot.state.clone();
        for e in &events {
            state.evolve(e);
        }
        let expected = match self.ctx.if_match {
            Some(r) if snapshot.stream == self.target => ExpectedRevision::Exact(r),
            _ => ExpectedRevision::at(snapshot.revision),
        };
        let revision = match (snapshot.revision, events.len() as u64) {
            (r, 0) => r,
            (None, n) => Some(n - 1),
            (Some(r), n) => Some(r + n),
        };
        if snapshot.stream == self.target {
            self.target_after = Some(revision);
        }
        let metadata = Metadata {
            correlation_id: Some(self.ctx.correlation_id.clone()),
            causation_id: Some(self.causation_id.clone()),
            actor: Some(self.ctx.actor.label()),
        };
        self.writes.push(StreamWrite {
            stream: snapshot.stream.clone(),
            expected,
            events: events
                .iter()
                .map(|e| NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: e.event_type().to_string(),
                    schema_version: e.schema_version(),
                    data: e.encode(),
                    metadata: metadata.clone(),
                })
                .collect(),
        });
        if !events.is_empty() {
            let cached = Snapshot {
                stream: snapshot.stream.clone(),
                state: state.clone(),
                revision,
                position: 0,
            };
            self.after_commit.push(Box::new(move |cache, position| {
                cache.put(Snapshot { position, ..cached });
            }));
        }
        state
    }

    /// Commits the staged events (a refusal worth recording), then refuses.
    pub fn refuse_after_commit(&mut self, refusal: DomainError) {
        self.refusal = Some(refusal);
    }

    /// Fails with `Stale` when any aggregate read through the cache has
    /// moved on since (bringing the cache up to date).
    pub async fn ensure_fresh(&mut self) -> Result<(), CommandError> {
        let cache = &self.service.aggregates;
        let mut stale = false;
        for (stream, revision, moved_on) in &self.read {
            if moved_on(cache, stream.clone(), *revision).await? {
                stale = true;
            }
        }
        if stale {
            Err(CommandError::Stale)
        } else {
            Ok(())
        }
    }

    fn target_revision(&self) -> Option<u64> {
        self.read
            .iter()
            .find(|(s, ..)| s == self.target)
            .and_then(|(_, r, _)| *r)
    }

    fn target_revision_after(&self) -> Option<u64> {
        self.target_after.unwrap_or_else(|| self.target_revision())
    }

    fn position(&self) -> u64 {
        self.position
    }

    async fn commit(&mut self) -> Result<u64, AppendError> {
        let writes = std::mem::take(&mut self.writes);
        let appended = self.service.aggregates.store().append(writes).await?;
        for update in self.after_commit.drain(..) {
            update(&self.service.aggregates, appended.position);
        }
        Ok(appended.position)
    }
}
