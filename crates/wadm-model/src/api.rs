//! Request and response bodies of the wadm NATS API (`{prefix}.{lattice}.model.{operation}[.{name}]`).
//!
//! These shapes are fixed by existing clients (`wash app …`, `wadm-client` 0.10): fields may be
//! added as optional, never changed. Enum values are lowercase strings.
//!
//! wadm's own additions: `model.history.{name}` ([`HistoryResponse`]) and the lattice view,
//! `{prefix}.{lattice}.lattice.hosts` ([`LatticeHostsRequest`], [`LatticeHostsResponse`]) and
//! `{prefix}.lattices` ([`LatticesResponse`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::status::{Status, StatusType};

/// The default API subject prefix.
pub const DEFAULT_API_PREFIX: &str = "wadm.api";

/// Request header of `model.put` and `model.deploy.{name}` (a wadm extension): the application
/// revision the request was decided on. When the application's revision is another one, the
/// request is refused and changes nothing. `0` means "the application does not exist yet".
pub const EXPECTED_REVISION_HEADER: &str = "Wadm-Expected-Revision";

fn is_false(flag: &bool) -> bool {
    !flag
}

/// Every response may be this bare envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `"error"`.
    pub result: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ErrorResponse {
    /// An error envelope with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { result: "error".into(), message: message.into() }
    }
}

/// `model.put` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PutResult {
    /// Nothing was stored.
    Error,
    /// The application is new: this is its first version.
    Created,
    /// A new version of an existing application was stored.
    NewVersion,
}

/// `model.put` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutModelResponse {
    /// Whether and how the manifest was stored.
    pub result: PutResult,
    /// Versions stored for the application now.
    #[serde(default)]
    pub total_versions: usize,
    /// The version the put stored (or matched).
    #[serde(default)]
    pub current_version: String,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// The application's name.
    #[serde(default)]
    pub name: String,
    /// wadm extension: the manifest equals a stored version (after normalising), so nothing was
    /// stored; `current_version` names that version and `result` is `created` or `newversion`
    /// as for a put that stored it (so that existing clients accept the reply).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unchanged: bool,
    /// wadm extension: the application's revision after the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// One application in `model.get` (and the deprecated `model.list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The application's name.
    pub name: String,
    /// The latest version put.
    pub version: String,
    /// `metadata.annotations.description` of the latest version.
    #[serde(default)]
    pub description: Option<String>,
    /// The version deployed now (`None`: undeployed).
    #[serde(default)]
    pub deployed_version: Option<String>,
    /// The full status, scalers included.
    #[serde(default)]
    pub detailed_status: Status,
    /// The overall status type, for clients that read only this.
    #[serde(default)]
    pub status: StatusType,
    /// The overall status message, for clients that read only this.
    #[serde(default)]
    pub status_message: Option<String>,
}

/// Result of read operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GetResult {
    /// The request failed.
    Error,
    /// Found and returned.
    Success,
    /// No such application or version.
    NotFound,
}

/// `model.get` (no name) response: every application of the lattice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListModelsResponse {
    /// Whether the list could be read.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// Every application, by name.
    #[serde(default)]
    pub models: Vec<ModelSummary>,
}

/// `model.get.{name}` and `model.del.{name}` request body (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRequest {
    /// The version to read or delete (`None`: the latest, or every version for a delete).
    #[serde(default)]
    pub version: Option<String>,
}

/// `model.del.{name}` request body (may be empty): upstream's `{"version": v}`, plus our `force`
/// (delete a shared application even while deployed applications reference it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModelRequest {
    /// The version to delete (`None`: every version).
    #[serde(default)]
    pub version: Option<String>,
    /// Delete even while deployed applications reference it (a shared application).
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

/// `model.undeploy.{name}` request body (may be empty; upstream sends `{}`). `force`: undeploy a
/// shared application even while deployed applications reference it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndeployModelRequest {
    /// Undeploy even while deployed applications reference it (a shared application).
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

/// `model.get.{name}` response. `manifest` is the manifest as it was put, as a JSON object (the
/// server's version written in when the document had none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetModelResponse {
    /// Whether the manifest was found.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// The manifest, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
    /// wadm extension: the document exactly as it was put (absent for versions stored before
    /// wadm kept it, and when the reply would not fit in a NATS message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<SubmittedManifest>,
    /// wadm extension: the application's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// A manifest document exactly as a client put it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedManifest {
    /// YAML or JSON.
    pub format: ManifestFormat,
    /// The document's text, byte for byte.
    pub text: String,
}

/// The syntax of a manifest document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestFormat {
    /// A YAML document.
    Yaml,
    /// A JSON document.
    Json,
}

