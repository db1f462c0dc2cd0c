//! Observed instances as scalers and the engine read them: grouped by id, in host order, each with
//! what wadm's annotations on it say ([`Tag`]) read once per reconcile instead of once per
//! question.

use std::collections::BTreeMap;

use wadm_lattice::HostState;
use wadm_model::{
    APP_SPEC_ANNOTATION, MANAGED_BY_ANNOTATION, MANAGED_BY_WADM, SCALER_ANNOTATION,
    SPREAD_NAME_ANNOTATION,
};
use wadm_protocol::StringMap;

use crate::catalog::Catalog;
use crate::hash::FnvMap;
use crate::host_index::HostIx;

/// What wadm's placement annotations on an instance say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The application, when the instance is managed by wadm.
    pub app: Option<&'a str>,
    /// Managed by wadm for an application deployed or being undeployed here. Anything else
    /// (unmanaged, or for an unknown application) is foreign and never touched.
    pub ours: bool,
    /// The scaler that placed it.
    pub scaler: Option<&'a str>,
    /// The spread it was placed for.
    pub spread: Option<&'a str>,
    /// The annotations are exactly the four placement keys (managed-by, application, scaler,
    /// spread) and nothing else: what a placement want sets.
    pub placement_only: bool,
}

impl<'a> Tag<'a> {
    /// Read `annotations` in one pass (the keys are looked at in map order, no searches).
    pub fn read(annotations: &'a StringMap, catalog: &Catalog<'_>) -> Self {
        let mut tag = Tag::default();
        let mut managed = false;
        let mut placement_keys = 0;
        for (key, value) in annotations {
            let value = value.as_str();
            match key.as_str() {
                APP_SPEC_ANNOTATION => tag.app = Some(value),
                MANAGED_BY_ANNOTATION => managed = value == MANAGED_BY_WADM,
                SCALER_ANNOTATION => tag.scaler = Some(value),
                SPREAD_NAME_ANNOTATION => tag.spread = Some(value),
                _ => continue,
            }
            placement_keys += 1;
        }
        if !managed {
            tag.app = None;
        }
        tag.ours = tag.app.is_some_and(|app| catalog.is_known_app(app));
        tag.placement_only = managed && placement_keys == 4 && annotations.len() == 4;
        tag
    }

    /// Whether the instance was placed by `scaler_id` of `app`.
    pub fn placed_by(&self, app: &str, scaler_id: &str) -> bool {
        self.app == Some(app) && self.scaler == Some(scaler_id)
    }
}

/// One observed instance.
#[derive(Debug)]
pub struct Observed<'a, T> {
    /// The host running it.
    pub host: HostIx,
    /// Its id (the host's key for it).
    pub id: &'a str,
    /// The instance as observed.
    pub instance: &'a T,
    /// What wadm's annotations on it say.
    pub tag: Tag<'a>,
}

/// Every instance of one kind, grouped by id in one allocation: `ids` numbers each id (in order of
/// first appearance, hosts in index order), `ranges[n]` is id `n`'s slice of `entries`, which holds
/// its instances in host order. Lookup only: the map is never iterated, so its order cannot leak.
pub(crate) struct InstanceIndex<'a, T> {
    ids: FnvMap<&'a str, u32>,
    ranges: Vec<(u32, u32)>,
    entries: Vec<Observed<'a, T>>,
}

