//! `wadm sim`: run N simulated wasmCloud hosts in this process on a real NATS server, until
//! interrupted (Ctrl-C / SIGTERM), then stop them gracefully (`host_stopped`).
//!
//! Host labels come in groups: `--labels zone=east:2,zone=west+gpu=yes:3` starts two hosts with
//! `zone=east` and three with `zone=west` and `gpu=yes`; `--hosts` may add unlabelled ones.
//! Fault flags apply to every host.

use std::process::ExitCode;
use std::time::Duration;

use super::connection::NatsArgs;
use crate::stack::parse_duration;
use anyhow::{Context, bail};
use wadm_protocol::StringMap;
use wadm_sim::{FaultSettings, HostSpec, SimConfig, SimLattice};

#[derive(clap::Args)]
pub struct Args {
    /// How to reach NATS (default URL: `nats://127.0.0.1:4222`).
    #[command(flatten)]
    nats: NatsArgs,
    /// Lattice name.
    #[arg(long, default_value = "default")]
    lattice: String,
    /// Number of hosts (default: as many as the label groups name, else 1).
    #[arg(long)]
    hosts: Option<usize>,
    /// Label groups: `key=value[+key=value…][:count]`, comma separated.
    #[arg(long)]
    labels: Option<String>,
    /// Heartbeat interval (`30s`, `500ms`, `1m`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Spread first heartbeats over this much extra time (default: a quarter of the interval).
    #[arg(long, value_parser = parse_duration)]
    heartbeat_stagger: Option<Duration>,
    /// Seed of the simulator's RNG (friendly names, stagger, dropped events); give one to repeat
    /// a run. Default: a new seed each run, so hosts of two `wadm sim` processes get different
    /// names.
    #[arg(long)]
    seed: Option<u64>,
    /// Accept scales, then emit `component_scale_failed`.
    #[arg(long)]
    reject_scales: bool,
    /// Accept provider starts, then emit `provider_start_failed`.
    #[arg(long)]
    reject_provider_starts: bool,
    /// An image (component or provider ref, as wadm sends it) that fails to start: accepted,
    /// then `component_scale_failed` / `provider_start_failed`, the old image kept. Repeatable.
    #[arg(long = "fail-image", value_name = "IMAGE")]
    fail_images: Vec<String>,
    /// A provider image (as wadm sends it) that starts, then fails its health checks
    /// (`health_check_failed`). Repeatable.
    #[arg(long = "unhealthy-image", value_name = "IMAGE")]
    unhealthy_images: Vec<String>,
    /// Publish no heartbeats.
    #[arg(long)]
    pause_heartbeats: bool,
    /// Receive requests but never act on or answer them.
    #[arg(long)]
    ignore_requests: bool,
    /// Answer every workload request (component scale/update, provider start/stop) with an
    /// error, and do nothing.
    #[arg(long)]
    refuse_workloads: bool,
    /// Answer every workload request with bytes that are not a control reply, and do nothing.
    #[arg(long)]
    garble_workloads: bool,
    /// Accept every workload request, then do nothing (no event; the inventory never shows it).
    #[arg(long)]
    swallow_workloads: bool,
    /// Delay every reply by this much (`200ms`).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    reply_delay: Duration,
    /// Drop this fraction (0–1) of events.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    drop_events: f64,
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wadm sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(simulate(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wadm sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn simulate(args: Args) -> anyhow::Result<()> {
    let specs = host_specs(args.labels.as_deref().unwrap_or(""), args.hosts)?;
    let url = args.nats.url_or_default();
    // What hosts report as their NATS address: never a password.
    let shown_url = wadm_client::connect::redact(&url);
    let mut config = SimConfig::new(&shown_url, &args.lattice);
    config.heartbeat_interval = args.heartbeat_interval;
    config.heartbeat_stagger = args.heartbeat_stagger.unwrap_or(args.heartbeat_interval / 4);
    config.seed = args.seed.unwrap_or_else(fresh_seed);
    config.faults = FaultSettings {
        reject_scales: args.reject_scales,
        reject_provider_starts: args.reject_provider_starts,
        pause_heartbeats: args.pause_heartbeats,
        ignore_requests: args.ignore_requests,
        refuse_workloads: args.refuse_workloads,
        garble_workloads: args.garble_workloads,
        swallow_workloads: args.swallow_workloads,
        reply_delay: args.reply_delay,
        drop_events: args.drop_events,
        fail_images: args.fail_images.clone(),
        unhealthy_images: args.unhealthy_images.clone(),
    };
    let client = args.nats.options(url, "wadm sim").connect().await?;
    let sim = SimLattice::with_client(client, config).await?;
    for spec in specs {
        let labels: Vec<String> = spec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let id = sim.add_host(spec).await;
        outln!("{id} {}", labels.join(","));
    }
    eprintln!(
        "wadm sim: {} hosts on lattice `{}` at {} (Ctrl-C to stop)",
        sim.hosts().len(),
        args.lattice,
        shown_url
    );
    wait_for_signal().await.context("waiting for a stop signal")?;
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// Expand `--labels` groups and `--hosts` into one spec per host (also used by `wadm up`).
pub(crate) fn host_specs(groups: &str, hosts: Option<usize>) -> anyhow::Result<Vec<HostSpec>> {
    let mut specs = Vec::new();
    for group in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let (labels, count) = match group.rsplit_once(':') {
            Some((labels, n)) => {
                let n: usize = n.trim().parse().with_context(|| {
                    format!("--labels: group `{group}`: count `{n}` is not a whole number")
                })?;
                (labels, n)
            }
            None => (group, 1),
        };
        let mut map = StringMap::new();
        for pair in labels.split('+') {
            let Some((k, v)) = pair.split_once('=') else {
                bail!("--labels: group `{group}`: `{pair}` is not key=value");
            };
            if k.trim().is_empty() {
                bail!("--labels: group `{group}`: a label key is empty");
            }
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
        specs.extend(std::iter::repeat_n(HostSpec { labels: map, friendly_name: None }, count));
    }
    let labelled = specs.len();
    let total = hosts.unwrap_or(if labelled == 0 { 1 } else { labelled });
    if total < labelled {
        bail!("--hosts {total} is fewer than the {labelled} hosts the label groups name");
    }
    specs.resize(total, HostSpec::default());
    Ok(specs)
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let f: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&f) { Ok(f) } else { Err(format!("`{text}` is not between 0 and 1")) }
}

/// A seed that differs from run to run (the clock and the process id), for simulators whose
/// runs need not repeat.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_groups_expand() {
        let specs = host_specs("zone=east:2, zone=west+gpu=yes:3", None).unwrap();
        assert_eq!(specs.len(), 5);
        assert_eq!(specs[1].labels["zone"], "east");
        assert_eq!(specs[4].labels["gpu"], "yes");
        assert_eq!(host_specs("", None).unwrap().len(), 1);
        let padded = host_specs("a=b", Some(3)).unwrap();
        assert_eq!((padded.len(), padded[2].labels.len()), (3, 0));
        assert!(host_specs("a=b:4", Some(2)).is_err());
        assert!(host_specs("nolabel:2", None).unwrap_err().to_string().contains("key=value"));
        assert!(host_specs("a=b:x", None).is_err());
    }

    #[test]
    fn durations_and_fractions_parse() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5d").is_err() && parse_duration("ms").is_err());
        assert_eq!(parse_fraction("0.1"), Ok(0.1));
        assert!(parse_fraction("1.5").is_err());
    }
}
