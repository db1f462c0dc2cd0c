//! `wadm lattice …`: what wadm observes in a lattice, through a running wadm's NATS API.
//!
//! - `wadm lattice hosts [--app NAME]`: every host (or the hosts of one application's
//!   placement) with its name, version, uptime, labels and what runs there;
//! - `wadm lattice list`: the lattices the answering wadm observes, with their host counts.
//!
//! Tables by default (the hosts' own `hostcore.*` labels left out), `-o json` for the replies as
//! they are (every label). The same connection options, exit codes and one-line errors as
//! `wadm app`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;
use wadm_client::{Client, ClientError, HostSummary, LatticeSummary};

use super::app::{Failure, Output, run_to_exit};
use super::connection::NatsArgs;

/// Labels every wasmCloud host sets itself: left out of tables.
const HOST_LABEL_PREFIX: &str = "hostcore.";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How to reach NATS (default URL: `nats://127.0.0.1:4222`).
    #[command(flatten)]
    nats: NatsArgs,
    /// The lattice to look at.
    #[arg(long, global = true, env = "WADM_LATTICE", default_value = "default")]
    lattice: String,
    /// Subject prefix of the wadm API.
    #[arg(long, global = true, env = "WADM_API_PREFIX", default_value = wadm_client::api::DEFAULT_API_PREFIX)]
    api_prefix: String,
    /// How long to wait for the reply (e.g. `5s`, `500ms`; default 5s).
    #[arg(long, global = true, value_parser = super::app::parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The hosts wadm observes: name, version, uptime, labels and what runs on each.
    Hosts {
        /// Only the hosts running something of this application (and only that).
        #[arg(long)]
        app: Option<String>,
    },
    /// The lattices the answering wadm observes.
    List,
}

pub fn run(args: Args) -> ExitCode {
    run_to_exit(execute(args))
}

async fn execute(args: Args) -> Result<(), Failure> {
    let options = args.nats.options(args.nats.url_or_default(), "wadm lattice");
    let nats = options.connect().await.map_err(ClientError::from)?;
    let client = Client::new(nats, args.lattice.clone(), Some(&args.api_prefix))
        .with_timeout(args.timeout.unwrap_or(wadm_client::DEFAULT_TIMEOUT));
    let json = args.output == Output::Json;
    match args.command {
        Command::Hosts { app } => {
            let reply = client.hosts_reply(app.as_deref()).await?;
            if json {
                return print_json(&reply);
            }
            if reply.message.starts_with("showing") {
                eprintln!("{}", reply.message);
            }
            print_hosts(&reply.hosts, app.as_deref());
        }
        Command::List => {
            let lattices = client.lattices().await?;
            if json {
                return print_json(&lattices);
            }
            print_lattices(&lattices);
        }
    }
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Api(format!("cannot render the reply as JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// `3d 4h`, `2h 5m`, `7m 12s`, `45s`.
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The labels worth a column: the operator's, not the host's own `hostcore.*`.
fn shown_labels(host: &HostSummary) -> String {
    let labels: Vec<String> = host
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with(HOST_LABEL_PREFIX))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if labels.is_empty() { "-".into() } else { labels.join(",") }
}

/// `app/id×n` for each workload (`id×n` for one no application owns), comma separated (`-` for
/// none): where an application runs, at a glance.
fn workloads(list: &[wadm_client::RunningWorkload]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    let workload = |w: &wadm_client::RunningWorkload| match &w.app {
        Some(app) => format!("{app}/{}×{}", w.id, w.instances),
        None => format!("{}×{}", w.id, w.instances),
    };
    list.iter().map(workload).collect::<Vec<_>>().join(", ")
}

fn print_hosts(hosts: &[HostSummary], app: Option<&str>) {
    if hosts.is_empty() {
        match app {
            Some(app) => outln!("No host runs anything of {app}"),
            None => outln!("No hosts"),
        }
        return;
    }
    let mut table = super::app::Table::new(&[
        "HOST",
        "NAME",
        "VERSION",
        "UPTIME",
        "LABELS",
        "COMPONENTS",
        "PROVIDERS",
    ]);
    for host in hosts {
        table.row(vec![
            host.id.clone(),
            host.friendly_name.clone(),
            host.version.clone(),
            host.uptime_seconds.map_or_else(|| "-".into(), human_duration),
            shown_labels(host),
            workloads(&host.components),
            workloads(&host.providers),
        ]);
    }
    let text = table.render();
    outln!("{}", text.trim_end());
}

fn print_lattices(lattices: &[LatticeSummary]) {
    if lattices.is_empty() {
        outln!("No lattices");
        return;
    }
    let mut table = super::app::Table::new(&["LATTICE", "HOSTS"]);
    for lattice in lattices {
        let hosts = lattice.hosts.map_or_else(|| "?".into(), |n| n.to_string());
        table.row(vec![lattice.name.clone(), hosts]);
    }
    let text = table.render();
    outln!("{}", text.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;
    use wadm_client::RunningWorkload;

    fn host(id: &str, comps: &[(&str, u32)], provs: &[&str]) -> HostSummary {
        let w = |id: &str, n| RunningWorkload { id: id.into(), instances: n, ..Default::default() };
        HostSummary {
            id: id.into(),
            friendly_name: format!("{id}-name"),
            labels: [("hostcore.os".into(), "linux".into()), ("zone".into(), "a".into())].into(),
            components: comps.iter().map(|(c, n)| w(c, *n)).collect(),
            providers: provs.iter().map(|p| w(p, 1)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn tables_leave_out_the_hosts_own_labels() {
        assert_eq!(shown_labels(&host("N1", &[], &[])), "zone=a");
        assert_eq!(workloads(&host("N1", &[("web", 2)], &[]).components), "web×2");
        assert_eq!(workloads(&[]), "-");
    }

    #[test]
    fn workloads_name_their_application() {
        let mut h = host("N1", &[("shop-web", 2), ("loose", 1)], &["shop-http"]);
        h.components[0].app = Some("shop".into());
        h.providers[0].app = Some("shop".into());
        assert_eq!(workloads(&h.components), "shop/shop-web×2, loose×1");
        assert_eq!(workloads(&h.providers), "shop/shop-http×1");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(432), "7m 12s");
        assert_eq!(human_duration(7_500), "2h 5m");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3_600 + 5), "3d 4h");
    }
}
