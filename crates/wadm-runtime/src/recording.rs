//! Leases count only time the event stream was recording. While the stream records nothing (no
//! leader during a JetStream election, a store outage), heartbeats are lost with everything
//! else; the first tick after it would expire every host and the first host heard again would
//! get every instance. A live lattice with a live wadm is never quiet for long (hosts heartbeat,
//! replicas tick), so a gap between two stored events longer than [`longest_quiet_ms`] is taken
//! as the stream not recording: the leases of hosts last heard before it restart from its end,
//! whatever event ends it. Hosts that died meanwhile are lost one lease later. Why a silence
//! alone is the evidence, not replicas' reports of failed publishes: `docs/cluster-faults.md`.

use serde::{Deserialize, Serialize};
use wadm_lattice::{Change, Changes, LatticeState, Timestamp};

/// The longest gap between two stored events of a lattice that a live wadm leaves: one host
/// heartbeat interval, or two tick periods when ticks are rarer than heartbeats.
pub(crate) fn longest_quiet_ms(heartbeat_interval_ms: u64, tick_every_ms: u64) -> u64 {
    heartbeat_interval_ms.max(tick_every_ms.saturating_mul(2))
}

/// What the stream recorded lately, as the head keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// When the stream stored the newest event applied.
    #[serde(default)]
    pub last_stored_at: Timestamp,
}

impl Recording {
    /// Nothing noted yet.
    pub fn is_empty(&self) -> bool {
        *self == Recording::default()
    }

    /// The stream stored an event at `at`. When the gap before it is longer than
    /// `longest_quiet_ms` (what a live lattice never exceeds), the stream was not recording
    /// until `at`: returned, so leases restart from it.
    pub fn note_stored(&mut self, at: Timestamp, longest_quiet_ms: u64) -> Option<Timestamp> {
        let silence =
            self.last_stored_at > 0 && at > self.last_stored_at.saturating_add(longest_quiet_ms);
        self.last_stored_at = self.last_stored_at.max(at);
        silence.then_some(at)
    }
}

/// Restart from `resumed_at` the lease of every host last heard before it (the silence is not
/// held against them); each such host's record is rewritten.
pub(crate) fn restart_leases(
    state: &mut LatticeState,
    resumed_at: Timestamp,
    changes: &mut Changes,
) {
    for host in state.hosts.values_mut() {
        if host.last_seen < resumed_at {
            host.last_seen = resumed_at;
            changes.changes.push(Change::HostUpdated { host: host.id.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gap_longer_than_a_live_lattice_leaves_is_a_silence() {
        let mut r = Recording::default();
        let quiet = longest_quiet_ms(1_000, 400);
        assert_eq!(quiet, 1_000, "heartbeats are the rarer: their interval");
        assert_eq!(longest_quiet_ms(1_000, 5_000), 10_000, "ticks are the rarer: two periods");
        for at in [1_000, 1_500, 2_000, 3_000] {
            assert_eq!(r.note_stored(at, quiet), None, "normal spacing is no silence");
        }
        assert_eq!(r.note_stored(7_600, quiet), Some(7_600), "4.6 s without an event");
        assert_eq!(r.note_stored(8_000, quiet), None, "recording again");
        // Out-of-order stream times never move the mark back, nor make a silence.
        assert_eq!(r.note_stored(6_000, quiet), None);
        assert_eq!(r.last_stored_at, 8_000);
    }

    #[test]
    fn only_hosts_heard_before_the_end_get_a_new_lease() {
        let mut state = LatticeState { lattice: "l".into(), ..LatticeState::default() };
        for (id, seen) in [("a", 1_000), ("b", 7_000)] {
            let host =
                wadm_lattice::HostState { id: id.into(), last_seen: seen, ..Default::default() };
            state.hosts.insert(id.into(), host);
        }
        let mut changes = Changes::default();
        restart_leases(&mut state, 6_600, &mut changes);
        assert_eq!(state.hosts["a"].last_seen, 6_600);
        assert_eq!(state.hosts["b"].last_seen, 7_000);
        assert_eq!(changes.changes, vec![Change::HostUpdated { host: "a".into() }]);
    }
}
