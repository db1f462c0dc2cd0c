//! Translating observed state to per-key records and back (pure).
//!
//! [`writes_for`] turns one step's [`Changes`] into the key writes that bring storage in line with
//! the state: each changed entity is written if it exists in the state and deleted otherwise, so the
//! cost of a step is the number of entities it changed, never the size of the lattice.
//! [`rebuild`] reassembles a [`LatticeState`] from the records of one lattice.
//!
//! Of the reducer's bookkeeping, the records keep tombstones (`gone` keys) and each host's
//! snapshot stamp (in the host record); per-entity marks of incremental events, link and config
//! marks and the counters start empty after a load.

use serde::{Deserialize, Serialize};
use wadm_lattice::bookkeeping::{EventStamp, Tombstone};
use wadm_lattice::{
    Change, Changes, ComponentInstance, ConfigState, HostState, LatticeState, ProviderInstance,
    Timestamp,
};
use wadm_protocol::{Link, StringMap};

use super::StoreError;
use super::keys::{EntityKey, key_of, parse_key};

/// The stored value of a host key (its children have keys of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub id: String,
    #[serde(default)]
    pub friendly_name: String,
    #[serde(default)]
    pub labels: StringMap,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub last_seen: Timestamp,
    /// The stamp of the newest full snapshot (heartbeat, `host_started`) the reducer applied, so
    /// a replica that loads the state still rejects older snapshots. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<EventStamp>,
}

/// One write to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Write {
    pub fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// The entities a step touched: each change's entity, plus the tombstone of every host that
/// appeared or went away, plus forgotten tombstones.
pub fn entities_of(changes: &Changes) -> Vec<EntityKey> {
    let mut entities: Vec<EntityKey> = changes.changes.iter().map(entity_of).collect();
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
                snapshot: state.bookkeeping.hosts.get(host).and_then(|c| c.snapshot.clone()),
            })
        }),
        EntityKey::Component { host, component } => {
            state.hosts.get(host).and_then(|h| h.components.get(component)).map(json)
        }
        EntityKey::Provider { host, provider } => {
            state.hosts.get(host).and_then(|h| h.providers.get(provider)).map(json)
        }
        EntityKey::Link(key) => state.links.get(key).map(json),
        EntityKey::Config { name } => state.configs.get(name).map(json),
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
) -> Result<LatticeState, StoreError> {
    let mut state = LatticeState { lattice: lattice.to_string(), ..LatticeState::default() };
    let mut components = Vec::new();
    let mut providers = Vec::new();
    for (key, value) in records {
        let Some((record_lattice, entity)) = parse_key(key) else { continue };
        if record_lattice != lattice {
            continue;
        }
        let bad = |e: serde_json::Error| StoreError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        };
        match entity {
            EntityKey::Host { host } => {
                let r: HostRecord = serde_json::from_slice(value).map_err(bad)?;
                let h = HostState {
                    id: host.clone(),
                    friendly_name: r.friendly_name,
                    labels: r.labels,
                    version: r.version,
                    last_seen: r.last_seen,
                    ..HostState::default()
                };
                if let Some(stamp) = r.snapshot {
                    state.bookkeeping.hosts.entry(host.clone()).or_default().snapshot = Some(stamp);
                }
                state.hosts.insert(host, h);
            }
            EntityKey::Component { host, component } => {
                let c: ComponentInstance = serde_json::from_slice(value).map_err(bad)?;
                components.push((host, component, c));
            }
            EntityKey::Provider { host, provider } => {
                let p: ProviderInstance = serde_json::from_slice(value).map_err(bad)?;
                providers.push((host, provider, p));
            }
            EntityKey::Link(link_key) => {
                let l: Link = serde_json::from_slice(value).map_err(bad)?;
                state.links.insert(link_key, l);
            }
            EntityKey::Config { name } => {
                let c: ConfigState = serde_json::from_slice(value).map_err(bad)?;
                state.configs.insert(name, c);
            }
            EntityKey::Gone { host } => {
                let t: Tombstone = serde_json::from_slice(value).map_err(bad)?;
                state.bookkeeping.tombstones.insert(host, t);
            }
        }
    }
    // Children whose host record is missing (a write interrupted half-way) are dropped: the
    // next discovery round or heartbeat of that host restores them.
    for (host, id, c) in components {
        if let Some(h) = state.hosts.get_mut(&host) {
            h.components.insert(id, c);
        }
    }
    for (host, id, p) in providers {
        if let Some(h) = state.hosts.get_mut(&host) {
            h.providers.insert(id, p);
        }
    }
    Ok(state)
}

