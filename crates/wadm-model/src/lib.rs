//! The application manifest model of wadm.
//!
//! This crate owns everything about *what a user asked for*: the OAM manifest as it appears on the
//! wire ([`wire`]), the validated domain values the rest of wadm works with ([`app`]), the rules that
//! turn one into the other, reporting every problem with the path of the offending field, and the
//! derived names (component ids, config names) that deployments depend on ([`names`]). It also owns
//! the application status types of the wadm API ([`status`]), because every layer reports in them.
//!
//! It is pure: no I/O, no clock, no randomness, no async.

pub mod api;
pub mod app;
pub mod names;
pub mod status;

pub use app::*;
pub use status::{ScalerStatus, Status, StatusInfo, StatusType};
