//! The [`Scaler`] trait — the extension point for scheduling — and the built-in scalers.
//!
//! A scaler looks at the observed lattice (through a [`Context`]) and says what it *wants* to
//! exist: component instances with a count on a host, providers on a host, links, configs. It
//! never issues commands itself and never sees what other scalers want: the engine
//! ([`crate::plan_with`]) merges every scaler's wants, compares them with the lattice and derives
//! the commands, so the plan does not depend on the order in which scalers run. The rules an
//! implementation follows: `docs/scheduler.md`, "Writing a scaler".

pub(crate) mod component;
pub(crate) mod config;
pub(crate) mod link;
pub(crate) mod placement;
pub(crate) mod provider;

use std::sync::Arc;

use wadm_model::{ScalerSpec, StatusInfo};
use wadm_protocol::{Link, StringMap};

pub(crate) use crate::command::EncodedMap;
use crate::context::{Context, HostIx, Tag};

/// Who a scaler is and who it works for. Ordered by application, rank, id, kind, then name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerInfo {
    /// The application it belongs to (shared by the application's scalers).
    pub app: Arc<str>,
    /// Position in the application's status list (manifest order for built-in scalers).
    pub rank: u32,
    /// Unique within the application and stable across reconciles; it is the value of the
    /// `wasmcloud.dev/scaler` annotation on what the scaler places. Shared with the statuses.
    pub id: Arc<str>,
    /// E.g. `SpreadScaler`, `ProviderDaemonScaler`, `LinkScaler`, `ConfigScaler`.
    pub kind: Arc<str>,
    /// What it scales (component name, link name, config name).
    pub name: Arc<str>,
}

impl Ord for ScalerInfo {
    /// The derived order (fields in declaration order), without comparing the application's
    /// name when both share it (scalers of one application share one `Arc`).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let app = if Arc::ptr_eq(&self.app, &other.app) {
            std::cmp::Ordering::Equal
        } else {
            self.app.cmp(&other.app)
        };
        app.then_with(|| self.rank.cmp(&other.rank))
            .then_with(|| self.id.cmp(&other.id))
            .then_with(|| self.kind.cmp(&other.kind))
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for ScalerInfo {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A scaler's identity and spreads, shared (not copied) by every want it makes, so the
/// annotations of a want are only built when a command carries them: a converged reconcile sends
/// nothing and builds none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placer {
    /// The scaler's identity (application, id, name).
    pub info: ScalerInfo,
    /// Its instances, spreads and placement settings.
    pub spec: ScalerSpec,
    /// Each spread's placement annotations, built on first use and shared by every command.
    pub annotations: SpreadAnnotations,
}

/// The placement annotation maps of a placer's spreads (index = spread), built once on first use:
/// every command placing for one spread shares one map. Never part of a placer's identity.
#[derive(Debug, Clone, Default)]
pub struct SpreadAnnotations(std::sync::OnceLock<Vec<EncodedMap>>);

impl PartialEq for SpreadAnnotations {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SpreadAnnotations {}

impl Placer {
    /// A placer of `spec` for the scaler `info`.
    pub fn new(info: ScalerInfo, spec: ScalerSpec) -> Self {
        Self { info, spec, annotations: SpreadAnnotations::default() }
    }

    /// The placement annotations of spread `spread` (see [`placement_annotations`]).
    pub fn spread_annotations(&self, spread: usize) -> Arc<StringMap> {
        match self.encoded_annotations(spread) {
            Some(known) => Arc::clone(&known.map),
            None => Arc::new(self.build_annotations(spread)),
        }
    }

    /// The shared annotations of spread `spread` with their id encoding (`None`: no such spread).
    pub(crate) fn encoded_annotations(&self, spread: usize) -> Option<&EncodedMap> {
        let build = |i: usize| EncodedMap::new(self.build_annotations(i));
        let maps = self
            .annotations
            .0
            .get_or_init(|| (0..self.spec.spreads.len().max(1)).map(build).collect());
        maps.get(spread)
    }

