//! The client against the real wadm API server (started in-process on a real NATS).

use std::time::Duration;

use futures::StreamExt;
use wadm_client::api::{DeleteResult, DeployResult, PutResult};
use wadm_client::{Client, ClientError, ConnectOptions, StatusType};
use wadm_server::{Server, ServerConfig};
use wadm_test_support::{NatsServer, wait_for};

/// A running server; dropping it stops wadm (then NATS).
struct Running {
    client: Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _nats: NatsServer,
}

async fn start(lattice: &str) -> Running {
    let nats = NatsServer::start();
    let conn = ConnectOptions::new(nats.url()).connect().await.unwrap();
    // A short host probe: deploys on these host-less lattices turn `waiting` quickly.
    let config =
        ServerConfig { probe_window: Duration::from_millis(300), ..ServerConfig::default() };
    let server = Server::start(conn.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = Client::new(conn, lattice, None).with_actor("client-test");
    Running { client, _stop: stop, _nats: nats }
}

fn manifest(name: &str, version: &str) -> String {
    wadm_test_support::hello_manifest(name, version, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle() {
    let wadm = start("lat-a").await;
    let c = &wadm.client;

    let put = c.put_manifest(manifest("hello", "v1"), Some("application/yaml")).await.unwrap();
    assert_eq!(
        (put.result, put.name.as_str(), put.current_version.as_str()),
        (PutResult::Created, "hello", "v1")
    );
    let put = c.put_manifest(manifest("hello", "v2"), None).await.unwrap();
    assert_eq!((put.result, put.total_versions), (PutResult::NewVersion, 2));

    let list = c.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].name.as_str(), list[0].version.as_str()), ("hello", "v2"));
    assert_eq!(list[0].deployed_version, None);

    let v1 = c.get("hello", Some("v1")).await.unwrap();
    assert_eq!(v1["metadata"]["annotations"]["version"], "v1");
    let current = c.get("hello", None).await.unwrap();
    assert_eq!(current["metadata"]["annotations"]["version"], "v2");

    let versions = c.versions("hello").await.unwrap();
    let names: Vec<_> = versions.iter().map(|v| (v.version.as_str(), v.deployed)).collect();
    assert_eq!(names, [("v1", false), ("v2", false)]);

    let mut watch = c.watch_status("hello").await.unwrap();
    let deployed = c.deploy("hello", Some("v1")).await.unwrap();
    assert_eq!(deployed.result, DeployResult::Acknowledged);
    assert_eq!(deployed.version.as_deref(), Some("v1"));
    // The deploy is published on the status subject (reconciling, then waiting: no hosts).
    let published = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap();
    let published = published.unwrap().unwrap();
    assert_ne!(published.status.status_type, StatusType::Undeployed, "{published:?}");
    let waiting = wait_for(Duration::from_secs(10), || async {
        let s = c.status("hello").await.ok()?;
        (s.status.status_type == StatusType::Waiting).then_some(s)
    })
    .await
    .expect("a deploy on a lattice without hosts ends up waiting");
    assert!(waiting.status.message.contains("no hosts"), "{waiting:?}");
    let versions = c.versions("hello").await.unwrap();
    assert!(versions.iter().any(|v| v.version == "v1" && v.deployed), "{versions:?}");

    let undeployed = c.undeploy("hello").await.unwrap();
    assert_eq!(undeployed.result, DeployResult::Acknowledged);
    let status = c.status("hello").await.unwrap();
    assert_eq!(status.status.status_type, StatusType::Undeployed);

    let history = c.history("hello").await.unwrap();
    let actions: Vec<_> = history.iter().map(|h| h.action.clone()).collect();
    use wadm_client::HistoryAction::*;
    assert_eq!(actions, [Put, Put, Deploy, Undeploy]);
    assert!(history.iter().all(|h| h.actor == "client-test"), "{history:?}");

    let deleted = c.delete("hello", Some("v1")).await.unwrap();
    assert_eq!(deleted.result, DeleteResult::Deleted);
    assert_eq!(c.versions("hello").await.unwrap().len(), 1);
    let deleted = c.delete("hello", None).await.unwrap();
    assert_eq!(deleted.result, DeleteResult::Deleted);
    assert!(c.list().await.unwrap().is_empty());
    let again = c.delete("hello", None).await.unwrap();
    assert_eq!(again.result, DeleteResult::Noop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed() {
    let wadm = start("lat-b").await;
    let c = &wadm.client;
    for result in [
        c.get("missing", None).await.map(|_| ()),
        c.versions("missing").await.map(|_| ()),
        c.deploy("missing", None).await.map(|_| ()),
        c.status("missing").await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ClientError::NotFound { message } if message.contains("missing")),
            "{err}"
        );
    }
    let first = c.put_manifest(manifest("dup", "v1"), None).await.unwrap();
    // The same again stores nothing; other content under v1 is refused.
    let again = c.put_manifest(manifest("dup", "v1"), None).await.unwrap();
    assert!(again.unchanged && again.revision == first.revision, "{again:?}");
    let other = manifest("dup", "v1").replace("instances: 2", "instances: 3");
    assert_ne!(other, manifest("dup", "v1"));
    let err = c.put_manifest(other.clone(), None).await.unwrap_err();
    assert!(matches!(err, ClientError::Api { .. }), "{err}");
    // A stale expected revision is refused, naming the current one.
    let other = other.replace("version: v1", "version: v2");
    let err = c.put_manifest_expecting(other, None, Some(0)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { message } if message.contains("revision 1")),
        "{err}"
    );
    let err = c.deploy_expecting("dup", None, Some(7)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { message } if message.contains("revision 1")),
        "{err}"
    );
    let got = c.get_model("dup", None).await.unwrap();
    assert_eq!(got.revision, Some(1));
    assert_eq!(got.submitted.map(|s| s.text), Some(manifest("dup", "v1")));
    let err = c.put_manifest("not: [a manifest", None).await.unwrap_err();
    assert!(matches!(&err, ClientError::Api { message } if !message.is_empty()), "{err}");
    let err = c.get("dup", Some("v9")).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_prefix_has_no_responders() {
    let wadm = start("lat-c").await;
    let other = Client::new(wadm.client.nats().clone(), "lat-c", Some("other.api"))
        .with_timeout(Duration::from_secs(2));
    let err = other.list().await.unwrap_err();
    assert!(matches!(err, ClientError::NoResponders { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_wait_times_out_on_a_lattice_without_hosts() {
    let wadm = start("lat-d").await;
    let c = &wadm.client;
    c.put_manifest(manifest("lonely", "v1"), None).await.unwrap();
    let mut seen = Vec::new();
    let err = c
        .deploy_and_wait("lonely", None, Duration::from_secs(2), |s| {
            seen.push(s.status.status_type)
        })
        .await
        .unwrap_err();
    let ClientError::WaitTimedOut { name, last: Some(last), .. } = &err else {
        panic!("expected a wait timeout, got {err}");
    };
    assert_eq!((name.as_str(), last.status_type), ("lonely", StatusType::Waiting), "{err}");
    assert!(seen.contains(&StatusType::Waiting), "{seen:?}");
    assert!(err.to_string().contains("waiting for lonely to be deployed"), "{err}");
    let err = c.deploy_and_wait("ghost", None, Duration::from_secs(2), |_| {}).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");
}
