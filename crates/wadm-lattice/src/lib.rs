//! Observed state of a wasmCloud lattice.
//!
//! This crate owns wadm's *belief about what the lattice is running*: hosts and their labels,
//! components and providers per host, links and configs ([`state`]). Time is an argument
//! ([`Timestamp`]); nothing here reads a clock or does I/O, so every transition can be tested and
//! replayed exactly.

pub mod bookkeeping;
pub mod state;

pub use state::*;
