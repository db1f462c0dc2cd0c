//! Acting on a complete picture of a lattice whose hosts ran before wadm saw them start.
//!
//! Hosts that started before the event stream existed never had their `host_started` captured:
//! wadm learns them one by one, from heartbeats and from the discovery round every replica runs
//! at start-up. Placing on the hosts known so far piles instances on them (a host first ran two
//! instances where its share is one) and moves them again as the others appear. Acting before
//! any host is known is no better: commands that need no particular host (a link put) are
//! answered by a host wadm does not know yet, whose event about it is then not applied. So while
//! no complete discovery round has been merged since the lattice's state began, and the state
//! either knows no host or has learnt one from anything but its `host_started` (others may be
//! running unseen), its reconciles are held: steps apply their events and note what they
//! affected in the head ([`crate::record::Deferred`]); the round's last part then reconciles
//! everything at once.
//!
//! The hold is bounded: it ends `RuntimeConfig::first_round_wait` after the state's first step,
//! whether a round came or not (a round that failed cannot block a lattice forever). A state
//! whose hosts were all seen starting (the usual start: wadm first, then hosts) is never held,
//! nor one written before this existed (unknown beginning). Hosts that start later announce
//! themselves and are used as usual.
//!
//! Every replica runs a round at start-up, so more rounds follow the first; their answers were
//! taken before the commands the first one led to ran. A round that started before the last
//! complete round was merged is skipped ([`round_outdated`]): what it knows, the merged round and
//! the events since already told. (Event marks are stored with their entities, so a replica that
//! read the state back keeps facts learnt during a round like the writer would; but a newer
//! heartbeat supersedes marks, and an old round would then override that heartbeat.)

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wadm_lattice::Timestamp;

/// How complete one lattice's observed state is, kept in its head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observing {
    /// The handling replica's clock at the state's first step (`0`: unknown, a head written
    /// before this was recorded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: Timestamp,
    /// A host was learnt from something other than its `host_started`: it ran before wadm saw
    /// it start, and others may still be running unseen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unannounced_hosts: bool,
    /// A complete discovery round was merged since the state began.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discovered: bool,
    /// When the last complete round was merged (the merging replica's clock; `0`: never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round_merged_at: Timestamp,
}

fn is_zero(n: &Timestamp) -> bool {
    *n == 0
}

/// Whether a discovery round (or part) that started at `started_at` is older than the last
/// complete round merged: every replica runs a round at start-up, and the later ones' answers
/// were taken before the commands the first one led to ran. Merging them would take back what
/// events applied since whose marks a newer heartbeat has superseded (a merge keeps only facts
/// whose marks it still has). What such a round knows, the merged round and the events since
/// already told: it is skipped.
pub fn round_outdated(observing: &Observing, started_at: Timestamp) -> bool {
    started_at < observing.round_merged_at
}

impl Observing {
    /// Whether reconciles wait at `now` for the first complete discovery round (at most `wait`
    /// after the state began), with `hosts_known` hosts in observed state.
    pub fn holds_reconciles(&self, now: Timestamp, wait: Duration, hosts_known: usize) -> bool {
        let wait = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let partial = self.unannounced_hosts || hosts_known == 0;
        partial && !self.discovered && self.since > 0 && now < self.since.saturating_add(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn holds_a_partial_picture_before_a_round_within_the_wait() {
        let held = Observing { since: 1_000, unannounced_hosts: true, ..Observing::default() };
        assert!(held.holds_reconciles(1_000, WAIT, 2));
        assert!(held.holds_reconciles(30_999, WAIT, 2));
        assert!(!held.holds_reconciles(31_000, WAIT, 2), "bounded");
        let announced = Observing { unannounced_hosts: false, ..held.clone() };
        assert!(!announced.holds_reconciles(1_000, WAIT, 2), "every host seen starting");
        assert!(announced.holds_reconciles(1_000, WAIT, 0), "no host known yet");
        let discovered = Observing { discovered: true, ..held.clone() };
        assert!(!discovered.holds_reconciles(1_000, WAIT, 0), "a round completed");
        let old_head = Observing { since: 0, ..held };
        assert!(!old_head.holds_reconciles(1_000, WAIT, 0), "unknown beginning");
    }

    #[test]
    fn rounds_started_before_the_last_merge_are_outdated() {
        let merged = Observing { round_merged_at: 5_000, ..Observing::default() };
        assert!(round_outdated(&merged, 4_999));
        assert!(!round_outdated(&merged, 5_000));
        assert!(!round_outdated(&Observing::default(), 0), "no round merged yet");
    }
}
