//! The combining queue of a hot stream.
//!
//! A command that lost a race on a stream runs its next attempt behind
//! that stream's turn. Rather than one at a time (each paying a read, a
//! decision and a durable append while the others wait), the holder of the
//! turn decides every command waiting for it, one after the other, each on
//! the state the ones before it left (an [`Overlay`] of staged, not yet
//! durable states), and appends everything they staged in **one** append:
//! one group commit for the whole queue. Sixty-four checkouts of one SKU
//! cost one append instead of sixty-four in a row, and a refusal once the
//! stock is gone is decided from that same state, riding on the batch's
//! append instead of costing one of its own.
//!
//! What each command answers is unchanged:
//! - a command's answer is sent only once the batch's append is durable,
//!   so a success is never acknowledged before it is, and a refusal that
//!   rests on an earlier command's staged events stands only if those
//!   events do;
//! - every stream is expected at the durable revision the batch read it
//!   at, so a writer elsewhere (another process, or a command outside the
//!   queue) makes the append conflict, and then every command of the batch
//!   decides again, as it would have alone;
//! - commands that carry `If-Match` or an `Idempotency-Key`, and commands
//!   contended on more than one stream, are not combined: they take the
//!   turn alone, exactly as before;
//! - a command whose decision cannot be chained onto the batch's (it
//!   expects a stream at a revision the batch has moved past) or a batch
//!   the store refuses as invalid sends its commands back to decide alone,
//!   so one bad command never fails the others.
//!
//! The batch runs on its own task, holding the turn: a caller that goes
//! away (a client disconnecting) abandons no other command. A command whose
//! caller went away before the batch reached it is skipped, so it is never
//! carried out later than anyone waits for it.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use shopstream_domain::{Aggregate, DomainError};
use shopstream_infra::event_store::{AppendError, ExpectedRevision, StoreError, StreamWrite};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::aggregates::{Snapshot, revision_after};
use super::unit_of_work::{CacheUpdate, Decided, Staged};
use super::{Command, CommandContext, CommandError, CommandService, Committed, UnitOfWork};

/// The most commands decided in one batch (the rest wait for the next).
const MAX_BATCH: usize = 256;

/// A contended stream: its turn, and the commands waiting for it.
#[derive(Default)]
pub(super) struct Hot {
    pub turn: Arc<tokio::sync::Mutex<()>>,
    /// Queued commands, each under the number its caller withdraws it by.
    waiting: Mutex<Vec<(u64, Job)>>,
    numbers: std::sync::atomic::AtomicU64,
}

/// A caller's place in a queue: withdrawn when the caller goes away before
/// a batch took its command, so an abandoned request neither runs later nor
/// keeps the stream looking busy.
struct Place<'h> {
    hot: &'h Hot,
    number: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        lock(&self.hot.waiting).retain(|(n, _)| *n != self.number);
    }
}

impl Hot {
    /// Whether the turn is held or commands wait for it.
    pub(super) fn busy(&self) -> bool {
        self.turn.try_lock().is_err() || !lock(&self.waiting).is_empty()
    }
}

/// States staged by the commands decided so far in a batch, by stream,
/// and the aggregates they consulted (read to their end once per batch:
/// the batch decides at one moment).
#[derive(Default)]
pub(crate) struct Overlay {
    staged: HashMap<String, (Arc<dyn Any + Send + Sync>, Option<u64>)>,
    consulted: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl Overlay {
    /// The staged state of a stream, and the durable revision beneath it.
    pub(super) fn get<A: Aggregate>(&self, stream: &str) -> Option<(Snapshot<A>, Option<u64>)> {
        let (any, durable) = self.staged.get(stream)?;
        let snapshot = any.downcast_ref::<Snapshot<A>>()?.clone();
        Some((snapshot, *durable))
    }

    /// An aggregate an earlier command of the batch consulted.
    pub(super) fn consulted<A: Aggregate>(&self, stream: &str) -> Option<Snapshot<A>> {
        lock(&self.consulted)
            .get(stream)?
            .downcast_ref::<Snapshot<A>>()
            .cloned()
    }

    pub(super) fn consult<A: Aggregate>(&self, snapshot: &Snapshot<A>) {
        lock(&self.consulted).insert(snapshot.stream.clone(), Arc::new(snapshot.clone()));
    }
}

/// What a combined attempt tells its caller.
pub(super) enum Turn<O> {
    /// The command's answer: durable, or refused on state that is.
    Answer(Result<Committed<O>, CommandError>),
    /// Decide again: the batch lost a race on `lost_on` (or the command
    /// read a stale copy), alone when the batch could not carry it.
    Again {
        /// The stream, and the revision the batch expected it at.
        lost_on: Option<(String, Option<u64>)>,
        alone: bool,
    },
}

impl<O> Turn<O> {
    /// Decide again, not having lost a race of one's own (alone: outside
    /// any batch).
    fn again(alone: bool) -> Self {
        Turn::Again {
            lost_on: None,
            alone,
        }
    }
}

/// A command waiting in a queue, erased to what the batch needs: decide on
/// the batch, and later hear how its append went.
type Job = Box<dyn for<'b> FnOnce(&'b mut Batch) -> BoxFuture<'b, ()> + Send>;

