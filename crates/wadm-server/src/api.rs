//! The operations of the wadm API (api.md §2) over the manifest store, the status store and the
//! lattice probe. [`Api::handle`] takes a parsed request and returns the reply body; replies
//! always use the operation's wire shape, errors included, and never carry backtraces.
//!
//! Reads are current: they go to the stream leaders. While no leader answers (NATS elects a new
//! one seconds after a node is lost), read-only requests are answered from any replica after
//! [`ReadBudget::leader`] instead, marked possibly stale ([`Answer::stale`], the `Wadm-Stale`
//! reply header, a note in the message). Writes never decide on such reads: one that finds no
//! leader within the budget is refused with a retryable error before it writes anything.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wadm_model::api::*;
use wadm_model::{Format, Limits, Status, StatusType, document_value, same_content};

use crate::manifest::{format_of, parse_request};
use crate::probe::LatticeProbe;
use wadm_store::availability::RETRY_NOTE;
use wadm_store::kv::Kv;
use wadm_store::manifest::parse_stored;
use wadm_store::manifest::{
    DeleteOutcome, LATEST, ManifestError, ManifestStore, NewVersion, StoredVersion,
};
use wadm_store::status::StatusStore;

/// The key a write reads from the manifest bucket's leader before it writes (never stored).
const LEADER_CHECK_KEY: &str = "leader-check";

mod deploy;
use crate::subject::Operation;

/// Request header naming who asks (recorded in the history); absent: `unknown`.
pub const ACTOR_HEADER: &str = "Wadm-Actor";
/// Reply header `Wadm-Stale: true`: the reply was read from a replica that may lag (no stream
/// leader answered in time); absent on current replies. Clients that do not know it ignore it.
pub const STALE_HEADER: &str = "Wadm-Stale";
/// Appended to the message of a possibly stale reply.
pub const STALE_NOTE: &str = "possibly stale: read from a replica while JetStream elects a \
                              leader; recent writes may be missing";

/// How long the API waits for storage before it stops waiting for leaders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    /// A read-only request waits this long for the stream leaders, then reads from any replica;
    /// a write waits this long for the manifest bucket's leader, then is refused (retryable).
    pub leader: Duration,
    /// How long the read from any replica may take.
    pub any_replica: Duration,
}

impl Default for ReadBudget {
    fn default() -> Self {
        Self { leader: Duration::from_millis(1500), any_replica: Duration::from_secs(3) }
    }
}

/// The stores read from any replica (see [`wadm_store::Reads::AnyReplica`]).
pub struct AnyReplica<K, S> {
    /// The manifest store, reading from any replica of the bucket.
    pub store: ManifestStore<K>,
    /// The status store, reading from any replica of the stream.
    pub status: S,
}

/// An answered request.
#[derive(Debug)]
pub struct Answer {
    /// The JSON reply.
    pub body: Vec<u8>,
    /// Work to do after the reply went out.
    pub follow_up: Option<FollowUp>,
    /// Read from a replica that may lag (send [`STALE_HEADER`]).
    pub stale: bool,
}

impl Answer {
    fn new(body: Vec<u8>, follow_up: Option<FollowUp>) -> Self {
        Self { body, follow_up, stale: false }
    }
}

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The leaders; `strict`: a failed part fails the reply (there is a fallback to try).
    Leader {
        strict: bool,
    },
    AnyReplica,
}

impl Via {
    /// How a store read goes there.
    pub(crate) fn reads(self) -> wadm_store::Reads {
        match self {
            Via::Leader { .. } => wadm_store::Reads::Leader,
            Via::AnyReplica => wadm_store::Reads::AnyReplica,
        }
    }
}

/// `model.history.{name}` response (the shared wire type, re-exported for existing callers).
pub use wadm_model::api::HistoryResponse;

/// Work to do after the reply went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// Probe the lattice for hosts; if none, report `waiting` for this deploy generation, with
    /// the instances it then runs of those it wants (`None`: not known).
    ProbeHosts {
        /// The lattice deployed to.
        lattice: String,
        /// The application deployed.
        app: String,
        /// The deploy generation the `waiting` status is for (a later deploy or undeploy wins).
        generation: u64,
        /// The instances the deployed version runs of those it wants, for the status.
        instances: Option<wadm_model::Instances>,
    },
}

/// One request, as the server received it.
pub struct Request<'a> {
    /// The lattice the request is for (`{account}.{lattice}` for another account's).
    pub lattice: &'a str,
    /// What is asked, from the subject.
    pub operation: Operation,
    /// The request payload: a manifest for `put`, else the operation's JSON body (may be empty).
    pub body: &'a [u8],
    /// The `Content-Type` header, which tells a manifest's format (YAML or JSON).
    pub content_type: Option<&'a str>,
    /// Who asks (the [`ACTOR_HEADER`] header, `unknown` when absent), recorded in the history.
    pub actor: &'a str,
    /// The `Wadm-Expected-Revision` header, as sent.
    pub expected_revision: Option<&'a str>,
}

/// The API: stateless apart from its stores; shared by every request task.
pub struct Api<K, S, P> {
    /// The versioned manifests and their history.
    pub store: ManifestStore<K>,
    /// Where application statuses are read and published.
    pub status: S,
    /// Asked after a deploy whether the lattice has hosts (none: status `waiting`).
    pub probe: P,
    /// Where `manifest_published` / `manifest_unpublished` events go (`None`: not published).
    pub events: Option<async_nats::Client>,
    /// Manifests larger than this many bytes are refused.
    pub max_manifest_bytes: usize,
    /// The largest reply NATS carries (its max payload, less room for headers).
    pub max_reply_bytes: usize,
    /// Read-only requests read these while no leader answers (`None`: they wait for leaders).
    pub any_replica: Option<AnyReplica<K, S>>,
    /// How long requests wait for the stream leaders.
    pub budget: ReadBudget,
}

