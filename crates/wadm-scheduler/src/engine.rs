//! The engine: runs every scaler against the observed lattice, merges what they want, compares it
//! with what runs and derives an ordered, deduplicable plan plus a status per application.
//!
//! Merging is order-independent: when two scalers want the same thing (the same component on a
//! host, the same provider on a host, the same link key or config name), the one with the smallest
//! (application, scaler id) decides its details; a provider started for several applications also
//! records the others' scalers (see [`crate::scaler::CO_OWNER_ANNOTATION_PREFIX`]). Removals only touch what is *ours* (annotated for
//! a deployed or undeployed application; links and configs that a known application declared or
//! whose name it derives), never foreign or orphaned resources.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use wadm_lattice::{LatticeState, Timestamp};
use wadm_model::{ScalerStatus, Status, StatusInfo};
use wadm_protocol::ctl::{
    DeleteLinkRequest, ScaleComponentRequest, StartProviderRequest, StopProviderRequest,
    UpdateComponentRequest,
};
use wadm_protocol::{LinkKey, normalize_provider_ref};

mod merge;
mod status;

use self::merge::{Keyed, Merged};
use self::status::{app_statuses, group_by_app};
use crate::catalog::Catalog;
use crate::command::{Command, PlannedCommand};
use crate::context::{Context, HostIx};
use crate::coupling::Coupling;
use crate::input::Avoid;
use crate::observed::Coverage;
use crate::scaler::{
    Annotations, ComponentWant, EncodedMap, Evaluation, RolloutProgress, Scaler, ScalerInfo, Want,
};

/// What one reconcile decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The lattice the plan is for.
    pub lattice: String,
    /// The `now` the plan was computed for.
    pub computed_at: Timestamp,
    /// In the order they must be sent: config puts, link deletes before a retarget, workload starts
    /// and updates, link puts, workload stops, provider restarts with a new image on the same host,
    /// link deletes, config deletes.
    pub commands: Vec<PlannedCommand>,
    /// Status of every deployed application (and `undeployed` for every undeployed one).
    pub statuses: BTreeMap<String, Status>,
    /// Applications whose scalers asked to be evaluated again at a time although nothing
    /// changes (a rollout waiting for `min_healthy_time`), with the earliest such time.
    pub wakes: BTreeMap<String, Timestamp>,
    /// Applications rolling out a paced image change, with how far they have come.
    pub rollouts: BTreeMap<String, RolloutProgress>,
    /// Applications some of whose instances could not be placed for want of declared host
    /// capacity.
    pub short_of_capacity: BTreeSet<String>,
}

impl Plan {
    /// Whether nothing needs to be sent.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// Phases of a plan, in send order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    PutConfig,
    /// A link whose target changes must be deleted before the new one is put.
    ReplaceLink,
    Start,
    PutLink,
    Stop,
    /// A provider restarted on the same host with another image, after its stop.
    Restart,
    DeleteLink,
    DeleteConfig,
}

/// A command's sort key: (phase, host id, resource, sub-order, push index).
type Key<'b> = (Phase, &'b str, Cow<'b, str>, u8, u32);

/// Collects a plan's commands with their sort keys (phase, host id, resource, sub-order): the
/// keys borrow what they name, and the commands are moved once, into send order, at the end.
struct Builder<'b> {
    lattice: &'b str,
    catalog: &'b Catalog<'b>,
    keys: Vec<Key<'b>>,
    /// In push order (usually send order already).
    commands: Vec<PlannedCommand>,
    /// Encodes each command for its id.
    scratch: Vec<u8>,
    /// When planning for some applications only: commands acting for others are left out.
    scope: Option<&'b BTreeSet<&'b str>>,
}

impl<'b> Builder<'b> {
    fn push(
        &mut self,
        phase: Phase,
        host: &'b str,
        resource: impl Into<Cow<'b, str>>,
        sub: u8,
        app: &str,
        cmd: Command,
    ) {
        self.push_annotated(phase, host, resource, sub, app, cmd, None);
    }

    /// [`Builder::push`] for a command whose annotations may be `known` (already encoded).
    #[allow(clippy::too_many_arguments)]
    fn push_annotated(
        &mut self,
        phase: Phase,
        host: &'b str,
        resource: impl Into<Cow<'b, str>>,
        sub: u8,
        app: &str,
        cmd: Command,
        known: Option<&EncodedMap>,
    ) {
        if !self.acts_for(app) {
            return;
        }
        let (generation, app) = self.catalog.stamp(app);
        let at = self.commands.len() as u32;
        self.keys.push((phase, host, resource.into(), sub, at));
        // Pushed first and stamped with its id where it lies: the command is moved once.
        let (scratch, lattice) = (&mut self.scratch, self.lattice);
        PlannedCommand::push_with_scratch(
            &mut self.commands,
            scratch,
            lattice,
            app,
            generation,
            cmd,
            known,
        );
    }

