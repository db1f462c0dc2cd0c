//! The observer against real NATS and simulated hosts: discovery without heartbeats, lease
//! expiry of a crashed host, and a restart that reads the state back from KV.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::Client;
use futures::{FutureExt, StreamExt};
use wadm_lattice::{Change, LatticeState, LeaseConfig, RemovalReason};
use wadm_nats::store::keys::{EntityKey, key_of};
use wadm_nats::{DiscoveryConfig, KvStateStore, Observer, ObserverConfig, STATE_BUCKET};
use wadm_protocol::ctl::{CtlReply, ScaleComponentRequest};
use wadm_protocol::{Link, StringMap, subject};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

const LATTICE: &str = "obs";

/// host → (labels, component → (image, count))
type Summary = BTreeMap<String, (StringMap, BTreeMap<String, (String, u32)>)>;

fn observed(state: &LatticeState) -> Summary {
    state
        .hosts
        .iter()
        .map(|(id, h)| {
            let comps =
                h.components.iter().map(|(c, i)| (c.clone(), (i.image_ref.clone(), i.count)));
            (id.clone(), (h.labels.clone(), comps.collect()))
        })
        .collect()
}

fn simulated(sim: &SimLattice) -> Summary {
    sim.hosts()
        .into_iter()
        .map(|id| {
            let inv = sim.inventory(&id).expect("running host");
            let comps = inv
                .components
                .iter()
                .map(|c| (c.id.clone(), (c.image_ref.clone(), c.max_instances)));
            (id, (inv.labels.clone(), comps.collect()))
        })
        .collect()
}

async fn ctl(client: &Client, subject: String, body: Vec<u8>) {
    let reply = client.request(subject.clone(), body.into()).await.expect("control reply");
    let reply: CtlReply = serde_json::from_slice(&reply.payload).expect("reply decodes");
    assert!(reply.success, "{subject}: {}", reply.message);
}

async fn scale(client: &Client, host: &str, component: &str, count: u32) {
    let req = ScaleComponentRequest {
        component_ref: format!("ghcr.io/x/{component}:1").into(),
        component_id: component.into(),
        count,
        host_id: host.into(),
        annotations: std::sync::Arc::new(
            [("wasmcloud.dev/appspec".to_string(), "demo".to_string())].into(),
        ),
        config: vec![],
        allow_update: false,
        component_limits: None,
    };
    let subject = subject::ctl_host(LATTICE, "component.scale", host);
    ctl(client, subject, serde_json::to_vec(&req).unwrap()).await;
}

