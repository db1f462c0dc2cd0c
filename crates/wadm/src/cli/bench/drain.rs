//! The drain phase: how fast wadm works off a backlog of events stored while no wadm ran, for
//! 1 and 3 replicas on 1 and 3 lattices, each configuration on a fresh nats-server. The set-up
//! and what is measured: `docs/bench.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use wadm_protocol::CloudEvent;
use wadm_sim::SimLattice;

use super::deploy::deploy_on;
use super::loss::instance_totals;
use super::manifests;
use super::phases::Common;
use super::rig::{Rig, Runtimes, wait_for};
use super::usage::{CpuUse, Snapshot, round};
use crate::stack::RuntimeArgs;

/// Instances of each drain application.
pub const INSTANCES: u32 = 4;
/// The configurations measured, as (replicas, lattices); the first is the baseline.
pub const CONFIGS: [(usize, usize); 4] = [(1, 1), (3, 1), (1, 3), (3, 3)];
/// The hosts' heartbeat while the lattices are set up.
const SETUP_HEARTBEAT: Duration = Duration::from_secs(10);
/// The heartbeat and slack the runtime is told (lease: 2 × 60 s + 60 s).
const RUNTIME_HEARTBEAT: Duration = Duration::from_secs(60);
/// How often the consumers are read while draining.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// A lattice whose acknowledged position stays put this long while events wait is stalled.
const STALL: Duration = Duration::from_secs(2);
/// Backlog publications awaiting their acknowledgement at once.
const PUBLISH_WINDOW: usize = 512;

