//! Component scalers: `spreadscaler` and `daemonscaler` on a `type: component` entry.

use std::collections::BTreeSet;
use std::sync::Arc;

use wadm_lattice::{ComponentInstance, NOT_CONFIRMED, Timestamp};
use wadm_model::{Instances, Rollout, StatusInfo, StatusType};

use super::placement::{self, Mode, PriorTrait, Resource, Shortfall, SpreadPlacement, Unit};
use super::{
    Annotations, ComponentWant, Evaluation, Placer, Scaler, ScalerInfo, Want, Wants, WorkloadTrait,
};
use crate::context::{Context, HostIx, Observed, Tag};

/// Runs one component according to one scaler trait.
#[derive(Debug, Clone)]
pub(crate) struct ComponentScaler {
    /// Identity and spreads, shared with the wants.
    pub placer: Arc<Placer>,
    pub mode: Mode,
    pub component_id: Arc<str>,
    pub image_ref: Arc<str>,
    /// Config and secret config names passed to the host, in manifest order.
    pub config: Arc<[String]>,
    /// Names of configs that must already exist (not owned by the application).
    pub external_config: Vec<String>,
    /// The workload's scaler traits before this one, whose hosts this one leaves alone.
    pub priors: Vec<PriorTrait>,
    /// Ids of the workload's other scaler traits (their instances are not this one's extras).
    pub siblings: Vec<String>,
    /// How a new image replaces the old one on the hosts (`None`: everywhere at once).
    pub rollout: Option<Rollout>,
    /// Whether the deployment was promoted past the rollout's canary stage.
    pub promoted: bool,
}

impl ComponentScaler {
    /// While waiting: keep exactly what runs (ours) on hosts the placement still wants, so nothing
    /// starts or changes; instances on hosts it no longer wants are stopped (a stop needs no
    /// config).
    fn hold(
        &self,
        observed: &[Observed<'_, ComponentInstance>],
        placed: &BTreeSet<HostIx>,
    ) -> Wants {
        observed
            .iter()
            .filter(|o| o.tag.ours && placed.contains(&o.host))
            .map(|o| {
                let c = o.instance;
                Want::Component(ComponentWant {
                    host: o.host,
                    component_id: Arc::from(c.id.as_str()),
                    image_ref: Arc::from(c.image_ref.as_str()),
                    count: c.count,
                    annotations: Annotations::Exact(Arc::new(c.annotations.clone())),
                    config: self.config.clone(),
                })
            })
            .collect()
    }
}

impl ComponentScaler {
    /// A scaler for one scaler trait of a component; `siblings` are the ids of the component's
    /// other scaler traits.
    pub(crate) fn new(workload: WorkloadTrait<'_>, siblings: Vec<String>) -> Self {
        let WorkloadTrait { info, mode, id, image_ref, config, external_config, spec, priors } =
            workload;
        Self {
            placer: Arc::new(Placer::new(info, spec)),
            mode,
            component_id: Arc::from(id),
            image_ref: Arc::from(image_ref),
            config: super::config_list(config),
            external_config,
            priors,
            siblings,
            rollout: None,
            promoted: false,
        }
    }

    /// The same scaler for a deployment promoted past its canary stage (or not).
    pub(crate) fn promoted(mut self, promoted: bool) -> Self {
        self.promoted = promoted;
        self
    }

    /// The same scaler, pacing image changes by `rollout`.
    pub(crate) fn with_rollout(mut self, rollout: Option<Rollout>) -> Self {
        self.rollout = rollout;
        self
    }
}

impl Scaler for ComponentScaler {
    fn info(&self) -> &ScalerInfo {
        &self.placer.info
    }

    fn into_info(self: Box<Self>) -> ScalerInfo {
        Placer::into_info(self.placer)
    }

