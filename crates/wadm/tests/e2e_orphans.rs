//! Orphan collection end to end, on simulated hosts with a real nats-server (docs/orphans.md).
//! Orphans are planted behind wadm's back with control requests on the test's own connection
//! (inbox `_PLANT`, which the recorder leaves out), so every request the recorder keeps is one
//! wadm sent. Assertions read the hosts and the recorded control traffic:
//! - `sweep`: objects carrying wadm's full marks for an application nobody manages are removed
//!   once they have been orphaned for the grace period, each with exactly one request, with an
//!   allocation event of class `gc` and a history entry; foreign objects (no marks, another
//!   manager's marks, incomplete marks, names wadm would not derive) and a deployed application
//!   are never touched; an application deleted from the store by hand loses what it ran;
//! - a host that missed an undeploy (cut off while wadm was killed mid-undeploy) comes back after
//!   the restart: what it still runs is swept after the grace period;
//! - `report` marks and reports (log, metric, the lattice record) and sends nothing;
//! - `off` neither marks nor sends anything.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::realhost::{EFFECT_KINDS, Recorder, request_kind};
use common::{Cluster, LATTICE, Replica};
use futures::StreamExt;
use serde_json::{Value, json};
use wadm_model::StatusType;
use wadm_runtime::orphans::OrphanMode;
use wadm_sim::HostSpec;
use wadm_test_support::wait_for;

const GRACE: Duration = Duration::from_secs(3);

fn tune(mode: OrphanMode) -> impl Fn(&mut wadm_runtime::RunConfig) {
    move |config| {
        config.runtime.orphans.mode = mode;
        config.runtime.orphans.grace = GRACE;
        // Removals wait for a discovery round after any doubt (a returning host): run those
        // rounds promptly.
        config.discovery_min_gap = Duration::from_secs(1);
    }
}

fn app(name: &str) -> String {
    common::linked_web_app(name, "v1", "ghcr.io/example/web:1.0.0", "instances: 2")
}

/// The annotations wadm sets on what it places for `app`.
fn wadm_marks(app: &str, scaler: &str) -> Value {
    json!({
        "wasmcloud.dev/managed-by": "wadm",
        "wasmcloud.dev/appspec": app,
        "wasmcloud.dev/scaler": scaler,
        "wasmcloud.dev/spread_name": "default",
    })
}

/// The test's own connection: its requests are not recorded.
async fn planter(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .custom_inbox_prefix("_PLANT")
        .connect(url)
        .await
        .expect("planter connects")
}