    fn build_annotations(&self, spread: usize) -> StringMap {
        let name = self.spec.spreads.get(spread).map_or("", |s| s.name.as_str());
        placement_annotations(&self.info.app, &self.info.id, name)
    }

    /// The scaler's info, moved out when this is the last reference (else copied).
    pub fn into_info(placer: Arc<Self>) -> ScalerInfo {
        Arc::try_unwrap(placer).map_or_else(|shared| shared.info.clone(), |p| p.info)
    }
}

/// What a workload scaler (component or provider) is built from: one scaler trait of one entry.
#[derive(Debug, Clone)]
pub(crate) struct WorkloadTrait<'a> {
    pub info: ScalerInfo,
    pub mode: placement::Mode,
    /// The component or provider id.
    pub id: &'a str,
    pub image_ref: &'a str,
    /// Config and secret config names passed to the host, in manifest order.
    pub config: Vec<String>,
    /// Names of configs that must already exist (not owned by the application).
    pub external_config: Vec<String>,
    pub spec: ScalerSpec,
    /// The workload's scaler traits before this one, whose hosts this one leaves alone.
    pub priors: Vec<placement::PriorTrait>,
}

/// The full annotation set a want puts on its instance (a scale replaces the host's annotations).
#[derive(Debug, Clone)]
pub enum Annotations {
    /// wadm's placement annotations for spread `spread` (an index into the spec's spreads) of
    /// `placer`: see [`placement_annotations`].
    Placement {
        /// The scaler placing the instance.
        placer: Arc<Placer>,
        /// Which of its spreads.
        spread: usize,
    },
    /// Exactly these (e.g. what is observed, to keep it untouched).
    Exact(Arc<StringMap>),
}

impl Annotations {
    /// The annotation map, as sent (shared, not copied).
    pub fn to_map(&self) -> Arc<StringMap> {
        match self {
            Annotations::Placement { placer, spread } => placer.spread_annotations(*spread),
            Annotations::Exact(map) => Arc::clone(map),
        }
    }

    /// The shared map [`Self::to_map`] returns with its id encoding, when it is shared.
    pub(crate) fn encoded(&self) -> Option<&EncodedMap> {
        match self {
            Annotations::Placement { placer, spread } => placer.encoded_annotations(*spread),
            Annotations::Exact(_) => None,
        }
    }

    /// Whether `observed` equals [`Self::to_map`] (without building it).
    pub fn matches(&self, observed: &StringMap) -> bool {
        use wadm_model::{
            APP_SPEC_ANNOTATION, MANAGED_BY_ANNOTATION, MANAGED_BY_WADM, SCALER_ANNOTATION,
            SPREAD_NAME_ANNOTATION,
        };
        match self {
            Annotations::Placement { placer, .. } => {
                // The four keys in map (key) order: compare entry by entry, no lookups.
                let expected = [
                    (APP_SPEC_ANNOTATION, &*placer.info.app),
                    (MANAGED_BY_ANNOTATION, MANAGED_BY_WADM),
                    (SCALER_ANNOTATION, &*placer.info.id),
                    (SPREAD_NAME_ANNOTATION, self.spread_name().unwrap_or("")),
                ];
                debug_assert!(expected.windows(2).all(|w| w[0].0 < w[1].0));
                observed.len() == expected.len()
                    && observed.iter().zip(expected).all(|((k, v), (ek, ev))| k == ek && v == ev)
            }
            Annotations::Exact(map) => **map == *observed,
        }
    }

    /// [`Self::matches`] for an observed instance whose annotations were read into `tag`.
    pub fn matches_observed(&self, annotations: &StringMap, tag: &Tag<'_>) -> bool {
        match self {
            Annotations::Placement { placer, .. } => {
                tag.placement_only
                    && tag.app == Some(&*placer.info.app)
                    && tag.scaler == Some(&*placer.info.id)
                    && tag.spread == self.spread_name()
            }
            Annotations::Exact(map) => **map == *annotations,
        }
    }

