//! Simulated wasmCloud 1.x hosts that speak the real lattice protocol on a real NATS server.
//!
//! [`SimLattice`] runs any number of hosts in one process over ONE NATS connection: control
//! subjects are subscribed once with wildcards (queue groups for the "one"-kind subjects) and
//! routed in-process to each host's state; each host has a cheap heartbeat timer. Hosts reproduce
//! the documented quirks of a real 1.9.2 host (double `component_scaled` on first start, the
//! spurious 0 after `component.update`, provider ref normalisation, …) and faults can be switched
//! on per host ([`FaultSwitches`]). Tests read back what the lattice runs ([`SimLattice::inventory`],
//! [`SimLattice::links`], [`SimLattice::configs`]) and what each host was asked
//! ([`SimLattice::requests`], [`SimLattice::max_count_seen`]).
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
//!
//! Behaviour worth knowing:
//! - "one"-kind subjects (`link.*`, `config.*`, `claims.get`) are served by the running hosts in
//!   round-robin; links and configs live in one [`LatticeStore`] per `SimLattice` (two simulator
//!   processes on one lattice each keep their own; the queue group makes only one answer).
//! - A reply delay delays the whole handling (the work and the events too), per request.
//! - Heartbeats carry the inventory; each is followed by `health_check_status` per provider.
//! - After [`SimLattice::connect`] and [`EventTap::start`] the server has processed the
//!   subscriptions (a round trip, not just a flush), so nothing published later is missed.
//!
//! - Each host has one subscription for its addressed subjects, so a request to a host that is
//!   not running gets "no responders"; [`SimLattice::stop_host`] and [`SimLattice::crash_host`]
//!   return once the server has dropped it.
//!
//! Differences from a real lattice: "one"-kind subjects stay subscribed while no host runs (a
//! request then times out instead of getting "no responders"). Components are unsigned.

pub mod config;
mod dispatch;
pub mod faults;
pub mod host;
pub mod host_id;
mod host_sub;
pub mod outcome;
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
