//! The workload commands of a simulated host: `component.scale`, `component.update`,
//! `provider.start`, `provider.stop`, with the quirks of a real 1.9.2 host (double
//! `component_scaled` on first start, annotations replaced by every scale, the old image kept on
//! a scale to another ref, a spurious `component_scaled(new ref, 0)` after an update, provider
//! refs normalised, failures reported asynchronously as events).

use serde::Deserialize;
use std::sync::Arc;
use wadm_protocol::ctl::{StopProviderRequest, UpdateComponentRequest};
use wadm_protocol::event::{
    ComponentScaled, HealthCheck, ProviderStartFailed, ProviderStarted, ProviderStopped,
};
use wadm_protocol::{StringMap, normalize_provider_ref};

use crate::faults::FaultSwitches;
use crate::host::{HostState, RunningComponent, RunningProvider};
use crate::outcome::{Outcome, parse};
use crate::store::LatticeStore;

/// `component.scale` as a real host decodes it: an absent (or misspelt) `count` means 0.
#[derive(Deserialize)]
struct ScaleBody {
    component_ref: String,
    component_id: String,
    #[serde(default)]
    count: u32,
    #[serde(default)]
    host_id: String,
    #[serde(default)]
    annotations: StringMap,
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    allow_update: bool,
}

/// `provider.start`, tolerant of an absent `host_id`.
#[derive(Deserialize)]
struct StartProviderBody {
    provider_id: String,
    provider_ref: String,
    #[serde(default)]
    host_id: String,
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    annotations: StringMap,
}

impl HostState {
    /// `component.scale.{host}`.
    pub(crate) fn scale(
        &mut self,
        body: &[u8],
        store: &LatticeStore,
        faults: &FaultSwitches,
    ) -> Outcome {
        let req: ScaleBody = match parse(body, "component scale") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let event = |image_ref: &str, count: u32, annotations: &StringMap| ComponentScaled {
            component_id: req.component_id.to_string(),
            host_id: req.host_id.to_string(),
            image_ref: image_ref.to_string(),
            max_instances: count,
            annotations: annotations.clone(),
            claims: None,
            error: None,
        };
        let failed = |error: String| {
            let mut e = event(&req.component_ref, req.count, &req.annotations);
            e.error = Some(error);
            Outcome::ok().event("component_scale_failed", e)
        };
        if faults.reject_scales() {
            return failed("simulated fault: scale rejected".to_string());
        }
        if req.count > 0 && faults.fails_image(&req.component_ref) {
            return failed(format!("simulated fault: {} fails to start", req.component_ref));
        }
        let missing = store.missing_configs(&req.config);
        if req.count > 0 && !missing.is_empty() {
            return failed(format!("configuration not found: {}", missing.join(", ")));
        }
        let Some(running) = self.components.get_mut(&*req.component_id) else {
            if req.count == 0 {
                return Outcome::ok()
                    .event("component_scaled", event(&req.component_ref, 0, &req.annotations));
            }
            self.components.insert(
                req.component_id.to_string(),
                RunningComponent {
                    image_ref: req.component_ref.to_string(),
                    count: req.count,
                    annotations: req.annotations.clone(),
                    config: req.config.clone(),
                },
            );
            // A first start reports itself twice.
            let scaled = event(&req.component_ref, req.count, &req.annotations);
            return Outcome::ok()
                .event("component_scaled", scaled.clone())
                .event("component_scaled", scaled);
        };
        if req.count == 0 {
            let image_ref = running.image_ref.clone();
            self.components.remove(&*req.component_id);
            return Outcome::ok().event("component_scaled", event(&image_ref, 0, &req.annotations));
        }
        let mut outcome = Outcome::ok();
        if running.image_ref != req.component_ref {
            if req.allow_update {
                running.image_ref = req.component_ref.to_string();
            } else if let Some(reply) = outcome.reply.as_mut() {
                reply.message = format!(
                    "component {} is already running with a different image reference `{}`; \
                     keeping it (use component.update to change it)",
                    req.component_id, running.image_ref
                );
            }
        }
        running.count = req.count;
        running.annotations = req.annotations.clone();
        running.config = req.config.clone();
        let scaled = event(&running.image_ref, running.count, &running.annotations);
        outcome.event("component_scaled", scaled)
    }