    /// The spread name the annotations carry.
    pub fn spread_name(&self) -> Option<&str> {
        match self {
            Annotations::Placement { placer, spread } => {
                Some(placer.spec.spreads.get(*spread).map_or("", |s| s.name.as_str()))
            }
            Annotations::Exact(map) => {
                map.get(wadm_model::SPREAD_NAME_ANNOTATION).map(String::as_str)
            }
        }
    }
}

impl PartialEq for Annotations {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Annotations::Placement { placer: a, spread: i },
                Annotations::Placement { placer: b, spread: j },
            ) if Arc::ptr_eq(a, b) && i == j => true,
            _ => self.to_map() == other.to_map(),
        }
    }
}

impl Eq for Annotations {}

impl PartialOrd for Annotations {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Annotations {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other { std::cmp::Ordering::Equal } else { self.to_map().cmp(&other.to_map()) }
    }
}

/// A component instance a scaler wants on a host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentWant {
    /// The host, as an index into [`Context::hosts`] (wants are for one reconcile).
    pub host: HostIx,
    /// The component id.
    pub component_id: Arc<str>,
    /// The image it should run.
    pub image_ref: Arc<str>,
    /// The host's maximum concurrent instances.
    pub count: u32,
    /// The annotations it should carry.
    pub annotations: Annotations,
    /// Config (and secret config) names, in order.
    pub config: Arc<[String]>,
}

/// A provider a scaler wants on a host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProviderWant {
    /// The host, as an index into [`Context::hosts`].
    pub host: HostIx,
    /// The provider id.
    pub provider_id: Arc<str>,
    /// As written in the manifest; compared normalised.
    pub image_ref: Arc<str>,
    /// The annotations it should carry.
    pub annotations: Annotations,
    /// Config (and secret config) names, in order.
    pub config: Arc<[String]>,
}

/// One thing a scaler wants to exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Want {
    /// A component with a count on a host.
    Component(ComponentWant),
    /// A provider on a host.
    Provider(ProviderWant),
    /// Boxed: links are large and rare next to workload wants, which stay small to move.
    Link(Box<Link>),
    /// A config wadm owns, with its exact values.
    Config {
        /// The config's lattice name.
        name: String,
        /// Its values.
        values: StringMap,
    },
}

/// What a scaler wants: one inline (most scalers want one instance, link or config), more on the
/// heap. Build with `smallvec![…]`, `Wants::new()`, `.collect()` or `Vec::into`.
pub type Wants = smallvec::SmallVec<[Want; 1]>;

/// What a scaler reports after looking at the lattice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evaluation {
    /// Everything the scaler wants to exist now.
    pub wants: Wants,
    /// The scaler's status.
    pub status: StatusInfo,
    /// When the scaler wants to be evaluated again although nothing changed (a rollout waiting
    /// for `min_healthy_time`); `None`: only when something changes.
    pub wake_at: Option<wadm_lattice::Timestamp>,
    /// How far a paced image change has come (`None`: nothing rolling out).
    pub rollout: Option<RolloutProgress>,
    /// Not everything could be placed for want of declared host capacity.
    pub short_of_capacity: bool,
}

/// How far a rollout has come: hosts done of hosts to change, in batches of `batch` hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RolloutProgress {
    /// Hosts that run the new image.
    pub done: u32,
    /// Hosts that are to run it.
    pub total: u32,
    /// Hosts changed at a time.
    pub batch: u32,
}

impl RolloutProgress {
    /// Two rollouts of one application counted as one (their batches run side by side).
    pub fn combined(self, other: RolloutProgress) -> RolloutProgress {
        RolloutProgress {
            done: self.done + other.done,
            total: self.total + other.total,
            batch: self.batch + other.batch,
        }
    }

    /// Batches completed.
    pub fn batches_done(self) -> u32 {
        self.done.checked_div(self.batch).unwrap_or(0)
    }

    /// Batches in all.
    pub fn batches(self) -> u32 {
        self.total.div_ceil(self.batch.max(1))
    }
}

/// A scheduling policy for one part of one application.
///
/// Built-in scalers are created from manifests by [`crate::builtin_scalers`]; a custom scaler is
/// any type implementing this trait, passed to [`crate::plan_with`] alongside them. Scalers are
/// `Send + Sync` so a manager can keep them between reconciles (see [`crate::Reconciler`]).
pub trait Scaler: Send + Sync {
    /// Identity, owner and reporting names.
    fn info(&self) -> &ScalerInfo;

