//! wadm's unit of time: every transition in this crate takes the time as an argument.

/// Milliseconds since the Unix epoch, passed in by the caller (never read from a clock here).
pub type Timestamp = u64;
