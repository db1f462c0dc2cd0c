//! Placement by declared capacity on simulated hosts, judged by what the hosts run and every
//! control request they received: two applications competing for memory on 3 hosts (exact
//! placement, the loser's status names the constraint, no host ever over its capacity, no
//! command repeated); binpack next to spread on one lattice; `max_per_host` and anti-affinity
//! with fewer hosts than instances, reported as such.

mod common;

use std::collections::BTreeMap;

use futures::StreamExt;

use common::realhost::{EFFECT_KINDS, Recorder};
use common::{Cluster, LATTICE, LatticeView};
use wadm_model::StatusType;
use wadm_sim::HostSpec;

/// An application of one component `web` needing `memory` MiB per instance, scaled by a
/// spreadscaler with `scaler` (YAML flow-map entries after `instances`).
fn app(name: &str, memory: u32, scaler: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/example/{name}:1.0.0
        needs: {{memory_mib: {memory}}}
      traits:
        - type: spreadscaler
          properties: {{{scaler}}}
"#
    )
}

fn hosts(n: usize, labels: &[(&str, &str)]) -> Vec<HostSpec> {
    (0..n)
        .map(|_| labels.iter().fold(HostSpec::default(), |spec, (k, v)| spec.label(*k, *v)))
        .collect()
}

/// Memory (MiB) each host's instances use, given each component's need.
fn memory_per_host(view: &LatticeView, need: &BTreeMap<&str, u32>) -> BTreeMap<String, u32> {
    let mut used = BTreeMap::new();
    for ((host, id), (_, count)) in &view.components {
        *used.entry(host.clone()).or_insert(0) +=
            count * need.get(id.as_str()).copied().unwrap_or(0);
    }
    used
}

/// No effect request (same subject and body) was sent twice.
fn assert_no_repeats(recorder: &Recorder) {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in recorder.requests() {
        if EFFECT_KINDS.contains(&recorder.kind(&r.subject).as_str()) {
            *seen.entry((r.subject.clone(), r.body.clone())).or_insert(0) += 1;
        }
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "repeated: {repeated:#?}\n{}", recorder.dump_requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_compete_for_memory_on_three_hosts() {
    let cluster = Cluster::start(2, hosts(3, &[("capacity_memory_mib", "256")])).await;
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let need = BTreeMap::from([("first-web", 128), ("second-web", 128)]);
    let within = |v: &LatticeView| memory_per_host(v, &need).values().all(|m| *m <= 256);

    cluster.put_and_deploy(&app("first", 128, "instances: 4")).await;
    cluster.wait_status("first", StatusType::Deployed).await.expect("first deployed");
    cluster.put_and_deploy(&app("second", 128, "instances: 4")).await;
    let status = cluster.wait_status("second", StatusType::Failed).await.expect("second fails");
    assert!(
        status.status.message.contains("needs 4 instances, 2 fit: host capacity memory_mib"),
        "{status:?}"
    );
    cluster
        .wait_lattice("first runs 4, second the 2 that fit, no host over 256 MiB", |v| {
            v.count("first-web") == 4 && v.count("second-web") == 2 && within(v)
        })
        .await;
    assert_eq!(cluster.status("first").await.unwrap().status.status_type, StatusType::Deployed);

    // Every host full, and nothing more was asked of them than that.
    let view = cluster.view();
    assert!(memory_per_host(&view, &need).values().all(|m| *m == 256), "{view:#?}");
    let scaled: usize = recorder
        .requests()
        .iter()
        .filter(|r| recorder.kind(&r.subject) == "component.scale")
        .count();
    // first: at most 3 hosts; second: at most 2 hosts (one scale each).
    assert!(scaled <= 5, "{scaled} scales: {}", recorder.dump_requests());
    assert_no_repeats(&recorder);

    // A third host frees room: the second app gets its missing two, and nothing else moves;
    // the allocation events say why (`capacity`).
    let nats = async_nats::connect(cluster.nats.url()).await.unwrap();
    let mut allocations =
        nats.subscribe(format!("wadm.allocation.{LATTICE}.second")).await.unwrap();
    nats.flush().await.unwrap();
    cluster.sim.add_host(HostSpec::default().label("capacity_memory_mib", "256")).await;
    cluster
        .wait_lattice("second runs 4 once a host joined", |v| {
            v.count("first-web") == 4 && v.count("second-web") == 4 && within(v)
        })
        .await;
    cluster.wait_status("second", StatusType::Deployed).await.expect("second deployed");
    let stops = recorder
        .requests()
        .iter()
        .filter(|r| {
            recorder.kind(&r.subject) == "component.scale" && r.body.contains("\"count\":0")
        })
        .count();
    assert_eq!(stops, 0, "nothing stopped: {}", recorder.dump_requests());
    assert_no_repeats(&recorder);
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), allocations.next())
        .await
        .expect("an allocation event for the second app")
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["data"]["reason_class"], "capacity", "{event}");
    assert_eq!(event["data"]["change"], "placed", "{event}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binpack_and_spread_on_one_lattice() {
    let cluster = Cluster::start(1, hosts(3, &[("capacity_instances", "4")])).await;
    cluster.put_and_deploy(&app("packed", 1, "instances: 4, placement: binpack")).await;
    cluster.wait_status("packed", StatusType::Deployed).await.expect("packed deployed");
    let view = cluster.view();
    assert_eq!(view.component_hosts("packed-web").len(), 1, "binpack fills one host: {view:#?}");

    cluster.put_and_deploy(&app("spreadout", 1, "instances: 2")).await;
    cluster.wait_status("spreadout", StatusType::Deployed).await.expect("spreadout deployed");
    let view = cluster.view();
    let packed = view.component_hosts("packed-web");
    let spread = view.component_hosts("spreadout-web");
    assert_eq!(spread.len(), 2, "spread uses two hosts: {view:#?}");
    assert!(spread.iter().all(|h| !packed.contains(h)), "the full host takes nothing: {view:#?}");
    cluster.shutdown().await;
}

