//! Simulated wasmCloud 1.x hosts that speak the real lattice protocol on a real NATS server:
//! [`SimLattice`] runs any number of hosts in one process over one connection, with the quirks
//! of a real 1.9.2 host and per-host faults ([`FaultSwitches`]). Tests read back what the
//! lattice runs ([`SimLattice::inventory`], [`SimLattice::links`]) and what each host was asked
//! ([`SimLattice::requests`]). Behaviour and differences from real hosts: `docs/simulator.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wadm_sim::SimError> {
//! use wadm_sim::{HostSpec, SimConfig, SimLattice};
//! let sim = SimLattice::connect(SimConfig::new("nats://127.0.0.1:4222", "default")).await?;
//! let east = sim.add_host(HostSpec::default().label("zone", "east")).await;
//! assert!(sim.inventory(&east).is_some());
//! sim.crash_host(&east).await;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod config;
mod dispatch;
pub mod faults;
pub mod host;
pub mod host_id;
mod host_sub;
mod outcome;
pub mod probe;
pub mod route;
pub mod runtime;
pub mod store;
mod workloads;

#[cfg(test)]
mod host_props;
#[cfg(test)]
mod host_tests;

pub use config::{HostSpec, RequestCounts, SimConfig};
pub use faults::{FaultSettings, FaultSwitches};
pub use host::{HostState, RunningComponent, RunningProvider, SIM_HOST_VERSION};
pub use probe::{EventTap, ProbeError, ping_hosts, server_round_trip};
pub use runtime::{EventCounts, SimError, SimLattice};
pub use store::LatticeStore;
