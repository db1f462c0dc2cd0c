//! The leaderless HA runtime of wadm: every replica runs the same loops, all state is in
//! JetStream, and any replica can pick up where another stopped.
//!
//! # Pipeline
//! 1. Host events (`wasmbus.evt.L.>`), the API server's deploy/undeploy CloudEvents
//!    (`wadm.evt.L.manifest_*`) and the runtime's own ticks and failure reports
//!    (`wadm.internal.L.>`) are captured in **one durable stream** ([`messages`]), kept while no
//!    wadm runs. The stream sequence is the order in which one lattice's events are applied:
//!    a deploy is ordered with respect to host events by when the stream stored it.
//! 2. Per lattice, one durable pull consumer pinned to one replica at a time (JetStream's
//!    `PinnedClient` priority policy; the pin moves when the pinned replica stops pulling for
//!    longer than the ack wait, so a dead replica's unacked events are redelivered before
//!    anything newer). Lattices spread over the replicas ([`membership`]): replicas announce
//!    themselves on core NATS every 500 ms, each lattice belongs to one live replica (rendezvous
//!    hashing with bounded loads) and only that one pulls; the others stand by and take over
//!    when its presence runs out (2 s) — or at once when it stops gracefully, since it gives
//!    back what it pulled and unpins the consumer. The pinned replica takes batches of up to `RuntimeConfig::batch_size`
//!    events in order and handles each batch as one step ([`pipeline`] is the shell, [`step`]
//!    the pure decisions): check out the lattice record (observed state with the reducer's
//!    bookkeeping, deployments, failure backoff, orders in flight — [`record`]) with its head
//!    revision, apply the events, reconcile the affected applications (pure `wadm-scheduler`),
//!    write the changed entities and then the head with compare-and-set (conflict: read back and
//!    redo), publish the plan's commands to the **durable command stream** (`Nats-Msg-Id` = plan
//!    id + order sequence number, see "Command identity" below, `Nats-TTL`, and `issued_at`/`expires_at` in the body), write statuses,
//!    then ack.
//! 3. Per lattice, one durable pull consumer of commands with a large `max_ack_pending`: any
//!    replica executes any command ([`executor`]): dropped when past its TTL or superseded by a
//!    newer generation; otherwise sent as a control request with a timeout; unanswered requests
//!    are redelivered with exponential backoff and jitter; refusals and host `*_failed` events
//!    put the application in a persisted backoff and a `failed` status.
//! 4. Discovery rounds *ask* the lattice (host ping, inventories, links) and put the answers in
//!    the event stream as `discovered`, merged in order like any event — never applied on the
//!    side. A round bigger than [`parts::DISCOVERY_PART_BYTES`] (the NATS max payload is 1 MiB)
//!    goes as several bounded parts, each a self-contained partial answer ([`parts`]): a host
//!    absent from a part is left alone, never deleted before its lease. Each replica runs one per lattice at start-up (hosts that already run are known
//!    without waiting for heartbeats), one per `RunConfig::discovery_every` (default 5 min; the
//!    message id names the period, so the replicas' rounds of one period are stored once), and
//!    one when a step reports observed state in doubt ([`Processed::state_in_doubt`]: the replica
//!    took the lattice over — nothing kept, so everything read back from KV — or an event came
//!    from a host wadm did not know), at most one per `RunConfig::discovery_min_gap` (default
//!    30 s). A replica that merely fell behind the journal (say, after another replica's
//!    discovery round wrote more keys than the journal keeps) reads back exactly what was
//!    committed: no doubt, so rounds do not set off further rounds.
//!    Until the first complete round is merged, a lattice whose state knows no host, or learnt
//!    one from anything but its `host_started` (hosts that ran before wadm), is not reconciled
//!    — placement would pile instances on the few hosts heard from so far — at most
//!    `RuntimeConfig::first_round_wait` (30 s) after its state began ([`first_round`]). A round
//!    that started before the last complete round was merged is outdated and skipped.
//! 5. Timers run on an injected [`clock::Clock`]: every replica publishes a tick per period
//!    whose id names the period, so the ticks of all replicas deduplicate into one; a tick
//!    expires host leases, re-reads deployments and reconciles everything (retries whose backoff
//!    ended, commands lost with a crash).
//!
//! 6. Orphans ([`orphans`]): objects carrying wadm's marks for an application no record here
//!    manages are marked (first-seen time in the head) by steps that reconcile with complete
//!    knowledge, and removed by ordinary orders (reason class `gc`) once still orphaned after the
//!    grace period; the store is asked about their application first (`docs/orphans.md`).
//!
//! # Persistence
//! Observed state is stored **one key per entity** (host, component on a host, provider on a
//! host, link, config, tombstone of a gone host) in the `wadm_runtime_state` bucket through
//! `wadm_store::observed::StateStore` (`KvStateStore`; `MemoryStateStore` in tests); a step writes
//! only the entities its `Changes` touched. Everything else — applications, failure backoff,
//! last applied stream sequence, a step counter and a journal of the keys the last 32 steps
//! wrote — is the lattice's small **head** (`head.{lattice}` in `wadm_runtime`, JSON,
//! [`head::LatticeHead`]), written last in every step with compare-and-set.
//!
//! A replica keeps its decoded state in memory and uses it as is while the head is at the
//! revision it wrote itself. When other replicas took up to 32 steps since, it reads back only
//! the keys they wrote (from the journal); otherwise (start-up, after a failed step, further
//! behind, or a step that wrote more than 64 keys such as a discovery round) it reads the whole
//! lattice back from KV; when it had nothing kept (a takeover) it reports the state in doubt.
//!
//! What survives a read-back: every entity, host tombstones, and each host's **snapshot stamp**
//! (the newest heartbeat / `host_started` applied, kept in its host record), so a replica that
//! takes over still rejects stale heartbeats. A host record is written on every newer heartbeat,
//! so its `last_seen` (the lease) is at most one heartbeat old after a read-back; the stamps of
//! incremental events per component/provider/link/config and the reducer's counters start
//! empty (a read-back never rejects a *valid* event; an old incremental event may be applied
//! once, and the next heartbeat or discovery round corrects it). Old single-value records
//! (`lattice.{name}`) are not read: after an upgrade, the start-up discovery round rebuilds
//! observed state.
//!
//! # Guarantees
//! - **Order**: the events of one lattice are applied in stream order, by the one replica the
//!   consumer is pinned to (in batches); a replica always starts from the state the previous step
//!   committed (the head's compare-and-set serialises steps). The reducer tolerates duplicates
//!   and reordering that hosts themselves cause. A redelivered event whose sequence the head
//!   already records is reconciled, not applied again (a failure is not counted twice).
//! - **Entity writes before the head**: a step that loses the head's compare-and-set has already
//!   written its entities; this only happens when a step outlives the consumer's ack wait and
//!   the event is redelivered to another replica. Both computed the same event's result, so the
//!   values agree; if the slow step's values are older than a later event's, the next heartbeat
//!   of that host (a full snapshot) or discovery round corrects them.
//! - **Reconciles put off while events queue up**: a step that sees more events of its lattice
//!   queued behind it (the consumer's pending count) applies its event and notes the affected
//!   applications in the head ([`record::Deferred`]) instead of reconciling; the first step with
//!   an empty queue — or the one that reaches `RuntimeConfig::max_deferred_steps` (256) or
//!   `max_deferred` (1 s) — reconciles them all at once. Planning on a state the queue already
//!   outdated moved instances between hosts (placement saw a partial picture) and re-published
//!   every pending command per queued event: at 100 apps × 5 components on 100 hosts the event
//!   pipeline fell ~27 s behind and apps fell back from `deployed` to `reconciling`; put off, the
//!   same deploy takes ~1 command per instance. Failure reports are never put off.
//! - **Parallelism**: lattices are independent; commands of one lattice (the slow part: control
//!   requests) execute in parallel across replicas. Reconcile is a pure, cheap computation done
//!   in the ordered step.
//! - **At-least-once, deduplicated**: a crash before the ack redelivers the event; the redo
//!   reconciles every application and republishes the same command ids, which the command
//!   stream's dedupe window absorbs. A retry after a failure gets a new id (a new order).
//! - **Orders in flight** ([`intents`]): every published command is an order on its slot (a
//!   component or provider on a host, a link, a config) until the lattice confirms it, a host
//!   reports it failed, the executor drops it unsent (`command_dropped`), its host leaves or its
//!   deadline passes. Placement plans on observed state with the orders applied, so a re-plan
//!   never repeats a pending order; one order per slot is in flight; an order naming a config
//!   waits until the config is observed; a removal wadm ordered is not a loss.
//! - **Command identity** (`Nats-Msg-Id` = plan id . order sequence number): the plan id is a
//!   function of (lattice, application, generation, command content), the sequence number is
//!   the lattice's order counter in the head. A redone step (redelivery after a crash, a
//!   compare-and-set retry) starts from the same committed head and republishes the same ids:
//!   deduplicated. A redelivered event republishes every order in flight, so orders committed
//!   by a step that stopped before publishing them go out. An order needed again after the
//!   first settled gets a new number. Re-executed commands are idempotent, and the one refusal
//!   a duplicate causes (gotcha 8) is taken as done ([`executor::already_done`]).
//! - **Generations**: an application's runtime generation is `2 × store generation (+1 when
//!   undeployed)`; it is stamped in every command and a command of an older generation is never
//!   executed, so an update during an update supersedes the first.
//! - **Staleness**: a command past its TTL is dropped, by the stream (`Nats-TTL`) and by the
//!   executor (`expires_at`).
//!
//! # Costs and limits
//! A heartbeat step writes one host record and the head: its cost does not grow with the
//! lattice (`cargo bench -p wadm-runtime --bench pipeline -- --quick`, in memory, one run:
//! 10 / 100 / 1,000 hosts = 1 : 1.15 : 1.11, about 16 µs at 10 hosts; two replicas taking turns
//! cost about the same per step at 100 and 1,000 hosts). Heartbeats that change nothing skip the
//! reconcile. Reading the whole lattice back is linear (same run: 1 : 2.6 : 20 for 10 / 100 /
//! 1,000 hosts, 1.2 ms at 1,000; on NATS one get per key, 32 in flight), which is why it is done
//! only when the journal cannot bridge the gap. The head's size depends on the applications and the
//! journal bounds, never on the hosts.
//!
//! Everything is generic over small traits ([`io`], [`desired`], `wadm_store::kv::Kv`,
//! `wadm_store::status::StatusStore`); [`memory`] has in-memory versions for tests in virtual
//! time, [`nats`] the JetStream ones and [`run()`] the real loops.

