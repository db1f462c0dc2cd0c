//! Exact convergence end to end, on simulated hosts that behave like real 1.9.2 hosts (the
//! update's spurious zero, the doubled first `component_scaled`, "already running" refusals):
//! 2 wadm replicas, 4 hosts. Deploy (spread + provider + link + owned config), upgrade, a host
//! crash, undeploy immediately followed by a deploy, undeploy. A recorder keeps every control
//! request the replicas send; the test asserts on the world, not on wadm's opinion of it:
//! - within each phase no request with an effect is sent twice (same subject and body);
//! - the instances running (sampled every 10 ms from the hosts) never exceed the target;
//! - once `deployed`, the status stays so while the lattice does not change (two heartbeats
//!   watched), and no phase ever shows `failed`.
//!
//! (`e2e_realhost.rs` runs the same kind of scenario against real wasmCloud hosts.)

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::realhost::{EFFECT_KINDS, Recorder, Seen, request_kind};
use common::{Cluster, LATTICE};
use wadm_model::StatusType;
use wadm_test_support::wait_for;

const TARGET: u32 = 3;
fn app(version: &str, image: &str) -> String {
    common::linked_web_app("exact", version, image, &common::east_west_spread(TARGET))
}

/// Statuses seen while polling, in order (deduplicated runs).
#[derive(Default)]
struct Statuses(Mutex<Vec<(String, StatusType, String)>>);

impl Statuses {
    fn note(&self, phase: &str, status: StatusType, message: &str) {
        let mut seen = self.0.lock().unwrap();
        if seen.last().is_none_or(|(p, s, _)| p != phase || *s != status) {
            seen.push((phase.to_string(), status, message.to_string()));
        }
    }
}

struct Run {
    cluster: Arc<Cluster>,
    recorder: Recorder,
    phases: Vec<(String, Duration)>,
    statuses: Arc<Statuses>,
}

impl Run {
    fn phase(&mut self, name: &str) {
        self.phases.push((name.to_string(), self.recorder.started.elapsed()));
    }

    fn current(&self) -> String {
        self.phases.last().map(|(p, _)| p.clone()).unwrap_or_default()
    }

    /// Poll the status until it is `wanted`, noting every status seen.
    async fn until_status(&self, wanted: StatusType) {
        let phase = self.current();
        let found = wait_for(common::DEADLINE, || async {
            let status = self.cluster.status("exact").await?;
            let s = &status.status;
            self.statuses.note(&phase, s.status_type, &s.message);
            (s.status_type == wanted).then_some(())
        })
        .await;
        assert!(found.is_some(), "exact never {wanted:?}: {:?}", self.statuses.0.lock().unwrap());
    }