fn config(gather_ms: u64, lease: LeaseConfig, rediscover: Option<Duration>) -> ObserverConfig {
    ObserverConfig {
        lattice: LATTICE.into(),
        lease,
        discovery: DiscoveryConfig {
            gather_window: Duration::from_millis(gather_ms),
            request_timeout: Duration::from_secs(2),
            managed_configs: BTreeSet::from(["demo-cfg".to_string()]),
        },
        rediscover_every: rediscover,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_running_hosts_loses_a_crashed_one_and_restarts_from_kv() {
    let nats = NatsServer::start();
    let mut sim_config = SimConfig::new(nats.url(), LATTICE);
    sim_config.heartbeat_interval = Duration::from_secs(3600); // no heartbeat during the test
    let sim = SimLattice::connect(sim_config).await.unwrap();
    let watcher = async_nats::connect(nats.url()).await.unwrap();
    let mut heartbeats =
        watcher.subscribe(subject::event(LATTICE, "host_heartbeat")).await.unwrap();
    watcher.flush().await.unwrap();
    let mut hosts = Vec::new();
    for zone in ["a", "a", "b", "b", "c"] {
        hosts.push(sim.add_host(HostSpec::default().label("zone", zone)).await);
    }
    let client = async_nats::connect(nats.url()).await.unwrap();
    scale(&client, &hosts[0], "echo", 2).await;
    scale(&client, &hosts[1], "echo", 1).await;
    scale(&client, &hosts[4], "kv", 3).await;
    let values: StringMap = [("k".to_string(), "v".to_string())].into();
    ctl(
        &client,
        subject::ctl_host(LATTICE, "config.put", "demo-cfg"),
        serde_json::to_vec(&values).unwrap(),
    )
    .await;
    let link = Link {
        source_id: "echo".into(),
        target: "kv".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into()],
        source_config: vec![],
        target_config: vec![],
    };
    ctl(&client, subject::ctl(LATTICE, "link.put"), serde_json::to_vec(&link).unwrap()).await;

    // Healthy hosts are kept alive by re-discovery (no heartbeats); the lease is short.
    let lease = LeaseConfig { heartbeat_interval_ms: 1_000, slack_ms: 1_000, retention_ms: 60_000 };
    let js = async_nats::jetstream::new(client.clone());
    let store = KvStateStore::open(&js, STATE_BUCKET).await.unwrap();
    let observer = Observer::start(
        client.clone(),
        store,
        config(300, lease, Some(Duration::from_millis(300))),
    )
    .await
    .unwrap();

    // 1. Full state after one gather window, before any heartbeat.
    let first_round = wait_for(Duration::from_secs(10), || async {
        (observer.stats().discovery_rounds >= 1).then_some(())
    })
    .await;
    assert!(first_round.is_some(), "no discovery round completed");
    let state = observer.state().await;
    assert_eq!(observed(&state), simulated(&sim));
    assert_eq!(state.hosts.len(), 5);
    assert_eq!(state.links.values().cloned().collect::<Vec<_>>(), vec![link.clone()]);
    assert_eq!(state.configs["demo-cfg"].values, Some(values.clone()));
    watcher.flush().await.unwrap();
    let heartbeat = heartbeats.next().now_or_never();
    assert!(heartbeat.is_none(), "a heartbeat was published: {heartbeat:?}");

    // Each entity has its own key in KV.
    let kv = js.get_key_value(STATE_BUCKET).await.unwrap();
    let comp_key =
        key_of(LATTICE, &EntityKey::Component { host: hosts[4].clone(), component: "kv".into() });
    let stored = wait_for(Duration::from_secs(5), || async {
        kv.get(comp_key.clone()).await.ok().flatten()
    })
    .await
    .expect("component record stored");
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["count"], 3);

    // 2. A crashed host is declared lost once its lease has run out, not before.
    let crashed = hosts[2].clone();
    assert!(sim.crash_host(&crashed).await);
    let gone = wait_for(Duration::from_secs(15), || async {
        let s = observer.state().await;
        (!s.hosts.contains_key(&crashed)).then_some(s)
    })
    .await
    .expect("crashed host was never declared lost");
    let tomb = &gone.bookkeeping.tombstones[&crashed];
    assert_eq!(tomb.reason, RemovalReason::Lost);
    assert!(tomb.removed_at >= tomb.last_seen + lease.lease_ms(), "lost before its lease ran out");
    assert_eq!(gone.hosts.len(), 4, "live hosts must stay");
    let host_key = key_of(LATTICE, &EntityKey::Host { host: crashed.clone() });
    let deleted = wait_for(Duration::from_secs(5), || async {
        kv.get(host_key.clone()).await.ok().map(|v| v.is_none()).filter(|d| *d)
    })
    .await;
    assert!(deleted.is_some(), "the lost host's key was not deleted");
    let before_restart = observer.state().await;
    observer.stop().await;

    // 3. A new observer reads the state back from KV, then re-verifies it by discovery.
    let store = KvStateStore::open(&js, STATE_BUCKET).await.unwrap();
    let observer =
        Observer::start(client.clone(), store, config(2_000, lease, None)).await.unwrap();
    let loaded = observer.state().await;
    assert_eq!(observer.stats().discovery_rounds, 0, "check ran after the first round merged");
    assert_eq!(observed(&loaded), observed(&before_restart));
    assert_eq!(loaded.links, before_restart.links);
    assert_eq!(loaded.configs, before_restart.configs);
    assert_eq!(loaded.bookkeeping.tombstones[&crashed].reason, RemovalReason::Lost);
    let verified = wait_for(Duration::from_secs(10), || async {
        (observer.stats().discovery_rounds >= 1).then_some(())
    })
    .await;
    assert!(verified.is_some());
    assert_eq!(observed(&observer.state().await), simulated(&sim));
    observer.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_the_state_current_and_unknown_hosts_are_asked() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut sim_config = SimConfig::new(nats.url(), LATTICE);
    sim_config.heartbeat_interval = Duration::from_secs(3600);
    let sim = SimLattice::connect(sim_config).await.unwrap();
    let host = sim.add_host(HostSpec::default().label("zone", "a")).await;
    // The host answers the start-up ping too late for the gather window: wadm does not know it.
    sim.faults(&host).unwrap().set_reply_delay(Duration::from_secs(3));

    let js = async_nats::jetstream::new(client.clone());
    let store = KvStateStore::open(&js, STATE_BUCKET).await.unwrap();
    let lease = LeaseConfig::default();
    let observer = Observer::start(client.clone(), store, config(200, lease, None)).await.unwrap();
    wait_for(Duration::from_secs(10), || async {
        (observer.stats().discovery_rounds >= 1).then_some(())
    })
    .await
    .expect("first round");
    assert!(observer.state().await.hosts.is_empty(), "a late answer must not be merged");

    // wadm first hears of the host through a scale event and asks for its inventory.
    let mut feed = observer.changes();
    sim.faults(&host).unwrap().set_reply_delay(Duration::ZERO);
    scale(&client, &host, "echo", 2).await;
    let seen = wait_for(Duration::from_secs(15), || async {
        let s = observer.state().await;
        (observed(&s) == simulated(&sim)).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the unknown host's inventory was not fetched");
    assert_eq!(observer.state().await.hosts[&host].labels["zone"], "a");
    let first = feed.recv().await.expect("change feed");
    let echo = Change::ComponentSet { host: host.clone(), component: "echo".into() };
    assert!(first.changes.contains(&echo), "{first:?}");
    assert!(first.apps.contains("demo"));

    // Scale down to zero: the component goes away.
    scale(&client, &host, "echo", 0).await;
    let gone = wait_for(Duration::from_secs(10), || async {
        let s = observer.state().await;
        s.hosts.get(&host).is_some_and(|h| h.components.is_empty()).then_some(())
    })
    .await;
    assert!(gone.is_some());
    // A graceful stop removes the host at once.
    assert!(sim.stop_host(&host).await);
    let stopped = wait_for(Duration::from_secs(10), || async {
        observer.state().await.hosts.is_empty().then_some(())
    })
    .await;
    assert!(stopped.is_some());
    assert_eq!(observer.stats().undecodable, 0);
    observer.stop().await;
    sim.shutdown().await;
}