    /// Whether commands acting for `app` are kept (callers skip building others' commands).
    fn acts_for(&self, app: &str) -> bool {
        self.scope.is_none_or(|scope| scope.contains(app))
    }

    /// The commands in send order.
    fn into_commands(self) -> Vec<PlannedCommand> {
        let Builder { mut keys, commands, .. } = self;
        let order =
            |x: &Key<'_>, y: &Key<'_>| (x.0, x.1, &x.2, x.3, x.4).cmp(&(y.0, y.1, &y.2, y.3, y.4));
        // Commands are mostly pushed in send order already (by host, then id): then they stay
        // where they are, none moved.
        if keys.is_sorted_by(|x, y| order(x, y).is_le()) {
            return commands;
        }
        // Keys are unique (the push index ends them), so any sort gives one order; this one
        // merges runs.
        keys.sort_by(order);
        let mut commands: Vec<Option<PlannedCommand>> = commands.into_iter().map(Some).collect();
        let mut ordered = Vec::with_capacity(commands.len());
        ordered.extend(keys.into_iter().filter_map(|k| commands[k.4 as usize].take()));
        ordered
    }
}

/// Run `scalers` against `observed` and derive the plan. `catalog` describes the desired state the
/// scalers were built from (see [`crate::builtin_scalers`]); the result does not depend on the
/// order of `scalers`.
pub fn plan_with(
    observed: &LatticeState,
    catalog: &Catalog<'_>,
    scalers: &[Box<dyn Scaler>],
    now: Timestamp,
) -> Plan {
    plan_avoiding(observed, catalog, scalers, now, &Avoid::default())
}

/// [`plan_with`], with hosts to avoid per resource (see [`Avoid`]).
pub fn plan_avoiding(
    observed: &LatticeState,
    catalog: &Catalog<'_>,
    scalers: &[Box<dyn Scaler>],
    now: Timestamp,
    avoid: &Avoid,
) -> Plan {
    let ctx = Context::new(observed, catalog, now).avoiding(avoid);
    let (mut plan, order) = plan_commands_in(&ctx, scalers, None, now, None);
    plan.statuses = app_statuses(catalog, kept_statuses(scalers, order), |_| true);
    plan
}

/// Each scaler's status (sharing the scaler's names), grouped by application: each group
/// allocated once, at its size, straight from `order` (in application order).
fn kept_statuses(
    scalers: &[Box<dyn Scaler>],
    order: Vec<(usize, StatusInfo)>,
) -> Vec<(&str, Vec<ScalerStatus>)> {
    let app = |i: usize| &scalers[i].info().app;
    let same_app = |a: &(usize, StatusInfo), b: &(usize, StatusInfo)| {
        let (x, y) = (app(a.0), app(b.0));
        Arc::ptr_eq(x, y) || x == y
    };
    let runs: Vec<usize> = order.chunk_by(same_app).map(<[_]>::len).collect();
    let mut rest = order.into_iter();
    let mut groups = Vec::with_capacity(runs.len());
    for len in runs {
        let mut group = Vec::with_capacity(len);
        let mut name = "";
        for (i, status) in rest.by_ref().take(len) {
            let info = scalers[i].info();
            name = &info.app;
            let (id, kind) = (Arc::clone(&info.id), Arc::clone(&info.kind));
            group.push(ScalerStatus { id, kind, name: Arc::clone(&info.name), status });
        }
        groups.push((name, group));
    }
    groups
}

/// [`plan_with`] for some applications: `apps` and every application coupled to them (see
/// [`crate::coupling`]). The plan holds the commands and statuses of exactly those applications,
/// returned with it, as the full plan would.
pub(crate) fn plan_scoped<S: AsRef<str>>(
    observed: &LatticeState,
    catalog: &Catalog<'_>,
    scalers: &[Box<dyn Scaler>],
    coupling: &Coupling,
    apps: impl IntoIterator<Item = S>,
    now: Timestamp,
    avoid: &Avoid,
) -> (Plan, BTreeSet<String>) {
    let ctx = Context::new(observed, catalog, now).avoiding(avoid);
    let seeds: Vec<S> = apps.into_iter().collect();
    let closure = coupling.closure(&ctx, seeds.iter().map(AsRef::as_ref));
    let scope = &closure.apps;
    let (mut plan, order) =
        plan_commands_in(&ctx, scalers, Some(&closure.scalers), now, Some(scope));
    let groups = kept_statuses(scalers, order);
    plan.statuses = app_statuses(catalog, groups, |app| scope.contains(app));
    (plan, scope.iter().map(|app| app.to_string()).collect())
}

