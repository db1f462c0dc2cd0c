//! The read-only view scalers evaluate against: the observed lattice, indexed once per reconcile
//! (hosts by label, instances by id, host load), plus ownership and config availability derived
//! from the desired state.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use wadm_lattice::{ComponentInstance, HostState, LatticeState, ProviderInstance, Timestamp};
use wadm_model::{StatusInfo, StatusType};
use wadm_protocol::StringMap;

use crate::capacity::{Ledger, Separation};
use crate::catalog::Catalog;
use crate::hash::{FnvMap, fnv1a64};
pub use crate::host_index::HostIx;
use crate::input::Avoid;
use crate::observed::InstanceIndex;
pub use crate::observed::{Observed, Tag, owner_app};

/// The observed lattice as scalers see it.
pub struct Context<'a> {
    lattice: &'a LatticeState,
    /// The time the reconcile is for.
    now: Timestamp,
    catalog: &'a Catalog<'a>,
    hosts: Vec<&'a HostState>,
    /// Host ids as shared strings for commands, made on first use.
    host_ids: Vec<OnceCell<Arc<str>>>,
    load: Vec<u32>,
    host_hash: Vec<u64>,
    // Lookup-only indexes, down to `fresh` (never iterated, so hash order cannot leak into results).
    by_label: FnvMap<(&'a str, &'a str), Vec<HostIx>>,
    components: InstanceIndex<'a, ComponentInstance>,
    providers: InstanceIndex<'a, ProviderInstance>,
    /// Every host (what no requirements select).
    all_hosts: Rc<[HostIx]>,
    /// What each distinct non-empty requirement set selects (built on first use).
    selections: RefCell<FnvMap<StringMap, Rc<Selection>>>,
    /// The [`FreshOrder`] of every host (built on first use).
    all_fresh: OnceCell<Rc<FreshOrder>>,
    /// Declared host capacity and its use (`None`: no host declares any).
    ledger: Option<Ledger<'a>>,
    /// Anti-affinities (`None`: no application declares any).
    separation: Option<Separation<'a>>,
    /// Hosts to avoid per resource (see [`Avoid`]; `None`: none).
    avoid: Option<&'a Avoid>,
    /// Status messages of this reconcile, shared by the scalers that say the same.
    messages: Messages,
}

/// Status messages made once per reconcile and shared: the empty one, and
/// `{running}/{wanted} instances running` in a direct-mapped table (a slot holds the last counts
/// that mapped to it; a miss makes the message anew, so only allocations depend on the table,
/// never text).
#[derive(Default)]
struct Messages {
    empty: OnceCell<Arc<str>>,
    running: RefCell<Vec<Option<CountedMessage>>>,
}

/// (running, wanted) with its message.
type CountedMessage = ((u64, u64), Arc<str>);

/// Slots of [`Messages::running`]: counts below 16 never collide.
const MESSAGE_SLOTS: usize = 256;

/// The hosts one requirement set selects, and (built when first asked for) their fresh order.
struct Selection {
    hosts: Rc<[HostIx]>,
    fresh: OnceCell<Rc<FreshOrder>>,
}

/// What [`Context::selected`] found: every host (no requirements) or one [`Selection`].
pub(crate) struct Selected<'c, 'a> {
    ctx: &'c Context<'a>,
    selection: Option<Rc<Selection>>,
}

impl Selected<'_, '_> {
    /// [`Context::eligible_hosts`].
    pub(crate) fn hosts(&self) -> Rc<[HostIx]> {
        match &self.selection {
            Some(s) => s.hosts.clone(),
            None => self.ctx.all_hosts.clone(),
        }
    }

    /// How many hosts.
    pub(crate) fn len(&self) -> usize {
        match &self.selection {
            Some(s) => s.hosts.len(),
            None => self.ctx.all_hosts.len(),
        }
    }