/// How a batch's append went, for every command in it.
#[derive(Clone)]
enum Settled {
    Durable(u64),
    Lost(String, Option<u64>),
    Alone,
    Failed(StoreError),
}

/// A batch being decided.
pub(super) struct Batch {
    service: CommandService,
    overlay: Overlay,
    writes: Merged,
    after_commit: Vec<CacheUpdate>,
    settle: Vec<Box<dyn FnOnce(Settled) + Send>>,
}

/// The writes of a batch merged into one per stream, each stream expected
/// at the revision its first write expected.
#[derive(Default)]
struct Merged {
    writes: Vec<StreamWrite>,
    /// Each written stream's revision after the writes merged so far.
    heads: HashMap<String, Option<u64>>,
}

impl Merged {
    /// Adds a command's writes when every one of them expects its stream
    /// where the writes before it leave it; otherwise adds none.
    fn chain(&mut self, writes: Vec<StreamWrite>) -> bool {
        let mut heads = HashMap::new();
        for write in &writes {
            let expected = match write.expected {
                ExpectedRevision::NoStream => None,
                ExpectedRevision::Exact(r) => Some(r),
                _ => return false,
            };
            let head = heads
                .get(&write.stream)
                .or_else(|| self.heads.get(&write.stream))
                .copied()
                .unwrap_or(expected);
            if head != expected {
                return false;
            }
            heads.insert(
                write.stream.clone(),
                revision_after(head, write.events.len()),
            );
        }
        for write in writes {
            match self.writes.iter_mut().find(|w| w.stream == write.stream) {
                Some(merged) => merged.events.extend(write.events),
                None => self.writes.push(write),
            }
        }
        self.heads.extend(heads);
        true
    }

    fn is_empty(&self) -> bool {
        self.writes.iter().all(|w| w.events.is_empty())
    }
}

impl Batch {
    fn new(service: CommandService) -> Self {
        Self {
            service,
            overlay: Overlay::default(),
            writes: Merged::default(),
            after_commit: Vec::new(),
            settle: Vec::new(),
        }
    }

    /// Takes a decided command's writes into the batch when they chain onto
    /// what the batch already writes; `false` leaves the batch as it was.
    fn accept(&mut self, decided: Decided) -> bool {
        if !self.writes.chain(decided.writes) {
            return false;
        }
        self.after_commit.extend(decided.after_commit);
        for Staged {
            stream,
            snapshot,
            durable,
        } in decided.staged
        {
            self.overlay.staged.insert(stream, (snapshot, durable));
        }
        true
    }

    /// Appends everything the batch decided, in one append, and tells
    /// every command how it went.
    async fn commit(self) {
        // Nothing to write: every command of the batch checked that what
        // it read is current.
        let settled = if self.writes.is_empty() {
            Settled::Durable(0)
        } else {
            let writes = self.writes.writes;
            match self.service.aggregates().store().append(writes).await {
                Ok(appended) => {
                    for update in self.after_commit {
                        update(self.service.aggregates(), appended.position);
                    }
                    Settled::Durable(appended.position)
                }
                Err(AppendError::Conflict {
                    stream, expected, ..
                }) => Settled::Lost(stream, expected.exact()),
                Err(AppendError::Invalid(e)) => {
                    tracing::debug!(error = %e, "a combined append was refused; deciding alone");
                    Settled::Alone
                }
                Err(AppendError::Store(e)) => Settled::Failed(e),
            }
        };
        for settle in self.settle {
            settle(settled.clone());
        }
    }
}