/// A read-only reply: whether storage failed it, and how it says so.
pub(crate) trait ReadReply: Sized {
    /// Storage failed (an `error` result).
    fn failed(&self) -> bool;
    /// Nothing found (`notfound`).
    fn not_found(&self) -> bool;
    /// An error reply with `message`.
    fn unavailable(message: String) -> Self;
    /// Add [`STALE_NOTE`] to the message.
    fn mark_stale(&mut self);
}

fn with_note(message: &mut String) {
    if message.is_empty() {
        *message = STALE_NOTE.to_string();
    } else {
        message.push_str(&format!(" ({STALE_NOTE})"));
    }
}

macro_rules! read_reply {
    ($t:ty, $failed:expr, $missing:expr, $build:expr) => {
        impl ReadReply for $t {
            fn failed(&self) -> bool {
                self.result == $failed
            }
            fn not_found(&self) -> bool {
                self.result == $missing
            }
            fn unavailable(message: String) -> Self {
                ($build)(message)
            }
            fn mark_stale(&mut self) {
                with_note(&mut self.message);
            }
        }
    };
}

read_reply!(ListModelsResponse, GetResult::Error, GetResult::NotFound, |message| {
    ListModelsResponse { result: GetResult::Error, message, models: vec![] }
});
read_reply!(GetModelResponse, GetResult::Error, GetResult::NotFound, |message| {
    GetModelResponse {
        result: GetResult::Error,
        message,
        manifest: None,
        submitted: None,
        revision: None,
    }
});
read_reply!(VersionResponse, GetResult::Error, GetResult::NotFound, |message| {
    VersionResponse { result: GetResult::Error, message, versions: vec![], revision: None }
});
read_reply!(StatusResponse, StatusResult::Error, StatusResult::NotFound, |message| {
    StatusResponse { result: StatusResult::Error, message, status: None }
});
read_reply!(HistoryResponse, GetResult::Error, GetResult::NotFound, |message| {
    HistoryResponse { result: GetResult::Error, message, history: vec![] }
});
// The caller names the lattice.
read_reply!(LatticeHostsResponse, GetResult::Error, GetResult::NotFound, |message| {
    LatticeHostsResponse {
        result: GetResult::Error,
        message,
        lattice: String::new(),
        app: None,
        hosts: vec![],
    }
});

/// A list that fits in `limit` bytes: as it is; else without the per-scaler statuses (each
/// application keeps its overall status); else the first applications that fit, the message
/// saying how many of how many are shown.
fn fit_list(mut list: ListModelsResponse, limit: usize) -> ListModelsResponse {
    let size = |l: &ListModelsResponse| serde_json::to_vec(l).map_or(usize::MAX, |b| b.len());
    if size(&list) <= limit {
        return list;
    }
    for model in &mut list.models {
        model.detailed_status.scalers.clear();
    }
    let total = list.models.len();
    if size(&list) <= limit {
        list.message = format!(
            "{total} application(s); per-scaler statuses left out to fit the NATS max payload \
             ({limit} bytes): ask each application's status for them"
        );
        return list;
    }
    // The longest prefix that fits, by halving.
    let (mut fits, mut too_many) = (0, total);
    while too_many - fits > 1 {
        let mid = (fits + too_many) / 2;
        let probe = ListModelsResponse {
            result: list.result,
            message: String::new(),
            models: list.models[..mid].to_vec(),
        };
        if size(&probe) + 256 <= limit { fits = mid } else { too_many = mid }
    }
    list.models.truncate(fits);
    list.message = format!(
        "showing {fits} of {total} applications: the full list exceeds the NATS max payload \
         ({limit} bytes); get the others by name"
    );
    list
}

/// A read's reply and whether it is stale, as an [`Answer`].
fn answered<T: Serialize>((reply, stale): (T, bool)) -> Answer {
    Answer { body: json(&reply), follow_up: None, stale }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("API responses serialise")
}

/// Decode an optional JSON request body (empty means default).
fn body<T: Default + for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("invalid request body: {e}"))
}

impl<K: Kv, S: StatusStore, P: LatticeProbe> Api<K, S, P> {
    /// The stores a read goes to.
    pub(crate) fn stores(&self, via: Via) -> (&ManifestStore<K>, &S) {
        match (via, &self.any_replica) {
            (Via::AnyReplica, Some(any)) => (&any.store, &any.status),
            _ => (&self.store, &self.status),
        }
    }