    /// [`Context::fresh_order`].
    pub(crate) fn fresh_order(&self) -> Rc<FreshOrder> {
        let ctx = self.ctx;
        match &self.selection {
            Some(s) => s.fresh.get_or_init(|| ctx.build_fresh(&s.hosts)).clone(),
            None => ctx.all_fresh.get_or_init(|| ctx.build_fresh(&ctx.all_hosts)).clone(),
        }
    }
}

/// Some hosts in the order fresh placements consider them: grouped by load, least loaded first;
/// within a group (equal load), by host hash (a fixed permutation of the hosts, independent of
/// map order), then index. Placement starts each resource's walk through a group at a position
/// derived from the resource id's hash (see `scaler::placement`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreshOrder {
    hosts: Vec<HostIx>,
    /// Where each group of equal load starts in `hosts` (the last entry is `hosts.len()`).
    bounds: Vec<u32>,
}

impl FreshOrder {
    fn new(mut hosts: Vec<HostIx>, load: &[u32], host_hash: &[u64]) -> Self {
        // Sorted by (load, host hash, index) packed into one integer: one comparison per step,
        // no lookups in the comparisons.
        let key = |h: HostIx| {
            (u128::from(load[h as usize]) << 96)
                | (u128::from(host_hash[h as usize]) << 32)
                | u128::from(h)
        };
        let mut keys: Vec<u128> = hosts.iter().map(|h| key(*h)).collect();
        keys.sort_unstable();
        hosts.clear();
        hosts.extend(keys.iter().map(|k| *k as HostIx));
        let mut bounds = vec![0u32];
        for i in 1..hosts.len() {
            if load[hosts[i] as usize] != load[hosts[i - 1] as usize] {
                bounds.push(i as u32);
            }
        }
        bounds.push(hosts.len() as u32);
        if hosts.is_empty() {
            bounds.truncate(1);
        }
        Self { hosts, bounds }
    }

    /// The groups of equal load, least loaded first, each in host-hash order.
    pub fn groups(&self) -> impl Iterator<Item = &[HostIx]> {
        self.bounds.windows(2).map(|w| &self.hosts[w[0] as usize..w[1] as usize])
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

impl<'a> Context<'a> {
    /// Index `lattice` for scalers working for the applications in `catalog`.
    pub fn new(lattice: &'a LatticeState, catalog: &'a Catalog<'a>, now: Timestamp) -> Self {
        let hosts: Vec<&HostState> = lattice.hosts.values().collect();
        let ledger = Ledger::new(&hosts, catalog);
        let mut by_label: FnvMap<(&str, &str), Vec<HostIx>> = FnvMap::default();
        let components = InstanceIndex::new(&hosts, catalog, |h| &h.components, |c| &c.annotations);
        let providers = InstanceIndex::new(&hosts, catalog, |h| &h.providers, |p| &p.annotations);
        let mut load = Vec::with_capacity(hosts.len());
        let mut host_hash = Vec::with_capacity(hosts.len());
        for (ix, host) in hosts.iter().enumerate() {
            let ix = ix as HostIx;
            for (k, v) in &host.labels {
                by_label.entry((k.as_str(), v.as_str())).or_default().push(ix);
            }
            let units = host.components.values().fold(0u32, |n, c| n.saturating_add(c.count));
            load.push(units.saturating_add(host.providers.len() as u32));
            host_hash.push(fnv1a64(host.id.as_bytes()));
        }
        Self {
            lattice,
            now,
            catalog,
            all_hosts: (0..hosts.len() as HostIx).collect(),
            host_ids: hosts.iter().map(|_| OnceCell::new()).collect(),
            hosts,
            load,
            host_hash,
            by_label,
            components,
            providers,
            selections: RefCell::new(FnvMap::default()),
            all_fresh: OnceCell::new(),
            ledger,
            separation: Separation::new(catalog),
            avoid: None,
            messages: Messages::default(),
        }
    }

    /// A status of `status_type` with no message (the empty message shared).
    pub(crate) fn silent(&self, status_type: StatusType) -> StatusInfo {
        let empty = self.messages.empty.get_or_init(|| Arc::from(""));
        StatusInfo { status_type, message: Arc::clone(empty), instances: None }
    }

    /// `{running}/{wanted} instances running`, shared with the scalers of this reconcile that
    /// say the same.
    pub(crate) fn instances_running(&self, running: u64, wanted: u64) -> Arc<str> {
        let slot = ((running as usize & 15) << 4) | (wanted as usize & 15);
        let mut table = self.messages.running.borrow_mut();
        if table.is_empty() {
            table.resize(MESSAGE_SLOTS, None);
        }
        match &mut table[slot] {
            Some((counts, text)) if *counts == (running, wanted) => Arc::clone(text),
            entry => {
                let text = crate::text::instances_running(running, wanted);
                *entry = Some(((running, wanted), Arc::clone(&text)));
                text
            }
        }
    }

    /// This context, with hosts to avoid per resource (see [`Avoid`]).
    pub fn avoiding(mut self, avoid: &'a Avoid) -> Self {
        self.avoid = (!avoid.is_empty()).then_some(avoid);
        self
    }

    /// The live hosts avoided for resource `id` of application `app` (usually none).
    pub fn avoided(&self, app: &str, id: &str) -> Vec<HostIx> {
        let Some(avoid) = self.avoid else { return Vec::new() };
        avoid.hosts(app, id).filter_map(|h| self.host_ix(h)).collect()
    }

    /// Declared host capacity and its use so far in this reconcile (`None`: no host declares
    /// capacity).
    pub fn ledger(&self) -> Option<&Ledger<'a>> {
        self.ledger.as_ref()
    }

    /// Anti-affinities between components (`None`: no application declares any).
    pub fn separation(&self) -> Option<&Separation<'a>> {
        self.separation.as_ref()
    }

