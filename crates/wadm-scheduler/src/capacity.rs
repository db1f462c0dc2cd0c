//! What one reconcile has placed so far, for the rules that make one scaler's placement depend on
//! another's: host capacity (the [`Ledger`]: `capacity_{resource}` labels against everything
//! observed, in-flight orders and earlier scalers' new instances; stops are not credited until
//! observed, so a host is never over its capacity) and anti-affinity (the [`Separation`]: the
//! hosts each named group's scaler chose). See `docs/placement.md`.

use std::cell::RefCell;
use std::collections::BTreeSet;

use smallvec::SmallVec;
use wadm_lattice::HostState;
use wadm_model::{CAPACITY_LABEL_PREFIX, INSTANCES_RESOURCE, Needs, Source};

use crate::catalog::Catalog;
use crate::hash::FnvMap;
use crate::host_index::HostIx;
use crate::observed::owner_app;

/// Per declared resource (index into [`Ledger::resources`]), how much one instance takes.
pub(crate) type Cost = SmallVec<[(u32, u64); 2]>;

/// What one scaler reserved: (host, resource, amount).
type Reservations = Vec<(HostIx, u32, u64)>;

/// How many more instances fit on a host, and what limits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// `u32::MAX`: no declared capacity limits it.
    pub extra: u32,
    /// The resource (index) that limits it, when one does.
    pub bound_by: Option<u32>,
}

impl Room {
    /// No limit.
    pub const UNLIMITED: Room = Room { extra: u32::MAX, bound_by: None };
}

/// Declared capacity and what is used of it, per host and resource.
pub struct Ledger<'a> {
    /// Every resource some host declares, sorted.
    resources: Vec<&'a str>,
    /// Host-major: `limits[h * resources.len() + r]`.
    limits: Vec<Option<u64>>,
    used: RefCell<Vec<u64>>,
    /// What each scaler (application, scaler id) reserved in this reconcile: (host, resource,
    /// amount). Read when placement recomputes an earlier scaler trait's hosts.
    reserved: RefCell<FnvMap<String, FnvMap<String, Reservations>>>,
    /// Application → workload id → its component's needs, for deployed applications.
    needs: FnvMap<&'a str, FnvMap<&'a str, &'a Needs>>,
}

impl<'a> Ledger<'a> {
    /// The ledger of `hosts` (in index order), or `None` when no host declares capacity (then
    /// nothing is limited and nothing needs counting).
    pub fn new(hosts: &[&'a HostState], catalog: &Catalog<'a>) -> Option<Self> {
        let declared = |h: &'a HostState| {
            h.labels.iter().filter_map(|(k, v)| {
                let r = k.strip_prefix(CAPACITY_LABEL_PREFIX).filter(|r| !r.is_empty())?;
                Some((r, v))
            })
        };
        let resources: Vec<&'a str> = hosts
            .iter()
            .flat_map(|h| declared(h).map(|(r, _)| r))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if resources.is_empty() {
            return None;
        }
        let width = resources.len();
        let mut limits = vec![None; hosts.len() * width];
        for (ix, h) in hosts.iter().enumerate() {
            for (r, v) in declared(h) {
                let at = resources.binary_search(&r).expect("collected above");
                // A value that is not a whole number declares nothing usable: zero.
                limits[ix * width + at] = Some(v.trim().parse::<u64>().unwrap_or(0));
            }
        }
        let mut needs: FnvMap<&'a str, FnvMap<&'a str, &'a Needs>> = FnvMap::default();
        for (app, d) in &catalog.deployed {
            for c in &d.app.components {
                if !c.needs.is_empty() && matches!(c.source, Source::Image(_)) {
                    needs.entry(*app).or_default().insert(c.id.as_str(), &c.needs);
                }
            }
        }
        let ledger = Self {
            resources,
            limits,
            used: RefCell::new(vec![0; hosts.len() * width]),
            reserved: RefCell::new(FnvMap::default()),
            needs,
        };
        {
            let mut used = ledger.used.borrow_mut();
            for (ix, h) in hosts.iter().enumerate() {
                let instances = h.components.values().map(|c| (&c.id, c.count, &c.annotations));
                let providers = h.providers.values().map(|p| (&p.id, 1, &p.annotations));
                for (id, count, annotations) in instances.chain(providers) {
                    let app = owner_app(annotations).unwrap_or("");
                    for (r, amount) in ledger.cost(app, id) {
                        let slot = &mut used[ix * width + r as usize];
                        *slot = slot.saturating_add(amount.saturating_mul(u64::from(count)));
                    }
                }
            }
        }
        Some(ledger)
    }

    /// The declared resources, sorted.
    pub fn resources(&self) -> &[&'a str] {
        &self.resources
    }

