//! Merging what a discovery round learnt by *asking* the lattice (host ping, inventories, links,
//! configs) into the observed state.
//!
//! Answers are current facts as of the round, so they override what events said earlier. Facts
//! learnt from events *during* the round (applied at or after [`Discovery::started_at`], wadm's
//! clock) are newer than the answers and are kept, as is a host removed during the round; a host
//! whose heartbeat was applied during the round keeps that heartbeat's picture entirely, and a
//! host reported stopped during the round stays reported; one reported before it that answered
//! is alive.
//! A host that did not answer is left alone: its lease decides whether it is lost.

use std::collections::{BTreeMap, BTreeSet};

use wadm_protocol::{Host, HostInventory, Link, StringMap};

use crate::bookkeeping::HostEntity;
use crate::changes::{Change, Changes};
use crate::reducer::touch_apps_of_ids;
use crate::snapshot::{Snapshot, apply_snapshot};
use crate::state::{ConfigState, LatticeState, Timestamp};

/// One host that answered the ping, with its inventory when `host.get` answered too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredHost {
    /// The host as its ping answer describes it.
    pub host: Host,
    /// What runs on it (`None`: `host.get` did not answer in time).
    pub inventory: Option<HostInventory>,
}

/// The answers of one discovery round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// wadm's clock when the round began.
    pub started_at: Timestamp,
    /// Every host that answered the ping.
    pub hosts: Vec<DiscoveredHost>,
    /// Every link in the lattice (`link.get`), or `None` when nobody answered.
    pub links: Option<Vec<Link>>,
    /// Configs that were asked for: `Some(values)` exists, `None` answered "not found".
    /// Names that could not be asked (no answer) are absent.
    pub configs: BTreeMap<String, Option<StringMap>>,
}

impl Discovery {
    /// One host's inventory, asked for at `started_at`, as a one-host round.
    pub fn of_inventory(started_at: Timestamp, inventory: HostInventory) -> Self {
        let host = Host {
            id: inventory.host_id.clone(),
            friendly_name: inventory.friendly_name.clone(),
            labels: inventory.labels.clone(),
            version: inventory.version.clone(),
            ..Host::default()
        };
        let hosts = vec![DiscoveredHost { host, inventory: Some(inventory) }];
        Discovery { started_at, hosts, ..Discovery::default() }
    }
}

/// Merge a discovery round into the state at `now`.
pub fn merge_discovery(state: &mut LatticeState, discovery: &Discovery, now: Timestamp) -> Changes {
    let since = discovery.started_at;
    let mut changes = Changes::default();
    let mut seen = BTreeSet::new();
    for found in &discovery.hosts {
        let host_id = found.inventory.as_ref().map_or("", |i| i.host_id.as_str());
        let host_id = if found.host.id.is_empty() { host_id } else { found.host.id.as_str() };
        if host_id.is_empty() || !seen.insert(host_id.to_string()) {
            continue;
        }
        if let Some(tomb) = state.bookkeeping.tombstones.get(host_id) {
            if tomb.removed_at >= since {
                continue; // removed while the round ran: the removal is newer than the answer
            }
            state.bookkeeping.tombstones.remove(host_id);
        }
        if let Some(host) = state.hosts.get_mut(host_id)
            && let Some(report) = &host.stop_reported
        {
            if report.at >= since {
                continue; // reported stopped while the round ran: the report is newer
            }
            // It answered after its stop was reported: alive (the report was spoofed).
            host.stop_reported = None;
            changes.push(Change::HostUpdated { host: host_id.to_string() });
        }
        let mut snap = match &found.inventory {
            Some(inv) => Snapshot::from_inventory(inv).up_since(now, inv.uptime_seconds),
            None => Snapshot::from_ping(&found.host).up_since(now, found.host.uptime_seconds),
        };
        if snap.friendly_name.is_empty() {
            snap.friendly_name = found.host.friendly_name.clone();
        }
        if snap.version.is_empty() {
            snap.version = found.host.version.clone();
        }
        let clock = state.bookkeeping.hosts.entry(host_id.to_string()).or_default();
        if clock.snapshot_at >= since && state.hosts.contains_key(host_id) {
            // A heartbeat applied since the round began is at least as new as this answer.
            continue;
        }
        let kept: BTreeSet<HostEntity> = clock
            .entities
            .iter()
            .filter(|(_, m)| m.applied_at >= since)
            .map(|(e, _)| e.clone())
            .collect();
        // Older marks stay: the answer replaces what they described, but an event stamped at
        // or before one of them is older than the answer too and must stay stale when it
        // arrives late (a delayed echo of an earlier update, say).
        if found.inventory.is_none() && !state.hosts.contains_key(host_id) {
            changes.needs_inventory.insert(host_id.to_string());
        }
        apply_snapshot(state, host_id, snap, &kept, now, &mut changes);
    }
    if let Some(links) = &discovery.links {
        merge_links(state, links, since, &mut changes);
    }
    for (name, values) in &discovery.configs {
        let recent = state.bookkeeping.configs.get(name).is_some_and(|m| m.applied_at >= since);
        if recent {
            continue;
        }
        match values {
            Some(values) => {
                let config = ConfigState { name: name.clone(), values: Some(values.clone()) };
                if state.configs.get(name) != Some(&config) {
                    state.configs.insert(name.clone(), config);
                    changes.push(Change::ConfigSet { name: name.clone() });
                }
            }
            None => {
                if state.configs.remove(name).is_some() {
                    changes.push(Change::ConfigRemoved { name: name.clone() });
                }
            }
        }
    }
    changes
}

fn merge_links(state: &mut LatticeState, links: &[Link], since: Timestamp, changes: &mut Changes) {
    let answered: BTreeMap<_, _> = links.iter().map(|l| (l.key(), l)).collect();
    let keys: BTreeSet<_> = state.links.keys().chain(answered.keys()).cloned().collect();
    for key in keys {
        if state.bookkeeping.links.get(&key).is_some_and(|m| m.applied_at >= since) {
            continue;
        }
        let old = state.links.get(&key).cloned();
        let new = answered.get(&key).map(|l| (*l).clone());
        if old == new {
            continue;
        }
        for link in old.iter().chain(new.iter()) {
            touch_apps_of_ids(state, &[&link.source_id, &link.target], changes);
        }
        match new {
            Some(new) => {
                state.links.insert(key.clone(), new);
                changes.push(Change::LinkSet { link: key });
            }
            None => {
                state.links.remove(&key);
                changes.push(Change::LinkRemoved { link: key });
            }
        }
    }
}
