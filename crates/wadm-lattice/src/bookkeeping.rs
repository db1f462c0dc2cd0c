//! The reducer's ordering and liveness bookkeeping, kept beside the observed state.
//!
//! Events may arrive late, twice or out of order. To stay idempotent and order-tolerant the reducer
//! remembers, per host, the stamp of the newest full snapshot it applied (heartbeat, `host_started`)
//! and, per entity (a component, a provider, the labels), the stamp of the newest incremental event
//! that touched it. Lattice-wide entities (links, configs) carry stamps too, and hosts that stopped
//! or were declared lost leave a [`Tombstone`] for a bounded period so that a late event from before
//! the stop cannot bring them back.
//!
//! Stamps order events by `(event time, event id)`: times come from the emitting host's clock, the
//! id breaks ties deterministically, and a duplicate delivery carries an equal stamp.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wadm_protocol::LinkKey;

use crate::time::Timestamp;

/// The position of an event in its host's history: `(time, id)`, ordered lexicographically.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventStamp {
    /// The event's own time (ms since the epoch, from the emitting host's clock).
    pub time: Timestamp,
    /// The event id (CloudEvent `id`): a deterministic tie-break between events of the same ms.
    pub id: String,
}

/// The stamp of the newest event applied to one entity, and when (wadm's clock) it was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Where the event stands in its host's history.
    pub stamp: EventStamp,
    /// wadm's clock when the event was applied: lets discovery tell facts learnt during a
    /// discovery round from older ones, and bounds how long removal marks are kept.
    pub applied_at: Timestamp,
}

/// Something on a host that events change one at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HostEntity {
    /// The host's label set (changed as a whole).
    Labels,
    /// A component on the host, by component id.
    Component(String),
    /// A provider on the host, by provider id.
    Provider(String),
}

/// Per-host ordering state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClock {
    /// The newest full snapshot (heartbeat or `host_started`) applied.
    pub snapshot: Option<EventStamp>,
    /// wadm's clock when that snapshot was applied: a discovery answer gathered from a round
    /// that started before it is older than the snapshot and does not replace it.
    #[serde(default)]
    pub snapshot_at: Timestamp,
    /// Newest incremental event per entity, newer than `snapshot` (older marks are pruned when a
    /// snapshot is applied: the snapshot already reflects them).
    #[serde(default)]
    pub entities: BTreeMap<HostEntity, Mark>,
}

impl HostClock {
    /// The newest stamp known for this host.
    pub fn newest(&self) -> Option<&EventStamp> {
        let entities = self.entities.values().map(|m| &m.stamp);
        self.snapshot.iter().chain(entities).max()
    }
}

/// Why a host left the observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalReason {
    /// The host announced `host_stopped`: its id never comes back.
    Stopped,
    /// The host's lease ran out: a newer event from it proves it alive again.
    Lost,
}

/// A host that left, remembered for a bounded period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Whether the host stopped or was lost: decides which late events may revive it.
    pub reason: RemovalReason,
    /// Events at or before this stamp are stale. For a stopped host every event is ignored.
    pub as_of: Option<EventStamp>,
    /// wadm's clock when the host was removed (drives retention and discovery races).
    pub removed_at: Timestamp,
    /// When wadm had last heard from the host before removing it (diagnostics: a lost host's
    /// lease ran from here).
    #[serde(default)]
    pub last_seen: Timestamp,
}

/// Everything the reducer remembers beyond the observed state itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookkeeping {
    /// Per-host ordering state, by host id.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostClock>,
    /// Hosts that left recently, by host id.
    #[serde(default)]
    pub tombstones: BTreeMap<String, Tombstone>,
    /// The newest event applied to each link.
    #[serde(default)]
    pub links: BTreeMap<LinkKey, Mark>,
    /// The newest event applied to each config, by name.
    #[serde(default)]
    pub configs: BTreeMap<String, Mark>,
    /// Events of a type wadm does not know, skipped.
    #[serde(default)]
    pub unknown_events: u64,
    /// Events skipped as stale or duplicate.
    #[serde(default)]
    pub stale_events: u64,
}
