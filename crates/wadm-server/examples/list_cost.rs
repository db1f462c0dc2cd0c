//! What one listing of the manifest bucket costs, consumer-free (`NatsKv::scan`, stream info with
//! a subjects filter + bounded gets) against the former design (one ordered push consumer per
//! listing, reproduced here as the baseline), measured in one run on one `nats-server`, rounds
//! interleaved so machine noise hits both alike. Prints the per-listing cost of each, their ratio
//! and how many consumers each left on the server.
//!
//! Run: `cargo run -p wadm-server --example list_cost [rounds]` (default 100 rounds per size).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv};
use bytes::Bytes;
use futures::StreamExt;
use wadm_store::kv::{Kv, NatsKv};
use wadm_test_support::NatsServer;

/// The former listing: an ordered consumer delivering the last message per subject.
async fn scan_with_consumer(
    store: &kv::Store,
    client: &async_nats::Client,
    pattern: &str,
) -> usize {
    let consumer = store
        .stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: format!("{}{pattern}", store.prefix),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut found = BTreeMap::new();
    if consumer.cached_info().num_pending == 0 {
        return 0;
    }
    let mut messages = consumer.messages().await.expect("messages");
    while let Some(message) = messages.next().await {
        let message = message.expect("message");
        let info = message.info().expect("info");
        let live = message.headers.as_ref().and_then(|h| h.get("KV-Operation")).is_none();
        if live {
            found.insert(message.subject.to_string(), message.payload.clone());
        }
        if info.pending == 0 {
            break;
        }
    }
    found.len()
}

async fn consumers(js: &jetstream::Context, bucket: &str) -> usize {
    let mut stream = js.get_stream(format!("KV_{bucket}")).await.expect("stream");
    stream.info().await.expect("info").state.consumer_count
}

#[tokio::main]
async fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    println!(
        "{:>5} apps  {:>12} {:>12} {:>7}  consumers left",
        "", "consumer", "no consumer", "ratio"
    );
    for apps in [10usize, 100] {
        let bucket = format!("list_cost_{apps}");
        let config = kv::Config { bucket: bucket.clone(), history: 1, ..Default::default() };
        let store = js.create_key_value(config).await.unwrap();
        for i in 0..apps {
            // An index, two versions and three history entries per app, as the store keeps them.
            store.put(format!("l.app{i}.index"), Bytes::from_static(b"{}")).await.unwrap();
            for key in ["v.a", "v.b", "h.1", "h.2", "h.3"] {
                store.put(format!("l.app{i}.{key}"), Bytes::from_static(b"{}")).await.unwrap();
            }
        }
        let kv = NatsKv::new(store.clone());
        let (mut with_consumer, mut without) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let start = Instant::now();
            assert_eq!(scan_with_consumer(&store, &client, "l.*.index").await, apps);
            with_consumer += start.elapsed();
            let start = Instant::now();
            assert_eq!(kv.scan("l.*.index").await.unwrap().len(), apps);
            without += start.elapsed();
        }
        let (a, b) = (with_consumer / rounds, without / rounds);
        println!(
            "{apps:>5} apps  {a:>12.2?} {b:>12.2?} {:>6.2}x  {} after {rounds} listings each (the baseline's)",
            b.as_secs_f64() / a.as_secs_f64(),
            consumers(&js, &bucket).await,
        );
    }
}
