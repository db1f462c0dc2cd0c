//! The bench's report: one serialisable value (`--output json`) and its table form.

use serde::Serialize;

use super::Plan;
use super::drain::DrainFigures;
use super::phases::{DeployFigures, EventFigures, LossFigures};
use super::usage::{Snapshot, round};

/// How CPU and memory are told apart between wadm and the simulator (they share the process).
pub const MEASUREMENT: &str = "CPU per thread from /proc/self/task/*/stat: wadm (API server + runtime) \
and the simulator run on separate named tokio runtimes; memory from /proc/self/status: the \
simulator's RSS is measured alone before wadm starts (events phase), wadm's as what it added after";

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub rss_end_mib: f64,
    pub peak_rss_mib: f64,
    pub measurement: &'static str,
}

impl Memory {
    pub fn now() -> Memory {
        let now = Snapshot::take(None);
        Memory {
            rss_end_mib: round(now.rss_mib, 1),
            peak_rss_mib: round(now.peak_rss_mib, 1),
            measurement: MEASUREMENT,
        }
    }
}

/// Every phase's figures; a phase not run (see `--phase`) is absent.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_loss: Option<LossFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainFigures>,
    pub memory: Memory,
}

/// Print the report as an aligned two-column table.
pub fn print_table(r: &Report) {
    let mut rows: Vec<(String, String)> =
        vec![("wadm replicas".into(), r.plan.replicas.to_string())];
    if let Some(d) = &r.deploy {
        rows.extend(deploy_rows(d));
    }
    if let Some(l) = &r.host_loss {
        rows.extend(loss_rows(l));
    }
    if let Some(e) = &r.events {
        rows.extend(event_rows(e));
    }
    if let Some(d) = &r.drain {
        rows.extend(drain_rows(d));
    }
    rows.push((
        "process RSS end / peak".into(),
        format!("{:.1} MiB / {:.1} MiB", r.memory.rss_end_mib, r.memory.peak_rss_mib),
    ));
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (key, value) in rows {
        outln!("{key:<width$}  {value}");
    }
}

fn deploy_rows(d: &DeployFigures) -> Vec<(String, String)> {
    vec![
        (
            format!("deploy: {} apps × {} components on {} hosts", d.apps, d.components, d.hosts),
            format!(
                "{} instances ({} running), {} commands ({} publications)",
                d.instances, d.instances_running, d.commands_issued, d.command_publishes
            ),
        ),
        (
            "  deploy → all commands issued".into(),
            format!("{:.0} ms", d.deploy_to_commands_issued_ms),
        ),
        (
            "  deploy → all apps deployed".into(),
            match d.deploy_to_all_deployed_ms {
                Some(ms) => {
                    format!("{ms:.0} ms ({}/{} deployed at the end)", d.apps_deployed, d.apps)
                }
                None => format!(
                    "not reached: {}/{} seen deployed, {}/{} deployed at the end",
                    d.apps_seen_deployed, d.apps, d.apps_deployed, d.apps
                ),
            },
        ),
        (
            "  peak instances (simulator, every host at once)".into(),
            super::loss::overshoot_text(&d.overshoots, d.apps * d.components),
        ),
        (
            "  wadm CPU / sim CPU".into(),
            format!(
                "{:.2} s / {:.2} s over {:.1} s",
                d.usage.wadm_cpu_s, d.usage.sim_cpu_s, d.usage.wall_s
            ),
        ),
    ]
}

fn loss_rows(l: &LossFigures) -> Vec<(String, String)> {
    vec![
        (
            format!("host loss: {} crashes among {} hosts", l.crashes, l.hosts),
            format!("heartbeat {:.0} ms, lease {:.0} ms", l.heartbeat_ms, l.lease_ms),
        ),
        ("  crash → replaced p50 / p99".into(), format!("{:.0} ms / {:.0} ms", l.p50_ms, l.p99_ms)),
        (
            "  minus lease (reaction) p50 / p99".into(),
            format!("{:.0} ms / {:.0} ms", l.reaction_p50_ms, l.reaction_p99_ms),
        ),
        (
            "  peak instances (deploy, crashes, replacements)".into(),
            super::loss::overshoot_text(&l.overshoots, l.components),
        ),
    ]
}

