//! Rollout safety as the lattice head keeps it per application: the last stable version, the
//! rollout policy, hosts ordered the new image and the revert decided. The decisions over it are
//! in [`crate::revert`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wadm_lattice::Timestamp;
use wadm_model::Application;

/// An application's rollout safety, kept in its [`AppRecord`](crate::record::AppRecord).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Safety {
    /// The last version that became stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// The rollout policy of the deployed version.
    #[serde(default, skip_serializing_if = "Policy::is_none")]
    pub policy: Policy,
    /// The rollout start of this generation was recorded in the history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noted: bool,
    /// The revert decided in this generation (to this version, why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Decision>,
    /// The revert that made this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<wadm_store::manifest::Reverted>,
    /// Hosts ordered the new image in this generation and not healthy yet, by
    /// `host/component`, with when the first order went out (`healthy_deadline` counts from it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ordered: BTreeMap<String, Ordered>,
}

impl Safety {
    /// Whether nothing is recorded (nothing to store).
    pub fn is_empty(&self) -> bool {
        *self == Safety::default()
    }

    /// What of it a new deploy generation keeps: the stable version (and, when the store says
    /// the generation is a revert, that revert).
    pub fn next_generation(&self, reverted: Option<wadm_store::manifest::Reverted>) -> Safety {
        Safety { stable: self.stable.clone(), reverted, ..Safety::default() }
    }

    /// When a host ordered the new image runs out of `healthy_deadline`.
    pub fn due_at(&self) -> Option<Timestamp> {
        let deadline = self.policy.healthy_deadline_ms?;
        if self.revert.is_some() {
            return None;
        }
        let pending = self.ordered.values().filter(|o| !o.late);
        pending.map(|o| o.at.saturating_add(deadline)).min()
    }
}

/// A decided revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The version deployed again.
    pub to: String,
    /// What failed, where.
    pub reason: String,
}

/// One host ordered the new image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordered {
    /// The host the new image was ordered on.
    pub host: String,
    /// The component updated.
    pub component: String,
    /// The new image.
    pub image: String,
    /// When the first order went out (ms since the epoch): `healthy_deadline` counts from it.
    pub at: Timestamp,
    /// Its deadline ran out and that was reported (once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// The rollout policy of a deployed version, as far as safety goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Some component has a `rollout` trait.
    #[serde(default)]
    pub rollout: bool,
    /// Some rollout has `auto_revert: true`.
    #[serde(default)]
    pub auto_revert: bool,
    /// The shortest `healthy_deadline` of its rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_deadline_ms: Option<u64>,
    /// The longest `min_healthy_time` of its rollouts.
    #[serde(default)]
    pub min_healthy_time_ms: u64,
}

impl Policy {
    /// Whether no component has a `rollout` trait (no safety to watch).
    pub fn is_none(&self) -> bool {
        !self.rollout
    }

    /// The policy of `app`'s rollout traits.
    pub fn of(app: &Application) -> Policy {
        let mut policy = Policy::default();
        for r in app.components.iter().filter_map(|c| c.rollout) {
            policy.rollout = true;
            policy.auto_revert |= r.auto_revert;
            policy.min_healthy_time_ms = policy.min_healthy_time_ms.max(r.min_healthy_time_ms);
            if let Some(d) = r.healthy_deadline_ms {
                policy.healthy_deadline_ms =
                    Some(policy.healthy_deadline_ms.map_or(d, |known| known.min(d)));
            }
        }
        policy
    }
}
