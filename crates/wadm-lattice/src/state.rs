//! The observed-state data model. All maps are `BTreeMap` so iteration order is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wadm_protocol::{Link, LinkKey, StringMap};

use crate::bookkeeping::{Bookkeeping, EventStamp};
pub use crate::time::Timestamp;

/// Everything wadm believes one lattice is running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeState {
    /// The lattice id.
    pub lattice: String,
    /// Live hosts by host id.
    pub hosts: BTreeMap<String, HostState>,
    /// Links by their lattice identity.
    pub links: BTreeMap<LinkKey, Link>,
    /// Configs known to exist, by name.
    pub configs: BTreeMap<String, ConfigState>,
    /// The reducer's ordering and liveness bookkeeping (stamps, tombstones, counters): not part of
    /// what the lattice runs. Added by the observed-state engineer; see `crate::bookkeeping`.
    #[serde(default)]
    pub bookkeeping: Bookkeeping,
}

/// One live host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The host id (its public key).
    pub id: String,
    /// The human-readable name the host chose.
    pub friendly_name: String,
    /// Labels placement requirements match against.
    pub labels: StringMap,
    /// The wasmCloud version the host runs.
    pub version: String,
    /// When wadm last heard from the host (heartbeat, start, inventory or any event it sourced).
    pub last_seen: Timestamp,
    /// When the host started, as well as wadm can tell: the earliest of every estimate heard
    /// (a `host_started` at its own time, a heartbeat or discovery answer at its time less the
    /// uptime it reports). Uptime is whole seconds, so each estimate is at or after the real
    /// start and the earliest is the best. The host's clock is evidence here, as everywhere.
    /// `None` while only incremental events were heard.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// Components running on the host, by component id.
    pub components: BTreeMap<String, ComponentInstance>,
    /// Providers running on the host, by provider id.
    pub providers: BTreeMap<String, ProviderInstance>,
    /// A `host_stopped` heard that the host has not yet confirmed by falling silent when asked.
    /// Until then the host and everything on it stay (see [`crate::lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reported: Option<StopReport>,
}

/// A `host_stopped` not yet confirmed: events are evidence, and a spoofed one must not move a
/// live host's work elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopReport {
    /// wadm's clock when it was heard.
    pub at: Timestamp,
    /// The event's stamp: only a snapshot stamped after it contradicts it.
    pub stamp: EventStamp,
}

impl HostState {
    /// How long the host has been up at `now` (ms), when its start is known.
    pub fn uptime_ms(&self, now: Timestamp) -> Option<u64> {
        self.started_at.map(|started| now.saturating_sub(started))
    }

    /// Whether the host carries every `requirements` label with exactly that value.
    pub fn matches(&self, requirements: &StringMap) -> bool {
        requirements.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// A component running on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInstance {
    /// The component id.
    pub id: String,
    /// The OCI reference (or file path) of the image the host runs.
    pub image_ref: String,
    /// The host's maximum concurrent instances (`max_instances`).
    pub count: u32,
    /// Annotations set when the component was started (wadm's ownership marks among them).
    pub annotations: StringMap,
    /// Since when (wadm's clock) the host has run this component with this `image_ref`: what
    /// rollouts' `min_healthy_time` counts from. `0`: unknown, long ago. [`NOT_CONFIRMED`]: the
    /// image is an order in flight the host has not confirmed yet (projected state only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: Timestamp,
}

/// [`ComponentInstance::since`] of an instance the host has not confirmed yet.
pub const NOT_CONFIRMED: Timestamp = Timestamp::MAX;

fn is_zero(t: &Timestamp) -> bool {
    *t == 0
}

impl ComponentInstance {
    /// `since` for this instance replacing `old` at `now`: kept while the image is the same.
    pub fn since_after(&self, old: Option<&ComponentInstance>, now: Timestamp) -> Timestamp {
        match old {
            Some(old) if old.image_ref == self.image_ref && old.since != NOT_CONFIRMED => old.since,
            _ => now,
        }
    }
}

/// A provider running on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInstance {
    /// The provider id.
    pub id: String,
    /// As the host reports it (normalised, see `wadm_protocol::normalize_provider_ref`).
    pub image_ref: String,
    /// Annotations set when the provider was started (wadm's ownership marks among them).
    pub annotations: StringMap,
    /// The last health the provider reported.
    pub health: ProviderHealth,
    /// Since when (wadm's clock) the host has run this provider with this `image_ref`, as
    /// [`ComponentInstance::since`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: Timestamp,
}

impl ProviderInstance {
    /// `since` for this instance replacing `old` at `now`: kept while the image is the same.
    pub fn since_after(&self, old: Option<&ProviderInstance>, now: Timestamp) -> Timestamp {
        match old {
            Some(old) if old.image_ref == self.image_ref && old.since != NOT_CONFIRMED => old.since,
            _ => now,
        }
    }
}

/// The last health a provider reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderHealth {
    /// No health check seen yet.
    #[default]
    Pending,
    /// The last health check passed.
    Healthy,
    /// The last health check failed.
    Unhealthy,
}

/// A config that exists in the lattice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    /// The config name.
    pub name: String,
    /// The values, when known (wadm reads them for configs it manages).
    pub values: Option<StringMap>,
}
