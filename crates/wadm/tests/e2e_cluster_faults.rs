//! Faults of a 3-node JetStream cluster under a deploy burst: one wadm replica per node, each
//! connected to EVERY node (its own first) so it can fail over, as are the simulated hosts. A
//! node that leads wadm's event stream is killed (and restarted) or frozen (SIGSTOP, then
//! thawed) while applications converge; another node is lost for good. Each time, read from the
//! simulated hosts: every application converges to exactly its target, no component ever runs
//! above it, and wadm sends one `component.scale` request per placement — nothing repeated.
//! The API must answer through a live node within [`API_DEADLINE`] of the fault.
//!
//! Measured figures are printed with `eprintln!` (run with `--nocapture`); what the suite found
//! and what fixed it: `docs/cluster-faults.md`. Part of the test command (about 2 minutes, one
//! scenario at a time); alone: `cargo test -p wadm --test e2e_cluster_faults -- --nocapture`.

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
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The name of wadm's event stream: the one place that names it (crate paths and name prefixes
/// are moving elsewhere).
fn event_stream_name() -> String {
    wadm_store::StoreNames::default().events_stream()
}

/// wadm's streams whose leader a fault may take away (KV buckets are streams `KV_{bucket}`):
/// the manifests and statuses (read by every `list`, with leader reads) and the event stream.
fn leader_read_streams() -> Vec<String> {
    vec![
        format!("KV_{}", wadm_store::StoreNames::default().manifest_bucket()),
        wadm_store::StoreNames::default().status_stream(),
        event_stream_name(),
    ]
}

/// For each of [`leader_read_streams`], how long after `since` it had a leader other than node
/// `gone`, asked through node `via` (`None`: not within `give_up`).
async fn leaders_back(
    cluster: &NatsCluster,
    via: usize,
    gone: usize,
    since: Instant,
    give_up: Duration,
) -> Vec<(String, Option<Duration>)> {
    let js = async_nats::jetstream::new(async_nats::connect(cluster.url(via)).await.unwrap());
    let gone = format!("n{gone}");
    let mut back = Vec::new();
    for name in leader_read_streams() {
        let elected = wait_for(give_up.saturating_sub(since.elapsed()), || async {
            let ask = async {
                let mut stream = js.get_stream(&name).await.ok()?;
                let info = stream.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            };
            let leader = tokio::time::timeout(Duration::from_millis(500), ask).await.ok()??;
            (leader != gone).then(|| since.elapsed())
        })
        .await;
        eprintln!("  {name}: leader other than {gone} after {elected:?}");
        back.push((name, elected));
    }
    back
}

fn app(i: usize) -> String {
    common::numbered_app(i, &common::spread_trait(INSTANCES))
}

/// Every node's URL, node `first`'s first.
fn urls_from(cluster: &NatsCluster, first: usize) -> String {
    let mut urls = vec![cluster.url(first)];
    urls.extend((0..cluster.size()).filter(|i| *i != first).map(|i| cluster.url(i)));
    urls.join(",")
}

/// A connection to every node (node `first` first), made the way wadm itself connects.
async fn connect_all(cluster: &NatsCluster, first: usize) -> async_nats::Client {
    let options = wadm_client::connect::NatsOptions::new(urls_from(cluster, first));
    wadm_client::connect::connect(&options)
        .await
        .unwrap_or_else(|e| panic!("connect to all nodes: {e}"))
}

/// A replica's (or a client's) connection: every node, its own node first and kept first (async-nats shuffles
/// the list unless told to keep its order).
async fn connect_replica(cluster: &NatsCluster, node: usize) -> async_nats::Client {
    let urls: Vec<String> = urls_from(cluster, node).split(',').map(String::from).collect();
    let client = async_nats::ConnectOptions::new()
        .retain_servers_order()
        // As wadm connects: a frozen node is left within a few seconds.
        .ping_interval(wadm_client::connect::DEFAULT_PING_INTERVAL)
        .connect(urls)
        .await
        .expect("replica connects");
    assert_eq!(client.server_info().server_name, format!("n{node}"), "replica on its own node");
    client
}

