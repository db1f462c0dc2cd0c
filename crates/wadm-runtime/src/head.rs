//! The per-lattice head: everything a step needs besides observed state (applications as
//! [`AppRecord`]s, reconciles put off, the last applied stream sequence), plus a short journal of
//! the entity keys the latest steps wrote.
//!
//! Apart from the orders in flight (none once a lattice has converged), its size depends on the
//! number of applications and on two constants, never on the number of hosts: the journal keeps the last [`JOURNAL_STEPS`] steps, each with at most
//! [`JOURNAL_KEYS_PER_STEP`] keys (a step that wrote more, a discovery round say, is recorded as
//! "too many"). A replica whose kept state is a few steps behind reads back only the keys those
//! steps wrote ([`LatticeHead::written_since`]); one further behind reads everything back.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wadm_lattice::Timestamp;
use wadm_store::observed::keys::parse_key;

use crate::discovery::first_round::Observing;
use crate::intents::Intents;
use crate::safety::Safety;

/// Steps the journal remembers.
pub(crate) const JOURNAL_STEPS: usize = 32;
/// Keys remembered per step; a step that wrote more is remembered as "too many".
pub(crate) const JOURNAL_KEYS_PER_STEP: usize = 64;

/// One lattice's head, as stored (JSON) under `head.{lattice}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeHead {
    /// Applications the runtime manages (deployed, or undeployed with leftovers to remove).
    #[serde(default)]
    pub apps: BTreeMap<String, AppRecord>,
    /// Stream sequence of the newest event applied.
    #[serde(default)]
    pub last_sequence: u64,
    /// The writing replica's clock.
    #[serde(default)]
    pub updated_at: Timestamp,
    /// Steps committed so far (one more per head write).
    #[serde(default)]
    pub step: u64,
    /// What the latest steps wrote, oldest first.
    #[serde(default)]
    pub journal: Vec<Written>,
    /// Reconciles put off while events were queued.
    #[serde(default)]
    pub deferred: Deferred,
    /// How complete observed state is (see [`crate::discovery::first_round`]).
    #[serde(default)]
    pub observing: Observing,
    /// The orders in flight (see [`crate::intents`]): bounded by the commands of a deploy,
    /// empty in a converged lattice.
    #[serde(default)]
    pub intents: Intents,
    /// What the stream recorded lately: when it last stored an event (leases over a silence).
    #[serde(default, skip_serializing_if = "crate::recording::Recording::is_empty")]
    pub recording: crate::recording::Recording,
    /// Workloads of hosts that left, waiting for a replacement (see `LatticeRecord::replacing`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replacing: BTreeMap<String, Timestamp>,
    /// Orphans marked, waiting for their grace period (see `LatticeRecord::orphans`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub orphans: wadm_scheduler::orphans::OrphanMarks,
    /// Orphan removals wait for a discovery round merged after this (see
    /// `LatticeRecord::orphans_held`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans_held: Option<Timestamp>,
    /// Hosts failing placements, and those avoided (see `LatticeRecord::bad_hosts`).
    #[serde(default, skip_serializing_if = "crate::bad_hosts::BadHosts::is_empty")]
    pub bad_hosts: crate::bad_hosts::BadHosts,
}

/// The entity keys one step wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub step: u64,
    /// `None`: more than [`JOURNAL_KEYS_PER_STEP`] keys.
    pub keys: Option<Vec<String>>,
}

impl LatticeHead {
    /// Every key written by the steps after `since` up to this head, ordered so that a host comes
    /// before its components and providers; `None` when the journal does not cover them all.
    pub fn written_since(&self, since: u64) -> Option<Vec<String>> {
        if since >= self.step || self.step - since > JOURNAL_STEPS as u64 {
            return None;
        }
        let mut keys = Vec::new();
        for step in since + 1..=self.step {
            let written = self.journal.iter().find(|w| w.step == step)?;
            keys.extend(written.keys.as_ref()?.iter().cloned());
        }
        keys.sort_by_cached_key(|k| (parse_key(k).map(|(_, entity)| entity), k.clone()));
        keys.dedup();
        Some(keys)
    }
}

/// The journal after one more step (`step`) that wrote `keys`.
pub(crate) fn journal_after(previous: &[Written], step: u64, keys: Vec<String>) -> Vec<Written> {
    let keep = previous.len().min(JOURNAL_STEPS - 1);
    let mut journal = previous[previous.len() - keep..].to_vec();
    let keys = (keys.len() <= JOURNAL_KEYS_PER_STEP).then_some(keys);
    journal.push(Written { step, keys });
    journal
}

