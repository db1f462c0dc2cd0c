//! The read-only view scalers evaluate against: the observed lattice, indexed once per reconcile
//! (hosts by label, instances by id, host load), plus ownership and config availability derived
//! from the desired state.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use wadm_lattice::{ComponentInstance, HostState, LatticeState, ProviderInstance};
use wadm_model::{APP_SPEC_ANNOTATION, MANAGED_BY_ANNOTATION, MANAGED_BY_WADM};
use wadm_protocol::StringMap;

use crate::catalog::Catalog;
use crate::hash::{FnvMap, fnv1a64};

/// Index of a host in [`Context::hosts`] (hosts are in id order).
pub type HostIx = u32;

/// The observed lattice as scalers see it.
pub struct Context<'a> {
    lattice: &'a LatticeState,
    catalog: &'a Catalog<'a>,
    hosts: Vec<&'a HostState>,
    load: Vec<u32>,
    host_hash: Vec<u64>,
    // Lookup-only indexes (never iterated, so hash order cannot leak into results).
    by_label: FnvMap<(&'a str, &'a str), Vec<HostIx>>,
    components: FnvMap<&'a str, Vec<(HostIx, &'a ComponentInstance)>>,
    providers: FnvMap<&'a str, Vec<(HostIx, &'a ProviderInstance)>>,
    eligible: RefCell<BTreeMap<StringMap, Rc<[HostIx]>>>,
}

impl<'a> Context<'a> {
    /// Index `lattice` for scalers working for the applications in `catalog`.
    pub fn new(lattice: &'a LatticeState, catalog: &'a Catalog<'a>) -> Self {
        let hosts: Vec<&HostState> = lattice.hosts.values().collect();
        let mut by_label: FnvMap<(&str, &str), Vec<HostIx>> = FnvMap::default();
        let components_n = hosts.iter().map(|h| h.components.len()).sum();
        let providers_n = hosts.iter().map(|h| h.providers.len()).sum();
        let mut components: FnvMap<&str, Vec<(HostIx, &ComponentInstance)>> =
            FnvMap::with_capacity_and_hasher(components_n, Default::default());
        let mut providers: FnvMap<&str, Vec<(HostIx, &ProviderInstance)>> =
            FnvMap::with_capacity_and_hasher(providers_n, Default::default());
        let mut load = Vec::with_capacity(hosts.len());
        let mut host_hash = Vec::with_capacity(hosts.len());
        for (ix, host) in hosts.iter().enumerate() {
            let ix = ix as HostIx;
            for (k, v) in &host.labels {
                by_label.entry((k.as_str(), v.as_str())).or_default().push(ix);
            }
            let mut units = 0u32;
            for (id, c) in &host.components {
                components.entry(id.as_str()).or_default().push((ix, c));
                units = units.saturating_add(c.count);
            }
            for (id, p) in &host.providers {
                providers.entry(id.as_str()).or_default().push((ix, p));
                units = units.saturating_add(1);
            }
            load.push(units);
            host_hash.push(fnv1a64(host.id.as_bytes()));
        }
        Self {
            lattice,
            catalog,
            hosts,
            load,
            host_hash,
            by_label,
            components,
            providers,
            eligible: RefCell::new(BTreeMap::new()),
        }
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

    /// The index of the host with this id.
    pub fn host_ix(&self, host_id: &str) -> Option<HostIx> {
        self.hosts.binary_search_by(|h| h.id.as_str().cmp(host_id)).ok().map(|i| i as HostIx)
    }

    /// Units running on a host (component instances plus providers), as observed.
    pub fn load(&self, ix: HostIx) -> u32 {
        self.load[ix as usize]
    }

    /// A stable hash of the host id, for rendezvous tie-breaks.
    pub fn host_hash(&self, ix: HostIx) -> u64 {
        self.host_hash[ix as usize]
    }

    /// Hosts carrying every requirement label with exactly that value, in id order. Computed once
    /// per distinct requirement set per reconcile.
    pub fn eligible_hosts(&self, requirements: &StringMap) -> Rc<[HostIx]> {
        if let Some(hit) = self.eligible.borrow().get(requirements) {
            return hit.clone();
        }
        let hosts: Rc<[HostIx]> = if requirements.is_empty() {
            (0..self.hosts.len() as HostIx).collect()
        } else {
            // Start from the rarest label and check the rest on each host.
            let lists: Option<Vec<&Vec<HostIx>>> = requirements
                .iter()
                .map(|(k, v)| self.by_label.get(&(k.as_str(), v.as_str())))
                .collect();
            match lists.and_then(|l| l.into_iter().min_by_key(|l| l.len())) {
                Some(rarest) => rarest
                    .iter()
                    .copied()
                    .filter(|ix| self.host(*ix).matches(requirements))
                    .collect(),
                None => Rc::from(Vec::new()),
            }
        };
        self.eligible.borrow_mut().insert(requirements.clone(), hosts.clone());
        hosts
    }

    /// Observed instances of a component id, in host order.
    pub fn component_instances(&self, id: &str) -> &[(HostIx, &'a ComponentInstance)] {
        self.components.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Observed instances of a provider id, in host order.
    pub fn provider_instances(&self, id: &str) -> &[(HostIx, &'a ProviderInstance)] {
        self.providers.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether an instance with these annotations is wadm's, for an application deployed or being
    /// undeployed here. Anything else (unmanaged, or annotated with an unknown application) is
    /// foreign and never touched.
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

/// The application a wadm-managed instance belongs to, from its annotations.
pub fn owner_app(annotations: &StringMap) -> Option<&str> {
    if annotations.get(MANAGED_BY_ANNOTATION).map(String::as_str) != Some(MANAGED_BY_WADM) {
        return None;
    }
    annotations.get(APP_SPEC_ANNOTATION).map(String::as_str)
}
