//! wadm's wall clock, read only here in the I/O shell and passed into the pure core.

use std::time::{SystemTime, UNIX_EPOCH};

use wadm_lattice::Timestamp;

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Timestamp)
}