impl CommandService {
    /// Whether an attempt may be combined with others', and on which
    /// stream's queue.
    pub(super) fn combinable<'c>(
        ctx: &CommandContext,
        contended: &'c BTreeSet<String>,
    ) -> Option<&'c String> {
        if ctx.if_match.is_some() || ctx.idempotency.is_some() || contended.len() != 1 {
            return None;
        }
        contended.first()
    }

    /// Runs one attempt of a command in `stream`'s combining queue.
    pub(super) async fn combined<C: Command>(
        &self,
        ctx: &CommandContext,
        command: &C,
        stream: &str,
    ) -> Turn<C::Output> {
        let hot = self.hot(stream);
        let (tx, mut rx) = oneshot::channel();
        let job = job(ctx.clone(), command.clone(), stream.to_string(), tx);
        let number = hot
            .numbers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&hot.waiting).push((number, job));
        let _place = Place { hot: &hot, number };
        loop {
            tokio::select! {
                biased;
                answer = &mut rx => {
                    return answer.unwrap_or(Turn::again(true));
                }
                turn = hot.turn.clone().lock_owned() => {
                    let jobs: Vec<Job> = {
                        let mut waiting = lock(&hot.waiting);
                        let take = waiting.len().min(MAX_BATCH);
                        waiting.drain(..take).map(|(_, job)| job).collect()
                    };
                    if !jobs.is_empty() {
                        // On its own task: this caller may go away.
                        tokio::spawn(run_batch(self.clone(), jobs, turn));
                    }
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run_batch(service: CommandService, jobs: Vec<Job>, turn: OwnedMutexGuard<()>) {
    if let Some(m) = service.metrics() {
        m.batches.observe(jobs.len() as f64);
    }
    let mut batch = Batch::new(service);
    for job in jobs {
        job(&mut batch).await;
    }
    batch.commit().await;
    drop(turn);
}

/// What one command decided in a batch, as `run` would have answered it.
enum Verdict<O> {
    /// Answer once the batch is durable (or decide again if it is not).
    AfterCommit {
        outcome: Result<O, DomainError>,
        revision: Option<u64>,
        position: u64,
    },
    Now(Turn<O>),
}

fn job<C: Command>(
    ctx: CommandContext,
    command: C,
    stream: String,
    tx: oneshot::Sender<Turn<C::Output>>,
) -> Job {
    Box::new(move |batch: &mut Batch| {
        Box::pin(async move {
            // Its caller went away before the turn came: the request is not
            // carried out at some later moment nobody waits for.
            if tx.is_closed() {
                return;
            }
            let contended = BTreeSet::from([stream]);
            let target = command.target();
            let (verdict, decided) = {
                let mut uow = UnitOfWork::new(&batch.service, &ctx, &target, &contended)
                    .in_batch(&batch.overlay);
                let verdict = decide(&command, &mut uow).await;
                (verdict, uow.into_decided())
            };
            match verdict {
                Verdict::Now(turn) => {
                    let _ = tx.send(turn);
                }
                Verdict::AfterCommit {
                    outcome,
                    revision,
                    position,
                } => {
                    // The streams this command writes: a batch lost on
                    // another's stream is not this command's race.
                    let written: Vec<String> =
                        decided.writes.iter().map(|w| w.stream.clone()).collect();
                    if !batch.accept(decided) {
                        let _ = tx.send(Turn::again(true));
                        return;
                    }
                    batch.settle.push(Box::new(move |settled| {
                        let turn = match settled {
                            Settled::Durable(at) => Turn::Answer(
                                outcome
                                    .map(|output| Committed {
                                        output,
                                        revision,
                                        position: position.max(at),
                                        replayed: false,
                                    })
                                    .map_err(CommandError::Domain),
                            ),
                            Settled::Lost(stream, expected) => Turn::Again {
                                lost_on: written.contains(&stream).then_some((stream, expected)),
                                alone: false,
                            },
                            Settled::Alone => Turn::again(true),
                            Settled::Failed(e) => Turn::Answer(Err(e.into())),
                        };
                        let _ = tx.send(turn);
                    }));
                }
            }
        })
    })
}

/// Decides a command in a batch the way `run` decides an attempt alone
/// (without `If-Match` or idempotency, which are never combined).
async fn decide<C: Command>(command: &C, uow: &mut UnitOfWork<'_>) -> Verdict<C::Output> {
    let outcome = match command.decide(uow).await {
        Ok(output) => Ok(output),
        Err(CommandError::Stale) => return Verdict::Now(Turn::again(false)),
        Err(CommandError::Domain(refusal)) => {
            // Refused on staged state: it stands if the batch does. Refused
            // on a stale copy: decide again.
            if !uow.refuses_after_commit() {
                uow.discard();
            }
            Err(refusal)
        }
        Err(other) => return Verdict::Now(Turn::Answer(Err(other))),
    };
    // Nothing to write (a refusal, or nothing to do): answer only on state
    // proven current, as alone.
    if uow.writes.iter().all(|w| w.events.is_empty()) {
        match uow.ensure_fresh().await {
            Ok(()) => {}
            Err(CommandError::Stale) => return Verdict::Now(Turn::again(false)),
            Err(other) => return Verdict::Now(Turn::Answer(Err(other))),
        }
    }
    Verdict::AfterCommit {
        outcome,
        revision: uow.target_revision_after(),
        position: uow.position(),
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use shopstream_domain::product::NewProduct;
    use shopstream_domain::values::{
        Category, Currency, Description, Money, Name, ProductId, Quantity, Sku, Tags,
    };
    use shopstream_infra::event_store::{Direction, Metadata, NewEvent};

    use super::super::aggregates::AggregateCache;
    use super::super::catalogue::CreateProduct;
    use super::super::inventory::ReceiveStock;
    use super::super::{Actor, RetryPolicy};
    use super::*;
    use shopstream_domain::inventory::{Inventory, InventoryCommand};

    /// A service on a fresh embedded store, with a product listed under
    /// `sku`; the stores live as long as the returned guard.
    async fn shop(sku: &str) -> (CommandService, shopstream_testkit::harness::Stores) {
        let stores = shopstream_testkit::harness::Stores::new();
        let service = CommandService::new(
            AggregateCache::new(stores.events.clone(), 100),
            RetryPolicy::default(),
        );
        let ctx = CommandContext::new(Actor::System, "test");
        let euros = Currency::parse("EUR").unwrap();
        let product = CreateProduct(NewProduct {
            product_id: ProductId(uuid::Uuid::now_v7()),
            sku: Sku::parse(sku).unwrap(),
            name: Name::parse("Kettle").unwrap(),
            description: Description::parse("Boils water.").unwrap(),
            price: Money::new(2500, euros).unwrap(),
            category: Category::parse("kitchen").unwrap(),
            tags: Tags::parse(&["kitchen"]).unwrap(),
            at: ctx.now,
        });
        service.execute(&ctx, &product).await.expect("listed");
        (service, stores)
    }

    fn receive(sku: &str, quantity: u32) -> ReceiveStock {
        ReceiveStock {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
        }
    }

    async fn stream_events(service: &CommandService, stream: &str) -> Vec<(u64, u64)> {
        let events = service
            .aggregates()
            .store()
            .read_stream(stream, None, Direction::Forward, 100)
            .await
            .unwrap();
        events.iter().map(|e| (e.revision, e.position)).collect()
    }

    #[tokio::test]
    async fn the_commands_queued_for_a_turn_are_decided_in_order_and_appended_once() {
        let (service, _stores) = shop("KETTLE-1").await;
        let ctx = CommandContext::new(Actor::System, "test");
        let (first, second) = (receive("KETTLE-1", 3), receive("KETTLE-1", 4));
        let stream = first.target();
        // The turn is taken: both commands queue for it.
        let turn = service.hot(&stream).turn.clone().lock_owned().await;
        let mut a = pin!(service.combined(&ctx, &first, &stream));
        let mut b = pin!(service.combined(&ctx, &second, &stream));
        assert!(futures::poll!(a.as_mut()).is_pending());
        assert!(futures::poll!(b.as_mut()).is_pending());
        drop(turn);
        let (a, b) = futures::join!(a, b);
        let (Turn::Answer(Ok(a)), Turn::Answer(Ok(b))) = (a, b) else {
            panic!("both are carried out");
        };
        // The second decided on the stock the first left.
        assert_eq!((a.output.on_hand, b.output.on_hand), (3, 7));
        assert_eq!((a.revision, b.revision), (Some(0), Some(1)));
        let events = stream_events(&service, &stream).await;
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1].1 - events[0].1,
            1,
            "one append: consecutive positions {events:?}"
        );
        assert_eq!(a.position, b.position, "answered with the same append");
    }

    #[tokio::test]
    async fn a_command_whose_caller_left_before_its_turn_is_not_carried_out() {
        let (service, _stores) = shop("KETTLE-2").await;
        let ctx = CommandContext::new(Actor::System, "test");
        let (abandoned, kept) = (receive("KETTLE-2", 3), receive("KETTLE-2", 4));
        let stream = abandoned.target();
        let turn = service.hot(&stream).turn.clone().lock_owned().await;
        {
            let mut gone = pin!(service.combined(&ctx, &abandoned, &stream));
            assert!(futures::poll!(gone.as_mut()).is_pending(), "queued");
        }
        drop(turn);
        let Turn::Answer(Ok(done)) = service.combined(&ctx, &kept, &stream).await else {
            panic!("the caller still waiting is answered");
        };
        assert_eq!(
            done.output.on_hand, 4,
            "the abandoned receipt never happened"
        );
        assert_eq!(stream_events(&service, &stream).await.len(), 1);
    }

    /// Polls `sent` until its command waits in `hot`'s queue; it must not
    /// finish before (it would have been carried out without its turn).
    async fn until_queued<F: std::future::Future>(hot: &Hot, mut sent: std::pin::Pin<&mut F>) {
        let queued = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while lock(&hot.waiting).is_empty() {
                assert!(
                    futures::poll!(sent.as_mut()).is_pending(),
                    "carried out without its turn"
                );
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(queued.is_ok(), "never queued");
    }

    #[tokio::test]
    async fn a_command_arriving_while_a_stream_is_queued_joins_the_queue_instead_of_racing() {
        let (service, _stores) = shop("KETTLE-3").await;
        let ctx = CommandContext::new(Actor::System, "test");
        let arriving = receive("KETTLE-3", 2);
        let stream = arriving.target();
        let turn = service.hot(&stream).turn.clone().lock_owned().await;
        let mut sent = pin!(service.execute(&ctx, &arriving));
        // It decides, finds the stream's turn taken and queues for it
        // (alone, it would have appended by now).
        until_queued(&service.hot(&stream), sent.as_mut()).await;
        assert!(stream_events(&service, &stream).await.is_empty());
        drop(turn);
        let done = sent.await.expect("carried out in its turn");
        assert_eq!(done.output.on_hand, 2);
        assert_eq!(stream_events(&service, &stream).await.len(), 1);
    }

    /// Stock received for several SKUs at once (one append over their
    /// streams), with no product check: a command written on two streams.
    #[derive(Debug, Clone)]
    struct ReceiveAll(Vec<Sku>, u32);

    impl Command for ReceiveAll {
        type Output = Vec<u64>;
        const NAME: &'static str = "receive_all";

        fn target(&self) -> String {
            shopstream_domain::stream_name::<Inventory>(&self.0[0])
        }

        async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<Vec<u64>, CommandError> {
            let mut on_hand = Vec::new();
            for sku in &self.0 {
                let inventory = uow.load::<Inventory>(sku).await?;
                let events = inventory.state.decide(&InventoryCommand::Receive {
                    sku: sku.clone(),
                    quantity: Quantity::new(self.1).unwrap(),
                    at: uow.now(),
                })?;
                on_hand.push(uow.stage(&inventory, events).on_hand);
            }
            Ok(on_hand)
        }
    }

    #[tokio::test]
    async fn a_command_sent_back_with_two_contended_streams_takes_both_turns_and_commits() {
        let (service, stores) = shop("KETTLE-4").await;
        let ctx = CommandContext::new(Actor::System, "test");
        let (x, y) = (Sku::parse("X-1").unwrap(), Sku::parse("Y-1").unwrap());
        // This node has Y cached at its first receipt.
        service
            .execute(&ctx, &ReceiveAll(vec![y.clone()], 1))
            .await
            .unwrap();
        let both = ReceiveAll(vec![x.clone(), y.clone()], 2);
        let x_stream = both.target();
        let turn = service.hot(&x_stream).turn.clone().lock_owned().await;
        let mut sent = pin!(service.execute(&ctx, &both));
        until_queued(&service.hot(&x_stream), sent.as_mut()).await;
        // Another node receives Y meanwhile: this node's copy is stale, so
        // the batch loses on Y and the command comes back contended on X
        // and Y, to take both turns alone.
        let elsewhere = CommandService::new(
            AggregateCache::new(stores.events.clone(), 100),
            RetryPolicy::default(),
        );
        elsewhere
            .execute(&ctx, &ReceiveAll(vec![y.clone()], 5))
            .await
            .unwrap();
        drop(turn);
        let done = sent.await.expect("carried out, not refused 409");
        assert_eq!(done.output, [2, 8]);
    }

    fn write(stream: &str, expected: ExpectedRevision, events: usize) -> StreamWrite {
        StreamWrite {
            stream: stream.into(),
            expected,
            events: (0..events)
                .map(|i| NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: format!("E{i}"),
                    schema_version: 1,
                    data: b"{}".to_vec(),
                    metadata: Metadata::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn commands_deciding_one_after_another_merge_into_one_write_per_stream() {
        let mut merged = Merged::default();
        // The first checkout: its cart, a new order, the SKU at 7.
        assert!(merged.chain(vec![
            write("cart-a", ExpectedRevision::Exact(2), 1),
            write("order-a", ExpectedRevision::NoStream, 1),
            write("inventory-HOT", ExpectedRevision::Exact(7), 1),
        ]));
        // The second decided on the SKU as the first left it.
        assert!(merged.chain(vec![
            write("cart-b", ExpectedRevision::Exact(0), 1),
            write("inventory-HOT", ExpectedRevision::Exact(8), 2),
        ]));
        // An empty write only checks, where the batch leaves the stream.
        assert!(merged.chain(vec![write("inventory-HOT", ExpectedRevision::Exact(10), 0)]));
        let streams: Vec<_> = merged
            .writes
            .iter()
            .map(|w| (w.stream.as_str(), w.expected, w.events.len()))
            .collect();
        assert_eq!(
            streams,
            [
                ("cart-a", ExpectedRevision::Exact(2), 1),
                ("order-a", ExpectedRevision::NoStream, 1),
                ("inventory-HOT", ExpectedRevision::Exact(7), 3),
                ("cart-b", ExpectedRevision::Exact(0), 1),
            ]
        );
        assert!(!merged.is_empty());
    }

    #[test]
    fn a_command_that_does_not_chain_is_left_out_whole() {
        let mut merged = Merged::default();
        assert!(merged.chain(vec![write("inventory-HOT", ExpectedRevision::Exact(7), 1)]));
        // Decided on the SKU as durable, not as the batch leaves it: its
        // cart must not go in without it.
        assert!(!merged.chain(vec![
            write("cart-c", ExpectedRevision::Exact(0), 1),
            write("inventory-HOT", ExpectedRevision::Exact(7), 1),
        ]));
        // Expectations the batch cannot chain are never combined.
        assert!(!merged.chain(vec![write("x", ExpectedRevision::Any, 1)]));
        assert_eq!(merged.writes.len(), 1);
        assert_eq!(merged.writes[0].events.len(), 1);
        assert_eq!(merged.heads["inventory-HOT"], Some(8));
    }

    #[test]
    fn a_batch_of_checks_only_writes_nothing() {
        let mut merged = Merged::default();
        assert!(merged.chain(vec![write("cart-a", ExpectedRevision::Exact(2), 0)]));
        assert!(merged.is_empty());
    }
}
