//! The API on a 3-node JetStream cluster whose streams have no leader (two nodes killed: the
//! one left cannot elect). Read-only requests still answer, from the node left, within the
//! read budget and marked `Wadm-Stale: true`; a read that finds nothing there is a retryable
//! error, never `notfound`; a write is refused as retryable before it writes. JetStream's
//! answers then never make a stream look gone ([`wadm_store::availability::check_exist`]), while
//! a deleted one is.

use std::time::{Duration, Instant};

use serde_json::Value;
use wadm_lattice::{HostState, LatticeState};
use wadm_server::api::{ReadBudget, STALE_HEADER};
use wadm_server::{Server, ServerConfig};
use wadm_store::availability::{Checked, check_exist};
use wadm_store::observed::records::Write;
use wadm_test_support::{NatsCluster, hello_manifest, wait_for};

const LATTICE: &str = "default";

struct Reply {
    body: Value,
    stale: bool,
    took: Duration,
}

async fn ask(client: &async_nats::Client, operation: &str, body: &str) -> Option<Reply> {
    let subject = format!("wadm.api.{LATTICE}.{operation}");
    let asked = Instant::now();
    let request = client.request(subject, body.to_string().into());
    let reply = tokio::time::timeout(Duration::from_secs(10), request).await.ok()?.ok()?;
    let stale = reply.headers.as_ref().and_then(|h| h.get(STALE_HEADER)).map(|v| v.as_str());
    Some(Reply {
        body: serde_json::from_slice(&reply.payload).expect("JSON reply"),
        stale: stale == Some("true"),
        took: asked.elapsed(),
    })
}

/// The first reply to `operation` read from a replica: each stream's leader on the node left
/// steps down on its own schedule, so a stream another read found leaderless may still answer.
async fn stale_reply(client: &async_nats::Client, operation: &str, body: &str) -> Reply {
    let stale = || async { ask(client, operation, body).await.filter(|reply| reply.stale) };
    let reply = wait_for(Duration::from_secs(30), stale).await;
    reply.unwrap_or_else(|| panic!("{operation} answered from a replica, marked stale"))
}

