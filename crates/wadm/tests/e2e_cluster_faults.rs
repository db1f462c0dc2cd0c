//! Faults of a 3-node JetStream cluster under a deploy burst: one wadm replica per node, each
//! connected to EVERY node (its own first) so it can fail over, as are the simulated hosts. A
//! node that leads wadm's event stream is killed (and restarted) or frozen (SIGSTOP, then
//! thawed) while applications converge; another node is lost for good. Each time, read from the
//! simulated hosts: every application converges to exactly its target, no component ever runs
//! above it, and wadm sends one `component.scale` request per placement — nothing repeated.
//! The API must answer through a live node within [`API_DEADLINE`] of the fault.
//!
//! Measured figures are printed with `eprintln!` (run with `--nocapture`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{LATTICE, Replica};
use wadm_model::StatusType;
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsCluster, wait_for};

const NODES: usize = 3;
const HOSTS: usize = 4;
const INSTANCES: u32 = 4;
/// How long after a fault the API must answer through a live node.
const API_DEADLINE: Duration = Duration::from_secs(5);
/// Deadline of convergence after a fault (typically seconds).
const CONVERGE: Duration = Duration::from_secs(60);
/// After convergence, how long the hosts are watched for late (repeated) requests: longer than
/// the replicas' ack wait (2 s) plus a resync tick, so a redelivered step would show.
const QUIET_WINDOW: Duration = Duration::from_secs(4);

/// The cluster tests share two cores and measure seconds: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The name of wadm's event stream: the one place that names it (crate paths and name prefixes
/// are moving elsewhere).
fn event_stream_name() -> String {
    wadm_runtime::nats::EVENT_STREAM.to_string()
}

fn app(i: usize) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: app{i}
  annotations:
    version: v1
spec:
  components:
    - name: c
      type: component
      properties:
        image: ghcr.io/example/c{i}:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: {INSTANCES}
"#
    )
}

/// Every node's URL, node `first`'s first.
fn urls_from(cluster: &NatsCluster, first: usize) -> String {
    let mut urls = vec![cluster.url(first)];
    urls.extend((0..cluster.size()).filter(|i| *i != first).map(|i| cluster.url(i)));
    urls.join(",")
}

/// A connection to every node (node `first` first), made the way wadm itself connects.
async fn connect_all(cluster: &NatsCluster, first: usize) -> async_nats::Client {
    let options = wadm_server::NatsOptions::new(urls_from(cluster, first));
    wadm_server::connect(&options).await.unwrap_or_else(|e| panic!("connect to all nodes: {e}"))
}

/// A cluster, one replica per node and [`HOSTS`] simulated hosts.
struct Rig {
    cluster: NatsCluster,
    replicas: Vec<Replica>,
    sim: SimLattice,
    hosts: Vec<String>,
}

impl Rig {
    async fn start() -> Rig {
        let cluster = NatsCluster::start(NODES);
        assert!(cluster.wait_ready(Duration::from_secs(60)).await, "JetStream cluster ready");
        let mut replicas = Vec::new();
        for node in 0..NODES {
            let client = connect_all(&cluster, node).await;
            replicas.push(Replica::start_on(client, NODES, |_| {}).await);
        }
        // Hosts start once the event stream exists, so their `host_started` is captured.
        let rig_js = async_nats::jetstream::new(connect_all(&cluster, 0).await);
        let stream = wait_for(common::DEADLINE, || async {
            rig_js.get_stream(event_stream_name()).await.ok()
        })
        .await;
        assert!(stream.is_some(), "the runtime creates its event stream");
        let mut sim_config = SimConfig::new(cluster.url(0), LATTICE);
        sim_config.heartbeat_interval = common::HEARTBEAT;
        let sim = SimLattice::with_client(connect_all(&cluster, 1).await, sim_config)
            .await
            .expect("sim connects");
        let mut hosts = Vec::new();
        for _ in 0..HOSTS {
            hosts.push(sim.add_host(HostSpec::default()).await);
        }
        Rig { cluster, replicas, sim, hosts }
    }