/// One `component.scale` request seen on the wire.
struct Tap {
    at: Instant,
    host: String,
    component: String,
    count: u64,
    /// The sender's inbox prefix: one per NATS connection, so one per replica.
    sender: String,
}

/// Every `component.scale` request, recorded through node `node` (a live one).
type Taps = std::sync::Arc<std::sync::Mutex<Vec<Tap>>>;

async fn wiretap(cluster: &NatsCluster, node: usize) -> Taps {
    let client = async_nats::connect(cluster.url(node)).await.unwrap();
    let subject = format!("{}.component.scale.*", wadm_protocol::subject::ctl_prefix(LATTICE));
    let mut sub = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let taps = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = taps.clone();
    tokio::spawn(async move {
        let _client = client;
        use futures::StreamExt;
        while let Some(msg) = sub.next().await {
            let body: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            let reply = msg.reply.map(|r| r.to_string()).unwrap_or_default();
            sink.lock().unwrap().push(Tap {
                at: Instant::now(),
                host: msg.subject.rsplit('.').next().unwrap_or_default().chars().take(8).collect(),
                component: body["component_id"].as_str().unwrap_or_default().to_string(),
                count: body["count"].as_u64().unwrap_or_default(),
                sender: reply.rsplit_once('.').map_or("", |(p, _)| p).to_string(),
            });
        }
    });
    taps
}

/// Print every (host, component) that got more than one scale request, with times relative to
/// `fault`.
fn report_repeats(scenario: &str, taps: &[Tap], fault: Instant) {
    let mut by_pair: BTreeMap<(String, String), Vec<&Tap>> = BTreeMap::new();
    for tap in taps {
        by_pair.entry((tap.host.clone(), tap.component.clone())).or_default().push(tap);
    }
    let senders: std::collections::BTreeSet<&str> =
        taps.iter().map(|t| t.sender.as_str()).collect();
    let senders: Vec<&str> = senders.into_iter().collect();
    eprintln!("[{scenario}] wiretap: {} scale requests from {} senders", taps.len(), senders.len());
    for ((host, component), seen) in by_pair.iter().filter(|(_, seen)| seen.len() > 1) {
        let times: Vec<String> = seen
            .iter()
            .map(|t| {
                let rel = t.at.saturating_duration_since(fault).as_secs_f64()
                    - fault.saturating_duration_since(t.at).as_secs_f64();
                let sender = senders.iter().position(|s| *s == t.sender).unwrap_or(99);
                format!("count {} at {rel:+.2}s from sender {sender}", t.count)
            })
            .collect();
        eprintln!("[{scenario}]   repeated: host {host} {component}: {}", times.join("; "));
    }
}

/// A cluster, one replica per node and [`HOSTS`] simulated hosts.
/// What [`Rig::half_burst`] set up.
struct Burst {
    /// The node to fault: the event stream's leader.
    faulty: usize,
    /// A live node, not the hosts'.
    live: usize,
    probe: wadm_client::Client,
    taps: Taps,
    started: Instant,
    deployer: wadm_client::Client,
}

struct Rig {
    cluster: NatsCluster,
    replicas: Vec<Replica>,
    sim: Option<SimLattice>,
    hosts: Vec<String>,
    /// The node the hosts' connection uses.
    sim_node: usize,
}

