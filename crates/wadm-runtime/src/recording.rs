//! Leases count only time the event stream was recording. While the stream records nothing (no
//! leader during a JetStream election, a store outage), heartbeats are lost with everything
//! else; the first tick after it would expire every host and the first host heard again would
//! get every instance. A replica that failed to publish says so once it can again
//! (`unrecorded`, with when its failures began); when the stream shows a silence longer than a
//! live lattice ever has (one heartbeat interval) around that time, the hosts' leases restart
//! from the end of the silence. Hosts that died meanwhile are lost one lease later. With every
//! replica down nobody reports, so a host that died while wadm was down gets no fresh lease.

use serde::{Deserialize, Serialize};
use wadm_lattice::{Change, Changes, LatticeState, Timestamp};

/// What the stream recorded lately, as the head keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// When the stream stored the newest event applied.
    #[serde(default)]
    pub last_stored_at: Timestamp,
    /// The latest silence longer than a heartbeat interval: from the event before it to the
    /// event that ended it (stream times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_silence: Option<(Timestamp, Timestamp)>,
}

impl Recording {
    /// Nothing noted yet.
    pub fn is_empty(&self) -> bool {
        *self == Recording::default()
    }

    /// The stream stored an event at `at`; a silence before it longer than `longest_quiet_ms`
    /// (what a live lattice never exceeds) is remembered.
    pub fn note_stored(&mut self, at: Timestamp, longest_quiet_ms: u64) {
        if self.last_stored_at > 0 && at > self.last_stored_at.saturating_add(longest_quiet_ms) {
            self.last_silence = Some((self.last_stored_at, at));
        }
        self.last_stored_at = self.last_stored_at.max(at);
    }

    /// When the stream recorded again after the silence during which a replica's publishes
    /// began failing at `since`, if there was such a silence.
    pub fn resumed_after(&self, since: Timestamp) -> Option<Timestamp> {
        let (from, to) = self.last_silence?;
        (from <= since && since <= to).then_some(to)
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
    fn a_long_silence_around_the_failures_restarts_leases() {
        let mut r = Recording::default();
        for at in [1_000, 1_500, 2_000] {
            r.note_stored(at, 1_000);
        }
        assert_eq!(r.last_silence, None, "normal spacing is no silence");
        r.note_stored(6_600, 1_000);
        assert_eq!(r.last_silence, Some((2_000, 6_600)));
        assert_eq!(r.resumed_after(2_400), Some(6_600));
        assert_eq!(r.resumed_after(1_900), None, "failures before the silence");
        assert_eq!(r.resumed_after(7_000), None, "failures after it: the stream recorded");
        // Out-of-order stream times never move the mark back.
        r.note_stored(6_000, 1_000);
        assert_eq!(r.last_stored_at, 6_600);
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