/// [`plan_with`] for scalers used once: their names move into the statuses instead of being
/// copied (what [`crate::reconcile_with`] does).
pub fn plan_once(
    observed: &LatticeState,
    catalog: &Catalog<'_>,
    scalers: Vec<Box<dyn Scaler>>,
    now: Timestamp,
) -> Plan {
    let (mut plan, order) = plan_commands(observed, catalog, &scalers, now);
    let mut slots: Vec<Option<Box<dyn Scaler>>> = scalers.into_iter().map(Some).collect();
    let groups = group_by_app(order.into_iter().filter_map(|(i, status)| {
        let info = slots[i].take()?.into_info();
        let ScalerInfo { app, id, kind, name, .. } = info;
        Some((app, ScalerStatus { id, kind, name, status }))
    }));
    plan.statuses = app_statuses(catalog, groups, |_| true);
    plan
}

/// The plan's commands (statuses left empty) and each scaler's status, as (index in `scalers`,
/// status) in scaler order (application, rank, id).
fn plan_commands(
    observed: &LatticeState,
    catalog: &Catalog<'_>,
    scalers: &[Box<dyn Scaler>],
    now: Timestamp,
) -> (Plan, Vec<(usize, StatusInfo)>) {
    let ctx = Context::new(observed, catalog, now);
    plan_commands_in(&ctx, scalers, None, now, None)
}

/// [`plan_commands`] on an indexed lattice, running the `selected` scalers (all when `None`);
/// with a `scope`, only commands acting for the applications in it are kept.
fn plan_commands_in<'b>(
    ctx: &'b Context<'b>,
    scalers: &'b [Box<dyn Scaler>],
    selected: Option<&[usize]>,
    now: Timestamp,
    scope: Option<&'b BTreeSet<&'b str>>,
) -> (Plan, Vec<(usize, StatusInfo)>) {
    let (observed, catalog) = (ctx.lattice(), ctx.catalog());
    let ordered = ctx.is_ordered();
    let evaluate = |i: usize| {
        let s = &scalers[i];
        let (info, evaluation) = (s.info(), s.evaluate(ctx));
        if ordered {
            // Capacity and anti-affinity: later scalers see what this one took.
            record_wants(ctx, &info.app, &info.id, &evaluation.wants);
        }
        (i, info, evaluation)
    };
    let mut order: Vec<usize> = match selected {
        Some(selected) => selected.to_vec(),
        None => (0..scalers.len()).collect(),
    };
    if ordered {
        // Evaluated in scaler order, so every replica (and every scoped plan, which then covers
        // every application) makes the same choices.
        order.sort_by(|a, b| scalers[*a].info().cmp(scalers[*b].info()));
    }
    let mut evaluations: Vec<(usize, &ScalerInfo, Evaluation)> =
        order.into_iter().map(evaluate).collect();
    evaluations.sort_by(|a, b| a.1.cmp(b.1));

    let merged = Merged::new(ctx, evaluations.iter().map(|(_, info, e)| (*info, &*e.wants)));
    // Stops of what no scaler wants come on top: the vectors grow at most once or twice.
    let expected_commands = merged.len();
    let mut b = Builder {
        lattice: &observed.lattice,
        catalog,
        keys: Vec::with_capacity(expected_commands),
        commands: Vec::with_capacity(expected_commands),
        scratch: Vec::new(),
        scope,
    };
    diff_configs(&mut b, ctx, &merged);
    diff_components(&mut b, ctx, &merged);
    diff_providers(&mut b, ctx, &merged);
    diff_links(&mut b, ctx, &merged);
    let mut wakes: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut rollouts: BTreeMap<String, RolloutProgress> = BTreeMap::new();
    let mut short_of_capacity = BTreeSet::new();
    for (_, info, eval) in &evaluations {
        let in_scope = scope.is_none_or(|s| s.contains(&*info.app));
        if let Some(at) = eval.wake_at.filter(|_| in_scope) {
            let slot = wakes.entry(info.app.to_string()).or_insert(at);
            *slot = (*slot).min(at);
        }
        if eval.short_of_capacity && in_scope {
            short_of_capacity.insert(info.app.to_string());
        }
        if let Some(progress) = eval.rollout.filter(|_| in_scope) {
            let slot = rollouts.entry(info.app.to_string()).or_default();
            *slot = slot.combined(progress);
        }
    }
    let plan = Plan {
        lattice: observed.lattice.clone(),
        computed_at: now,
        commands: b.into_commands(),
        statuses: BTreeMap::new(),
        wakes,
        rollouts,
        short_of_capacity,
    };
    drop(merged);
    // Each status taken out where it lies (not the whole evaluation moved to reach it).
    let order = evaluations.iter_mut().map(|(i, _, eval)| (*i, std::mem::take(&mut eval.status)));
    let order = order.collect();
    (plan, order)
}