async fn ctl(nats: &async_nats::Client, suffix: &str, body: Value) {
    let subject = format!("wasmbus.ctl.v1.{LATTICE}.{suffix}");
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        nats.request(subject.clone(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject}: no reply"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap_or(Value::Null);
    assert_eq!(reply["success"], true, "{subject}: {reply}");
}

async fn plant_component(nats: &async_nats::Client, host: &str, id: &str, annotations: Value) {
    let body = json!({
        "component_ref": format!("ghcr.io/example/{id}:1.0.0"),
        "component_id": id,
        "count": 2,
        "host_id": host,
        "annotations": annotations,
    });
    ctl(nats, &format!("component.scale.{host}"), body).await;
}

async fn plant_provider(nats: &async_nats::Client, host: &str, id: &str, annotations: Value) {
    let body = json!({
        "provider_id": id,
        "provider_ref": format!("ghcr.io/example/{id}:1.0.0"),
        "host_id": host,
        "annotations": annotations,
    });
    ctl(nats, &format!("provider.start.{host}"), body).await;
}

async fn plant_link(nats: &async_nats::Client, source: &str, target: &str, config: &[&str]) {
    let body = json!({
        "source_id": source,
        "target": target,
        "name": "default",
        "wit_namespace": "wasi",
        "wit_package": "keyvalue",
        "interfaces": ["store"],
        "source_config": config,
        "target_config": [],
    });
    ctl(nats, "link.put", body).await;
}

async fn plant_config(nats: &async_nats::Client, name: &str) {
    ctl(nats, &format!("config.put.{name}"), json!({"key": "value"})).await;
}

/// The lattice's head in the runtime's record bucket.
async fn head(js: &async_nats::jetstream::Context) -> Value {
    let Ok(kv) = js.get_key_value(wadm_store::StoreNames::default().runtime_bucket()).await else {
        return Value::Null;
    };
    match kv.get(format!("head.{LATTICE}")).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Wall-clock milliseconds since the epoch (wadm's clock in these tests).
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Effect requests wadm sent (the recorder ignores the planter's).
fn effects(recorder: &Recorder) -> Vec<(String, Value)> {
    recorder
        .requests()
        .into_iter()
        .filter(|r| EFFECT_KINDS.contains(&request_kind(&r.subject, LATTICE).as_str()))
        .map(|r| (r.subject.clone(), serde_json::from_str(&r.body).unwrap_or(Value::Null)))
        .collect()
}

/// Effect requests that name `id` (in the subject or as an id in the body).
fn touching(effects: &[(String, Value)], id: &str) -> Vec<(String, Value)> {
    effects
        .iter()
        .filter(|(subject, body)| {
            subject.ends_with(&format!(".{id}"))
                || ["component_id", "provider_id", "source_id", "target"]
                    .iter()
                    .any(|k| body[*k].as_str() == Some(id))
        })
        .cloned()
        .collect()
}

type Events = Arc<Mutex<Vec<Value>>>;

async fn listen_allocations(url: &str) -> (Events, tokio::task::JoinHandle<()>) {
    let nats = async_nats::connect(url).await.unwrap();
    let mut sub = nats.subscribe(format!("wadm.allocation.{LATTICE}.>")).await.unwrap();
    nats.flush().await.unwrap();
    let events: Events = Arc::default();
    let sink = events.clone();
    let task = tokio::spawn(async move {
        let _nats = nats;
        while let Some(m) = sub.next().await {
            if let Ok(event) = serde_json::from_slice(&m.payload) {
                sink.lock().unwrap().push(event);
            }
        }
    });
    (events, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_swept_after_the_grace_period_and_nothing_else_is_touched() {
    let hosts = vec![HostSpec::default(), HostSpec::default(), HostSpec::default()];
    let cluster = Cluster::start_tuned(1, hosts, tune(OrphanMode::Sweep)).await;
    let url = cluster.nats.url();
    let recorder = Recorder::start(&url, LATTICE, "_PLANT").await;
    let (events, listener) = listen_allocations(&url).await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let nats = planter(&url).await;

    // A deployed application that must stay, and one that will be deleted from the store.
    cluster.put_and_deploy(&app("keep")).await;
    cluster.put_and_deploy(&app("gone")).await;
    cluster.wait_status("keep", StatusType::Deployed).await.expect("keep deployed");
    cluster.wait_status("gone", StatusType::Deployed).await.expect("gone deployed");
    cluster
        .wait_lattice("both run", |v| {
            v.count("keep-web") == 2
                && v.count("gone-web") == 2
                && v.linked("gone-http", "gone-web")
                && v.configs.contains_key("gone-listen")
        })
        .await;
    let keep_before = {
        let v = cluster.view();
        (v.count("keep-web"), v.provider_hosts("keep-http"), v.configs.get("keep-listen").cloned())
    };

    // Planted behind wadm's back: wadm's marks for `ghost`, which nobody ever deployed ...
    let hosts = cluster.sim.hosts();
    let (a, b, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let planted_at = Instant::now();
    plant_component(&nats, a, "ghost-web", wadm_marks("ghost", "ghost-web-spreadscaler")).await;
    plant_provider(&nats, b, "ghost-kv", wadm_marks("ghost", "ghost-kv-provider")).await;
    plant_config(&nats, "ghost-settings").await;
    plant_link(&nats, "ghost-web", "ghost-kv", &["ghost-settings"]).await;
    // ... and foreign objects: no marks, another manager's marks, incomplete marks, a config
    // whose name wadm would not derive, a link from a foreign component.
    plant_component(&nats, a, "foreign-web", json!({})).await;
    let rival = json!({
        "wasmcloud.dev/managed-by": "someone-else",
        "wasmcloud.dev/appspec": "ghost",
        "wasmcloud.dev/scaler": "theirs",
    });
    plant_component(&nats, b, "rival-web", rival).await;
    let half = json!({"wasmcloud.dev/appspec": "ghost", "wasmcloud.dev/scaler": "theirs"});
    plant_component(&nats, c, "half-web", half).await;
    plant_config(&nats, "ghost-Upper").await;
    plant_config(&nats, "foreign-settings").await;
    plant_link(&nats, "foreign-web", "ghost-kv", &["foreign-settings"]).await;

    // The application's entry deleted from the manifest store by hand.
    let manifests =
        js.get_key_value(wadm_store::StoreNames::default().manifest_bucket()).await.unwrap();
    manifests.delete(format!("{LATTICE}.gone.index")).await.expect("delete the index");

    // wadm marks the ghost's objects, then removes them once the grace period is over.
    let marked = wait_for(common::DEADLINE, || async {
        let head = head(&js).await;
        let marks = head["orphans"].as_object().map_or(0, |m| m.len());
        (marks >= 4).then_some(head)
    })
    .await;
    assert!(marked.is_some(), "the ghost's objects are marked: {}", head(&js).await);
    let swept = wait_for(common::DEADLINE, || {
        let v = cluster.view();
        let gone = v.count("ghost-web") == 0
            && v.provider_hosts("ghost-kv").is_empty()
            && !v.linked("ghost-web", "ghost-kv")
            && !v.configs.contains_key("ghost-settings");
        async move { gone.then(|| planted_at.elapsed()) }
    })
    .await;
    let swept = swept.unwrap_or_else(|| panic!("never swept: {:#?}", cluster.view()));
    assert!(swept >= GRACE, "swept {swept:?} after planting, before the grace period");
    cluster
        .wait_lattice("the deleted application's objects are gone", |v| {
            v.count("gone-web") == 0
                && v.provider_hosts("gone-http").is_empty()
                && !v.linked("gone-http", "gone-web")
                && !v.configs.contains_key("gone-listen")
        })
        .await;
    // Settled: no marks left, nothing more sent.
    let settled = wait_for(common::DEADLINE, || async {
        let head = head(&js).await;
        head["orphans"].as_object().is_none_or(|m| m.is_empty()).then_some(())
    })
    .await;
    assert!(settled.is_some(), "marks cleared once the orphans are gone: {}", head(&js).await);

    // Foreign objects and the deployed application are untouched.
    let v = cluster.view();
    for id in ["foreign-web", "rival-web", "half-web"] {
        assert_eq!(v.count(id), 2, "{id} still runs: {v:#?}");
    }
    assert!(v.linked("foreign-web", "ghost-kv"), "the foreign link stays");
    for name in ["ghost-Upper", "foreign-settings"] {
        assert!(v.configs.contains_key(name), "{name} stays");
    }
    let keep_after =
        (v.count("keep-web"), v.provider_hosts("keep-http"), v.configs.get("keep-listen").cloned());
    assert_eq!(keep_after, keep_before, "the deployed application is untouched");
    assert!(v.linked("keep-http", "keep-web"));

    // Exactly one removal per orphan, nothing to any foreign object or to `keep`, and no
    // request with an effect sent twice in the whole run.
    let sent = effects(&recorder);
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for (subject, body) in &sent {
        *seen.entry(format!("{subject} {body}")).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:#?}");
    for id in ["foreign-web", "rival-web", "half-web", "ghost-Upper", "foreign-settings"] {
        assert_eq!(touching(&sent, id), vec![], "nothing is sent about {id}");
    }
    let kinds = |id: &str| -> Vec<String> {
        let mut kinds: Vec<String> =
            touching(&sent, id).iter().map(|(s, _)| request_kind(s, LATTICE)).collect();
        kinds.sort();
        kinds
    };
    // (The executor runs commands in parallel: their order on the wire is not fixed.)
    assert_eq!(kinds("ghost-web"), ["component.scale", "link.del"], "{}", recorder.dump_requests());
    assert_eq!(kinds("ghost-kv"), ["provider.stop"], "{}", recorder.dump_requests());
    assert_eq!(kinds("ghost-settings"), ["config.del"], "{}", recorder.dump_requests());
    let keep_after_deploy: Vec<_> = sent
        .iter()
        .filter(|(s, b)| {
            let removal = s.contains(".component.scale.") && b["count"] == 0
                || s.contains(".provider.stop.")
                || s.ends_with(".link.del")
                || s.contains(".config.del.");
            removal && b.to_string().contains("keep")
        })
        .collect();
    assert!(keep_after_deploy.is_empty(), "keep lost something: {keep_after_deploy:?}");

    // One allocation event of class `gc` per removal; the history of `ghost` says so.
    let gc: Vec<Value> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["reason_class"] == "gc")
        .cloned()
        .collect();
    let mut gc_kinds: Vec<&str> = gc.iter().map(|e| e["data"]["kind"].as_str().unwrap()).collect();
    gc_kinds.sort();
    assert_eq!(gc_kinds, ["delete_config", "delete_link", "scale_component", "stop_provider"]);
    assert!(gc.iter().all(|e| e["data"]["app"] == "ghost" && e["data"]["outcome"] == "accepted"));
    let history = cluster.client.history("ghost").await.expect("ghost has a history");
    assert!(history.iter().any(|h| h.action.to_string() == "gc"), "{history:?}");

    listener.abort();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_host_that_missed_the_undeploy_runs_is_swept_after_the_restart() {
    let hosts = vec![HostSpec::default(), HostSpec::default(), HostSpec::default()];
    let mut cluster = Cluster::start_tuned(1, hosts, tune(OrphanMode::Sweep)).await;
    let url = cluster.nats.url();
    let recorder = Recorder::start(&url, LATTICE, "_PLANT").await;
    let (events, listener) = listen_allocations(&url).await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let scaler = "instances: 3\nspread:\n  - name: all\n    weight: 1";
    let yaml = common::linked_web_app("lost", "v1", "ghcr.io/example/web:1.0.0", scaler);
    cluster.put_and_deploy(&yaml).await;
    cluster.wait_status("lost", StatusType::Deployed).await.expect("deployed");
    cluster.wait_lattice("runs", |v| v.count("lost-web") == 3).await;

    // One host running the component is cut off (no heartbeats, no answers) until wadm lets it go.
    let cut = cluster.view().component_hosts("lost-web")[0].clone();
    let on_cut = cluster
        .view()
        .components
        .get(&(cut.clone(), "lost-web".to_string()))
        .map(|(_, n)| *n)
        .unwrap();
    let faults = cluster.sim.faults(&cut).expect("the host's switches");
    faults.set_pause_heartbeats(true);
    faults.set_ignore_requests(true);
    let dropped = wait_for(common::DEADLINE, || async {
        let hosts = cluster.client.lattice_hosts().await.ok()?;
        hosts.iter().all(|h| h.id != cut).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "wadm lets the silent host go");

    // Undeploy, and kill wadm right after (mid-undeploy).
    cluster.client.undeploy("lost").await.expect("undeploy");
    let replica = cluster.replicas[0].take().expect("the replica");
    replica.kill().await;

    // A new wadm finishes the undeploy on the hosts it knows.
    cluster.replicas[0] = Some(Replica::start_tuned(&url, 1, tune(OrphanMode::Sweep)).await);
    cluster.wait_status("lost", StatusType::Undeployed).await.expect("undeployed");
    cluster
        .wait_lattice("the reachable hosts are clear", |v| {
            v.component_hosts("lost-web") == vec![cut.clone()]
                && v.provider_hosts("lost-http").iter().all(|h| *h == cut)
        })
        .await;
    let forgotten = wait_for(common::DEADLINE, || async {
        let head = head(&js).await;
        head["apps"].get("lost").is_none().then_some(())
    })
    .await;
    assert!(forgotten.is_some(), "the undeployed application is forgotten: {}", head(&js).await);

    // The host comes back still running the component: an orphan, swept after the grace period.
    let back = Instant::now();
    faults.set_ignore_requests(false);
    faults.set_pause_heartbeats(false);
    let swept = wait_for(common::DEADLINE, || {
        let v = cluster.view();
        let clear = v.count("lost-web") == 0 && v.provider_hosts("lost-http").is_empty();
        async move { clear.then(|| back.elapsed()) }
    })
    .await;
    let swept = swept.unwrap_or_else(|| panic!("never swept: {:#?}", cluster.view()));
    assert!(swept >= GRACE, "swept {swept:?} after the host came back: before the grace period");
    // The stop on the returning host was sent once, by orphan collection.
    let sent = effects(&recorder);
    let to_cut: Vec<_> = sent
        .iter()
        .filter(|(s, b)| s.ends_with(&format!(".component.scale.{cut}")) && b["count"] == 0)
        .collect();
    assert_eq!(to_cut.len(), 1, "one stop to the returning host ({on_cut} instances): {to_cut:?}");
    assert_eq!(to_cut[0].1["annotations"]["wasmcloud.dev/appspec"], "lost");
    let gc = wait_for(common::DEADLINE, || {
        let events = events.lock().unwrap().clone();
        let found = events.into_iter().find(|e| {
            e["data"]["host_id"] == cut.as_str()
                && e["data"]["kind"] == "scale_component"
                && e["data"]["count"] == 0
        });
        async move { found }
    })
    .await
    .expect("an allocation event for the stop");
    assert_eq!(gc["data"]["reason_class"], "gc", "{gc}");
    assert_eq!(gc["data"]["app"], "lost");
    listener.abort();
    cluster.shutdown().await;
}

/// Plant a ghost component and a foreign one on the first host; returns when.
async fn plant_ghost(url: &str, host: &str) -> u64 {
    let nats = planter(url).await;
    let at = now_ms();
    plant_component(&nats, host, "ghost-web", wadm_marks("ghost", "ghost-web-spreadscaler")).await;
    plant_component(&nats, host, "foreign-web", json!({})).await;
    at
}

/// Wait until the head was written at least `after_ms` past `since` (wadm's steps went on).
async fn steps_past(js: &async_nats::jetstream::Context, since: u64, after_ms: u64) -> Value {
    let head = wait_for(common::DEADLINE, || async {
        let head = head(js).await;
        (head["updated_at"].as_u64().unwrap_or(0) >= since + after_ms).then_some(head)
    })
    .await;
    head.expect("wadm keeps stepping")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_marks_and_reports_but_sends_nothing() {
    let served =
        common::served::serve_with_hosts(&["--orphans", "report", "--orphan-grace", "2s"], 2).await;
    let url = served.nats_server.url();
    let recorder = Recorder::start(&url, LATTICE, "_PLANT").await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let host = served.sim.hosts()[0].clone();
    let at = plant_ghost(&url, &host).await;
    // Marked, and reported once past the grace period.
    let reported = wait_for(common::DEADLINE, || async {
        let head = head(&js).await;
        let marks = head["orphans"].as_object()?.clone();
        let ghost = marks.iter().find(|(k, _)| k.contains("ghost-web"))?;
        (ghost.1["reported"] == true).then_some(marks)
    })
    .await
    .unwrap_or_else(|| panic!("never reported: {}", served.wadm.output()));
    assert_eq!(reported.len(), 1, "only the ghost is marked: {reported:?}");
    let log = wait_for(common::DEADLINE, || {
        let line = served.wadm.find_line(|l| l.contains("report only").then(|| l.to_string()));
        async move { line }
    })
    .await;
    assert!(log.is_some_and(|l| l.contains("ghost")), "{}", served.wadm.output());
    let metrics = http_get(&format!("http://{}/metrics", served.addr)).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wadm_orphans_reported_total") && l.contains("component")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l.starts_with("wadm_orphans_marked")), "{metrics}");
    // Two grace periods later the ghost still runs and wadm sent nothing.
    steps_past(&js, at, 4_000).await;
    let inventory = served.sim.host_state(&host).expect("host");
    assert!(inventory.components.contains_key("ghost-web"));
    assert!(inventory.components.contains_key("foreign-web"));
    assert_eq!(effects(&recorder), vec![], "report sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_neither_marks_nor_sends_anything() {
    let hosts = vec![HostSpec::default()];
    let cluster = Cluster::start_tuned(1, hosts, tune(OrphanMode::Off)).await;
    let url = cluster.nats.url();
    let recorder = Recorder::start(&url, LATTICE, "_PLANT").await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let host = cluster.sim.hosts()[0].clone();
    let at = plant_ghost(&url, &host).await;
    cluster.wait_lattice("planted", |v| v.count("ghost-web") == 2).await;
    let head = steps_past(&js, at, 2 * GRACE.as_millis() as u64).await;
    assert!(head["orphans"].as_object().is_none_or(|m| m.is_empty()), "{head}");
    assert_eq!(cluster.view().count("ghost-web"), 2);
    assert_eq!(effects(&recorder), vec![], "off sends nothing");
    let history = cluster.client.history("ghost").await;
    assert!(history.is_err() || history.unwrap().is_empty());
    cluster.shutdown().await;
}

/// GET `url` (plain HTTP/1.1, no TLS): the body.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http");
    let (addr, path) =
        rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_is_woken_by_its_deadline_not_by_a_resync() {
    // Resyncs every 10 minutes: within the test only the mark's own deadline can wake the sweep.
    let slow = |config: &mut wadm_runtime::RunConfig| {
        tune(OrphanMode::Sweep)(config);
        config.runtime.tick_every = Duration::from_secs(600);
    };
    let cluster = Cluster::start_tuned(1, vec![HostSpec::default()], slow).await;
    let url = cluster.nats.url();
    let host = cluster.sim.hosts()[0].clone();
    let planted = Instant::now();
    plant_ghost(&url, &host).await;
    let swept = wait_for(common::DEADLINE, || {
        let gone = cluster.view().count("ghost-web") == 0;
        async move { gone.then(|| planted.elapsed()) }
    })
    .await
    .unwrap_or_else(|| panic!("never swept: {:#?}", cluster.view()));
    assert!(swept >= GRACE, "{swept:?}");
    assert!(swept < GRACE * 4, "woken at mark + grace, not much later: {swept:?}");
    assert_eq!(cluster.view().count("foreign-web"), 2);
    cluster.shutdown().await;
}
