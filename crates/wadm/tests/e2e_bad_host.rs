//! A host that always fails gives its share up: 1 bad host and 2 good simulated hosts, one wadm.
//! For each way the simulator can make a host fail a placement —
//! - refuses every workload request (error reply),
//! - never answers (timeout),
//! - accepts `component.scale` and never runs it (no event; the inventory never shows it),
//! - answers with bytes that are no control reply,
//! - accepts, then `component_scale_failed`,
//! - a provider: accepts, then `provider_start_failed`, or accepts and never starts it,
//!
//! an application spread over every host (6 instances), or a provider on 1 of 3 hosts (the bad
//! one, the host placement picks first, and picks again while nothing runs anywhere), reaches its target on the good hosts within a bound, read from the hosts'
//! inventories; it never runs more than its target (the simulator's peak); and the bad host
//! receives a bounded number of placement requests (`strikes` failed attempts, each of at most
//! `max_request_attempts` deliveries; avoided for 5 minutes after that, longer than the test).

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, LATTICE, LatticeView};
use wadm_model::{Format, Limits};
use wadm_runtime::RunConfig;
use wadm_scheduler::{Command, DeployedApp};
use wadm_sim::FaultSwitches;
use wadm_test_support::wait_for;

/// Failed attempts before the bad host is avoided (the runtime's default).
const STRIKES: u64 = 3;
/// Deliveries of an unanswered request before it counts as failed.
const ATTEMPTS: u64 = 2;
/// How long the share may take to reach the good hosts.
const BOUND: Duration = Duration::from_secs(90);
const INSTANCES: u32 = 6;

/// Short command lifetimes so an order accepted and never run fails within seconds.
fn tune(config: &mut RunConfig) {
    config.runtime.max_request_attempts = ATTEMPTS;
    config.runtime.command_ttl = Duration::from_secs(6);
    config.runtime.order_lifetime = Duration::from_secs(8);
}

async fn cluster() -> Cluster {
    Cluster::start_tuned(1, Cluster::zone_hosts(&[("any", 3)]), tune).await
}

fn provider_app() -> String {
    r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: prov
  annotations:
    version: v1
spec:
  components:
    - name: p
      type: capability
      properties:
        image: ghcr.io/example/p:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#
    .to_string()
}

/// The hosts wadm places `yaml`'s providers on first, in an empty lattice of `hosts` (the
/// scheduler is deterministic: the same choice the runtime makes).
fn first_provider_hosts(yaml: &str, hosts: &[String]) -> Vec<String> {
    let app = wadm_model::parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default())
        .expect("valid manifest")
        .app;
    let deployed = DeployedApp {
        lattice: LATTICE.into(),
        app,
        version: "v1".into(),
        generation: 2,
        promoted: false,
    };
    let mut lattice = wadm_runtime::LatticeRecord::default().state;
    lattice.lattice = LATTICE.into();
    for h in hosts {
        lattice.hosts.entry(h.clone()).or_default().id = h.clone();
    }
    let plan = wadm_scheduler::reconcile(&[deployed], &lattice, 0);
    let starts = plan.commands.iter().filter_map(|c| match &c.command {
        Command::StartProvider(r) => Some(r.host_id.to_string()),
        _ => None,
    });
    starts.collect()
}

/// What a mode does to the bad host.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Refuses,
    NeverAnswers,
    Swallows,
    Garbles,
    FailsToStart,
}

impl Mode {
    fn arm(self, faults: &FaultSwitches) {
        match self {
            Mode::Refuses => faults.set_refuse_workloads(true),
            Mode::NeverAnswers => faults.set_ignore_requests(true),
            Mode::Swallows => faults.set_swallow_workloads(true),
            Mode::Garbles => faults.set_garble_workloads(true),
            Mode::FailsToStart => {
                faults.set_reject_scales(true);
                faults.set_reject_provider_starts(true);
            }
        }
    }

    /// The most placement requests the bad host may receive for one resource.
    fn max_requests(self) -> u64 {
        match self {
            Mode::NeverAnswers => STRIKES * ATTEMPTS,
            _ => STRIKES,
        }
    }
}

