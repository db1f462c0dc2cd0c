//! Status published on `wadm.status.{lattice}.{app}` and answered by `model.status`.

use std::time::Duration;

use futures::StreamExt;
use wadm_model::api::*;
use wadm_model::{Status, StatusType};
use wadm_test_support::wait_for;

use crate::common::{Env, manifest};

#[tokio::test]
async fn deploy_without_hosts_reports_waiting_then_undeploy() {
    let env = Env::start().await;
    env.req::<PutModelResponse>("lat1.model.put", &manifest("app", Some("1"))).await;
    let status: StatusResponse = env.req("lat1.model.status.app", "").await;
    assert_eq!(status.result, StatusResult::Ok);
    assert_eq!(status.status.unwrap().status.status_type, StatusType::Undeployed);
    let missing: StatusResponse = env.req("lat1.model.status.nope", "").await;
    assert_eq!(missing.result, StatusResult::NotFound);

    let mut published = env.client.subscribe("wadm.status.lat1.app").await.unwrap();
    let mut events = env.client.subscribe("wadm.evt.lat1.>").await.unwrap();
    env.client.flush().await.unwrap();
    let d: DeployModelResponse = env.req("lat1.model.deploy.app", "").await;
    assert_eq!(d.result, DeployResult::Acknowledged);

    let mut saw = Vec::new();
    while saw.last().map(|s: &Status| s.status.status_type) != Some(StatusType::Waiting) {
        let msg = tokio::time::timeout(Duration::from_secs(10), published.next())
            .await
            .expect("status published")
            .unwrap();
        saw.push(serde_json::from_slice(&msg.payload).unwrap());
    }
    assert_eq!(saw[0].status.status_type, StatusType::Reconciling);
    assert_eq!(&*saw.last().unwrap().status.message, "no hosts in lattice lat1");
    let status: StatusResponse = env.req("lat1.model.status.app", "").await;
    assert_eq!(status.status.unwrap().status.status_type, StatusType::Waiting);
    let list: ListModelsResponse = env.req("lat1.model.get", "").await;
    assert_eq!(list.models[0].status, StatusType::Waiting);
    assert_eq!(list.models[0].status_message.as_deref(), Some("no hosts in lattice lat1"));

    let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap();
    assert_eq!(event.subject.as_str(), "wadm.evt.lat1.manifest_published");
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["source"].as_str()),
        (Some("com.wadm.manifest_published"), Some("wadm"))
    );
    assert_eq!(event["data"]["metadata"]["name"], "app");

    env.req::<DeployModelResponse>("lat1.model.undeploy.app", "").await;
    let undeployed = wait_for(Duration::from_secs(5), || async {
        let s: StatusResponse = env.req("lat1.model.status.app", "").await;
        let s = s.status?;
        (s.status.status_type == StatusType::Undeployed).then_some(s)
    })
    .await
    .expect("undeployed status");
    assert_eq!(&*undeployed.status.message, "Manifest has been undeployed");
    let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap();
    assert_eq!(event.subject.as_str(), "wadm.evt.lat1.manifest_unpublished");
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["data"], serde_json::json!({"name": "app"}));

    // Deleting the application forgets its status.
    env.req::<DeleteModelResponse>("lat1.model.del.app", "").await;
    let js = async_nats::jetstream::new(env.client.clone());
    let stream = js.get_stream("wadm_status").await.unwrap();
    let last = stream.get_last_raw_message_by_subject("wadm.status.lat1.app").await;
    assert!(last.is_err(), "status purged after delete");
}

#[tokio::test]
async fn a_lattice_with_a_host_stays_reconciling() {
    let env = Env::start().await;
    // A fake host that answers pings on lattice "busy".
    let mut pings = env.client.subscribe("wasmbus.ctl.v1.busy.host.ping").await.unwrap();
    let host = env.client.clone();
    tokio::spawn(async move {
        while let Some(ping) = pings.next().await {
            if let Some(reply) = ping.reply {
                let _ = host
                    .publish(
                        reply,
                        r#"{"success":true,"message":"","response":{"id":"N1"}}"#.into(),
                    )
                    .await;
            }
        }
    });
    env.client.flush().await.unwrap();
    env.req::<PutModelResponse>("busy.model.put", &manifest("app", Some("1"))).await;
    env.req::<DeployModelResponse>("busy.model.deploy.app", "").await;
    // Deploy a second app to a host-less lattice as a barrier: once it reports waiting, the first
    // app's probe (started earlier, same window) has finished too.
    env.req::<PutModelResponse>("empty.model.put", &manifest("app", Some("1"))).await;
    env.req::<DeployModelResponse>("empty.model.deploy.app", "").await;
    wait_for(Duration::from_secs(10), || async {
        let s: StatusResponse = env.req("empty.model.status.app", "").await;
        (s.status?.status.status_type == StatusType::Waiting).then_some(())
    })
    .await
    .expect("empty lattice reports waiting");
    let s: StatusResponse = env.req("busy.model.status.app", "").await;
    assert_eq!(s.status.unwrap().status.status_type, StatusType::Reconciling);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_work() {
    let nats = wadm_test_support::NatsServer::start();
    let config = wadm_server::ServerConfig {
        probe_window: Duration::from_millis(800),
        ..crate::common::test_config()
    };
    let server = crate::common::start_server(&nats, config).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let put = client.request("wadm.api.l.model.put", manifest("app", Some("1")).into());
    put.await.unwrap();
    let deploy = client.request("wadm.api.l.model.deploy.app", "".into()).await.unwrap();
    let deploy: DeployModelResponse = serde_json::from_slice(&deploy.payload).unwrap();
    assert_eq!(deploy.result, DeployResult::Acknowledged);
    // The deploy's host probe is still waiting for answers: shutting down must let it finish.
    server.shutdown().await;
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream("wadm_status").await.unwrap();
    let last = stream.get_last_raw_message_by_subject("wadm.status.l.app").await.unwrap();
    let status: Status = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(status.status.status_type, StatusType::Waiting, "{status:?}");
    // And the API no longer answers.
    let after = client.request("wadm.api.l.model.get", "".into()).await;
    assert!(after.is_err(), "no responders after shutdown");
}
