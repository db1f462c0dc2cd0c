//! The KV state store on a real JetStream: per-key records, compare-and-set, load.

use wadm_lattice::{Change, Changes, EventContext, LatticeState, apply};
use wadm_protocol::HostEvent;
use wadm_protocol::event::{ComponentScaled, HostStarted};
use wadm_store::observed::keys::{EntityKey, key_of};
use wadm_store::{KvStateStore, MemoryStateStore, StateStore, StoreNames};
use wadm_test_support::NatsServer;

fn ctx(host: &str, id: &str, t: u64) -> EventContext {
    EventContext { source: host.into(), id: id.into(), time: Some(t) }
}

fn scaled(component: &str, count: u32) -> HostEvent {
    HostEvent::ComponentScaled(ComponentScaled {
        component_id: component.into(),
        image_ref: "img".into(),
        max_instances: count,
        ..ComponentScaled::default()
    })
}

/// Apply events to `state`, persisting each step's changes.
async fn step(
    store: &impl StateStore,
    state: &mut LatticeState,
    host: &str,
    id: &str,
    t: u64,
    ev: HostEvent,
) -> Changes {
    let changes = apply(state, &ctx(host, id, t), &ev, t);
    store.persist(state, &changes).await.unwrap();
    changes
}

/// Hosts without `last_seen`, which is stored only when the host record itself changes (a
/// restarted observer gives every host a fresh lease anyway).
fn hosts(state: &LatticeState) -> Vec<wadm_lattice::HostState> {
    state.hosts.values().map(|h| wadm_lattice::HostState { last_seen: 0, ..h.clone() }).collect()
}

async fn exercise(store: &impl StateStore) {
    let mut s = LatticeState { lattice: "lat-1".into(), ..LatticeState::default() };
    let started = HostEvent::HostStarted(HostStarted::default());
    step(store, &mut s, "NA", "1", 1, started.clone()).await;
    step(store, &mut s, "NA", "2", 2, scaled("my.comp/x", 2)).await;
    step(store, &mut s, "NB", "3", 3, started).await;
    step(store, &mut s, "NB", "4", 4, scaled("other", 1)).await;
    let loaded = store.load("lat-1").await.unwrap();
    assert_eq!(hosts(&loaded), hosts(&s));
    // Event marks come back with their entities.
    assert_eq!(loaded.bookkeeping.hosts, s.bookkeeping.hosts);

    // Removing a host deletes its key and its children's keys.
    let stop = HostEvent::HostStopped(Default::default());
    let reported = step(store, &mut s, "NB", "5", 5, stop).await;
    assert!(reported.needs_verification.contains("NB"));
    // Reported, not yet confirmed: the report is stored with the host, so any replica carries
    // it on.
    let loaded = store.load("lat-1").await.unwrap();
    assert_eq!(loaded.hosts["NB"].stop_reported, s.hosts["NB"].stop_reported);
    assert!(loaded.hosts["NB"].stop_reported.is_some());
    let changes = wadm_lattice::confirm_stop(&mut s, "NB", 5);
    store.persist(&s, &changes).await.unwrap();
    assert!(
        changes
            .changes
            .contains(&Change::ComponentRemoved { host: "NB".into(), component: "other".into() })
    );
    let loaded = store.load("lat-1").await.unwrap();
    assert_eq!(loaded.hosts.keys().collect::<Vec<_>>(), vec!["NA"]);
    // The stopped host's tombstone is stored too: a replica reading it back rejects late events.
    assert_eq!(loaded.bookkeeping.tombstones, s.bookkeeping.tombstones);
    assert!(loaded.bookkeeping.tombstones.contains_key("NB"));
    // A component scaled to 0 is gone, but its removal mark is kept (a late older event for it
    // is still stale after a load); the host's later loss drops it with its key.
    step(store, &mut s, "NA", "6", 6, scaled("my.comp/x", 0)).await;
    let loaded = store.load("lat-1").await.unwrap();
    assert!(loaded.hosts["NA"].components.is_empty());
    assert_eq!(loaded.bookkeeping.hosts["NA"].entities, s.bookkeeping.hosts["NA"].entities);
    assert_eq!(loaded.bookkeeping.hosts["NA"].entities.len(), 1);
    // Once retention runs out the tombstone is forgotten, in storage as well.
    let lease = wadm_lattice::LeaseConfig { retention_ms: 10, ..Default::default() };
    let changes = wadm_lattice::expire(&mut s, 1_000_000_000, &lease);
    assert!(changes.forgotten_tombstones.contains("NB"));
    store.persist(&s, &changes).await.unwrap();
    let loaded = store.load("lat-1").await.unwrap();
    assert!(!loaded.bookkeeping.tombstones.contains_key("NB"));
    // (NA's lease ran out in the same step: it is now the one tombstone.)
    assert_eq!(loaded.bookkeeping.tombstones.keys().collect::<Vec<_>>(), vec!["NA"]);
    assert!(loaded.hosts.is_empty());
    assert_eq!(hosts(&loaded), hosts(&s));
    // Other lattices are separate.
    assert!(store.load("lat-2").await.unwrap().hosts.is_empty());
    assert!(store.load("lat").await.unwrap().hosts.is_empty());
}

#[tokio::test]
async fn memory_store_round_trips() {
    exercise(&MemoryStateStore::new()).await;
}

#[tokio::test]
async fn kv_store_round_trips_per_key() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let store = KvStateStore::open(&js, &StoreNames::default().observed_bucket()).await.unwrap();
    exercise(&store).await;
    let key =
        key_of("lat-1", &EntityKey::Component { host: "NA".into(), component: "my.comp/x".into() });
    assert_eq!(key, "lat-1.comp.NA.my=2Ecomp=2Fx");
    // NA was lost at the end: its component's key (a removal record by then) is deleted, its
    // tombstone stored.
    assert_eq!(store.bucket().get(key).await.unwrap(), None);
    let gone = store.bucket().get("lat-1.gone.NA").await.unwrap().expect("tombstone record");
    let gone: serde_json::Value = serde_json::from_slice(&gone).unwrap();
    assert_eq!(gone["reason"], "lost");
}

#[tokio::test]
async fn concurrent_writers_use_compare_and_set() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let a = KvStateStore::open(&js, &StoreNames::default().observed_bucket()).await.unwrap();
    let b = KvStateStore::open(&js, &StoreNames::default().observed_bucket()).await.unwrap();
    let mut sa = LatticeState { lattice: "l".into(), ..LatticeState::default() };
    step(&a, &mut sa, "NA", "1", 1, scaled("c", 1)).await;
    // B continues from what it reads, and writes on top of A's revision.
    let mut sb = b.load("l").await.unwrap();
    step(&b, &mut sb, "NA", "2", 2, scaled("c", 5)).await;
    let key = key_of("l", &EntityKey::Component { host: "NA".into(), component: "c".into() });
    let rev_b = store_revision(&b, &key).await;
    // A's remembered revision is now stale: a raw compare-and-set with it is refused …
    let stale = a.bucket().update(&key, "{}".into(), rev_b - 1).await;
    assert!(stale.is_err(), "a write with an old revision must be refused");
    // … and A's persist re-reads the revision instead of failing or clobbering blindly.
    step(&a, &mut sa, "NA", "3", 3, scaled("c", 7)).await;
    let now = a.bucket().get(&key).await.unwrap().unwrap();
    let now: serde_json::Value = serde_json::from_slice(&now).unwrap();
    assert_eq!(now["count"], 7);
}

async fn store_revision(store: &KvStateStore, key: &str) -> u64 {
    store.bucket().entry(key).await.unwrap().expect("entry").revision
}