    /// The name of resource `r`.
    pub fn resource(&self, r: u32) -> &'a str {
        self.resources[r as usize]
    }

    /// What one instance of workload `id` of `app` takes of each declared resource (an unknown
    /// owner's instance takes one `instances` and nothing else).
    pub fn cost(&self, app: &str, id: &str) -> Cost {
        let needs = self.needs.get(app).and_then(|ids| ids.get(id));
        let mut out = Cost::new();
        for (r, name) in self.resources.iter().enumerate() {
            let mut amount = needs.and_then(|n| n.get(*name)).copied().unwrap_or(0);
            if *name == INSTANCES_RESOURCE {
                amount += 1;
            }
            if amount > 0 {
                out.push((r as u32, amount));
            }
        }
        out
    }

    /// How many more instances costing `cost` fit on `host`, not counting what `owner`
    /// (application, scaler id) reserved in this reconcile.
    pub fn room(&self, host: HostIx, cost: &Cost, owner: (&str, &str)) -> Room {
        let width = self.resources.len();
        let used = self.used.borrow();
        let reserved = self.reserved.borrow();
        let own = reserved.get(owner.0).and_then(|scalers| scalers.get(owner.1));
        let mut room = Room::UNLIMITED;
        for &(r, amount) in cost {
            let at = host as usize * width + r as usize;
            let Some(limit) = self.limits[at] else { continue };
            let mine: u64 = own
                .map(|v| v.iter().filter(|(h, rr, _)| *h == host && *rr == r).map(|x| x.2).sum())
                .unwrap_or(0);
            let free = limit.saturating_sub(used[at].saturating_sub(mine));
            let fits = u32::try_from(free / amount).unwrap_or(u32::MAX - 1);
            if fits < room.extra {
                room = Room { extra: fits, bound_by: Some(r) };
            }
        }
        room
    }

    /// Take `count` more instances costing `cost` on `host` for `owner`.
    pub fn reserve(&self, host: HostIx, cost: &Cost, count: u32, owner: (&str, &str)) {
        if count == 0 || cost.is_empty() {
            return;
        }
        let width = self.resources.len();
        let mut used = self.used.borrow_mut();
        let mut reserved = self.reserved.borrow_mut();
        let own = reserved
            .entry(owner.0.to_string())
            .or_default()
            .entry(owner.1.to_string())
            .or_default();
        for &(r, amount) in cost {
            let total = amount.saturating_mul(u64::from(count));
            let at = host as usize * width + r as usize;
            used[at] = used[at].saturating_add(total);
            own.push((host, r, total));
        }
    }

    /// What is used of resource `r` on `host` (observed plus reserved) and its declared limit.
    pub fn usage(&self, host: HostIx, r: u32) -> (u64, Option<u64>) {
        let at = host as usize * self.resources.len() + r as usize;
        (self.used.borrow()[at], self.limits[at])
    }
}

/// Components kept apart by `anti-affinity`, and where they are.
#[derive(Default)]
pub struct Separation<'a> {
    /// Application → workload id → (its number, the ids of the same application it never shares
    /// a host with).
    avoid: FnvMap<&'a str, FnvMap<&'a str, (usize, Vec<&'a str>)>>,
    /// By number: the hosts the workload's scalers chose in this reconcile, once evaluated.
    chosen: RefCell<Vec<Option<BTreeSet<HostIx>>>>,
}

impl<'a> Separation<'a> {
    /// The anti-affinities the deployed applications of `catalog` declare (both ways), or `None`
    /// when there are none.
    pub fn new(catalog: &Catalog<'a>) -> Option<Self> {
        if !catalog.anti_affinity {
            return None;
        }
        let mut avoid: FnvMap<&'a str, FnvMap<&'a str, (usize, Vec<&'a str>)>> = FnvMap::default();
        let mut numbered = 0;
        for (app, d) in &catalog.deployed {
            for c in &d.app.components {
                for other in c.avoid.iter().filter_map(|name| d.app.component(name)) {
                    let (a, b) = (c.id.as_str(), other.id.as_str());
                    if a == b {
                        continue;
                    }
                    for (x, y) in [(a, b), (b, a)] {
                        let entry = avoid.entry(*app).or_default().entry(x).or_insert_with(|| {
                            numbered += 1;
                            (numbered - 1, Vec::new())
                        });
                        if !entry.1.contains(&y) {
                            entry.1.push(y);
                            entry.1.sort_unstable();
                        }
                    }
                }
            }
        }
        if avoid.is_empty() {
            return None;
        }
        Some(Self { avoid, chosen: RefCell::new(vec![None; numbered]) })
    }

    /// The ids workload `id` of `app` keeps apart from.
    pub fn avoided(&self, app: &str, id: &str) -> &[&'a str] {
        self.entry(app, id).map_or(&[], |e| e.1.as_slice())
    }

    fn entry(&self, app: &str, id: &str) -> Option<&(usize, Vec<&'a str>)> {
        self.avoid.get(app).and_then(|ids| ids.get(id))
    }

    /// The hosts chosen for `id` of `app` in this reconcile, once one of its scalers ran.
    pub fn chosen(&self, app: &str, id: &str) -> Option<BTreeSet<HostIx>> {
        let (n, _) = self.entry(app, id)?;
        self.chosen.borrow()[*n].clone()
    }

    /// Record hosts chosen for `id` of `app` (added to what its other scalers chose); nothing when
    /// it is kept apart from nothing.
    pub fn record(&self, app: &str, id: &str, hosts: impl IntoIterator<Item = HostIx>) {
        let Some((n, _)) = self.entry(app, id) else { return };
        self.chosen.borrow_mut()[*n].get_or_insert_with(BTreeSet::new).extend(hosts);
    }
}
