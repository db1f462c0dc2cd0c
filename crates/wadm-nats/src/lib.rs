//! The NATS I/O layer of wadm's observed lattice state.
//!
//! - [`connect`]: connection options and opening a NATS connection (every wadm process);
//! - [`discovery`]: asking the lattice (ping, inventories, links, configs) for a discovery round;
//! - [`store`]: observed state in JetStream KV, one key per entity, compare-and-set writes, behind
//!   the [`StateStore`] trait (with an in-memory implementation);
//! - [`kv_key`]: the one encoding of KV key tokens every wadm store uses;
//! - [`kv_list`]: listing the live entries of a KV bucket without creating a consumer;
//!
//! All decisions are made by the pure `wadm-lattice` crate; this crate only moves bytes and reads
//! the clock ([`clock`]).
//!
//! ```no_run
//! # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use wadm_nats::{KvStateStore, STATE_BUCKET, StateStore};
//! let js = async_nats::jetstream::new(client);
//! let store = KvStateStore::open(&js, STATE_BUCKET).await?;
//! let state = store.load("default").await?; // the observed LatticeState kept for a lattice
//! # let _ = state;
//! # Ok(()) }
//! ```

pub mod account;
pub mod bucket;
pub mod clock;
pub mod connect;
pub mod discovery;
pub mod health;
pub mod kv_key;
pub mod kv_list;
pub mod store;

pub use discovery::{DiscoveryConfig, discover};
pub use store::{KvStateStore, MemoryStateStore, STATE_BUCKET, StateStore, StoreError};
