//! Allocation events on simulated hosts (3 hosts, 1 replica): an application with a component, a
//! provider, a link and a config is deployed, scaled, loses a host and is undeployed, while the
//! test listens on `wadm.allocation.{lattice}.>` and records the lattice's control traffic. Every
//! effect request a host answered has exactly one event (same count per kind), event ids are
//! unique, and the reason classes say deploy, scale, host lost and undeploy where they should.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::realhost::{Recorder, request_kind};
use common::{Cluster, LATTICE};
use futures::StreamExt;
use wadm_model::StatusType;
use wadm_sim::HostSpec;

fn app(version: &str, instances: u32) -> String {
    let scaler = format!("instances: {instances}");
    common::linked_web_app("alloc", version, "ghcr.io/example/web:1.0.0", &scaler)
}

/// The control command kind of an effect request's subject (`None`: not an effect).
fn command_kind(subject: &str) -> Option<&'static str> {
    Some(match request_kind(subject, LATTICE).as_str() {
        "component.scale" => "scale_component",
        "component.update" => "update_component",
        "provider.start" => "start_provider",
        "provider.stop" => "stop_provider",
        "link.put" => "put_link",
        "link.del" => "delete_link",
        "config.put" => "put_config",
        "config.del" => "delete_config",
        _ => return None,
    })
}

/// Effect requests a host answered, per command kind.
fn answered(recorder: &Recorder) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in recorder.requests() {
        let Some(kind) = command_kind(&r.subject) else { continue };
        if recorder.reply_to(&r).is_some() {
            *out.entry(kind.to_string()).or_default() += 1;
        }
    }
    out
}

type Events = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

