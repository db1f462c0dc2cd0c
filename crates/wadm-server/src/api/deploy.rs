//! Deploy and undeploy: version resolution, deploy-time checks against the other deployed
//! applications of the lattice, the store write, status and CloudEvents.

use serde_json::Value;
use wadm_model::api::*;
use wadm_model::{Application, Instances, Scaler, Source, Status, StatusType};

use super::{Api, FollowUp, body, not_found};
use crate::checks::{Removal, awaited_shared, deploy_conflicts, removal};
use crate::probe::LatticeProbe;
use wadm_store::kv::Kv;
use wadm_store::manifest::parse_stored;
use wadm_store::manifest::{DeployOptions, LATEST, ManifestError};
use wadm_store::status::StatusStore;

impl<K: Kv, S: StatusStore, P: LatticeProbe> Api<K, S, P> {
    pub(super) async fn deploy(
        &self,
        lattice: &str,
        name: &str,
        bytes: &[u8],
        expect: Option<u64>,
        actor: &str,
    ) -> (DeployModelResponse, Option<FollowUp>) {
        let reply = |result, message, version| deploy_reply(name, result, message, version);
        let request: DeployModelRequest = match body(bytes) {
            Ok(r) => r,
            Err(m) => return (reply(DeployResult::Error, m, None), None),
        };
        // Resolve the version now, so the checks and the write concern the same manifest.
        let index = match self.store.index(lattice, name).await {
            Ok(Some(index)) => index,
            Ok(None) => return (reply(DeployResult::NotFound, not_found(name, None), None), None),
            Err(e) => return (reply(DeployResult::Error, e.to_string(), None), None),
        };
        let version = match request.version.as_deref() {
            None | Some(LATEST) => index.current().unwrap_or_default().to_string(),
            Some(v) => v.to_string(),
        };
        let stored = match self.store.get(lattice, name, Some(&version)).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                return (
                    reply(DeployResult::NotFound, not_found(name, Some(&version)), None),
                    None,
                );
            }
            Err(e) => return (reply(DeployResult::Error, e.to_string(), None), None),
        };
        // A deploy of the deployed version changes nothing, unless the deployment failed: then
        // it is taken up afresh (a new generation; the runtime retries at once).
        let redeploy = index.deployed.as_deref() == Some(version.as_str())
            && self.app_status(lattice, name).await.status.status_type == StatusType::Failed;
        let already = index.deployed.as_deref() == Some(version.as_str()) && !redeploy;
        let awaited = if already {
            Vec::new()
        } else {
            match self.check_deploy(lattice, name, &stored.manifest).await {
                Ok(awaited) => awaited,
                Err(message) => return (reply(DeployResult::Error, message, Some(version)), None),
            }
        };
        let options = DeployOptions { expect, redeploy };
        let outcome =
            match self.store.deploy_with(lattice, name, Some(&version), options, actor).await {
                Ok(outcome) => outcome,
                Err(
                    e @ (ManifestError::AppNotFound(_) | ManifestError::VersionNotFound { .. }),
                ) => {
                    return (reply(DeployResult::NotFound, e.to_string(), None), None);
                }
                Err(e) => return (reply(DeployResult::Error, e.to_string(), None), None),
            };
        if outcome.unchanged {
            let message =
                format!("Version {} of {name} is already deployed: unchanged", outcome.version);
            let unchanged = DeployModelResponse {
                unchanged: true,
                revision: Some(outcome.revision),
                ..reply(DeployResult::Acknowledged, message, Some(outcome.version))
            };
            return (unchanged, None);
        }
        let status = match awaited.as_slice() {
            [] => Status::new(
                StatusType::Reconciling,
                format!("Deploying version {}", outcome.version),
            ),
            [first, ..] => {
                Status::new(StatusType::Waiting, format!("shared application {first} not deployed"))
            }
        };
        self.publish_status(lattice, name, &status).await;
        let instances = parse_stored(&stored.manifest).ok().map(|app| hostless_instances(&app));
        self.publish_deployed(lattice, name, stored.manifest.clone()).await;
        let follow = FollowUp::ProbeHosts {
            lattice: lattice.to_string(),
            app: name.to_string(),
            generation: outcome.generation,
            instances,
        };
        let mut message = format!(
            "Deployed version {} of {name} (generation {})",
            outcome.version, outcome.generation
        );
        if !awaited.is_empty() {
            message.push_str(&format!(
                "; waiting for shared application(s) not deployed: {}",
                awaited.join(", ")
            ));
        }
        let deployed = DeployModelResponse {
            revision: Some(outcome.revision),
            ..reply(DeployResult::Acknowledged, message, Some(outcome.version))
        };
        (deployed, Some(follow))
    }

    /// Tell the runtime (and anyone listening) that `manifest` of `name` is what is deployed
    /// now: `manifest_published`. A failure is logged; the runtime's resync catches up.
    pub(super) async fn publish_deployed(
        &self,
        lattice: &str,
        name: &str,
        manifest: serde_json::Value,
    ) {
        let Some(client) = &self.events else { return };
        let published = wadm_store::events::publish(client, lattice, |id, time| {
            wadm_store::events::CloudEvent::manifest_published(manifest, id, time)
        });
        if let Err(e) = published.await {
            tracing::warn!(%lattice, app = %name, error = %e, "cannot publish event");
        }
    }

    /// Deploy-time checks against the other deployed applications of the lattice. Ok: the shared
    /// applications it references that are not deployed (it will wait for them).
    async fn check_deploy(
        &self,
        lattice: &str,
        name: &str,
        manifest: &Value,
    ) -> Result<Vec<String>, String> {
        let app = parse_stored(manifest).map_err(|e| format!("stored manifest is invalid: {e}"))?;
        // Only load what the checks need: every other deployed application when an explicit id
        // must be unique, else just the shared applications referenced.
        let explicit_ids =
            app.components.iter().any(|c| c.explicit_id && matches!(c.source, Source::Image(_)));
        let candidates: Vec<String> = if explicit_ids {
            let all = self.store.list(lattice).await.map_err(|e| e.to_string())?;
            all.into_iter().map(|o| o.name).collect()
        } else {
            let mut referenced: Vec<String> = app
                .components
                .iter()
                .filter_map(|c| match &c.source {
                    Source::Shared { application, .. } => Some(application.clone()),
                    Source::Image(_) => None,
                })
                .collect();
            referenced.sort();
            referenced.dedup();
            referenced
        };
        let deployed = self.deployed_manifests(lattice, name, candidates).await;
        let problems = deploy_conflicts(&app, &deployed);
        if problems.is_empty() {
            Ok(awaited_shared(&app, &deployed))
        } else {
            Err(problems.join("; "))
        }
    }

    /// The deployed manifests of `names` (`except` left out; unreadable ones too).
    async fn deployed_manifests(
        &self,
        lattice: &str,
        except: &str,
        names: Vec<String>,
    ) -> Vec<Application> {
        let loads = names.into_iter().filter(|o| o != except).map(|other| async move {
            let index = self.store.index(lattice, &other).await.ok().flatten()?;
            let version = index.deployed?;
            self.store.get(lattice, &other, Some(&version)).await.ok().flatten()
        });
        futures::future::join_all(loads)
            .await
            .into_iter()
            .flatten()
            .filter_map(|s| parse_stored(&s.manifest).ok())
            .collect()
    }

    /// Before undeploying `name` (or deleting `version` of it, `None`: the whole application):
    /// when that undeploys a shared application, the deployed applications that use it. Err: the
    /// request is refused (the message names them); Ok: proceed, the dependents left waiting when
    /// forced. Cheap for the common case: only a deployed shared application lists the lattice.
    pub(super) async fn check_removal(
        &self,
        lattice: &str,
        name: &str,
        version: Option<&str>,
        force: bool,
    ) -> Result<Vec<String>, String> {
        let index = match self.store.index(lattice, name).await {
            Ok(Some(index)) => index,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let Some(deployed) = index.deployed else { return Ok(Vec::new()) };
        if version.is_some_and(|v| v != deployed) {
            return Ok(Vec::new());
        }
        let shared = match self.store.get(lattice, name, Some(&deployed)).await {
            Ok(stored) => {
                stored.and_then(|s| parse_stored(&s.manifest).ok()).is_some_and(|a| a.shared)
            }
            Err(e) => return Err(e.to_string()),
        };
        if !shared {
            return Ok(Vec::new());
        }
        let all = self.store.list(lattice).await.map_err(|e| e.to_string())?;
        let others = all.into_iter().filter(|o| o.deployed.is_some()).map(|o| o.name).collect();
        let deployed = self.deployed_manifests(lattice, name, others).await;
        match removal(name, &deployed, force) {
            Removal::Free => Ok(Vec::new()),
            Removal::Forced(users) => Ok(users),
            Removal::Refused(message) => Err(message),
        }
    }

    pub(super) async fn undeploy(
        &self,
        lattice: &str,
        name: &str,
        bytes: &[u8],
        actor: &str,
    ) -> DeployModelResponse {
        let reply = |result, message, version| deploy_reply(name, result, message, version);
        // Upstream sends `{}` (or nothing) and the body was never checked: anything that is not
        // `{"force": true}` is an ordinary undeploy.
        let force = serde_json::from_slice::<UndeployModelRequest>(bytes).is_ok_and(|r| r.force);
        let users = match self.check_removal(lattice, name, None, force).await {
            Ok(users) => users,
            Err(message) => return reply(DeployResult::Error, message, None),
        };
        match self.store.undeploy(lattice, name, actor).await {
            Ok(Some(was)) => {
                self.after_undeploy(lattice, name).await;
                reply(
                    DeployResult::Acknowledged,
                    format!("Undeployed version {was} of {name}{}", forced_note(&users)),
                    Some(was),
                )
            }
            Ok(None) => reply(DeployResult::Acknowledged, format!("{name} was not deployed"), None),
            Err(ManifestError::AppNotFound(_)) => {
                reply(DeployResult::NotFound, not_found(name, None), None)
            }
            Err(e) => reply(DeployResult::Error, e.to_string(), None),
        }
    }

    /// Status `undeployed` and the `manifest_unpublished` event.
    pub(super) async fn after_undeploy(&self, lattice: &str, name: &str) {
        self.publish_status(lattice, name, &Status::undeployed()).await;
        if let Some(client) = &self.events {
            let published = wadm_store::events::publish(client, lattice, |id, time| {
                wadm_store::events::CloudEvent::manifest_unpublished(name, id, time)
            });
            if let Err(e) = published.await {
                tracing::warn!(%lattice, app = %name, error = %e, "cannot publish event");
            }
        }
    }
}

/// Said in the reply of a forced removal: who is left waiting.
pub(super) fn forced_note(users: &[String]) -> String {
    if users.is_empty() {
        String::new()
    } else {
        format!(" (forced: {} left waiting for it)", users.join(", "))
    }
}

/// A deploy, undeploy or promote reply about `name`.
pub(super) fn deploy_reply(
    name: &str,
    result: DeployResult,
    message: String,
    version: Option<String>,
) -> DeployModelResponse {
    DeployModelResponse {
        result,
        message,
        name: name.to_string(),
        version,
        unchanged: false,
        revision: None,
    }
}

/// What `app` runs and wants on a lattice without hosts: none of its spreadscalers' instances (a
/// daemonscaler wants nothing where no host matches; a component of a shared application is
/// that application's to run).
pub(super) fn hostless_instances(app: &Application) -> Instances {
    let target = app
        .components
        .iter()
        .filter(|c| matches!(c.source, Source::Image(_)))
        .flat_map(|c| &c.scalers)
        .map(|s| match s {
            Scaler::Spread(spec) => u64::from(spec.instances),
            Scaler::Daemon(_) => 0,
        })
        .sum();
    Instances::new(0, target)
}
