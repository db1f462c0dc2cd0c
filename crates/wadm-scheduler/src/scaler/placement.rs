//! Placement: which hosts run a spread's instances, and how many on each. The rules, in order of
//! priority (each in full, with why: `docs/placement.md`, "The rules"):
//! 1. never beside a foreign instance of the same id, nor (a provider) beside ours of another image;
//! 2. overlapping spreads are solved together, the spread with the fewest usable hosts first;
//! 3. spread out: `min(n, usable)` hosts, counts differing by at most one (providers: `n` hosts);
//! 4. keep what runs (this spread's first, then other instances of ours, largest count first);
//! 5. then the least loaded host, equally loaded ones walked from a start hashed from the id;
//! 6. soft avoidance of hosts that failed the resource repeatedly (`crate::Avoid`).

use std::collections::BTreeSet;

use smallvec::SmallVec;
use wadm_lattice::ComponentInstance;
use wadm_model::{PlacementPolicy, ScalerSpec};
use wadm_protocol::StringMap;

mod constrained;
mod running;

use self::running::{Existing, Occupant, existing};
use crate::context::{Context, FreshOrder, HostIx, Observed};
use crate::hash::{fnv1a64, mix64};
use crate::spread::split_instances;

/// How a scaler's `instances` apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `spreadscaler`: `instances` in total, split over the spreads by weight.
    Spread,
    /// `daemonscaler`: `instances` on every matching host.
    Daemon,
}

/// What kind of unit is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Any count on a host.
    Component,
    /// At most one per host.
    Provider,
}

/// The thing being placed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resource<'r> {
    pub unit: Unit,
    pub id: &'r str,
    pub image_ref: &'r str,
    /// (application, scaler id) placing it: its own instances are kept first, so scalers that
    /// share a provider id do not trade instances back and forth.
    pub placer: (&'r str, &'r str),
    /// For a component, its observed instances when the caller already looked them up (else
    /// placement does).
    pub components: Option<&'r [Observed<'r, ComponentInstance>]>,
    /// A provider under a rollout: a host where ours runs with another image is kept (the image
    /// is replaced there, paced) rather than left for a fresh host.
    pub in_place: bool,
}

/// One spread with its share of the instances.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpreadTarget<'s> {
    pub name: &'s str,
    pub requirements: &'s StringMap,
    pub instances: u32,
}

/// A scaler trait's placement settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    pub policy: PlacementPolicy,
    pub max_per_host: Option<u32>,
    pub min_hosts: Option<u32>,
}

impl Rules {
    /// The settings `spec` declares.
    pub(crate) fn of(spec: &ScalerSpec) -> Self {
        Self { policy: spec.placement, max_per_host: spec.max_per_host, min_hosts: spec.min_hosts }
    }
}

/// Whether placing `res` by `rules` can run out of hosts before the plain rules do: declared
/// capacity, placement settings, or an anti-affinity of the resource.
fn is_constrained(ctx: &Context<'_>, res: Resource<'_>, rules: Rules) -> bool {
    ctx.ledger().is_some()
        || rules != Rules::default()
        || ctx.separation().is_some_and(|s| !s.avoided(res.placer.0, res.id).is_empty())
}

/// Why a spread is not (yet) fully placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shortfall {
    /// Cannot be satisfied with the hosts there are.
    Unsatisfiable(String),
}

/// (host, count) pairs of one spread, in host order (two inline: most spreads run on few hosts).
pub(crate) type PlacedHosts = SmallVec<[(HostIx, u32); 2]>;

/// Each spread's placement, in manifest order (one inline: most scalers have one spread).
pub(crate) type Placements = SmallVec<[SpreadPlacement; 1]>;

/// The spreads of a scaler trait with their shares (inline up to two: no allocation per scaler).
pub(crate) type Targets<'s> = SmallVec<[SpreadTarget<'s>; 2]>;

/// Where one spread's instances go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SpreadPlacement {
    /// (host, count), in host order.
    pub hosts: PlacedHosts,
    pub shortfall: Option<Shortfall>,
    /// The shortfall is (also) for want of declared host capacity.
    pub short_of_capacity: bool,
}

