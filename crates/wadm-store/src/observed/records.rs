//! Translating observed state to per-key records and back (pure).
//!
//! [`writes_for`] turns one step's [`Changes`] into the key writes that bring storage in line with
//! the state: each changed entity is written if it exists in the state and deleted otherwise, so the
//! cost of a step is the number of entities it changed, never the size of the lattice.
//! [`rebuild`] reassembles a [`LatticeState`] from the records of one lattice.
//!
//! Of the reducer's bookkeeping, the records keep tombstones (`gone` keys), each host's snapshot
//! stamp and labels mark (in the host record), and the mark of every component, provider, link
//! and config with the entity itself, including removal marks of gone entities ([`marked`]).
//! Only the counters start empty after a load.

use serde::{Deserialize, Serialize};
use wadm_lattice::bookkeeping::{EventStamp, HostEntity, Mark};
use wadm_lattice::{Change, Changes, LatticeState, Marked, Timestamp};
use wadm_protocol::StringMap;

use super::StateError;
use super::keys::{EntityKey, key_of, parse_key};
use super::marked::{self, Stored};

/// The stored value of a host key (its children have keys of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's id.
    pub id: String,
    /// Its human-readable name.
    #[serde(default)]
    pub friendly_name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: StringMap,
    /// Its wasmCloud version.
    #[serde(default)]
    pub version: String,
    /// When wadm last heard from it (its lease runs from here).
    #[serde(default)]
    pub last_seen: Timestamp,
    /// When the host started (see `wadm_lattice::HostState::started_at`). Absent in older
    /// records and while unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// The stamp of the newest full snapshot (heartbeat, `host_started`) the reducer applied, so
    /// a replica that loads the state still rejects older snapshots. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<EventStamp>,
    /// wadm's clock when that snapshot was applied (discovery answers older than it are not
    /// merged over it). Absent in older records.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub snapshot_at: Timestamp,
    /// The mark of the newest `labels_changed` applied after that snapshot. Absent in older
    /// records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_mark: Option<Mark>,
    /// A `host_stopped` not yet confirmed (see `wadm_lattice::StopReport`). Absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reported: Option<wadm_lattice::StopReport>,
}

/// One write to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store `value` under `key`.
    Put {
        /// The entity's key.
        key: String,
        /// The encoded record.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The entity's key.
        key: String,
    },
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// The entities a step touched: each change's entity, plus the tombstone of every host that
/// appeared or went away, plus forgotten tombstones, plus every entity whose mark was set or
/// dropped.
pub fn entities_of(changes: &Changes) -> Vec<EntityKey> {
    let mut entities: Vec<EntityKey> = changes.changes.iter().map(entity_of).collect();
    entities.extend(changes.marked.iter().map(entity_of_mark));
    for change in &changes.changes {
        if let Change::HostAdded { host } | Change::HostRemoved { host, .. } = change {
            entities.push(EntityKey::Gone { host: host.clone() });
        }
    }
    let forgotten = changes.forgotten_tombstones.iter().cloned();
    entities.extend(forgotten.map(|host| EntityKey::Gone { host }));
    entities.sort();
    entities.dedup();
    entities
}

/// The entity a change is about.
pub fn entity_of(change: &Change) -> EntityKey {
    match change {
        Change::HostAdded { host }
        | Change::HostUpdated { host }
        | Change::HostLabelsChanged { host }
        | Change::HostRemoved { host, .. } => EntityKey::Host { host: host.clone() },
        Change::ComponentSet { host, component } | Change::ComponentRemoved { host, component } => {
            EntityKey::Component { host: host.clone(), component: component.clone() }
        }
        Change::ProviderSet { host, provider } | Change::ProviderRemoved { host, provider } => {
            EntityKey::Provider { host: host.clone(), provider: provider.clone() }
        }
        Change::LinkSet { link } | Change::LinkRemoved { link } => EntityKey::Link(link.clone()),
        Change::ConfigSet { name } | Change::ConfigRemoved { name } => {
            EntityKey::Config { name: name.clone() }
        }
    }
}

/// The entity whose record keeps a mark.
pub fn entity_of_mark(marked: &Marked) -> EntityKey {
    match marked {
        Marked::Host { host, entity } => match entity {
            HostEntity::Labels => EntityKey::Host { host: host.clone() },
            HostEntity::Component(id) => {
                EntityKey::Component { host: host.clone(), component: id.clone() }
            }
            HostEntity::Provider(id) => {
                EntityKey::Provider { host: host.clone(), provider: id.clone() }
            }
        },
        Marked::Link { link } => EntityKey::Link(link.clone()),
        Marked::Config { name } => EntityKey::Config { name: name.clone() },
    }
}