    /// Run read `op` on the leaders for up to [`ReadBudget::leader`]; when they fail it or do
    /// not answer in time, on any replica, the reply marked stale. A `notfound` from a replica
    /// that may lag is not trusted (the application may have just been put): it is answered as
    /// a retryable error. Returns the reply and whether it is stale.
    pub(crate) async fn read<R, F, Fut>(&self, op: F) -> (R, bool)
    where
        R: ReadReply,
        F: Fn(Via) -> Fut,
        Fut: Future<Output = R>,
    {
        let strict = self.any_replica.is_some();
        let leader = tokio::time::timeout(self.budget.leader, op(Via::Leader { strict })).await;
        let leader = match leader {
            Ok(reply) if !reply.failed() || !strict => return (reply, false),
            Ok(failed) => Some(failed),
            Err(_) => None,
        };
        let silent = || {
            let message =
                format!("{RETRY_NOTE} (no stream leader answered within {:?})", self.budget.leader);
            (R::unavailable(message), false)
        };
        if self.any_replica.is_none() {
            return silent();
        }
        let any = tokio::time::timeout(self.budget.any_replica, op(Via::AnyReplica)).await;
        match (any, leader) {
            (Ok(reply), _) if reply.not_found() => {
                let message = format!(
                    "{RETRY_NOTE} (no stream leader answered within {:?}, and a replica that \
                     may lag knows nothing of it)",
                    self.budget.leader
                );
                (R::unavailable(message), false)
            }
            (Ok(mut reply), _) if !reply.failed() => {
                reply.mark_stale();
                (reply, true)
            }
            (_, Some(failed)) => (failed, false),
            (_, None) => silent(),
        }
    }

    /// Before a write: the manifest bucket's leader (and, for a write that also reads or
    /// writes statuses, the status stream's) answers within [`ReadBudget::leader`]. Else the
    /// write is refused before it writes anything (`Err`: the message).
    async fn leader_answers(&self, lattice: &str, with_status: bool) -> Result<(), String> {
        let bucket = async {
            match self.store.kv().get(LEADER_CHECK_KEY).await {
                Err(e) if e.is_unavailable() => Err(e.to_string()),
                // Another failure: the write itself says what it is.
                _ => Ok(()),
            }
        };
        let status = async {
            if !with_status {
                return Ok(());
            }
            match self.status.get(lattice, LEADER_CHECK_KEY).await {
                Err(e) if e.is_unavailable() => Err(format!("{RETRY_NOTE} ({e})")),
                _ => Ok(()),
            }
        };
        let both = async { tokio::try_join!(bucket, status).map(drop) };
        match tokio::time::timeout(self.budget.leader, both).await {
            Ok(answered) => answered,
            Err(_) => Err(format!(
                "{RETRY_NOTE} (no stream leader answered within {:?}; \
                 nothing was written)",
                self.budget.leader
            )),
        }
    }

    /// Answer one request.
    pub async fn handle(&self, request: Request<'_>) -> Answer {
        let Request { lattice, operation, body: bytes, content_type, actor, expected_revision } =
            request;
        let expect = match expected_revision.map(parse_revision).transpose() {
            Ok(expect) => expect,
            Err(message) => return Answer::new(json(&ErrorResponse::new(message)), None),
        };
        let read = |(body, stale): (Vec<u8>, bool)| Answer { body, follow_up: None, stale };
        match &operation {
            Operation::List => {
                let limit = self.max_reply_bytes;
                let (list, stale) = self.read(|via| self.list(lattice, via)).await;
                return read((json(&fit_list(list, limit)), stale));
            }
            Operation::LegacyList => {
                let (list, stale) = self.read(|via| self.list(lattice, via)).await;
                let body = match fit_list(list, self.max_reply_bytes) {
                    ListModelsResponse { result: GetResult::Success, models, .. } => json(&models),
                    failed => json(&ErrorResponse::new(failed.message)),
                };
                return read((body, stale));
            }
            Operation::Get(name) => {
                return answered(self.read(|via| self.get(lattice, name, bytes, via)).await);
            }
            Operation::Versions(name) => {
                return answered(self.read(|via| self.versions(lattice, name, via)).await);
            }
            Operation::Status(name) => {
                return answered(self.read(|via| self.status(lattice, name, via)).await);
            }
            Operation::History(name) => {
                return answered(self.read(|via| self.history(lattice, name, via)).await);
            }
            _ => {}
        }
        if let Some(body) = self.refused_write(lattice, &operation).await {
            return Answer::new(body, None);
        }
        let (body, follow) =
            self.write(lattice, operation, bytes, content_type, expect, actor).await;
        Answer::new(body, follow)
    }

    /// A write refused because the manifest bucket has no leader (in the operation's reply
    /// shape), `None` when it may go ahead.
    async fn refused_write(&self, lattice: &str, operation: &Operation) -> Option<Vec<u8>> {
        let writes = matches!(
            operation,
            Operation::Put
                | Operation::Delete(_)
                | Operation::Deploy(_)
                | Operation::Promote(_)
                | Operation::Rollback(_)
                | Operation::Undeploy(_)
        );
        if !writes {
            return None;
        }
        // Put writes manifests only; the others read or write statuses as well.
        let with_status = !matches!(operation, Operation::Put);
        let message = self.leader_answers(lattice, with_status).await.err()?;
        Some(match operation {
            Operation::Put => json(&PutModelResponse {
                result: PutResult::Error,
                total_versions: 0,
                current_version: String::new(),
                message,
                name: String::new(),
                unchanged: false,
                revision: None,
            }),
            Operation::Delete(_) => {
                json(&DeleteModelResponse { result: DeleteResult::Error, message, undeploy: false })
            }
            Operation::Deploy(name)
            | Operation::Promote(name)
            | Operation::Rollback(name)
            | Operation::Undeploy(name) => {
                json(&deploy::deploy_reply(name, DeployResult::Error, message, None))
            }
            _ => json(&ErrorResponse::new(message)),
        })
    }

