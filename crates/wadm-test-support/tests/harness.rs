//! The harness itself: a real server starts, serves JetStream, runs beside another, and cleans up.

use std::time::Duration;

use futures::StreamExt;
use wadm_test_support::{NatsServer, wait_for};

#[tokio::test]
async fn starts_with_jetstream_and_cleans_up() {
    let server = NatsServer::start();
    let store = server.store_dir().to_path_buf();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client.clone());
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "harness".into(),
            ..Default::default()
        })
        .await
        .expect("JetStream is enabled");
    kv.put("k", "v".into()).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().unwrap().as_ref(), b"v");
    assert!(store.exists());
    drop(client);
    drop(server);
    assert!(!store.exists(), "store directory removed on drop");
}

#[tokio::test]
async fn two_servers_at_once_on_different_ports() {
    let a = NatsServer::start();
    let b = NatsServer::start();
    assert_ne!(a.port(), b.port());
    let ca = async_nats::connect(a.url()).await.unwrap();
    let cb = async_nats::connect(b.url()).await.unwrap();
    let mut sub = cb.subscribe("x").await.unwrap();
    cb.flush().await.unwrap();
    // A message published on A must not reach B: the servers are independent.
    ca.publish("x", "from-a".into()).await.unwrap();
    ca.flush().await.unwrap();
    cb.publish("x", "from-b".into()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(first.payload.as_ref(), b"from-b");
}

#[tokio::test]
async fn restart_keeps_the_store() {
    let mut server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "keep".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    kv.put("k", "v".into()).await.unwrap();
    server.restart().unwrap();
    let value = wait_for(Duration::from_secs(15), || {
        let kv = kv.clone();
        async move { kv.get("k").await.ok().flatten() }
    })
    .await;
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
}
