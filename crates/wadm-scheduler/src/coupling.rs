//! Which applications a reconcile of only some must include: the closure of a set of
//! applications over everything that couples one application's plan to another's — shared keys
//! (workload ids, link keys, config names), removals of what is observed (an instance, link or
//! config an application owns is removed unless some want covers it) and, when any host declares
//! capacity, everything. A union-find over application names groups them; a plan of a closed
//! group equals the full plan restricted to it (property-tested). Why each relation couples:
//! `docs/scheduler.md`, "Coupling".

use std::collections::BTreeSet;

use wadm_model::Source;
use wadm_protocol::LinkKey;

use crate::catalog::{Catalog, owned_config_names};
use crate::context::{Context, Tag};
use crate::hash::FnvMap;
use crate::scaler::Scaler;

/// The coupling of a desired state's applications through shared keys.
#[derive(Debug, Default)]
pub(crate) struct Coupling {
    /// Every known application (deployed or undeployed) → its index.
    index: FnvMap<String, u32>,
    /// The application names by index.
    names: Vec<String>,
    /// Each application's group after the shared-key unions (a root per group).
    roots: Vec<u32>,
    /// A workload id, link key or config name → one application wanting it (all of them are in
    /// one group). Lookup only.
    by_id: FnvMap<String, u32>,
    by_link: FnvMap<LinkKey, u32>,
    by_config: FnvMap<String, u32>,
    /// Each application's scalers (indexes into the scalers the coupling was built with).
    scalers: Vec<Vec<u32>>,
}

/// Some applications with everything coupled to them.
pub(crate) struct Closure<'n> {
    /// In name order.
    pub apps: BTreeSet<&'n str>,
    /// Their scalers, in index order.
    pub scalers: Vec<usize>,
}

impl Coupling {
    /// The groups of `catalog`'s applications by what their manifests may want, and which of
    /// `scalers` (built from `catalog`) works for each.
    pub(crate) fn new(catalog: &Catalog<'_>, scalers: &[Box<dyn Scaler>]) -> Self {
        let mut c = Coupling::default();
        let names = catalog.deployed.keys().chain(catalog.undeployed.keys());
        for name in names {
            if !c.index.contains_key(*name) {
                c.index.insert(name.to_string(), c.names.len() as u32);
                c.names.push(name.to_string());
            }
        }
        let mut parent: Vec<u32> = (0..c.names.len() as u32).collect();
        for (name, d) in &catalog.deployed {
            let me = c.index[*name];
            for comp in &d.app.components {
                if let Source::Image(_) = comp.source {
                    claim(&mut parent, &mut c.by_id, comp.id.clone(), me);
                }
                let Ok(source_id) = catalog.lattice_id(comp) else { continue };
                for link in &comp.links {
                    let key = LinkKey {
                        source_id: source_id.clone(),
                        wit_namespace: link.namespace.clone(),
                        wit_package: link.package.clone(),
                        name: link.name.clone(),
                    };
                    claim(&mut parent, &mut c.by_link, key, me);
                }
            }
            for config in owned_config_names(&d.app) {
                claim(&mut parent, &mut c.by_config, config, me);
            }
        }
        c.roots = (0..parent.len() as u32).map(|i| find(&mut parent, i)).collect();
        c.scalers = vec![Vec::new(); c.names.len()];
        for (i, scaler) in scalers.iter().enumerate() {
            if let Some(&app) = c.index.get(&*scaler.info().app) {
                c.scalers[app as usize].push(i as u32);
            }
        }
        c
    }

    /// `apps` (names of known applications; others are ignored) with every application coupled
    /// to them in `ctx`'s observed lattice.
    pub(crate) fn closure<'n>(
        &'n self,
        ctx: &Context<'_>,
        apps: impl IntoIterator<Item = &'n str>,
    ) -> Closure<'n> {
        let mut parent = self.roots.clone();
        let catalog = ctx.catalog();
        let mut tie = |owner: Option<&str>, wanter: Option<&u32>| {
            if let (Some(owner), Some(&wanter)) = (owner.and_then(|o| self.index.get(o)), wanter) {
                union(&mut parent, *owner, wanter);
            }
        };
        let components = ctx.component_index().all().iter().map(|o| (&o.tag, o.id));
        let providers = ctx.provider_index().all().iter().map(|o| (&o.tag, o.id));
        for (tag, id) in components.chain(providers) {
            if let Tag { ours: true, app: Some(app), .. } = tag {
                tie(Some(app), self.by_id.get(id));
            }
        }
        let observed = ctx.lattice();
        for key in observed.links.keys() {
            if let Some(wanter) = self.by_link.get(key) {
                tie(catalog.link_owner(key), Some(wanter));
            }
        }
        // (Defensive: a config some application wants is owned by one that wants it too.)
        for name in observed.configs.keys() {
            if let Some(wanter) = self.by_config.get(name.as_str()) {
                tie(catalog.config_owner(name), Some(wanter));
            }
        }
        if ctx.ledger().is_some() {
            // Declared capacity: any application's placement may take room another one wanted.
            for i in 1..self.names.len() as u32 {
                union(&mut parent, 0, i);
            }
        }
        let mut groups: BTreeSet<u32> = BTreeSet::new();
        for app in apps {
            if let Some(&i) = self.index.get(app) {
                groups.insert(find(&mut parent, i));
            }
        }
        let mut closure = Closure { apps: BTreeSet::new(), scalers: Vec::new() };
        if groups.is_empty() {
            return closure;
        }
        for i in 0..self.names.len() as u32 {
            if groups.contains(&find(&mut parent, i)) {
                closure.apps.insert(self.names[i as usize].as_str());
                closure.scalers.extend(self.scalers[i as usize].iter().map(|s| *s as usize));
            }
        }
        closure.scalers.sort_unstable();
        closure
    }
}

/// Record that `app` may want `key`: it joins the group of the application that claimed it first.
fn claim<K: std::hash::Hash + Eq>(
    parent: &mut [u32],
    claims: &mut FnvMap<K, u32>,
    key: K,
    app: u32,
) {
    let first = *claims.entry(key).or_insert(app);
    union(parent, first, app);
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let up = parent[parent[i as usize] as usize];
        parent[i as usize] = up;
        i = up;
    }
    i
}

/// Join two groups; the smaller root stays the root (deterministic, and independent of order).
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (a, b) = (find(parent, a), find(parent, b));
    if a != b {
        let (low, high) = if a < b { (a, b) } else { (b, a) };
        parent[high as usize] = low;
    }
}