/// One entry of `model.versions.{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version's name.
    pub version: String,
    /// Whether it is the deployed version.
    pub deployed: bool,
}

/// `model.versions.{name}` response (versions in insertion order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// Whether the application was found.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// Every stored version, oldest first.
    #[serde(default)]
    pub versions: Vec<VersionInfo>,
    /// wadm extension: the application's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// `model.del.{name}` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteResult {
    /// Deleted.
    Deleted,
    /// The request failed.
    Error,
    /// There was nothing to delete.
    Noop,
}

/// `model.del.{name}` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModelResponse {
    /// Whether anything was deleted.
    pub result: DeleteResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// Whether the delete also undeployed the application.
    #[serde(default)]
    pub undeploy: bool,
}

/// `model.deploy.{name}` request body (may be empty). `version` may be a version, `"latest"` or null.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployModelRequest {
    /// The version to deploy (`None` or `latest`: the newest stored).
    #[serde(default)]
    pub version: Option<String>,
}

/// Result of deploy and undeploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployResult {
    /// The request failed.
    Error,
    /// Accepted: the runtime carries it out.
    Acknowledged,
    /// No such application or version.
    NotFound,
}

/// `model.deploy.{name}` and `model.undeploy.{name}` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployModelResponse {
    /// Whether the request was accepted.
    pub result: DeployResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// The application's name.
    #[serde(default)]
    pub name: String,
    /// The version deployed (`None` for an undeploy).
    #[serde(default)]
    pub version: Option<String>,
    /// wadm extension: that version was deployed already, so nothing changed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unchanged: bool,
    /// wadm extension: the application's revision after the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// `model.status.{name}` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusResult {
    /// The request failed.
    Error,
    /// The status was read.
    Ok,
    /// No such application.
    NotFound,
}

/// `model.status.{name}` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Whether the status was read.
    pub result: StatusResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// The status, when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// What was done to an application, as recorded in its history (`model.history.{name}`, a wadm
/// extension of the API). An action this version does not know decodes as [`HistoryAction::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryAction {
    /// A version was stored.
    Put,
    /// A version was deployed.
    Deploy,
    /// The application was undeployed.
    Undeploy,
    /// A version (or the whole application) was deleted.
    Delete,
    /// An action this version of wadm does not know (e.g. wadm's own `revert`), kept by name.
    #[serde(untagged)]
    Other(String),
}

impl std::fmt::Display for HistoryAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HistoryAction::Put => "put",
            HistoryAction::Deploy => "deploy",
            HistoryAction::Undeploy => "undeploy",
            HistoryAction::Delete => "delete",
            HistoryAction::Other(other) => other,
        })
    }
}

/// One history entry: who did what to which version, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What was done.
    pub action: HistoryAction,
    /// The version concerned (`None` for deleting the whole application).
    #[serde(default)]
    pub version: Option<String>,
    /// Who asked (the `Wadm-Actor` request header; `unknown` when absent).
    #[serde(default)]
    pub actor: String,
    /// When, as an RFC 3339 UTC timestamp.
    #[serde(default)]
    pub at: String,
    /// Why, for wadm's own actions (a revert: what failed where; a rollback: from which version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `model.history.{name}` response: the application's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// `success`, `notfound` or `error`.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// Every entry, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// `{prefix}.{lattice}.lattice.hosts` request: empty (every host) or `{"app": name}` (only the
/// hosts that run something of that application, and only what they run of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatticeHostsRequest {
    /// Limit the view to this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// `{prefix}.{lattice}.lattice.hosts` response: the hosts wadm observes in the lattice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeHostsResponse {
    /// `success`, `notfound` (the application asked for is not stored) or `error`.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// The lattice observed.
    #[serde(default)]
    pub lattice: String,
    /// The application the view is limited to, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Sorted by host id.
    #[serde(default)]
    pub hosts: Vec<HostSummary>,
}

/// One host as wadm observes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// The host id (its public key).
    pub id: String,
    /// The human-readable name the host chose.
    #[serde(default)]
    pub friendly_name: String,
    /// Every label, the host's own `hostcore.*` ones included.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The wasmCloud host version.
    #[serde(default)]
    pub version: String,
    /// When the host started (RFC 3339 UTC), when wadm heard a start, a heartbeat or an answer
    /// from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Seconds since `started_at` when the reply was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// When wadm last heard from the host (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Components running on the host, by id.
    #[serde(default)]
    pub components: Vec<RunningWorkload>,
    /// Providers running on the host, by id.
    #[serde(default)]
    pub providers: Vec<RunningWorkload>,
}

