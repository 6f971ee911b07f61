//! What one attempt at a command reads and what it will write: aggregates
//! loaded through the cache with the revision they were read at, staged
//! events, and the cache updates to make once the append is durable.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use shopstream_domain::{Aggregate, EventSet, stream_name};
use shopstream_infra::event_store::{
    AppendError, ExpectedRevision, Metadata, NewEvent, StreamWrite,
};
use uuid::Uuid;

use super::aggregates::{AggregateCache, Snapshot};
use super::combining::Overlay;
use super::{CommandContext, CommandError, CommandService, Conflict};

/// What one attempt at a command read and what it will write.
pub struct UnitOfWork<'s> {
    service: &'s CommandService,
    ctx: &'s CommandContext,
    target: &'s str,
    /// Streams to read up to their end rather than trust the cache for.
    contended: &'s BTreeSet<String>,
    /// Streams read through the cache, with the revision they were read at.
    read: Vec<Read<'s>>,
    pub(super) writes: Vec<StreamWrite>,
    /// Cache updates to make once the writes are durable.
    after_commit: Vec<CacheUpdate>,
    /// Deciding in a combined batch: what the commands decided before this
    /// one staged, not yet durable.
    overlay: Option<&'s Overlay>,
    /// In a batch, the states this command staged (for the next ones).
    staged: Vec<Staged>,
    target_after: Option<Option<u64>>,
    position: u64,
    /// The staged events record a refusal: commit them, then refuse.
    refusing: bool,
    causation_id: String,
}

/// Puts a committed aggregate's new snapshot (at a position) in the cache.
pub(super) type CacheUpdate = Box<dyn FnOnce(&AggregateCache, u64) + Send>;

/// A stream read: the revision decided on, and the durable revision its
/// freshness is checked against (they differ for a state staged earlier
/// in a combined batch).
struct Read<'s> {
    stream: String,
    revision: Option<u64>,
    durable: Option<u64>,
    moved_on: Freshness<'s>,
}

/// A state staged in a combined batch, not yet durable.
pub(super) struct Staged {
    pub stream: String,
    pub snapshot: Arc<dyn Any + Send + Sync>,
    /// The durable revision the staged events go on top of.
    pub durable: Option<u64>,
}

/// What a decided attempt leaves to commit.
pub(super) struct Decided {
    pub writes: Vec<StreamWrite>,
    pub after_commit: Vec<CacheUpdate>,
    pub staged: Vec<Staged>,
}

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
            overlay: None,
            staged: Vec::new(),
            target_after: None,
            position: 0,
            refusing: false,
            causation_id: Uuid::now_v7().to_string(),
        }
    }

    /// Decides on top of what the earlier commands of a batch staged.
    pub(super) fn in_batch(mut self, overlay: &'s Overlay) -> Self {
        self.overlay = Some(overlay);
        self
    }

    /// What this attempt staged, to commit (in a batch, with the others').
    pub(super) fn into_decided(self) -> Decided {
        Decided {
            writes: self.writes,
            after_commit: self.after_commit,
            staged: self.staged,
        }
    }

    /// Forgets what this attempt staged (a refusal writes nothing).
    pub(super) fn discard(&mut self) {
        self.writes.clear();
        self.after_commit.clear();
        self.staged.clear();
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
    /// stream this command already lost a race on is read to its end; in a
    /// batch, a stream an earlier command staged events on is as they left it.
    pub async fn load<A: Aggregate>(
        &mut self,
        id: impl Display,
    ) -> Result<Snapshot<A>, CommandError> {
        let aggregates = self.service.aggregates();
        let stream = stream_name::<A>(&id);
        let (snapshot, durable) = match self.overlay.and_then(|o| o.get::<A>(&stream)) {
            Some(staged) => staged,
            None => {
                let snapshot = if self.contended.contains(&stream) {
                    aggregates.load_fresh::<A>(id).await?
                } else {
                    aggregates.load::<A>(id).await?
                };
                let durable = snapshot.revision;
                (snapshot, durable)
            }
        };
        self.check_precondition(&snapshot)?;
        self.position = self.position.max(snapshot.position);
        self.read.push(Read {
            stream: snapshot.stream.clone(),
            revision: snapshot.revision,
            durable,
            moved_on: Box::new(|cache, stream, revision| {
                Box::pin(async move { cache.moved_on::<A>(&stream, revision).await })
            }),
        });
        Ok(snapshot)
    }

    /// An aggregate consulted but not written (a product's price for a cart
    /// line): read up to the stream's current end (in a batch, once for the
    /// whole batch, with what earlier commands staged on it).
    pub async fn read<A: Aggregate>(
        &mut self,
        id: impl Display,
    ) -> Result<Snapshot<A>, CommandError> {
        let snapshot = match self.overlay {
            None => self.service.aggregates().load_fresh::<A>(id).await?,
            Some(overlay) => {
                let stream = stream_name::<A>(&id);
                let seen = overlay.get::<A>(&stream).map(|(staged, _)| staged);
                match seen.or_else(|| overlay.consulted::<A>(&stream)) {
                    Some(snapshot) => snapshot,
                    None => {
                        let fresh = self.service.aggregates().load_fresh::<A>(id).await?;
                        overlay.consult(&fresh);
                        fresh
                    }
                }
            }
        };
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
            if self.overlay.is_some() {
                let durable = self
                    .read
                    .iter()
                    .rev()
                    .find(|r| r.stream == snapshot.stream)
                    .map_or(snapshot.revision, |r| r.durable);
                self.staged.push(Staged {
                    stream: snapshot.stream.clone(),
                    snapshot: Arc::new(Snapshot {
                        position: snapshot.position,
                        ..cached.clone()
                    }),
                    durable,
                });
            }
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
        for read in &self.read {
            if (read.moved_on)(cache, read.stream.clone(), read.durable).await? {
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
            .find(|r| r.stream == self.target)
            .and_then(|r| r.revision)
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
