//! Which replica works off which lattice's events. Replicas announce themselves ([`Presence`],
//! every [`PRESENCE_EVERY`], and at once when one joins or leaves); each lattice belongs to the
//! live replica that manages it with the highest rendezvous score of (replica, lattice). Only the
//! owner pulls the lattice's event consumer; the others stand by and take over when the owner's
//! presence runs out. So lattices spread over the replicas, each replica works off its own
//! lattices' backlogs in parallel, and a replica that joins or leaves moves only the lattices it
//! wins or held.
//!
//! Pure: time is an argument; peers are kept in a `BTreeMap`, so nothing depends on hash order.
//! Views may differ for a moment (a presence not yet heard): two replicas may then both pull,
//! and the event consumer's pin still gives the lattice to one of them at a time.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wadm_lattice::Timestamp;

/// How often a replica announces itself.
pub(crate) const PRESENCE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// A replica not heard from for this long is gone (four missed announcements).
pub(crate) const PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// What a replica announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Presence {
    pub replica: String,
    /// The lattices it manages.
    pub lattices: BTreeSet<String>,
    /// It is stopping: its lattices go to the others now, not when its presence runs out.
    #[serde(default)]
    pub leaving: bool,
    /// It just started: the others announce themselves at once, so it knows who is there before
    /// it pulls anything.
    #[serde(default)]
    pub joining: bool,
}

#[derive(Debug, Clone)]
struct Peer {
    lattices: BTreeSet<String>,
    heard_at: Timestamp,
}

/// One replica's view of the live replicas and who owns which lattice.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    me: String,
    lattices: BTreeSet<String>,
    ttl_ms: u64,
    peers: BTreeMap<String, Peer>,
    /// Each lattice any live replica manages → its owner; derived from the above.
    owners: BTreeMap<String, String>,
}

impl Membership {
    /// `me` manages `lattices`; peers not heard from for `ttl` are gone.
    pub(crate) fn new(
        me: impl Into<String>,
        lattices: impl IntoIterator<Item = String>,
        ttl: std::time::Duration,
    ) -> Self {
        let mut m = Self {
            me: me.into(),
            lattices: lattices.into_iter().collect(),
            ttl_ms: ttl.as_millis() as u64,
            peers: BTreeMap::new(),
            owners: BTreeMap::new(),
        };
        m.assign();
        m
    }

    #[cfg(test)]
    /// This replica's name.
    pub(crate) fn me(&self) -> &str {
        &self.me
    }

    /// What this replica announces.
    pub(crate) fn presence(&self) -> Presence {
        Presence {
            replica: self.me.clone(),
            lattices: self.lattices.clone(),
            leaving: false,
            joining: false,
        }
    }

    /// Take in a peer's announcement heard at `now`. Returns whether the set of live replicas
    /// (or what they manage) changed. This replica's own announcements are ignored.
    pub(crate) fn observe(&mut self, presence: &Presence, now: Timestamp) -> bool {
        if presence.replica == self.me {
            return false;
        }
        let changed = if presence.leaving {
            self.peers.remove(&presence.replica).is_some()
        } else {
            match self.peers.get_mut(&presence.replica) {
                Some(peer) => {
                    peer.heard_at = peer.heard_at.max(now);
                    let changed = peer.lattices != presence.lattices;
                    if changed {
                        peer.lattices = presence.lattices.clone();
                    }
                    changed
                }
                None => {
                    let peer = Peer { lattices: presence.lattices.clone(), heard_at: now };
                    self.peers.insert(presence.replica.clone(), peer);
                    true
                }
            }
        };
        if changed {
            self.assign();
        }
        changed
    }

    /// Forget the replicas not heard from within the presence TTL. Returns whether any went.
    pub(crate) fn expire(&mut self, now: Timestamp) -> bool {
        let before = self.peers.len();
        let ttl = self.ttl_ms;
        self.peers.retain(|_, p| now.saturating_sub(p.heard_at) < ttl);
        let changed = self.peers.len() != before;
        if changed {
            self.assign();
        }
        changed
    }

    #[cfg(test)]
    /// When the next peer's presence runs out, if nothing is heard from it meanwhile.
    pub(crate) fn next_expiry(&self) -> Option<Timestamp> {
        self.peers.values().map(|p| p.heard_at.saturating_add(self.ttl_ms)).min()
    }

    #[cfg(test)]
    /// The live replicas (this one included), by name.
    pub(crate) fn replicas(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.me.as_str()).chain(self.peers.keys().map(String::as_str))
    }

    /// The replica that works off `lattice` (this one for a lattice no live replica manages).
    pub(crate) fn owner<'a>(&'a self, lattice: &str) -> &'a str {
        self.owners.get(lattice).map_or(self.me.as_str(), String::as_str)
    }

    /// Whether this replica pulls `lattice`'s events.
    pub(crate) fn owns(&self, lattice: &str) -> bool {
        self.owner(lattice) == self.me
    }

    /// Rendezvous hashing with bounded loads: in name order, each lattice goes to the replica
    /// with the highest score among those that manage it and own fewer than
    /// ⌈lattices ÷ replicas⌉ so far (all full: the highest score). So 3 lattices on 3 replicas
    /// are one each (plain rendezvous would often give one replica two), and a replica that
    /// joins or leaves moves few lattices. Every replica with the same view computes the same.
    fn assign(&mut self) {
        let mut managed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for l in &self.lattices {
            managed.entry(l).or_default().push(&self.me);
        }
        for (name, peer) in &self.peers {
            for l in &peer.lattices {
                managed.entry(l).or_default().push(name);
            }
        }
        let replicas = 1 + self.peers.len();
        let cap = managed.len().div_ceil(replicas).max(1);
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for (lattice, candidates) in managed {
            let rank = |name: &str| (score(name, lattice), std::cmp::Reverse(name.to_string()));
            let open = candidates.iter().filter(|n| load.get(**n).copied().unwrap_or(0) < cap);
            let best =
                open.max_by_key(|n| rank(n)).or_else(|| candidates.iter().max_by_key(|n| rank(n)));
            if let Some(best) = best {
                *load.entry(best).or_default() += 1;
                owners.insert(lattice.to_string(), best.to_string());
            }
        }
        self.owners = owners;
    }
}