    /// Answer a request that is not a read.
    async fn write(
        &self,
        lattice: &str,
        operation: Operation,
        bytes: &[u8],
        content_type: Option<&str>,
        expect: Option<u64>,
        actor: &str,
    ) -> (Vec<u8>, Option<FollowUp>) {
        match operation {
            Operation::Put => {
                (json(&self.put(lattice, bytes, content_type, expect, actor).await), None)
            }
            Operation::Delete(name) => {
                (json(&self.delete(lattice, &name, bytes, actor).await), None)
            }
            Operation::Deploy(name) => {
                let (reply, follow) = self.deploy(lattice, &name, bytes, expect, actor).await;
                (json(&reply), follow)
            }
            Operation::Promote(name) => (json(&self.promote(lattice, &name, actor).await), None),
            Operation::Rollback(name) => {
                (json(&self.rollback(lattice, &name, expect, actor).await), None)
            }
            Operation::Undeploy(name) => {
                (json(&self.undeploy(lattice, &name, bytes, actor).await), None)
            }
            // Read above.
            Operation::List
            | Operation::LegacyList
            | Operation::Get(_)
            | Operation::Versions(_)
            | Operation::Status(_)
            | Operation::History(_) => (json(&ErrorResponse::new("a read, not a write")), None),
            // The server answers these from observed state (see `crate::view`).
            Operation::Hosts | Operation::Lattices | Operation::Plan(_) => {
                (json(&ErrorResponse::new("observed state is not read here")), None)
            }
        }
    }

    /// Run a follow-up (after the reply was sent).
    pub async fn follow_up(&self, follow: FollowUp) {
        let FollowUp::ProbeHosts { lattice, app, generation, instances } = follow;
        match self.probe.has_hosts(&lattice).await {
            Ok(true) => {}
            Ok(false) => {
                // Only if that deploy is still the current one (an undeploy may have followed).
                let current = self.store.index(&lattice, &app).await.ok().flatten();
                let still =
                    current.is_some_and(|i| i.deployed.is_some() && i.generation == generation);
                if still {
                    let mut waiting =
                        Status::new(StatusType::Waiting, format!("no hosts in lattice {lattice}"));
                    waiting.status.instances = instances;
                    if let Err(e) = self.status.set(&lattice, &app, &waiting).await {
                        tracing::warn!(%lattice, %app, error = %e, "cannot publish status");
                    }
                }
            }
            Err(e) => tracing::warn!(%lattice, %app, error = %e, "cannot probe lattice"),
        }
    }

    async fn put(
        &self,
        lattice: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        expect: Option<u64>,
        actor: &str,
    ) -> PutModelResponse {
        let error = |name: &str, message: String| PutModelResponse {
            result: PutResult::Error,
            total_versions: 0,
            current_version: String::new(),
            message,
            name: name.to_string(),
            unchanged: false,
            revision: None,
        };
        let format = format_of(content_type);
        let parsed = match parse_request(bytes, format, self.max_manifest_bytes) {
            Ok(p) => p,
            Err(message) => return error("", message),
        };
        let mut manifest = parsed.manifest;
        let name = manifest.name().to_string();
        let (version, assigned) = match manifest.version().filter(|v| !v.is_empty()) {
            Some(LATEST) => {
                return error(&name, "metadata.annotations.version: \"latest\" is reserved".into());
            }
            Some(v) => (v.to_string(), false),
            None => {
                let v = ulid::Ulid::new().to_string();
                manifest.set_version(&v);
                (v, true)
            }
        };
        let value = match serde_json::to_value(&manifest) {
            Ok(v) => v,
            Err(e) => return error(&name, format!("cannot store manifest: {e}")),
        };
        // The parse succeeded, so the body is UTF-8 text.
        let submitted = String::from_utf8(bytes.to_vec())
            .ok()
            .map(|text| SubmittedManifest { format: submitted_format(format, bytes), text });
        let new = NewVersion { version, assigned, manifest: value, submitted };
        let app = &parsed.app;
        let same = |stored: &StoredVersion| {
            parse_stored(&stored.manifest).is_ok_and(|other| same_content(app, &other))
        };
        match self.store.put_version(lattice, &name, new, expect, same, actor).await {
            Ok(outcome) => {
                let version = &outcome.current_version;
                let mut message = if outcome.unchanged {
                    format!(
                        "Manifest {name} is unchanged: it equals stored version {version}; \
                         nothing was stored"
                    )
                } else {
                    format!("Successfully put manifest {name} version {version}")
                };
                if !parsed.warnings.is_empty() {
                    let warnings: Vec<String> =
                        parsed.warnings.iter().map(|w| w.to_string()).collect();
                    message.push_str(&format!(" (warnings: {})", warnings.join("; ")));
                }
                PutModelResponse {
                    result: if outcome.created {
                        PutResult::Created
                    } else {
                        PutResult::NewVersion
                    },
                    total_versions: outcome.total_versions,
                    current_version: outcome.current_version,
                    message,
                    name,
                    unchanged: outcome.unchanged,
                    revision: Some(outcome.revision),
                }
            }
            Err(e) => error(&name, e.to_string()),
        }
    }

    /// `model.promote.{name}`: the current deployment goes past its rollouts' canary stage. The
    /// runtime hears of it as of a deploy (`manifest_published`) and reads the deployment again.
    async fn promote(&self, lattice: &str, name: &str, actor: &str) -> DeployModelResponse {
        let reply = |result, message, version| deploy::deploy_reply(name, result, message, version);
        match self.store.promote(lattice, name, actor).await {
            Ok(Some(version)) => {
                if let Ok(Some(stored)) = self.store.get(lattice, name, Some(&version)).await {
                    self.publish_deployed(lattice, name, stored.manifest).await;
                }
                let message = format!("Promoted version {version} of {name}: its rollouts go on");
                reply(DeployResult::Acknowledged, message, Some(version))
            }
            Ok(None) => reply(DeployResult::Error, format!("{name} is not deployed"), None),
            Err(ManifestError::AppNotFound(_)) => {
                reply(DeployResult::NotFound, not_found(name, None), None)
            }
            Err(e) => reply(DeployResult::Error, e.to_string(), None),
        }
    }