/// The mark of `entity` on a host wadm knows.
fn host_mark<'a>(state: &'a LatticeState, host: &str, entity: &HostEntity) -> Option<&'a Mark> {
    state.hosts.get(host)?;
    state.bookkeeping.hosts.get(host)?.entities.get(entity)
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("observed-state records always serialise")
}

/// The current value of an entity in `state`, encoded, or `None` when it does not exist.
pub fn value_of(state: &LatticeState, entity: &EntityKey) -> Option<Vec<u8>> {
    match entity {
        EntityKey::Host { host } => state.hosts.get(host).map(|h| {
            json(&HostRecord {
                id: h.id.clone(),
                friendly_name: h.friendly_name.clone(),
                labels: h.labels.clone(),
                version: h.version.clone(),
                last_seen: h.last_seen,
                started_at: h.started_at,
                snapshot: state.bookkeeping.hosts.get(host).and_then(|c| c.snapshot.clone()),
                snapshot_at: state.bookkeeping.hosts.get(host).map_or(0, |c| c.snapshot_at),
                labels_mark: host_mark(state, host, &HostEntity::Labels).cloned(),
                stop_reported: h.stop_reported.clone(),
            })
        }),
        EntityKey::Component { host, component } => {
            let value = state.hosts.get(host).and_then(|h| h.components.get(component));
            let mark = host_mark(state, host, &HostEntity::Component(component.clone()));
            marked::encode(value, mark)
        }
        EntityKey::Provider { host, provider } => {
            let value = state.hosts.get(host).and_then(|h| h.providers.get(provider));
            let mark = host_mark(state, host, &HostEntity::Provider(provider.clone()));
            marked::encode(value, mark)
        }
        EntityKey::Link(key) => {
            marked::encode(state.links.get(key), state.bookkeeping.links.get(key))
        }
        EntityKey::Config { name } => {
            marked::encode(state.configs.get(name), state.bookkeeping.configs.get(name))
        }
        EntityKey::Gone { host } => state.bookkeeping.tombstones.get(host).map(json),
    }
}

/// The writes that bring storage in line with `state` for the entities in `changes`.
pub fn writes_for(state: &LatticeState, changes: &Changes) -> Vec<Write> {
    entities_of(changes)
        .into_iter()
        .map(|entity| {
            let key = key_of(&state.lattice, &entity);
            match value_of(state, &entity) {
                Some(value) => Write::Put { key, value },
                None => Write::Delete { key },
            }
        })
        .collect()
}

/// Every write needed to store `state` from scratch.
pub fn writes_for_all(state: &LatticeState) -> Vec<Write> {
    let mut entities = Vec::new();
    for (host_id, host) in &state.hosts {
        entities.push(EntityKey::Host { host: host_id.clone() });
        for component in host.components.keys() {
            let component = component.clone();
            entities.push(EntityKey::Component { host: host_id.clone(), component });
        }
        for provider in host.providers.keys() {
            let provider = provider.clone();
            entities.push(EntityKey::Provider { host: host_id.clone(), provider });
        }
    }
    entities.extend(state.links.keys().cloned().map(EntityKey::Link));
    entities.extend(state.configs.keys().map(|name| EntityKey::Config { name: name.clone() }));
    let gone = state.bookkeeping.tombstones.keys().cloned();
    entities.extend(gone.map(|host| EntityKey::Gone { host }));
    // Gone entities whose removal mark still counts.
    let book = &state.bookkeeping;
    for (host, clock) in &book.hosts {
        let marks = clock.entities.keys().cloned();
        let marked = marks.map(|entity| Marked::Host { host: host.clone(), entity });
        entities.extend(marked.map(|m| entity_of_mark(&m)));
    }
    entities.extend(book.links.keys().cloned().map(EntityKey::Link));
    entities.extend(book.configs.keys().map(|name| EntityKey::Config { name: name.clone() }));
    entities.sort();
    entities.dedup();
    entities
        .into_iter()
        .filter_map(|entity| {
            let value = value_of(state, &entity)?;
            Some(Write::Put { key: key_of(&state.lattice, &entity), value })
        })
        .collect()
}

/// Rebuild the state of `lattice` from its stored records `(key, value)`. Keys of other lattices
/// or outside the scheme are skipped; a value that does not decode is an error naming its key.
pub fn rebuild<'a>(
    lattice: &str,
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<LatticeState, StateError> {
    let mut state = LatticeState { lattice: lattice.to_string(), ..LatticeState::default() };
    let mut children = Vec::new();
    for (key, value) in records {
        let Some((record_lattice, entity)) = parse_key(key) else { continue };
        if record_lattice != lattice {
            continue;
        }
        if matches!(entity, EntityKey::Component { .. } | EntityKey::Provider { .. }) {
            children.push((key, value));
        } else {
            patch(&mut state, key, Some(value))?;
        }
    }
    // Children whose host record is missing (a write interrupted half-way) are dropped: the
    // next discovery round or heartbeat of that host restores them.
    for (key, value) in children {
        patch(&mut state, key, Some(value))?;
    }
    Ok(state)
}