impl Rig {
    /// The start both leader faults share: find the event stream's leader (the node to fault)
    /// and a live node that is not the hosts', probe the API and tap the hosts through it, and
    /// deploy the first half of the burst through it.
    async fn half_burst(&self, tag: &str) -> Burst {
        let faulty = self.event_stream_leader(0).await;
        let live = (faulty + 1) % NODES;
        let live = if live == self.sim_node { (faulty + 2) % NODES } else { live };
        eprintln!(
            "[{tag}] event stream leader n{faulty}; API probed through n{live}; hosts on n{}",
            self.sim_node
        );
        assert_ne!(faulty, self.sim_node, "the leader moved to the hosts' node");
        // The fault takes every leader the API reads from with it: the manifest bucket's and
        // the status stream's move to the faulty node first (else the API would not notice).
        for name in leader_read_streams() {
            self.lead_on(&name, faulty).await;
        }
        let probe =
            api(async_nats::connect(self.cluster.url(live)).await.unwrap(), Duration::from_secs(1));
        // Through a live node (kept first): a client connected to the faulty node itself waits
        // for its own connection's failover, which is not what is measured.
        let deployer =
            api(connect_replica(&self.cluster, live).await, wadm_client::DEFAULT_TIMEOUT);
        let taps = wiretap(&self.cluster, live).await;
        let started = Instant::now();
        for i in 0..BURST / 2 {
            put_and_deploy(&deployer, i).await;
        }
        Burst { faulty, live, probe, taps, started, deployer }
    }

    async fn start() -> Rig {
        // wadm's own logs when asked for (`RUST_LOG=wadm=warn`).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("RUST_LOG"))
            .with_test_writer()
            .try_init();
        let cluster = NatsCluster::start(NODES);
        assert!(cluster.wait_ready(Duration::from_secs(60)).await, "JetStream cluster ready");
        let mut replicas = Vec::new();
        let mut setting_up = Vec::new();
        for node in 0..NODES {
            let client = connect_replica(&cluster, node).await;
            let health = wadm_server::Health::default();
            let set_up = health.clone();
            let replica = Replica::start_on(client, NODES, move |config| {
                // Marked before `run` starts; `run` forgets it once its storage is set up.
                let part = format!("runtime.{}", config.replica);
                set_up.starting(&part);
                config.health = set_up;
            })
            .await;
            replicas.push(replica);
            setting_up.push(health);
        }
        // Faults come after every runtime has set up its storage (a runtime gives up starting
        // when JetStream does not answer: that is another test).
        for (node, health) in setting_up.iter().enumerate() {
            let done = wait_for(common::DEADLINE, || {
                let failing = health.failing(Duration::ZERO);
                let starting = failing.iter().any(|f| f.part.starts_with("runtime."));
                async move { (!starting).then_some(()) }
            })
            .await;
            assert!(done.is_some(), "the runtime on node {node} set up its storage");
        }
        // Hosts start once the event stream exists, so their `host_started` is captured.
        let rig_js = async_nats::jetstream::new(connect_all(&cluster, 0).await);
        let stream = wait_for(common::DEADLINE, || async {
            rig_js.get_stream(event_stream_name()).await.ok()
        })
        .await;
        assert!(stream.is_some(), "the runtime creates its event stream");
        let mut rig = Rig { cluster, replicas, sim: None, hosts: Vec::new(), sim_node: 0 };
        // The hosts (one NATS connection) sit on a node the faults spare: the event stream's
        // leader is the one faulted, node 2 the one lost. (Hosts on the faulty node are a
        // partition of the hosts themselves: wadm then replaces them, another scenario.)
        let leader = rig.event_stream_leader(0).await;
        rig.sim_node = (0..NODES).find(|n| *n != leader && *n != 2).expect("a spared node");
        let mut sim_config = SimConfig::new(rig.cluster.url(rig.sim_node), LATTICE);
        sim_config.heartbeat_interval = common::HEARTBEAT;
        let sim =
            SimLattice::with_client(connect_replica(&rig.cluster, rig.sim_node).await, sim_config)
                .await
                .expect("sim connects");
        for _ in 0..HOSTS {
            rig.hosts.push(sim.add_host(HostSpec::default()).await);
        }
        rig.sim = Some(sim);
        // The bursts start once wadm knows every host (its `host_started` may go out before
        // the new event stream has a leader, its first heartbeat fall inside the fault).
        let client = api(connect_all(&rig.cluster, 0).await, Duration::from_secs(2));
        common::wait_hosts_known(&client, HOSTS).await;
        rig
    }