fn event_rows(e: &EventFigures) -> Vec<(String, String)> {
    vec![
        (
            format!("events: {} hosts, heartbeat {:.0} ms", e.hosts, e.heartbeat_ms),
            format!("{:.1} s window", e.duration_s),
        ),
        (
            "  offered / handled per s".into(),
            format!(
                "{:.0} / {:.0} ({:.0}%), backlog {}",
                e.offered_per_s,
                e.handled_per_s,
                e.handled_ratio * 100.0,
                e.backlog_end
            ),
        ),
        (
            "  wadm CPU".into(),
            format!(
                "{:.0}% of a core, {:.0} µs per event",
                e.usage.wadm_cpu_pct, e.wadm_cpu_us_per_event
            ),
        ),
        (
            "  sim CPU (with wadm / alone)".into(),
            format!("{:.0}% / {:.0}% of a core", e.usage.sim_cpu_pct, e.sim_alone.sim_cpu_pct),
        ),
        ("  nats-server CPU".into(), format!("{:.0}% of a core", e.usage.nats_server_cpu_pct)),
        (
            "  RSS: sim alone / added by wadm".into(),
            format!("{:.1} MiB / {:.1} MiB", e.sim_alone_rss_mib, e.wadm_rss_added_mib),
        ),
    ]
}

fn drain_rows(d: &DrainFigures) -> Vec<(String, String)> {
    let mut rows = vec![(
        format!(
            "drain: {} heartbeats per host, {} hosts per lattice",
            d.events_per_host, d.hosts_per_lattice
        ),
        format!(
            "{} apps × {} instances per lattice; {}",
            d.apps_per_lattice, d.instances_per_app, d.hosts_during_drain
        ),
    )];
    for run in &d.runs {
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        rows.push((
            format!("  {}, {}", plural(run.replicas, "replica"), plural(run.lattices, "lattice")),
            format!(
                "{:.0} events/s: {} events in {:.0} ms (first ack {:.0} ms{})",
                run.events_per_s,
                run.backlog_events,
                run.drain_ms,
                run.first_ack_ms,
                match run.events_per_s_after_first_ack {
                    Some(rate) => format!(", then {rate:.0}/s"),
                    None => String::new(),
                }
            ),
        ));
        rows.push((
            "    wadm / nats-server CPU".into(),
            format!(
                "{:.0}% / {:.0}% of a core, {:.0} µs of wadm CPU per event",
                run.usage.wadm_cpu_pct, run.usage.nats_server_cpu_pct, run.wadm_cpu_us_per_event
            ),
        ));
        rows.push((
            "    stalls ≥ 2 s, commands, set-up".into(),
            format!(
                "{} ({:.0} ms; without them ~{:.0} events/s), {} commands, set-up {:.1} s",
                run.stalls,
                run.stalled_ms,
                run.events_per_s_without_stalls,
                run.commands_during_drain,
                run.setup_s
            ),
        ));
    }
    for (what, r) in [("", &d.ratios), (" (without stalls)", &d.ratios_without_stalls)] {
        rows.push((
            format!("  ratios to 1 replica, 1 lattice{what}"),
            format!(
                "3 replicas, 1 lattice {:.2}×; 1 replica, 3 lattices {:.2}×; \
                 3 replicas, 3 lattices {:.2}× ({:.2}× 1 replica, 3 lattices)",
                r.three_replicas_one_lattice,
                r.one_replica_three_lattices,
                r.three_replicas_three_lattices,
                r.three_vs_one_replica_on_three_lattices
            ),
        ));
    }
    rows
}