/// The rendezvous score of `replica` for `lattice`: a stable hash (FNV-1a, then a finaliser),
/// fixed for all time, so every replica computes the same owner.
fn score(replica: &str, lattice: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = replica.bytes().chain(std::iter::once(0)).chain(lattice.bytes());
    let h = bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // splitmix64's finaliser: close names spread over the whole range.
    let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TTL: std::time::Duration = PRESENCE_TTL;

    fn names(lattices: &[&str]) -> Vec<String> {
        lattices.iter().map(|l| l.to_string()).collect()
    }

    fn presence(replica: &str, lattices: &[&str]) -> Presence {
        Presence {
            replica: replica.into(),
            lattices: names(lattices).into_iter().collect(),
            leaving: false,
            joining: false,
        }
    }

    /// The views of `replicas`, each managing `lattices` and having heard all the others at 0.
    fn views(replicas: &[String], lattices: &[&str]) -> Vec<Membership> {
        replicas
            .iter()
            .map(|me| {
                let mut m = Membership::new(me.clone(), names(lattices), TTL);
                for other in replicas {
                    m.observe(&presence(other, lattices), 0);
                }
                m
            })
            .collect()
    }

    #[test]
    fn alone_a_replica_owns_every_lattice() {
        let m = Membership::new("a", names(&["default"]), TTL);
        assert!(m.owns("default") && m.owns("other"));
    }

    #[test]
    fn three_lattices_on_three_replicas_are_one_each() {
        for run in 0..50 {
            let replicas: Vec<String> = (0..3).map(|i| format!("{run}-{i}")).collect();
            let all = views(&replicas, &["a", "b", "c"]);
            for m in &all {
                let owned = ["a", "b", "c"].iter().filter(|l| m.owns(l)).count();
                assert_eq!(owned, 1, "{} owns {owned}", m.me());
            }
        }
    }

    #[test]
    fn a_silent_peer_expires_and_its_lattices_come_back() {
        let lattices = ["l0", "l1", "l2", "l3"];
        let mut m = Membership::new("a", names(&lattices), TTL);
        assert!(m.observe(&presence("b", &lattices), 1_000));
        assert!(!m.observe(&presence("b", &lattices), 1_500), "nothing changed");
        assert_eq!(lattices.iter().filter(|l| m.owns(l)).count(), 2, "two each");
        assert_eq!(m.next_expiry(), Some(3_500));
        assert!(!m.expire(3_499));
        assert!(m.expire(3_500));
        assert!(lattices.iter().all(|l| m.owns(l)));
    }

    #[test]
    fn a_leaving_peer_hands_its_lattices_back_at_once() {
        let lattices = ["l0", "l1"];
        let mut m = Membership::new("a", names(&lattices), TTL);
        m.observe(&presence("b", &lattices), 0);
        assert!(lattices.iter().any(|l| !m.owns(l)));
        let mut leaving = presence("b", &lattices);
        leaving.leaving = true;
        assert!(m.observe(&leaving, 10));
        assert!(lattices.iter().all(|l| m.owns(l)));
    }

    #[test]
    fn a_peer_that_does_not_manage_a_lattice_never_owns_it() {
        let mut m = Membership::new("a", names(&["y"]), TTL);
        m.observe(&presence("b", &["x"]), 0);
        assert!(m.owns("y"));
        assert_eq!(m.owner("x"), "b");
    }

    #[test]
    fn own_announcements_are_ignored() {
        let mut m = Membership::new("a", names(&["x"]), TTL);
        assert!(!m.observe(&presence("a", &["x"]), 0));
        assert_eq!(m.replicas().count(), 1);
    }

    proptest! {
        /// Replicas that heard each other agree on one owner per lattice, and no replica owns
        /// more than its share, before and after one of them leaves.
        #[test]
        fn views_agree_and_loads_are_bounded(
            replicas in 1usize..6,
            lattices in 1usize..40,
            leaving in 0usize..6,
            salt in 0u32..1000,
        ) {
            let names: Vec<String> = (0..replicas).map(|i| format!("r{i}-{salt}")).collect();
            let ls: Vec<String> = (0..lattices).map(|i| format!("lattice-{i}")).collect();
            let refs: Vec<&str> = ls.iter().map(String::as_str).collect();
            let mut all = views(&names, &refs);
            for round in 0..2 {
                let cap = lattices.div_ceil(all.len());
                for l in &refs {
                    let owners: BTreeSet<&str> = all.iter().map(|m| m.owner(l)).collect();
                    prop_assert_eq!(owners.len(), 1, "round {}: one owner for {}", round, l);
                    prop_assert_eq!(all.iter().filter(|m| m.owns(l)).count(), 1);
                }
                for m in &all {
                    let owned = refs.iter().filter(|l| m.owns(l)).count();
                    prop_assert!(owned <= cap, "{} owns {} > {}", m.me(), owned, cap);
                }
                if all.len() == 1 {
                    break;
                }
                let gone = all.remove(leaving % all.len()).me().to_string();
                let mut bye = presence(&gone, &refs);
                bye.leaving = true;
                for m in &mut all {
                    m.observe(&bye, 1);
                }
            }
        }
    }
}
