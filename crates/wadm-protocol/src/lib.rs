//! Wire types of the wasmCloud 1.x lattice protocol, as wadm speaks it.
//!
//! This crate owns the *shapes* on the wire and nothing else: control-interface subjects and their
//! request/reply bodies ([`ctl`]), host CloudEvents and their payloads ([`event`]), and the types
//! both share ([`types`]). Every field a host may omit has a default, so older 1.x hosts decode.
//! It is pure: no I/O, no clock.

#![warn(missing_docs, unreachable_pub)]

pub mod ctl;
pub mod error_text;
pub mod event;
pub mod names;
pub mod subject;
pub mod types;

pub use error_text::one_line;
pub use event::{CloudEvent, EventDecodeError, HostEvent};
pub use types::*;