    /// Watch a settled lattice for two heartbeats: the status must stay `deployed`.
    async fn stays_deployed(&self) {
        let phase = format!("{} (settled)", self.current());
        let until = std::time::Instant::now() + common::HEARTBEAT * 2 + Duration::from_millis(500);
        while std::time::Instant::now() < until {
            if let Some(status) = self.cluster.status("exact").await {
                let s = &status.status;
                self.statuses.note(&phase, s.status_type, &s.message);
                assert_eq!(s.status_type, StatusType::Deployed, "{phase}: flipped: {}", s.message);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Requests with an effect, per phase.
    fn effects_by_phase(&self) -> BTreeMap<usize, Vec<Seen>> {
        let mut out: BTreeMap<usize, Vec<Seen>> = BTreeMap::new();
        for r in self.recorder.requests() {
            let kind = request_kind(&r.subject, LATTICE);
            if !EFFECT_KINDS.contains(&kind.as_str()) {
                continue;
            }
            let phase = self.phases.iter().rposition(|(_, at)| *at <= r.at).unwrap_or(0);
            out.entry(phase).or_default().push(r);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_is_needed_sent_once_and_never_overshoots() {
    let cluster = Cluster::start(2, Cluster::zone_hosts(&[("east", 2), ("west", 2)])).await;
    let recorder = Recorder::start(&cluster.nats.url(), LATTICE, "_NOT_IGNORED").await;
    let cluster = Arc::new(cluster);
    let mut run = Run { cluster, recorder, phases: Vec::new(), statuses: Arc::default() };

    // The peak of instances running, sampled from the hosts.
    let peak = Arc::new(AtomicU32::new(0));
    let over: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let sim_view = {
        let (peak, sampling, over) = (peak.clone(), sampling.clone(), over.clone());
        let cluster = run.cluster.clone();
        let started = run.recorder.started;
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                let view = cluster.view();
                let running = view.count("exact-web");
                peak.fetch_max(running, Ordering::SeqCst);
                if running > TARGET {
                    let at = started.elapsed();
                    let hosts = view.component_hosts("exact-web");
                    over.lock().unwrap().push((at, format!("{running} on {hosts:?}")));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    run.phase("deploy");
    run.cluster.put_and_deploy(&app("v1", "ghcr.io/example/web:1.0.0")).await;
    run.cluster
        .wait_lattice("v1 runs", |v| {
            v.count("exact-web") == TARGET
                && v.provider_hosts("exact-http").len() == 1
                && v.linked("exact-http", "exact-web")
        })
        .await;
    run.until_status(StatusType::Deployed).await;
    run.stays_deployed().await;

    run.phase("upgrade");
    run.cluster.put_and_deploy(&app("v2", "ghcr.io/example/web:2.0.0")).await;
    run.cluster
        .wait_lattice("v2 runs", |v| {
            v.count("exact-web") == TARGET
                && v.images("exact-web").iter().all(|i| i == "ghcr.io/example/web:2.0.0")
        })
        .await;
    run.until_status(StatusType::Deployed).await;
    run.stays_deployed().await;

    run.phase("host crash");
    let victim = run.cluster.view().component_hosts("exact-web")[0].clone();
    assert!(run.cluster.sim.crash_host(&victim).await);
    run.cluster
        .wait_lattice("replaced", |v| {
            v.count("exact-web") == TARGET && !v.component_hosts("exact-web").contains(&victim)
        })
        .await;
    run.until_status(StatusType::Deployed).await;
    run.stays_deployed().await;

    run.phase("undeploy, deploy at once");
    run.cluster.client.undeploy("exact").await.expect("undeploy");
    run.cluster.client.deploy("exact", Some("v2")).await.expect("deploy");
    run.until_status(StatusType::Deployed).await;
    run.cluster.wait_lattice("v2 runs again", |v| v.count("exact-web") == TARGET).await;
    run.stays_deployed().await;

    run.phase("undeploy");
    run.cluster.client.undeploy("exact").await.expect("undeploy");
    run.cluster
        .wait_lattice("everything gone", |v| {
            v.count("exact-web") == 0 && v.provider_hosts("exact-http").is_empty()
        })
        .await;
    run.until_status(StatusType::Undeployed).await;
    sampling.store(false, Ordering::SeqCst);
    let _ = sim_view.await;

    // The world's verdict.
    let mut problems = Vec::new();
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (phase, requests) in run.effects_by_phase() {
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in &requests {
            *per_kind.entry(request_kind(&r.subject, LATTICE)).or_default() += 1;
            *seen.entry((r.subject.clone(), r.body.clone())).or_default() += 1;
        }
        for ((subject, body), n) in seen.into_iter().filter(|(_, n)| *n > 1) {
            problems.push(format!("{}: sent {n}×: {subject} {body}", run.phases[phase].0));
        }
    }
    let peak = peak.load(Ordering::SeqCst);
    if peak > TARGET {
        let over = over.lock().unwrap().clone();
        let first = over.first().cloned();
        problems.push(format!("peak {peak} instances running, target {TARGET}: first {first:?}"));
        problems.push(format!("phases: {:?}", run.phases));
    }
    let statuses = run.statuses.0.lock().unwrap().clone();
    for (phase, status, message) in &statuses {
        if *status == StatusType::Failed {
            problems.push(format!("{phase}: failed: {message}"));
        }
    }
    eprintln!("effect requests per kind: {per_kind:?}; peak {peak}; statuses {statuses:?}");
    let requests: Vec<String> = run
        .recorder
        .requests()
        .iter()
        .filter(|r| EFFECT_KINDS.contains(&request_kind(&r.subject, LATTICE).as_str()))
        .map(|r| format!("{:?} {} {}", r.at, r.subject, r.body))
        .collect();
    let events: Vec<String> = run
        .recorder
        .events()
        .iter()
        .filter(|e| !e.subject.ends_with("host_heartbeat"))
        .map(|e| format!("{:?} {} {}", e.at, e.subject, e.body))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}\nrequests: {requests:#?}\nevents: {events:#?}");
    if let Ok(cluster) = Arc::try_unwrap(run.cluster) {
        cluster.shutdown().await;
    }
}