fn diff_configs<'b>(b: &mut Builder<'b>, ctx: &Context<'b>, merged: &Merged<'b>) {
    let observed = &ctx.lattice().configs;
    for (&name, &((app, _), values)) in &merged.configs {
        let current = observed.get(name).and_then(|c| c.values.as_ref());
        if current != Some(values) {
            let cmd = Command::PutConfig { name: name.to_string(), values: values.clone() };
            b.push(Phase::PutConfig, "", name, 0, app, cmd);
        }
    }
    for name in observed.keys() {
        if merged.configs.contains_key(name.as_str()) {
            continue;
        }
        if let Some(app) = ctx.catalog().config_owner(name).filter(|app| b.acts_for(app)) {
            let cmd = Command::DeleteConfig { name: name.clone() };
            b.push(Phase::DeleteConfig, "", name, 0, app, cmd);
        }
    }
}

fn scale(host_id: Arc<str>, w: &ComponentWant, count: u32) -> Command {
    Command::ScaleComponent(ScaleComponentRequest {
        component_ref: Arc::clone(&w.image_ref),
        component_id: Arc::clone(&w.component_id),
        count,
        host_id,
        annotations: w.annotations.to_map(),
        config: w.config.to_vec(),
        allow_update: false,
        component_limits: None,
    })
}

fn diff_components<'b>(b: &mut Builder<'b>, ctx: &Context<'b>, merged: &Merged<'b>) {
    // Which observed instances some want covers; the others of ours are stopped.
    let mut coverage = Coverage::new(ctx.component_index());
    for &Keyed { key: (ix, id), owner: (app, _), want: w } in &merged.components {
        let host_id = ctx.host(ix).id.as_str();
        let Some(observed) = coverage.cover(ix, id) else {
            if w.count > 0 {
                let cmd = scale(ctx.host_id(ix), w, w.count);
                b.push_annotated(Phase::Start, host_id, id, 1, app, cmd, w.annotations.encoded());
            }
            continue;
        };
        if !observed.tag.ours {
            continue;
        }
        let o = observed.instance;
        let update = *o.image_ref != *w.image_ref && w.count > 0;
        if update {
            let cmd = Command::UpdateComponent(UpdateComponentRequest {
                component_id: Arc::clone(&w.component_id),
                new_component_ref: Arc::clone(&w.image_ref),
                host_id: ctx.host_id(ix),
                annotations: Some(w.annotations.to_map()),
            });
            b.push_annotated(Phase::Start, host_id, id, 0, app, cmd, w.annotations.encoded());
        }
        // An update also sets the annotations.
        let same_annotations = || w.annotations.matches_observed(&o.annotations, &observed.tag);
        if o.count != w.count || (!update && !same_annotations()) {
            let phase = if w.count >= o.count { Phase::Start } else { Phase::Stop };
            let cmd = scale(ctx.host_id(ix), w, w.count);
            b.push_annotated(phase, host_id, id, 1, app, cmd, w.annotations.encoded());
        }
    }
    let scope = b.scope;
    let acts_for = |app: &str| scope.is_none_or(|scope| scope.contains(app));
    for (app, observed) in coverage.uncovered_ours().filter(|(app, _)| acts_for(app)) {
        let (ix, id, o) = (observed.host, observed.id, observed.instance);
        let host_id = ctx.host(ix).id.as_str();
        let w = ComponentWant {
            host: ix,
            component_id: Arc::from(id),
            image_ref: Arc::from(o.image_ref.as_str()),
            count: 0,
            annotations: Annotations::Exact(Arc::new(o.annotations.clone())),
            config: Arc::from(Vec::new()),
        };
        b.push(Phase::Stop, host_id, id, 1, app, scale(ctx.host_id(ix), &w, 0));
    }
}