/// Wait until `done` holds for the lattice (checking `never` at every look); how long it took.
async fn until(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&LatticeView) -> bool,
    never: impl Fn(&LatticeView) -> Option<String>,
) -> Duration {
    let t0 = Instant::now();
    let reached = wait_for(BOUND, || {
        let view = cluster.view();
        if let Some(broken) = never(&view) {
            panic!("{what}: {broken}: {view:#?}");
        }
        let ok = done(&view);
        async move { ok.then_some(()) }
    })
    .await;
    assert!(reached.is_some(), "{what}: not within {BOUND:?}: {:#?}", cluster.view());
    t0.elapsed()
}

async fn component_share_moves(mode: Mode) {
    let cluster = cluster().await;
    let bad = cluster.sim.hosts()[0].clone();
    mode.arm(&cluster.sim.faults(&bad).expect("bad host"));
    let yaml = common::numbered_app(1, &common::spread_trait(INSTANCES));
    cluster.put_and_deploy(&yaml).await;
    let id = "app1-c";
    let on_good_hosts =
        |v: &LatticeView| v.count(id) == INSTANCES && !v.component_hosts(id).contains(&bad);
    let above = |v: &LatticeView| (v.count(id) > INSTANCES).then(|| "above target".to_string());
    let took = until(&cluster, &format!("{mode:?}"), on_good_hosts, above).await;
    let requests = cluster.sim.requests(&bad).get("component.scale");
    let peak = cluster.sim.peak_totals().get(id).copied().unwrap_or(0);
    eprintln!(
        "{mode:?}: {INSTANCES} instances on the good hosts after {took:?}; {requests} \
         component.scale requests to the bad host; peak {peak}"
    );
    assert!(peak <= u64::from(INSTANCES), "{mode:?}: peak {peak}");
    assert!(
        (1..=mode.max_requests()).contains(&requests),
        "{mode:?}: {requests} requests to the bad host"
    );
    // Stays so: nothing more goes to the bad host while it is avoided.
    let settled = wait_for(Duration::from_secs(5), || async {
        (cluster.status("app1").await?.status.status_type == wadm_model::StatusType::Deployed)
            .then_some(())
    })
    .await;
    assert!(settled.is_some(), "{mode:?}: {:?}", cluster.status("app1").await);
    assert_eq!(cluster.sim.requests(&bad).get("component.scale"), requests, "{mode:?}");
    assert!(on_good_hosts(&cluster.view()));
    cluster.shutdown().await;
}

async fn provider_share_moves(mode: Mode) {
    let cluster = cluster().await;
    let yaml = provider_app();
    let first = first_provider_hosts(&yaml, &cluster.sim.hosts());
    assert_eq!(first.len(), 1, "{first:?}");
    let bad = first[0].clone();
    mode.arm(&cluster.sim.faults(&bad).expect("bad host"));
    cluster.put_and_deploy(&yaml).await;
    let id = "prov-p";
    let on_good_hosts = |v: &LatticeView| {
        let hosts = v.provider_hosts(id);
        hosts.len() == 1 && !hosts.contains(&bad)
    };
    let above = |v: &LatticeView| {
        let n = v.provider_hosts(id).len();
        (n > 1).then(|| format!("{n} providers"))
    };
    let took = until(&cluster, &format!("provider {mode:?}"), on_good_hosts, above).await;
    let requests = cluster.sim.requests(&bad).get("provider.start");
    eprintln!(
        "provider {mode:?}: the provider on a good host after {took:?}; {requests} \
         provider.start requests to the bad host"
    );
    assert!(
        (1..=mode.max_requests()).contains(&requests),
        "provider {mode:?}: {requests} requests to the bad host"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_refusing_every_request_gives_its_share_up() {
    component_share_moves(Mode::Refuses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_never_answering_gives_its_share_up() {
    component_share_moves(Mode::NeverAnswers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_accepting_and_never_running_gives_its_share_up() {
    component_share_moves(Mode::Swallows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_answering_garbage_gives_its_share_up() {
    component_share_moves(Mode::Garbles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_component_fails_to_start_gives_its_share_up() {
    component_share_moves(Mode::FailsToStart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_provider_fails_to_start_gives_its_share_up() {
    provider_share_moves(Mode::FailsToStart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_acking_a_provider_that_never_starts_gives_its_share_up() {
    provider_share_moves(Mode::Swallows).await;
}