    /// `model.rollback.{name}`: deploy the last stable version again (the one stable before it
    /// when that is what is deployed), like a deploy: a new generation, `manifest_published`,
    /// a history entry `rollback`.
    async fn rollback(
        &self,
        lattice: &str,
        name: &str,
        expect: Option<u64>,
        actor: &str,
    ) -> DeployModelResponse {
        let reply = |result, message, version| deploy::deploy_reply(name, result, message, version);
        match self.store.rollback(lattice, name, expect, actor).await {
            Ok(Some(outcome)) => {
                let version = outcome.version.clone();
                let status = Status::new(
                    StatusType::Reconciling,
                    format!("Rolling back to version {version}"),
                );
                self.publish_status(lattice, name, &status).await;
                if let Ok(Some(stored)) = self.store.get(lattice, name, Some(&version)).await {
                    self.publish_deployed(lattice, name, stored.manifest).await;
                }
                let from = outcome.previous.as_deref().unwrap_or("nothing deployed");
                let message = format!(
                    "Rolled {name} back to version {version} from {from} (generation {})",
                    outcome.generation
                );
                DeployModelResponse {
                    revision: Some(outcome.revision),
                    ..reply(DeployResult::Acknowledged, message, Some(version))
                }
            }
            Ok(None) => reply(
                DeployResult::Error,
                format!("{name} has no stable version to roll back to"),
                None,
            ),
            Err(ManifestError::AppNotFound(_)) => {
                reply(DeployResult::NotFound, not_found(name, None), None)
            }
            Err(e) => reply(DeployResult::Error, e.to_string(), None),
        }
    }

    /// Publish `status` as the application's, best effort and within [`ReadBudget::leader`]
    /// (the runtime publishes the application's status as it works anyway).
    async fn publish_status(&self, lattice: &str, app: &str, status: &Status) {
        match tokio::time::timeout(self.budget.leader, self.status.set(lattice, app, status)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(%lattice, %app, error = %e, "cannot publish status"),
            Err(_) => tracing::warn!(%lattice, %app, "cannot publish status: no answer in time"),
        }
    }

    async fn app_status(&self, lattice: &str, app: &str) -> Status {
        match self.status.get(lattice, app).await {
            Ok(Some(status)) => status,
            Ok(None) => Status::default(),
            Err(e) => Status::new(StatusType::Undeployed, format!("status unavailable: {e}")),
        }
    }

    async fn list(&self, lattice: &str, via: Via) -> ListModelsResponse {
        let (store, status) = self.stores(via);
        let apps = match store.list(lattice).await {
            Ok(apps) => apps,
            Err(e) => {
                return ListModelsResponse {
                    result: GetResult::Error,
                    message: e.to_string(),
                    models: vec![],
                };
            }
        };
        let mut statuses = match status.list(lattice).await {
            Ok(statuses) => statuses,
            Err(e) if via == (Via::Leader { strict: true }) => {
                return ListModelsResponse::unavailable(format!("cannot read statuses: {e}"));
            }
            Err(e) => {
                tracing::warn!(%lattice, error = %e, "cannot read statuses");
                Default::default()
            }
        };
        let models: Vec<ModelSummary> = apps
            .into_iter()
            .map(|index| {
                let detailed_status = statuses.remove(&index.name).unwrap_or_default();
                let message = detailed_status.status.message.clone();
                ModelSummary {
                    version: index.current().unwrap_or_default().to_string(),
                    description: index.description().map(str::to_string),
                    deployed_version: index.deployed.clone(),
                    status: detailed_status.status.status_type,
                    status_message: (!message.is_empty()).then(|| message.to_string()),
                    detailed_status,
                    name: index.name,
                }
            })
            .collect();
        ListModelsResponse {
            result: GetResult::Success,
            message: format!("{} application(s)", models.len()),
            models,
        }
    }

    async fn get(&self, lattice: &str, name: &str, bytes: &[u8], via: Via) -> GetModelResponse {
        let error = |result, message: String| GetModelResponse {
            result,
            message,
            manifest: None,
            submitted: None,
            revision: None,
        };
        let request: VersionRequest = match body(bytes) {
            Ok(r) => r,
            Err(m) => return error(GetResult::Error, m),
        };
        let version = request.version.as_deref();
        let read = self.stores(via).0.get_with_index(lattice, name, version).await;
        read_reply(read, not_found(name, version), error, |(stored, index)| {
            let reply = GetModelResponse {
                result: GetResult::Success,
                message: format!("Found version {} of {name}", stored.version),
                manifest: Some(as_submitted(&stored)),
                submitted: stored.submitted,
                revision: Some(index.revision),
            };
            // The text doubles the reply: leave it out when that would not fit.
            let size = serde_json::to_vec(&reply).map_or(usize::MAX, |b| b.len());
            if size > self.max_reply_bytes {
                GetModelResponse { submitted: None, ..reply }
            } else {
                reply
            }
        })
    }