fn diff_providers<'b>(b: &mut Builder<'b>, ctx: &Context<'b>, merged: &Merged<'b>) {
    let stop = |ix: HostIx, id: &str| {
        Command::StopProvider(StopProviderRequest {
            provider_id: Arc::from(id),
            host_id: ctx.host_id(ix),
        })
    };
    let mut coverage = Coverage::new(ctx.provider_index());
    for wanters in merged.providers() {
        let ((ix, id), (app, _), w) = (wanters.key, wanters.owner, wanters.want);
        let host_id = ctx.host(ix).id.as_str();
        let start = || {
            Command::StartProvider(StartProviderRequest {
                provider_id: Arc::clone(&w.provider_id),
                provider_ref: Arc::clone(&w.image_ref),
                host_id: ctx.host_id(ix),
                config: w.config.to_vec(),
                annotations: wanters.start_annotations(),
            })
        };
        let Some(observed) = coverage.cover(ix, id) else {
            b.push_annotated(Phase::Start, host_id, id, 0, app, start(), w.annotations.encoded());
            continue;
        };
        if !observed.tag.ours {
            continue;
        }
        let o = observed.instance;
        if normalize_provider_ref(&o.image_ref) != normalize_provider_ref(&w.image_ref) {
            // Same id on the same host: stop, then start the new image.
            b.push(Phase::Stop, host_id, id, 0, app, stop(ix, id));
            let known = w.annotations.encoded();
            b.push_annotated(Phase::Restart, host_id, id, 0, app, start(), known);
        }
    }
    let scope = b.scope;
    let acts_for = |app: &str| scope.is_none_or(|scope| scope.contains(app));
    for (app, observed) in coverage.uncovered_ours().filter(|(app, _)| acts_for(app)) {
        let host_id = ctx.host(observed.host).id.as_str();
        b.push(Phase::Stop, host_id, observed.id, 0, app, stop(observed.host, observed.id));
    }
}

fn link_resource(key: &LinkKey) -> String {
    format!("{}\u{0}{}\u{0}{}\u{0}{}", key.source_id, key.wit_namespace, key.wit_package, key.name)
}

/// The command deleting the link `key` names.
pub(crate) fn delete_link(key: &LinkKey) -> Command {
    Command::DeleteLink(DeleteLinkRequest {
        source_id: key.source_id.clone(),
        name: key.name.clone(),
        wit_namespace: key.wit_namespace.clone(),
        wit_package: key.wit_package.clone(),
    })
}

fn diff_links<'b>(b: &mut Builder<'b>, ctx: &Context<'b>, merged: &Merged<'b>) {
    let observed = &ctx.lattice().links;
    for (key, &((app, _), link)) in &merged.links {
        let resource = link_resource(key);
        match observed.get(key) {
            Some(o) if o == link => {}
            Some(o) => {
                if o.target != link.target {
                    let cmd = delete_link(key);
                    b.push(Phase::ReplaceLink, "", resource.clone(), 0, app, cmd);
                }
                b.push(Phase::PutLink, "", resource, 0, app, Command::PutLink(link.clone()));
            }
            None => b.push(Phase::PutLink, "", resource, 0, app, Command::PutLink(link.clone())),
        }
    }
    for key in observed.keys() {
        if merged.links.contains_key(key) {
            continue;
        }
        if let Some(app) = ctx.catalog().link_owner(key).filter(|app| b.acts_for(app)) {
            b.push(Phase::DeleteLink, "", link_resource(key), 0, app, delete_link(key));
        }
    }
}

/// Count what a scaler of `app` (id `scaler_id`) wants, for the scalers evaluated after it:
/// new instances take capacity, and a component kept apart from others records its hosts.
fn record_wants(ctx: &Context<'_>, app: &str, scaler_id: &str, wants: &[Want]) {
    for want in wants {
        let (host, id, count, running) = match want {
            Want::Component(w) => {
                let running = ctx.component_on(w.host, &w.component_id);
                (w.host, &*w.component_id, w.count, running.map_or(0, |o| o.instance.count))
            }
            Want::Provider(w) => {
                let running = ctx.provider_on(w.host, &w.provider_id).is_some();
                (w.host, &*w.provider_id, 1, u32::from(running))
            }
            _ => continue,
        };
        if count == 0 {
            continue;
        }
        if let Some(ledger) = ctx.ledger() {
            ledger.reserve(
                host,
                &ledger.cost(app, id),
                count.saturating_sub(running),
                (app, scaler_id),
            );
        }
        if let Some(separation) = ctx.separation() {
            separation.record(app, id, [host]);
        }
    }
}