/// Reconciles put off while more events of the lattice were queued: the state they would see
/// is already outdated by the queue, so a step only notes what it affected and the first step
/// with an empty queue (or the step that reaches the bounds of
/// `RuntimeConfig::max_deferred_steps` / `max_deferred`) reconciles all of it at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    /// Every application is to be reconciled, whatever `apps` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_app: bool,
    /// The applications to reconcile when `every_app` is false.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub apps: BTreeSet<String>,
    /// Steps put off so far.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub steps: u32,
    /// When the oldest put-off step ran (the handling replica's clock).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: Timestamp,
}

impl Deferred {
    /// Whether nothing is put off.
    pub fn is_empty(&self) -> bool {
        !self.every_app && self.apps.is_empty()
    }
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the runtime knows of one application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The manifest store's deploy generation.
    pub store_generation: u64,
    /// The deployed version (`None`: undeployed).
    pub deployed_version: Option<String>,
    /// The last version that was deployed (to recognise what an undeployed app owned).
    pub last_version: Option<String>,
    /// The version deployed before the current one, while the current one differs from it: its
    /// spec lets the scheduler attribute (and remove) what the new version dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// Failure backoff of the current generation.
    pub failure: Option<Failure>,
    /// When its scalers asked to be evaluated again although nothing changes (a rollout waiting
    /// for `min_healthy_time`): a timer step reconciles it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
    /// The deployment was promoted past its rollouts' canary stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promoted: bool,
    /// Its last plan could not place everything for want of declared host capacity: what it
    /// places next is classified `capacity` in allocation events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub short_of_capacity: bool,
    /// Batches of the current deployment's rollout noted in the history as done.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub rollout_batches: u32,
    /// Rollout safety of the current generation: the last stable version, the revert decided,
    /// the revert that made this deployment (see [`crate::revert`]).
    #[serde(default, skip_serializing_if = "Safety::is_empty")]
    pub safety: Safety,
}

impl AppRecord {
    /// The runtime generation: `2 × store generation`, plus one once undeployed. It increases
    /// with every deploy and undeploy, so commands decided before either are recognisably old.
    pub fn generation(&self) -> u64 {
        runtime_generation(self.store_generation, self.deployed_version.is_some())
    }

    /// Whether commands are held back at `now` because of a recent failure.
    pub fn backing_off(&self, now: Timestamp) -> bool {
        self.failure.as_ref().is_some_and(|f| now < f.retry_at)
    }

    /// The retry round commands are issued in (part of their message ids).
    pub fn attempt(&self) -> u32 {
        self.failure.as_ref().map_or(0, |f| f.attempts)
    }
}

/// `2 × store generation + (1 if undeployed)`.
pub fn runtime_generation(store_generation: u64, deployed: bool) -> u64 {
    store_generation.saturating_mul(2).saturating_add(u64::from(!deployed))
}

/// A failure of an application's commands and when to retry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Consecutive failures in this generation.
    pub attempts: u32,
    /// No commands for the application before this instant.
    pub retry_at: Timestamp,
    /// What went wrong (shown in the status).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_after(steps: &[Vec<&str>]) -> LatticeHead {
        let mut head = LatticeHead::default();
        for keys in steps {
            head.step += 1;
            let keys = keys.iter().map(|k| k.to_string()).collect();
            head.journal = journal_after(&head.journal, head.step, keys);
        }
        head
    }

    #[test]
    fn catches_up_over_the_journal_hosts_first() {
        let head = head_after(&[vec!["l.host.A"], vec!["l.comp.B.x", "l.host.B"], vec![]]);
        assert_eq!(head.written_since(3), None, "nothing to catch up: same step");
        assert_eq!(head.written_since(2), Some(vec![]));
        let keys = head.written_since(1).unwrap();
        assert_eq!(keys, vec!["l.host.B".to_string(), "l.comp.B.x".to_string()]);
        assert_eq!(head.written_since(0).unwrap().len(), 3);
        assert_eq!(head.written_since(4), None);
    }

    #[test]
    fn the_journal_is_bounded_and_big_steps_force_a_full_read() {
        let many: Vec<String> =
            (0..=JOURNAL_KEYS_PER_STEP).map(|i| format!("l.host.H{i}")).collect();
        let mut head = LatticeHead::default();
        for step in 1..=100u64 {
            head.step = step;
            let keys = if step == 90 { many.clone() } else { vec![format!("l.host.H{step}")] };
            head.journal = journal_after(&head.journal, step, keys);
        }
        assert_eq!(head.journal.len(), JOURNAL_STEPS);
        assert!(head.written_since(90).is_some());
        assert_eq!(head.written_since(89), None, "step 90 wrote too many keys to remember");
        assert_eq!(head.written_since(100 - JOURNAL_STEPS as u64 - 1), None, "too far behind");
    }
}