    async fn versions(&self, lattice: &str, name: &str, via: Via) -> VersionResponse {
        let error =
            |result, message| VersionResponse { result, message, versions: vec![], revision: None };
        let read = self.stores(via).0.index(lattice, name).await;
        read_reply(read, not_found(name, None), error, |index| VersionResponse {
            result: GetResult::Success,
            message: format!("{} version(s)", index.versions.len()),
            versions: index
                .versions
                .iter()
                .map(|v| VersionInfo {
                    version: v.version.clone(),
                    deployed: index.deployed.as_ref() == Some(&v.version),
                })
                .collect(),
            revision: Some(index.revision),
        })
    }

    async fn delete(
        &self,
        lattice: &str,
        name: &str,
        bytes: &[u8],
        actor: &str,
    ) -> DeleteModelResponse {
        let error =
            |message| DeleteModelResponse { result: DeleteResult::Error, message, undeploy: false };
        let request: DeleteModelRequest = match body(bytes) {
            Ok(r) => r,
            Err(m) => return error(m),
        };
        let version = request.version.as_deref();
        let users = match self.check_removal(lattice, name, version, request.force).await {
            Ok(users) => users,
            Err(message) => return error(message),
        };
        match self.store.delete(lattice, name, version, actor).await {
            Ok(DeleteOutcome::Noop) => DeleteModelResponse {
                result: DeleteResult::Noop,
                message: format!("{}: nothing to delete", not_found(name, version)),
                undeploy: false,
            },
            Ok(DeleteOutcome::Deleted { undeployed, app_removed }) => {
                if undeployed {
                    self.after_undeploy(lattice, name).await;
                }
                if app_removed && let Err(e) = self.status.remove(lattice, name).await {
                    tracing::warn!(%lattice, app = %name, error = %e, "cannot remove status");
                }
                let what = match version {
                    Some(v) => format!("version {v} of {name}"),
                    None => format!("application {name}"),
                };
                DeleteModelResponse {
                    result: DeleteResult::Deleted,
                    message: format!("Deleted {what}{}", deploy::forced_note(&users)),
                    undeploy: undeployed,
                }
            }
            Err(e) => error(e.to_string()),
        }
    }

    async fn status(&self, lattice: &str, name: &str, via: Via) -> StatusResponse {
        let (store, status) = self.stores(via);
        match store.index(lattice, name).await {
            Ok(Some(_)) => match status.get(lattice, name).await {
                Ok(found) => StatusResponse {
                    result: StatusResult::Ok,
                    message: String::new(),
                    status: Some(found.unwrap_or_default()),
                },
                Err(e) if via == (Via::Leader { strict: true }) => {
                    StatusResponse::unavailable(format!("cannot read the status: {e}"))
                }
                Err(e) => StatusResponse {
                    result: StatusResult::Ok,
                    message: String::new(),
                    status: Some(Status::new(
                        StatusType::Undeployed,
                        format!("status unavailable: {e}"),
                    )),
                },
            },
            Ok(None) => StatusResponse {
                result: StatusResult::NotFound,
                message: not_found(name, None),
                status: None,
            },
            Err(e) => {
                StatusResponse { result: StatusResult::Error, message: e.to_string(), status: None }
            }
        }
    }

    async fn history(&self, lattice: &str, name: &str, via: Via) -> HistoryResponse {
        let error = |result, message| HistoryResponse { result, message, history: vec![] };
        let read = self.stores(via).0.history(lattice, name).await;
        read_reply(read, not_found(name, None), error, |history| HistoryResponse {
            result: GetResult::Success,
            message: format!(
                "{} entr{}",
                history.len(),
                if history.len() == 1 { "y" } else { "ies" }
            ),
            history,
        })
    }
}

/// The reply to a read: `found` builds the success reply; an absent value is `notfound` with the
/// message `missing`, a store failure `error` with its message, both built by `error`.
fn read_reply<T, R>(
    read: Result<Option<T>, ManifestError>,
    missing: String,
    error: impl FnOnce(GetResult, String) -> R,
    found: impl FnOnce(T) -> R,
) -> R {
    match read {
        Ok(Some(value)) => found(value),
        Ok(None) => error(GetResult::NotFound, missing),
        Err(e) => error(GetResult::Error, e.to_string()),
    }
}

/// The `Wadm-Expected-Revision` header's value.
fn parse_revision(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| {
        format!("invalid {EXPECTED_REVISION_HEADER} header {text:?}: expected a revision number")
    })
}

/// The syntax a client used: as its `Content-Type` says, else JSON if it reads as JSON.
fn submitted_format(format: Format, bytes: &[u8]) -> ManifestFormat {
    match format {
        Format::Json => ManifestFormat::Json,
        Format::Yaml => ManifestFormat::Yaml,
        Format::Auto if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            ManifestFormat::Json
        }
        Format::Auto => ManifestFormat::Yaml,
    }
}

/// The manifest as the client put it, as JSON, with the version written in when the document
/// had none; the normal form for versions stored before wadm kept the document (and, as a
/// safety net, for a document that does not decode as a manifest).
fn as_submitted(stored: &StoredVersion) -> serde_json::Value {
    let Some(submitted) = &stored.submitted else { return stored.manifest.clone() };
    let format = match submitted.format {
        ManifestFormat::Json => Format::Json,
        ManifestFormat::Yaml => Format::Yaml,
    };
    let limits = Limits { max_bytes: submitted.text.len().max(1), ..Limits::default() };
    let Ok(mut value) = document_value(submitted.text.as_bytes(), format, &limits) else {
        return stored.manifest.clone();
    };
    let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
        return stored.manifest.clone();
    };
    let annotations = metadata.entry("annotations").or_insert_with(|| serde_json::json!({}));
    match annotations.as_object_mut() {
        Some(annotations) => {
            let version = annotations.entry(wadm_model::VERSION_ANNOTATION);
            version.or_insert_with(|| stored.version.clone().into());
        }
        None => return stored.manifest.clone(),
    }
    // Serve it only in a shape every client decodes (upstream's types deny unknown fields).
    if serde_json::from_value::<wadm_model::wire::Manifest>(value.clone()).is_err() {
        return stored.manifest.clone();
    }
    value
}

