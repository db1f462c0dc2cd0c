//! The operator's HTTP endpoints of `wadm serve` / `wadm up` (opt-in with `--http-addr`):
//! `GET /metrics`, `GET /healthz`, `GET /readyz` (readiness of *this* replica only), the HTTP
//! API under `/api/v1` ([`crate::http_api`]) and the dashboard under `/ui/`
//! ([`crate::dashboard`]). It owns the process-wide metrics recorder: the libraries only call
//! the `metrics` facade, a no-op until [`HttpEndpoint::serve`] installs the Prometheus recorder.
//! What readiness checks and every metric's meaning: the README's "Observability".

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use async_nats::connection::State;
use axum::Router;
use axum::extract::State as Shared;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

/// How long the readiness check waits for its storage read.
const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a part may fail before the replica says it is not ready (one failed step, a
/// moment's reconnection, is not an outage).
const FAILING_GRACE: Duration = Duration::from_secs(5);
/// How often the recorder's histograms are maintained.
const UPKEEP_EVERY: Duration = Duration::from_secs(10);
/// Buckets of `wadm_reconcile_seconds` (a converged step is well under a millisecond of CPU; a
/// step with KV round trips and command publishes takes milliseconds).
const STEP_BUCKETS: [f64; 12] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Buckets of `wadm_command_seconds` (a control request's round trip to a host: milliseconds,
/// seconds for a slow image pull).
const COMMAND_BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A bound, not yet serving listener: bind first (a taken port fails before NATS is dialled),
/// serve once the NATS client exists.
pub struct HttpEndpoint {
    listener: tokio::net::TcpListener,
}

/// The running endpoint; dropping it stops serving.
pub struct RunningEndpoint {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpEndpoint {
    /// Listen on `addr`; the error names the flag and the address.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --http-addr {addr}"))?;
        Ok(Self { listener })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Install the metrics recorder (once per process) and serve the endpoints, checking
    /// readiness on `client` (its storage in JetStream domain `js_domain`, named by `names`)
    /// and with what this process's parts report to `health`.
    pub fn serve(
        self,
        client: async_nats::Client,
        health: wadm_server::Health,
        (js_domain, names): (Option<String>, wadm_store::StoreNames),
        api: crate::http_api::ApiSettings,
    ) -> anyhow::Result<RunningEndpoint> {
        let metrics = recorder()?;
        let api_prefix = api.prefix.clone();
        let api = crate::http_api::routes(client.clone(), api);
        let manifest_bucket = names.manifest_bucket();
        let endpoints = Endpoints {
            client,
            health,
            metrics: metrics.clone(),
            js_domain,
            manifest_bucket,
            api_prefix,
        };
        let app = router(endpoints, api);
        let listener = self.listener;
        let task = tokio::spawn(async move {
            let upkeep = async {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    every.tick().await;
                    metrics.run_upkeep();
                }
            };
            tokio::select! {
                () = serve_bounded(listener, app) => {}
                () = upkeep => {}
            }
        });
        Ok(RunningEndpoint { task })
    }
}

/// A client has this long to send a request's headers (a connection that sends nothing, or
/// half a request, is closed).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection lives longer than this, however busy or idle (scrapes are short requests).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

/// Serve `app` on `listener` with bounded connections: headers within
/// [`HEADER_READ_TIMEOUT`], each connection at most [`CONNECTION_LIFETIME`], at most
/// [`MAX_CONNECTIONS`] at once — an idle or half-sent connection never holds a slot for long.
async fn serve_bounded(listener: tokio::net::TcpListener, app: Router) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP accept failed");
                continue;
            }
        };
        // The HTTP API tells loopback peers from others.
        let app = app.clone().layer(axum::Extension(crate::http_api::PeerAddr(peer)));
        let service = hyper_util::service::TowerToHyperService::new(app);
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// The process-wide Prometheus recorder, installed on first use.
fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("wadm_reconcile_seconds".into()), &STEP_BUCKETS)
        .context("metrics buckets")?
        .set_buckets_for_metric(Matcher::Full("wadm_command_seconds".into()), &COMMAND_BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

#[derive(Clone)]
struct Endpoints {
    client: async_nats::Client,
    health: wadm_server::Health,
    metrics: PrometheusHandle,
    js_domain: Option<String>,
    /// The bucket a readiness check reads (`wadm_manifests`).
    manifest_bucket: String,
    /// The NATS API prefix, for the lattice-wide gauges.
    api_prefix: String,
}

fn router(endpoints: Endpoints, api: Router) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(liveness))
        .route("/readyz", get(readiness))
        .with_state(endpoints)
        .merge(api)
        .merge(crate::dashboard::routes())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
}