    /// The node (index) leading the event stream's RAFT group, asked through node `via`.
    async fn event_stream_leader(&self, via: usize) -> usize {
        let js =
            async_nats::jetstream::new(async_nats::connect(self.cluster.url(via)).await.unwrap());
        let leader = wait_for(common::DEADLINE, || async {
            let mut stream = js.get_stream(event_stream_name()).await.ok()?;
            let info = stream.info().await.ok()?;
            let name = info.cluster.as_ref()?.leader.clone()?;
            name.strip_prefix('n')?.parse::<usize>().ok()
        })
        .await;
        leader.expect("the event stream has a leader")
    }

    /// Total instances of each app's component across the hosts.
    fn totals(&self) -> BTreeMap<String, u32> {
        let mut totals = BTreeMap::new();
        for host in &self.hosts {
            let Some(state) = self.sim.host_state(host) else { continue };
            for (id, c) in &state.components {
                *totals.entry(id.clone()).or_insert(0) += c.count;
            }
        }
        totals
    }

    /// (host, component) pairs running now: what one scale request each places.
    fn placements(&self) -> u64 {
        let running = |h: &String| {
            self.sim
                .host_state(h)
                .map_or(0, |s| s.components.values().filter(|c| c.count > 0).count())
        };
        self.hosts.iter().map(running).sum::<usize>() as u64
    }

    fn scale_requests(&self) -> u64 {
        self.hosts.iter().map(|h| self.sim.requests(h).get("component.scale")).sum()
    }

    /// Wait until apps `0..apps` each run exactly [`INSTANCES`]; panics with the totals otherwise.
    async fn wait_converged(&self, apps: usize) {
        let ok = wait_for(CONVERGE, || {
            let totals = self.totals();
            let done = (0..apps).all(|i| totals.get(&format!("app{i}-c")) == Some(&INSTANCES));
            async move { done.then_some(()) }
        })
        .await;
        assert!(ok.is_some(), "apps never converged to {INSTANCES}: {:?}", self.totals());
    }

    /// Wait until wadm reports every one of apps `0..apps` deployed (asked through `client`).
    async fn wait_deployed(&self, client: &wadm_client::Client, apps: usize) {
        for i in 0..apps {
            let name = format!("app{i}");
            let ok = wait_for(CONVERGE, || async {
                let status = client.status(&name).await.ok()?;
                (status.status.status_type == StatusType::Deployed).then_some(())
            })
            .await;
            assert!(ok.is_some(), "{name} never reported deployed");
        }
    }

    /// The exactness assertions over apps `0..apps`, after watching the hosts for
    /// [`QUIET_WINDOW`]: exactly [`INSTANCES`] each, never above, one scale per placement.
    async fn assert_exact(&self, scenario: &str, apps: usize) {
        let before = self.scale_requests();
        // The observation window IS the check (late repeats would land in it), not a wait for
        // a condition.
        tokio::time::sleep(QUIET_WINDOW).await;
        let totals = self.totals();
        let peaks = self.sim.peak_totals();
        let scales = self.scale_requests();
        let placements = self.placements();
        let per_host: Vec<u64> =
            self.hosts.iter().map(|h| self.sim.requests(h).get("component.scale")).collect();
        eprintln!(
            "[{scenario}] scale requests {scales} (per host {per_host:?}; {} during the {:?} \
             quiet window) vs placements needed {placements}",
            scales - before,
            QUIET_WINDOW
        );
        let over: Vec<(String, u64)> = peaks
            .iter()
            .filter(|(_, peak)| **peak > u64::from(INSTANCES))
            .map(|(id, peak)| (id.clone(), *peak))
            .collect();
        eprintln!("[{scenario}] components that peaked above {INSTANCES}: {over:?}");
        for i in 0..apps {
            let id = format!("app{i}-c");
            assert_eq!(totals.get(&id), Some(&INSTANCES), "[{scenario}] {id} after the window");
        }
        assert!(over.is_empty(), "[{scenario}] above target at some moment: {over:?}");
        assert_eq!(scales, placements, "[{scenario}] scale requests beyond what was needed");
    }

