//! Observed state of a wasmCloud lattice.
//!
//! This crate owns wadm's *belief about what the lattice is running*: hosts and their labels,
//! components and providers per host, links and configs ([`state`]), how host events change it
//! ([`reducer::apply`]), how silent hosts are declared lost ([`lease::expire`]) and how answers to
//! discovery requests are merged in ([`discovery::merge_discovery`]). Time is an argument
//! ([`Timestamp`]); nothing here reads a clock or does I/O, so every transition can be tested and
//! replayed exactly.

#![warn(missing_docs, unreachable_pub)]

pub mod bookkeeping;
pub mod changes;
pub mod context;
pub mod discovery;
pub mod lease;
pub mod reducer;
mod snapshot;
pub mod state;
mod time;

pub use bookkeeping::{EventStamp, RemovalReason};
pub use changes::{APPSPEC_ANNOTATION, Change, Changes, Marked, Outcome, app_of};
pub use context::EventContext;
pub use discovery::{DiscoveredHost, Discovery, merge_discovery};
pub use lease::{LeaseConfig, STOP_CONFIRM_MS, confirm_stop, expire, next_expiry, refresh_leases};
pub use reducer::apply;
pub use state::*;
