//! [`Client`]: one method per operation of the wadm NATS API.

use std::time::Duration;

use async_nats::{HeaderMap, Request};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wadm_model::api::{
    DEFAULT_API_PREFIX, DeleteModelRequest, DeleteModelResponse, DeployModelRequest,
    DeployModelResponse, EXPECTED_REVISION_HEADER, GetModelResponse, HistoryEntry, HistoryResponse,
    HostSummary, LatticeHostsRequest, LatticeHostsResponse, LatticeSummary, LatticesResponse,
    ListModelsResponse, ModelSummary, PutModelResponse, StatusResponse, UndeployModelRequest,
    VersionInfo, VersionRequest, VersionResponse,
};
use wadm_model::status::Status;

use crate::error::ClientError;
use crate::reply::decode;
use crate::watch::StatusStream;

/// The header that tells the server who asked (recorded in the history).
pub const ACTOR_HEADER: &str = "Wadm-Actor";

/// How long a request waits for its reply unless [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the wadm API of one lattice. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    nats: async_nats::Client,
    lattice: String,
    prefix: String,
    timeout: Duration,
    actor: Option<String>,
}

impl Client {
    /// A client for `lattice` over `nats`; `prefix` defaults to `wadm.api`.
    pub fn new(nats: async_nats::Client, lattice: impl Into<String>, prefix: Option<&str>) -> Self {
        Self {
            nats,
            lattice: lattice.into(),
            prefix: prefix.unwrap_or(DEFAULT_API_PREFIX).to_string(),
            timeout: DEFAULT_TIMEOUT,
            actor: None,
        }
    }

    /// The same client with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same client, naming `actor` (a user or tool) in every request (`Wadm-Actor` header);
    /// the server records it in the application's history.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// The lattice this client talks to.
    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    /// The API subject prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The underlying NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Store a manifest (YAML or JSON). `content_type` is sent as `Content-Type` when given
    /// (`application/json` or `application/yaml`); without it the server guesses. A manifest
    /// equal to a stored version (after normalising) stores nothing: the reply says
    /// `unchanged` and names that version.
    pub async fn put_manifest(
        &self,
        manifest: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<PutModelResponse, ClientError> {
        self.put_manifest_expecting(manifest, content_type, None).await
    }

    /// [`Client::put_manifest`], refused unless the application is at revision `expected`
    /// (0: it does not exist yet) when one is given.
    pub async fn put_manifest_expecting(
        &self,
        manifest: impl Into<Bytes>,
        content_type: Option<&str>,
        expected: Option<u64>,
    ) -> Result<PutModelResponse, ClientError> {
        let subject = self.subject("put", None)?;
        let mut headers = expecting(expected);
        if let Some(content_type) = content_type {
            headers.insert("Content-Type", content_type);
        }
        self.request(subject, Some(headers), manifest.into()).await
    }

    /// Every application of the lattice (`model.get`).
    pub async fn list(&self) -> Result<Vec<ModelSummary>, ClientError> {
        let subject = self.subject("get", None)?;
        let reply: ListModelsResponse = self.request(subject, None, Bytes::new()).await?;
        Ok(reply.models)
    }

    /// The stored manifest of `name` (as a JSON object): `version`, or the current one.
    pub async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let subject = self.subject("get", Some(name))?;
        self.get_model(name, version).await?.manifest.ok_or_else(|| ClientError::Decode {
            subject,
            reason: "a successful reply without a manifest".to_string(),
        })
    }

    /// The whole `model.get.{name}` reply: the manifest, the document as it was put (when the
    /// server keeps it) and the application's revision.
    pub async fn get_model(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<GetModelResponse, ClientError> {
        let subject = self.subject("get", Some(name))?;
        let body = version_body(&VersionRequest { version: version.map(str::to_string) });
        self.request(subject, None, body).await
    }

    /// The stored versions of `name`, oldest first, with which one is deployed.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, ClientError> {
        Ok(self.versions_reply(name).await?.versions)
    }

    /// The whole `model.versions.{name}` reply (with the application's revision).
    pub async fn versions_reply(&self, name: &str) -> Result<VersionResponse, ClientError> {
        let subject = self.subject("versions", Some(name))?;
        self.request(subject, None, Bytes::new()).await
    }