/// Place a spreadscaler's spreads (each with its share already computed).
pub(crate) fn place_spreads(
    ctx: &Context<'_>,
    res: Resource<'_>,
    spreads: &[SpreadTarget<'_>],
    exclude: &BTreeSet<HostIx>,
    rules: Rules,
) -> Placements {
    let existing = existing(ctx, res);
    let (mut blocked, mut stale) = (Vec::new(), Vec::new());
    for e in &existing {
        match e.occupant {
            Occupant::Foreign => blocked.push(e.host),
            Occupant::Stale => stale.push(e.host),
            Occupant::Usable => {}
        }
    }
    let res_hash = fnv1a64(res.id.as_bytes());
    let matches = |ix: HostIx, req: &StringMap| ctx.host(ix).matches(req);

    let usable_of = |eligible: usize, req: &StringMap, taken: &BTreeSet<HostIx>| {
        let excluded = blocked.iter().chain(taken.iter()).filter(|h| matches(**h, req)).count();
        eligible - excluded
    };
    let usable_count = |req: &StringMap, taken: &BTreeSet<HostIx>| {
        usable_of(ctx.eligible_hosts(req).len(), req, taken)
    };
    // One spread needs no ordering (and no allocation for it).
    let mut order: Vec<usize> = Vec::new();
    if spreads.len() > 1 {
        order.extend(0..spreads.len());
        order.sort_by_key(|i| (usable_count(spreads[*i].requirements, exclude), *i));
    }
    let order: &[usize] = if spreads.len() == 1 { &[0] } else { &order };
    if is_constrained(ctx, res, rules) {
        return constrained::place_spreads(ctx, res, spreads, exclude, rules, &existing, order);
    }

    // Hosts that failed this resource repeatedly (rule 6, soft; usually none).
    let avoided = ctx.avoided(res.placer.0, res.id);
    let mut taken: BTreeSet<HostIx> = exclude.clone();
    let mut out = Placements::new();
    if spreads.len() == 1 {
        // The common single spread: pushed inline, no resize machinery.
        out.push(SpreadPlacement::default());
    } else {
        out.resize_with(spreads.len(), SpreadPlacement::default);
    }
    for (k, &i) in order.iter().enumerate() {
        let spread = &spreads[i];
        if spread.instances == 0 {
            continue;
        }
        let req = spread.requirements;
        // Looked up once for the count and the fresh order.
        let selected = ctx.selected(req);
        let usable = usable_of(selected.len(), req, &taken);
        let open = |h: HostIx| matches(h, req) && !blocked.contains(&h) && !taken.contains(&h);
        let (dodge, want_hosts) =
            dodge(res.unit, spread.instances, usable, &avoided, &existing, open);
        let mut chosen =
            choose_existing(&existing, spread.name, want_hosts, &taken, |h| matches(h, req));
        if chosen.len() < want_hosts {
            let need = want_hosts - chosen.len();
            let existing_chosen = chosen.len();
            let skip = |h: HostIx| {
                blocked.contains(&h)
                    || taken.contains(&h)
                    || chosen[..existing_chosen].iter().any(|(c, _)| *c == h)
                    || (dodge && avoided.contains(&h))
            };
            // Avoided hosts come last, after those needing a stop first (rule 6).
            let last_with_avoided: Vec<HostIx>;
            let last: &[HostIx] = if avoided.is_empty() {
                &stale
            } else {
                last_with_avoided = stale.iter().chain(avoided.iter()).copied().collect();
                &last_with_avoided
            };
            let mut fresh: SmallVec<[HostIx; 2]> = SmallVec::new();
            for_each_fresh(&selected.fresh_order(), skip, last, need, res_hash, |h| fresh.push(h));
            for h in fresh {
                chosen.push((h, 0));
            }
        }
        let hosts = distribute(res.unit, spread.instances, chosen);
        if k + 1 < order.len() {
            // Later spreads leave these hosts alone (the last one needs no record).
            taken.extend(hosts.iter().map(|(h, _)| *h));
        }
        let placed = hosts.len();
        out[i].shortfall = shortfall(res.unit, spread, placed, usable);
        out[i].hosts = hosts;
    }
    out
}

/// Rule 6, soft avoidance: whether fresh placement of a spread of `instances` with `usable`
/// hosts passes over the `avoided` hosts it could use (`open`: usable for it), and how many hosts
/// the spread then wants. A component passes over them while another usable host remains: the
/// spread wants the other hosts, plus the avoided ones where ours already runs (what runs is
/// kept, rule 4); a provider keeps them as a last resort (after hosts needing a stop first),
/// used only when the others are too few for its `instances`. Nothing avoided:
/// `min(instances, usable)`.
fn dodge(
    unit: Unit,
    instances: u32,
    usable: usize,
    avoided: &[HostIx],
    existing: &[Existing<'_>],
    open: impl Fn(HostIx) -> bool,
) -> (bool, usize) {
    let plain = (instances as usize).min(usable);
    if avoided.is_empty() {
        return (false, plain);
    }
    let avoided_open = avoided.iter().filter(|h| open(**h));
    let (mut closed, mut kept) = (0, 0);
    for h in avoided_open {
        let runs = existing.iter().any(|e| e.host == *h && e.occupant == Occupant::Usable);
        if runs { kept += 1 } else { closed += 1 }
    }
    let left = usable.saturating_sub(closed + kept);
    match unit {
        Unit::Component if left > 0 => (true, (instances as usize).min(left + kept)),
        _ => (false, plain),
    }
}

/// Our running instances usable for this spread: placed by this scaler for this spread first, then
/// anyone's not placed by this application's other scalers, then this scaler's for another spread,
/// then another scaler's of the application; within each, same spread name, then largest count,
/// then host order.
fn choose_existing(
    existing: &[Existing<'_>],
    spread: &str,
    limit: usize,
    taken: &BTreeSet<HostIx>,
    eligible: impl Fn(HostIx) -> bool,
) -> PlacedHosts {
    if existing.is_empty() {
        return PlacedHosts::new();
    }
    let mut candidates: SmallVec<[&Existing<'_>; 4]> = existing
        .iter()
        .filter(|e| e.occupant == Occupant::Usable && !taken.contains(&e.host) && eligible(e.host))
        .collect();
    // What another spread of this scaler (or another scaler of the application) runs stays
    // there unless nothing else is left: taking it here would make that spread move next round.
    let claim = |e: &Existing<'_>| match (e.mine, e.spread == Some(spread)) {
        (true, true) => 0,
        (false, _) if !e.sibling => 1,
        (true, false) => 2,
        (false, _) => 3,
    };
    candidates
        .sort_by_key(|e| (claim(e), e.spread != Some(spread), std::cmp::Reverse(e.count), e.host));
    candidates.into_iter().take(limit).map(|e| (e.host, e.count)).collect()
}

/// The `need` best hosts not yet running the resource: least loaded first, each group of equally
/// loaded hosts walked cyclically from the resource's start (rule 5); hosts where ours runs with
/// another image last (they need a stop first), in the order met.
fn choose_fresh(
    order: &FreshOrder,
    skip: impl Fn(HostIx) -> bool,
    stale: &[HostIx],
    need: usize,
    res_hash: u64,
) -> Vec<HostIx> {
    let mut out = Vec::new();
    if need > 0 {
        out.reserve(need.min(order.len()));
    }
    for_each_fresh(order, skip, stale, need, res_hash, |h| out.push(h));
    out
}

/// [`choose_fresh`], passing each chosen host to `take` in turn instead of collecting them.
fn for_each_fresh(
    order: &FreshOrder,
    skip: impl Fn(HostIx) -> bool,
    stale: &[HostIx],
    need: usize,
    res_hash: u64,
    mut take: impl FnMut(HostIx),
) {
    if need == 0 {
        return;
    }
    let mut taken = 0;
    let mut stale_met: SmallVec<[HostIx; 2]> = SmallVec::new();
    let spot = mix64(res_hash);
    for group in order.groups() {
        // A start uniform over the group (multiply-shift: no modulo bias to speak of).
        let start = ((u128::from(spot) * group.len() as u128) >> 64) as usize;
        let (before, after) = group.split_at(start);
        for &h in after.iter().chain(before) {
            if skip(h) {
                continue;
            }
            if stale.contains(&h) {
                stale_met.push(h);
                continue;
            }
            take(h);
            taken += 1;
            if taken == need {
                return;
            }
        }
    }
    stale_met.into_iter().take(need - taken).for_each(take);
}

/// Split `instances` over the chosen hosts (given with their current counts, in preference order),
/// reusing `chosen` for the result.
fn distribute(unit: Unit, instances: u32, mut chosen: PlacedHosts) -> PlacedHosts {
    if chosen.is_empty() {
        return chosen;
    }
    match unit {
        Unit::Provider => chosen.iter_mut().for_each(|(_, n)| *n = 1),
        Unit::Component if chosen.len() == 1 => chosen[0].1 = instances,
        Unit::Component => {
            let n = chosen.len() as u32;
            let (base, extra) = (instances / n, instances % n);
            // The extra instances go to the hosts that run the most already (stable).
            let mut by_current: Vec<usize> = (0..chosen.len()).collect();
            by_current.sort_by_key(|i| std::cmp::Reverse(chosen[*i].1));
            let mut counts = vec![base; chosen.len()];
            for i in by_current.into_iter().take(extra as usize) {
                counts[i] += 1;
            }
            for ((_, n), c) in chosen.iter_mut().zip(counts) {
                *n = c;
            }
        }
    }
    chosen.sort_unstable();
    chosen
}

fn shortfall(
    unit: Unit,
    spread: &SpreadTarget<'_>,
    placed: usize,
    usable: usize,
) -> Option<Shortfall> {
    let needed = match unit {
        Unit::Component => 1,
        Unit::Provider => spread.instances as usize,
    };
    (placed < needed).then(|| {
        Shortfall::Unsatisfiable(format!(
            "spread {} needs {} instances, {} eligible hosts",
            spread.name, spread.instances, usable
        ))
    })
}

/// Place a daemonscaler: `per_host` on every usable host matching a spread (a host matching several
/// spreads serves the first in manifest order).
pub(crate) fn place_daemon(
    ctx: &Context<'_>,
    res: Resource<'_>,
    spreads: &[SpreadTarget<'_>],
    per_host: u32,
    exclude: &BTreeSet<HostIx>,
    rules: Rules,
) -> Placements {
    let existing = existing(ctx, res);
    if is_constrained(ctx, res, rules) {
        return constrained::place_daemon(ctx, res, spreads, per_host, exclude, rules, &existing);
    }
    let blocked: BTreeSet<HostIx> =
        existing.iter().filter(|e| e.occupant == Occupant::Foreign).map(|e| e.host).collect();
    let mut taken: BTreeSet<HostIx> = exclude.clone();
    let mut out = Placements::with_capacity(spreads.len());
    for spread in spreads {
        let mut hosts = PlacedHosts::new();
        if per_host > 0 {
            for h in ctx.eligible_hosts(spread.requirements).iter() {
                if !blocked.contains(h) && taken.insert(*h) {
                    hosts.push((*h, per_host));
                }
            }
        }
        out.push(SpreadPlacement { hosts, shortfall: None, short_of_capacity: false });
    }
    out
}

/// Each spread of a scaler trait with its share: split by weight for a spreadscaler; for a
/// daemonscaler, `instances` per host (a component) or one (a provider).
pub(crate) fn targets(unit: Unit, mode: Mode, spec: &ScalerSpec) -> Targets<'_> {
    fn target(s: &wadm_model::Spread, instances: u32) -> SpreadTarget<'_> {
        SpreadTarget { name: &s.name, requirements: &s.requirements, instances }
    }
    match mode {
        // The common single spread takes all the instances (when its weight is not zero).
        Mode::Spread if spec.spreads.len() == 1 => {
            let s = &spec.spreads[0];
            let mut one = Targets::new();
            one.push(target(s, if s.weight == 0 { 0 } else { spec.instances }));
            one
        }
        Mode::Spread => {
            let weights: Vec<u32> = spec.spreads.iter().map(|s| s.weight).collect();
            let counts = split_instances(spec.instances, &weights);
            spec.spreads.iter().zip(counts).map(|(s, n)| target(s, n)).collect()
        }
        Mode::Daemon => {
            let per_host = if unit == Unit::Provider { 1 } else { spec.instances };
            spec.spreads.iter().map(|s| target(s, per_host)).collect()
        }
    }
}

/// Place one scaler trait, avoiding `exclude` (hosts that earlier traits of the same workload use).
pub(crate) fn place(
    ctx: &Context<'_>,
    res: Resource<'_>,
    mode: Mode,
    spec: &ScalerSpec,
    exclude: &BTreeSet<HostIx>,
) -> Placements {
    let targets = targets(res.unit, mode, spec);
    let rules = Rules::of(spec);
    match mode {
        Mode::Spread => place_spreads(ctx, res, &targets, exclude, rules),
        Mode::Daemon => {
            let per_host = targets.first().map_or(0, |t| t.instances);
            place_daemon(ctx, res, &targets, per_host, exclude, rules)
        }
    }
}

/// An earlier scaler trait of the same workload: its hosts are not available to later ones, so
/// several traits on one component share the lattice instead of fighting over hosts.
#[derive(Debug, Clone)]
pub(crate) struct PriorTrait {
    /// Its scaler id.
    pub id: String,
    pub mode: Mode,
    pub spec: ScalerSpec,
}

/// The hosts the `priors` of a workload use (computed in manifest order).
pub(crate) fn prior_hosts(
    ctx: &Context<'_>,
    res: Resource<'_>,
    priors: &[PriorTrait],
) -> BTreeSet<HostIx> {
    let mut exclude = BTreeSet::new();
    for prior in priors {
        let res = Resource { placer: (res.placer.0, &prior.id), ..res };
        for p in place(ctx, res, prior.mode, &prior.spec, &exclude) {
            exclude.extend(p.hosts.iter().map(|(h, _)| *h));
        }
    }
    exclude
}