    fn evaluate(&self, ctx: &Context<'_>) -> Evaluation {
        let missing = ctx.missing_configs(&self.external_config);
        // Looked up once, for placement and status.
        let observed = ctx.component_instances(&self.component_id);
        let res = Resource {
            unit: Unit::Component,
            id: &self.component_id,
            image_ref: &self.image_ref,
            placer: (&self.placer.info.app, &self.placer.info.id),
            components: Some(observed),
            in_place: false,
        };
        let exclude = placement::prior_hosts(ctx, res, &self.priors);
        let placements = placement::place(ctx, res, self.mode, &self.placer.spec, &exclude);
        let mut wants = Wants::with_capacity(placements.iter().map(|p| p.hosts.len()).sum());
        for (spread, placed) in placements.iter().enumerate() {
            for (h, count) in &placed.hosts {
                wants.push(Want::Component(ComponentWant {
                    host: *h,
                    component_id: self.component_id.clone(),
                    image_ref: self.image_ref.clone(),
                    count: *count,
                    annotations: Annotations::Placement { placer: self.placer.clone(), spread },
                    config: self.config.clone(),
                }));
            }
        }
        if !missing.is_empty() {
            let placed = placements.iter().flat_map(|p| p.hosts.iter().map(|(h, _)| *h)).collect();
            let (progress, _) = self.progress(observed, &placements, &wants);
            return Evaluation {
                wants: self.hold(observed, &placed),
                status: super::waiting_for_config(&missing).with_instances(progress.instances()),
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
        let pacing = policy.map(|policy| pace(ctx, policy, &self.image_ref, observed, &mut wants));
        let status = self.status(ctx, observed, &placements, &wants);
        let (status, wake_at, rollout) = match pacing {
            Some(p) => rollout_status(status, p, &self.image_ref, wants.len()),
            None => (status, None, None),
        };
        let short_of_capacity = placements.iter().any(|p| p.short_of_capacity);
        Evaluation { wants, status, wake_at, rollout, short_of_capacity }
    }
}

impl ComponentScaler {
    fn status(
        &self,
        ctx: &Context<'_>,
        observed: &[Observed<'_, ComponentInstance>],
        placements: &[SpreadPlacement],
        wants: &[Want],
    ) -> StatusInfo {
        let (progress, all_there) = self.progress(observed, placements, wants);
        if let Some(status) = shortfall_status(ctx, placements) {
            return status.with_instances(progress.instances());
        }
        let sibling =
            |tag: &Tag<'_>| tag.scaler.is_some_and(|id| self.siblings.iter().any(|s| s == id));
        // Each spread's hosts are in host order.
        let is_placed = |h: HostIx| {
            placements.iter().any(|p| p.hosts.binary_search_by_key(&h, |x| x.0).is_ok())
        };
        let extras = observed.iter().any(|o| o.tag.ours && !sibling(&o.tag) && !is_placed(o.host));
        if all_there && !extras { progress.deployed(ctx) } else { progress.reconciling(ctx) }
    }

    /// Instances running as wanted of instances wanted (a spreadscaler wants its `instances`
    /// even where they cannot be placed), and whether every want is met exactly.
    fn progress(
        &self,
        observed: &[Observed<'_, ComponentInstance>],
        placements: &[SpreadPlacement],
        wants: &[Want],
    ) -> (Progress, bool) {
        // Wants were pushed in placement order: the i-th placed host is the i-th want's host.
        let placed = placements.iter().flat_map(|p| p.hosts.iter().map(|(h, _)| *h));
        // Every want is for this component: `observed` are its instances, in host order.
        let on_host = |h: HostIx| instance_on(observed, h);
        let mut progress = Progress::default();
        let mut all_there = true;
        for (h, w) in placed.zip(wants) {
            let Want::Component(w) = w else {
                all_there = false;
                continue;
            };
            progress.wanted += u64::from(w.count);
            if let Some(o) = on_host(h).filter(|o| *o.instance.image_ref == *w.image_ref) {
                let c = o.instance;
                progress.running += u64::from(c.count.min(w.count));
                all_there &=
                    c.count == w.count && w.annotations.matches_observed(&c.annotations, &o.tag);
            } else {
                all_there = false;
            }
        }
        if self.mode == Mode::Spread {
            progress.wanted = progress.wanted.max(u64::from(self.placer.spec.instances));
        }
        (progress, all_there)
    }
}

/// The instance on host `h`, if any (`observed` is in host order).
fn instance_on<'o, 'a>(
    observed: &'o [Observed<'a, ComponentInstance>],
    h: HostIx,
) -> Option<&'o Observed<'a, ComponentInstance>> {
    observed.binary_search_by_key(&h, |o| o.host).ok().map(|i| &observed[i])
}

/// How a rollout paced one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pacing {
    /// Hosts (ours) that have run the new image for `min_healthy_time`.
    pub updated: usize,
    /// Hosts changing: the new image ordered and not confirmed, or confirmed less than
    /// `min_healthy_time` ago.
    pub changing: usize,
    /// Hosts kept on their old image for now.
    pub waiting: usize,
    pub max_parallel: u32,
    /// The canary stage still in force (not promoted): at most this many hosts get the image.
    pub canary: Option<u32>,
    /// When the first changing host will have run the new image for `min_healthy_time`.
    pub wake_at: Option<wadm_lattice::Timestamp>,
}

impl Pacing {
    /// Nothing counted yet.
    pub(crate) fn new(policy: Rollout) -> Self {
        Pacing {
            updated: 0,
            changing: 0,
            waiting: 0,
            max_parallel: policy.max_parallel,
            canary: policy.canary,
            wake_at: None,
        }
    }

    /// Count a host running the new image since `since` (`unhealthy`: it reports failing health
    /// checks): changing while unconfirmed, unhealthy or within `min_healthy_time` (then woken
    /// when that runs out), else done.
    pub(crate) fn count(
        &mut self,
        policy: Rollout,
        since: Timestamp,
        unhealthy: bool,
        now: Timestamp,
    ) {
        let healthy_at = since.saturating_add(policy.min_healthy_time_ms);
        if since == NOT_CONFIRMED || unhealthy {
            self.changing += 1;
        } else if since != 0 && now < healthy_at {
            self.changing += 1;
            self.wake_at = Some(self.wake_at.map_or(healthy_at, |t| t.min(healthy_at)));
        } else {
            self.updated += 1;
        }
    }

    /// How many more hosts may get the new image now: `max_parallel` less those changing and,
    /// before promotion, no more than the canary stage leaves.
    pub(crate) fn budget(&self) -> usize {
        let mut budget = (self.max_parallel as usize).saturating_sub(self.changing);
        if let Some(canary) = self.canary {
            budget = budget.min((canary as usize).saturating_sub(self.updated + self.changing));
        }
        budget
    }
}

/// Pace a change of image: of the hosts that run another image than `image` (ours), only as many
/// get it as `max_parallel` leaves once the hosts still changing are counted (and, before
/// promotion, as the canary stage leaves of its hosts); the others keep their old image in
/// `wants` until those settle. Hosts without an instance are placed at once
/// (nothing running is replaced). Wants are visited in placement order, so the batches are the
/// same on every replica.
pub(crate) fn pace(
    ctx: &Context<'_>,
    policy: Rollout,
    image: &str,
    observed: &[Observed<'_, ComponentInstance>],
    wants: &mut Wants,
) -> Pacing {
    let mut pacing = Pacing::new(policy);
    for o in observed.iter().filter(|o| o.tag.ours && o.instance.image_ref == image) {
        pacing.count(policy, o.instance.since, false, ctx.now());
    }
    let on_host = |h: HostIx| instance_on(observed, h);
    let mut budget = pacing.budget();
    for want in wants.iter_mut() {
        let Want::Component(w) = want else { continue };
        let Some(o) = on_host(w.host).filter(|o| o.tag.ours) else { continue };
        if o.instance.image_ref == *w.image_ref || w.count == 0 {
            continue;
        }
        if budget > 0 {
            budget -= 1;
            continue;
        }
        w.image_ref = Arc::from(o.instance.image_ref.as_str());
        pacing.waiting += 1;
    }
    pacing
}

/// The status, wake time and progress of a scaler whose image change is paced by `p` (`total`
/// hosts wanted): `reconciling` with the rollout's progress while hosts change or wait (unless
/// already `failed`), the plain `status` once every host is done.
pub(super) fn rollout_status(
    status: StatusInfo,
    p: Pacing,
    image: &str,
    total: usize,
) -> (StatusInfo, Option<wadm_lattice::Timestamp>, Option<super::RolloutProgress>) {
    if p.changing + p.waiting == 0 {
        return (status, None, None);
    }
    let progress = super::RolloutProgress {
        done: p.updated as u32,
        total: total as u32,
        batch: p.max_parallel,
    };
    if status.status_type == StatusType::Failed {
        return (status, p.wake_at, Some(progress));
    }
    let canary_done = p.canary.is_some_and(|n| p.updated >= n as usize && p.changing == 0);
    let message = if canary_done {
        format!(
            "canary: {} of {total} hosts run {image}; waiting for `wadm app promote` ({} waiting)",
            p.updated, p.waiting
        )
    } else {
        format!(
            "rolling out {image}: {}/{total} hosts done, {} changing (at most {} at once), {} \
             waiting",
            p.updated, p.changing, p.max_parallel, p.waiting
        )
    };
    let rolling = StatusInfo {
        instances: status.instances,
        ..StatusInfo::new(StatusType::Reconciling, message)
    };
    (rolling, p.wake_at, Some(progress))
}

/// Instances running with the wanted image (at most the wanted count per host) out of the
/// instances wanted: the `N/M` a `reconciling` status reports, which `wadm app deploy --wait`
/// shows as progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub running: u64,
    pub wanted: u64,
}

impl Progress {
    /// The counts, as a status carries them.
    pub(crate) fn instances(self) -> Instances {
        Instances::new(self.running, self.wanted)
    }

    /// `deployed` with `{running}/{wanted} instances running` (so a table can always show it).
    pub(crate) fn deployed(self, ctx: &Context<'_>) -> StatusInfo {
        self.status(ctx, StatusType::Deployed)
    }

    /// `reconciling` with `{running}/{wanted} instances running`.
    pub(crate) fn reconciling(self, ctx: &Context<'_>) -> StatusInfo {
        self.status(ctx, StatusType::Reconciling)
    }

    fn status(self, ctx: &Context<'_>, status_type: StatusType) -> StatusInfo {
        let message = ctx.instances_running(self.running, self.wanted);
        StatusInfo { status_type, message, instances: Some(self.instances()) }
    }
}

/// `waiting` when the lattice has no hosts at all (nothing can be placed *yet*: hosts may still be
/// joining), `failed` when hosts exist but a spread cannot be satisfied with them, `reconciling`
/// when one waits for outdated instances to go, else `None`.
pub(crate) fn shortfall_status(
    ctx: &Context<'_>,
    placements: &[SpreadPlacement],
) -> Option<StatusInfo> {
    // Usually every spread is placed: nothing to look at.
    if placements.iter().all(|p| p.shortfall.is_none()) {
        return None;
    }
    if ctx.hosts().is_empty() && placements.iter().any(|p| p.shortfall.is_some()) {
        return Some(StatusInfo::new(
            StatusType::Waiting,
            format!("no hosts in lattice {}", ctx.lattice().lattice),
        ));
    }
    let unsatisfiable: Vec<&str> = placements
        .iter()
        .filter_map(|p| match &p.shortfall {
            Some(Shortfall::Unsatisfiable(m)) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    if !unsatisfiable.is_empty() {
        return Some(StatusInfo::new(StatusType::Failed, unsatisfiable.join(", ")));
    }
    None
}