fn per_kind(events: &[(String, serde_json::Value)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, e) in events {
        *out.entry(e["data"]["kind"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    out
}

/// Wait until no control request was recorded and no event received for 2 s.
async fn quiet(recorder: &Recorder, events: &Events) {
    recorder.wait_quiet(|| recorder.requests().len() + events.lock().unwrap().len()).await;
}

/// The events received from index `from` on.
fn since(events: &Events, from: usize) -> Vec<(String, serde_json::Value)> {
    events.lock().unwrap()[from..].to_vec()
}

fn classes(events: &[(String, serde_json::Value)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|(_, e)| {
            let d = &e["data"];
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            (s("kind"), s("change"), s("reason_class"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_command_is_one_allocation_event() {
    let hosts = vec![HostSpec::default(), HostSpec::default(), HostSpec::default()];
    let cluster = Cluster::start(1, hosts).await;
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let nats = async_nats::connect(cluster.nats.url()).await.unwrap();
    let mut sub = nats.subscribe(format!("wadm.allocation.{LATTICE}.>")).await.unwrap();
    nats.flush().await.unwrap();
    let events: Events = Arc::default();
    let sink = events.clone();
    let listener = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let event = serde_json::from_slice(&m.payload).expect("an allocation event is JSON");
            sink.lock().unwrap().push((m.subject.to_string(), event));
        }
    });

    // Deploy: everything is new.
    cluster.put_and_deploy(&app("v1", 2)).await;
    cluster
        .wait_lattice("v1 runs", |v| {
            v.count("alloc-web") == 2
                && v.linked("alloc-http", "alloc-web")
                && !v.provider_hosts("alloc-http").is_empty()
        })
        .await;
    cluster.wait_status("alloc", StatusType::Deployed).await.expect("deployed");
    quiet(&recorder, &events).await;
    let deployed = since(&events, 0);
    let seen = classes(&deployed);
    assert!(seen.iter().all(|(_, _, class)| class == "deploy"), "{seen:?}");
    for (kind, change) in [
        ("scale_component", "placed"),
        ("start_provider", "placed"),
        ("put_link", "linked"),
        ("put_config", "config_put"),
    ] {
        assert!(seen.iter().any(|(k, c, _)| k == kind && c == change), "{kind}: {seen:?}");
    }
    let (subject, first) = &deployed[0];
    assert_eq!(subject, &format!("wadm.allocation.{LATTICE}.alloc"));
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["type"], "com.wadm.allocation");
    assert_eq!(first["datacontenttype"], "application/json");
    assert!(first["source"].as_str().is_some_and(|s| s.starts_with("wadm/")), "{first}");
    assert!(first["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{first}");
    assert_eq!(first["data"]["app"], "alloc");
    assert_eq!(first["data"]["outcome"], "accepted");
    let config = deployed.iter().find(|(_, e)| e["data"]["kind"] == "put_config").unwrap();
    let name = config.1["data"]["config"].as_str().unwrap_or_default();
    assert!(name.ends_with("listen"), "{name}");
    assert!(!config.1.to_string().contains("127.0.0.1:8080"), "never config values");

    // Scale up: the component's count changes.
    let from = events.lock().unwrap().len();
    cluster.put_and_deploy(&app("v2", 5)).await;
    cluster.wait_lattice("v2 runs", |v| v.count("alloc-web") == 5).await;
    cluster.wait_status("alloc", StatusType::Deployed).await.expect("deployed v2");
    quiet(&recorder, &events).await;
    let scaled = classes(&since(&events, from));
    assert!(!scaled.is_empty());
    assert!(
        scaled.iter().all(|(k, _, class)| k == "scale_component" && class == "scale"),
        "{scaled:?}"
    );

    // A host with instances of the component crashes: its instances are placed again.
    let from = events.lock().unwrap().len();
    let view = cluster.view();
    let victim = view.component_hosts("alloc-web").into_iter().next().expect("a host runs web");
    let lost: u32 = view
        .components
        .iter()
        .filter(|((h, id), _)| *h == victim && id == "alloc-web")
        .map(|(_, (_, n))| n)
        .sum();
    let had_provider = view.provider_hosts("alloc-http").contains(&victim);
    assert!(cluster.sim.crash_host(&victim).await);
    cluster
        .wait_lattice("replaced", |v| {
            v.count("alloc-web") == 5 && !v.provider_hosts("alloc-http").is_empty()
        })
        .await;
    cluster.wait_status("alloc", StatusType::Deployed).await.expect("deployed after the loss");
    quiet(&recorder, &events).await;
    let replaced = since(&events, from);
    let seen = classes(&replaced);
    let placements: Vec<_> = seen
        .iter()
        .filter(|(k, c, _)| {
            (k == "scale_component" || k == "start_provider") && (c == "placed" || c == "scaled")
        })
        .collect();
    assert!(!placements.is_empty(), "{lost} instances were replaced: {seen:?}");
    assert!(placements.iter().all(|(_, _, class)| class == "host_lost"), "{seen:?}");
    if had_provider {
        assert!(seen.iter().any(|(k, _, c)| k == "start_provider" && c == "host_lost"), "{seen:?}");
    }
    for (_, e) in &replaced {
        assert_ne!(e["data"]["host_id"], victim.as_str(), "nothing is sent to the lost host");
    }
    // The application's history says so, with what went where.
    let history = cluster.client.history("alloc").await.expect("history");
    let noted: Vec<_> = history.iter().filter(|h| h.action.to_string() == "host_lost").collect();
    // (One entry per step that placed some of it: usually one.)
    assert!(!noted.is_empty() && noted.len() <= 2, "{history:#?}");
    for entry in &noted {
        let reason = entry.reason.clone().unwrap_or_default();
        assert!(reason.starts_with("a host left; re-placed "), "{reason}");
        assert!(reason.contains("alloc-web on ") || reason.contains("alloc-http on "), "{reason}");
        assert_eq!(entry.actor, "wadm");
    }

    // Undeploy: everything wadm placed is removed.
    let from = events.lock().unwrap().len();
    cluster.client.undeploy("alloc").await.expect("undeploy");
    cluster
        .wait_lattice("cleared", |v| {
            v.count("alloc-web") == 0
                && v.provider_hosts("alloc-http").is_empty()
                && !v.linked("alloc-http", "alloc-web")
        })
        .await;
    quiet(&recorder, &events).await;
    let removed = classes(&since(&events, from));
    assert!(removed.iter().all(|(_, _, class)| class == "undeploy"), "{removed:?}");
    for (kind, change) in
        [("scale_component", "removed"), ("stop_provider", "removed"), ("delete_link", "unlinked")]
    {
        assert!(removed.iter().any(|(k, c, _)| k == kind && c == change), "{kind}: {removed:?}");
    }

    // One event per answered effect request, per kind; ids unique; every one classified.
    let all = events.lock().unwrap().clone();
    assert_eq!(per_kind(&all), answered(&recorder), "events vs answered requests");
    let ids: BTreeSet<&str> = all.iter().map(|(_, e)| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "event ids are unique");
    assert!(classes(&all).iter().all(|(_, _, class)| class != "unknown"));
    listener.abort();
    cluster.shutdown().await;
}