    fn sim(&self) -> &SimLattice {
        self.sim.as_ref().expect("started")
    }

    /// Move the leadership of stream `name` to node `node` (a stepdown naming it preferred,
    /// asked again while another node leads) and wait until it leads.
    async fn lead_on(&self, name: &str, node: usize) {
        let client = async_nats::connect(self.cluster.url(node)).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let wanted = format!("n{node}");
        let asked: std::cell::Cell<Option<Instant>> = Default::default();
        let led = wait_for(common::DEADLINE, || async {
            let mut stream = js.get_stream(name).await.ok()?;
            let info = stream.info().await.ok()?;
            let leader = info.cluster.as_ref()?.leader.clone();
            if leader.as_deref() == Some(wanted.as_str()) {
                return Some(());
            }
            // One stepdown, then time for the election it starts.
            let again = asked.get().is_none_or(|at| at.elapsed() > Duration::from_secs(2));
            if leader.is_some() && again {
                asked.set(Some(Instant::now()));
                let body = serde_json::json!({"placement": {"preferred": wanted}}).to_string();
                let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{name}");
                let _ = client.request(subject, body.into()).await;
            }
            None
        })
        .await;
        assert!(led.is_some(), "{name} led by {wanted}");
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
            let Some(state) = self.sim().host_state(host) else { continue };
            for (id, c) in &state.components {
                *totals.entry(id.clone()).or_insert(0) += c.count;
            }
        }
        totals
    }

    /// (host, component) pairs running now: what one scale request each places.
    fn placements(&self) -> u64 {
        let running = |h: &String| {
            self.sim()
                .host_state(h)
                .map_or(0, |s| s.components.values().filter(|c| c.count > 0).count())
        };
        self.hosts.iter().map(running).sum::<usize>() as u64
    }

    fn scale_requests(&self) -> u64 {
        self.hosts.iter().map(|h| self.sim().requests(h).get("component.scale")).sum()
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
    async fn assert_exact(&self, scenario: &str, apps: usize, taps: &Taps, fault: Instant) {
        let before = self.scale_requests();
        // The observation window IS the check (late repeats would land in it), not a wait for
        // a condition.
        tokio::time::sleep(QUIET_WINDOW).await;
        let totals = self.totals();
        let peaks = self.sim().peak_totals();
        let scales = self.scale_requests();
        let placements = self.placements();
        let per_host: Vec<u64> =
            self.hosts.iter().map(|h| self.sim().requests(h).get("component.scale")).collect();
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
        report_repeats(scenario, &taps.lock().unwrap(), fault);
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
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
        drop(self.cluster);
    }
}

/// An API client on `nats`, with a short request timeout so a dead route shows quickly.
fn api(nats: async_nats::Client, timeout: Duration) -> wadm_client::Client {
    wadm_client::Client::new(nats, LATTICE, None).with_timeout(timeout)
}

/// JetStream's own "try again" (503 while a leader is elected), which wadm passes on as an
/// error reply: a client sends the request again.
fn transient(e: &wadm_client::ClientError) -> bool {
    e.to_string().contains("temporarily unavailable")
}

