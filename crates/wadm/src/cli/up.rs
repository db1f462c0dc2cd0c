//! `wadm up`: everything on one machine in one command — a local `nats-server -js` (store in
//! `--data-dir`), wadm (API server and runtime, in this process) and `--hosts` simulated
//! wasmCloud hosts. It prints where everything listens and how to deploy, then runs until
//! Ctrl-C / SIGTERM, when it stops the hosts (gracefully), wadm, and the NATS server, in that
//! order. Failures are one line on stderr; exit status 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use wadm_client::connect::NatsOptions;
use wadm_server::ServerConfig;
use wadm_sim::{SimConfig, SimLattice};

use super::http::OperatorArgs;
use crate::local_nats;
use crate::observe::HttpEndpoint;
use crate::stack::{self, RuntimeArgs, StoreArgs, WadmSettings, parse_duration};

/// How long each stop step may take before `up` moves on (NATS may already be gone on Ctrl-C).
const STOP_STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    /// Directory for wadm's data (the NATS store lives in `<dir>/nats`).
    #[arg(long, env = "WADM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// NATS client port on 127.0.0.1 (default: 4222 when free, else any free port).
    #[arg(long)]
    port: Option<u16>,
    /// Lattice of the simulated hosts (wadm manages it).
    #[arg(long, default_value = stack::DEFAULT_LATTICE)]
    lattice: String,
    /// Number of simulated hosts (at least as many as the label groups name).
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    /// Host label groups: `key=value[+key=value…][:count]`, comma separated (as `wadm sim`).
    #[arg(long)]
    labels: Option<String>,
    /// The simulated hosts' heartbeat interval (wadm's host lease follows it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// How often the runtime resyncs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    resync_every: Duration,
    /// How long the event stream keeps events (`0`: no limit; applied in place).
    #[arg(long, env = "WADM_EVENT_MAX_AGE", default_value = "1h", value_parser = parse_duration)]
    event_max_age: Duration,
    /// How many bytes of events the stream keeps (`512MiB`, `2GiB`; `0`: no limit).
    #[arg(long, env = "WADM_EVENT_MAX_BYTES", default_value = "1GiB", value_parser = stack::parse_bytes)]
    event_max_bytes: u64,
    /// What to do with orphans (components, providers, links, configs wadm marked for an
    /// application nobody manages any more): sweep, report or off.
    #[arg(long, env = "WADM_ORPHANS", default_value = "sweep")]
    orphans: wadm_runtime::orphans::OrphanMode,
    /// How long something must stay orphaned before it is swept.
    #[arg(long, env = "WADM_ORPHAN_GRACE", default_value = "60s", value_parser = parse_duration)]
    orphan_grace: Duration,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    operator: OperatorArgs,
}

/// `wadm up`'s log filter unless `RUST_LOG` says otherwise: warnings, and the one line per
/// command sent and per host lost.
const UP_LOG_FILTER: &str = "warn,wadm_runtime::executor=info,wadm_runtime::pipeline=info";

