//! The observer retries writes that failed, with the next step, from the current state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wadm_lattice::{Changes, LatticeState, LeaseConfig};
use wadm_nats::{
    DiscoveryConfig, MemoryStateStore, Observer, ObserverConfig, StateStore, StoreError,
};
use wadm_protocol::{CloudEvent, subject};
use wadm_test_support::{NatsServer, wait_for};

/// A store whose first `failures` persists fail.
struct Flaky {
    inner: Arc<MemoryStateStore>,
    failures: AtomicU32,
}

impl StateStore for Flaky {
    async fn load(&self, lattice: &str) -> Result<LatticeState, StoreError> {
        self.inner.load(lattice).await
    }

    async fn persist(&self, state: &LatticeState, changes: &Changes) -> Result<(), StoreError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Io { key: "*".into(), reason: "simulated outage".into() });
        }
        self.inner.persist(state, changes).await
    }
}

#[tokio::test]
async fn a_failed_write_is_retried_with_the_next_step() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let memory = Arc::new(MemoryStateStore::new());
    let store = Flaky { inner: memory.clone(), failures: AtomicU32::new(1) };
    let config = ObserverConfig {
        lattice: "retry".into(),
        lease: LeaseConfig::default(),
        discovery: DiscoveryConfig {
            gather_window: Duration::from_millis(50),
            ..DiscoveryConfig::default()
        },
        rediscover_every: None,
    };
    let observer = Observer::start(client.clone(), store, config).await.unwrap();
    let publish = |short: &str, id: &str, data: serde_json::Value| {
        let ev = CloudEvent::host_event(short, id, "NHOST", "2026-01-01T00:00:00Z", data);
        let client = client.clone();
        let subject = subject::event("retry", short);
        async move {
            client.publish(subject, serde_json::to_vec(&ev).unwrap().into()).await.unwrap();
            client.flush().await.unwrap();
        }
    };
    publish("host_started", "e1", serde_json::json!({"labels": {"zone": "a"}})).await;
    let failed = wait_for(Duration::from_secs(10), || async {
        (observer.stats().store_errors == 1).then_some(())
    })
    .await;
    assert!(failed.is_some(), "the first write should have failed");
    assert!(memory.keys().is_empty());

    let scaled = serde_json::json!({"component_id": "echo", "image_ref": "i", "max_instances": 1});
    publish("component_scaled", "e2", scaled).await;
    let stored = wait_for(Duration::from_secs(10), || async {
        (memory.keys().len() >= 2).then(|| memory.keys())
    })
    .await
    .expect("writes retried");
    assert!(stored.contains(&"retry.host.NHOST".to_string()), "{stored:?}");
    assert!(stored.contains(&"retry.comp.NHOST.echo".to_string()), "{stored:?}");
    observer.stop().await;
}
