//! Per-request cost of the client against the real API server (in-process) on a real local NATS:
//! `status` and `versions` (20 applications stored). `list` is left out: at the time of writing,
//! each `model.get` makes the server create a JetStream consumer, and a few thousand lists in a
//! row hit the server's consumer limit.
//! Run: `cargo bench -p wadm --bench client_roundtrip` (here, where the client and the server
//! are both dependencies).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wadm_client::{Client, ConnectOptions};
use wadm_server::{Server, ServerConfig};
use wadm_test_support::NatsServer;

fn manifest(name: &str) -> String {
    wadm_test_support::hello_manifest(name, "v1", 1)
}

fn roundtrip(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let nats = NatsServer::start();
    let client = runtime.block_on(async {
        let conn = ConnectOptions::new(nats.url()).connect().await.unwrap();
        let server = Server::start(conn.clone(), ServerConfig::default()).await.unwrap();
        tokio::spawn(server.run(std::future::pending()));
        let client = Client::new(conn, "bench", None);
        for i in 0..20 {
            client.put_manifest(manifest(&format!("app{i}")), None).await.unwrap();
        }
        client.deploy("app0", None).await.unwrap();
        client
    });
    let mut group = c.benchmark_group("client_roundtrip");
    group.sample_size(20).warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("status", |b| b.iter(|| runtime.block_on(client.status("app0")).unwrap()));
    group.bench_function("versions", |b| {
        b.iter(|| runtime.block_on(client.versions("app0")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
