//! The leaderless HA runtime of wadm: every replica runs the same loops, all state is in
//! JetStream, and any replica can pick up where another stopped.
//!
//! # Pipeline
//! 1. Host events (`wasmbus.evt.L.>`), the API server's deploy/undeploy CloudEvents
//!    (`wadm.evt.L.manifest_*`) and the runtime's own ticks and failure reports
//!    (`wadm.internal.L.>`) are captured in **one durable stream** ([`messages`]), kept while no
//!    wadm runs. The stream sequence is the order in which one lattice's events are applied:
//!    a deploy is ordered with respect to host events by when the stream stored it.
//! 2. Per lattice, one durable pull consumer with `max_ack_pending = 1`: whichever replica pulls
//!    the next event handles it ([`pipeline`]): load the lattice record (observed state with the
//!    reducer's bookkeeping, deployments, failure backoff — [`record`]) with its KV revision,
//!    apply the event, reconcile the affected applications (pure `wadm-scheduler`), write the
//!    record with compare-and-set (conflict: reload and redo), publish the plan's commands to
//!    the **durable command stream** (`Nats-Msg-Id` = plan id + retry round, `Nats-TTL`, and
//!    `issued_at`/`expires_at` in the body), write statuses, then ack.
//! 3. Per lattice, one durable pull consumer of commands with a large `max_ack_pending`: any
//!    replica executes any command ([`executor`]): dropped when past its TTL or superseded by a
//!    newer generation; otherwise sent as a control request with a timeout; unanswered requests
//!    are redelivered with exponential backoff and jitter; refusals and host `*_failed` events
//!    put the application in a persisted backoff and a `failed` status.
//! 4. At start-up each replica *asks* the lattice (a discovery round: host ping, inventories,
//!    links) and puts the answers in the event stream as `discovered`, merged in order like any
//!    event, so hosts that are already running are known without waiting for heartbeats.
//! 5. Timers run on an injected [`clock::Clock`]: every replica publishes a tick per period
//!    whose id names the period, so the ticks of all replicas deduplicate into one; a tick
//!    expires host leases, re-reads deployments and reconciles everything (retries whose backoff
//!    ended, commands lost with a crash).
//!
//! # Guarantees
//! - **Order**: the events of one lattice are applied one at a time in stream order, by any
//!   replica (`max_ack_pending = 1`); a replica always starts from the record the previous step
//!   committed (compare-and-set on its revision). The reducer tolerates duplicates and reordering
//!   that hosts themselves cause.
//! - **Parallelism**: lattices are independent; commands of one lattice (the slow part: control
//!   requests) execute in parallel across replicas. Reconcile is a pure, cheap computation done
//!   in the ordered step.
//! - **At-least-once, deduplicated**: a crash before the ack redelivers the event; the redo
//!   reconciles every application and republishes the same command ids, which the command
//!   stream's dedupe window absorbs. A retry after a failure gets a new id (next retry round).
//! - **Generations**: an application's runtime generation is `2 × store generation (+1 when
//!   undeployed)`; it is stamped in every command and a command of an older generation is never
//!   executed, so an update during an update supersedes the first.
//! - **Staleness**: a command past its TTL is dropped, by the stream (`Nats-TTL`) and by the
//!   executor (`expires_at`).
//!
//! # Costs and limits
//! One step re-encodes the lattice's whole record (CBOR; decoding is skipped when the bucket
//! still holds the revision this replica last read or wrote): its cost grows linearly with the
//! lattice (`cargo bench -p wadm-runtime -- --quick`, in memory: about 24 µs per heartbeat step
//! at 10 hosts, 93 µs at 100, 0.41 ms at 500). The record must also fit in one KV value (the
//! server's max payload, 1 MiB by default). Lattices of thousands of hosts need per-entity keys;
//! heartbeats that change nothing skip the reconcile.
//!
//! Everything is generic over small traits ([`io`], [`desired`], `wadm_server::kv::Kv`,
//! `wadm_server::status::StatusStore`); [`memory`] has in-memory versions for tests in virtual
//! time, [`nats`] the JetStream ones and [`run()`] the real loops.

pub mod announce;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod decide;
pub mod desired;
pub mod executor;
pub mod head;
pub mod io;
pub mod memory;
pub mod messages;
pub mod nats;
pub mod pipeline;
pub mod record;
pub mod run;

pub use announce::{discover_into, discover_with_id, periodic_discovery_id, tick_message};
pub use backoff::Backoff;
pub use clock::{Clock, Random, SeededRandom, SystemClock, VirtualClock};
pub use config::RuntimeConfig;
pub use desired::{Deployment, DesiredSource};
pub use executor::{Executed, Executor};
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
    }
}