/// Bring one entity of `state` in line with its stored record `(key, value)` (`None`: the key
/// is absent). For catching a kept state up with keys others wrote: a host record updates the
/// host (its children have keys of their own) and its snapshot stamp; an absent host removes the
/// host with its children. A child whose host is unknown is skipped, as in [`rebuild`]. Keys of
/// other lattices or outside the scheme are ignored.
pub fn patch(state: &mut LatticeState, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
    let Some((lattice, entity)) = parse_key(key) else { return Ok(()) };
    if lattice != state.lattice {
        return Ok(());
    }
    match (entity, value) {
        (EntityKey::Host { host }, Some(v)) => {
            let r: HostRecord = decode(key, v)?;
            let h = state.hosts.entry(host.clone()).or_default();
            h.id = host.clone();
            h.friendly_name = r.friendly_name;
            h.labels = r.labels;
            h.version = r.version;
            h.last_seen = r.last_seen;
            h.started_at = r.started_at;
            h.stop_reported = r.stop_reported;
            if r.snapshot.is_some() {
                let clock = state.bookkeeping.hosts.entry(host.clone()).or_default();
                if r.snapshot > clock.snapshot {
                    clock.snapshot = r.snapshot;
                }
                clock.snapshot_at = clock.snapshot_at.max(r.snapshot_at);
            }
            set_host_mark(state, &host, HostEntity::Labels, r.labels_mark);
        }
        (EntityKey::Host { host }, None) => {
            state.hosts.remove(&host);
            state.bookkeeping.hosts.remove(&host);
        }
        (EntityKey::Component { host, component }, v) => {
            let Some(h) = state.hosts.get_mut(&host) else { return Ok(()) };
            let (value, mark) = split(key, v)?;
            match value {
                Some(value) => h.components.insert(component.clone(), value),
                None => h.components.remove(&component),
            };
            set_host_mark(state, &host, HostEntity::Component(component), mark);
        }
        (EntityKey::Provider { host, provider }, v) => {
            let Some(h) = state.hosts.get_mut(&host) else { return Ok(()) };
            let (value, mark) = split(key, v)?;
            match value {
                Some(value) => h.providers.insert(provider.clone(), value),
                None => h.providers.remove(&provider),
            };
            set_host_mark(state, &host, HostEntity::Provider(provider), mark);
        }
        (EntityKey::Link(link), v) => {
            let (value, mark) = split(key, v)?;
            match value {
                Some(value) => state.links.insert(link.clone(), value),
                None => state.links.remove(&link),
            };
            set_mark(&mut state.bookkeeping.links, link, mark);
        }
        (EntityKey::Config { name }, v) => {
            let (value, mark) = split(key, v)?;
            match value {
                Some(value) => state.configs.insert(name.clone(), value),
                None => state.configs.remove(&name),
            };
            set_mark(&mut state.bookkeeping.configs, name, mark);
        }
        (EntityKey::Gone { host }, Some(v)) => {
            state.bookkeeping.tombstones.insert(host, decode(key, v)?);
        }
        (EntityKey::Gone { host }, None) => {
            state.bookkeeping.tombstones.remove(&host);
        }
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(value)
        .map_err(|e| StateError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

/// An entity record (`None`: the key is absent) as the entity, if present, and its mark.
fn split<T: serde::de::DeserializeOwned>(
    key: &str,
    value: Option<&[u8]>,
) -> Result<(Option<T>, Option<Mark>), StateError> {
    let Some(value) = value else { return Ok((None, None)) };
    let stored = marked::decode(value)
        .map_err(|e| StateError::Corrupt { key: key.to_string(), reason: e.to_string() })?;
    Ok(match stored {
        Stored::Present(value, mark) => (Some(value), mark),
        Stored::Removed(mark) => (None, Some(mark)),
    })
}

/// Set or drop the mark of `entity` on `host` (no clock is created only to drop a mark).
fn set_host_mark(state: &mut LatticeState, host: &str, entity: HostEntity, mark: Option<Mark>) {
    let clocks = &mut state.bookkeeping.hosts;
    match mark {
        Some(mark) => {
            clocks.entry(host.to_string()).or_default().entities.insert(entity, mark);
        }
        None => {
            if let Some(clock) = clocks.get_mut(host) {
                clock.entities.remove(&entity);
            }
        }
    }
}

fn set_mark<K: Ord>(marks: &mut std::collections::BTreeMap<K, Mark>, key: K, mark: Option<Mark>) {
    match mark {
        Some(mark) => marks.insert(key, mark),
        None => marks.remove(&key),
    };
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;

fn is_zero(n: &Timestamp) -> bool {
    *n == 0
}
