//! The three measured phases, each in a fresh [`Rig`] (own nats-server, wadm, simulator):
//! heartbeat throughput, mass deploy, host loss. Each returns its figures ready to print.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::deploy::deploy_all;
use super::loss::{crash_and_time, percentile};
use super::rig::{Rig, Runtimes};
use super::usage::{CpuUse, Snapshot, round};
use crate::stack::RuntimeArgs;

/// Settings shared by the phases.
#[derive(Debug, Clone)]
pub struct Common {
    pub replicas: usize,
    pub deploy_timeout: Duration,
    /// The runtime's ack wait (how long an unacknowledged event or command blocks).
    pub ack_wait: Duration,
    /// The names of wadm's streams, buckets and consumers (`--store-prefix`).
    pub names: wadm_store::StoreNames,
}

/// The runtime's flags for a phase with heartbeats every `heartbeat`.
fn runtime_args(
    common: &Common,
    lattice: &str,
    heartbeat: Duration,
    slack: Duration,
    resync: Duration,
) -> RuntimeArgs {
    RuntimeArgs {
        account_scoped: false,
        lattices: vec![lattice.to_string()],
        host_heartbeat: heartbeat,
        lease_slack: slack,
        resync_every: resync,
        command_ttl: Duration::from_secs(60),
        ack_wait: common.ack_wait,
        command_workers: 8,
        event_max_age: wadm_store::streams::DEFAULT_EVENT_MAX_AGE,
        event_max_bytes: wadm_store::streams::DEFAULT_EVENT_MAX_BYTES,
        orphans: wadm_runtime::orphans::OrphanMode::default(),
        orphan_grace: wadm_runtime::orphans::DEFAULT_GRACE,
    }
}

fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 1)
}

#[derive(Debug, Clone, Serialize)]
pub struct EventFigures {
    pub hosts: usize,
    pub heartbeat_ms: f64,
    pub duration_s: f64,
    /// Events stored in the event stream per second (host events plus the runtime's ticks).
    pub offered_per_s: f64,
    /// Events the runtime handled (acked) per second.
    pub handled_per_s: f64,
    /// handled / offered.
    pub handled_ratio: f64,
    /// Events waiting at the end of the window.
    pub backlog_end: u64,
    /// wadm CPU per handled event, µs.
    pub wadm_cpu_us_per_event: f64,
    /// CPU of the simulator alone (before wadm started), over its own window.
    pub sim_alone: CpuUse,
    /// RSS the simulator's hosts added, measured before wadm started, MiB.
    pub sim_alone_rss_mib: f64,
    /// RSS added after wadm started and handled the window, MiB (approximate: the
    /// simulator may grow too).
    pub wadm_rss_added_mib: f64,
    pub usage: CpuUse,
}

