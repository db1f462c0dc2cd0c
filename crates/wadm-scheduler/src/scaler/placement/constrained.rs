//! Placement when hosts can run out: declared capacity, `max_per_host`, `min_hosts`,
//! anti-affinity and the `binpack` policy. Hosts are chosen in the parent module's order (what
//! runs first, then fresh hosts), each host taking at most what fits; when a rule stops the
//! placement short, the shortfall names the rules that did. With none of these rules in force the
//! result is the plain path's (property-tested).

use std::collections::{BTreeMap, BTreeSet};

use wadm_model::PlacementPolicy;

use super::running::{Existing, Occupant};
use super::{
    PlacedHosts, Placements, Resource, Rules, Shortfall, SpreadPlacement, SpreadTarget, Unit,
    choose_existing, choose_fresh, distribute,
};
use crate::capacity::Cost;
use crate::context::{Context, HostIx};
use crate::hash::fnv1a64;
use crate::spread::split_instances;

/// What limits one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// A declared capacity (resource index).
    Capacity(u32),
    MaxPerHost,
}

/// What a resource may still take on each host, and why hosts run out.
struct Limits<'c, 'a> {
    ctx: &'c Context<'a>,
    res: Resource<'c>,
    rules: Rules,
    cost: Option<Cost>,
    /// Hosts where a component this one is kept apart from runs or was just placed.
    avoided: BTreeSet<HostIx>,
    /// The ids it is kept apart from (for the shortfall's words).
    avoided_ids: Vec<&'a str>,
    /// What ran out, for the shortfall.
    reasons: BTreeSet<String>,
    /// Declared capacity is among what ran out.
    capacity: bool,
}

impl<'c, 'a> Limits<'c, 'a> {
    fn new(ctx: &'c Context<'a>, res: Resource<'c>, rules: Rules) -> Self {
        let cost = ctx.ledger().map(|l| l.cost(res.placer.0, res.id));
        let mut avoided = BTreeSet::new();
        let mut avoided_ids = Vec::new();
        if let Some(separation) = ctx.separation() {
            let app = res.placer.0;
            for other in separation.avoided(app, res.id) {
                avoided_ids.push(*other);
                match separation.chosen(app, other) {
                    Some(hosts) => avoided.extend(hosts),
                    None => {
                        // Not evaluated yet in this reconcile: where it runs now.
                        let components =
                            ctx.component_instances(other).iter().map(|o| (o.host, o.tag.app));
                        let providers =
                            ctx.provider_instances(other).iter().map(|o| (o.host, o.tag.app));
                        avoided.extend(
                            components
                                .chain(providers)
                                .filter(|(_, a)| *a == Some(app))
                                .map(|(h, _)| h),
                        );
                    }
                }
            }
        }
        let reasons = BTreeSet::new();
        Self { ctx, res, rules, cost, avoided, avoided_ids, reasons, capacity: false }
    }

    /// The most instances host `h` may run (`current`: what runs there now), and what bounds it.
    fn limit(&self, h: HostIx, current: u32) -> (u32, Option<Bound>) {
        let mut limit = u32::MAX;
        let mut bound = None;
        if let (Some(ledger), Some(cost)) = (self.ctx.ledger(), &self.cost) {
            let room = ledger.room(h, cost, self.res.placer);
            if let Some(r) = room.bound_by {
                limit = current.saturating_add(room.extra);
                bound = Some(Bound::Capacity(r));
            }
        }
        if self.res.unit == Unit::Provider {
            limit = limit.min(1);
        }
        if let Some(max) = self.rules.max_per_host.filter(|m| *m < limit) {
            limit = max;
            bound = Some(Bound::MaxPerHost);
        }
        (limit, bound)
    }

    fn note(&mut self, bound: Option<Bound>) {
        let reason = match bound {
            Some(Bound::Capacity(r)) => {
                self.capacity = true;
                let ledger = self.ctx.ledger().expect("a capacity bound comes from the ledger");
                format!("host capacity {}", ledger.resource(r))
            }
            Some(Bound::MaxPerHost) => {
                format!("at most {} per host", self.rules.max_per_host.unwrap_or(0))
            }
            None => return,
        };
        self.reasons.insert(reason);
    }