impl<'a, T> InstanceIndex<'a, T> {
    /// Index what `instances` returns for each host (hosts given in index order).
    pub(crate) fn new(
        hosts: &[&'a HostState],
        catalog: &Catalog<'_>,
        instances: impl Fn(&'a HostState) -> &'a BTreeMap<String, T>,
        annotations: impl Fn(&'a T) -> &'a StringMap,
    ) -> Self {
        // Number the ids and count their instances (one hash per instance), lay the ids out back
        // to back, then fill each id's slice in host order.
        let total = hosts.iter().map(|h| instances(h).len()).sum();
        let mut ids: FnvMap<&'a str, u32> =
            FnvMap::with_capacity_and_hasher(total, Default::default());
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut numbered: Vec<u32> = Vec::with_capacity(total);
        for host in hosts {
            for id in instances(host).keys() {
                let n = *ids.entry(id.as_str()).or_insert_with(|| {
                    ranges.push((0, 0));
                    (ranges.len() - 1) as u32
                });
                ranges[n as usize].1 += 1;
                numbered.push(n);
            }
        }
        let mut next = 0u32;
        for (start, len) in &mut ranges {
            (*start, next) = (next, next + *len);
            *len = 0;
        }
        let mut slots: Vec<Option<Observed<'a, T>>> = Vec::with_capacity(total);
        slots.resize_with(total, || None);
        let all = hosts.iter().enumerate().flat_map(|(ix, host)| {
            instances(host).iter().map(move |(id, instance)| (ix as HostIx, id.as_str(), instance))
        });
        for ((host, id, instance), n) in all.zip(numbered) {
            let (start, len) = &mut ranges[n as usize];
            let tag = Tag::read(annotations(instance), catalog);
            slots[(*start + *len) as usize] = Some(Observed { host, id, instance, tag });
            *len += 1;
        }
        // Every slot is filled. `filter_map` (unlike `flatten`) collects in place, reusing the
        // slots' buffer instead of copying every entry into a new one.
        #[allow(clippy::filter_map_identity)]
        let entries = slots.into_iter().filter_map(|slot| slot).collect();
        Self { ids, ranges, entries }
    }

    /// The instances of `id`, in host order.
    pub(crate) fn get(&self, id: &str) -> &[Observed<'a, T>] {
        match self.ids.get(id) {
            Some(&n) => {
                let (start, len) = self.ranges[n as usize];
                &self.entries[start as usize..(start + len) as usize]
            }
            None => &[],
        }
    }

    /// The instance of `id` on `host`.
    pub(crate) fn on_host(&self, host: HostIx, id: &str) -> Option<&Observed<'a, T>> {
        self.position(host, id).map(|i| &self.entries[i])
    }

    /// Where the instance of `id` on `host` is in [`InstanceIndex::all`].
    pub(crate) fn position(&self, host: HostIx, id: &str) -> Option<usize> {
        let &n = self.ids.get(id)?;
        let (start, len) = self.ranges[n as usize];
        let all = &self.entries[start as usize..(start + len) as usize];
        let at = all.binary_search_by_key(&host, |o| o.host).ok()?;
        Some(start as usize + at)
    }

    /// Every instance (grouped by id; each id's instances in host order).
    pub(crate) fn all(&self) -> &[Observed<'a, T>] {
        &self.entries
    }
}

/// Which observed instances of an index some want covers: the engine's diff marks each want's
/// instance, then stops the instances of ours that nothing covered.
pub(crate) struct Coverage<'i, 'a, T> {
    index: &'i InstanceIndex<'a, T>,
    covered: Vec<bool>,
}

impl<'i, 'a, T> Coverage<'i, 'a, T> {
    pub(crate) fn new(index: &'i InstanceIndex<'a, T>) -> Self {
        Self { index, covered: vec![false; index.all().len()] }
    }

    /// The instance of `id` on `host`, if one runs, now marked as covered.
    pub(crate) fn cover(&mut self, host: HostIx, id: &str) -> Option<&'i Observed<'a, T>> {
        let at = self.index.position(host, id)?;
        self.covered[at] = true;
        Some(&self.index.all()[at])
    }

    /// The instances of ours (with their application) that nothing covered.
    pub(crate) fn uncovered_ours(self) -> impl Iterator<Item = (&'a str, &'i Observed<'a, T>)> {
        let index = self.index;
        index.all().iter().zip(self.covered).filter_map(|(observed, covered)| match observed.tag {
            Tag { app: Some(app), ours: true, .. } if !covered => Some((app, observed)),
            _ => None,
        })
    }
}

/// The application a wadm-managed instance belongs to, from its annotations.
pub fn owner_app(annotations: &StringMap) -> Option<&str> {
    if annotations.get(MANAGED_BY_ANNOTATION).map(String::as_str) != Some(MANAGED_BY_WADM) {
        return None;
    }
    annotations.get(APP_SPEC_ANNOTATION).map(String::as_str)
}
