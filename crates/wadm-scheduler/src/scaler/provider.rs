//! Provider scalers: `spreadscaler` and `daemonscaler` on a `type: capability` entry (an entry
//! without a scaler trait already carries an implicit spread of one).

use std::collections::BTreeSet;
use std::sync::Arc;

use wadm_lattice::ProviderHealth;
use wadm_model::{Rollout, StatusInfo, StatusType};
use wadm_protocol::normalize_provider_ref;

use super::component::{Pacing, Progress, rollout_status, shortfall_status};
use super::placement::{self, Mode, PriorTrait, Resource, Unit};
use super::{
    Annotations, Evaluation, Placer, ProviderWant, Scaler, ScalerInfo, Want, WorkloadTrait,
};
use crate::context::{Context, HostIx};

/// Runs one provider according to one scaler trait: at most one per host.
#[derive(Debug, Clone)]
pub(crate) struct ProviderScaler {
    /// Identity and spreads, shared with the wants.
    pub placer: Arc<Placer>,
    pub mode: Mode,
    pub provider_id: Arc<str>,
    pub image_ref: Arc<str>,
    pub config: Arc<[String]>,
    pub external_config: Vec<String>,
    /// The workload's scaler traits before this one, whose hosts this one leaves alone.
    pub priors: Vec<PriorTrait>,
    /// How a new image replaces the old one on the hosts (`None`: everywhere at once).
    pub rollout: Option<Rollout>,
    /// Whether the deployment was promoted past the rollout's canary stage.
    pub promoted: bool,
}

impl ProviderScaler {
    /// The same scaler, pacing image changes by `rollout` (promoted past its canary stage or
    /// not).
    pub(crate) fn with_rollout(mut self, rollout: Option<Rollout>, promoted: bool) -> Self {
        self.rollout = rollout;
        self.promoted = promoted;
        self
    }

    fn want(&self, host: HostIx, annotations: Annotations) -> ProviderWant {
        ProviderWant {
            host,
            provider_id: self.provider_id.clone(),
            image_ref: self.image_ref.clone(),
            annotations,
            config: self.config.clone(),
        }
    }
}

impl ProviderScaler {
    /// A scaler for one scaler trait of a provider.
    pub(crate) fn new(workload: WorkloadTrait<'_>) -> Self {
        let WorkloadTrait { info, mode, id, image_ref, config, external_config, spec, priors } =
            workload;
        Self {
            placer: Arc::new(Placer::new(info, spec)),
            mode,
            provider_id: Arc::from(id),
            image_ref: Arc::from(image_ref),
            config: super::config_list(config),
            external_config,
            priors,
            rollout: None,
            promoted: false,
        }
    }
}

impl Scaler for ProviderScaler {
    fn info(&self) -> &ScalerInfo {
        &self.placer.info
    }

    fn into_info(self: Box<Self>) -> ScalerInfo {
        Placer::into_info(self.placer)
    }

    fn evaluate(&self, ctx: &Context<'_>) -> Evaluation {
        let info = &self.placer.info;
        let missing = ctx.missing_configs(&self.external_config);
        let res = Resource {
            unit: Unit::Provider,
            id: &self.provider_id,
            image_ref: &self.image_ref,
            placer: (&info.app, &info.id),
            components: None,
            in_place: self.rollout.is_some(),
        };
        let exclude = placement::prior_hosts(ctx, res, &self.priors);
        let placements = placement::place(ctx, res, self.mode, &self.placer.spec, &exclude);
        let mut wanted: Vec<(HostIx, ProviderWant)> = Vec::new();
        for (spread, placed) in placements.iter().enumerate() {
            for (h, _) in &placed.hosts {
                let annotations = Annotations::Placement { placer: self.placer.clone(), spread };
                wanted.push((*h, self.want(*h, annotations)));
            }
        }
        if !missing.is_empty() {
            let instances = self.progress(ctx, &wanted).0.instances();
            // Keep what this scaler runs; start nothing new.
            let wants = ctx
                .provider_instances(&self.provider_id)
                .iter()
                .filter(|o| o.tag.placed_by(&info.app, &info.id))
                .map(|o| {
                    let annotations = Annotations::Exact(Arc::new(o.instance.annotations.clone()));
                    Want::Provider(self.want(o.host, annotations))
                })
                .collect();
            return Evaluation {
                wants,
                status: super::waiting_for_config(&missing).with_instances(instances),
                wake_at: None,
                rollout: None,
                short_of_capacity: false,
            };
        }
        let policy = self.rollout.map(|mut policy| {
            if self.promoted {
                policy.canary = None;
            }
            policy
        });
        let pacing = policy.map(|policy| self.pace(ctx, policy, &mut wanted));
        let status = match shortfall_status(ctx, &placements) {
            Some(status) => status.with_instances(self.progress(ctx, &wanted).0.instances()),
            None => self.status(ctx, &wanted),
        };
        let (status, wake_at, rollout) = match pacing {
            Some(p) => rollout_status(status, p, &self.image_ref, wanted.len()),
            None => (status, None, None),
        };
        Evaluation {
            wants: wanted.into_iter().map(|(_, w)| Want::Provider(w)).collect(),
            status,
            wake_at,
            rollout,
            short_of_capacity: placements.iter().any(|p| p.short_of_capacity),
        }
    }
}

