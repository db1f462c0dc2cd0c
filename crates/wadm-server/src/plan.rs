//! `model.plan`: what deploying a version (stored, or a manifest sent with the request) would do
//! now — the spec's differences from the deployed version and the control requests a deploy
//! would send, host by host, given the observed lattice.
//!
//! [`plan_deploy`] decides it, purely, with the same scheduler the runtime uses, over the same
//! desired state a deploy would give the runtime (every deployed application, this one at the
//! planned version, its deployed version beside it so what the new one drops is removed). Orders
//! already in flight are not counted: in a settled lattice the requests listed are exactly those a
//! deploy sends. The server's `Planner` gathers the inputs from the stores.

use wadm_lattice::{LatticeState, Timestamp};
use wadm_model::api::{GetResult, PlanRequest, PlanResponse, PlannedRequest};
use wadm_model::{Application, diff::diff};
use wadm_scheduler::command::reason;
use wadm_scheduler::{DeployedApp, Reconciler, ScalerFactory, UndeployedApp};

use crate::manifest::{format_of, parse_request};
use crate::view::ObservedState;
use wadm_store::kv::Kv;
use wadm_store::manifest::parse_stored;
use wadm_store::manifest::{LATEST, ManifestStore};

/// One version of an application: its name, its normal form as stored and the parsed spec.
#[derive(Debug, Clone)]
pub struct Version {
    /// The version's name (`metadata.annotations.version`; empty for a manifest without one).
    pub version: String,
    /// The manifest in its stored normal form (JSON), what spec changes are computed from.
    pub stored: serde_json::Value,
    /// The validated application the scheduler plans with.
    pub spec: Application,
}

/// Everything [`plan_deploy`] decides from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The lattice the application is deployed in.
    pub lattice: &'a str,
    /// The application's name.
    pub name: &'a str,
    /// The version planned.
    pub candidate: Version,
    /// The version deployed now.
    pub deployed: Option<Version>,
    /// The application's deploy generation in the store now.
    pub generation: u64,
    /// Every other deployed application of the lattice.
    pub others: Vec<DeployedApp>,
    /// What wadm observes the lattice to run now (the runtime's stored state).
    pub observed: &'a LatticeState,
    /// The current time (ms since the Unix epoch); the plan reads no clock itself.
    pub now: Timestamp,
    /// The scalers the runtime builds (see [`ScalerFactory`]).
    pub scalers: &'a ScalerFactory,
}

/// The plan of deploying `input.candidate`.
pub fn plan_deploy(input: PlanInput<'_>) -> PlanResponse {
    let PlanInput {
        lattice,
        name,
        candidate,
        deployed,
        generation,
        others,
        observed,
        now,
        scalers,
    } = input;
    let empty = serde_json::Value::Object(Default::default());
    let before = deployed.as_ref().map_or(&empty, |d| &d.stored);
    // A manifest without a version is compared by content alone (a deploy of it that equals the
    // deployed version stores nothing new).
    let unversioned = candidate.version.is_empty();
    let spec_changes = if unversioned {
        diff(&without_version(before), &without_version(&candidate.stored))
    } else {
        diff(before, &candidate.stored)
    };
    // The runtime's generation for a deploy that bumps the store's (see the runtime's record).
    let next = (generation + 1).saturating_mul(2);
    let mut desired = others;
    desired.push(DeployedApp {
        lattice: lattice.to_string(),
        app: candidate.spec.clone(),
        version: candidate.version.clone(),
        generation: next,
        promoted: false,
    });
    let undeployed: Vec<UndeployedApp> = deployed
        .as_ref()
        .filter(|d| d.version != candidate.version)
        .map(|d| UndeployedApp {
            name: name.to_string(),
            generation: next,
            last_spec: Some(d.spec.clone()),
        })
        .into_iter()
        .collect();
    let reconciler = Reconciler::with_scalers(lattice, desired, undeployed, scalers);
    let scoped = reconciler.reconcile_apps(observed, now, [name]);
    let requests: Vec<PlannedRequest> = scoped
        .plan
        .commands
        .iter()
        .map(|c| PlannedRequest {
            kind: c.command.kind().to_string(),
            host_id: c.command.target_host().map(str::to_string),
            subject: c.command.subject(lattice),
            body: c.command.body(),
            reason: reason(&c.command, observed),
        })
        .collect();
    let deployed_version = deployed.as_ref().map(|d| d.version.clone());
    let other_version = match &deployed_version {
        Some(deployed) => !unversioned && *deployed != candidate.version,
        None => true,
    };
    let changed = !requests.is_empty() || !spec_changes.is_empty() || other_version;
    let message = match (changed, requests.len()) {
        (false, _) => format!("{name}: no change"),
        (true, 0) => format!("{name} {}: spec changes, no request to send now", candidate.version),
        (true, n) => format!("{name} {}: {n} request(s) to send", candidate.version),
    };
    PlanResponse {
        result: GetResult::Success,
        message,
        name: name.to_string(),
        version: candidate.version,
        deployed_version,
        changed,
        spec_changes,
        requests,
    }
}