async fn render_metrics(Shared(endpoints): Shared<Endpoints>) -> impl IntoResponse {
    let api = wadm_client::Client::new(endpoints.client.clone(), "", Some(&endpoints.api_prefix))
        .with_timeout(LATTICE_GAUGES_TIMEOUT);
    set_lattice_gauges(&api).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        endpoints.metrics.render(),
    )
}

/// How long a scrape waits for the NATS API's answers behind the lattice-wide gauges.
const LATTICE_GAUGES_TIMEOUT: Duration = Duration::from_secs(2);

/// The lattice-wide gauges, as the NATS API answers them now (the same on every replica):
/// `wadm_hosts{lattice}` and `wadm_apps{lattice,status}` (every status, zeros included, so a
/// status no application has any more reads 0). Left as they were when the API does not answer.
async fn set_lattice_gauges(api: &wadm_client::Client) {
    use wadm_model::StatusType;
    let Ok(lattices) = api.lattices().await else { return };
    for lattice in lattices {
        if let Some(hosts) = lattice.hosts {
            metrics::gauge!("wadm_hosts", "lattice" => lattice.name.clone()).set(hosts as f64);
        }
        let client =
            wadm_client::Client::new(api.nats().clone(), &lattice.name, Some(api.prefix()))
                .with_timeout(api.timeout());
        let Ok(models) = client.list().await else { continue };
        for status in [
            StatusType::Undeployed,
            StatusType::Waiting,
            StatusType::Reconciling,
            StatusType::Deployed,
            StatusType::Failed,
            StatusType::Unhealthy,
        ] {
            let count = models.iter().filter(|m| m.status == status).count();
            metrics::gauge!("wadm_apps", "lattice" => lattice.name.clone(), "status" => status.as_str())
                .set(count as f64);
        }
    }
}

async fn liveness() -> impl IntoResponse {
    json_reply(StatusCode::OK, json!({ "status": "alive" }))
}

async fn readiness(Shared(endpoints): Shared<Endpoints>) -> impl IntoResponse {
    let e = &endpoints;
    let readiness =
        check_readiness(&e.client, &e.health, e.js_domain.as_deref(), &e.manifest_bucket).await;
    let code = if readiness.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let failing: Vec<serde_json::Value> = readiness
        .failing
        .iter()
        .map(|f| json!({ "part": f.part, "reason": f.reason, "for_ms": f.for_ms }))
        .collect();
    json_reply(
        code,
        json!({ "nats": readiness.nats, "storage": readiness.storage, "failing": failing }),
    )
}

fn json_reply(code: StatusCode, body: serde_json::Value) -> impl IntoResponse {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

/// What the readiness check found: `nats` is `connected`, `disconnected` or `connecting`;
/// `storage` is `ok`, `skipped` (NATS not connected), `timeout` or `error: …`; `failing` lists
/// the parts failing for longer than [`FAILING_GRACE`].
struct Readiness {
    nats: &'static str,
    storage: String,
    failing: Vec<wadm_server::HealthFailing>,
}

impl Readiness {
    fn ready(&self) -> bool {
        self.nats == "connected" && self.storage == "ok" && self.failing.is_empty()
    }
}

/// Ready when the client is connected, a current (leader) read of the manifest bucket answers
/// in time — a wiped store, a bucket without a leader, a JetStream that does not answer all
/// fail it — and no part of this process has been failing for [`FAILING_GRACE`].
async fn check_readiness(
    client: &async_nats::Client,
    health: &wadm_server::Health,
    js_domain: Option<&str>,
    manifest_bucket: &str,
) -> Readiness {
    let failing = health.failing(FAILING_GRACE);
    let nats = match client.connection_state() {
        State::Connected => "connected",
        State::Disconnected => "disconnected",
        State::Pending => "connecting",
    };
    if nats != "connected" {
        return Readiness { nats, storage: "skipped".into(), failing };
    }
    let js = wadm_store::jetstream(client.clone(), js_domain);
    let read = async {
        let bucket = js.get_key_value(manifest_bucket).await?;
        // A leader read: the bucket allows direct gets, which a follower would answer.
        use wadm_store::kv::Kv;
        wadm_store::NatsKv::new(bucket).get("readyz").await?;
        Ok::<_, async_nats::Error>(())
    };
    let storage = match tokio::time::timeout(STORAGE_CHECK_TIMEOUT, read).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}").replace('\n', " "),
        Err(_) => "timeout".to_string(),
    };
    Readiness { nats, storage, failing }
}
