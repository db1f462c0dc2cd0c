//! `wadm bench`: a load harness that starts everything itself (a fresh nats-server per phase,
//! in-process wadm replicas, simulated lattices) and prints what wadm costs, in four phases:
//! event throughput, deploy time, host-loss reaction and backlog drain ([`drain`]). wadm and the
//! simulator run on separate named tokio runtimes so their CPU is read apart ([`usage`]). What
//! each phase measures and how: `docs/bench.md`.

mod deploy;
mod drain;
mod loss;
mod manifests;
mod phases;
mod report;
mod rig;
mod usage;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use crate::stack::parse_duration;
use phases::Common;
use report::Report;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// A phase of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Events,
    Deploy,
    HostLoss,
    Drain,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A small configuration (finishes in well under a minute): 10 apps × 3 components on 10
    /// hosts, 100 hosts for events and host loss, 100 hosts × 2 heartbeats and 10 apps per
    /// lattice for drain. Explicit flags still win.
    #[arg(long, alias = "small")]
    quick: bool,
    /// Run only these phases (repeat or comma-separate; default: all, in the order events,
    /// deploy, host-loss, drain).
    #[arg(long = "phase", alias = "only", value_enum, value_delimiter = ',')]
    phases: Vec<Phase>,
    /// Applications deployed at once (default 100; quick 10).
    #[arg(long)]
    apps: Option<usize>,
    /// Components per application (default 5; quick 3).
    #[arg(long)]
    components: Option<usize>,
    /// Hosts of the deploy phase (default 100; quick 10).
    #[arg(long)]
    hosts: Option<usize>,
    /// Hosts of the heartbeat-throughput phase (default 1000; quick 100).
    #[arg(long)]
    event_hosts: Option<usize>,
    /// Heartbeat interval of the throughput phase.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    event_heartbeat: Duration,
    /// Measuring window of the throughput phase (default 20s; quick 5s).
    #[arg(long, value_parser = parse_duration)]
    event_duration: Option<Duration>,
    /// Hosts of the host-loss phase (default 1000; quick 100).
    #[arg(long)]
    loss_hosts: Option<usize>,
    /// Hosts crashed, one at a time (default 10; quick 3).
    #[arg(long)]
    crashes: Option<usize>,
    /// Applications (3 components each) running during the host-loss phase (default 20; quick 5).
    #[arg(long)]
    loss_apps: Option<usize>,
    /// Heartbeat interval of the host-loss phase (lease = 2 intervals + half an interval, at
    /// least 500 ms). Default: the event heartbeat if wadm kept up with it, else long enough
    /// for the throughput measured in the events phase.
    #[arg(long, value_parser = parse_duration)]
    loss_heartbeat: Option<Duration>,
    /// Simulated hosts per lattice of the drain phase (default 1000; quick 100).
    #[arg(long)]
    drain_hosts: Option<usize>,
    /// Applications (4 spread instances each) per lattice of the drain phase (default 100;
    /// quick 10).
    #[arg(long)]
    drain_apps: Option<usize>,
    /// Heartbeats per host stored as the drain phase's backlog (default 10; quick 2).
    #[arg(long)]
    drain_events: Option<usize>,
    /// wadm instances (API server + runtime each, own NATS connection) in this process (the
    /// drain phase runs 1 and 3 whatever this says).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// How long the deploys may take before the bench fails.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    deploy_timeout: Duration,
    /// The runtime's ack wait: how long a delivered, unacknowledged event or command waits
    /// before redelivery.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    ack_wait: Duration,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    store: crate::stack::StoreArgs,
}

/// The resolved configuration (flags over the quick or full defaults).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub quick: bool,
    pub phases: Vec<Phase>,
    pub replicas: usize,
    pub apps: usize,
    pub components: usize,
    pub hosts: usize,
    pub event_hosts: usize,
    pub event_heartbeat_ms: u128,
    pub event_duration_ms: u128,
    pub loss_hosts: usize,
    pub loss_apps: usize,
    pub crashes: usize,
    pub drain_hosts: usize,
    pub drain_apps: usize,
    pub drain_events_per_host: usize,
}