    /// Whether scalers' placements depend on what scalers evaluated before them placed (capacity
    /// or anti-affinity): the engine then evaluates scalers in order and records each one's
    /// wants in the ledger and the separation.
    pub fn is_ordered(&self) -> bool {
        self.ledger.is_some() || self.separation.is_some()
    }

    /// The id of host `ix` as a shared string (what commands carry).
    pub fn host_id(&self, ix: HostIx) -> Arc<str> {
        let cell = &self.host_ids[ix as usize];
        Arc::clone(cell.get_or_init(|| Arc::from(self.hosts[ix as usize].id.as_str())))
    }

    /// The time the reconcile is for.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The observed lattice.
    pub fn lattice(&self) -> &'a LatticeState {
        self.lattice
    }

    /// What the desired state declares.
    pub fn catalog(&self) -> &'a Catalog<'a> {
        self.catalog
    }

    /// Live hosts, in id order.
    pub fn hosts(&self) -> &[&'a HostState] {
        &self.hosts
    }

    /// The host at `ix`.
    pub fn host(&self, ix: HostIx) -> &'a HostState {
        self.hosts[ix as usize]
    }

    /// Whether `ix` is the index of a host of this lattice.
    pub fn has_host(&self, ix: HostIx) -> bool {
        (ix as usize) < self.hosts.len()
    }

    /// The index of the host with this id.
    pub fn host_ix(&self, host_id: &str) -> Option<HostIx> {
        self.hosts.binary_search_by(|h| h.id.as_str().cmp(host_id)).ok().map(|i| i as HostIx)
    }

    /// Units running on a host (component instances plus providers), as observed.
    pub fn load(&self, ix: HostIx) -> u32 {
        self.load[ix as usize]
    }

    /// A stable hash of the host id, for tie-breaks.
    pub fn host_hash(&self, ix: HostIx) -> u64 {
        self.host_hash[ix as usize]
    }

    /// Hosts carrying every requirement label with exactly that value, in id order. Computed once
    /// per distinct requirement set per reconcile.
    pub fn eligible_hosts(&self, requirements: &StringMap) -> Rc<[HostIx]> {
        self.selected(requirements).hosts()
    }

    /// The hosts `requirements` select, with their fresh order on demand: one lookup for both.
    pub(crate) fn selected(&self, requirements: &StringMap) -> Selected<'_, 'a> {
        let selection = (!requirements.is_empty()).then(|| self.selection(requirements));
        Selected { ctx: self, selection }
    }

    /// [`Context::selected`] for a non-empty requirement set.
    fn selection(&self, requirements: &StringMap) -> Rc<Selection> {
        if let Some(hit) = self.selections.borrow().get(requirements) {
            return hit.clone();
        }
        // Start from the rarest label and check the rest on each host.
        let lists: Option<Vec<&Vec<HostIx>>> = requirements
            .iter()
            .map(|(k, v)| self.by_label.get(&(k.as_str(), v.as_str())))
            .collect();
        let hosts: Rc<[HostIx]> = match lists.and_then(|l| l.into_iter().min_by_key(|l| l.len())) {
            Some(rarest) => {
                rarest.iter().copied().filter(|ix| self.host(*ix).matches(requirements)).collect()
            }
            None => Rc::from(Vec::new()),
        };
        let selection = Rc::new(Selection { hosts, fresh: OnceCell::new() });
        self.selections.borrow_mut().insert(requirements.clone(), selection.clone());
        selection
    }

    /// The hosts [`Context::eligible_hosts`] returns, in the order fresh placements consider them
    /// (see [`FreshOrder`]). Computed once per distinct requirement set per reconcile, when first
    /// asked for (a converged reconcile places nothing fresh and never does).
    pub fn fresh_order(&self, requirements: &StringMap) -> Rc<FreshOrder> {
        self.selected(requirements).fresh_order()
    }

    fn build_fresh(&self, hosts: &[HostIx]) -> Rc<FreshOrder> {
        Rc::new(FreshOrder::new(hosts.to_vec(), &self.load, &self.host_hash))
    }

    /// Observed instances of a component id, in host order.
    pub fn component_instances(&self, id: &str) -> &[Observed<'a, ComponentInstance>] {
        self.components.get(id)
    }

    /// The observed instance of a component id on a host.
    pub fn component_on(&self, host: HostIx, id: &str) -> Option<&Observed<'a, ComponentInstance>> {
        self.components.on_host(host, id)
    }

    /// Every observed component instance, indexed (for the engine's diff).
    pub(crate) fn component_index(&self) -> &InstanceIndex<'a, ComponentInstance> {
        &self.components
    }

    /// Every observed provider instance, indexed (for the engine's diff).
    pub(crate) fn provider_index(&self) -> &InstanceIndex<'a, ProviderInstance> {
        &self.providers
    }

    /// Observed instances of a provider id, in host order.
    pub fn provider_instances(&self, id: &str) -> &[Observed<'a, ProviderInstance>] {
        self.providers.get(id)
    }

    /// The observed instance of a provider id on a host.
    pub fn provider_on(&self, host: HostIx, id: &str) -> Option<&Observed<'a, ProviderInstance>> {
        self.providers.on_host(host, id)
    }

    /// Whether an instance with these annotations is wadm's, for an application deployed or being
    /// undeployed here (for observed instances, [`Tag::ours`] says the same without a lookup).
    /// Anything else (unmanaged, or annotated with an unknown application) is foreign and never
    /// touched.
    pub fn is_ours(&self, annotations: &StringMap) -> bool {
        owner_app(annotations).is_some_and(|app| self.catalog.is_known_app(app))
    }

    /// Whether a config exists, or is owned by a deployed application (and so is put by this
    /// reconcile before anything that uses it).
    pub fn config_available(&self, name: &str) -> bool {
        self.lattice.configs.contains_key(name) || self.catalog.desired_owned_configs.contains(name)
    }

    /// The external configs among `names` that are not available (see
    /// [`Context::config_available`]): a workload using them must wait.
    pub fn missing_configs<'n>(&self, names: &'n [String]) -> Vec<&'n str> {
        names.iter().filter(|c| !self.config_available(c)).map(String::as_str).collect()
    }
}
