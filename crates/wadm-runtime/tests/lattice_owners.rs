//! Lattices spread over the replicas of the real runtime on NATS: with 3 replicas on 3 lattices
//! each replica works off one lattice's events; a replica that stops hands its lattice over at
//! once, one that is killed loses it when its presence runs out, and one that joins takes its
//! share back. After every change, events published on every lattice are worked off (the world:
//! each event consumer's acknowledged floor), not only wadm's own account of who owns what.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio::sync::watch;
use wadm_runtime::nats::JsOutbox;
use wadm_runtime::{Outbox, RunConfig, run, tick_message};
use wadm_test_support::{NatsServer, wait_for};

const DEADLINE: Duration = Duration::from_secs(30);
const LATTICES: [&str; 3] = ["a", "b", "c"];

struct Replica {
    name: String,
    owned: watch::Receiver<BTreeSet<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(url: &str, name: &str) -> Replica {
        let client = async_nats::connect(url).await.expect("connect");
        let mut config = RunConfig::new(LATTICES.iter().map(|l| l.to_string()).collect());
        config.replica = name.to_string();
        config.poll_wait = Duration::from_millis(200);
        config.discovery.gather_window = Duration::from_millis(50);
        config.streams.ack_wait = Duration::from_secs(2);
        let (tell, owned) = watch::channel(BTreeSet::new());
        config.owned = Some(tell);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(config, client, async move {
                let _ = stopped.await;
            })
            .await
            .expect("runtime ran");
        });
        Replica { name: name.to_string(), owned, stop: Some(stop), task }
    }

    fn owned(&self) -> BTreeSet<String> {
        self.owned.borrow().clone()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }

    /// As if the process died: no goodbye, no hand-over.
    fn kill(self) {
        self.task.abort();
    }
}

/// Whether `replicas` own the lattices one each (3 replicas) or all between them, disjointly.
fn spread(replicas: &[&Replica]) -> bool {
    let sets: Vec<BTreeSet<String>> = replicas.iter().map(|r| r.owned()).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<&String> = sets.iter().flatten().collect();
    let cap = LATTICES.len().div_ceil(replicas.len());
    total == LATTICES.len() && union.len() == LATTICES.len() && sets.iter().all(|s| s.len() <= cap)
}

async fn wait_spread(replicas: &[&Replica], what: &str) {
    let ok = wait_for(DEADLINE, || async { spread(replicas).then_some(()) }).await;
    let owned: Vec<(String, BTreeSet<String>)> =
        replicas.iter().map(|r| (r.name.clone(), r.owned())).collect();
    assert!(ok.is_some(), "{what}: lattices not spread: {owned:?}");
}

/// Publish a tick on every lattice and wait until every event consumer acknowledged it.
async fn every_lattice_works(js: &jetstream::Context, round: u64, what: &str) -> Duration {
    let started = Instant::now();
    let outbox = JsOutbox::new(js.clone());
    let mut sequences = Vec::new();
    for lattice in LATTICES {
        let tick = tick_message(lattice, 1_000_000 + round, Duration::from_millis(1));
        let published = outbox.publish(tick).await.expect("tick stored");
        sequences.push((lattice, published.sequence));
    }
    let stream = js.get_stream("wadm_events").await.expect("event stream");
    for (lattice, sequence) in sequences {
        let name = format!("wadm_events_{lattice}");
        let done = wait_for(DEADLINE, || async {
            let info = stream.consumer_info(&name).await.ok()?;
            (info.ack_floor.stream_sequence >= sequence).then_some(())
        })
        .await;
        assert!(done.is_some(), "{what}: lattice {lattice} did not work off event {sequence}");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lattices_spread_over_replicas_and_move_when_replicas_come_and_go() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());

    let r1 = Replica::start(&nats.url(), "r1").await;
    let r2 = Replica::start(&nats.url(), "r2").await;
    let r3 = Replica::start(&nats.url(), "r3").await;
    wait_spread(&[&r1, &r2, &r3], "three replicas").await;
    every_lattice_works(&js, 1, "three replicas").await;
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.owned().len(), 1, "{} works off one lattice", r.name);
    }

    // A graceful stop hands the lattice over at once (no pin timeout to wait for).
    r2.stop().await;
    wait_spread(&[&r1, &r3], "r2 stopped").await;
    let took = every_lattice_works(&js, 2, "r2 stopped").await;
    eprintln!("events worked off {took:?} after a graceful stop");

    // A newcomer takes its share back from whoever held two.
    let r4 = Replica::start(&nats.url(), "r4").await;
    wait_spread(&[&r1, &r3, &r4], "r4 joined").await;
    every_lattice_works(&js, 3, "r4 joined").await;
    assert_eq!(r4.owned().len(), 1, "the newcomer works off one lattice");

    // A killed replica's lattice moves once its presence runs out and its pin times out.
    let killed_at = Instant::now();
    let killed = r4.owned();
    r4.kill();
    wait_spread(&[&r1, &r3], "r4 killed").await;
    every_lattice_works(&js, 4, "r4 killed").await;
    eprintln!("lattice {killed:?} worked off again {:?} after a kill", killed_at.elapsed());

    r1.stop().await;
    r3.stop().await;
}
