//! The serving loop: ensure the JetStream resources exist (idempotently, safe for replicas
//! starting together), subscribe to `{prefix}.>` in a queue group, answer requests concurrently
//! up to a bound, and on shutdown stop taking requests and let in-flight ones finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use wadm_model::api::{DEFAULT_API_PREFIX, ErrorResponse};

use crate::api::{ACTOR_HEADER, AnyReplica, Api, ReadBudget, Request, STALE_HEADER};
use crate::probe::{DEFAULT_PROBE_WINDOW, NatsProbe};
use crate::subject::parse_request;
use crate::view::{KnownLattices, ObservedState, Views};
use wadm_store::kv::NatsKv;
use wadm_store::manifest::{
    BUCKET_DESCRIPTION as MANIFEST_DESCRIPTION, DEFAULT_MAX_HISTORY, DEFAULT_MAX_VERSIONS,
    ManifestStore,
};
use wadm_store::provision::{ProvisionError, Provisioner, Refusals, bucket_config};
use wadm_store::status::NatsStatusStore;
use wadm_store::{StoreNames, health::Health};
/// Reply header naming the server instance that answered.
pub const SERVER_HEADER: &str = "Wadm-Server";
/// The part of [`ServerConfig::health`] the API server reports as.
pub const API_PART: &str = "api";

/// The queue group API replicas share.
pub const QUEUE_GROUP: &str = "wadm_api";

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Subject prefix of the API (`wadm.api`).
    pub api_prefix: String,
    /// Requests larger than this are refused (default 1 MiB).
    pub max_request_bytes: usize,
    /// Requests handled at once (default 64).
    pub max_in_flight: usize,
    /// Versions kept per application; beyond it the oldest undeployed ones are pruned.
    pub max_versions: usize,
    /// History entries kept per application.
    pub max_history: u64,
    /// How long the host probe after a deploy waits for an answer.
    pub probe_window: Duration,
    /// The names of the manifest bucket, the status stream and the observed-state bucket.
    pub names: StoreNames,
    /// Replicas of the bucket and streams (1 for a single NATS server).
    pub replicas: usize,
    /// This instance's id, sent in the `Wadm-Server` header of every reply (default: a new ULID).
    pub instance_id: String,
    /// Where the server reports (as `api`) whether it serves, for the readiness check.
    pub health: Health,
    /// The JetStream domain of the bucket and streams (`None`: the account's own JetStream).
    pub js_domain: Option<String>,
    /// The JetStream refusals of the connection the server runs on (noted by whoever connected
    /// it): provisioning fails at once on one instead of retrying.
    pub refusals: Refusals,
    /// The lattices this process observes (`{prefix}.lattices`), kept by whoever runs the
    /// runtimes.
    pub known_lattices: KnownLattices,
    /// Serve other accounts' lattices: requests arrive as `{account}.{prefix}.…` and each account
    /// sees only its own lattices (see [`wadm_protocol::subject::split_account`]).
    pub account_scoped: bool,
    /// The scalers `model.plan` plans with: the runtime's ([`wadm_scheduler::ScalerFactory`];
    /// default: the built-in ones).
    pub scalers: wadm_scheduler::ScalerFactory,
    /// How long requests wait for stream leaders before read-only ones read from any replica
    /// (marked stale) and writes are refused as retryable.
    pub read_budget: ReadBudget,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_prefix: DEFAULT_API_PREFIX.into(),
            max_request_bytes: 1024 * 1024,
            max_in_flight: 64,
            max_versions: DEFAULT_MAX_VERSIONS,
            max_history: DEFAULT_MAX_HISTORY,
            probe_window: DEFAULT_PROBE_WINDOW,
            names: StoreNames::default(),
            replicas: 1,
            instance_id: ulid::Ulid::new().to_string(),
            health: Health::default(),
            js_domain: None,
            refusals: Refusals::default(),
            known_lattices: KnownLattices::default(),
            account_scoped: false,
            scalers: wadm_scheduler::ScalerFactory::builtin(),
            read_budget: ReadBudget::default(),
        }
    }
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The manifest bucket or the status stream could not be created or verified.
    #[error(transparent)]
    Setup(#[from] ProvisionError),
    /// NATS refused a subscription to the API subjects.
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe {
        /// The subject (or subjects, space-separated) subscribed to.
        subject: String,
        /// What NATS said, on one line.
        reason: String,
    },
}

type NatsApi = Api<NatsKv, NatsStatusStore, NatsProbe>;

/// A server subscribed and ready to serve.
pub struct Server {
    client: async_nats::Client,
    config: ServerConfig,
    api: Arc<NatsApi>,
    views: Arc<Views>,
    subscriber: futures::stream::SelectAll<async_nats::Subscriber>,
}

