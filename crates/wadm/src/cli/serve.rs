//! `wadm serve`: connect to NATS (or, with no `--nats-url`, start a local `nats-server -js` whose
//! store lives in `--data-dir`), then run the wadm API server on `{prefix}.>` and the HA runtime
//! (see [`crate::stack`]) until SIGTERM or Ctrl-C: in-flight requests and runtime steps finish,
//! then the local NATS server, if any, is stopped. With `--http-addr`, it also serves
//! `/metrics`, `/healthz` and `/readyz` (see [`crate::observe`]). Any failure is printed as one
//! line (never a backtrace); exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use wadm_server::ServerConfig;

use super::connection::NatsArgs;
use super::http::OperatorArgs;

use crate::local_nats;
use crate::observe::HttpEndpoint;
use crate::stack::{self, RuntimeArgs, StoreArgs, WadmSettings};

#[derive(clap::Args)]
pub struct Args {
    /// How to reach NATS. Without `--nats-url`, wadm starts its own local `nats-server -js`
    /// (it must be on PATH).
    #[command(flatten)]
    nats: NatsArgs,
    /// Where the local NATS server keeps its store (only without --nats-url).
    #[arg(long, env = "WADM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Subject prefix of the API.
    #[arg(long, env = "WADM_API_PREFIX", default_value = wadm_model::api::DEFAULT_API_PREFIX)]
    api_prefix: String,
    /// Requests larger than this many bytes are refused.
    #[arg(long, env = "WADM_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024)]
    max_request_bytes: usize,
    /// Requests handled at once.
    #[arg(long, env = "WADM_MAX_IN_FLIGHT", default_value_t = 64)]
    max_in_flight: usize,
    /// How long API requests wait for JetStream stream leaders: then read-only ones read from
    /// any replica (replies marked `Wadm-Stale: true`) and writes answer a retryable error.
    #[arg(long, env = "WADM_API_LEADER_WAIT", default_value = "1500ms", value_parser = crate::stack::parse_duration)]
    api_leader_wait: std::time::Duration,
    /// Versions kept per application; the oldest undeployed ones beyond it are pruned.
    #[arg(long, env = "WADM_MAX_VERSIONS", default_value_t = wadm_store::manifest::DEFAULT_MAX_VERSIONS)]
    max_versions: usize,
    /// Replicas of wadm's JetStream bucket and streams (for clustered NATS).
    #[arg(long, env = "WADM_STREAM_REPLICAS", default_value_t = 1)]
    stream_replicas: usize,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    operator: OperatorArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init("info", args.operator.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wadm serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wadm serve: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if args.api_prefix.is_empty()
        || args.api_prefix.split('.').any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
    {
        anyhow::bail!(
            "invalid --api-prefix {:?}: tokens must be non-empty, without '*', '>' or spaces",
            args.api_prefix
        );
    }
    if let Some(endpoint) = &args.operator.otel.otel_endpoint {
        crate::otel::start(endpoint, "wadm")?;
    }
    args.runtime.named_lattices()?;
    let endpoint = match args.operator.http.http_addr {
        Some(addr) => Some(HttpEndpoint::bind(addr).await?),
        None => None,
    };
    // Kept alive until the end of this function: dropping it stops the local server.
    let (url, local) = match args.nats.nats_url.clone() {
        Some(url) => (url, None),
        None => {
            let data_dir = args.data_dir.unwrap_or_else(local_nats::default_data_dir);
            let server = local_nats::start(&data_dir, None)?;
            let url = server.url();
            eprintln!(
                "wadm serve: started a local nats-server -js on {url} (pid {}, store in {})",
                server.pid(),
                data_dir.join("nats").display()
            );
            (url, Some(server))
        }
    };
    let options = args.nats.options(url, "wadm serve");
    // Permission violations reach wadm only as connection events: provisioning fails fast on
    // a JetStream one instead of retrying requests that can only time out.
    let refusals = wadm_store::Refusals::default();
    let noted = refusals.clone();
    let client =
        wadm_client::connect::connect_reporting(&options, move |text| noted.note(text)).await?;
    let api = args.operator.http.api(&args.api_prefix, args.max_request_bytes);
    let server = ServerConfig {
        api_prefix: args.api_prefix,
        max_request_bytes: args.max_request_bytes,
        max_in_flight: args.max_in_flight,
        max_versions: args.max_versions,
        read_budget: wadm_server::api::ReadBudget {
            leader: args.api_leader_wait,
            ..Default::default()
        },
        replicas: args.stream_replicas.max(1),
        js_domain: args.nats.js_domain(),
        names: args.store.store_prefix,
        refusals,
        ..ServerConfig::default()
    };
    // Kept alive until the end of this function: dropping it stops serving.
    let _endpoint = match endpoint {
        Some(endpoint) => {
            let addr = endpoint.local_addr()?;
            let running = endpoint.serve(
                client.clone(),
                server.health.clone(),
                (server.js_domain.clone(), server.names.clone()),
                api,
            )?;
            eprintln!(
                "wadm serve: dashboard, HTTP API, metrics and health on http://{addr}/ (ui/, api/v1, metrics, healthz, readyz)"
            );
            Some(running)
        }
        None => None,
    };
    let settings = WadmSettings { server, runtime: args.runtime };
    stack::run_wadm(client, settings, stack::shutdown_signal()).await?;
    tracing::info!("stopped");
    drop(local);
    Ok(())
}