fn not_found(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("Version {v} of application {name} not found"),
        None => format!("Application {name} not found"),
    }
}

#[cfg(test)]
mod tests {
    use wadm_model::{ScalerStatus, Status, StatusInfo, StatusType};

    use super::*;

    /// A bucket shared by two handles: one the leader path (answering, hanging or failing as
    /// told), one any replica (always answering).
    #[derive(Clone)]
    struct TestKv {
        kv: wadm_store::MemoryKv,
        leader: Leader,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Leader {
        Answers,
        /// No answer at all (an election: the leader request times out).
        Silent,
        /// JetStream's 503.
        Unavailable,
    }

    impl TestKv {
        async fn gate(&self, key: &str) -> Result<(), wadm_store::KvError> {
            match self.leader {
                Leader::Answers => Ok(()),
                Leader::Silent => std::future::pending().await,
                Leader::Unavailable => Err(wadm_store::KvError::from_reason(
                    key,
                    "JetStream system temporarily unavailable (code 503, error code 10008)".into(),
                )),
            }
        }
    }

    impl Kv for TestKv {
        async fn get(&self, key: &str) -> Result<Option<wadm_store::KvEntry>, wadm_store::KvError> {
            self.gate(key).await?;
            self.kv.get(key).await
        }
        async fn create(&self, key: &str, value: bytes::Bytes) -> Result<u64, wadm_store::KvError> {
            self.gate(key).await?;
            self.kv.create(key, value).await
        }
        async fn update(
            &self,
            key: &str,
            value: bytes::Bytes,
            revision: u64,
        ) -> Result<u64, wadm_store::KvError> {
            self.gate(key).await?;
            self.kv.update(key, value, revision).await
        }
        async fn put(&self, key: &str, value: bytes::Bytes) -> Result<u64, wadm_store::KvError> {
            self.gate(key).await?;
            self.kv.put(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), wadm_store::KvError> {
            self.gate(key).await?;
            self.kv.delete(key).await
        }
        async fn scan(
            &self,
            pattern: &str,
        ) -> Result<Vec<(String, wadm_store::KvEntry)>, wadm_store::KvError> {
            self.gate(pattern).await?;
            self.kv.scan(pattern).await
        }
    }

    struct NoStatus;

    impl StatusStore for NoStatus {
        async fn get(&self, _: &str, _: &str) -> Result<Option<Status>, wadm_store::StatusError> {
            Ok(None)
        }
        async fn list(
            &self,
            _: &str,
        ) -> Result<std::collections::BTreeMap<String, Status>, wadm_store::StatusError> {
            Ok(Default::default())
        }
        async fn set(&self, _: &str, _: &str, _: &Status) -> Result<bool, wadm_store::StatusError> {
            Ok(true)
        }
        async fn remove(&self, _: &str, _: &str) -> Result<(), wadm_store::StatusError> {
            Ok(())
        }
    }

    struct NoProbe;

    impl LatticeProbe for NoProbe {
        async fn has_hosts(&self, _: &str) -> Result<bool, crate::probe::ProbeError> {
            Ok(true)
        }
    }

    const BUDGET: ReadBudget = ReadBudget {
        leader: std::time::Duration::from_millis(100),
        any_replica: std::time::Duration::from_millis(500),
    };

    fn api(
        kv: &wadm_store::MemoryKv,
        leader: Leader,
        fallback: bool,
    ) -> Api<TestKv, NoStatus, NoProbe> {
        let handle = |leader| ManifestStore::new(TestKv { kv: kv.clone(), leader });
        Api {
            store: handle(leader),
            status: NoStatus,
            probe: NoProbe,
            events: None,
            max_manifest_bytes: 1 << 20,
            max_reply_bytes: 1 << 20,
            any_replica: fallback
                .then(|| AnyReplica { store: handle(Leader::Answers), status: NoStatus }),
            budget: BUDGET,
        }
    }

    fn request(operation: Operation, body: &[u8]) -> Request<'_> {
        Request {
            lattice: "default",
            operation,
            body,
            content_type: None,
            actor: "test",
            expected_revision: None,
        }
    }

    fn reply(answer: &Answer) -> serde_json::Value {
        serde_json::from_slice(&answer.body).unwrap()
    }

