//! The scheduling core of wadm: from deployed applications and the observed lattice to a plan of
//! control commands and a status per application. Pure and deterministic: no I/O, no clock (time
//! is an argument), no randomness, no hash-order iteration.
//!
//! `input` says what is desired ([`Desired`]), `catalog` derives ownership and names from it,
//! [`context`] indexes the observed lattice for the [`scaler`]s (the [`Scaler`] trait is the
//! extension point; `scaler::placement` decides which hosts run what), `engine` merges their
//! wants into an ordered [`Plan`] of [`Command`]s with statuses, and a [`Reconciler`] keeps the
//! scalers between rounds. Undeploys, upgrades, custom scalers, scoped reconciles and what a
//! round costs: `docs/scheduler.md`.
//!
//! ```
//! use wadm_lattice::LatticeState;
//! use wadm_scheduler::{Desired, reconcile_with};
//!
//! let lattice = LatticeState { lattice: "default".into(), ..Default::default() };
//! let plan = reconcile_with(Desired { deployed: &[], undeployed: &[] }, &lattice, 0);
//! for c in &plan.commands {
//!     let (_subject, _body, _dedupe_id) =
//!         (c.command.subject(&plan.lattice), c.command.body_bytes(), &c.id);
//! }
//! assert!(plan.is_empty());
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod apply;
mod builtin;
mod capacity;
mod catalog;
pub mod command;
pub mod context;
mod coupling;
mod engine;
mod factory;
pub mod hash;
mod host_index;
mod input;
mod observed;
pub mod orphans;
mod reconciler;
pub mod scaler;
mod spread;
mod text;

pub use builtin::builtin_scalers;
pub use catalog::Catalog;
pub use command::{Command, CommandId, PlannedCommand, command_id};
pub use context::Context;
pub use engine::{Plan, plan_avoiding, plan_once, plan_with};
pub use factory::{BuildScalers, ScalerFactory};
pub use input::{Avoid, DeployedApp, Desired, UndeployedApp};
pub use reconciler::{Reconciler, ScopedPlan};
pub use scaler::{Evaluation, RolloutProgress, Scaler, ScalerInfo, Want, Wants};
pub use spread::split_instances;

use wadm_lattice::{LatticeState, Timestamp};

/// Reconcile the deployed applications of `observed`'s lattice with the built-in scalers.
/// Applications deployed to other lattices are ignored.
pub fn reconcile(desired: &[DeployedApp], observed: &LatticeState, now: Timestamp) -> Plan {
    reconcile_with(Desired { deployed: desired, undeployed: &[] }, observed, now)
}

/// Reconcile, also removing what the `undeployed` applications left behind.
pub fn reconcile_with(desired: Desired<'_>, observed: &LatticeState, now: Timestamp) -> Plan {
    let catalog = Catalog::new(&observed.lattice, desired);
    let scalers = builtin_scalers(&catalog);
    plan_once(observed, &catalog, scalers, now)
}
