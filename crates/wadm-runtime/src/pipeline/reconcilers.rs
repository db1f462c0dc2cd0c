//! One replica's cache of [`Reconciler`]s, one per lattice it handled recently, keyed by the
//! lattice record's desired state ([`DesiredKey`]): a step with the kept key reads no manifest
//! and builds no scaler. Only an optimisation — an entry whose key differs is never used — and
//! bounded to [`ReconcilerCache::capacity`] lattices (least recently used goes). Why the key is
//! complete: `docs/runtime.md` ("`pipeline::reconcilers`").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wadm_model::Application;
use wadm_scheduler::Reconciler;

use crate::record::{AppRecord, LatticeRecord};

/// Lattices whose reconciler one replica keeps by default.
pub const DEFAULT_CAPACITY: usize = 64;

/// `(application, version)` → its manifest.
pub(crate) type Specs = BTreeMap<(String, String), Application>;

/// What the desired state of a lattice is made of, read from its record alone: per application
/// (in name order) the fields loading the desired state reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredKey(Vec<AppKey>);

/// One application's part of a [`DesiredKey`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AppKey {
    name: String,
    store_generation: u64,
    deployed_version: Option<String>,
    previous_version: Option<String>,
    last_version: Option<String>,
    promoted: bool,
}

impl AppKey {
    fn of(name: &str, app: &AppRecord) -> Self {
        Self {
            name: name.to_string(),
            store_generation: app.store_generation,
            deployed_version: app.deployed_version.clone(),
            previous_version: app.previous_version.clone(),
            last_version: app.last_version.clone(),
            promoted: app.promoted,
        }
    }

    fn matches(&self, name: &str, app: &AppRecord) -> bool {
        self.name == name
            && self.store_generation == app.store_generation
            && self.deployed_version == app.deployed_version
            && self.previous_version == app.previous_version
            && self.last_version == app.last_version
            && self.promoted == app.promoted
    }
}

impl DesiredKey {
    /// The key of `record`'s desired state.
    pub fn of(record: &LatticeRecord) -> Self {
        Self(record.apps.iter().map(|(name, app)| AppKey::of(name, app)).collect())
    }

    /// Whether `record`'s desired state has this key (compared in place, no allocation).
    pub fn matches(&self, record: &LatticeRecord) -> bool {
        self.0.len() == record.apps.len()
            && self.0.iter().zip(&record.apps).all(|(key, (name, app))| key.matches(name, app))
    }
}

struct Entry {
    key: DesiredKey,
    reconciler: Arc<Reconciler>,
    /// The manifests it was built from.
    specs: Arc<Specs>,
    /// Every manifest it refers to was found (otherwise it is never reused).
    complete: bool,
    /// When it was last used, in uses of the cache.
    used: u64,
}

/// Reconcilers kept per lattice (see the module docs).
pub struct ReconcilerCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    uses: u64,
    built: u64,
}

impl Default for ReconcilerCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ReconcilerCache {
    /// A cache keeping at most `capacity` lattices (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    /// At most this many lattices are kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept reconciler of `lattice` when it was built from exactly `record`'s desired state.
    pub fn get(&self, lattice: &str, record: &LatticeRecord) -> Option<Arc<Reconciler>> {
        let mut inner = self.lock();
        inner.uses += 1;
        let uses = inner.uses;
        let entry = inner.entries.get_mut(lattice)?;
        if !entry.complete || !entry.key.matches(record) {
            return None;
        }
        entry.used = uses;
        Some(entry.reconciler.clone())
    }

    /// The manifests the kept entry of `lattice` was built from (to reuse in a rebuild).
    pub(crate) fn specs(&self, lattice: &str) -> Option<Arc<Specs>> {
        self.lock().entries.get(lattice).map(|e| e.specs.clone())
    }

