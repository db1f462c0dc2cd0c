//! wadm as a library: the whole wadm — the API server ([`server`]), the leaderless runtime
//! ([`runtime`]) of every lattice it manages, lattice discovery and a graceful stop — assembled
//! and run in-process by [`Wadm`]. The `wadm serve` and `wadm up` commands run exactly this.
//!
//! Embedding is how wadm runs with a scaler set of one's choice: give the builder a
//! [`scheduler::ScalerFactory`] (for instance the built-in scalers plus custom ones, see
//! [`scheduler::ScalerFactory::with_builtins`] and the [`scheduler::Scaler`] trait). The runtime
//! reconciles with them and the API's `model.plan` plans with them.
//!
//! ```no_run
//! # async fn embed() -> anyhow::Result<()> {
//! use wadm::scheduler::ScalerFactory;
//!
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! wadm::Wadm::builder(client)
//!     .lattices(["default"])
//!     .scalers(ScalerFactory::with_builtins(|_catalog| Vec::new()))
//!     .run(wadm::shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! `examples/custom_scaler.rs` embeds wadm with a scaler of its own.

#![warn(missing_docs, unreachable_pub)]

mod embed;
mod heap;

pub use embed::{DEFAULT_LATTICE, Wadm, WadmBuilder, shutdown_signal};
/// The application model (manifests, statuses) custom scalers read.
pub use wadm_model as model;
/// The leaderless runtime ([`runtime::RunConfig`]: the settings of [`WadmBuilder::runtime`]).
pub use wadm_runtime as runtime;
/// The scheduling core: the [`scheduler::Scaler`] trait and [`scheduler::ScalerFactory`].
pub use wadm_scheduler as scheduler;
/// The API server ([`server::ServerConfig`]: the settings of [`WadmBuilder::server`]).
pub use wadm_server as server;