    fn note_avoided(&mut self) {
        let ids = self.avoided_ids.join(", ");
        self.reasons.insert(format!("kept apart from {ids}"));
    }
}

/// How many instances of the resource run on each host now (ours, usable or stale).
fn current_counts(existing: &[Existing<'_>]) -> BTreeMap<HostIx, u32> {
    existing.iter().filter(|e| e.occupant != Occupant::Foreign).map(|e| (e.host, e.count)).collect()
}

/// The minimum number of distinct hosts of each spread: `min_hosts` split like the instances.
fn min_hosts_per_spread(rules: Rules, spreads: &[SpreadTarget<'_>]) -> Vec<u32> {
    let Some(min) = rules.min_hosts else { return vec![0; spreads.len()] };
    if spreads.len() == 1 {
        return vec![min];
    }
    let shares: Vec<u32> = spreads.iter().map(|s| s.instances).collect();
    split_instances(min, &shares).into_iter().zip(&shares).map(|(m, s)| m.min(*s)).collect()
}

/// [`super::place_spreads`] under limits.
#[allow(clippy::too_many_arguments)]
pub(super) fn place_spreads(
    ctx: &Context<'_>,
    res: Resource<'_>,
    spreads: &[SpreadTarget<'_>],
    exclude: &BTreeSet<HostIx>,
    rules: Rules,
    existing: &[Existing<'_>],
    order: &[usize],
) -> Placements {
    let blocked: BTreeSet<HostIx> =
        existing.iter().filter(|e| e.occupant == Occupant::Foreign).map(|e| e.host).collect();
    let stale: Vec<HostIx> =
        existing.iter().filter(|e| e.occupant == Occupant::Stale).map(|e| e.host).collect();
    let current = current_counts(existing);
    let res_hash = fnv1a64(res.id.as_bytes());
    let min_hosts = min_hosts_per_spread(rules, spreads);
    let mut taken: BTreeSet<HostIx> = exclude.clone();
    let mut out: Placements =
        smallvec::SmallVec::from_elem(SpreadPlacement::default(), spreads.len());
    for (k, &i) in order.iter().enumerate() {
        let spread = &spreads[i];
        if spread.instances == 0 {
            continue;
        }
        let mut limits = Limits::new(ctx, res, rules);
        let req = spread.requirements;
        // Every host this spread may use, with the most it may run there.
        let mut room: BTreeMap<HostIx, u32> = BTreeMap::new();
        let mut unusable: BTreeSet<HostIx> = blocked.iter().chain(taken.iter()).copied().collect();
        for &h in ctx.eligible_hosts(req).iter() {
            if blocked.contains(&h) || taken.contains(&h) {
                continue;
            }
            if limits.avoided.contains(&h) {
                limits.note_avoided();
                unusable.insert(h);
                continue;
            }
            let (limit, bound) = limits.limit(h, current.get(&h).copied().unwrap_or(0));
            if limit == 0 {
                limits.note(bound);
                unusable.insert(h);
            } else {
                room.insert(h, limit);
            }
        }
        let usable = |h: HostIx| room.contains_key(&h);
        let mut candidates = choose_existing(existing, spread.name, usize::MAX, &unusable, usable);
        let skip: BTreeSet<HostIx> =
            unusable.iter().copied().chain(candidates.iter().map(|(h, _)| *h)).collect();
        let fresh = match rules.policy {
            PlacementPolicy::Spread => choose_fresh(
                &ctx.fresh_order(req),
                |h| skip.contains(&h),
                &stale,
                usize::MAX,
                res_hash,
            ),
            PlacementPolicy::Binpack => binpack_order(ctx, &room, &skip),
        };
        candidates.extend(fresh.into_iter().map(|h| (h, 0)));
        let want = spread.instances;
        let hosts = match rules.policy {
            PlacementPolicy::Spread => spread_fill(res.unit, want, &candidates, &room),
            PlacementPolicy::Binpack => {
                binpack_fill(res.unit, want, min_hosts[i], &candidates, &room)
            }
        };
        // What bound the hosts that are full.
        for (h, n) in &hosts {
            if room.get(h) == Some(n) {
                let (_, bound) = limits.limit(*h, current.get(h).copied().unwrap_or(0));
                limits.note(bound);
            }
        }
        if k + 1 < order.len() {
            taken.extend(hosts.iter().map(|(h, _)| *h));
        }
        out[i].shortfall = shortfall(res.unit, spread, &hosts, min_hosts[i], room.len(), &limits);
        out[i].short_of_capacity = out[i].shortfall.is_some() && limits.capacity;
        out[i].hosts = hosts;
    }
    out
}

/// Hosts that may take the resource and run nothing of it yet, fullest first (the binpack
/// order): by declared capacity used (the most used resource, per mille), then by load, then by
/// a stable hash.
fn binpack_order(
    ctx: &Context<'_>,
    room: &BTreeMap<HostIx, u32>,
    skip: &BTreeSet<HostIx>,
) -> Vec<HostIx> {
    let fullness = |h: HostIx| -> u64 {
        let Some(ledger) = ctx.ledger() else { return 0 };
        (0..ledger.resources().len() as u32)
            .filter_map(|r| match ledger.usage(h, r) {
                (used, Some(limit)) if limit > 0 => Some(used.saturating_mul(1000) / limit),
                (_, Some(_)) => Some(1000),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    };
    let mut hosts: Vec<(u64, u32, u64, HostIx)> = room
        .keys()
        .filter(|h| !skip.contains(h))
        .map(|&h| (fullness(h), ctx.load(h), ctx.host_hash(h), h))
        .collect();
    hosts.sort_unstable_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then((a.2, a.3).cmp(&(b.2, b.3))));
    hosts.into_iter().map(|x| x.3).collect()
}

/// Spread: the first `min(instances, candidates)` candidates share the instances evenly (as the
/// plain path does); what does not fit on a host goes to the chosen host with the fewest, then to
/// the next candidate.
fn spread_fill(
    unit: Unit,
    instances: u32,
    candidates: &PlacedHosts,
    room: &BTreeMap<HostIx, u32>,
) -> PlacedHosts {
    let k = (instances as usize).min(candidates.len());
    let chosen: PlacedHosts = candidates.iter().take(k).copied().collect();
    let mut hosts = distribute(unit, instances, chosen);
    let cap = |h: HostIx| room.get(&h).copied().unwrap_or(0);
    let mut overflow = 0u32;
    for (h, n) in hosts.iter_mut() {
        let c = cap(*h);
        if *n > c {
            overflow += *n - c;
            *n = c;
        }
    }
    let mut next = k;
    while overflow > 0 && unit == Unit::Component {
        // The chosen host with room and the fewest instances (then host order).
        let pick = hosts
            .iter()
            .enumerate()
            .filter(|(_, (h, n))| *n < cap(*h))
            .min_by_key(|(_, (_, n))| *n);
        if let Some((at, _)) = pick {
            hosts[at].1 += 1;
            overflow -= 1;
            continue;
        }
        let Some(&(h, _)) = candidates.get(next) else { break };
        next += 1;
        let add = overflow.min(cap(h));
        hosts.push((h, add));
        overflow -= add;
        hosts.sort_unstable();
    }
    hosts.retain(|(_, n)| *n > 0);
    hosts
}

/// Binpack: each candidate in turn takes as many as fit, after the first `min_hosts` took one each.
fn binpack_fill(
    unit: Unit,
    instances: u32,
    min_hosts: u32,
    candidates: &PlacedHosts,
    room: &BTreeMap<HostIx, u32>,
) -> PlacedHosts {
    let cap = |h: HostIx| room.get(&h).copied().unwrap_or(0);
    let spread_first = (min_hosts as usize).min(instances as usize).min(candidates.len());
    let mut counts: Vec<u32> = vec![0; candidates.len()];
    let mut left = instances;
    for c in counts.iter_mut().take(spread_first) {
        *c = 1;
        left -= 1;
    }
    for (at, (h, _)) in candidates.iter().enumerate() {
        if left == 0 {
            break;
        }
        let per_host = if unit == Unit::Provider { 1 } else { cap(*h) };
        let add = left.min(per_host.saturating_sub(counts[at]));
        counts[at] += add;
        left -= add;
    }
    let mut hosts: PlacedHosts =
        candidates.iter().zip(counts).filter(|(_, n)| *n > 0).map(|((h, _), n)| (*h, n)).collect();
    hosts.sort_unstable();
    hosts
}

fn shortfall(
    unit: Unit,
    spread: &SpreadTarget<'_>,
    hosts: &PlacedHosts,
    min_hosts: u32,
    usable: usize,
    limits: &Limits<'_, '_>,
) -> Option<Shortfall> {
    let placed: u32 = match unit {
        Unit::Component => hosts.iter().map(|(_, n)| *n).sum(),
        Unit::Provider => hosts.len() as u32,
    };
    let why = || limits.reasons.iter().cloned().collect::<Vec<_>>().join(", ");
    if placed < spread.instances {
        let message = if limits.reasons.is_empty() {
            format!(
                "spread {} needs {} instances, {} eligible hosts",
                spread.name, spread.instances, usable
            )
        } else {
            format!(
                "spread {} needs {} instances, {} fit: {}",
                spread.name,
                spread.instances,
                placed,
                why()
            )
        };
        return Some(Shortfall::Unsatisfiable(message));
    }
    if (hosts.len() as u32) < min_hosts {
        let mut message = format!(
            "spread {} needs {} distinct hosts, {} usable",
            spread.name,
            min_hosts,
            hosts.len()
        );
        if !limits.reasons.is_empty() {
            message.push_str(&format!(": {}", why()));
        }
        return Some(Shortfall::Unsatisfiable(message));
    }
    None
}

/// [`super::place_daemon`] under limits: `per_host` on every usable host where it fits; hosts where
/// it does not are named in the shortfall.
pub(super) fn place_daemon(
    ctx: &Context<'_>,
    res: Resource<'_>,
    spreads: &[SpreadTarget<'_>],
    per_host: u32,
    exclude: &BTreeSet<HostIx>,
    rules: Rules,
    existing: &[Existing<'_>],
) -> Placements {
    let blocked: BTreeSet<HostIx> =
        existing.iter().filter(|e| e.occupant == Occupant::Foreign).map(|e| e.host).collect();
    let current = current_counts(existing);
    let mut taken: BTreeSet<HostIx> = exclude.clone();
    let mut out = Placements::with_capacity(spreads.len());
    for spread in spreads {
        let mut limits = Limits::new(ctx, res, rules);
        let mut hosts = PlacedHosts::new();
        let mut lacking = 0usize;
        if per_host > 0 {
            for &h in ctx.eligible_hosts(spread.requirements).iter() {
                if blocked.contains(&h) || taken.contains(&h) {
                    continue;
                }
                if limits.avoided.contains(&h) {
                    limits.note_avoided();
                    lacking += 1;
                    continue;
                }
                let (limit, bound) = limits.limit(h, current.get(&h).copied().unwrap_or(0));
                if limit < per_host {
                    limits.note(bound);
                    lacking += 1;
                    continue;
                }
                taken.insert(h);
                hosts.push((h, per_host));
            }
        }
        let mut shortfall = None;
        if lacking > 0 {
            shortfall = Some(Shortfall::Unsatisfiable(format!(
                "spread {} runs on {} of {} matching hosts: {}",
                spread.name,
                hosts.len(),
                hosts.len() + lacking,
                limits.reasons.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        } else if let Some(min) = rules.min_hosts.filter(|m| (hosts.len() as u32) < *m) {
            shortfall = Some(Shortfall::Unsatisfiable(format!(
                "spread {} needs {} distinct hosts, {} usable",
                spread.name,
                min,
                hosts.len()
            )));
        }
        let short_of_capacity = shortfall.is_some() && limits.capacity;
        out.push(SpreadPlacement { hosts, shortfall, short_of_capacity });
    }
    out
}