pub fn run(args: Args) -> ExitCode {
    // Quiet but for what wadm does to the lattice: the `command sent` and `host gone` lines.
    crate::logging::init(UP_LOG_FILTER, args.operator.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wadm up: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(up(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wadm up: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn up(args: Args) -> anyhow::Result<()> {
    if let Some(reason) = wadm_protocol::names::lattice_error(&args.lattice) {
        bail!("invalid --lattice {:?}: {reason}", args.lattice);
    }
    if let Some(endpoint) = &args.operator.otel.otel_endpoint {
        crate::otel::start(endpoint, "wadm")?;
    }
    let specs = super::sim::host_specs(args.labels.as_deref().unwrap_or(""), Some(args.hosts))?;
    let endpoint = match args.operator.http.http_addr {
        Some(addr) => Some(HttpEndpoint::bind(addr).await?),
        None => None,
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(local_nats::default_data_dir);
    let nats = local_nats::start(&data_dir, args.port)?;
    let url = nats.url();
    let options = NatsOptions { url: url.clone(), name: "wadm up".into(), ..Default::default() };
    let client = wadm_client::connect::connect(&options).await?;
    let server = ServerConfig { names: args.store.store_prefix.clone(), ..ServerConfig::default() };
    // Kept alive until the end of this function: dropping it stops serving.
    let (_endpoint, http_addr) = match endpoint {
        Some(endpoint) => {
            let addr = endpoint.local_addr()?;
            let api = args.operator.http.api(&server.api_prefix, server.max_request_bytes);
            let storage = (None, server.names.clone());
            (Some(endpoint.serve(client.clone(), server.health.clone(), storage, api)?), Some(addr))
        }
        None => (None, None),
    };
    let runtime = RuntimeArgs {
        account_scoped: false,
        lattices: vec![args.lattice.clone()],
        host_heartbeat: args.heartbeat_interval,
        lease_slack: (args.heartbeat_interval / 2).max(Duration::from_secs(1)),
        resync_every: args.resync_every,
        command_ttl: Duration::from_secs(60),
        ack_wait: Duration::from_secs(3),
        command_workers: 8,
        event_max_age: args.event_max_age,
        event_max_bytes: args.event_max_bytes,
        orphans: args.orphans,
        orphan_grace: args.orphan_grace,
    };
    let prefix = server.api_prefix.clone();
    let settings = WadmSettings { server, runtime };
    let (stop_wadm, wadm_stopped) = tokio::sync::oneshot::channel::<()>();
    // `up` runs its own NATS server: no JetStream domain.
    let js = wadm_store::jetstream(client.clone(), None);
    let wadm = tokio::spawn(stack::run_wadm(client, settings, async move {
        let _ = wadm_stopped.await;
    }));
    // Hosts start once the event stream captures their `host_started`, so a deploy made right
    // after the banner already knows them.
    wait_for_event_stream(&js, &args.store.store_prefix).await?;

    let mut sim_config = SimConfig::new(&url, &args.lattice);
    sim_config.heartbeat_interval = args.heartbeat_interval;
    sim_config.heartbeat_stagger = args.heartbeat_interval / 4;
    // Names that differ from those of a `wadm sim` started beside it.
    sim_config.seed = super::sim::fresh_seed();
    let sim = SimLattice::connect(sim_config).await.context("starting the simulated hosts")?;
    for spec in specs {
        sim.add_host(spec).await;
    }
    print_banner(&url, nats.pid(), &args, &prefix, &data_dir, sim.hosts().len(), http_addr);

    let mut wadm = wadm;
    let early = tokio::select! {
        _ = stack::shutdown_signal() => None,
        done = &mut wadm => Some(done),
    };
    eprintln!("wadm up: stopping");
    if let Some(done) = early {
        sim.shutdown().await;
        done.context("wadm task")??;
        bail!("wadm stopped unexpectedly");
    }
    if tokio::time::timeout(STOP_STEP_TIMEOUT, sim.shutdown()).await.is_err() {
        tracing::warn!("the simulated hosts did not stop in time");
    }
    let _ = stop_wadm.send(());
    match tokio::time::timeout(STOP_STEP_TIMEOUT, wadm).await {
        Ok(done) => done.context("wadm task")??,
        Err(_) => tracing::warn!("wadm did not stop in time"),
    }
    nats.kill();
    eprintln!("wadm up: stopped");
    Ok(())
}

/// Wait until the runtime has created its event stream.
async fn wait_for_event_stream(
    js: &async_nats::jetstream::Context,
    names: &wadm_store::StoreNames,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        if js.get_stream(names.events_stream()).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("wadm did not create its event stream within 30 s");
        }
    }
}

fn print_banner(
    url: &str,
    nats_pid: u32,
    args: &Args,
    prefix: &str,
    data_dir: &std::path::Path,
    hosts: usize,
    http_addr: Option<SocketAddr>,
) {
    let nats_flag = if url == wadm_client::DEFAULT_NATS_URL {
        String::new()
    } else {
        format!(" --nats-url {url}")
    };
    let lattice_flag = if args.lattice == stack::DEFAULT_LATTICE {
        String::new()
    } else {
        format!(" --lattice {}", args.lattice)
    };
    outln!("wadm is up (Ctrl-C to stop)");
    outln!("  NATS:      {url} (nats-server pid {nats_pid})");
    outln!("  lattice:   {} ({hosts} simulated hosts)", args.lattice);
    outln!("  API:       {prefix}.{}.model.>", args.lattice);
    outln!("  data dir:  {}", data_dir.display());
    if let Some(addr) = http_addr {
        outln!(
            "  dashboard: http://{addr}/ui/ (API: /api/v1, metrics: /metrics, /healthz, /readyz)"
        );
    }
    outln!("  deploy:    wadm app deploy <file> --wait{nats_flag}{lattice_flag}");
    outln!("  look:      wadm lattice hosts{nats_flag}{lattice_flag}");
}
