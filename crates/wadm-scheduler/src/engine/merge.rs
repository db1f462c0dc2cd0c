//! Merging every scaler's wants into one wanted state, whatever the order the scalers ran in:
//! when several scalers want the same thing (a component or provider id on a host, a link key, a
//! config name), the smallest owner — (application, scaler id) — decides its details.
//!
//! Workload wants are collected and sorted once by (host index, id, owner) rather than inserted
//! into a tree one by one: bucketed by host (integers), then each host's few wants by id and owner,
//! so equal keys are adjacent with the deciding owner first.

use std::collections::BTreeMap;
use std::sync::Arc;

use wadm_protocol::{Link, LinkKey, StringMap, normalize_provider_ref};

use crate::context::{Context, HostIx};
use crate::scaler::{ComponentWant, ProviderWant, ScalerInfo, Want, co_owner_key};

/// (application, scaler id) of the scaler whose want is kept.
pub(super) type Owner<'e> = (&'e str, &'e str);

/// A workload want's key: (host index, component or provider id).
pub(super) type WorkloadKey<'e> = (HostIx, &'e str);

/// One workload want with its key and owner.
pub(super) struct Keyed<'e, W> {
    pub key: WorkloadKey<'e>,
    pub owner: Owner<'e>,
    pub want: &'e W,
}

// Copied whatever `W` is (it holds a reference to it).
impl<W> Clone for Keyed<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for Keyed<'_, W> {}

impl<W> Keyed<'_, W> {
    /// By key, then owner.
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.key, a.owner).cmp(&(b.key, b.owner))
    }
}

/// Every scaler's wants, merged; borrows from the evaluations. Wants for hosts that are not in the
/// lattice are dropped (nothing can be sent to them).
#[derive(Default)]
pub(super) struct Merged<'e> {
    /// One per key, the smallest owner's, in key order.
    pub components: Vec<Keyed<'e, ComponentWant>>,
    /// Every want, in (key, owner) order: see [`Merged::providers`].
    providers: Vec<Keyed<'e, ProviderWant>>,
    pub links: BTreeMap<LinkKey, (Owner<'e>, &'e Link)>,
    pub configs: BTreeMap<&'e str, (Owner<'e>, &'e StringMap)>,
}

impl<'e> Merged<'e> {
    /// Merge the wants of each (scaler, wants) pair.
    pub(super) fn new(
        ctx: &Context<'_>,
        evaluations: impl Iterator<Item = (&'e ScalerInfo, &'e [Want])>,
    ) -> Self {
        let mut merged = Merged::default();
        let (wanted, _) = evaluations.size_hint();
        merged.components.reserve(wanted);
        for (info, wants) in evaluations {
            let owner = (&*info.app, &*info.id);
            for want in wants {
                match want {
                    Want::Component(w) if ctx.has_host(w.host) => {
                        let key = (w.host, &*w.component_id);
                        merged.components.push(Keyed { key, owner, want: w });
                    }
                    Want::Provider(w) if ctx.has_host(w.host) => {
                        let key = (w.host, &*w.provider_id);
                        merged.providers.push(Keyed { key, owner, want: w });
                    }
                    Want::Component(_) | Want::Provider(_) => {}
                    Want::Link(l) => keep_min(&mut merged.links, l.key(), owner, l),
                    Want::Config { name, values } => {
                        keep_min(&mut merged.configs, name.as_str(), owner, values)
                    }
                }
            }
        }
        // Stable: a scaler wanting one key twice keeps its first want.
        merged.components = sort_keyed(&merged.components, ctx.hosts().len());
        merged.components.dedup_by(|later, first| later.key == first.key);
        merged.providers = sort_keyed(&merged.providers, ctx.hosts().len());
        merged
    }

    /// How many wants were merged: about as many commands as the plan can have for them.
    pub(super) fn len(&self) -> usize {
        self.components.len() + self.providers.len() + self.links.len() + self.configs.len()
    }

    /// The provider wants of each key, in key order.
    pub(super) fn providers(&self) -> impl Iterator<Item = ProviderWanters<'_, 'e>> {
        self.providers.chunk_by(|a, b| a.key == b.key).map(|group| {
            let (first, others) = group.split_first().expect("chunks are never empty");
            ProviderWanters { key: first.key, owner: first.owner, want: first.want, others }
        })
    }
}

/// `wants` in (key, owner) order, stably: bucketed by host first (a counting sort over the host
/// indexes, linear), then each host's few wants sorted by (id, owner).
fn sort_keyed<'e, W>(wants: &[Keyed<'e, W>], hosts: usize) -> Vec<Keyed<'e, W>> {
    let mut starts = vec![0u32; hosts + 1];
    for w in wants {
        starts[w.key.0 as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let Some(first) = wants.first() else { return Vec::new() };
    // Every slot is overwritten below (one want per slot).
    let mut sorted: Vec<Keyed<'e, W>> = vec![*first; wants.len()];
    let mut next = starts.clone();
    for w in wants {
        let at = &mut next[w.key.0 as usize];
        sorted[*at as usize] = *w;
        *at += 1;
    }
    for host in starts.windows(2) {
        let bucket = &mut sorted[host[0] as usize..host[1] as usize];
        if bucket.len() > 1 {
            bucket.sort_by(Keyed::order);
        }
    }
    sorted
}

fn keep_min<'e, K: Ord, V>(
    map: &mut BTreeMap<K, (Owner<'e>, V)>,
    key: K,
    owner: Owner<'e>,
    value: V,
) {
    match map.get(&key) {
        Some((existing, _)) if *existing <= owner => {}
        _ => {
            map.insert(key, (owner, value));
        }
    }
}

/// Every scaler wanting one provider id on one host: the smallest owner decides, the others are
/// recorded on the instance when it starts (see [`crate::scaler::CO_OWNER_ANNOTATION_PREFIX`]).
pub(super) struct ProviderWanters<'m, 'e> {
    pub key: WorkloadKey<'e>,
    pub owner: Owner<'e>,
    pub want: &'e ProviderWant,
    others: &'m [Keyed<'e, ProviderWant>],
}

impl ProviderWanters<'_, '_> {
    /// The winner's annotations plus, for each scaler of another application wanting the same
    /// image here, `{prefix}{app}/{scaler}` = its spread name.
    pub(super) fn start_annotations(&self) -> Arc<StringMap> {
        let mut annotations = self.want.annotations.to_map();
        let image = normalize_provider_ref(&self.want.image_ref);
        for other in self.others {
            let ((app, scaler), w) = (other.owner, other.want);
            if app == self.owner.0 || normalize_provider_ref(&w.image_ref) != image {
                continue;
            }
            let spread = w.annotations.spread_name().unwrap_or_default();
            Arc::make_mut(&mut annotations).insert(co_owner_key(app, scaler), spread.to_string());
        }
        annotations
    }
}
