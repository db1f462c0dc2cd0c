//! The `Kv` contract on real JetStream: the same behaviour as the in-process `MemoryKv`.

use bytes::Bytes;
use wadm_store::kv::{Kv, MemoryKv, NatsKv};
use wadm_test_support::NatsServer;

async fn exercise(kv: &impl Kv) -> Vec<String> {
    let mut log = Vec::new();
    let r1 = kv.create("l.a.index", Bytes::from_static(b"1")).await.unwrap();
    log.push(format!("{:?}", kv.create("l.a.index", Bytes::new()).await.map(drop)));
    let r2 = kv.update("l.a.index", Bytes::from_static(b"2"), r1).await.unwrap();
    log.push(format!("{:?}", kv.update("l.a.index", Bytes::new(), r1).await.map(drop)));
    assert!(r2 > r1);
    kv.put("l.b.index", Bytes::from_static(b"b")).await.unwrap();
    kv.put("l.b.v.x", Bytes::from_static(b"v")).await.unwrap();
    kv.put("m.c.index", Bytes::from_static(b"c")).await.unwrap();
    kv.delete("l.b.index").await.unwrap();
    kv.delete("l.never").await.unwrap();
    log.push(format!("{:?}", kv.get("l.b.index").await.unwrap()));
    let scanned: Vec<_> =
        kv.scan("l.*.index").await.unwrap().into_iter().map(|(k, e)| (k, e.value)).collect();
    log.push(format!("{scanned:?}"));
    log.push(format!("{:?}", kv.scan("z.>").await.unwrap()));
    // A deleted key can be created again.
    log.push(format!("{:?}", kv.create("l.b.index", Bytes::from_static(b"again")).await.map(drop)));
    log.push(format!("{:?}", kv.get("l.b.index").await.unwrap().map(|e| e.value)));
    log
}

#[tokio::test]
async fn nats_kv_behaves_like_memory_kv() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let bucket = |name: &str| async_nats::jetstream::kv::Config {
        bucket: name.into(),
        ..Default::default()
    };
    let direct = wadm_store::provision::DirectGets::On;
    let provision = wadm_store::Provisioner::new(js.clone());
    let store = provision.bucket(bucket("kv_contract"), direct);
    let on_nats = exercise(&NatsKv::new(store.await.unwrap())).await;
    let in_memory = exercise(&MemoryKv::default()).await;
    assert_eq!(on_nats, in_memory);
    // Read from any replica (here the only one): the same.
    let store = provision.bucket(bucket("kv_any"), direct);
    assert_eq!(exercise(&NatsKv::new(store.await.unwrap()).any_replica()).await, in_memory);
    assert!(on_nats[0].contains("Conflict") && on_nats[1].contains("Conflict"), "{on_nats:?}");
    assert_eq!(on_nats[2], "None");
    assert_eq!(on_nats[3], r#"[("l.a.index", b"2")]"#);
    assert_eq!(on_nats[4], "[]");
    assert_eq!((on_nats[5].as_str(), on_nats[6].as_str()), ("Ok(())", r#"Some(b"again")"#));
}
