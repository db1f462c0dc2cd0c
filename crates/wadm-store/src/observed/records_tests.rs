//! Tests of the record translation: per-entity writes, round trips, marks.

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

fn scaled(component: &str, count: u32) -> HostEvent {
    HostEvent::ComponentScaled(ComponentScaled {
        component_id: component.into(),
        image_ref: "img".into(),
        max_instances: count,
        ..ComponentScaled::default()
    })
}

fn records_of(writes: &[Write]) -> Vec<(&str, &[u8])> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Put { key, value } => Some((key.as_str(), value.as_slice())),
            Write::Delete { .. } => None,
        })
        .collect()
}

/// Apply `event` and bring a copy of the records up to date with the step's writes.
fn step(
    s: &mut LatticeState,
    stored: &mut std::collections::BTreeMap<String, Vec<u8>>,
    event: &HostEvent,
    id: &str,
    time: u64,
) {
    let changes = apply(s, &ctx(id, time), event, time * 10);
    for write in writes_for(s, &changes) {
        match write {
            Write::Put { key, value } => stored.insert(key, value),
            Write::Delete { key } => stored.remove(&key),
        };
    }
}

#[test]
fn marks_are_kept_with_their_entities_and_dropped_with_them() {
    use wadm_lattice::bookkeeping::HostEntity;
    use wadm_protocol::Link;
    use wadm_protocol::event::{ConfigEvent, LabelsChanged, LinkDeleted};

    let mut s = LatticeState { lattice: "lat".into(), ..LatticeState::default() };
    let mut stored = std::collections::BTreeMap::new();
    step(&mut s, &mut stored, &HostEvent::HostStarted(HostStarted::default()), "s", 1);
    step(&mut s, &mut stored, &scaled("echo", 2), "a", 2);
    step(&mut s, &mut stored, &scaled("gone", 1), "b", 3);
    step(&mut s, &mut stored, &scaled("gone", 0), "c", 4);
    let labels =
        LabelsChanged { host_id: String::new(), labels: [("z".into(), "1".into())].into() };
    step(&mut s, &mut stored, &HostEvent::LabelsChanged(labels), "d", 5);
    let link = Link {
        source_id: "echo".into(),
        target: "http".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec![],
        source_config: vec![],
        target_config: vec![],
    };
    step(&mut s, &mut stored, &HostEvent::LinkSet(link.clone()), "e", 6);
    let deleted = LinkDeleted {
        source_id: "echo".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        target: None,
        interfaces: None,
    };
    step(&mut s, &mut stored, &HostEvent::LinkDeleted(deleted), "f", 7);
    let cfg = ConfigEvent { config_name: "cfg".into() };
    step(&mut s, &mut stored, &HostEvent::ConfigSet(cfg), "g", 8);

    // Every mark is in the records: the removed component and link keep a removal record.
    assert_eq!(
        stored["lat.comp.NH=2E1.gone"],
        br#"{"removed":{"stamp":{"time":4,"id":"c"},"applied_at":40}}"#
    );
    let records: Vec<(&str, &[u8])> =
        stored.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let back = rebuild("lat", records).unwrap();
    // (last_seen of events that change nothing on the host is not written: leases restart on a
    // load.)
    assert_eq!(back.hosts["NH.1"].components, s.hosts["NH.1"].components);
    assert_eq!(back.hosts["NH.1"].labels, s.hosts["NH.1"].labels);
    assert_eq!(back.links, s.links);
    assert_eq!(back.configs, s.configs);
    assert_eq!(back.bookkeeping.hosts, s.bookkeeping.hosts);
    assert_eq!(back.bookkeeping.links, s.bookkeeping.links);
    assert_eq!(back.bookkeeping.configs, s.bookkeeping.configs);
    assert_eq!(s.bookkeeping.hosts["NH.1"].entities.len(), 3, "echo, gone, labels");
    assert!(back.bookkeeping.links.contains_key(&link.key()), "the removal mark of the link");
    // Storing from scratch writes the same records.
    let all = writes_for_all(&s);
    let fresh = rebuild("lat", records_of(&all)).unwrap();
    assert_eq!(fresh.bookkeeping, back.bookkeeping);

    // A newer heartbeat supersedes every mark: the removal record goes, the others lose theirs.
    let hb = wadm_protocol::HostInventory { host_id: "NH.1".into(), ..Default::default() };
    step(&mut s, &mut stored, &HostEvent::HostHeartbeat(hb), "h", 9);
    assert!(!stored.contains_key("lat.comp.NH=2E1.gone"), "{stored:?}");
    assert!(!stored.contains_key("lat.comp.NH=2E1.echo"), "the heartbeat says nothing runs");
    let records: Vec<(&str, &[u8])> =
        stored.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let back = rebuild("lat", records).unwrap();
    assert_eq!(back.bookkeeping.hosts, s.bookkeeping.hosts);
    assert!(!back.bookkeeping.hosts["NH.1"].entities.contains_key(&HostEntity::Labels));
}

#[test]
fn a_corrupt_marked_record_names_its_key() {
    let err = rebuild("lat", [("lat.link.a.b.c.d", b"{\"removed\": 3}".as_slice())]).unwrap_err();
    assert!(err.to_string().contains("lat.link.a.b.c.d"), "{err}");
}