/// The size of one drain configuration.
#[derive(Debug, Clone, Copy)]
pub struct DrainSize {
    pub hosts: usize,
    pub apps: usize,
    pub events_per_host: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainRun {
    pub replicas: usize,
    pub lattices: usize,
    /// Events waiting on the event consumers of all lattices when the replicas started (the
    /// stored heartbeats, plus anything left over from the set-up).
    pub backlog_events: u64,
    /// Heartbeats the bench stored for this run.
    pub published: u64,
    /// Deliveries acknowledged during the drain beyond the backlog: the runtime's own events
    /// (ticks, discovery rounds) and redeliveries.
    pub extra_deliveries: u64,
    /// From starting the replicas until every lattice's consumer had nothing pending and
    /// nothing unacknowledged.
    pub drain_ms: f64,
    /// backlog_events / drain.
    pub events_per_s: f64,
    /// From starting the replicas until the first event of any lattice was acknowledged
    /// (start-up: connections, streams, record reads).
    pub first_ack_ms: f64,
    /// The rate once the runtime was handling events: the events acknowledged after the first
    /// acknowledgement was seen, over the time from then to the end; `null` when that is under
    /// half a second (the whole backlog went in a batch or two).
    pub events_per_s_after_first_ack: Option<f64>,
    /// When each lattice's consumer was drained, from starting the replicas.
    pub lattice_drain_ms: Vec<f64>,
    /// Pauses of 2 s or more in a lattice's acknowledged position while it still had events
    /// waiting, after its first acknowledgement (e.g. a replica losing the consumer's pin and
    /// the next pull waiting out the pin's timeout), and their total length.
    pub stalls: u64,
    pub stalled_ms: f64,
    /// The stalled time of each lattice.
    pub lattice_stalled_ms: Vec<f64>,
    /// An estimate of the rate without the stalls: backlog_events / the longest of each
    /// lattice's drain time minus its stalls (the lattices drain side by side).
    pub events_per_s_without_stalls: f64,
    /// Control commands published during the drain (a heartbeat backlog of unchanged
    /// inventories should cause none).
    pub commands_during_drain: u64,
    pub wadm_cpu_us_per_event: f64,
    /// How long the set-up took (hosts, deploys, convergence, storing the backlog).
    pub setup_s: f64,
    pub usage: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainRatios {
    /// events/s of (3 replicas, 1 lattice) over (1, 1).
    pub three_replicas_one_lattice: f64,
    /// events/s of (1 replica, 3 lattices) over (1, 1).
    pub one_replica_three_lattices: f64,
    /// events/s of (3 replicas, 3 lattices) over (1, 1).
    pub three_replicas_three_lattices: f64,
    /// events/s of (3 replicas, 3 lattices) over (1 replica, 3 lattices).
    pub three_vs_one_replica_on_three_lattices: f64,
}

impl DrainRatios {
    /// The ratios of the runs' `rate`.
    fn of(runs: &[DrainRun], rate: impl Fn(&DrainRun) -> f64) -> DrainRatios {
        let rate = |r: usize, l: usize| {
            runs.iter().find(|run| run.replicas == r && run.lattices == l).map(&rate).unwrap_or(0.0)
        };
        let ratio = |a: f64, b: f64| round(if b > 0.0 { a / b } else { 0.0 }, 2);
        DrainRatios {
            three_replicas_one_lattice: ratio(rate(3, 1), rate(1, 1)),
            one_replica_three_lattices: ratio(rate(1, 3), rate(1, 1)),
            three_replicas_three_lattices: ratio(rate(3, 3), rate(1, 1)),
            three_vs_one_replica_on_three_lattices: ratio(rate(3, 3), rate(1, 3)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainFigures {
    pub hosts_per_lattice: usize,
    pub apps_per_lattice: usize,
    pub instances_per_app: u32,
    pub events_per_host: usize,
    /// What the simulated hosts do while the backlog is stored and drained.
    pub hosts_during_drain: &'static str,
    pub runs: Vec<DrainRun>,
    /// Ratios of `events_per_s`.
    pub ratios: DrainRatios,
    /// Ratios of `events_per_s_without_stalls`.
    pub ratios_without_stalls: DrainRatios,
}

/// Every configuration of [`CONFIGS`], one after the other; `progress` is told each start.
pub async fn drain(
    rt: &Runtimes,
    common: &Common,
    size: DrainSize,
    progress: impl Fn(&str),
) -> anyhow::Result<DrainFigures> {
    let mut runs = Vec::new();
    for (replicas, lattices) in CONFIGS {
        progress(&format!(
            "drain: {replicas} replica(s), {lattices} lattice(s): {} hosts, {} apps and {} \
             heartbeats per lattice",
            size.hosts,
            size.apps,
            size.hosts * size.events_per_host
        ));
        let run = drain_one(rt, common, size, replicas, lattices)
            .await
            .with_context(|| format!("{replicas} replica(s) on {lattices} lattice(s)"))?;
        progress(&format!(
            "drain:   {} events in {:.0} ms: {:.0} events/s ({} stalls ≥ 2 s, {:.0} ms; \
             ~{:.0} events/s without)",
            run.backlog_events,
            run.drain_ms,
            run.events_per_s,
            run.stalls,
            run.stalled_ms,
            run.events_per_s_without_stalls
        ));
        runs.push(run);
    }
    let ratios = DrainRatios::of(&runs, |run| run.events_per_s);
    let ratios_without_stalls = DrainRatios::of(&runs, |run| run.events_per_s_without_stalls);
    Ok(DrainFigures {
        hosts_per_lattice: size.hosts,
        apps_per_lattice: size.apps,
        instances_per_app: INSTANCES,
        events_per_host: size.events_per_host,
        hosts_during_drain: "heartbeats paused (hosts up, answering requests)",
        runs,
        ratios,
        ratios_without_stalls,
    })
}

fn runtime_args(common: &Common, lattices: &[String]) -> RuntimeArgs {
    RuntimeArgs {
        account_scoped: false,
        lattices: lattices.to_vec(),
        host_heartbeat: RUNTIME_HEARTBEAT,
        lease_slack: RUNTIME_HEARTBEAT,
        resync_every: Duration::from_secs(5),
        command_ttl: Duration::from_secs(60),
        ack_wait: common.ack_wait,
        command_workers: 8,
        event_max_age: wadm_store::streams::DEFAULT_EVENT_MAX_AGE,
        event_max_bytes: wadm_store::streams::DEFAULT_EVENT_MAX_BYTES,
        orphans: wadm_runtime::orphans::OrphanMode::default(),
        orphan_grace: wadm_runtime::orphans::DEFAULT_GRACE,
    }
}

async fn drain_one(
    rt: &Runtimes,
    common: &Common,
    size: DrainSize,
    replicas: usize,
    lattices: usize,
) -> anyhow::Result<DrainRun> {
    let names: Vec<String> = (0..lattices).map(|l| format!("bench_drain_{l}")).collect();
    let mut rig = Rig::start(&names[0], &common.names).await?;
    let result = measure(&mut rig, rt, common, size, replicas, &names).await;
    // The figures are taken: no need to wait for the replicas' start-up discovery rounds.
    rig.kill();
    result
}

async fn measure(
    rig: &mut Rig,
    rt: &Runtimes,
    common: &Common,
    size: DrainSize,
    replicas: usize,
    lattices: &[String],
) -> anyhow::Result<DrainRun> {
    let setup_started = Instant::now();
    let args = runtime_args(common, lattices);
    rig.start_wadm(rt.wadm.handle(), replicas, args.clone()).await?;
    let mut sims = Vec::new();
    for lattice in lattices {
        sims.push(rig.start_sim_on(rt.sim.handle(), lattice, size.hosts, SETUP_HEARTBEAT).await?);
    }
    for (lattice, sim) in lattices.iter().zip(&sims) {
        converge(rig, common, size, lattice, sim).await?;
    }

    // Quiet the hosts, let wadm handle what they sent, stop it and free the pins.
    for sim in &sims {
        for host in sim.hosts() {
            if let Some(faults) = sim.faults(&host) {
                faults.set_pause_heartbeats(true);
            }
        }
    }
    for lattice in lattices {
        rig.wait_caught_up_on(lattice, Duration::from_secs(60)).await?;
    }
    rig.abort_wadm().await;
    for lattice in lattices {
        rig.unpin(lattice).await?;
        // An event taken just before the abort is due again after the ack wait.
        let due = common.ack_wait + Duration::from_secs(5);
        // And no pull request of the aborted replicas may be left waiting (the server could pin
        // one when the backlog comes, and nothing would take it until the pin times out).
        wait_for(due, "nothing unacknowledged and no pull request waiting", || async {
            let info = rig.consumer_info(lattice).await.ok()?;
            let pinned = info.priority_groups.iter().any(|g| g.pinned_client_id.is_some());
            (info.num_ack_pending == 0 && info.num_waiting == 0 && !pinned).then_some(())
        })
        .await?;
    }
    let published = publish_backlog(rig, &sims, size.events_per_host).await?;

    // Every stored heartbeat is counted by its consumer before the clock starts.
    let mut before = Vec::new();
    for lattice in lattices {
        before.push(rig.consumer_info(lattice).await?);
    }
    let backlog: u64 = before.iter().map(|i| i.num_pending + i.num_ack_pending as u64).sum();
    ensure!(backlog >= published, "only {backlog} of {published} stored heartbeats are pending");
    let commands = count_commands(rig, lattices).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let s0 = Snapshot::take(rig.nats_pid());
    let started = Instant::now();
    rig.start_wadm(rt.wadm.handle(), replicas, args).await?;
    // When the first acknowledgement was seen, and how many events were acknowledged by then.
    let mut first_ack: Option<(Duration, u64)> = None;
    let mut drained: Vec<Option<Duration>> = vec![None; lattices.len()];
    let mut after = before.clone();
    // Per lattice: the acknowledged position last seen to move, and when.
    let mut moved: Vec<(u64, Option<Duration>)> =
        before.iter().map(|i| (i.ack_floor.consumer_sequence, None)).collect();
    let mut stalls = 0u64;
    let mut stalled = vec![Duration::ZERO; lattices.len()];
    while drained.iter().any(Option::is_none) {
        for (index, lattice) in lattices.iter().enumerate() {
            if drained[index].is_some() {
                continue;
            }
            let info = rig.consumer_info(lattice).await?;
            let at = started.elapsed();
            let acked = info
                .ack_floor
                .consumer_sequence
                .saturating_sub(before[index].ack_floor.consumer_sequence);
            if first_ack.is_none() && acked > 0 {
                first_ack = Some((at, acked));
            }
            let floor = info.ack_floor.consumer_sequence;
            if floor != moved[index].0 {
                if let Some(last) = moved[index].1
                    && at - last >= STALL
                {
                    stalls += 1;
                    stalled[index] += at - last;
                }
                moved[index] = (floor, Some(at));
            }
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                drained[index] = Some(at);
            }
            after[index] = info;
        }
        if started.elapsed() > common.deploy_timeout {
            bail!("the backlog was not drained within {:?}", common.deploy_timeout);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    let s1 = Snapshot::take(rig.nats_pid());
    let commands_during_drain = commands.stop();

    let drained: Vec<Duration> = drained.into_iter().flatten().collect();
    let drain = drained.iter().max().copied().unwrap_or_default();
    let (first_ack, acked_first) = first_ack.unwrap_or((drain, backlog));
    let after_first = drain.saturating_sub(first_ack);
    let deliveries: u64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.ack_floor.consumer_sequence.saturating_sub(b.ack_floor.consumer_sequence))
        .sum();
    let usage = CpuUse::between(&s0, &s1);
    let per_s = |d: Duration| round(backlog as f64 / d.as_secs_f64().max(1e-3), 1);
    // The lattices drain side by side: without its stalls, the slowest one sets the time.
    let unstalled = drained.iter().zip(&stalled).map(|(d, s)| d.saturating_sub(*s)).max();
    Ok(DrainRun {
        replicas,
        lattices: lattices.len(),
        backlog_events: backlog,
        published,
        extra_deliveries: deliveries.saturating_sub(backlog),
        drain_ms: ms(drain),
        events_per_s: per_s(drain),
        first_ack_ms: ms(first_ack),
        events_per_s_after_first_ack: (after_first >= Duration::from_millis(500)).then(|| {
            round(backlog.saturating_sub(acked_first) as f64 / after_first.as_secs_f64(), 1)
        }),
        lattice_drain_ms: drained.iter().map(|d| ms(*d)).collect(),
        stalls,
        stalled_ms: ms(stalled.iter().sum()),
        lattice_stalled_ms: stalled.iter().map(|d| ms(*d)).collect(),
        events_per_s_without_stalls: per_s(unstalled.unwrap_or_default().max(first_ack)),
        commands_during_drain,
        wadm_cpu_us_per_event: round(usage.wadm_cpu_s * 1e6 / (backlog.max(1) as f64), 1),
        setup_s: round(setup_s, 1),
        usage,
    })
}

fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 1)
}

/// Deploy the drain applications on `lattice` and wait until they are deployed, the hosts run
/// exactly what they ask for and the lattice's consumer is caught up.
async fn converge(
    rig: &Rig,
    common: &Common,
    size: DrainSize,
    lattice: &str,
    sim: &SimLattice,
) -> anyhow::Result<()> {
    rig.wait_caught_up_on(lattice, Duration::from_secs(120)).await?;
    let manifest = |a: usize| manifests::spread_manifest("drain", a, INSTANCES);
    let done = deploy_on(rig, lattice, "drain", size.apps, &manifest, common.deploy_timeout)
        .await
        .with_context(|| format!("deploying on {lattice}"))?;
    ensure!(
        done.apps_deployed == size.apps,
        "only {} of {} apps deployed on {lattice}",
        done.apps_deployed,
        size.apps
    );
    let desired = manifests::spread_desired("drain", size.apps, INSTANCES);
    wait_for(common.deploy_timeout, "the hosts to run what was deployed", || {
        std::future::ready((instance_totals(sim) == desired).then_some(()))
    })
    .await
    .with_context(|| format!("converging {lattice}"))?;
    rig.wait_caught_up_on(lattice, Duration::from_secs(120)).await
}

/// Store `per_host` heartbeats of every host of every lattice (round by round, each host's
/// current inventory), each acknowledged by the event stream. Returns how many.
async fn publish_backlog(
    rig: &Rig,
    sims: &[Arc<SimLattice>],
    per_host: usize,
) -> anyhow::Result<u64> {
    let js = rig.js();
    let mut in_flight = FuturesUnordered::new();
    let mut published = 0u64;
    for round in 0..per_host {
        for sim in sims {
            let subject = wadm_protocol::subject::event(sim.lattice(), "host_heartbeat");
            for host in sim.hosts() {
                let Some(inventory) = sim.inventory(&host) else { continue };
                let event = CloudEvent::host_event(
                    "host_heartbeat",
                    format!("bench-drain-{round}-{host}"),
                    host.as_str(),
                    rfc3339(SystemTime::now()),
                    serde_json::to_value(inventory)?,
                );
                let ack = js
                    .publish(subject.clone(), serde_json::to_vec(&event)?.into())
                    .await
                    .context("storing a heartbeat")?;
                in_flight.push(ack.into_future());
                published += 1;
                while in_flight.len() >= PUBLISH_WINDOW {
                    if let Some(ack) = in_flight.next().await {
                        ack.context("storing a heartbeat")?;
                    }
                }
            }
        }
    }
    while let Some(ack) = in_flight.next().await {
        ack.context("storing a heartbeat")?;
    }
    Ok(published)
}

/// Counts the control commands published on the given lattices until [`CommandCount::stop`].
struct CommandCount {
    seen: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CommandCount {
    fn stop(self) -> u64 {
        for task in &self.tasks {
            task.abort();
        }
        self.seen.load(Ordering::Relaxed)
    }
}

async fn count_commands(rig: &Rig, lattices: &[String]) -> anyhow::Result<CommandCount> {
    let seen = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for lattice in lattices {
        let mut commands = rig.client.subscribe(format!("wadm.cmd.{lattice}.>")).await?;
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            while commands.next().await.is_some() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    rig.client.flush().await.context("subscribing to commands")?;
    Ok(CommandCount { seen, tasks })
}

/// `at` as RFC 3339 UTC with microseconds (the simulator's event time format).
fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_rfc3339() {
        let at = |s: u64, us: u64| UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us);
        assert_eq!(rfc3339(at(1_705_954_402, 611_283)), "2024-01-22T20:13:22.611283Z");
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.000005Z");
        assert_eq!(rfc3339(at(1_735_689_599, 999_999)), "2024-12-31T23:59:59.999999Z");
    }
}
