//! The wadm API server: the NATS request/reply API of api.md §2 (plus `model.history.{name}`)
//! over a versioned manifest store, with application status published on
//! `wadm.status.{lattice}.{app}`.
//!
//! Storage is `wadm-store`'s (created or verified at start, safe for replicas starting together):
//! the manifest bucket (`wadm_manifests`) and the status stream (`wadm_status`), named by
//! [`ServerConfig::names`]. Requests arrive on `{prefix}.>` in the queue group `wadm_api`;
//! replies carry a `Wadm-Server` header naming the instance.
//!
//! - [`probe`]: "does this lattice have hosts?" behind a trait;
//! - [`subject`]: request subject parsing (pure);
//! - [`checks`]: deploy-time checks against other deployed applications (pure);
//! - [`manifest`]: parsing request bodies with `wadm-model`;
//! - [`api`]: the operations; [`server`]: setup, the serving loop and graceful shutdown;
//! - [`view`]: the lattice view (`{lattice}.lattice.hosts`, `lattices`) from observed state.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod checks;
pub mod manifest;
pub mod plan;
pub mod probe;
pub mod server;
pub mod subject;
pub mod view;

pub use api::{ACTOR_HEADER, Api, HistoryResponse};
pub use server::{Server, ServerConfig, ServerError};
pub use view::KnownLattices;
pub use wadm_store::health::{Failing as HealthFailing, Health};