fn result(reply: &Reply) -> &str {
    reply.body["result"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leaders_reads_answer_marked_stale_and_writes_ask_to_retry() {
    let mut cluster = NatsCluster::start(3);
    assert!(cluster.wait_ready(Duration::from_secs(30)).await, "cluster ready");
    let client = async_nats::connect(cluster.url(0)).await.unwrap();
    let budget =
        ReadBudget { leader: Duration::from_millis(1000), any_replica: Duration::from_secs(2) };
    let config = ServerConfig {
        replicas: 3,
        probe_window: Duration::from_millis(200),
        read_budget: budget,
        ..ServerConfig::default()
    };
    let server = Server::start(client.clone(), config).await.expect("server starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let manifest = hello_manifest("kept", "v1", 1);
    let put = ask(&client, "model.put", &manifest).await.expect("put answered");
    assert_eq!(result(&put), "created", "{}", put.body);
    let deployed = ask(&client, "model.deploy.kept", "{}").await.expect("deploy answered");
    assert_eq!(result(&deployed), "acknowledged", "{}", deployed.body);
    let listed = ask(&client, "model.get", "").await.expect("list answered");
    assert!(!listed.stale, "current while the leaders answer: {}", listed.body);

    // "Not found" only for what JetStream says does not exist.
    let js = async_nats::jetstream::new(client.clone());
    let gone = async_nats::jetstream::stream::Config {
        name: "gone".into(),
        subjects: vec!["gone.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    js.create_stream(gone).await.unwrap();
    js.delete_stream("gone").await.unwrap();
    let streams = ["KV_wadm_manifests".to_string(), "wadm_status".to_string()];
    let wait = Duration::from_secs(2);
    assert_eq!(check_exist(&js, &streams, &[], wait).await, Checked::Present);
    let with_gone = [streams[0].clone(), "gone".to_string()];
    let checked = check_exist(&js, &with_gone, &[], wait).await;
    assert_eq!(checked, Checked::Missing(vec!["gone".into()]));

    // The runtime's observed state (here written as it would): one host, in the view.
    let observed = wadm_store::provision::bucket_config(
        &wadm_store::StoreNames::default().observed_bucket(),
        wadm_store::observed::OBSERVED_DESCRIPTION,
        3,
    );
    let provision = wadm_store::Provisioner::new(js.clone());
    let observed = provision.bucket(observed, wadm_store::observed::BUCKET_DIRECT_GETS).await;
    let observed = observed.expect("observed bucket");
    let mut state = LatticeState { lattice: LATTICE.into(), ..LatticeState::default() };
    let host = HostState { id: "NSEEN".into(), last_seen: 1_700_000_000_000, ..Default::default() };
    state.hosts.insert(host.id.clone(), host);
    for write in wadm_store::observed::records::writes_for_all(&state) {
        if let Write::Put { key, value } = write {
            observed.put(key, value.into()).await.expect("written");
        }
    }
    let hosts = ask(&client, "lattice.hosts", "").await.expect("hosts answered");
    assert!(!hosts.stale && result(&hosts) == "success", "{}", hosts.body);
    assert_eq!(hosts.body["hosts"][0]["id"], "NSEEN", "{}", hosts.body);

    cluster.kill(1);
    cluster.kill(2);
    let killed = Instant::now();
    // Node 0 may lead a stream for a moment after the others are gone (until it steps down):
    // poll until the reads come from a replica.
    let stale = stale_reply(&client, "model.get", "").await;
    eprintln!("first stale list {:?} after the kill, took {:?}", killed.elapsed(), stale.took);
    for _ in 0..3 {
        let list = ask(&client, "model.get", "").await.expect("list answered");
        assert!(list.stale, "{}", list.body);
        assert!(list.took < Duration::from_secs(4), "list took {:?}", list.took);
        assert_eq!(result(&list), "success", "{}", list.body);
        let models = list.body["models"].as_array().expect("models");
        assert_eq!(models.len(), 1, "{}", list.body);
        assert_eq!(models[0]["name"], "kept");
        assert_eq!(models[0]["deployed_version"], "v1");
        let message = list.body["message"].as_str().unwrap();
        assert!(message.contains("possibly stale"), "{message}");
    }
    // The legacy list (a bare array) says so in the header only.
    let legacy = stale_reply(&client, "model.list", "").await;
    assert!(legacy.stale, "{}", legacy.body);
    assert_eq!(legacy.body[0]["name"], "kept", "{}", legacy.body);
    let got = stale_reply(&client, "model.get.kept", "").await;
    assert!(got.stale && result(&got) == "success", "{}", got.body);
    assert_eq!(got.body["manifest"]["metadata"]["name"], "kept");
    let status = stale_reply(&client, "model.status.kept", "").await;
    assert!(status.stale && result(&status) == "ok", "{}", status.body);
    let hosts = stale_reply(&client, "lattice.hosts", "").await;
    assert_eq!(result(&hosts), "success", "{}", hosts.body);
    assert_eq!(hosts.body["hosts"][0]["id"], "NSEEN", "{}", hosts.body);
    assert!(hosts.took < Duration::from_secs(4), "hosts took {:?}", hosts.took);
    let message = hosts.body["message"].as_str().unwrap();
    assert!(message.contains("possibly stale"), "{message}");
    let of_app = stale_reply(&client, "lattice.hosts", r#"{"app":"kept"}"#).await;
    assert!(of_app.stale && result(&of_app) == "success", "{}", of_app.body);
    let versions = stale_reply(&client, "model.versions.kept", "").await;
    assert!(versions.stale && result(&versions) == "success", "{}", versions.body);
    // A replica that may lag knowing nothing of an application is no proof it does not exist.
    let unknown = ask(&client, "model.get.unknown", "").await.expect("get answered");
    assert_eq!(result(&unknown), "error", "{}", unknown.body);
    assert!(!unknown.stale);
    let message = unknown.body["message"].as_str().unwrap();
    assert!(message.contains("temporarily unavailable"), "{message}");

    // Writes decide on current reads only: refused as retryable, nothing written.
    let put = ask(&client, "model.put", &hello_manifest("new", "v1", 1)).await.expect("answered");
    assert_eq!(result(&put), "error", "{}", put.body);
    let message = put.body["message"].as_str().unwrap();
    assert!(message.contains("temporarily unavailable"), "{message}");
    assert!(put.took < Duration::from_secs(4), "put took {:?}", put.took);
    let deploy = ask(&client, "model.deploy.kept", "{}").await.expect("deploy answered");
    assert_eq!(result(&deploy), "error", "{}", deploy.body);
    let message = deploy.body["message"].as_str().unwrap();
    assert!(message.contains("temporarily unavailable"), "{message}");

    // Leader-less streams are not gone.
    let checked = check_exist(&js, &streams, &[], wait).await;
    assert!(!matches!(checked, Checked::Missing(_)), "{checked:?}");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
}
