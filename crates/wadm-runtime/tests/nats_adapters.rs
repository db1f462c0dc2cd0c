//! The JetStream adapters against a real nats-server: idempotent setup with racing replicas,
//! msg-id dedupe, per-message TTL, and redelivery of what was not acked.

use std::time::Duration;

use async_nats::jetstream;
use wadm_runtime::io::{Delivery, Inbox, Outbox, Outgoing};
use wadm_runtime::nats::{JsInbox, JsOutbox};
use wadm_store::StoreNames;
use wadm_store::streams::subjects::{command_subject, event_filters, internal_subject};
use wadm_store::streams::{
    StreamSettings, ensure_command_consumer, ensure_event_consumer, ensure_streams,
};
use wadm_test_support::{NatsServer, wait_for};

const DEADLINE: Duration = Duration::from_secs(15);

async fn js(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(nats.url()).await.expect("connect"))
}

fn settings() -> StreamSettings {
    StreamSettings {
        ack_wait: Duration::from_secs(1),
        command_ttl: Duration::from_secs(1),
        ..StreamSettings::default()
    }
}

/// The `n`th tick of lattice `default`, with its own message id.
fn tick(n: u64) -> Outgoing {
    Outgoing {
        subject: internal_subject("default", "tick"),
        payload: format!("{{\"at\":{n}}}").into_bytes(),
        msg_id: format!("t{n}"),
        ttl: None,
    }
}

/// A connection whose server has the streams set up with [`settings`].
async fn js_with_streams(nats: &NatsServer) -> jetstream::Context {
    let js = js(nats).await;
    ensure_streams(&wadm_store::Provisioner::new(js.clone()), &settings()).await.unwrap();
    js
}

/// An empty command to app `app` of lattice `default`, kept `ttl` by the command stream.
fn command(msg_id: &str, ttl: Duration) -> Outgoing {
    Outgoing {
        subject: command_subject("default", "app"),
        payload: b"{}".to_vec(),
        msg_id: msg_id.into(),
        ttl: Some(ttl),
    }
}

async fn message_count(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream).await.unwrap().info().await.unwrap().state.messages
}

#[tokio::test]
async fn two_replicas_racing_set_up_the_same_streams_and_consumers() {
    let nats = NatsServer::start();
    let (a, b) = (js(&nats).await, js(&nats).await);
    let (a, b) = (wadm_store::Provisioner::new(a), wadm_store::Provisioner::new(b));
    let s = settings();
    for round in 0..2 {
        let (ra, rb) = tokio::join!(ensure_streams(&a, &s), ensure_streams(&b, &s));
        let ((ea, ca), (eb, cb)) = (ra.expect("replica a"), rb.expect("replica b"));
        let (x, y) = tokio::join!(
            ensure_event_consumer(&ea, "default", &s),
            ensure_event_consumer(&eb, "default", &s)
        );
        assert_eq!(x.unwrap().cached_info().name, y.unwrap().cached_info().name, "round {round}");
        let (x, y) = tokio::join!(
            ensure_command_consumer(&ca, "default", &s),
            ensure_command_consumer(&cb, "default", &s)
        );
        let x = x.unwrap();
        assert_eq!(x.cached_info().name, y.unwrap().cached_info().name);
        assert_eq!(x.cached_info().config.max_ack_pending, s.max_commands_in_flight);
    }
    let mut events = a.context().get_stream(StoreNames::default().events_stream()).await.unwrap();
    let info = events.info().await.unwrap();
    assert_eq!(info.state.consumer_count, 1);
    let mut commands =
        a.context().get_stream(StoreNames::default().commands_stream()).await.unwrap();
    let info = commands.info().await.unwrap();
    assert_eq!(info.state.consumer_count, 1);
    assert!(info.config.allow_message_ttl);
    let consumer = ensure_event_consumer(&events, "default", &s).await.unwrap();
    let config = &consumer.cached_info().config;
    assert_eq!(config.max_ack_pending, s.event_batch as i64);
    assert_eq!(config.priority_policy, jetstream::consumer::PriorityPolicy::PinnedClient);
    assert!(config.priority_timeout > s.ack_wait, "the pin outlives the ack wait");
}

#[tokio::test]
async fn an_older_event_consumer_is_brought_in_line() {
    let nats = NatsServer::start();
    let js = js(&nats).await;
    let s = settings();
    let (events, _) = ensure_streams(&wadm_store::Provisioner::new(js.clone()), &s).await.unwrap();
    // As an older wadm made it: one at a time, 30 s ack wait, no pin.
    let old = jetstream::consumer::pull::Config {
        durable_name: Some("wadm_events_default".into()),
        filter_subjects: event_filters("default"),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 1,
        ..Default::default()
    };
    events.create_consumer(old).await.unwrap();
    let consumer = ensure_event_consumer(&events, "default", &s).await.unwrap();
    let config = &consumer.cached_info().config;
    // Either the server took the new settings, or the old consumer is used as it is (one at a
    // time, in order): never an error.
    let updated = config.priority_policy == jetstream::consumer::PriorityPolicy::PinnedClient;
    assert!(updated || config.max_ack_pending == 1, "{config:?}");
    assert_eq!(config.ack_wait == s.ack_wait, updated, "{config:?}");
}