    /// `component.update.{host}`: new image, then a spurious `component_scaled(new ref, 0)`. An
    /// image that fails to start ([`FaultSwitches::fails_image`]) is accepted, then
    /// `component_scale_failed` follows and the old image keeps running.
    pub(crate) fn update(&mut self, body: &[u8], faults: &FaultSwitches) -> Outcome {
        let req: UpdateComponentRequest = match parse(body, "component update") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let Some(running) = self.components.get_mut(&*req.component_id) else {
            return Outcome::error(format!(
                "component {} is not running on host {}",
                req.component_id, self.id
            ));
        };
        if *running.image_ref == *req.new_component_ref {
            return Outcome::reply(wadm_protocol::ctl::CtlReply {
                success: true,
                message: format!("component {} already runs that image", req.component_id),
                response: None,
            });
        }
        if faults.fails_image(&req.new_component_ref) {
            let failed = ComponentScaled {
                component_id: req.component_id.to_string(),
                host_id: req.host_id.to_string(),
                image_ref: req.new_component_ref.to_string(),
                max_instances: running.count,
                annotations: running.annotations.clone(),
                claims: None,
                error: Some(format!("simulated fault: {} fails to start", req.new_component_ref)),
            };
            return Outcome::ok().event("component_scale_failed", failed);
        }
        running.image_ref = req.new_component_ref.to_string();
        if let Some(annotations) = req.annotations {
            running.annotations = Arc::unwrap_or_clone(annotations);
        }
        let scaled = ComponentScaled {
            component_id: req.component_id.to_string(),
            host_id: req.host_id.to_string(),
            image_ref: running.image_ref.clone(),
            max_instances: running.count,
            annotations: running.annotations.clone(),
            claims: None,
            error: None,
        };
        let spurious = ComponentScaled { max_instances: 0, ..scaled.clone() };
        Outcome::ok().event("component_scaled", scaled).event("component_scaled", spurious)
    }

    /// `provider.start.{host}`: refuses an id already running; the ref comes back normalised.
    pub(crate) fn start_provider(
        &mut self,
        body: &[u8],
        store: &LatticeStore,
        faults: &FaultSwitches,
    ) -> Outcome {
        let req: StartProviderBody = match parse(body, "provider start") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        if self.providers.contains_key(&*req.provider_id) {
            return Outcome::error(format!(
                "provider {} is already running on host {}",
                req.provider_id, self.id
            ));
        }
        let failed = |error: String| {
            Outcome::ok().event(
                "provider_start_failed",
                ProviderStartFailed {
                    provider_id: req.provider_id.to_string(),
                    provider_ref: req.provider_ref.to_string(),
                    host_id: req.host_id.to_string(),
                    error,
                },
            )
        };
        if faults.reject_provider_starts() {
            return failed("simulated fault: provider start rejected".to_string());
        }
        if faults.fails_image(&req.provider_ref) {
            return failed(format!("simulated fault: {} fails to start", req.provider_ref));
        }
        let missing = store.missing_configs(&req.config);
        if !missing.is_empty() {
            return failed(format!("configuration not found: {}", missing.join(", ")));
        }
        let image_ref = normalize_provider_ref(&req.provider_ref).to_string();
        let healthy =
            !(faults.unhealthy_image(&req.provider_ref) || faults.unhealthy_image(&image_ref));
        self.providers.insert(
            req.provider_id.to_string(),
            RunningProvider {
                image_ref: image_ref.clone(),
                annotations: req.annotations.clone(),
                config: req.config.clone(),
                healthy,
            },
        );
        let health =
            HealthCheck { provider_id: req.provider_id.to_string(), host_id: self.id.clone() };
        Outcome::ok()
            .event(
                "provider_started",
                ProviderStarted {
                    provider_id: req.provider_id.to_string(),
                    host_id: req.host_id.to_string(),
                    image_ref,
                    annotations: req.annotations.clone(),
                    claims: None,
                },
            )
            .event(if healthy { "health_check_passed" } else { "health_check_failed" }, health)
    }

    /// `provider.stop.{host}`: refuses an id that is not running.
    pub(crate) fn stop_provider(&mut self, body: &[u8]) -> Outcome {
        let req: StopProviderRequest = match parse(body, "provider stop") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let Some(stopped) = self.providers.remove(&*req.provider_id) else {
            return Outcome::error(format!(
                "provider {} is not running on host {}",
                req.provider_id, self.id
            ));
        };
        Outcome::ok().event(
            "provider_stopped",
            ProviderStopped {
                provider_id: req.provider_id.to_string(),
                host_id: req.host_id.to_string(),
                annotations: stopped.annotations,
                reason: "normal".to_string(),
            },
        )
    }
}