/// The API's subscriptions: `{prefix}.>`; in account-scoped mode `*.{prefix}.>` for every
/// account, and `{prefix}.lattices` for wadm's own account (every account's lattices).
pub fn api_subscriptions(config: &ServerConfig) -> Vec<String> {
    match config.account_scoped {
        true => {
            vec![format!("*.{}.>", config.api_prefix), format!("{}.lattices", config.api_prefix)]
        }
        false => vec![format!("{}.>", config.api_prefix)],
    }
}

/// The largest reply this connection can send: the server's max payload, less room for the
/// reply's headers.
fn reply_limit(client: &async_nats::Client) -> usize {
    client.server_info().max_payload.saturating_sub(4 * 1024).max(64 * 1024)
}

impl Server {
    /// Create or verify the JetStream resources and subscribe to the API subjects.
    pub async fn start(
        client: async_nats::Client,
        config: ServerConfig,
    ) -> Result<Server, ServerError> {
        let js = wadm_store::jetstream(client.clone(), config.js_domain.as_deref());
        let (names, replicas) = (&config.names, config.replicas);
        let manifests = bucket_config(&names.manifest_bucket(), MANIFEST_DESCRIPTION, replicas);
        let provision = Provisioner::new(js.clone()).reporting(config.refusals.clone());
        let bucket = provision.bucket(manifests, wadm_store::manifest::BUCKET_DIRECT_GETS).await?;
        let status_config = NatsStatusStore::stream_config(&names.status_stream(), None, replicas);
        let status_stream = provision.stream(status_config).await?;
        let status = NatsStatusStore::new(js.clone(), status_stream);
        let store = ManifestStore::new(NatsKv::new(bucket))
            .with_max_versions(config.max_versions)
            .with_max_history(config.max_history);
        let api = Arc::new(Api {
            any_replica: Some(AnyReplica {
                store: ManifestStore::new(store.kv().any_replica()),
                status: status.any_replica(),
            }),
            budget: config.read_budget,
            store,
            status,
            probe: NatsProbe::new(client.clone(), config.probe_window),
            events: Some(client.clone()),
            max_manifest_bytes: config.max_request_bytes,
            max_reply_bytes: reply_limit(&client),
        });
        let views = Arc::new(Views {
            observed: ObservedState::new(js.clone(), config.names.observed_bucket()),
            known: config.known_lattices.clone(),
            scalers: config.scalers.clone(),
        });
        let subjects = api_subscriptions(&config);
        let mut subscribers = Vec::new();
        for subject in &subjects {
            let subscriber = client
                .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
                .await
                .map_err(|e| ServerError::Subscribe {
                    subject: subject.clone(),
                    reason: wadm_protocol::one_line(&e),
                })?;
            subscribers.push(subscriber);
        }
        // Make sure the subscriptions are registered before anyone relies on them.
        client.flush().await.map_err(|e| ServerError::Subscribe {
            subject: subjects.join(" "),
            reason: wadm_protocol::one_line(&e),
        })?;
        let subscriber = futures::stream::select_all(subscribers);
        Ok(Server { client, config, api, views, subscriber })
    }