/// `manifest` without its `metadata.annotations.version`.
fn without_version(manifest: &serde_json::Value) -> serde_json::Value {
    let mut copy = manifest.clone();
    if let Some(annotations) =
        copy.pointer_mut("/metadata/annotations").and_then(serde_json::Value::as_object_mut)
    {
        annotations.remove(wadm_model::VERSION_ANNOTATION);
    }
    copy
}

/// Gathers a plan's inputs from the manifest store and the observed state.
pub(crate) struct Planner<'a, K> {
    pub(crate) store: &'a ManifestStore<K>,
    pub(crate) observed: &'a ObservedState,
    pub(crate) max_manifest_bytes: usize,
    /// The scalers the runtime builds.
    pub(crate) scalers: &'a ScalerFactory,
}

impl<K: Kv> Planner<'_, K> {
    /// Answer `model.plan[.{name}]`: `name` plans a stored version named in `body`
    /// ([`PlanRequest`]); without a name, `body` is a manifest to plan.
    pub(crate) async fn plan(
        &self,
        lattice: &str,
        name: Option<&str>,
        body: &[u8],
        content_type: Option<&str>,
    ) -> PlanResponse {
        let error = |name: &str, m: String| PlanResponse::error(GetResult::Error, name, m);
        let (name, candidate) = match name {
            Some(name) => {
                let request: PlanRequest = if body.iter().all(u8::is_ascii_whitespace) {
                    PlanRequest::default()
                } else {
                    match serde_json::from_slice(body) {
                        Ok(r) => r,
                        Err(e) => return error(name, format!("invalid request body: {e}")),
                    }
                };
                let wanted = request.version.filter(|v| v != LATEST);
                match self.stored(lattice, name, wanted.as_deref()).await {
                    Ok(Some(v)) => (name.to_string(), v),
                    Ok(None) => {
                        let what = match &wanted {
                            Some(v) => format!("version {v} of application {name} not found"),
                            None => format!("application {name} not found"),
                        };
                        return PlanResponse::error(GetResult::NotFound, name, what);
                    }
                    Err(e) => return error(name, e),
                }
            }
            None => {
                let parsed =
                    match parse_request(body, format_of(content_type), self.max_manifest_bytes) {
                        Ok(p) => p,
                        Err(message) => return error("", message),
                    };
                let manifest = parsed.manifest;
                let name = manifest.name().to_string();
                let version = manifest.version().unwrap_or_default().to_string();
                let stored = match serde_json::to_value(&manifest) {
                    Ok(v) => v,
                    Err(e) => return error(&name, format!("cannot read manifest: {e}")),
                };
                match parse_stored(&stored) {
                    Ok(spec) => (name, Version { version, stored, spec }),
                    Err(e) => return error(&name, e),
                }
            }
        };
        match self.gather(lattice, &name, candidate).await {
            Ok(input) => plan_deploy(PlanInput {
                lattice,
                name: &name,
                observed: &input.observed,
                now: wadm_store::clock::now_ms(),
                candidate: input.candidate,
                deployed: input.deployed,
                generation: input.generation,
                others: input.others,
                scalers: self.scalers,
            }),
            Err(e) => error(&name, e),
        }
    }

    /// A stored version (`None`: the current one), parsed.
    async fn stored(
        &self,
        lattice: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<Version>, String> {
        let Some(found) =
            self.store.get(lattice, name, version).await.map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let spec = parse_stored(&found.manifest).map_err(|e| {
            format!("stored version {} of {name} is unreadable: {e}", found.version)
        })?;
        Ok(Some(Version { version: found.version, stored: found.manifest, spec }))
    }

    async fn gather(
        &self,
        lattice: &str,
        name: &str,
        candidate: Version,
    ) -> Result<Gathered, String> {
        let mut deployed = None;
        let mut generation = 0;
        let mut others = Vec::new();
        for index in self.store.list(lattice).await.map_err(|e| e.to_string())? {
            let Some(version) = index.deployed.clone() else {
                if index.name == name {
                    generation = index.generation;
                }
                continue;
            };
            let Some(v) = self.stored(lattice, &index.name, Some(&version)).await? else {
                continue;
            };
            if index.name == name {
                generation = index.generation;
                deployed = Some(v);
            } else {
                others.push(DeployedApp {
                    lattice: lattice.to_string(),
                    app: v.spec,
                    version,
                    generation: index.generation.saturating_mul(2),
                    promoted: index.is_promoted(),
                });
            }
        }
        let observed = self.observed.load(lattice, wadm_store::Reads::Leader).await?;
        Ok(Gathered { candidate, deployed, generation, others, observed })
    }
}

