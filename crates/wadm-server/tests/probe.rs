//! The host probe after a deploy against a real nats-server: a burst of deploys pings the
//! lattice once, not once per deploy (every host answers every ping).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use wadm_server::probe::{LatticeProbe, NatsProbe};
use wadm_test_support::NatsServer;

#[tokio::test]
async fn a_lattice_that_answered_is_not_pinged_again_for_a_while() {
    let nats = NatsServer::start();
    let host = async_nats::connect(nats.url()).await.unwrap();
    let pings = Arc::new(AtomicU64::new(0));
    let mut sub = host.subscribe("wasmbus.ctl.v1.default.host.ping").await.unwrap();
    let (counted, replier) = (pings.clone(), host.clone());
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = m.reply {
                let _ = replier.publish(reply, r#"{"success":true,"message":""}"#.into()).await;
            }
        }
    });
    host.flush().await.unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let probe = NatsProbe::new(client, Duration::from_millis(500));
    for _ in 0..100 {
        assert!(probe.has_hosts("default").await.unwrap());
    }
    assert_eq!(pings.load(Ordering::SeqCst), 1, "one ping for a burst of 100 deploys");
    // A lattice without hosts is asked every time (a host may appear any moment).
    assert!(!probe.has_hosts("empty").await.unwrap());
    assert!(!probe.has_hosts("empty").await.unwrap());
}
