//! What one attempt at a command reads and what it will write: aggregates
//! loaded through the cache with the revision they were read at, staged
//! events, and the cache updates to make once the append is durable.

use std::collections::BTreeSet;
use std::fmt::Display;

use chrono::{DateTime, Utc};
use shopstream_domain::{Aggregate, EventSet, stream_name};
use shopstream_infra::event_store::{
    AppendError, ExpectedRevision, Metadata, NewEvent, StreamWrite,
};
use uuid::Uuid;

use super::aggregates::{AggregateCache, Snapshot};
use super::{CommandContext, CommandError, CommandService, Conflict};

/// What one attempt at a command read and what it will write.
pub struct UnitOfWork<'s> {
    service: &'s CommandService,
    ctx: &'s CommandContext,
    target: &'s str,
    /// Streams to read up to their end rather than trust the cache for.
    contended: &'s BTreeSet<String>,
    /// Streams read through the cache, with the revision they were read at.
    read: Vec<(String, Option<u64>, Freshness<'s>)>,
    pub(super) writes: Vec<StreamWrite>,
    /// Cache updates to make once the writes are durable.
    after_commit: Vec<CacheUpdate<'s>>,
    target_after: Option<Option<u64>>,
    position: u64,
    /// The staged events record a refusal: commit them, then refuse.
    refusing: bool,
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
    pub(super) fn new(
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
            refusing: false,
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
        let aggregates = self.service.aggregates();
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
        let snapshot = self.service.aggregates().load_fresh::<A>(id).await?;
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
                        Some(r) if r <= expected => Ok(()),
                        _ => Err(CommandError::PreconditionFailed(Conflict::on(
                            &snapshot.stream,
                            Some(expected),
                        ))),
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
        let revision = snapshot.revision_after(events.len());
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

    /// The staged events record a refusal worth keeping: the command
    /// that returns that refusal commits them first, then refuses.
    pub fn refuse_after_commit(&mut self) {
        self.refusing = true;
    }

    pub(super) fn refuses_after_commit(&self) -> bool {
        self.refusing
    }

    /// Fails with `Stale` when any aggregate read through the cache has
    /// moved on since (bringing the cache up to date).
    pub async fn ensure_fresh(&mut self) -> Result<(), CommandError> {
        let cache = self.service.aggregates();
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

    pub(super) fn target_revision(&self) -> Option<u64> {
        self.read
            .iter()
            .find(|(s, ..)| s == self.target)
            .and_then(|(_, r, _)| *r)
    }

    pub(super) fn target_revision_after(&self) -> Option<u64> {
        self.target_after.unwrap_or_else(|| self.target_revision())
    }

    pub(super) fn position(&self) -> u64 {
        self.position
    }

    pub(super) async fn commit(&mut self) -> Result<u64, AppendError> {
        let writes = std::mem::take(&mut self.writes);
        let appended = self.service.aggregates().store().append(writes).await?;
        for update in self.after_commit.drain(..) {
            update(self.service.aggregates(), appended.position);
        }
        Ok(appended.position)
    }
}