impl ProviderScaler {
    /// Pace a change of image as [`super::component::pace`] does for components: a host running
    /// ours with another image is replaced (stop, then start) only while fewer than
    /// `max_parallel` hosts are changing (stopped and not started again, the new image ordered
    /// and not confirmed, confirmed less than `min_healthy_time` ago, or reporting unhealthy)
    /// and, before promotion, within the canary stage; the others keep their old provider for
    /// now.
    fn pace(
        &self,
        ctx: &Context<'_>,
        policy: Rollout,
        wanted: &mut [(HostIx, ProviderWant)],
    ) -> Pacing {
        let want_ref = normalize_provider_ref(&self.image_ref);
        // A provider host changing is a host without a serving provider: `max_unavailable` caps
        // them too.
        let mut pacing = Pacing::new(Rollout { max_parallel: policy.max_replacing(), ..policy });
        let info = &self.placer.info;
        let ours = |o: &&crate::context::Observed<'_, wadm_lattice::ProviderInstance>| {
            o.tag.placed_by(&info.app, &info.id) || o.tag.app == Some(&*info.app)
        };
        for o in ctx.provider_instances(&self.provider_id).iter().filter(ours) {
            let p = o.instance;
            if normalize_provider_ref(&p.image_ref) == want_ref {
                pacing.count(policy, p.since, p.health == ProviderHealth::Unhealthy, ctx.now());
            }
        }
        // A wanted host that runs no provider of ours yet is changing too: its start is still to
        // come (after a replacement's stop, the start waits for the stop to show).
        for (h, _) in wanted.iter() {
            if ctx.provider_on(*h, &self.provider_id).is_none_or(|o| !o.tag.ours) {
                pacing.changing += 1;
            }
        }
        let mut budget = pacing.budget();
        for (h, w) in wanted.iter_mut() {
            let Some(o) = ctx.provider_on(*h, &self.provider_id).filter(|o| o.tag.ours) else {
                continue;
            };
            if normalize_provider_ref(&o.instance.image_ref) == want_ref {
                continue;
            }
            if budget > 0 {
                budget -= 1;
                continue;
            }
            // Keep the old provider exactly as it runs: nothing is sent to this host yet.
            w.image_ref = Arc::from(o.instance.image_ref.as_str());
            w.annotations = Annotations::Exact(Arc::new(o.instance.annotations.clone()));
            pacing.waiting += 1;
        }
        pacing
    }

    /// Hosts running the wanted provider of hosts that are to (a spreadscaler wants its
    /// `instances` even where they cannot be placed), and whether any of them reports unhealthy.
    fn progress(&self, ctx: &Context<'_>, wanted: &[(HostIx, ProviderWant)]) -> (Progress, bool) {
        let want_ref = normalize_provider_ref(&self.image_ref);
        let mut unhealthy = false;
        let mut progress = Progress { running: 0, wanted: wanted.len() as u64 };
        for (h, _) in wanted {
            match ctx.provider_on(*h, &self.provider_id).map(|o| o.instance) {
                Some(p) if normalize_provider_ref(&p.image_ref) == want_ref => {
                    progress.running += 1;
                    unhealthy |= p.health == ProviderHealth::Unhealthy;
                }
                _ => {}
            }
        }
        if self.mode == Mode::Spread {
            progress.wanted = progress.wanted.max(u64::from(self.placer.spec.instances));
        }
        (progress, unhealthy)
    }

    fn status(&self, ctx: &Context<'_>, wanted: &[(HostIx, ProviderWant)]) -> StatusInfo {
        let (progress, unhealthy) = self.progress(ctx, wanted);
        let all_there = progress.running == wanted.len() as u64;
        let wanted_hosts: BTreeSet<HostIx> = wanted.iter().map(|(h, _)| *h).collect();
        let info = &self.placer.info;
        let extras = ctx
            .provider_instances(&self.provider_id)
            .iter()
            .any(|o| !wanted_hosts.contains(&o.host) && o.tag.placed_by(&info.app, &info.id));
        if !all_there || extras {
            progress.reconciling(ctx)
        } else if unhealthy {
            StatusInfo::new(
                StatusType::Unhealthy,
                format!("provider {} reports unhealthy", self.provider_id),
            )
            .with_instances(progress.instances())
        } else {
            progress.deployed(ctx)
        }
    }
}