pub mod allocation;
pub mod allocation_event;
pub mod announce;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod decide;
pub mod desired;
pub mod executor;
pub mod first_round;
pub mod head;
pub mod intents;
pub mod io;
pub mod membership;
pub mod memory;
pub mod messages;
pub mod nats;
pub mod orphans;
pub mod parts;
pub mod pipeline;
pub mod record;
pub mod revert;
pub mod run;
pub mod safety;
pub mod step;
pub mod trace;

pub use announce::{
    discover_into, discover_with_id, periodic_discovery_id, publish_round, tick_message,
    timer_message,
};
pub use backoff::Backoff;
pub use clock::{Clock, Random, SeededRandom, SystemClock, VirtualClock};
pub use config::RuntimeConfig;
pub use desired::{Deployment, DesiredSource};
pub use executor::{Executed, Executor, HeadOrders, NoOrderBook, OrderBook};
pub use head::LatticeHead;
pub use io::{ControlClient, Delivery, Discoverer, Inbox, IoError, Outbox, Outgoing, Published};
pub use messages::{CommandFailure, CommandMessage};
pub use pipeline::{Pipeline, PipelineError, PipelineIo, Processed};
pub use record::{AppRecord, Base, Failure, LatticeRecord, Loaded, RecordStore};
pub use run::{RunConfig, RunError, run};