/// Bring one entity of `state` in line with its stored record `(key, value)` (`None`: the key
/// is absent). For catching a kept state up with keys others wrote: a host record updates the
/// host (its children have keys of their own) and its snapshot stamp; an absent host removes the
/// host with its children. A child whose host is unknown is skipped, as in [`rebuild`]. Keys of
/// other lattices or outside the scheme are ignored.
pub fn patch(state: &mut LatticeState, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
    let Some((lattice, entity)) = parse_key(key) else { return Ok(()) };
    if lattice != state.lattice {
        return Ok(());
    }
    fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(value)
            .map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
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
            let clock = state.bookkeeping.hosts.entry(host).or_default();
            if r.snapshot > clock.snapshot {
                clock.snapshot = r.snapshot;
            }
        }
        (EntityKey::Host { host }, None) => {
            state.hosts.remove(&host);
            state.bookkeeping.hosts.remove(&host);
        }
        (EntityKey::Component { host, component }, v) => {
            let Some(h) = state.hosts.get_mut(&host) else { return Ok(()) };
            match v {
                Some(v) => {
                    h.components.insert(component, decode(key, v)?);
                }
                None => {
                    h.components.remove(&component);
                }
            }
        }
        (EntityKey::Provider { host, provider }, v) => {
            let Some(h) = state.hosts.get_mut(&host) else { return Ok(()) };
            match v {
                Some(v) => {
                    h.providers.insert(provider, decode(key, v)?);
                }
                None => {
                    h.providers.remove(&provider);
                }
            }
        }
        (EntityKey::Link(link), Some(v)) => {
            state.links.insert(link, decode(key, v)?);
        }
        (EntityKey::Link(link), None) => {
            state.links.remove(&link);
        }
        (EntityKey::Config { name }, Some(v)) => {
            state.configs.insert(name, decode(key, v)?);
        }
        (EntityKey::Config { name }, None) => {
            state.configs.remove(&name);
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

#[cfg(test)]
mod tests {
    use wadm_lattice::{EventContext, apply};
    use wadm_protocol::HostEvent;
    use wadm_protocol::event::{ComponentScaled, HostStarted};

    use super::*;

    fn ctx(id: &str, t: u64) -> EventContext {
        EventContext { source: "NH.1".into(), id: id.into(), time: Some(t) }
    }

    #[test]
    fn one_change_is_one_write_whatever_the_lattice_size() {
        let mut s = LatticeState { lattice: "big".into(), ..LatticeState::default() };
        for h in 0..1_000 {
            let host = format!("N{h}");
            let ctx = EventContext { source: host, id: format!("s{h}"), time: Some(1) };
            apply(&mut s, &ctx, &HostEvent::HostStarted(HostStarted::default()), 1);
        }
        let scaled = ComponentScaled {
            component_id: "echo".into(),
            image_ref: "img".into(),
            max_instances: 1,
            ..ComponentScaled::default()
        };
        let on_n7 = EventContext { source: "N7".into(), id: "x".into(), time: Some(2) };
        let changes = apply(&mut s, &on_n7, &HostEvent::ComponentScaled(scaled), 2);
        let writes = writes_for(&s, &changes);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].key(), "big.comp.N7.echo");
    }

    #[test]
    fn changes_become_per_entity_writes_and_round_trip() {
        let mut s = LatticeState { lattice: "lat".into(), ..LatticeState::default() };
        let c1 = apply(&mut s, &ctx("a", 1), &HostEvent::HostStarted(HostStarted::default()), 5);
        let scaled = ComponentScaled {
            component_id: "echo".into(),
            image_ref: "img".into(),
            max_instances: 2,
            ..ComponentScaled::default()
        };
        let c2 = apply(&mut s, &ctx("b", 2), &HostEvent::ComponentScaled(scaled), 5);
        let w1 = writes_for(&s, &c1);
        let w2 = writes_for(&s, &c2);
        // A new host also clears any tombstone it had (a lost host that came back).
        assert_eq!(w1.len(), 2);
        assert_eq!(w1[0].key(), "lat.host.NH=2E1");
        assert_eq!(w1[1], Write::Delete { key: "lat.gone.NH=2E1".into() });
        assert_eq!(w2.len(), 1);
        assert_eq!(w2[0].key(), "lat.comp.NH=2E1.echo");
        let all = writes_for_all(&s);
        let records: Vec<(&str, &[u8])> = all
            .iter()
            .map(|w| match w {
                Write::Put { key, value } => (key.as_str(), value.as_slice()),
                Write::Delete { .. } => unreachable!(),
            })
            .collect();
        let back = rebuild("lat", records).unwrap();
        assert_eq!(back.hosts, s.hosts);
        // The host's snapshot stamp survives, so a stale heartbeat is still rejected after a load.
        let stamp = |st: &LatticeState| st.bookkeeping.hosts["NH.1"].snapshot.clone();
        assert_eq!(stamp(&back), stamp(&s));
        assert!(stamp(&back).is_some());
        // Patching an older copy with the records of changed keys gives the same state.
        let mut behind = LatticeState { lattice: "lat".into(), ..LatticeState::default() };
        for write in w1.iter().chain(&w2) {
            let value = match write {
                Write::Put { value, .. } => Some(value.as_slice()),
                Write::Delete { .. } => None,
            };
            patch(&mut behind, write.key(), value).unwrap();
        }
        assert_eq!(behind.hosts, s.hosts);
        assert_eq!(behind.bookkeeping.hosts["NH.1"].snapshot, stamp(&s));
        patch(&mut behind, "lat.host.NH=2E1", None).unwrap();
        assert!(behind.hosts.is_empty() && behind.bookkeeping.hosts.is_empty());
        let err = rebuild("lat", [("lat.host.X", b"nope".as_slice())]).unwrap_err();
        assert!(err.to_string().contains("lat.host.X"), "{err}");
    }
}