#[tokio::test]
async fn same_msg_id_is_stored_once() {
    let nats = NatsServer::start();
    let js = js_with_streams(&nats).await;
    let outbox = JsOutbox::new(js.clone());
    let message = command("cmd-1.0", Duration::from_secs(30));
    let first = outbox.publish(message.clone()).await.unwrap();
    let second = outbox.publish(message.clone()).await.unwrap();
    assert!(!first.duplicate && second.duplicate);
    assert_eq!(first.sequence, second.sequence);
    let other = outbox.publish(Outgoing { msg_id: "cmd-1.1".into(), ..message }).await.unwrap();
    assert!(!other.duplicate);
    assert_eq!(message_count(&js, &StoreNames::default().commands_stream()).await, 2);
}

#[tokio::test]
async fn commands_expire_by_their_ttl() {
    let nats = NatsServer::start();
    let js = js_with_streams(&nats).await;
    let outbox = JsOutbox::new(js.clone());
    let short = command("short", Duration::from_millis(300));
    outbox.publish(short).await.unwrap();
    assert_eq!(message_count(&js, &StoreNames::default().commands_stream()).await, 1);
    let gone = wait_for(DEADLINE, || {
        let js = js.clone();
        async move {
            (message_count(&js, &StoreNames::default().commands_stream()).await == 0).then_some(())
        }
    })
    .await;
    assert!(gone.is_some(), "the stream dropped the message after its TTL");
}