    /// What this scaler wants given the observed lattice, and its status. Must be deterministic.
    fn evaluate(&self, ctx: &Context<'_>) -> Evaluation;

    /// The scaler's identity, taking it apart (for a scaler used once: the names move into the
    /// plan's statuses instead of being copied). The default copies [`Scaler::info`].
    fn into_info(self: Box<Self>) -> ScalerInfo {
        self.info().clone()
    }
}

/// Prefix of the annotations that record, on a provider several applications share, each other
/// application's scaler that wanted it on that host when it was started:
/// `{prefix}{app}/{scaler id}` = spread name. A provider id declared by several applications (same
/// image) runs once per host and is annotated with the first of them (by application, then scaler
/// id); these keys let the others recognise it as what they placed, so they keep choosing the same
/// hosts instead of re-placing next round (a provider's annotations cannot change after a start).
pub const CO_OWNER_ANNOTATION_PREFIX: &str = "wasmcloud.dev/co-owner.";

/// The annotation key recording that `scaler_id` of `app` also wanted a shared provider.
pub fn co_owner_key(app: &str, scaler_id: &str) -> String {
    let mut key =
        String::with_capacity(CO_OWNER_ANNOTATION_PREFIX.len() + app.len() + 1 + scaler_id.len());
    key.push_str(CO_OWNER_ANNOTATION_PREFIX);
    key.push_str(app);
    key.push('/');
    key.push_str(scaler_id);
    key
}

/// The status of a scaler holding what runs until the named external configs exist.
pub fn waiting_for_config(missing: &[&str]) -> StatusInfo {
    StatusInfo::new(
        wadm_model::StatusType::Waiting,
        format!("waiting for config {}", missing.join(", ")),
    )
}

/// Config names as shared by a scaler's wants; the common empty list is one shared allocation.
pub fn config_list(config: Vec<String>) -> Arc<[String]> {
    use std::sync::OnceLock;
    static EMPTY: OnceLock<Arc<[String]>> = OnceLock::new();
    if config.is_empty() {
        EMPTY.get_or_init(|| Arc::from(Vec::new())).clone()
    } else {
        Arc::from(config)
    }
}

/// The annotations wadm puts on everything it places for `app`.
pub fn placement_annotations(app: &str, scaler_id: &str, spread: &str) -> StringMap {
    let mut annotations = annotation_template().clone();
    fill_annotations(&mut annotations, app, scaler_id, spread);
    annotations
}

/// The placement annotation keys with `managed-by` set and the other values empty. Cloning it
/// and filling the values in key order needs no key comparisons.
fn annotation_template() -> &'static StringMap {
    use std::sync::OnceLock;
    use wadm_model::{
        APP_SPEC_ANNOTATION, MANAGED_BY_ANNOTATION, MANAGED_BY_WADM, SCALER_ANNOTATION,
        SPREAD_NAME_ANNOTATION,
    };
    static TEMPLATE: OnceLock<StringMap> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        [
            (MANAGED_BY_ANNOTATION, MANAGED_BY_WADM),
            (APP_SPEC_ANNOTATION, ""),
            (SCALER_ANNOTATION, ""),
            (SPREAD_NAME_ANNOTATION, ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    })
}

/// Set the application, scaler and spread values of a clone of [`annotation_template`].
fn fill_annotations(annotations: &mut StringMap, app: &str, scaler_id: &str, spread: &str) {
    use wadm_model::{APP_SPEC_ANNOTATION, SCALER_ANNOTATION, SPREAD_NAME_ANNOTATION};
    for (key, value) in annotations.iter_mut() {
        let v = match key.as_str() {
            APP_SPEC_ANNOTATION => app,
            SCALER_ANNOTATION => scaler_id,
            SPREAD_NAME_ANNOTATION => spread,
            _ => continue,
        };
        *value = v.to_string();
    }
}