const APART: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: apart
  annotations:
    version: v1
spec:
  components:
    - name: api
      type: component
      properties:
        image: ghcr.io/example/api:1.0.0
      traits:
        - type: spreadscaler
          properties: {instances: 3, max_per_host: 1}
        - type: anti-affinity
          properties: {components: [cache]}
    - name: cache
      type: component
      properties:
        image: ghcr.io/example/cache:1.0.0
      traits:
        - type: spreadscaler
          properties: {instances: 1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_and_max_per_host_with_too_few_hosts_are_reported() {
    // Two hosts: api (first in the manifest) takes one each; the cache has nowhere to go.
    let cluster = Cluster::start(1, hosts(2, &[])).await;
    cluster.put_and_deploy(APART).await;
    let status = cluster.wait_status("apart", StatusType::Failed).await.expect("reported");
    let message = status.status.message.clone();
    assert!(message.contains("needs 3 instances, 2 fit: at most 1 per host"), "{message}");
    assert!(message.contains("needs 1 instances, 0 fit: kept apart from apart-api"), "{message}");
    cluster
        .wait_lattice("api on both hosts, one each, no cache", |v| {
            v.count("apart-api") == 2
                && v.component_hosts("apart-api").len() == 2
                && v.count("apart-cache") == 0
        })
        .await;
    // Two more hosts: the third api instance and the cache, never together.
    cluster.sim.add_host(HostSpec::default()).await;
    cluster.sim.add_host(HostSpec::default()).await;
    cluster.wait_status("apart", StatusType::Deployed).await.expect("deployed with 4 hosts");
    cluster
        .wait_lattice("3 api hosts, the cache on the fourth", |v| {
            let api = v.component_hosts("apart-api");
            let cache = v.component_hosts("apart-cache");
            api.len() == 3 && cache.len() == 1 && api.iter().all(|h| !cache.contains(h))
        })
        .await;
    cluster.shutdown().await;
}