impl Plan {
    fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

impl Args {
    fn plan(&self) -> Plan {
        let pick = |flag: Option<usize>, full: usize, quick: usize| {
            flag.unwrap_or(if self.quick { quick } else { full })
        };
        let window = if self.quick { Duration::from_secs(5) } else { Duration::from_secs(20) };
        let mut phases = if self.phases.is_empty() {
            vec![Phase::Events, Phase::Deploy, Phase::HostLoss, Phase::Drain]
        } else {
            self.phases.clone()
        };
        phases.sort();
        phases.dedup();
        Plan {
            quick: self.quick,
            phases,
            replicas: self.replicas.max(1),
            apps: pick(self.apps, 100, 10),
            components: pick(self.components, 5, 3),
            hosts: pick(self.hosts, 100, 10),
            event_hosts: pick(self.event_hosts, 1000, 100),
            event_heartbeat_ms: self.event_heartbeat.as_millis(),
            event_duration_ms: self.event_duration.unwrap_or(window).as_millis(),
            loss_hosts: pick(self.loss_hosts, 1000, 100),
            loss_apps: pick(self.loss_apps, 20, 5),
            crashes: pick(self.crashes, 10, 3),
            drain_hosts: pick(self.drain_hosts, 1000, 100),
            drain_apps: pick(self.drain_apps, 100, 10),
            drain_events_per_host: pick(self.drain_events, 10, 2),
        }
    }
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init("error", crate::logging::LogFormat::Text);
    let driver = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wadm bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtimes = match rig::Runtimes::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wadm bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = driver.block_on(bench(&args, &runtimes));
    // Outside any async context: whatever wadm and the simulator still run is dropped here.
    runtimes.wadm.shutdown_background();
    runtimes.sim.shutdown_background();
    match outcome {
        Ok(report) => {
            match args.output {
                Output::Json => match serde_json::to_string_pretty(&report) {
                    Ok(text) => outln!("{text}"),
                    Err(e) => {
                        eprintln!("wadm bench: cannot encode the report: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                Output::Table => report::print_table(&report),
            }
            if report.deploy.as_ref().is_none_or(|d| d.all_deployed) {
                ExitCode::SUCCESS
            } else {
                eprintln!("wadm bench: not every application reached deployed");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("wadm bench: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: &Args, runtimes: &rig::Runtimes) -> anyhow::Result<Report> {
    let plan = args.plan();
    let common = Common {
        replicas: plan.replicas,
        deploy_timeout: args.deploy_timeout,
        ack_wait: args.ack_wait,
        names: args.store.store_prefix.clone(),
    };
    let progress = |what: &str| eprintln!("wadm bench: {what}");

    let mut events = None;
    if plan.runs(Phase::Events) {
        progress(&format!("events: {} hosts heartbeating", plan.event_hosts));
        let event_duration = Duration::from_millis(plan.event_duration_ms as u64);
        let figures = phases::events(
            runtimes,
            &common,
            plan.event_hosts,
            args.event_heartbeat,
            event_duration,
        )
        .await
        .context("events phase")?;
        events = Some(figures);
    }

    let mut deploy = None;
    if plan.runs(Phase::Deploy) {
        progress(&format!(
            "deploy: {} apps × {} components on {} hosts",
            plan.apps, plan.components, plan.hosts
        ));
        let figures = phases::deploy(runtimes, &common, plan.apps, plan.components, plan.hosts)
            .await
            .context("deploy phase")?;
        deploy = Some(figures);
    }

    let mut host_loss = None;
    if plan.runs(Phase::HostLoss) {
        // Without the events phase's figures, the event heartbeat.
        let loss_heartbeat = args.loss_heartbeat.unwrap_or_else(|| match &events {
            Some(events) => {
                auto_loss_heartbeat(args.event_heartbeat, events, plan.event_hosts, plan.loss_hosts)
            }
            None => args.event_heartbeat,
        });
        progress(&format!(
            "host loss: {} crashes among {} hosts, heartbeat {loss_heartbeat:?}",
            plan.crashes, plan.loss_hosts
        ));
        let figures = phases::host_loss(
            runtimes,
            &common,
            plan.loss_hosts,
            plan.loss_apps,
            plan.crashes,
            loss_heartbeat,
        )
        .await
        .context("host-loss phase")?;
        host_loss = Some(figures);
    }

    let mut drain = None;
    if plan.runs(Phase::Drain) {
        let size = drain::DrainSize {
            hosts: plan.drain_hosts,
            apps: plan.drain_apps,
            events_per_host: plan.drain_events_per_host,
        };
        let figures =
            drain::drain(runtimes, &common, size, progress).await.context("drain phase")?;
        drain = Some(figures);
    }

    let memory = report::Memory::now();
    Ok(Report { plan, events, deploy, host_loss, drain, memory })
}

/// The host-loss heartbeat: the event heartbeat when wadm handled (nearly) all it was offered,
/// else the whole seconds that keep the offered load at half the measured throughput.
fn auto_loss_heartbeat(
    event_heartbeat: Duration,
    events: &phases::EventFigures,
    event_hosts: usize,
    loss_hosts: usize,
) -> Duration {
    if events.handled_ratio >= 0.95 && loss_hosts <= event_hosts {
        return event_heartbeat;
    }
    let capacity = events.handled_per_s.max(1.0);
    let seconds = (loss_hosts as f64 / (capacity / 2.0)).ceil().clamp(1.0, 30.0);
    Duration::from_secs_f64(seconds).max(event_heartbeat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(argv: &[&str]) -> Plan {
        let argv = std::iter::once("bench").chain(argv.iter().copied());
        Cli::try_parse_from(argv).expect("the flags parse").args.plan()
    }

    #[test]
    fn phases_default_to_all_and_can_be_picked() {
        let all = [Phase::Events, Phase::Deploy, Phase::HostLoss, Phase::Drain];
        assert_eq!(plan(&[]).phases, all);
        assert_eq!(plan(&["--phase", "drain"]).phases, [Phase::Drain]);
        assert_eq!(plan(&["--only", "drain"]).phases, [Phase::Drain]);
        // Repeated or comma-separated, run in the usual order once each.
        let picked = plan(&["--phase", "drain,events", "--phase", "host-loss", "--only", "events"]);
        assert_eq!(picked.phases, [Phase::Events, Phase::HostLoss, Phase::Drain]);
        assert!(Cli::try_parse_from(["bench", "--phase", "nope"]).is_err());
    }

    #[test]
    fn drain_sizes_follow_quick_and_flags() {
        let full = plan(&[]);
        assert_eq!(
            (full.drain_hosts, full.drain_apps, full.drain_events_per_host),
            (1000, 100, 10)
        );
        let quick = plan(&["--quick"]);
        assert_eq!(
            (quick.drain_hosts, quick.drain_apps, quick.drain_events_per_host),
            (100, 10, 2)
        );
        let set = plan(&["--quick", "--drain-hosts", "300", "--drain-events", "5"]);
        assert_eq!((set.drain_hosts, set.drain_apps, set.drain_events_per_host), (300, 10, 5));
    }
}