/// Put and deploy app `i`, sending again what nobody answered (as a client would). Calls that
/// failed or took over a second are printed.
async fn put_and_deploy(client: &wadm_client::Client, i: usize) {
    let yaml = app(i);
    let put = wait_for(CONVERGE, || async {
        let asked = Instant::now();
        let put = client.put_manifest(yaml.clone().into_bytes(), None).await;
        if put.is_err() || asked.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "  put app{i}: {:?} after {:?}",
                put.as_ref().err().map(|e| e.to_string()),
                asked.elapsed()
            );
        }
        match put {
            Ok(put) => Some(put),
            Err(e) if e.is_connection_problem() || transient(&e) => None,
            Err(e) => panic!("put app{i}: {e}"),
        }
    })
    .await
    .expect("put answered");
    let deployed = wait_for(CONVERGE, || async {
        let asked = Instant::now();
        let deployed = client.deploy(&put.name, Some(&put.current_version)).await;
        if deployed.is_err() || asked.elapsed() > Duration::from_secs(1) {
            let e = deployed.as_ref().err().map(|e| e.to_string());
            eprintln!("  deploy app{i}: {e:?} after {:?}", asked.elapsed());
        }
        match deployed {
            Ok(_) => Some(()),
            Err(e) if e.is_connection_problem() || transient(&e) => None,
            Err(e) => panic!("deploy app{i}: {e}"),
        }
    })
    .await;
    deployed.expect("deploy answered");
}

/// How long after `since` a `list()` through `client` first answers: a new request every
/// 250 ms, each waiting up to `give_up` (a slow answer counts when it comes).
async fn first_api_answer(
    client: &wadm_client::Client,
    since: Instant,
    give_up: Duration,
) -> Duration {
    let client = client.clone().with_timeout(give_up);
    let (errors, mut asked) = (std::sync::Mutex::new(BTreeMap::<String, usize>::new()), 0);
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut every = tokio::time::interval(Duration::from_millis(250));
    use futures::StreamExt;
    let answered = loop {
        tokio::select! {
            _ = every.tick(), if since.elapsed() < give_up => {
                asked += 1;
                let client = client.clone();
                pending.push(async move { client.list().await.map(|_| since.elapsed()) });
            }
            Some(done) = pending.next() => match done {
                Ok(at) => break Some(at),
                Err(e) => *errors.lock().unwrap().entry(e.to_string()).or_default() += 1,
            },
            else => break None,
        }
    };
    eprintln!(
        "  {asked} list() sent; failures before the first answer: {:?}",
        errors.lock().unwrap()
    );
    answered.unwrap_or_else(|| panic!("the API never answered within {give_up:?}"))
}

