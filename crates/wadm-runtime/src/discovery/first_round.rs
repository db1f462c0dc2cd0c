//! Acting on a complete picture of a lattice whose hosts ran before wadm saw them start.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `first_round`.

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
