//! The application manifest model of wadm.
//!
//! This crate owns everything about *what a user asked for*: the OAM manifest as it appears on the
//! wire ([`wire`]), the validated domain values the rest of wadm works with ([`app`]), the rules that
//! turn one into the other, reporting every problem with the path of the offending field
//! ([`parse_manifest`], [`Diagnostic`]), and the derived names (component ids, config names) that
//! deployments depend on ([`names`]). It also owns the application status types of the wadm API
//! ([`status`]), because every layer reports in them.
//!
//! It is pure: no I/O, no clock, no randomness, no async.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod app;
mod diag;
pub mod diff;
mod equal;
pub mod names;
mod node;
mod parse;
pub mod status;
mod to_wire;
mod validate;
pub mod wire;

pub use app::*;
pub use diag::{Diagnostic, Invalid, Severity};
pub use equal::{normal_form, same_content};
pub use parse::{Format, Limits, Parsed, document_value, parse_manifest};
pub use status::{Instances, ScalerStatus, Status, StatusInfo, StatusType};
