//! What a replica puts into the event stream on its own: periodic ticks (deduplicated per period
//! across replicas) and the answers of discovery rounds (at start-up, periodically — deduplicated
//! per period — and when the pipeline finds observed state in doubt).

use std::time::Duration;

use crate::io::{Discoverer, IoError, Outbox, Outgoing};
use crate::messages::{DiscoveryReport, Tick, internal_subject};
use crate::parts::{DISCOVERY_PART_BYTES, split_report};

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

/// Run a discovery round and put its answers in the event stream, where the pipeline merges
/// them in order with everything else. Replicas do this at start-up: state may be stale then.
/// The message id names this replica's round.
pub async fn discover_into<X, O>(
    discoverer: &X,
    events: &O,
    lattice: &str,
    started_at: wadm_lattice::Timestamp,
    replica: &str,
) -> Result<usize, IoError>
where
    X: Discoverer,
    O: Outbox,
{
    let msg_id = format!("discovered.{lattice}.{replica}.{started_at}");
    discover_with_id(discoverer, events, lattice, started_at, msg_id).await
}

/// The message id of the periodic discovery round of `lattice` that `now` falls in: every
/// replica's round of the same period is stored once.
pub fn periodic_discovery_id(
    lattice: &str,
    now: wadm_lattice::Timestamp,
    every: Duration,
) -> String {
    let period = (every.as_millis() as u64).max(1);
    format!("discovered.{lattice}.period.{}", now / period)
}

/// Run a discovery round and publish its answers as the `discovered` message `msg_id`.
pub async fn discover_with_id<X, O>(
    discoverer: &X,
    events: &O,
    lattice: &str,
    started_at: wadm_lattice::Timestamp,
    msg_id: String,
) -> Result<usize, IoError>
where
    X: Discoverer,
    O: Outbox,
{
    let discovery = discoverer.discover(lattice, started_at).await?;
    let hosts = discovery.hosts.len();
    publish_round(events, lattice, DiscoveryReport::from(discovery), &msg_id, DISCOVERY_PART_BYTES)
        .await?;
    Ok(hosts)
}

/// Publish a round's answers as `discovered` messages of at most about `max_bytes` each, in
/// order (see [`crate::parts`]): `msg_id` when it fits in one, `{msg_id}.p{i}of{n}` for parts.
/// Returns how many messages were published.
pub async fn publish_round<O: Outbox>(
    events: &O,
    lattice: &str,
    report: DiscoveryReport,
    msg_id: &str,
    max_bytes: usize,
) -> Result<usize, IoError> {
    let parts = split_report(report, max_bytes);
    let count = parts.len();
    for part in parts {
        let id = if part.part == 0 {
            msg_id.to_string()
        } else {
            format!("{msg_id}.p{}of{}", part.part, part.parts)
        };
        let outgoing = Outgoing {
            subject: internal_subject(lattice, "discovered"),
            payload: serde_json::to_vec(&part).unwrap_or_default(),
            msg_id: id,
            ttl: None,
        };
        events.publish(outgoing).await?;
    }
    Ok(count)
}