    async fn stop(self) {
        for (node, replica) in self.replicas.iter().enumerate() {
            assert!(replica.alive(), "the replica on node {node} stopped");
        }
        for replica in self.replicas {
            replica.stop().await;
        }
        self.sim.shutdown().await;
        drop(self.cluster);
    }
}

/// An API client on `nats`, with a short request timeout so a dead route shows quickly.
fn api(nats: async_nats::Client, timeout: Duration) -> wadm_client::Client {
    wadm_client::Client::new(nats, LATTICE, None).with_timeout(timeout)
}

/// Put and deploy app `i`, sending again what nobody answered (as a client would).
async fn put_and_deploy(client: &wadm_client::Client, i: usize) {
    let yaml = app(i);
    let put = wait_for(CONVERGE, || async {
        match client.put_manifest(yaml.clone().into_bytes(), None).await {
            Ok(put) => Some(put),
            Err(e) if e.is_connection_problem() => None,
            Err(e) => panic!("put app{i}: {e}"),
        }
    })
    .await
    .expect("put answered");
    let deployed = wait_for(CONVERGE, || async {
        match client.deploy(&put.name, Some(&put.current_version)).await {
            Ok(_) => Some(()),
            Err(e) if e.is_connection_problem() => None,
            Err(e) => panic!("deploy app{i}: {e}"),
        }
    })
    .await;
    deployed.expect("deploy answered");
}

/// How long after `since` a `list()` through `client` first answers (polled until `give_up`).
async fn first_api_answer(
    client: &wadm_client::Client,
    since: Instant,
    give_up: Duration,
) -> Duration {
    let answered =
        wait_for(give_up, || async { client.list().await.ok().map(|_| since.elapsed()) }).await;
    answered.unwrap_or_else(|| panic!("the API never answered within {give_up:?}"))
}

