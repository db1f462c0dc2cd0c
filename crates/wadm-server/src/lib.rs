//! The wadm API server.
//!
//! - [`connect`]: NATS connection options (reusable by every wadm process);
//! - [`kv`]: the compare-and-set key-value seam and its JetStream implementation;
//! - [`keys`]: the key layout of the manifest bucket;
//! - [`store`]: the versioned manifest store (versions, deployed version, generation, history).

pub mod api;
pub mod checks;
pub mod connect;
pub mod events;
pub mod keys;
pub mod kv;
pub mod manifest;
pub mod probe;
pub mod server;
pub mod status;
pub mod store;
pub mod subject;

pub use api::{ACTOR_HEADER, Api, HistoryResponse};
pub use connect::{ConnectError, NatsOptions, connect};
pub use server::{Server, ServerConfig, ServerError};