    /// Deploy `version` of `name` (the current version when `None`). Deploying the deployed
    /// version changes nothing: the reply says `unchanged`.
    pub async fn deploy(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<DeployModelResponse, ClientError> {
        self.deploy_expecting(name, version, None).await
    }

    /// [`Client::deploy`], refused unless the application is at revision `expected` when one
    /// is given.
    pub async fn deploy_expecting(
        &self,
        name: &str,
        version: Option<&str>,
        expected: Option<u64>,
    ) -> Result<DeployModelResponse, ClientError> {
        let subject = self.subject("deploy", Some(name))?;
        let body = version_body(&DeployModelRequest { version: version.map(str::to_string) });
        self.request(subject, Some(expecting(expected)), body).await
    }

    /// Undeploy `name`, keeping its stored versions.
    /// Promote the current deployment of `name` past its rollouts' canary stage (`model.promote`,
    /// a wadm extension).
    pub async fn promote(&self, name: &str) -> Result<DeployModelResponse, ClientError> {
        let subject = self.subject("promote", Some(name))?;
        self.request(subject, None, Bytes::new()).await
    }

    /// Deploy the last stable version of `name` again (`model.rollback`, a wadm extension): the
    /// last version that was fully deployed, or the one before it when that is deployed.
    /// Refused unless the application is at revision `expected` when one is given.
    pub async fn rollback(
        &self,
        name: &str,
        expected: Option<u64>,
    ) -> Result<DeployModelResponse, ClientError> {
        let subject = self.subject("rollback", Some(name))?;
        self.request(subject, Some(expecting(expected)), Bytes::new()).await
    }

    /// Undeploy `name` (refused for a shared application other deployed applications use; see
    /// [`Client::undeploy_with`]).
    pub async fn undeploy(&self, name: &str) -> Result<DeployModelResponse, ClientError> {
        self.undeploy_with(name, false).await
    }

    /// [`Client::undeploy`]; with `force`, a shared application is undeployed even while
    /// deployed applications use it (else that is refused, the error naming them).
    pub async fn undeploy_with(
        &self,
        name: &str,
        force: bool,
    ) -> Result<DeployModelResponse, ClientError> {
        let subject = self.subject("undeploy", Some(name))?;
        let body = match force {
            // What upstream clients send.
            false => Bytes::from_static(b"{}"),
            true => version_body(&UndeployModelRequest { force }),
        };
        self.request(subject, None, body).await
    }

    /// Delete one version of `name`, or the whole application when `version` is `None`.
    /// Deleting something missing is not an error: the reply's `result` is `noop`.
    pub async fn delete(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<DeleteModelResponse, ClientError> {
        self.delete_with(name, version, false).await
    }

    /// [`Client::delete`]; with `force`, a deployed shared application is deleted even while
    /// deployed applications use it (else that is refused, the error naming them).
    pub async fn delete_with(
        &self,
        name: &str,
        version: Option<&str>,
        force: bool,
    ) -> Result<DeleteModelResponse, ClientError> {
        let subject = self.subject("del", Some(name))?;
        let version = version.map(str::to_string);
        let body = version_body(&DeleteModelRequest { version, force });
        self.request(subject, None, body).await
    }

    /// The current status of `name`.
    pub async fn status(&self, name: &str) -> Result<Status, ClientError> {
        let subject = self.subject("status", Some(name))?;
        let reply: StatusResponse = self.request(subject.clone(), None, Bytes::new()).await?;
        reply.status.ok_or_else(|| ClientError::Decode {
            subject,
            reason: "a successful reply without a status".to_string(),
        })
    }

    /// What was done to `name` (puts, deploys, undeploys, deletes), oldest first.
    pub async fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, ClientError> {
        let subject = self.subject("history", Some(name))?;
        let reply: HistoryResponse = self.request(subject, None, Bytes::new()).await?;
        Ok(reply.history)
    }

    /// Every host wadm observes in the lattice, with what runs on each (`lattice.hosts`).
    pub async fn lattice_hosts(&self) -> Result<Vec<HostSummary>, ClientError> {
        Ok(self.hosts_reply(None).await?.hosts)
    }

    /// The placement of application `name`: the hosts that run something of it, each with only
    /// what it runs of it. An application that is not stored is [`ClientError::NotFound`].
    pub async fn app_hosts(&self, name: &str) -> Result<Vec<HostSummary>, ClientError> {
        Ok(self.hosts_reply(Some(name)).await?.hosts)
    }

    /// The whole `lattice.hosts` reply (its message says when a very large view was cut to the
    /// NATS max payload).
    pub async fn hosts_reply(
        &self,
        app: Option<&str>,
    ) -> Result<LatticeHostsResponse, ClientError> {
        check_token("lattice", &self.lattice)?;
        let subject = format!("{}.{}.lattice.hosts", self.prefix, self.lattice);
        let body = version_body(&LatticeHostsRequest { app: app.map(str::to_string) });
        self.request(subject, None, body).await
    }

    /// The lattices the answering wadm observes (`lattices`; whichever lattice this client
    /// was made for).
    pub async fn lattices(&self) -> Result<Vec<LatticeSummary>, ClientError> {
        let subject = format!("{}.lattices", self.prefix);
        let reply: LatticesResponse = self.request(subject, None, Bytes::new()).await?;
        Ok(reply.lattices)
    }

    /// Follow the status `name` publishes on `wadm.status.{lattice}.{name}` (a core
    /// subscription: only statuses published from now on; ask [`Client::status`] for the current
    /// one). The subscription is in place when this returns.
    pub async fn watch_status(&self, name: &str) -> Result<StatusStream, ClientError> {
        check_token("application name", name)?;
        let subject = format!("wadm.status.{}.{name}", self.lattice);
        let subscriber = self
            .nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClientError::Nats { subject: subject.clone(), reason: e.to_string() })?;
        // Make sure the server has registered the interest before the caller acts on it.
        self.nats
            .flush()
            .await
            .map_err(|e| ClientError::Nats { subject: subject.clone(), reason: e.to_string() })?;
        Ok(StatusStream::new(subject, subscriber))
    }

    fn subject(&self, operation: &str, name: Option<&str>) -> Result<String, ClientError> {
        check_token("lattice", &self.lattice)?;
        match name {
            Some(name) => {
                check_token("application name", name)?;
                Ok(format!("{}.{}.model.{operation}.{name}", self.prefix, self.lattice))
            }
            None => Ok(format!("{}.{}.model.{operation}", self.prefix, self.lattice)),
        }
    }

    async fn request<T: DeserializeOwned>(
        &self,
        subject: String,
        headers: Option<HeaderMap>,
        body: Bytes,
    ) -> Result<T, ClientError> {
        let mut headers = headers.unwrap_or_default();
        if let Some(actor) = &self.actor {
            headers.insert(ACTOR_HEADER, actor.as_str());
        }
        let mut request = Request::new().payload(body).timeout(Some(self.timeout));
        if !headers.is_empty() {
            request = request.headers(headers);
        }
        let reply = self.nats.send_request(subject.clone(), request).await.map_err(|e| {
            use async_nats::RequestErrorKind as Kind;
            match e.kind() {
                Kind::TimedOut => {
                    ClientError::Timeout { subject: subject.clone(), after: self.timeout }
                }
                Kind::NoResponders => ClientError::NoResponders { subject: subject.clone() },
                _ => ClientError::Nats { subject: subject.clone(), reason: e.to_string() },
            }
        })?;
        decode(&subject, &reply.payload)
    }
}

/// The headers of a request made on the premise that the application is at `expected`.
fn expecting(expected: Option<u64>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(revision) = expected {
        headers.insert(EXPECTED_REVISION_HEADER, revision.to_string().as_str());
    }
    headers
}

/// A JSON request body; an all-default request is sent empty, as the API allows.
fn version_body<T: Serialize + Default + PartialEq>(request: &T) -> Bytes {
    if *request == T::default() {
        return Bytes::new();
    }
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(request).map(Bytes::from).unwrap_or_default()
}

/// A value that becomes one subject token must be non-empty and free of `.`, `*`, `>` and
/// whitespace.
fn check_token(what: &str, value: &str) -> Result<(), ClientError> {
    let bad = value.is_empty()
        || value.chars().any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace());
    if bad {
        return Err(ClientError::InvalidArgument(format!(
            "invalid {what} {value:?}: it must be non-empty without '.', '*', '>' or spaces"
        )));
    }
    Ok(())
}