struct Gathered {
    candidate: Version,
    deployed: Option<Version>,
    generation: u64,
    others: Vec<DeployedApp>,
    observed: LatticeState,
}

#[cfg(test)]
mod tests {
    use wadm_lattice::HostState;
    use wadm_scheduler::apply::apply_plan;

    use super::*;

    fn version(v: &str, image: &str, instances: u32) -> Version {
        let yaml = format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: demo\n  \
             annotations:\n    version: {v}\nspec:\n  components:\n    - name: echo\n      \
             type: component\n      properties:\n        image: {image}\n      traits:\n        \
             - type: spreadscaler\n          properties:\n            instances: {instances}\n"
        );
        let parsed = parse_request(yaml.as_bytes(), wadm_model::Format::Yaml, 1 << 20)
            .expect("valid manifest");
        let stored = serde_json::to_value(&parsed.manifest).unwrap();
        let spec = parse_stored(&stored).unwrap();
        Version { version: v.to_string(), stored, spec }
    }

    fn lattice(hosts: usize) -> LatticeState {
        let mut state = LatticeState { lattice: "default".into(), ..Default::default() };
        for i in 0..hosts {
            let id = format!("N{i:02}");
            state.hosts.insert(id.clone(), HostState { id, ..Default::default() });
        }
        state
    }

    static BUILTIN: std::sync::LazyLock<ScalerFactory> =
        std::sync::LazyLock::new(ScalerFactory::builtin);

    fn input<'a>(
        observed: &'a LatticeState,
        candidate: Version,
        deployed: Option<Version>,
    ) -> PlanInput<'a> {
        PlanInput {
            lattice: "default",
            name: "demo",
            candidate,
            deployed,
            generation: 1,
            others: Vec::new(),
            observed,
            now: 0,
            scalers: &BUILTIN,
        }
    }

    #[test]
    fn first_deploy_lists_every_placement_and_the_whole_spec() {
        let observed = lattice(3);
        let plan = plan_deploy(input(&observed, version("v1", "img:1", 3), None));
        assert!(plan.changed);
        assert_eq!(plan.requests.len(), 3, "{plan:?}");
        assert!(plan.requests.iter().all(|r| r.kind == "scale_component"));
        let hosts: std::collections::BTreeSet<_> =
            plan.requests.iter().filter_map(|r| r.host_id.clone()).collect();
        assert_eq!(hosts.len(), 3, "one per host");
        assert!(plan.requests[0].subject.starts_with("wasmbus.ctl.v1.default.component.scale.N"));
        assert_eq!(plan.spec_changes.len(), 4, "{:?}", plan.spec_changes);
    }

    #[test]
    fn a_converged_deployed_version_plans_nothing_and_an_upgrade_plans_updates() {
        let mut observed = lattice(2);
        let v1 = version("v1", "img:1", 2);
        let first = plan_deploy(input(&observed, v1.clone(), None));
        // Apply what the first deploy sends, as hosts would.
        let reconciler = Reconciler::new(
            "default",
            vec![DeployedApp {
                lattice: "default".into(),
                app: v1.spec.clone(),
                version: "v1".into(),
                generation: 4,
                promoted: false,
            }],
            vec![],
        );
        let sent = reconciler.reconcile(&observed, 0);
        apply_plan(&mut observed, &sent);
        assert_eq!(first.requests.len(), 2);
        let same = plan_deploy(input(&observed, v1.clone(), Some(v1.clone())));
        assert!(!same.changed, "{same:?}");
        assert!(same.requests.is_empty() && same.spec_changes.is_empty());
        assert!(same.message.ends_with("no change"));

        // The same content without a version (a versionless file): no change either.
        let stored = without_version(&v1.stored);
        let unversioned =
            Version { version: String::new(), spec: parse_stored(&stored).unwrap(), stored };
        let same = plan_deploy(input(&observed, unversioned, Some(v1.clone())));
        assert!(!same.changed, "{same:?}");

        let v2 = version("v2", "img:2", 2);
        let upgrade = plan_deploy(input(&observed, v2, Some(v1)));
        let kinds: Vec<&str> = upgrade.requests.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["update_component", "update_component"], "{upgrade:?}");
        let paths: Vec<String> = upgrade.spec_changes.iter().map(|c| c.path.clone()).collect();
        assert!(paths.contains(&"spec.components[name=echo].properties.image".to_string()));
        assert!(upgrade.requests[0].reason.contains("new image img:2"));
    }
}
