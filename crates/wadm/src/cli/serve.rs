//! `wadm serve`: connect to NATS, create or verify wadm's buckets and streams, and serve the wadm
//! API on `{prefix}.>` for every lattice until SIGTERM or Ctrl-C (in-flight requests finish).
//! Any failure is printed as one line (never a backtrace); exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use wadm_server::connect::DEFAULT_NATS_URL;
use wadm_server::{NatsOptions, Server, ServerConfig};

#[derive(clap::Args)]
pub struct Args {
    /// NATS URL; user and password may be given in it (`nats://user:pass@host:4222`).
    #[arg(long, env = "WADM_NATS_URL", default_value = DEFAULT_NATS_URL)]
    nats_url: String,
    /// NATS credentials file (user JWT and nkey seed).
    #[arg(long, env = "WADM_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// NATS nkey seed; with --nats-jwt authenticates as that user.
    #[arg(long, env = "WADM_NATS_SEED", hide_env_values = true)]
    nats_seed: Option<String>,
    /// NATS user JWT (needs --nats-seed).
    #[arg(long, env = "WADM_NATS_JWT", hide_env_values = true)]
    nats_jwt: Option<String>,
    /// PEM file with the root CA to trust for TLS to NATS.
    #[arg(long, env = "WADM_NATS_TLS_CA")]
    nats_tls_ca: Option<PathBuf>,
    /// Subject prefix of the API.
    #[arg(long, env = "WADM_API_PREFIX", default_value = wadm_model::api::DEFAULT_API_PREFIX)]
    api_prefix: String,
    /// Requests larger than this many bytes are refused.
    #[arg(long, env = "WADM_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024)]
    max_request_bytes: usize,
    /// Requests handled at once.
    #[arg(long, env = "WADM_MAX_IN_FLIGHT", default_value_t = 64)]
    max_in_flight: usize,
    /// Versions kept per application; the oldest undeployed ones beyond it are pruned.
    #[arg(long, env = "WADM_MAX_VERSIONS", default_value_t = wadm_server::store::DEFAULT_MAX_VERSIONS)]
    max_versions: usize,
    /// Replicas of wadm's JetStream bucket and streams (for clustered NATS).
    #[arg(long, env = "WADM_STREAM_REPLICAS", default_value_t = 1)]
    stream_replicas: usize,
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
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
            eprintln!("wadm serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn serve(args: Args) -> Result<(), String> {
    let options = NatsOptions {
        url: args.nats_url,
        creds_file: args.nats_creds,
        seed: args.nats_seed,
        jwt: args.nats_jwt,
        tls_ca: args.nats_tls_ca,
        connect_timeout: Duration::from_secs(5),
        name: "wadm serve".into(),
    };
    if args.api_prefix.is_empty()
        || args.api_prefix.split('.').any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
    {
        return Err(format!(
            "invalid --api-prefix {:?}: tokens must be non-empty, without '*', '>' or spaces",
            args.api_prefix
        ));
    }
    let client = wadm_server::connect(&options).await.map_err(|e| e.to_string())?;
    let config = ServerConfig {
        api_prefix: args.api_prefix,
        max_request_bytes: args.max_request_bytes,
        max_in_flight: args.max_in_flight,
        max_versions: args.max_versions,
        replicas: args.stream_replicas.max(1),
        ..ServerConfig::default()
    };
    let prefix = config.api_prefix.clone();
    let server = Server::start(client, config).await.map_err(|e| e.to_string())?;
    tracing::info!(subject = %format!("{prefix}.>"), "serving the wadm API");
    server.run(shutdown_signal()).await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
