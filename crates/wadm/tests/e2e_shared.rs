//! End to end, on real NATS with simulated hosts: a shared application is protected while
//! deployed applications use it (issue 14). Undeploy and delete are refused, naming the
//! dependents, and change nothing on the hosts; forced, the shared application goes and its
//! dependents wait for it (never `failed`); deployed again, everyone converges.

mod common;

use std::time::Duration;

use common::Cluster;
use wadm_client::ClientError;
use wadm_model::StatusType;

/// A dependent of `lib`: its own component, linked from lib's shared provider.
fn dependent(name: &str) -> String {
    common::shared_user_app(name, "lib")
}

const PROVIDER: &str = "lib-httpserver";

fn api_error<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    match result {
        Err(ClientError::Api { message }) => message,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Wait until `name` waits for lib, and check the message names it.
async fn waits_for_lib(cluster: &Cluster, name: &str) {
    let status = cluster.wait_status(name, StatusType::Waiting).await.unwrap();
    assert_eq!(&*status.status.message, "shared application lib not deployed", "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_app_undeploy_refused_forced_then_dependents_status() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("a", 2)])).await;
    let client = &cluster.client;
    cluster.put_and_deploy(&common::shared_http_app("lib")).await;
    cluster.wait_status("lib", StatusType::Deployed).await.unwrap();
    cluster.put_and_deploy(&dependent("app")).await;
    cluster
        .wait_lattice("app is linked from the shared provider", |v| {
            v.linked(PROVIDER, "app-handler") && v.provider_hosts(PROVIDER).len() == 1
        })
        .await;
    cluster.wait_status("app", StatusType::Deployed).await.unwrap();

    // Refused while app uses it: undeploy, delete, and a delete of the deployed version.
    let before = cluster.view();
    let used = "shared application lib is used by deployed applications: app; \
                undeploy them first or pass force";
    assert_eq!(api_error(client.undeploy("lib").await), used);
    assert_eq!(api_error(client.delete("lib", None).await), used);
    assert_eq!(api_error(client.delete("lib", Some("v1")).await), used);
    let versions = client.versions("lib").await.unwrap();
    assert!(versions.iter().any(|v| v.version == "v1" && v.deployed), "{versions:?}");
    // Nothing moved on the hosts (give the runtime a few ticks to act, were it to).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = cluster.view();
    assert_eq!(after.providers, before.providers);
    assert_eq!(after.components, before.components);
    assert_eq!(after.links, before.links);
    assert_eq!(cluster.status("lib").await.unwrap().status.status_type, StatusType::Deployed);
    assert_eq!(cluster.status("app").await.unwrap().status.status_type, StatusType::Deployed);

    // Forced: lib's provider stops, app waits for lib (its own component keeps running).
    let reply = client.undeploy_with("lib", true).await.expect("forced undeploy");
    assert!(reply.message.contains("(forced: app left waiting for it)"), "{}", reply.message);
    cluster
        .wait_lattice("lib's provider and app's link are gone", |v| {
            v.provider_hosts(PROVIDER).is_empty()
                && !v.linked(PROVIDER, "app-handler")
                && v.count("app-handler") == 1
        })
        .await;
    waits_for_lib(&cluster, "app").await;

    // A second dependent deployed while lib is away waits too: `deploy --wait` keeps waiting.
    client.put_manifest(dependent("app2").into_bytes(), None).await.expect("put app2");
    let waited = client.deploy_and_wait("app2", None, Duration::from_secs(4), |_| {}).await;
    match waited {
        Err(ClientError::WaitTimedOut { last: Some(last), .. }) => {
            assert_eq!(last.status_type, StatusType::Waiting, "{last:?}");
            assert_eq!(&*last.message, "shared application lib not deployed");
        }
        other => panic!("app2 should still wait for lib: {other:?}"),
    }
    waits_for_lib(&cluster, "app2").await;
    // And they keep waiting: never failed.
    for _ in 0..6 {
        for name in ["app", "app2"] {
            let status = cluster.status(name).await.unwrap().status;
            assert_eq!(status.status_type, StatusType::Waiting, "{name}: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // lib is back: both dependents converge.
    client.deploy("lib", None).await.expect("deploy lib again");
    cluster
        .wait_lattice("both dependents are linked from the shared provider", |v| {
            v.provider_hosts(PROVIDER).len() == 1
                && v.linked(PROVIDER, "app-handler")
                && v.linked(PROVIDER, "app2-handler")
        })
        .await;
    for name in ["lib", "app", "app2"] {
        cluster.wait_status(name, StatusType::Deployed).await.unwrap();
    }

    // Deleting lib is refused too while they use it, naming both; forced, it goes.
    let used = "shared application lib is used by deployed applications: app, app2; \
                undeploy them first or pass force";
    assert_eq!(api_error(client.delete("lib", None).await), used);
    let deleted = client.delete_with("lib", None, true).await.expect("forced delete");
    assert!(deleted.undeploy, "{deleted:?}");
    cluster.wait_lattice("lib's provider is gone", |v| v.provider_hosts(PROVIDER).is_empty()).await;
    waits_for_lib(&cluster, "app").await;
    waits_for_lib(&cluster, "app2").await;
    cluster.shutdown().await;
}
