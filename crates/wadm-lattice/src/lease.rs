//! Host leases: a host not heard from within its lease is declared lost at that instant.
//!
//! The lease runs from [`HostState::last_seen`](crate::state::HostState) (wadm's clock when it last
//! heard from the host). [`expire`] removes every host whose lease has run out, exactly like a
//! `host_stopped` would, and prunes bookkeeping older than the retention period. A reported stop
//! ([`HostState::stop_reported_at`](crate::state::HostState)) that nothing contradicted within
//! [`STOP_CONFIRM_MS`] is taken as true at that instant.

use crate::bookkeeping::{HostEntity, RemovalReason};
use crate::changes::{Changes, Marked};
use crate::reducer::remove_host;
use crate::state::{LatticeState, Timestamp};

/// How long a reported stop waits for the host's confirmation (its silence when asked) or
/// contradiction (an answer, a heartbeat) before it is taken as true.
pub const STOP_CONFIRM_MS: u64 = 5_000;

/// Lease and retention settings, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The hosts' heartbeat interval (wasmCloud's default: 30 s).
    pub heartbeat_interval_ms: u64,
    /// Extra time on top of two intervals before a silent host is lost.
    pub slack_ms: u64,
    /// How long tombstones and removal marks are kept to reject late events.
    pub retention_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self { heartbeat_interval_ms: 30_000, slack_ms: 10_000, retention_ms: 10 * 60_000 }
    }
}

impl LeaseConfig {
    /// How long a host may stay silent: two heartbeat intervals plus the slack.
    pub fn lease_ms(&self) -> u64 {
        self.heartbeat_interval_ms.saturating_mul(2).saturating_add(self.slack_ms)
    }
}

/// Declare lost every host whose lease ran out at `now` (`now >= last_seen + lease`), and forget
/// tombstones and removal marks older than the retention period.
pub fn expire(state: &mut LatticeState, now: Timestamp, config: &LeaseConfig) -> Changes {
    let lease = config.lease_ms();
    let lost: Vec<String> = state
        .hosts
        .values()
        .filter(|h| now >= h.last_seen.saturating_add(lease))
        .map(|h| h.id.clone())
        .collect();
    let mut changes = Changes::default();
    for host in lost {
        remove_host(state, &host, RemovalReason::Lost, None, now, &mut changes);
    }
    let stopped: Vec<String> = state
        .hosts
        .values()
        .filter(|h| {
            h.stop_reported.as_ref().is_some_and(|r| now >= r.at.saturating_add(STOP_CONFIRM_MS))
        })
        .map(|h| h.id.clone())
        .collect();
    for host in stopped {
        changes.merge(confirm_stop(state, &host, now));
    }
    let retention = config.retention_ms;
    let keep = |at: Timestamp| now < at.saturating_add(retention);
    let book = &mut state.bookkeeping;
    book.tombstones.retain(|host, t| {
        let kept = keep(t.removed_at);
        if !kept {
            changes.forgotten_tombstones.insert(host.clone());
        }
        kept
    });
    let marked = &mut changes.marked;
    book.links.retain(|key, m| {
        let kept = state.links.contains_key(key) || keep(m.applied_at);
        if !kept {
            marked.insert(Marked::Link { link: key.clone() });
        }
        kept
    });
    book.configs.retain(|name, m| {
        let kept = state.configs.contains_key(name) || keep(m.applied_at);
        if !kept {
            marked.insert(Marked::Config { name: name.clone() });
        }
        kept
    });
    for (host_id, clock) in book.hosts.iter_mut() {
        let Some(host) = state.hosts.get(host_id) else { continue };
        clock.entities.retain(|entity, m| {
            let present = match entity {
                HostEntity::Labels => true,
                HostEntity::Component(id) => host.components.contains_key(id),
                HostEntity::Provider(id) => host.providers.contains_key(id),
            };
            let kept = present || keep(m.applied_at);
            if !kept {
                let entity = entity.clone();
                marked.insert(Marked::Host { host: host_id.clone(), entity });
            }
            kept
        });
    }
    changes
}

/// The earliest instant at which some host's lease runs out (or its reported stop is taken as
/// true), if any host is known.
pub fn next_expiry(state: &LatticeState, config: &LeaseConfig) -> Option<Timestamp> {
    let lease = config.lease_ms();
    let leases = state.hosts.values().map(|h| h.last_seen.saturating_add(lease));
    let stops = state.hosts.values().filter_map(|h| h.stop_reported.as_ref().map(|r| r.at));
    leases.chain(stops.map(|at| at.saturating_add(STOP_CONFIRM_MS))).min()
}

/// Take `host_id`'s reported stop as true at `now`: the host fell silent when asked. The host and
/// everything on it are removed as a `host_stopped` removes them, with a tombstone.
pub fn confirm_stop(state: &mut LatticeState, host_id: &str, now: Timestamp) -> Changes {
    let mut changes = Changes::default();
    if let Some(report) = state.hosts.get(host_id).and_then(|h| h.stop_reported.clone()) {
        let stamp = Some(report.stamp);
        remove_host(state, host_id, RemovalReason::Stopped, stamp, now, &mut changes);
    }
    changes
}

/// Restart every host's lease at `now`: after state is read back from storage, hosts get a full
/// lease to be heard from (or re-discovered) before they are declared lost.
pub fn refresh_leases(state: &mut LatticeState, now: Timestamp) {
    for host in state.hosts.values_mut() {
        host.last_seen = host.last_seen.max(now);
    }
}