    #[tokio::test]
    async fn without_a_leader_reads_are_answered_stale_and_writes_refused() {
        let kv = wadm_store::MemoryKv::default();
        let current = api(&kv, Leader::Answers, true);
        let manifest = wadm_test_support::hello_manifest("kept", "v1", 1);
        let put = current.handle(request(Operation::Put, manifest.as_bytes())).await;
        assert_eq!(reply(&put)["result"], "created");
        let listed = current.handle(request(Operation::List, b"")).await;
        assert!(!listed.stale);
        assert_eq!(reply(&listed)["models"][0]["name"], "kept");

        for leader in [Leader::Silent, Leader::Unavailable] {
            let electing = api(&kv, leader, true);
            let asked = std::time::Instant::now();
            let listed = electing.handle(request(Operation::List, b"")).await;
            assert!(listed.stale, "{}", reply(&listed));
            let body = reply(&listed);
            assert_eq!(body["result"], "success");
            assert_eq!(body["models"][0]["name"], "kept");
            assert!(body["message"].as_str().unwrap().contains(STALE_NOTE), "{body}");
            let got = electing.handle(request(Operation::Get("kept".into()), b"")).await;
            assert!(got.stale && reply(&got)["result"] == "success", "{}", reply(&got));
            let status = electing.handle(request(Operation::Status("kept".into()), b"")).await;
            assert!(status.stale && reply(&status)["result"] == "ok", "{}", reply(&status));
            // Unknown to a replica that may lag: retry, never `notfound`.
            let unknown = electing.handle(request(Operation::Get("nope".into()), b"")).await;
            let body = reply(&unknown);
            assert!(!unknown.stale);
            assert_eq!(body["result"], "error", "{body}");
            assert!(body["message"].as_str().unwrap().contains(RETRY_NOTE), "{body}");
            // Writes: refused, retryable, nothing written.
            let other = wadm_test_support::hello_manifest("new", "v1", 1);
            let put = electing.handle(request(Operation::Put, other.as_bytes())).await;
            let body = reply(&put);
            assert_eq!(body["result"], "error", "{body}");
            assert!(body["message"].as_str().unwrap().contains("temporarily unavailable"));
            let deploy = electing.handle(request(Operation::Deploy("kept".into()), b"{}")).await;
            assert_eq!(reply(&deploy)["result"], "error", "{}", reply(&deploy));
            // Each within the budgets (every request here waits the leader's at most once).
            let bound = (BUDGET.leader + BUDGET.any_replica) * 6;
            assert!(asked.elapsed() < bound, "{:?}", asked.elapsed());
        }
        let listed = current.handle(request(Operation::List, b"")).await;
        assert_eq!(reply(&listed)["models"].as_array().unwrap().len(), 1, "nothing new written");

        // No replica to fall back to: the leader's failure, retryable.
        let alone = api(&kv, Leader::Silent, false);
        let listed = alone.handle(request(Operation::List, b"")).await;
        assert!(!listed.stale);
        let body = reply(&listed);
        assert_eq!(body["result"], "error", "{body}");
        assert!(body["message"].as_str().unwrap().contains(RETRY_NOTE), "{body}");
    }

    fn list(apps: usize) -> ListModelsResponse {
        let scalers = (0..20)
            .map(|i| ScalerStatus {
                id: format!("scaler-{i}").into(),
                kind: "SpreadScaler".into(),
                name: "x".repeat(100).into(),
                status: StatusInfo::new(StatusType::Deployed, "ok"),
            })
            .collect::<Vec<_>>();
        let models = (0..apps)
            .map(|i| ModelSummary {
                name: format!("app{i}"),
                version: "v1".into(),
                description: None,
                deployed_version: Some("v1".into()),
                detailed_status: Status { scalers: scalers.clone(), ..Status::default() },
                status: StatusType::Deployed,
                status_message: None,
            })
            .collect();
        ListModelsResponse { result: GetResult::Success, message: String::new(), models }
    }

    #[test]
    fn get_serves_the_document_with_its_version_or_the_normal_form() {
        let normal =
            serde_json::json!({"metadata": {"name": "a", "annotations": {"version": "v1"}}});
        let old = StoredVersion { version: "v1".into(), manifest: normal.clone(), submitted: None };
        assert_eq!(as_submitted(&old), normal);
        let text = "metadata:\n  name: a\n  labels: {team: web}\nkind: Application\n\
                    apiVersion: core.oam.dev/v1beta1\nspec: {components: []}\n";
        let yaml = SubmittedManifest { format: ManifestFormat::Yaml, text: text.into() };
        let new = StoredVersion { submitted: Some(yaml), ..old };
        let served = as_submitted(&new);
        assert_eq!(
            served,
            serde_json::json!({"metadata": {"name": "a", "labels": {"team": "web"},
                "annotations": {"version": "v1"}}, "kind": "Application",
                "apiVersion": "core.oam.dev/v1beta1", "spec": {"components": []}})
        );
        let keys: Vec<&String> = served["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "labels", "annotations"]);
        let odd = SubmittedManifest { format: ManifestFormat::Yaml, text: format!("{text}x: 1\n") };
        let odd = StoredVersion { submitted: Some(odd), ..new };
        assert_eq!(as_submitted(&odd), normal);
    }

    #[test]
    fn a_list_past_the_payload_limit_is_summarised_then_cut() {
        let limit = 64 * 1024;
        let small = fit_list(list(3), limit);
        assert_eq!(small.models.len(), 3);
        assert!(!small.models[0].detailed_status.scalers.is_empty());
        // Too big with scaler statuses, fits without.
        let medium = fit_list(list(100), limit);
        assert_eq!(medium.models.len(), 100);
        assert!(medium.models.iter().all(|m| m.detailed_status.scalers.is_empty()));
        assert!(medium.message.contains("per-scaler statuses left out"), "{}", medium.message);
        // Too big even then: the first that fit, said so.
        let large = fit_list(list(5_000), limit);
        assert!(serde_json::to_vec(&large).unwrap().len() <= limit);
        assert!(large.models.len() > 100 && large.models.len() < 5_000);
        assert!(large.message.starts_with(&format!("showing {} of 5000", large.models.len())));
    }
}