const BURST: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_event_stream_leader_mid_burst_keeps_placement_exact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = Rig::start().await;
    let leader = rig.event_stream_leader(0).await;
    let live = (leader + 1) % NODES;
    eprintln!("[kill] event stream leader n{leader}; API probed through n{live}");
    let probe =
        api(async_nats::connect(rig.cluster.url(live)).await.unwrap(), Duration::from_secs(1));
    let deployer = api(connect_all(&rig.cluster, live).await, wadm_client::DEFAULT_TIMEOUT);

    let started = Instant::now();
    for i in 0..BURST / 2 {
        put_and_deploy(&deployer, i).await;
    }
    rig.cluster.kill(leader);
    let killed = Instant::now();
    // The rest of the burst while the API is probed.
    let (api_after, ()) =
        tokio::join!(first_api_answer(&probe, killed, Duration::from_secs(60)), async {
            for i in BURST / 2..BURST {
                put_and_deploy(&deployer, i).await;
            }
        });
    eprintln!("[kill] API answered through n{live} {api_after:?} after the kill");
    eprintln!("[kill] second half of the burst answered {:?} after the kill", killed.elapsed());
    // The scenario: the node stays dead a few seconds, then comes back on its store.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(killed.elapsed())).await;
    rig.cluster.restart(leader).expect("restart the killed node");
    eprintln!("[kill] n{leader} restarted {:?} after the kill", killed.elapsed());

    rig.wait_converged(BURST).await;
    eprintln!(
        "[kill] converged {:?} after the first put, {:?} after the kill",
        started.elapsed(),
        killed.elapsed()
    );
    rig.wait_deployed(&deployer, BURST).await;
    let new_leader = rig.event_stream_leader(live).await;
    eprintln!("[kill] event stream leader now n{new_leader}");
    rig.assert_exact("kill", BURST).await;
    assert!(api_after <= API_DEADLINE, "the API answered only {api_after:?} after the kill");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freezing_the_event_stream_leader_mid_burst_keeps_placement_exact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The scenario: how long the node stays frozen.
    const FROZEN: Duration = Duration::from_secs(12);
    let rig = Rig::start().await;
    let frozen = rig.event_stream_leader(0).await;
    let live = (frozen + 1) % NODES;
    eprintln!("[freeze] event stream leader n{frozen}; API probed through n{live}");
    let probe =
        api(async_nats::connect(rig.cluster.url(live)).await.unwrap(), Duration::from_secs(1));
    let deployer = api(connect_all(&rig.cluster, live).await, wadm_client::DEFAULT_TIMEOUT);

    let started = Instant::now();
    for i in 0..BURST / 2 {
        put_and_deploy(&deployer, i).await;
    }
    rig.cluster.freeze(frozen).expect("freeze");
    let froze = Instant::now();
    let (api_after, ()) =
        tokio::join!(first_api_answer(&probe, froze, Duration::from_secs(60)), async {
            for i in BURST / 2..BURST {
                put_and_deploy(&deployer, i).await;
            }
        });
    eprintln!("[freeze] API answered through n{live} {api_after:?} after the freeze");
    eprintln!("[freeze] second half of the burst answered {:?} after the freeze", froze.elapsed());
    tokio::time::sleep(FROZEN.saturating_sub(froze.elapsed())).await;
    rig.cluster.thaw(frozen).expect("thaw");
    eprintln!("[freeze] n{frozen} thawed {:?} after the freeze", froze.elapsed());

    rig.wait_converged(BURST).await;
    eprintln!(
        "[freeze] converged {:?} after the first put, {:?} after the freeze",
        started.elapsed(),
        froze.elapsed()
    );
    rig.wait_deployed(&deployer, BURST).await;
    rig.assert_exact("freeze", BURST).await;
    assert!(api_after <= API_DEADLINE, "the API answered only {api_after:?} after the freeze");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_for_good_keeps_what_was_stored_and_deploys_exactly_on_two() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = Rig::start().await;
    // The client uses node 0 only; node 2 is lost.
    let (client_node, lost) = (0, 2);
    let client = api(
        async_nats::connect(rig.cluster.url(client_node)).await.unwrap(),
        wadm_client::DEFAULT_TIMEOUT,
    );
    let started = Instant::now();
    for i in 0..BURST / 2 {
        put_and_deploy(&client, i).await;
    }
    rig.wait_converged(BURST / 2).await;
    rig.wait_deployed(&client, BURST / 2).await;
    eprintln!("[loss] first {} apps converged in {:?}", BURST / 2, started.elapsed());

    rig.cluster.kill(lost);
    let killed = Instant::now();
    let api_after = first_api_answer(&client, killed, Duration::from_secs(60)).await;
    eprintln!("[loss] n{lost} lost; API answered through n{client_node} {api_after:?} after");
    for i in BURST / 2..BURST {
        put_and_deploy(&client, i).await;
    }
    eprintln!("[loss] {} more apps deployed {:?} after the loss", BURST / 2, killed.elapsed());
    rig.wait_converged(BURST).await;
    eprintln!("[loss] all {BURST} apps converged {:?} after the loss", killed.elapsed());
    rig.wait_deployed(&client, BURST).await;

    // Nothing stored before the loss is gone.
    let listed: Vec<String> =
        client.list().await.expect("list").into_iter().map(|m| m.name).collect();
    for i in 0..BURST {
        assert!(
            listed.contains(&format!("app{i}")),
            "app{i} not listed after the loss: {listed:?}"
        );
    }
    rig.assert_exact("loss", BURST).await;
    assert!(api_after <= API_DEADLINE, "the API answered only {api_after:?} after the loss");
    rig.stop().await;
}
