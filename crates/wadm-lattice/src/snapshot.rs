//! Applying a full picture of one host (heartbeat, `host_started`, inventory, ping answer).
//!
//! A snapshot replaces what wadm believes the host runs, except for entities that wadm learnt
//! about *after* the snapshot was taken (the caller passes those as `kept`): those stay as they are.

use std::collections::{BTreeMap, BTreeSet};

use wadm_protocol::{Host, HostInventory, StringMap, normalize_provider_ref};

use crate::bookkeeping::HostEntity;
use crate::changes::{Change, Changes};
use crate::state::{
    ComponentInstance, HostState, LatticeState, ProviderHealth, ProviderInstance, Timestamp,
};

/// What a snapshot says about a host. `inventory: None` means "the host exists, contents unknown".
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub friendly_name: String,
    pub labels: StringMap,
    pub version: String,
    pub inventory: Option<Inventory>,
    /// When the snapshot says the host started (see [`HostState::started_at`]).
    pub started_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Inventory {
    pub components: BTreeMap<String, ComponentInstance>,
    pub providers: BTreeMap<String, ProviderInstance>,
}

impl Snapshot {
    pub(crate) fn from_inventory(inv: &HostInventory) -> Self {
        let components = inv
            .components
            .iter()
            .filter(|c| c.max_instances > 0)
            .map(|c| {
                let instance = ComponentInstance {
                    id: c.id.clone(),
                    image_ref: c.image_ref.clone(),
                    count: c.max_instances,
                    annotations: c.annotations.clone(),
                    since: 0,
                };
                (c.id.clone(), instance)
            })
            .collect();
        let providers = inv
            .providers
            .iter()
            .map(|p| {
                let instance = ProviderInstance {
                    id: p.id.clone(),
                    image_ref: normalize_provider_ref(&p.image_ref).to_string(),
                    annotations: p.annotations.clone(),
                    health: ProviderHealth::Pending,
                    since: 0,
                };
                (p.id.clone(), instance)
            })
            .collect();
        Self {
            friendly_name: inv.friendly_name.clone(),
            labels: inv.labels.clone(),
            version: inv.version.clone(),
            inventory: Some(Inventory { components, providers }),
            started_at: None,
        }
    }

    /// This snapshot, saying the host started `uptime_seconds` before `at`.
    pub(crate) fn up_since(mut self, at: Timestamp, uptime_seconds: u64) -> Self {
        self.started_at = Some(at.saturating_sub(uptime_seconds.saturating_mul(1_000)));
        self
    }

    /// A freshly started host runs nothing.
    pub(crate) fn started(friendly_name: &str, labels: &StringMap, version: &str) -> Self {
        Self {
            friendly_name: friendly_name.to_string(),
            labels: labels.clone(),
            version: version.to_string(),
            inventory: Some(Inventory::default()),
            started_at: None,
        }
    }

    pub(crate) fn from_ping(host: &Host) -> Self {
        Self {
            friendly_name: host.friendly_name.clone(),
            labels: host.labels.clone(),
            version: host.version.clone(),
            inventory: None,
            started_at: None,
        }
    }
}

/// The host, created as an empty placeholder (and reported) when wadm did not know it.
pub(crate) fn ensure_host<'a>(
    state: &'a mut LatticeState,
    host_id: &str,
    now: Timestamp,
    changes: &mut Changes,
) -> &'a mut HostState {
    if !state.hosts.contains_key(host_id) {
        changes.push(Change::HostAdded { host: host_id.to_string() });
        let host = HostState { id: host_id.to_string(), last_seen: now, ..HostState::default() };
        state.hosts.insert(host_id.to_string(), host);
    }
    state.hosts.get_mut(host_id).expect("inserted above")
}

/// Take `started_at` as evidence of when a known host started: it becomes the host's start
/// when earlier than what was known (a change to write). A host's start does not change while
/// it runs, so any snapshot is evidence of it, a stale one included: taking the earliest makes
/// the result independent of the order in which snapshots arrive. An unknown host is left alone
/// (its first snapshot creates it with this start).
pub(crate) fn note_started(
    state: &mut LatticeState,
    host_id: &str,
    started_at: Timestamp,
    changes: &mut Changes,
) {
    let Some(host) = state.hosts.get_mut(host_id) else { return };
    if host.started_at.is_none_or(|known| started_at < known) {
        host.started_at = Some(started_at);
        changes.push(Change::HostUpdated { host: host_id.to_string() });
    }
}

/// Apply `snap` to the host, leaving the `kept` entities alone.
pub(crate) fn apply_snapshot(
    state: &mut LatticeState,
    host_id: &str,
    snap: Snapshot,
    kept: &BTreeSet<HostEntity>,
    now: Timestamp,
    changes: &mut Changes,
) {
    let created = !state.hosts.contains_key(host_id);
    if let Some(started_at) = snap.started_at {
        note_started(state, host_id, started_at, changes);
    }
    let host = ensure_host(state, host_id, now, changes);
    if created {
        host.started_at = snap.started_at;
    }
    host.last_seen = host.last_seen.max(now);
    if host.friendly_name != snap.friendly_name || host.version != snap.version {
        host.friendly_name = snap.friendly_name;
        host.version = snap.version;
        if !created {
            changes.push(Change::HostUpdated { host: host_id.to_string() });
        }
    }
    if !kept.contains(&HostEntity::Labels) && host.labels != snap.labels {
        host.labels = snap.labels;
        if !created {
            changes.push(Change::HostLabelsChanged { host: host_id.to_string() });
        }
    }
    let Some(inventory) = snap.inventory else { return };

    let ids: BTreeSet<String> =
        host.components.keys().chain(inventory.components.keys()).cloned().collect();
    for id in ids {
        if kept.contains(&HostEntity::Component(id.clone())) {
            continue;
        }
        let old = host.components.get(&id);
        let new = inventory
            .components
            .get(&id)
            .map(|new| ComponentInstance { since: new.since_after(old, now), ..new.clone() });
        if old == new.as_ref() {
            continue;
        }
        if let Some(old) = old {
            changes.touch_app(&old.annotations);
        }
        match new {
            Some(new) => {
                changes.touch_app(&new.annotations);
                host.components.insert(id.clone(), new);
                changes.push(Change::ComponentSet { host: host_id.to_string(), component: id });
            }
            None => {
                host.components.remove(&id);
                changes.push(Change::ComponentRemoved { host: host_id.to_string(), component: id });
            }
        }
    }

    let ids: BTreeSet<String> =
        host.providers.keys().chain(inventory.providers.keys()).cloned().collect();
    for id in ids {
        if kept.contains(&HostEntity::Provider(id.clone())) {
            continue;
        }
        let old = host.providers.get(&id);
        // Health is not in inventories: carry over what events said.
        let new = inventory.providers.get(&id).map(|p| ProviderInstance {
            health: old.map_or(ProviderHealth::Pending, |o| o.health),
            since: p.since_after(old, now),
            ..p.clone()
        });
        if old == new.as_ref() {
            continue;
        }
        if let Some(old) = old {
            changes.touch_app(&old.annotations);
        }
        match new {
            Some(new) => {
                changes.touch_app(&new.annotations);
                host.providers.insert(id.clone(), new);
                changes.push(Change::ProviderSet { host: host_id.to_string(), provider: id });
            }
            None => {
                host.providers.remove(&id);
                changes.push(Change::ProviderRemoved { host: host_id.to_string(), provider: id });
            }
        }
    }
}
