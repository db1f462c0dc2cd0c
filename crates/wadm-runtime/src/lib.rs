//! The leaderless HA runtime of wadm: every replica runs the same loops, all state is in
//! JetStream, and any replica can pick up where another stopped.
//!
//! Per lattice: events from one durable stream are applied in order by one replica at a time
//! ([`pipeline`] is the shell, [`step`] the pure decisions), commands go through a durable
//! command stream and are executed by any replica ([`executor`]), and every order stays in
//! flight until the lattice confirms it ([`intents`]). The pipeline, what is persisted where and
//! every guarantee with the code that enforces it are in `docs/runtime.md`; the crate's place
//! among the others in `docs/architecture.md`. `memory` (feature `testing`) has in-memory I/O for tests in
//! virtual time, [`nats`] the JetStream one and [`run()`] the real loops.

#![warn(missing_docs, unreachable_pub)]

pub mod allocation;
mod allocation_event;
mod announce;
mod backoff;
pub mod bad_hosts;
mod clock;
mod config;
pub mod decide;
pub mod desired;
pub mod discovery;
pub mod executor;
mod head;
pub mod intents;
pub mod io;
mod membership;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod messages;
pub mod nats;
pub mod orphans;
pub mod pipeline;
pub mod record;
mod recording;
pub mod revert;
pub mod run;
mod safety;
pub mod step;
#[cfg(test)]
mod test_fixtures;
pub mod trace;

pub use announce::{tick_message, timer_message};
pub use backoff::Backoff;
pub use clock::{Clock, Random, SeededRandom, SystemClock, VirtualClock};
pub use config::RuntimeConfig;
pub use desired::{Deployment, DesiredSource};
pub use discovery::{discover_into, discover_with_id, periodic_discovery_id, publish_round};
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
