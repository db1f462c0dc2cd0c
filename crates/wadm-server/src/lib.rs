//! The wadm API server: the NATS request/reply API of api.md §2 (plus `model.history.{name}`)
//! over a versioned manifest store, with application status published on
//! `wadm.status.{lattice}.{app}`.
//!
//! JetStream resources (created or verified at start, safe for replicas starting together):
//! the KV bucket `wadm_manifests` (layout in [`keys`]) and the stream `wadm_status`
//! (`wadm.status.>`, one message per subject). Requests arrive on `{prefix}.>` in the queue group
//! `wadm_api`; replies carry a `Wadm-Server` header naming the instance.
//!
//! - [`mod@connect`]: NATS connection options and one-line errors (re-exported from `wadm-nats`);
//! - [`kv`]: the compare-and-set key-value seam, its JetStream and in-process implementations;
//! - [`keys`]: the key layout of the manifest bucket;
//! - [`store`]: the versioned manifest store (versions, deployed version, generation, history);
//! - [`status`]: the status seam (written by deploy/undeploy now, by the runtime later);
//! - [`probe`]: "does this lattice have hosts?" behind a trait;
//! - [`subject`]: request subject parsing (pure);
//! - [`checks`]: deploy-time checks against other deployed applications (pure);
//! - [`manifest`]: parsing request bodies and stored manifests with `wadm-model`;
//! - [`events`]: the `com.wadm.manifest_published` / `…_unpublished` CloudEvents;
//! - [`api`]: the operations; [`server`]: setup, the serving loop and graceful shutdown;
//! - [`view`]: the lattice view (`{lattice}.lattice.hosts`, `lattices`) from observed state.

pub mod api;
pub mod checks;
pub mod connect;
pub mod events;
pub mod keys;
pub mod kv;
pub mod manifest;
pub mod plan;
pub mod probe;
pub mod server;
pub mod status;
pub mod store;
pub mod subject;
pub mod view;

pub use api::{ACTOR_HEADER, Api, HistoryResponse};
pub use connect::{ConnectError, NatsOptions, connect};
pub use server::{Server, ServerConfig, ServerError};
pub use view::KnownLattices;
pub use wadm_nats::health::{Failing as HealthFailing, Health};
