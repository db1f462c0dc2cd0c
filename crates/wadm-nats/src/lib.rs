//! The NATS I/O layer of wadm's observed lattice state.
//!
//! - [`discovery`]: asking the lattice (ping, inventories, links, configs) for a discovery round;
//! - [`store`]: observed state in JetStream KV, one key per entity, compare-and-set writes, behind
//!   the [`StateStore`] trait (with an in-memory implementation);
//! - [`events`]: the per-event step (decode, reduce, persist) a runtime calls;
//! - [`observer`]: an [`Observer`] task tying them together on a core NATS subscription.
//!
//! All decisions are made by the pure `wadm-lattice` crate; this crate only moves bytes and reads
//! the clock ([`clock`]).

pub mod clock;
pub mod discovery;
pub mod events;
pub mod observer;
pub mod store;

pub use discovery::{DiscoveryConfig, discover};
pub use events::{ObserveError, decode_and_apply, observe_event};
pub use observer::{Observer, ObserverConfig, ObserverError, ObserverStats};
pub use store::{KvStateStore, MemoryStateStore, STATE_BUCKET, StateStore, StoreError};