/// Heartbeat throughput: `hosts` hosts beating every `heartbeat`, measured for `duration`.
pub async fn events(
    rt: &Runtimes,
    common: &Common,
    hosts: usize,
    heartbeat: Duration,
    duration: Duration,
) -> anyhow::Result<EventFigures> {
    let mut rig = Rig::start("bench_events", &common.names).await?;
    let empty = Snapshot::take(rig.nats_pid());
    let sim = rig.start_sim(rt.sim.handle(), hosts, heartbeat).await?;
    // Every host beats once before the simulator alone is measured.
    tokio::time::sleep(heartbeat * 2).await;
    let sim_start = Snapshot::take(rig.nats_pid());
    tokio::time::sleep(duration.min(Duration::from_secs(5))).await;
    let sim_end = Snapshot::take(rig.nats_pid());

    let args = runtime_args(common, &rig.lattice, heartbeat, heartbeat, Duration::from_secs(1));
    rig.start_wadm(rt.wadm.handle(), common.replicas, args).await?;
    tokio::time::sleep(heartbeat * 2).await;
    let (p0, s0) = (rig.progress().await?, Snapshot::take(rig.nats_pid()));
    tokio::time::sleep(duration).await;
    let (p1, s1) = (rig.progress().await?, Snapshot::take(rig.nats_pid()));
    drop(sim);
    rig.stop().await;

    let usage = CpuUse::between(&s0, &s1);
    let secs = usage.wall_s.max(1e-9);
    let offered = p1.offered.saturating_sub(p0.offered) as f64;
    let handled = p1.handled.saturating_sub(p0.handled) as f64;
    Ok(EventFigures {
        hosts,
        heartbeat_ms: ms(heartbeat),
        duration_s: usage.wall_s,
        offered_per_s: round(offered / secs, 1),
        handled_per_s: round(handled / secs, 1),
        handled_ratio: round(if offered > 0.0 { handled / offered } else { 0.0 }, 3),
        backlog_end: p1.backlog,
        wadm_cpu_us_per_event: round(
            if handled > 0.0 { usage.wadm_cpu_s * 1e6 / handled } else { 0.0 },
            1,
        ),
        sim_alone: CpuUse::between(&sim_start, &sim_end),
        sim_alone_rss_mib: round(sim_end.rss_mib - empty.rss_mib, 1),
        wadm_rss_added_mib: round(s1.rss_mib - sim_end.rss_mib, 1),
        usage,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployFigures {
    pub apps: usize,
    pub components: usize,
    pub hosts: usize,
    pub instances: u64,
    /// Instances the simulated hosts run once the statuses settled (or the wait gave up).
    pub instances_running: u64,
    /// Distinct commands issued (id and retry round).
    pub commands_issued: u64,
    /// Command publications, republished ones included (the command stream dedupes them).
    pub command_publishes: u64,
    pub deploy_to_commands_issued_ms: f64,
    /// `null` when some application never published `deployed` within `--deploy-timeout`.
    pub deploy_to_all_deployed_ms: Option<f64>,
    /// Applications that published `deployed` at least once.
    pub apps_seen_deployed: usize,
    /// Applications whose `model.status` says `deployed` at the end.
    pub apps_deployed: usize,
    pub all_deployed: bool,
    /// Components that ever ran more instances at once than their target (should be none).
    pub overshoots: Vec<super::loss::Overshoot>,
    pub usage: CpuUse,
}

/// Mass deploy: `apps` × `components` on `hosts` hosts.
pub async fn deploy(
    rt: &Runtimes,
    common: &Common,
    apps: usize,
    components: usize,
    hosts: usize,
) -> anyhow::Result<DeployFigures> {
    let heartbeat = Duration::from_secs(10);
    let mut rig = Rig::start("bench_deploy", &common.names).await?;
    let args = runtime_args(
        common,
        &rig.lattice,
        heartbeat,
        Duration::from_secs(5),
        Duration::from_secs(1),
    );
    rig.start_wadm(rt.wadm.handle(), common.replicas, args).await?;
    let sim = rig.start_sim(rt.sim.handle(), hosts, heartbeat).await?;
    rig.wait_caught_up(Duration::from_secs(60)).await?;
    let before = Snapshot::take(rig.nats_pid());
    let done = deploy_all(&rig, "bench", apps, components, common.deploy_timeout).await;
    let after = Snapshot::take(rig.nats_pid());
    let instances_running: u64 = super::loss::instance_totals(&sim).values().sum();
    let desired = super::manifests::desired_instances("bench", apps, components);
    let overshoots = super::loss::overshoots(&sim, &desired);
    drop(sim);
    rig.stop().await;
    let done = done?;
    Ok(DeployFigures {
        apps,
        components,
        hosts,
        instances: super::manifests::total_instances(apps, components),
        instances_running,
        commands_issued: done.commands,
        command_publishes: done.publishes,
        deploy_to_commands_issued_ms: ms(done.to_commands_issued),
        deploy_to_all_deployed_ms: done.to_all_deployed.map(ms),
        apps_seen_deployed: done.seen_deployed,
        apps_deployed: done.apps_deployed,
        all_deployed: done.apps_deployed == apps && done.to_all_deployed.is_some(),
        overshoots,
        usage: CpuUse::between(&before, &after),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct LossFigures {
    pub hosts: usize,
    pub apps: usize,
    pub heartbeat_ms: f64,
    /// The lease wadm used: two heartbeat intervals plus the slack.
    pub lease_ms: f64,
    pub crashes: usize,
    pub latencies_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Latency minus the lease: how long wadm took to react once the lease could have run out
    /// (negative parts come from the crash landing after the host's last heartbeat).
    pub reaction_p50_ms: f64,
    pub reaction_p99_ms: f64,
    /// Components that ever ran more instances at once than their target, over the deploy
    /// and every crash and replacement (should be none).
    pub overshoots: Vec<super::loss::Overshoot>,
    /// Components the phase deployed.
    pub components: usize,
    pub usage: CpuUse,
}

/// Host loss: `crashes` hosts crashed one at a time among `hosts`, heartbeats every `heartbeat`.
pub async fn host_loss(
    rt: &Runtimes,
    common: &Common,
    hosts: usize,
    apps: usize,
    crashes: usize,
    heartbeat: Duration,
) -> anyhow::Result<LossFigures> {
    let slack = (heartbeat / 2).max(Duration::from_millis(500));
    let lease = heartbeat * 2 + slack;
    let mut rig = Rig::start("bench_loss", &common.names).await?;
    let args = runtime_args(common, &rig.lattice, heartbeat, slack, Duration::from_millis(250));
    rig.start_wadm(rt.wadm.handle(), common.replicas, args).await?;
    let sim = rig.start_sim(rt.sim.handle(), hosts, heartbeat).await?;
    let result = async {
        rig.wait_caught_up(Duration::from_secs(120)).await?;
        let done = deploy_all(&rig, "loss", apps, 3, common.deploy_timeout).await?;
        anyhow::ensure!(
            done.apps_deployed == apps,
            "only {} of {apps} apps deployed",
            done.apps_deployed
        );
        let desired = super::manifests::desired_instances("loss", apps, 3);
        let before = Snapshot::take(rig.nats_pid());
        let latencies = crash_and_time(
            &sim,
            rt.sim.handle(),
            &desired,
            crashes,
            lease * 4 + Duration::from_secs(60),
        )
        .await
        .context("host loss")?;
        let usage = CpuUse::between(&before, &Snapshot::take(rig.nats_pid()));
        let overshoots = super::loss::overshoots(&sim, &desired);
        Ok((latencies, usage, overshoots, desired.len()))
    }
    .await;
    drop(sim);
    rig.stop().await;
    let (latencies, usage, overshoots, components) = result?;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let reaction = |p: Duration| round(p.as_secs_f64() * 1000.0 - lease.as_secs_f64() * 1000.0, 1);
    Ok(LossFigures {
        hosts,
        apps,
        heartbeat_ms: ms(heartbeat),
        lease_ms: ms(lease),
        crashes,
        latencies_ms: latencies.iter().map(|d| ms(*d)).collect(),
        p50_ms: ms(p50),
        p99_ms: ms(p99),
        reaction_p50_ms: reaction(p50),
        reaction_p99_ms: reaction(p99),
        overshoots,
        components,
        usage,
    })
}