mod arc_impls {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::desired::{Deployment, DesiredSource};
    use crate::io::{ControlClient, IoError, Outbox, Outgoing, Published};

    impl<T: DesiredSource> DesiredSource for Arc<T> {
        async fn deployment(&self, l: &str, a: &str) -> Result<Option<Deployment>, IoError> {
            (**self).deployment(l, a).await
        }
        async fn deployments(
            &self,
            l: &str,
        ) -> Result<std::collections::BTreeMap<String, Deployment>, IoError> {
            (**self).deployments(l).await
        }
        async fn manifest(
            &self,
            l: &str,
            a: &str,
            v: &str,
        ) -> Result<Option<wadm_model::Application>, IoError> {
            (**self).manifest(l, a, v).await
        }
        async fn act(
            &self,
            l: &str,
            action: &crate::revert::StoreAction,
        ) -> Result<Option<serde_json::Value>, IoError> {
            (**self).act(l, action).await
        }
        async fn note_history(&self, l: &str, a: &str, act: &str, by: &str) -> Result<(), IoError> {
            (**self).note_history(l, a, act, by).await
        }
    }

    impl<T: Outbox> Outbox for Arc<T> {
        async fn publish(&self, message: Outgoing) -> Result<Published, IoError> {
            (**self).publish(message).await
        }
    }

    impl<T: ControlClient> ControlClient for Arc<T> {
        async fn request(&self, s: &str, b: Vec<u8>, t: Duration) -> Result<Vec<u8>, IoError> {
            (**self).request(s, b, t).await
        }
        async fn notify(&self, s: &str, p: Vec<u8>) -> Result<(), IoError> {
            (**self).notify(s, p).await
        }
    }
}