const BURST: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_event_stream_leader_mid_burst_keeps_placement_exact() {
    let _serial = SERIAL.lock().await;
    let mut rig = Rig::start().await;
    let Burst { faulty: leader, live, probe, taps, started, deployer } =
        rig.half_burst("kill").await;
    rig.cluster.kill(leader);
    let killed = Instant::now();
    // The rest of the burst while the API is probed.
    let (api_after, leaders, ()) = tokio::join!(
        first_api_answer(&probe, killed, Duration::from_secs(60)),
        leaders_back(&rig.cluster, live, leader, killed, Duration::from_secs(60)),
        async {
            for i in BURST / 2..BURST {
                put_and_deploy(&deployer, i).await;
            }
        }
    );
    eprintln!("[kill] API answered through n{live} {api_after:?} after the kill");
    eprintln!("[kill] streams with a live leader again after the kill: {leaders:?}");
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
    rig.assert_exact("kill", BURST, &taps, killed).await;
    assert!(api_after <= API_DEADLINE, "the API answered only {api_after:?} after the kill");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freezing_the_event_stream_leader_mid_burst_keeps_placement_exact() {
    let _serial = SERIAL.lock().await;
    // The scenario: how long the node stays frozen.
    const FROZEN: Duration = Duration::from_secs(12);
    let rig = Rig::start().await;
    let Burst { faulty: frozen, live, probe, taps, started, deployer } =
        rig.half_burst("freeze").await;
    rig.cluster.freeze(frozen).expect("freeze");
    let froze = Instant::now();
    // Four things at once: the API probe, the stream leaders, the rest of the burst, and the
    // scenario itself — the node stays frozen exactly FROZEN (while list() calls through the
    // live node are counted), then is thawed, whether or not the burst got through.
    let calls = tokio::sync::Mutex::new((0u32, 0u32, Duration::ZERO));
    let (api_after, leaders, burst_done, ()) = tokio::join!(
        first_api_answer(&probe, froze, Duration::from_secs(60)),
        leaders_back(&rig.cluster, live, frozen, froze, Duration::from_secs(60)),
        async {
            for i in BURST / 2..BURST {
                put_and_deploy(&deployer, i).await;
            }
            froze.elapsed()
        },
        async {
            while froze.elapsed() < FROZEN {
                let asked = Instant::now();
                let ok = tokio::time::timeout(FROZEN.saturating_sub(froze.elapsed()), probe.list())
                    .await;
                let mut calls = calls.lock().await;
                match ok {
                    Ok(Ok(_)) => calls.0 += 1,
                    Ok(Err(_)) => calls.1 += 1,
                    Err(_) => {}
                }
                calls.2 = calls.2.max(asked.elapsed());
            }
            rig.cluster.thaw(frozen).expect("thaw");
            eprintln!("[freeze] n{frozen} thawed {:?} after the freeze", froze.elapsed());
        }
    );
    let (answered, unanswered, slowest) = *calls.lock().await;
    eprintln!("[freeze] API answered through n{live} {api_after:?} after the freeze");
    eprintln!(
        "[freeze] list() through n{live} while n{frozen} was frozen: {answered} answered, \
         {unanswered} unanswered (1 s timeout), slowest {slowest:?}"
    );
    eprintln!("[freeze] streams with a live leader again after the freeze: {leaders:?}");
    eprintln!("[freeze] second half of the burst answered {burst_done:?} after the freeze");

    rig.wait_converged(BURST).await;
    eprintln!(
        "[freeze] converged {:?} after the first put, {:?} after the freeze",
        started.elapsed(),
        froze.elapsed()
    );
    rig.wait_deployed(&deployer, BURST).await;
    rig.assert_exact("freeze", BURST, &taps, froze).await;
    assert!(api_after <= API_DEADLINE, "the API answered only {api_after:?} after the freeze");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_for_good_keeps_what_was_stored_and_deploys_exactly_on_two() {
    let _serial = SERIAL.lock().await;
    let mut rig = Rig::start().await;
    // The client uses node 0 only; node 2 is lost.
    let (client_node, lost) = (0, 2);
    let client = api(
        async_nats::connect(rig.cluster.url(client_node)).await.unwrap(),
        wadm_client::DEFAULT_TIMEOUT,
    );
    let taps = wiretap(&rig.cluster, client_node).await;
    let started = Instant::now();
    for i in 0..BURST / 2 {
        put_and_deploy(&client, i).await;
    }
    rig.wait_converged(BURST / 2).await;
    rig.wait_deployed(&client, BURST / 2).await;
    eprintln!("[loss] first {} apps converged in {:?}", BURST / 2, started.elapsed());
    eprintln!(
        "[loss] before the loss: scale requests {} vs placements {}; peaks {:?}",
        rig.scale_requests(),
        rig.placements(),
        rig.sim().peak_totals()
    );

    // The loss takes every leader the API reads from with it (as the kill and the freeze do).
    for name in leader_read_streams() {
        rig.lead_on(&name, lost).await;
    }
    rig.cluster.kill(lost);
    let killed = Instant::now();
    let (api_after, leaders) = tokio::join!(
        first_api_answer(&client, killed, Duration::from_secs(60)),
        leaders_back(&rig.cluster, client_node, lost, killed, Duration::from_secs(60))
    );
    eprintln!("[loss] streams with a live leader again after the loss: {leaders:?}");
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
    rig.assert_exact("loss", BURST, &taps, killed).await;
    assert!(api_after <= API_DEADLINE, "the API answered only {api_after:?} after the loss");
    rig.stop().await;
}
