//! The scheduling core of wadm: from deployed applications and the observed lattice to a plan of
//! control commands and a status per application. Pure and deterministic: no I/O, no clock (time
//! is an argument), no randomness, no hash-order iteration.
//!
//! - `input`: what is desired ([`DeployedApp`], [`UndeployedApp`], [`Desired`]);
//! - `catalog`: ownership and names derived from the desired state alone ([`Catalog`]);
//! - [`context`]: the observed lattice, indexed for scalers (`observed`: instances with their
//!   annotations read once);
//! - [`scaler`]: the [`Scaler`] trait (the extension point) and the built-in scalers;
//! - `spread`: weight arithmetic; `scaler::placement`: which hosts run what;
//! - `engine`: merging wants into an ordered [`Plan`] of [`Command`]s with statuses;
//! - [`command`]: commands and their deterministic ids; [`apply`]: applying a plan to a
//!   [`LatticeState`] the way hosts would (for tests and simulations).
//!
//! # Using it
//!
//! Pass every application deployed to the lattice, the ones being undeployed (with their last
//! spec when known), the observed [`LatticeState`] and the current time; send the plan's commands
//! in order, each with its [`PlannedCommand::id`] as the message id; publish the statuses.
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
//!
//! - Undeploy: drop the app from `deployed` and list it in `undeployed` until the plan no longer
//!   acts for it. Instances annotated with an app in neither list are orphans and left alone.
//! - Version change N → N+1: list the new version in `deployed`. Annotated instances, derived
//!   names and links from components N+1 still has are recognised from N+1 alone; also listing N's
//!   spec in `undeployed` (same name) lets links from explicitly named components N+1 dropped, and
//!   explicitly named configs, be removed too.
//! - Custom scheduling: build [`Catalog::new`] and [`builtin_scalers`], add your own [`Scaler`]s,
//!   call [`plan_with`]; or keep them in a [`Reconciler`] with [`Reconciler::with_scalers`] and a
//!   [`ScalerFactory`] (what `wadm-runtime` takes in its configuration).
//! - Steady state: while the desired state does not change, keep a [`Reconciler`]: it indexes the
//!   desired state and builds the scalers once, then each reconcile only calls [`plan_with`],
//!   giving the same plan as [`reconcile_with`] (tested). When only some applications are
//!   affected (a host event of one application), [`Reconciler::reconcile_apps`] runs only their
//!   scalers and those of applications coupled to them, giving the full plan restricted to that
//!   closure ([`ScopedPlan`]; property-tested). [`plan_once`] is [`plan_with`] for
//!   scalers used once (what [`reconcile_with`] does): their names move into the statuses.
//!
//! # Cost
//!
//! `cargo bench -p wadm-scheduler --bench reconcile -- --quick` measures 1,000 apps × 5
//! components on 1,000 hosts: from empty (placements per second), and converged both through a
//! [`Reconciler`] (what `wadm-runtime` runs while the desired state is unchanged) and cold
//! (every scaler built from the manifests first). A converged reconcile allocates almost nothing
//! per scaler: wants are inline and share their scaler's identity, placements of one or two hosts
//! are inline, each observed instance's annotations are read once into a [`context::Tag`], and
//! statuses share the scalers' names. What remains is mostly touching the lattice and the scalers
//! once (cache misses, not instructions). `examples/converged_profile.rs` runs converged rounds
//! under `valgrind --tool=callgrind` for steady instruction and allocation counts;
//! `examples/plan_digest.rs` checks that two builds decide exactly the same on generated worlds.
//!
//! From empty, a placement costs about as many hosts as it walks past (see
//! `scaler::placement`), not a scan of every eligible host. What remains per placed instance
//! is its command. Its strings and annotation map are shared with the scaler (`Arc`: no copy;
//! a kept scaler builds each spread's annotation map, and its encoding for ids, once) and its id
//! hashes a length-prefixed encoding of its fields with XXH3-128 (no JSON body is built to plan).
//! Status messages and id digits are written without `format!`. About 6,700 instructions per
//! placement with kept scalers, 19,000 cold, dropping the plan included (`converged_profile 3
//! empty-kept` less `1 empty-kept`, halved; `1 empty`). Most of what remains comes with the plan's
//! shape: three owned strings per placement (id, application, scaler message) and the statuses',
//! allocated and freed every round, the hash, then placement and evaluation. (The id's definition
//! changed with this: during a rolling upgrade, a step begun by a replica of one version and redone
//! by one of the other re-sends its commands under new ids.)
//!
//! A scoped reconcile ([`Reconciler::reconcile_apps`]) runs and merges only its closure's
//! scalers but still indexes the whole observed lattice once.

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
pub use command::{Command, PlannedCommand, command_id};
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
