//! Several replicas serving one API, and concurrent writers.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use wadm_model::api::*;
use wadm_test_support::NatsServer;

use wadm_server::ServerConfig;

use crate::common::{Env, manifest, start_server, test_config};

#[tokio::test]
async fn two_replicas_share_requests_without_duplicates() {
    let nats = NatsServer::start();
    // Started at the same moment: both create-or-get the same bucket and stream.
    let config_a = ServerConfig { instance_id: "a".into(), ..test_config() };
    let config_b = ServerConfig { instance_id: "b".into(), ..test_config() };
    let (a, b) = tokio::join!(start_server(&nats, config_a), start_server(&nats, config_b));
    let client = async_nats::connect(nats.url()).await.unwrap();
    client.request("wadm.api.default.model.put", manifest("app", Some("1")).into()).await.unwrap();
    // Count replies per request with a raw inbox: exactly one each; both replicas answer some.
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.*")).await.unwrap();
    client.flush().await.unwrap();
    let requests = 200;
    for i in 0..requests {
        client
            .publish_with_reply("wadm.api.default.model.get.app", format!("{inbox}.{i}"), "".into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let mut by_instance = std::collections::BTreeMap::<String, usize>::new();
    while seen.len() < requests {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("all replies arrive")
            .unwrap();
        let got: GetModelResponse = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(got.result, GetResult::Success);
        seen.insert(reply.subject.to_string());
        let instance = reply.headers.as_ref().and_then(|h| h.get("Wadm-Server")).unwrap();
        *by_instance.entry(instance.to_string()).or_default() += 1;
        total += 1;
    }
    // Wait for a straggling duplicate, if any: a request to the same subject acts as a barrier.
    client.request("wadm.api.default.model.get", "".into()).await.unwrap();
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), replies.next()).await {
        total += 1;
    }
    assert_eq!(total, requests, "every request answered exactly once");
    // Queue groups spread randomly: both answer some (all 200 to one has odds of 2^-199).
    assert_eq!(by_instance.keys().collect::<Vec<_>>(), ["a", "b"], "{by_instance:?}");
    assert_eq!(by_instance.values().sum::<usize>(), requests);
    // Stop one: the other still answers.
    a.shutdown().await;
    let after: GetModelResponse = serde_json::from_slice(
        &client.request("wadm.api.default.model.get.app", "".into()).await.unwrap().payload,
    )
    .unwrap();
    assert_eq!(after.result, GetResult::Success);
    b.shutdown().await;
}

#[tokio::test]
async fn ten_concurrent_puts_keep_ten_versions() {
    let env = Env::start().await;
    let puts = (0..10).map(|i| {
        let client = env.client.clone();
        async move {
            let reply = client
                .request(
                    "wadm.api.default.model.put",
                    manifest("app", Some(&format!("v{i}"))).into(),
                )
                .await
                .unwrap();
            serde_json::from_slice::<PutModelResponse>(&reply.payload).unwrap()
        }
    });
    let results = futures::future::join_all(puts).await;
    assert!(results.iter().all(|r| r.result != PutResult::Error), "{results:?}");
    assert_eq!(results.iter().filter(|r| r.result == PutResult::Created).count(), 1);
    let versions: VersionResponse = env.req("default.model.versions.app", "").await;
    let mut names: Vec<_> = versions.versions.iter().map(|v| v.version.clone()).collect();
    names.sort();
    let mut expected: Vec<_> = (0..10).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn one_slot_still_answers_every_request() {
    // A probe window long enough that 10 probes holding the only slot in turn would exceed the
    // 10 s request timeout.
    let config =
        ServerConfig { max_in_flight: 1, probe_window: Duration::from_secs(2), ..test_config() };
    let env = Env::with_config(config).await;
    env.req::<PutModelResponse>("default.model.put", &manifest("app", Some("1"))).await;
    // Deploys carry a follow-up probe; with one slot they must not hold it after replying.
    let requests = (0..30).map(|i| {
        let client = env.client.clone();
        let subject = if i % 3 == 0 {
            "wadm.api.default.model.deploy.app"
        } else {
            "wadm.api.default.model.get.app"
        };
        async move { client.request(subject, "".into()).await.map(|r| r.payload) }
    });
    let replies = futures::future::join_all(requests).await;
    assert!(replies.iter().all(|r| r.is_ok()), "every request answered");
}