    /// Serve until `shutdown` completes; then stop taking requests and finish the in-flight ones.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let health = self.config.health.clone();
        health.ok(API_PART);
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut draining = false;
        loop {
            tokio::select! {
                _ = &mut shutdown, if !draining => {
                    tracing::info!("shutting down: finishing in-flight requests");
                    draining = true;
                    // Stop receiving; messages already delivered to us are still answered.
                    for subscriber in self.subscriber.iter_mut() {
                        let _ = subscriber.drain().await;
                    }
                }
                message = self.subscriber.next() => {
                    let Some(message) = message else { break };
                    let permit = permits.clone().acquire_owned().await.expect("semaphore never closed");
                    let (api, client, config) = (self.api.clone(), self.client.clone(), self.config.clone());
                    let views = self.views.clone();
                    tasks.spawn(async move {
                        serve_one(&api, &views, &client, &config, message, permit).await;
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        if !draining {
            health.failed(API_PART, "the API subscription ended");
        }
        while tasks.join_next().await.is_some() {}
        let _ = self.client.flush().await;
        health.forget(API_PART);
        Ok(())
    }
}

async fn serve_one(
    api: &NatsApi,
    views: &Views,
    client: &async_nats::Client,
    config: &ServerConfig,
    message: async_nats::Message,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let Some(reply_to) = message.reply.clone() else { return };
    let crate::api::Answer { body: mut reply, follow_up: follow, stale } =
        answer(api, views, config, &message).await;
    if reply.len() > api.max_reply_bytes {
        let too_big = format!(
            "the reply ({} bytes) exceeds the NATS max payload ({} bytes)",
            reply.len(),
            api.max_reply_bytes
        );
        tracing::warn!(subject = %message.subject, "{too_big}");
        reply =
            serde_json::to_vec(&wadm_model::api::ErrorResponse::new(too_big)).unwrap_or_default();
    }
    count_request(config, message.subject.as_str(), &reply);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(SERVER_HEADER, config.instance_id.as_str());
    if stale {
        headers.insert(STALE_HEADER, "true");
    }
    if let Err(e) = client.publish_with_headers(reply_to, headers, reply.into()).await {
        tracing::warn!(error = %e, "cannot send reply");
    }
    // The request is answered: its follow-up (a probe that mostly waits) does not hold a slot.
    drop(permit);
    if let Some(follow) = follow {
        api.follow_up(follow).await;
    }
}

async fn answer(
    api: &NatsApi,
    views: &Views,
    config: &ServerConfig,
    message: &async_nats::Message,
) -> crate::api::Answer {
    let error = |m: String| {
        let body = serde_json::to_vec(&ErrorResponse::new(m)).expect("serialises");
        crate::api::Answer { body, follow_up: None, stale: false }
    };
    let subject = message.subject.as_str();
    let parsed = match parse_request(&config.api_prefix, subject, config.account_scoped) {
        Ok(p) => p,
        Err(e) => return error(e.to_string()),
    };
    if message.payload.len() > config.max_request_bytes {
        let m = format!(
            "request of {} bytes exceeds the limit of {} bytes",
            message.payload.len(),
            config.max_request_bytes
        );
        return error(m);
    }
    let header = |name: &str| {
        message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string())
    };
    let content_type = header("Content-Type");
    let actor =
        header(ACTOR_HEADER).filter(|a| !a.trim().is_empty()).unwrap_or_else(|| "unknown".into());
    let expected_revision = header(wadm_model::api::EXPECTED_REVISION_HEADER);
    tracing::debug!(subject = %message.subject, %actor, "request");
    let current = |body| crate::api::Answer { body, follow_up: None, stale: false };
    match parsed.operation {
        crate::subject::Operation::Hosts => {
            let (lattice, body, max_reply) =
                (&parsed.lattice, &message.payload, api.max_reply_bytes);
            let (mut reply, stale) =
                api.read(|via| views.hosts(api.stores(via).0, lattice, body, max_reply, via)).await;
            reply.lattice = lattice.clone();
            let body = serde_json::to_vec(&reply).expect("serialises");
            return crate::api::Answer { body, follow_up: None, stale };
        }
        crate::subject::Operation::Lattices => {
            let reply = views.lattices(parsed.account.as_deref()).await;
            return current(serde_json::to_vec(&reply).expect("serialises"));
        }
        crate::subject::Operation::Plan(name) => {
            let planner = crate::plan::Planner {
                store: &api.store,
                observed: &views.observed,
                max_manifest_bytes: api.max_manifest_bytes,
                scalers: &views.scalers,
            };
            let body = &message.payload;
            let reply =
                planner.plan(&parsed.lattice, name.as_deref(), body, content_type.as_deref()).await;
            return current(serde_json::to_vec(&reply).expect("serialises"));
        }
        _ => {}
    }
    api.handle(Request {
        lattice: &parsed.lattice,
        operation: parsed.operation,
        body: &message.payload,
        content_type: content_type.as_deref(),
        actor: &actor,
        expected_revision: expected_revision.as_deref(),
    })
    .await
}

/// Counts an answered request in `wadm_api_requests_total{operation, result}` (a no-op unless
/// the binary installed a metrics recorder). `result` is the reply's `result` field when it is
/// one of the API's words, `ok` for a bare-array reply, else `other`.
fn count_request(config: &ServerConfig, subject: &str, reply: &[u8]) {
    use crate::subject::Operation;
    #[derive(serde::Deserialize)]
    struct Outcome {
        result: String,
    }
    let parsed = parse_request(&config.api_prefix, subject, config.account_scoped);
    let operation = match parsed.map(|p| p.operation) {
        Ok(Operation::Put) => "put",
        Ok(Operation::List) => "list",
        Ok(Operation::LegacyList) => "legacy_list",
        Ok(Operation::Get(_)) => "get",
        Ok(Operation::Versions(_)) => "versions",
        Ok(Operation::Delete(_)) => "delete",
        Ok(Operation::Deploy(_)) => "deploy",
        Ok(Operation::Undeploy(_)) => "undeploy",
        Ok(Operation::Status(_)) => "status",
        Ok(Operation::History(_)) => "history",
        Ok(Operation::Hosts) => "lattice_hosts",
        Ok(Operation::Lattices) => "lattices",
        Ok(Operation::Plan(_)) => "plan",
        Ok(Operation::Promote(_)) => "promote",
        Ok(Operation::Rollback(_)) => "rollback",
        Err(_) => "invalid",
    };
    let result = match serde_json::from_slice::<Outcome>(reply) {
        Ok(o) => match o.result.as_str() {
            "success" | "created" | "newversion" | "acknowledged" | "deleted" | "noop"
            | "notfound" | "error" | "ok" => o.result,
            _ => "other".to_string(),
        },
        Err(_) if reply.first() == Some(&b'[') => "ok".to_string(),
        Err(_) => "other".to_string(),
    };
    metrics::counter!("wadm_api_requests_total", "operation" => operation, "result" => result)
        .increment(1);
}