#[tokio::test]
async fn events_go_in_order_to_one_replica_and_a_dead_ones_are_redelivered_first() {
    let nats = NatsServer::start();
    let js = js(&nats).await;
    let s = settings();
    let (events, _) = ensure_streams(&wadm_store::Provisioner::new(js.clone()), &s).await.unwrap();
    let a = JsInbox::new(ensure_event_consumer(&events, "default", &s).await.unwrap());
    let b = JsInbox::new(ensure_event_consumer(&events, "default", &s).await.unwrap());
    let outbox = JsOutbox::new(js.clone());
    let publish = |n: u64| {
        let outbox = outbox.clone();
        async move {
            outbox.publish(tick(n)).await.unwrap();
        }
    };
    for n in 0..3 {
        publish(n).await;
    }
    // Replica A is pinned and takes everything queued as one batch, in order.
    let batch = a.next_batch(16, Duration::from_secs(5)).await.unwrap();
    let seqs: Vec<u64> = batch.iter().map(|d| d.stream_sequence()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(batch.iter().all(|d| d.stored_at().is_some() && d.delivered() == 1));
    // B waits on standby while A pulls.
    assert!(b.next_batch(16, Duration::from_millis(300)).await.unwrap().is_empty());
    // A acks the first, then dies holding the other two; a fourth event arrives.
    let mut batch = batch.into_iter();
    batch.next().unwrap().ack().await.unwrap();
    drop(batch);
    drop(a);
    publish(3).await;
    // Once A's pin lapses, B is pinned: A's unacked events come first, then the new one.
    let mut got = Vec::new();
    let started = std::time::Instant::now();
    while got.len() < 3 && started.elapsed() < DEADLINE {
        for d in b.next_batch(16, Duration::from_millis(500)).await.unwrap_or_default() {
            got.push((d.stream_sequence(), d.delivered()));
            d.ack().await.unwrap();
        }
    }
    assert_eq!(got, vec![(2, 2), (3, 2), (4, 1)]);
    assert!(started.elapsed() < Duration::from_secs(6), "took over in {:?}", started.elapsed());
    assert!(b.next_batch(16, Duration::from_millis(1500)).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_record_stores_on_nats_catch_up_over_the_journal() {
    use wadm_lattice::{Change, Changes, HostState};
    use wadm_runtime::{Loaded, RecordStore};
    use wadm_store::kv::NatsKv;
    use wadm_store::observed::{KvStateStore, StateStore};

    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    let heads = js
        .create_key_value(jetstream::kv::Config { bucket: "heads".into(), ..Default::default() })
        .await
        .unwrap();
    let open = || async { KvStateStore::open(&js, "state").await.unwrap() };
    let a = RecordStore::new(NatsKv::new(heads.clone()), open().await);
    let b = RecordStore::new(NatsKv::new(heads), open().await);
    let add = |record: &mut wadm_runtime::LatticeRecord, id: &str| {
        let host = HostState { id: id.into(), last_seen: 7, ..HostState::default() };
        record.state.hosts.insert(id.into(), host);
        Changes { changes: vec![Change::HostAdded { host: id.into() }], ..Changes::default() }
    };

    let Loaded { mut record, base, .. } = a.checkout("l").await.unwrap();
    let changes = add(&mut record, "N1");
    a.save("l", record, base, &changes).await.unwrap();
    let Loaded { mut record, base, reloaded, .. } = b.checkout("l").await.unwrap();
    assert!(reloaded && record.state.hosts.contains_key("N1"));
    let mut changes = add(&mut record, "N2");
    record.state.hosts.remove("N1");
    changes.changes.push(Change::HostRemoved {
        host: "N1".into(),
        reason: wadm_lattice::RemovalReason::Stopped,
    });
    b.save("l", record, base, &changes).await.unwrap();

    let caught_up = a.checkout("l").await.unwrap();
    assert!(!caught_up.reloaded, "a few steps behind: only the written keys are read");
    let hosts: Vec<&String> = caught_up.record.state.hosts.keys().collect();
    assert_eq!(hosts, vec!["N2"]);
    assert_eq!(caught_up.record.state.hosts["N2"].last_seen, 7);
    let values = a.entities().read("l", &["l.host.N2".into(), "l.host.N1".into()]).await.unwrap();
    assert!(values[0].1.is_some() && values[1].1.is_none(), "{values:?}");
}

#[tokio::test]
async fn a_pinned_replica_that_stops_reading_for_a_long_step_keeps_its_stream() {
    let nats = NatsServer::start();
    let js = js(&nats).await;
    let s = settings();
    let (events, _) = ensure_streams(&wadm_store::Provisioner::new(js.clone()), &s).await.unwrap();
    let a = JsInbox::new(ensure_event_consumer(&events, "default", &s).await.unwrap());
    let outbox = JsOutbox::new(js.clone());
    outbox.publish(tick(0)).await.unwrap();
    let first = a.next_batch(16, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.len(), 1);
    // A long step: the stream is not read for several idle-heartbeat periods.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for d in first {
        d.ack().await.unwrap();
    }
    outbox.publish(tick(1)).await.unwrap();
    let mut got = Vec::new();
    let started = std::time::Instant::now();
    while got.is_empty() && started.elapsed() < DEADLINE {
        let batch = a.next_batch(16, Duration::from_millis(500)).await.expect("no error");
        got.extend(batch.iter().map(|d| d.stream_sequence()));
    }
    assert_eq!(got, vec![2]);
    assert!(started.elapsed() < Duration::from_secs(2), "no pin lost: {:?}", started.elapsed());
}

/// A control request made while the server is frozen is not sent: after the thaw the responder
/// has received only what was asked once the server relayed again, never the frozen-time
/// request delivered late (which, sent, would reach the host seconds later as a repeat).
#[tokio::test]
async fn a_control_request_is_not_written_to_a_frozen_server() {
    use futures::StreamExt;
    use wadm_runtime::io::{ControlClient, IoError};
    use wadm_runtime::nats::NatsControl;

    let nats = NatsServer::start();
    let responder = async_nats::connect(nats.url()).await.expect("connect");
    let mut requests = responder.subscribe("wasmbus.ctl.v1.default.host.get.H").await.unwrap();
    responder.flush().await.unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = received.clone();
    tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            seen.lock().unwrap().push(String::from_utf8_lossy(&msg.payload).into_owned());
            if let Some(reply) = msg.reply {
                let _ = responder
                    .publish(reply, br#"{"success":true,"message":""}"#.to_vec().into())
                    .await;
            }
        }
    });
    let control = NatsControl::new(async_nats::connect(nats.url()).await.expect("connect"));
    let subject = "wasmbus.ctl.v1.default.host.get.H";
    let timeout = Duration::from_millis(500);

    nats.signal("STOP").expect("freeze");
    let frozen = control.request(subject, b"frozen".to_vec(), timeout).await;
    assert!(matches!(frozen, Err(IoError::Timeout { .. })), "{frozen:?}");
    nats.signal("CONT").expect("thaw");
    // Once the server relays again, a request goes through; everything the frozen server held
    // was handled before it.
    let thawed = wait_for(DEADLINE, || async {
        control.request(subject, b"thawed".to_vec(), timeout).await.ok()
    })
    .await;
    assert!(thawed.is_some(), "requests go through after the thaw");
    let received = received.lock().unwrap().clone();
    assert!(
        received.iter().all(|r| r == "thawed"),
        "the frozen-time request arrived: {received:?}"
    );
}
