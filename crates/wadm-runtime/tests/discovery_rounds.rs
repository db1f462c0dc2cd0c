//! Discovery rounds of the real runtime on NATS: one at start-up, one per period (its message id
//! names the period, so replicas' rounds of one period are stored once), and one when an event
//! comes from a host wadm does not know. Every round's answers reach the event stream as a
//! `wadm.internal.L.discovered` message (merged in order by the pipeline).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use wadm_runtime::{RunConfig, run};
use wadm_test_support::{NatsServer, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);
const DISCOVERED: &str = "wadm.internal.default.discovered";

/// The message ids of the `discovered` messages published so far.
fn watch_rounds(sub: async_nats::Subscriber) -> Arc<Mutex<Vec<String>>> {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = ids.clone();
    tokio::spawn(async move {
        let mut sub = sub;
        while let Some(m) = sub.next().await {
            let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
            seen.lock().unwrap().push(id.unwrap_or_default());
        }
    });
    ids
}

fn config(every: Duration, min_gap: Duration) -> RunConfig {
    let mut config = RunConfig::new(vec!["default".into()]);
    config.runtime.tick_every = Duration::from_secs(1);
    config.poll_wait = Duration::from_millis(200);
    config.discovery.gather_window = Duration::from_millis(100);
    config.discovery_every = every;
    config.discovery_min_gap = min_gap;
    config
}

/// The runtime on a server of its own, its rounds watched from before it starts.
struct Running {
    client: async_nats::Client,
    /// The message ids of its rounds (see [`watch_rounds`]).
    ids: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), wadm_runtime::RunError>>,
    /// Last, so it is dropped last.
    _nats: NatsServer,
}

impl Running {
    async fn start(config: RunConfig) -> Self {
        let nats = NatsServer::start();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let ids = watch_rounds(client.subscribe(DISCOVERED).await.unwrap());
        client.flush().await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(config, client.clone(), async move {
            let _ = stopped.await;
        }));
        Self { client, ids, stop, task, _nats: nats }
    }

    /// Stop the runtime; it must have run without error.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().expect("runtime ran");
    }
}

async fn rounds_reach(ids: &Arc<Mutex<Vec<String>>>, wanted: impl Fn(&[String]) -> bool) -> bool {
    wait_for(DEADLINE, || async { wanted(&ids.lock().unwrap()).then_some(()) }).await.is_some()
}

#[tokio::test]
async fn a_round_runs_at_start_up_and_then_once_per_period() {
    let running =
        Running::start(config(Duration::from_millis(700), Duration::from_secs(3600))).await;
    let ids = running.ids.clone();

    let periodic = |ids: &[String]| ids.iter().filter(|id| id.contains(".period.")).count();
    let ok = rounds_reach(&ids, |ids| periodic(ids) >= 2).await;
    let seen = ids.lock().unwrap().clone();
    assert!(ok, "two periodic rounds: {seen:?}");
    assert!(
        seen[0].starts_with("discovered.default.") && !seen[0].contains(".period."),
        "{seen:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn an_event_from_an_unknown_host_starts_a_round() {
    // No periodic round within the test; every doubt starts a round.
    let running = Running::start(config(Duration::from_secs(3600), Duration::ZERO)).await;
    let ids = running.ids.clone();
    // The start-up round, then one because the first step read state back (nothing was kept);
    // after that this lone replica keeps its state and nothing is in doubt.
    assert!(rounds_reach(&ids, |ids| ids.len() >= 2).await, "{:?}", ids.lock().unwrap());
    let before = ids.lock().unwrap().len();

    let event = serde_json::json!({
        "specversion": "1.0", "id": "stranger-1", "source": "NSTRANGER",
        "type": "com.wasmcloud.lattice.component_scaled", "time": "2026-01-01T00:00:00.000Z",
        "datacontenttype": "application/json",
        "data": {"host_id": "NSTRANGER", "component_id": "echo", "image_ref": "img",
                 "max_instances": 1, "annotations": {}}
    });
    let js = async_nats::jetstream::new(running.client.clone());
    let subject = "wasmbus.evt.default.component_scaled";
    js.publish(subject, serde_json::to_vec(&event).unwrap().into()).await.unwrap().await.unwrap();
    let ok = rounds_reach(&ids, |ids| ids.len() > before).await;
    assert!(ok, "a round after the unknown host's event: {:?}", ids.lock().unwrap());

    running.stop().await;
}