/// `model.plan`: what a deploy would do (a wadm extension; upstream wadm does not answer it).
impl Client {
    /// Plan deploying stored version `version` of `name` (`None`: the current one): the spec's
    /// differences from the deployed version and the control requests a deploy would send now.
    pub async fn plan_version(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<wadm_model::api::PlanResponse, ClientError> {
        let subject = self.subject("plan", Some(name))?;
        let body =
            version_body(&wadm_model::api::PlanRequest { version: version.map(str::to_string) });
        self.request(subject, None, body).await
    }

    /// Plan deploying a manifest (YAML or JSON) without storing it.
    pub async fn plan_manifest(
        &self,
        manifest: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<wadm_model::api::PlanResponse, ClientError> {
        let subject = self.subject("plan", None)?;
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert("Content-Type", content_type);
        }
        self.request(subject, Some(headers), manifest.into()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        assert!(check_token("name", "hello-world_1").is_ok());
        for bad in ["", "a.b", "a b", "*", "x>"] {
            assert!(matches!(check_token("name", bad), Err(ClientError::InvalidArgument(_))));
        }
    }

    #[test]
    fn default_requests_are_empty() {
        assert!(version_body(&VersionRequest::default()).is_empty());
        assert!(version_body(&LatticeHostsRequest::default()).is_empty());
        let body = version_body(&LatticeHostsRequest { app: Some("web".into()) });
        assert_eq!(&body[..], br#"{"app":"web"}"#);
        let body = version_body(&VersionRequest { version: Some("v1".into()) });
        assert_eq!(&body[..], br#"{"version":"v1"}"#);
        // Without force, delete sends what upstream clients send.
        assert!(version_body(&DeleteModelRequest::default()).is_empty());
        let body = version_body(&DeleteModelRequest { version: Some("v1".into()), force: false });
        assert_eq!(&body[..], br#"{"version":"v1"}"#);
        let body = version_body(&DeleteModelRequest { version: None, force: true });
        assert_eq!(&body[..], br#"{"version":null,"force":true}"#);
        let body = version_body(&UndeployModelRequest { force: true });
        assert_eq!(&body[..], br#"{"force":true}"#);
    }
}