/// A component or provider running on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningWorkload {
    /// The component or provider id.
    pub id: String,
    /// The image it runs.
    #[serde(default)]
    pub image_ref: String,
    /// Instances on this host: a component's maximum concurrent instances, 1 for a provider.
    #[serde(default)]
    pub instances: u32,
    /// The application that owns it (its `wasmcloud.dev/appspec` annotation); `None`: not
    /// started by wadm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// `{prefix}.lattices` response: the lattices the answering wadm observes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticesResponse {
    /// `success` or `error`.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// Sorted by name.
    #[serde(default)]
    pub lattices: Vec<LatticeSummary>,
}

/// One lattice wadm observes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeSummary {
    /// The lattice id.
    pub name: String,
    /// Hosts observed in it (`None`: its observed state could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_lowercase_on_the_wire() {
        let put = PutModelResponse {
            result: PutResult::NewVersion,
            total_versions: 2,
            current_version: "v2".into(),
            message: String::new(),
            name: "app".into(),
            unchanged: false,
            revision: None,
        };
        let wire = serde_json::to_value(&put).unwrap();
        assert_eq!(wire["result"], "newversion");
        // The extensions appear only when they say something.
        assert!(wire.get("unchanged").is_none() && wire.get("revision").is_none(), "{wire}");
        assert_eq!(serde_json::to_value(GetResult::NotFound).unwrap(), "notfound");
        assert_eq!(serde_json::to_value(DeployResult::Acknowledged).unwrap(), "acknowledged");
        let empty: DeployModelRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.version, None);
    }

    #[test]
    fn history_actions_are_lowercase_and_unknown_ones_survive() {
        let entry: HistoryEntry = serde_json::from_str(
            r#"{"action":"undeploy","version":"v1","actor":"bob","at":"2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert_eq!(entry.action, HistoryAction::Undeploy);
        assert_eq!(serde_json::to_value(&entry).unwrap()["action"], "undeploy");
        let future: HistoryEntry = serde_json::from_str(r#"{"action":"rollback"}"#).unwrap();
        assert_eq!(future.action, HistoryAction::Other("rollback".into()));
        assert_eq!(future.action.to_string(), "rollback");
        assert_eq!(serde_json::to_value(&future.action).unwrap(), "rollback");
        let reply: HistoryResponse = serde_json::from_str(r#"{"result":"notfound"}"#).unwrap();
        assert_eq!((reply.result, reply.history.len()), (GetResult::NotFound, 0));
    }
}

/// `{prefix}.{lattice}.model.plan.{name}` request: plan deploying a stored version (absent or
/// `latest`: the current one). `model.plan` without a name takes a manifest as its body instead
/// (like `model.put`) and plans deploying it without storing it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlanRequest {
    /// The version to plan (`None` or `latest`: the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One control request a deploy would send now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRequest {
    /// `scale_component`, `update_component`, `start_provider`, `stop_provider`, `put_link`,
    /// `delete_link`, `put_config`, `delete_config`.
    pub kind: String,
    /// The host that would receive it (host-addressed requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// The full control subject.
    pub subject: String,
    /// The request body as it would be sent (config values included only as their keys).
    pub body: serde_json::Value,
    /// Why it is needed, from what wadm observes of its target.
    pub reason: String,
}

/// `model.plan` response: what deploying `version` of `name` would change, as of now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    /// `success`, `notfound` (the application or version is not stored) or `error`.
    pub result: GetResult,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// The application's name.
    #[serde(default)]
    pub name: String,
    /// The version planned (for a manifest body without a version: empty).
    #[serde(default)]
    pub version: String,
    /// The version deployed now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_version: Option<String>,
    /// Whether a deploy would change anything: the spec (a different version or content) or the
    /// lattice (any request to send).
    #[serde(default)]
    pub changed: bool,
    /// The spec's differences from the deployed version, in normal form (everything is an
    /// addition when nothing is deployed).
    #[serde(default)]
    pub spec_changes: Vec<crate::diff::Change>,
    /// The control requests a deploy would send now, in send order, given the observed lattice
    /// (orders already in flight are not counted).
    #[serde(default)]
    pub requests: Vec<PlannedRequest>,
}

impl PlanResponse {
    /// A failed plan.
    pub fn error(result: GetResult, name: &str, message: impl Into<String>) -> Self {
        Self {
            result,
            message: message.into(),
            name: name.to_string(),
            version: String::new(),
            deployed_version: None,
            changed: false,
            spec_changes: Vec::new(),
            requests: Vec::new(),
        }
    }
}