    /// Keep `reconciler`, built from `record`'s desired state with `specs`, for `lattice`;
    /// `complete`: every manifest it refers to was found.
    pub(crate) fn insert(
        &self,
        lattice: &str,
        record: &LatticeRecord,
        reconciler: Arc<Reconciler>,
        specs: Specs,
        complete: bool,
    ) {
        let mut inner = self.lock();
        inner.uses += 1;
        inner.built += 1;
        let entry = Entry {
            key: DesiredKey::of(record),
            reconciler,
            specs: Arc::new(specs),
            complete,
            used: inner.uses,
        };
        inner.entries.insert(lattice.to_string(), entry);
        while inner.entries.len() > self.capacity {
            let oldest = inner.entries.iter().min_by_key(|(_, e)| e.used).map(|(l, _)| l.clone());
            match oldest {
                Some(lattice) => inner.entries.remove(&lattice),
                None => break,
            };
        }
    }

    /// Make the next step of `lattice` build its reconciler again (its manifests stay known):
    /// for measuring what keeping it saves.
    pub fn invalidate(&self, lattice: &str) {
        if let Some(entry) = self.lock().entries.get_mut(lattice) {
            entry.complete = false;
        }
    }

    /// Lattices kept now, in name order.
    pub fn lattices(&self) -> Vec<String> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Reconcilers built since the cache was made.
    pub fn built(&self) -> u64 {
        self.lock().built
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(apps: &[(&str, u64, Option<&str>)]) -> LatticeRecord {
        let mut record = LatticeRecord::default();
        for (name, generation, version) in apps {
            let app = AppRecord {
                store_generation: *generation,
                deployed_version: version.map(str::to_string),
                last_version: version.map(str::to_string),
                ..AppRecord::default()
            };
            record.apps.insert(name.to_string(), app);
        }
        record
    }

    fn reconciler(lattice: &str) -> Arc<Reconciler> {
        Arc::new(Reconciler::new(lattice, Vec::new(), Vec::new()))
    }

    #[test]
    fn the_key_covers_every_field_desired_state_is_loaded_from() {
        let base = record(&[("a", 1, Some("v1")), ("b", 2, Some("v1"))]);
        let key = DesiredKey::of(&base);
        assert!(key.matches(&base));
        let changes: [fn(&mut LatticeRecord); 7] = [
            |r| r.apps.get_mut("a").unwrap().store_generation += 1,
            |r| r.apps.get_mut("a").unwrap().deployed_version = None,
            |r| r.apps.get_mut("a").unwrap().previous_version = Some("v0".into()),
            |r| r.apps.get_mut("a").unwrap().last_version = Some("v2".into()),
            |r| {
                r.apps.remove("b");
            },
            |r| {
                r.apps.insert("c".into(), AppRecord::default());
            },
            |r| {
                let b = r.apps.remove("b").unwrap();
                r.apps.insert("z".into(), b);
            },
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert!(!key.matches(&changed), "change {i} must change the key");
        }
        // What loading does not read leaves the key alone.
        let mut other = base.clone();
        other.intents = crate::intents::Intents::default();
        other.last_sequence = 42;
        assert!(key.matches(&other));
    }

    #[test]
    fn an_entry_is_used_only_for_its_key_and_only_when_complete() {
        let cache = ReconcilerCache::new(4);
        let v1 = record(&[("a", 1, Some("v1"))]);
        let v2 = record(&[("a", 2, Some("v2"))]);
        assert!(cache.get("l", &v1).is_none());
        cache.insert("l", &v1, reconciler("l"), Specs::new(), true);
        assert!(cache.get("l", &v1).is_some());
        assert!(cache.get("l", &v2).is_none(), "another desired state");
        assert!(cache.get("m", &v1).is_none(), "another lattice");
        cache.insert("l", &v2, reconciler("l"), Specs::new(), false);
        assert!(cache.get("l", &v2).is_none(), "a manifest was missing: never reused");
        assert_eq!(cache.built(), 2);
    }

    #[test]
    fn at_most_capacity_lattices_are_kept_the_least_recently_used_goes() {
        let cache = ReconcilerCache::new(2);
        let r = record(&[]);
        cache.insert("a", &r, reconciler("a"), Specs::new(), true);
        cache.insert("b", &r, reconciler("b"), Specs::new(), true);
        assert!(cache.get("a", &r).is_some());
        cache.insert("c", &r, reconciler("c"), Specs::new(), true);
        assert_eq!(cache.lattices(), vec!["a".to_string(), "c".to_string()]);
        assert!(ReconcilerCache::new(0).capacity() == 1);
    }
}
