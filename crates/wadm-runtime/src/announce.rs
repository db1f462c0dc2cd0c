//! What a replica puts into the event stream on its own: periodic ticks (deduplicated per period
//! across replicas), timers and `unrecorded` reports. Discovery rounds' answers: [`crate::discovery`].

use std::time::Duration;

use crate::io::Outgoing;
use crate::messages::{Tick, internal_subject};

/// The tick a replica publishes for `lattice` at `now`. Its id names the tick period, so every
/// replica's tick of the same period is one message.
pub fn tick_message(lattice: &str, now: wadm_lattice::Timestamp, every: Duration) -> Outgoing {
    let period = (every.as_millis() as u64).max(1);
    Outgoing {
        subject: internal_subject(lattice, "tick"),
        payload: serde_json::to_vec(&Tick { at: now }).unwrap_or_default(),
        msg_id: format!("tick.{lattice}.{}", now / period),
        ttl: None,
    }
}

/// The timer a replica publishes for `lattice` when the deadline `at` (a host lease, an order's
/// deadline, the end of a failure backoff) is reached. Its id names the deadline, so every
/// replica's timer for it is one message.
pub fn timer_message(lattice: &str, at: wadm_lattice::Timestamp) -> Outgoing {
    Outgoing {
        subject: internal_subject(lattice, "timer"),
        payload: serde_json::to_vec(&Tick { at }).unwrap_or_default(),
        msg_id: format!("timer.{lattice}.{at}"),
        ttl: None,
    }
}

/// Said by a replica whose publishes to `lattice`'s event stream failed from `since` on, before
/// the first thing it publishes again (see [`crate::recording`]). Its id names the failure's
/// start, so it is stored once however often it is retried.
pub fn unrecorded_message(lattice: &str, since: wadm_lattice::Timestamp) -> Outgoing {
    Outgoing {
        subject: internal_subject(lattice, "unrecorded"),
        payload: serde_json::to_vec(&Tick { at: since }).unwrap_or_default(),
        msg_id: format!("unrecorded.{lattice}.{since}"),
        ttl: None,
    }
}
