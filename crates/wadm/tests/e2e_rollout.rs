//! A rolling upgrade on simulated hosts, judged by what the hosts received: 8 hosts each run one
//! instance of v1; v2 changes the image under `rollout: {max_parallel: 2, min_healthy_time: 1s}`.
//! From the recorded `component.update` requests and the hosts' `component_scaled` events:
//! - every host is updated exactly once, and nothing is stopped or scaled down (the floor);
//! - at no instant are more than 2 hosts changing (from the update request until 1 s after the
//!   host confirmed the new image);
//! - the status reports the rollout while it runs and `deployed` once every host is done.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::realhost::Recorder;
use common::{Cluster, LATTICE};
use wadm_model::StatusType;
use wadm_test_support::wait_for;

const HOSTS: usize = 8;
const V1: &str = "ghcr.io/example/web:1.0.0";
const V2: &str = "ghcr.io/example/web:2.0.0";

fn app(version: &str, image: &str) -> String {
    common::rolling_app(version, image, HOSTS, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_changes_at_most_max_parallel_hosts_at_once() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("any", HOSTS)])).await;
    cluster.put_and_deploy(&app("v1", V1)).await;
    cluster.wait_lattice("v1 on every host", |v| v.count("rolling-web") == HOSTS as u32).await;
    // (`deployed` only once every v1 instance has run for min_healthy_time too.)
    cluster.wait_status("rolling", StatusType::Deployed).await.expect("v1 deployed");

    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let watcher = {
        let (client, statuses) = (cluster.client.clone(), statuses.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(s) = client.status("rolling").await {
                    let line = format!("{:?}: {}", s.status.status_type, s.status.message);
                    let scalers: Vec<String> =
                        s.scalers.iter().map(|x| x.status.message.to_string()).collect();
                    let line = format!("{line} {scalers:?}");
                    let mut seen = statuses.lock().unwrap();
                    if seen.last() != Some(&line) {
                        seen.push(line);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    cluster.put_and_deploy(&app("v2", V2)).await;
    cluster
        .wait_lattice("v2 on every host", |v| {
            v.count("rolling-web") == HOSTS as u32
                && v.images("rolling-web").iter().all(|i| i == V2)
        })
        .await;
    let deployed = wait_for(Duration::from_secs(60), || async {
        let s = cluster.client.status("rolling").await.ok()?;
        (s.status.status_type == StatusType::Deployed).then_some(())
    })
    .await;
    watcher.abort();
    let statuses = statuses.lock().unwrap().clone();
    assert!(deployed.is_some(), "deployed at the end: {statuses:#?}");

    // What the hosts received, and when they confirmed.
    let requests = recorder.requests();
    let mut updated_at: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for r in &requests {
        let kind = recorder.kind(&r.subject);
        assert_ne!(kind, "component.scale", "a rollout scales nothing: {}", r.body);
        if kind == "component.update" {
            let host = r.subject.rsplit('.').next().unwrap().to_string();
            updated_at.entry(host).or_default().push(r.at);
        }
    }
    assert_eq!(updated_at.len(), HOSTS, "every host updated: {}", recorder.dump_requests());
    assert!(
        updated_at.values().all(|sent| sent.len() == 1),
        "each host updated once: {updated_at:?}"
    );
    let mut confirmed_at: BTreeMap<String, Duration> = BTreeMap::new();
    for e in recorder.events() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.body) else { continue };
        let data = &v["data"];
        if e.subject.ends_with("component_scaled") && data["image_ref"] == V2 {
            let host = data["host_id"].as_str().unwrap_or_default().to_string();
            confirmed_at.entry(host).or_insert(e.at);
        }
    }
    // Intervals [update sent, confirmed + min_healthy_time): at most 2 overlap at any instant.
    let peak = peak_overlap(updated_at.iter().map(|(host, sent)| {
        let done = confirmed_at.get(host).copied().unwrap_or_else(|| panic!("{host} confirmed"));
        (sent[0], done + Duration::from_secs(1))
    }));
    // A host may be told 50 ms or so after the previous one's minimum passed: allow no slack.
    assert!(
        peak <= 2,
        "{peak} hosts changing at once: updates {updated_at:?}, confirmed {confirmed_at:?}"
    );
    let rolling = statuses.iter().filter(|s| s.contains("rolling out")).count();
    assert!(rolling > 0, "the status shows the rollout: {statuses:#?}");
    assert!(!statuses.iter().any(|s| s.starts_with("Failed")), "never failed: {statuses:#?}");
    // The history notes the batches as they complete (the last one is the `stable` entry), in
    // order, each once.
    let history = cluster.client.history("rolling").await.expect("history");
    let batches: Vec<u32> = history
        .iter()
        .filter(|h| h.action.to_string() == "rollout_batch")
        .map(|h| {
            let reason = h.reason.clone().unwrap_or_default();
            assert!(reason.ends_with("/8 hosts)") && reason.contains(" of 4 done ("), "{reason}");
            reason["batch ".len()..].split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(!batches.is_empty(), "{history:#?}");
    assert!(
        batches.windows(2).all(|w| w[0] < w[1]) && batches.iter().all(|k| *k < 4),
        "{batches:?}"
    );
    cluster.shutdown().await;
}

fn canary_app(version: &str, image: &str) -> String {
    app(version, image).replace("max_parallel: 2", "max_parallel: 2\n            canary: 1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_stops_after_one_host_until_promoted() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("any", HOSTS)])).await;
    cluster.put_and_deploy(&canary_app("v1", V1)).await;
    cluster.wait_lattice("v1 on every host", |v| v.count("rolling-web") == HOSTS as u32).await;
    cluster.wait_status("rolling", StatusType::Deployed).await.expect("v1 deployed");

    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    cluster.put_and_deploy(&canary_app("v2", V2)).await;
    // The canary host is done (1 s after it confirmed) and the rollout says it waits.
    let waiting = wait_for(Duration::from_secs(30), || async {
        let s = cluster.client.status("rolling").await.ok()?;
        let message = s.scalers.iter().map(|x| &*x.status.message).collect::<String>();
        message.contains("waiting for `wadm app promote`").then_some(message)
    })
    .await;
    assert!(waiting.is_some(), "the canary waits for promotion");
    let updates = |recorder: &Recorder| {
        let requests = recorder.requests();
        requests.iter().filter(|r| recorder.kind(&r.subject) == "component.update").count()
    };
    assert_eq!(updates(&recorder), 1, "one canary host: {}", recorder.dump_requests());
    assert_eq!(cluster.view().images("rolling-web").iter().filter(|i| *i == V2).count(), 1);
    let status = cluster.client.status("rolling").await.unwrap();
    assert_eq!(status.status.status_type, StatusType::Reconciling);

    let promoted = cluster.client.promote("rolling").await.expect("promote");
    assert!(promoted.message.contains("Promoted version v2"), "{}", promoted.message);
    cluster
        .wait_lattice("v2 on every host", |v| v.images("rolling-web").iter().all(|i| i == V2))
        .await;
    cluster.wait_status("rolling", StatusType::Deployed).await.expect("deployed after promote");
    assert_eq!(updates(&recorder), HOSTS, "every host updated once");
    let history = cluster.client.history("rolling").await.expect("history");
    assert!(history.iter().any(|h| h.action.to_string() == "promote"), "{history:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_fails_to_start_stops_the_rollout_at_its_first_batch() {
    const BAD: &str = "ghcr.io/example/web:3.0.0-broken";
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("any", HOSTS)])).await;
    for host in cluster.sim.hosts() {
        cluster.sim.faults(&host).expect("host").set_fail_images([BAD.to_string()]);
    }
    cluster.put_and_deploy(&app("v1", V1)).await;
    cluster.wait_lattice("v1 on every host", |v| v.count("rolling-web") == HOSTS as u32).await;
    cluster.wait_status("rolling", StatusType::Deployed).await.expect("v1 deployed");

    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    cluster.put_and_deploy(&app("v3", BAD)).await;
    let failed = cluster.wait_status("rolling", StatusType::Failed).await;
    let failed = failed.expect("the failure shows");
    assert!(failed.status.message.contains("fails to start"), "{}", failed.status.message);
    // Only the first batch was tried; every host still runs v1, all instances up.
    let tried: std::collections::BTreeSet<String> = recorder
        .requests()
        .iter()
        .filter(|r| recorder.kind(&r.subject) == "component.update")
        .map(|r| r.subject.rsplit('.').next().unwrap().to_string())
        .collect();
    assert!(!tried.is_empty() && tried.len() <= 2, "the first batch only: {tried:?}");
    let view = cluster.view();
    assert_eq!(view.count("rolling-web"), HOSTS as u32);
    assert!(view.images("rolling-web").iter().all(|i| i == V1), "{:?}", view.images("rolling-web"));
    cluster.shutdown().await;
}

const KV1: &str = "ghcr.io/example/kv:1.0.0";
const KV2: &str = "ghcr.io/example/kv:2.0.0";

/// A provider on every host (daemonscaler) under `rollout: {max_parallel: 1, min_healthy_time:
/// 1s}`.
fn provider_app(version: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: kvapp
  annotations:
    version: {version}
spec:
  components:
    - name: kv
      type: capability
      properties:
        image: {image}
      traits:
        - type: daemonscaler
          properties:
            instances: 1
        - type: rollout
          properties:
            max_parallel: 1
            min_healthy_time: 1s
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_rollout_replaces_one_host_at_a_time() {
    const PROVIDER_HOSTS: usize = 4;
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("any", PROVIDER_HOSTS)])).await;
    cluster.put_and_deploy(&provider_app("v1", KV1)).await;
    cluster.wait_status("kvapp", StatusType::Deployed).await.expect("v1 deployed");
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    cluster.put_and_deploy(&provider_app("v2", KV2)).await;
    cluster
        .wait_lattice("v2 on every host", |v| {
            let hosts = v.provider_hosts("kvapp-kv");
            hosts.len() == PROVIDER_HOSTS
                && v.providers.iter().filter(|(_, image)| *image == KV2).count() == PROVIDER_HOSTS
        })
        .await;
    cluster.wait_status("kvapp", StatusType::Deployed).await.expect("v2 deployed");

    // Per host: when its old provider was stopped, and when the new one reported started.
    let mut stopped_at: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for r in recorder.requests() {
        if recorder.kind(&r.subject) == "provider.stop" {
            let host = r.subject.rsplit('.').next().unwrap().to_string();
            stopped_at.entry(host).or_default().push(r.at);
        }
    }
    assert_eq!(stopped_at.len(), PROVIDER_HOSTS, "{}", recorder.dump_requests());
    assert!(stopped_at.values().all(|s| s.len() == 1), "each stopped once: {stopped_at:?}");
    let mut started_at: BTreeMap<String, Duration> = BTreeMap::new();
    for e in recorder.events() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.body) else { continue };
        if e.subject.ends_with("provider_started") {
            let host = v["data"]["host_id"].as_str().unwrap_or_default().to_string();
            started_at.entry(host).or_insert(e.at);
        }
    }
    // Intervals [stop sent, started + min_healthy_time): never two at once.
    let peak = peak_overlap(stopped_at.iter().map(|(host, stops)| {
        let started = started_at.get(host).copied().unwrap_or_else(|| panic!("{host} started"));
        (stops[0], started + Duration::from_secs(1))
    }));
    assert!(
        peak <= 1,
        "{peak} hosts without a serving provider at once: {stopped_at:?} {started_at:?}"
    );
    cluster.shutdown().await;
}

/// The most of these `[from, to)` intervals that overlap at any instant.
fn peak_overlap(intervals: impl Iterator<Item = (Duration, Duration)>) -> i32 {
    let mut edges: Vec<(Duration, i32)> = Vec::new();
    for (from, to) in intervals {
        edges.push((from, 1));
        edges.push((to, -1));
    }
    // At one instant, an interval ending counts before one starting.
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, delta) in &edges {
        now += delta;
        peak = peak.max(now);
    }
    peak
}
