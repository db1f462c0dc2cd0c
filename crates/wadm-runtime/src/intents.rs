//! Intents: the orders wadm has issued and not yet seen take effect.
//!
//! Every command a step publishes becomes an [`Intent`] on its [`Slot`] (a component or provider
//! on one host, a link, a config). Until the lattice confirms it, its deadline passes, the
//! hosts refuse it or the executor drops it, the intent counts as done: placement plans on the
//! observed state *with* the pending intents applied ([`Intents::project`]), so a re-plan never
//! issues the same order twice, never places on a fifth host while four starts are in flight,
//! and a removal wadm ordered is never taken for a loss. At most one order per slot is in
//! flight; an order that needs another's effect (a link or a start that names a config) waits
//! until that effect is observed ([`Intents::admit`]). Pure: time is an argument.
//! The reasoning, with the host quirks it answers, is in `docs/intents.md`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wadm_lattice::bookkeeping::{HostEntity, Mark};
use wadm_lattice::{LatticeState, Timestamp};
use wadm_protocol::LinkKey;
use wadm_scheduler::{Command, PlannedCommand};

/// What one order acts on: at most one order per slot is in flight.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// A config, by name (ordered first: others depend on configs).
    Config(String),
    /// A component on a host (scale and update are one decision).
    Component {
        /// The host id.
        host: String,
        /// The component id.
        component: String,
    },
    /// A provider on a host.
    Provider {
        /// The host id.
        host: String,
        /// The provider id.
        provider: String,
    },
    /// A link, by its lattice identity.
    Link(LinkKey),
}

impl Slot {
    /// The slot a command acts on.
    pub fn of(command: &Command) -> Slot {
        match command {
            Command::ScaleComponent(r) => Slot::Component {
                host: r.host_id.to_string(),
                component: r.component_id.to_string(),
            },
            Command::UpdateComponent(r) => Slot::Component {
                host: r.host_id.to_string(),
                component: r.component_id.to_string(),
            },
            Command::StartProvider(r) => {
                Slot::Provider { host: r.host_id.to_string(), provider: r.provider_id.to_string() }
            }
            Command::StopProvider(r) => {
                Slot::Provider { host: r.host_id.to_string(), provider: r.provider_id.to_string() }
            }
            Command::PutLink(l) => Slot::Link(l.key()),
            Command::DeleteLink(r) => Slot::Link(LinkKey {
                source_id: r.source_id.clone(),
                wit_namespace: r.wit_namespace.clone(),
                wit_package: r.wit_package.clone(),
                name: r.name.clone(),
            }),
            Command::PutConfig { name, .. } | Command::DeleteConfig { name } => {
                Slot::Config(name.clone())
            }
        }
    }

    /// The host the slot lives on, for per-host slots.
    pub fn host(&self) -> Option<&str> {
        match self {
            Slot::Component { host, .. } | Slot::Provider { host, .. } => Some(host),
            Slot::Config(_) | Slot::Link(_) => None,
        }
    }
}

/// One order in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The control command it orders.
    pub command: Command,
    /// The application it acts for and that application's generation when it was decided.
    pub app: String,
    /// The application's runtime generation when it was decided.
    pub generation: u64,
    /// The plan's command id and the order's sequence number: the message id is `{id}.{seq}`.
    pub id: String,
    /// The order's sequence number in its lattice (see `id`).
    pub seq: u64,
    /// When it was issued (ms since the epoch, the handling replica's clock).
    pub issued_at: Timestamp,
    /// The command message is not executed from then on.
    pub expires_at: Timestamp,
    /// Not confirmed by then: forgotten, and the situation planned again from what is observed.
    pub deadline: Timestamp,
    /// Its effect already showed when it was issued (a take-back of a start in flight): only
    /// news of its slot heard after this instant confirms it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news_after: Option<Timestamp>,
}

impl Intent {
    /// The command message's `Nats-Msg-Id`.
    pub fn msg_id(&self) -> String {
        format!("{}.{}", self.id, self.seq)
    }
}

/// A `component.update` confirmed on a host: a real 1.9.2 host follows the update's
/// `component_scaled(new ref, n)` with a spurious `component_scaled(new ref, 0)` while the
/// component keeps running. Until `until`, that zero is recognised and not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The host the update was confirmed on.
    pub host: String,
    /// The updated component.
    pub component: String,
    /// The image it was updated to.
    pub image_ref: String,
    /// The zero is recognised until then.
    pub until: Timestamp,
}

/// The orders in flight in one lattice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "IntentsWire", into = "IntentsWire")]
pub struct Intents {
    pending: BTreeMap<Slot, Intent>,
    echoes: Vec<Echo>,
    /// The sequence number of the next order (part of its message id: a redone step starts
    /// from the same committed number and re-publishes the same ids).
    next_seq: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IntentsWire {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<Intent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    echoes: Vec<Echo>,
    #[serde(default)]
    next_seq: u64,
}

impl From<IntentsWire> for Intents {
    fn from(w: IntentsWire) -> Self {
        let pending = w.pending.into_iter().map(|i| (Slot::of(&i.command), i)).collect();
        Intents { pending, echoes: w.echoes, next_seq: w.next_seq }
    }
}

impl From<Intents> for IntentsWire {
    fn from(i: Intents) -> Self {
        IntentsWire {
            pending: i.pending.into_values().collect(),
            echoes: i.echoes,
            next_seq: i.next_seq,
        }
    }
}

/// Why an intent left the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Settlement {
    /// The lattice shows its effect.
    Confirmed,
    /// Its deadline passed unconfirmed.
    Expired,
    /// Its host left the lattice.
    HostGone,
    /// The lattice refused it, or the executor dropped it unsent.
    Failed,
}

/// What [`Intents::settle`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Each order that left the set, with why.
    pub removed: Vec<(Intent, Settlement)>,
}

impl Settled {
    /// The applications whose orders settled (worth a reconcile: a held order may go now).
    pub fn apps(&self) -> BTreeSet<String> {
        self.removed.iter().map(|(i, _)| i.app.clone()).collect()
    }

    /// Whether a config order settled (configs are shared: every application may be waiting).
    pub fn touches_configs(&self) -> bool {
        self.removed.iter().any(|(i, _)| matches!(Slot::of(&i.command), Slot::Config(_)))
    }

    /// Whether no order settled.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
    }
}

/// What [`Intents::admit`] decided for one planned command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Issue it: it is now pending, as this intent.
    Issue(Box<Intent>),
    /// Another order on the same slot is in flight: decide again once it settles.
    Busy,
    /// It adds instances of a component or provider whose removal elsewhere is in flight and
    /// not yet shown: decide again once it shows.
    AfterRemoval {
        /// The slot of the removal it waits for.
        slot: Slot,
    },
    /// It names a config that is only ordered, not yet observed: decide again once it is.
    Waiting {
        /// The config's name.
        config: String,
    },
}

/// Whether `command`'s effect shows in `state`.
pub fn confirmed(state: &LatticeState, command: &Command) -> bool {
    match command {
        Command::ScaleComponent(r) => {
            let running =
                state.hosts.get(&*r.host_id).and_then(|h| h.components.get(&*r.component_id));
            match running {
                None => r.count == 0,
                Some(c) => r.count > 0 && c.count == r.count,
            }
        }
        Command::UpdateComponent(r) => state
            .hosts
            .get(&*r.host_id)
            .and_then(|h| h.components.get(&*r.component_id))
            .is_some_and(|c| *c.image_ref == *r.new_component_ref),
        Command::StartProvider(r) => {
            state.hosts.get(&*r.host_id).is_some_and(|h| h.providers.contains_key(&*r.provider_id))
        }
        Command::StopProvider(r) => {
            state.hosts.get(&*r.host_id).is_none_or(|h| !h.providers.contains_key(&*r.provider_id))
        }
        Command::PutLink(l) => state.links.get(&l.key()) == Some(l),
        Command::DeleteLink(_) => {
            let Slot::Link(key) = Slot::of(command) else { return false };
            !state.links.contains_key(&key)
        }
        Command::PutConfig { name, values } => {
            state.configs.get(name).is_some_and(|c| c.values.as_ref() == Some(values))
        }
        Command::DeleteConfig { name } => !state.configs.contains_key(name),
    }
}

/// Whether the lattice told wadm anything about `slot` after `since` (wadm's clock): an event of
/// that component, provider, link or config, or a heartbeat of its host, applied later.
pub fn heard_since(state: &LatticeState, slot: &Slot, since: Timestamp) -> bool {
    let later = |m: Option<&Mark>| m.is_some_and(|m| m.applied_at > since);
    let on_host =
        |host: &str, entity: HostEntity| {
            state.bookkeeping.hosts.get(host).is_some_and(|clock| {
                clock.snapshot_at > since || later(clock.entities.get(&entity))
            })
        };
    match slot {
        Slot::Component { host, component } => {
            on_host(host, HostEntity::Component(component.clone()))
        }
        Slot::Provider { host, provider } => on_host(host, HostEntity::Provider(provider.clone())),
        Slot::Link(key) => later(state.bookkeeping.links.get(key)),
        Slot::Config(name) => later(state.bookkeeping.configs.get(name)),
    }
}

/// What `command` adds: the component or provider id it puts more instances of on its host
/// than `observed` shows there.
fn adds(observed: &LatticeState, command: &Command) -> Option<Resource> {
    match command {
        Command::ScaleComponent(r) if r.count > running(observed, &r.host_id, &r.component_id) => {
            Some(Resource::Component(r.component_id.to_string()))
        }
        Command::StartProvider(r) => Some(Resource::Provider(r.provider_id.to_string())),
        _ => None,
    }
}

/// What `command` takes away that `observed` still shows: the component whose instances on
/// its host it scales below the observed count, the provider it stops that still runs.
fn removes_shown(observed: &LatticeState, command: &Command) -> Option<Resource> {
    match command {
        Command::ScaleComponent(r) if r.count < running(observed, &r.host_id, &r.component_id) => {
            Some(Resource::Component(r.component_id.to_string()))
        }
        Command::StopProvider(r)
            if observed
                .hosts
                .get(&*r.host_id)
                .is_some_and(|h| h.providers.contains_key(&*r.provider_id)) =>
        {
            Some(Resource::Provider(r.provider_id.to_string()))
        }
        _ => None,
    }
}

/// What the removal in flight `intent` takes away while it has not shown yet: what it removes
/// that `observed` still shows, or — for one whose effect already showed when it was issued (a
/// take-back of a start whose own effect wadm has not seen) — what it removes until news of its
/// slot comes.
fn removal_to_show(observed: &LatticeState, slot: &Slot, intent: &Intent) -> Option<Resource> {
    let awaiting_news = intent.news_after.is_some_and(|t| !heard_since(observed, slot, t));
    match &intent.command {
        Command::ScaleComponent(r) if awaiting_news => {
            Some(Resource::Component(r.component_id.to_string()))
        }
        Command::StopProvider(r) if awaiting_news => {
            Some(Resource::Provider(r.provider_id.to_string()))
        }
        command => removes_shown(observed, command),
    }
}

/// A component or provider id, across hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Component(String),
    Provider(String),
}

/// Instances of `component` observed on `host`.
fn running(observed: &LatticeState, host: &str, component: &str) -> u32 {
    observed.hosts.get(host).and_then(|h| h.components.get(component)).map_or(0, |c| c.count)
}

/// Whether `command` takes something away relative to what runs once the orders in flight
/// have taken effect: a stop, a delete, a scale below the count observed on its host (or below
/// the count a scale in flight on its slot asks for). Such commands are admitted before the
/// others of a step ([`Intents::admit_all`]).
fn takes_away(intents: &Intents, observed: &LatticeState, command: &Command) -> bool {
    match command {
        Command::StopProvider(_) | Command::DeleteLink(_) | Command::DeleteConfig { .. } => true,
        Command::ScaleComponent(r) => {
            let slot = Slot::of(command);
            let current = match intents.pending.get(&slot).map(|i| &i.command) {
                Some(Command::ScaleComponent(p)) => p.count,
                _ => running(observed, &r.host_id, &r.component_id),
            };
            r.count < current
        }
        _ => false,
    }
}

/// Whether `newer` may replace the order `pending` on its slot at once: it takes back (part of)
/// what `pending` starts — a scale down of a component whose scale up is in flight, a stop of a
/// provider whose start is in flight. Held behind that start, the stop would let the start's
/// instances run above target once it executes (an answer that is only late, a newer deploy
/// meanwhile); sent now, a host handles the two in order and the stop wins. The replaced
/// order is forgotten: its message, should it be delivered again, is not executed
/// (`executor::OrderBook`).
fn takes_back(newer: &Command, pending: &Command) -> bool {
    match (newer, pending) {
        (Command::ScaleComponent(n), Command::ScaleComponent(p)) => n.count < p.count,
        (Command::StopProvider(_), Command::StartProvider(_)) => true,
        _ => false,
    }
}

/// Configs a command needs to exist before the lattice accepts it.
fn needed_configs(command: &Command) -> impl Iterator<Item = &String> {
    let (a, b): (&[String], &[String]) = match command {
        Command::ScaleComponent(r) if r.count > 0 => (&r.config, &[]),
        Command::StartProvider(r) => (&r.config, &[]),
        Command::PutLink(l) => (&l.source_config, &l.target_config),
        _ => (&[], &[]),
    };
    a.iter().chain(b.iter())
}

impl Intents {
    /// Whether no order is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Nothing in flight and no update echo kept: settling would change nothing.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.echoes.is_empty()
    }

    /// How many orders are in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The orders in flight, by slot.
    pub fn pending(&self) -> impl Iterator<Item = (&Slot, &Intent)> {
        self.pending.iter()
    }

    /// The order in flight on `slot`.
    pub fn get(&self, slot: &Slot) -> Option<&Intent> {
        self.pending.get(slot)
    }

    /// How many orders of `app` are in flight.
    pub fn pending_for(&self, app: &str) -> usize {
        self.pending.values().filter(|i| i.app == app).count()
    }

    /// The earliest deadline among orders and echoes (when a timer should fire).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let orders = self.pending.values().map(|i| i.deadline);
        orders.chain(self.echoes.iter().map(|e| e.until)).min()
    }

    /// Remove every order whose effect `state` shows, whose host is gone or whose deadline is
    /// past at `now`. A confirmed `component.update` leaves an [`Echo`] for `echo_ms`.
    pub fn settle(&mut self, state: &LatticeState, now: Timestamp, echo_ms: u64) -> Settled {
        let mut settled = Settled::default();
        let mut echoes = Vec::new();
        self.pending.retain(|slot, intent| {
            let news = intent.news_after.is_none_or(|since| heard_since(state, slot, since));
            let how = if news && confirmed(state, &intent.command) {
                Settlement::Confirmed
            } else if slot.host().is_some_and(|h| !state.hosts.contains_key(h)) {
                Settlement::HostGone
            } else if now >= intent.deadline {
                Settlement::Expired
            } else {
                return true;
            };
            if let (Settlement::Confirmed, Command::UpdateComponent(r)) = (how, &intent.command) {
                echoes.push(Echo {
                    host: r.host_id.to_string(),
                    component: r.component_id.to_string(),
                    image_ref: r.new_component_ref.to_string(),
                    until: now.saturating_add(echo_ms),
                });
            }
            settled.removed.push((intent.clone(), how));
            false
        });
        self.echoes.retain(|e| now < e.until && state.hosts.contains_key(&e.host));
        for echo in echoes {
            self.echoes.retain(|e| (&e.host, &e.component) != (&echo.host, &echo.component));
            self.echoes.push(echo);
        }
        settled
    }

    /// Remove the order with message id `msg_id` (refused, or dropped by the executor).
    pub fn fail_msg(&mut self, msg_id: &str) -> Option<Intent> {
        let slot =
            self.pending.iter().find(|(_, i)| i.msg_id() == msg_id).map(|(s, _)| s.clone())?;
        self.pending.remove(&slot)
    }

    /// Remove the order on `slot` (a host reported that it failed).
    pub fn fail_slot(&mut self, slot: &Slot) -> Option<Intent> {
        self.pending.remove(slot)
    }

    /// Whether a `component_scaled` to 0 of `component` at `image_ref` on `host` is the echo of
    /// an update (and not something wadm ordered): of an update confirmed a moment ago (within
    /// its [`Echo`]'s window: a host that executed the update twice — an answer that was only
    /// late, then the retry — echoes twice), or of an update still in flight to that very
    /// image (its `component_scaled(new ref, n)` was lost or is late, and a zero with the new
    /// ref can only come from the update). A stop wadm ordered on the slot is never taken for
    /// an echo (the zero may be its answer); any other order on the slot (a scale to a count,
    /// an update to yet another image) cannot answer with a zero of this image.
    pub fn is_update_echo(
        &self,
        host: &str,
        component: &str,
        image_ref: &str,
        now: Timestamp,
    ) -> bool {
        let slot = Slot::Component { host: host.to_string(), component: component.to_string() };
        match self.pending.get(&slot).map(|i| &i.command) {
            Some(Command::ScaleComponent(r)) if r.count == 0 => return false,
            Some(Command::UpdateComponent(r)) if *r.new_component_ref == *image_ref => return true,
            _ => {}
        }
        self.echoes.iter().any(|e| {
            e.host == host && e.component == component && e.image_ref == image_ref && now < e.until
        })
    }

    /// The observed state as it will be once every order in flight has taken effect (configs
    /// first, as the lattice needs them). Orders the lattice would refuse change nothing.
    pub fn project<'a>(&self, observed: &'a LatticeState) -> Cow<'a, LatticeState> {
        if self.pending.is_empty() {
            return Cow::Borrowed(observed);
        }
        let mut projected = observed.clone();
        for intent in self.pending.values() {
            wadm_scheduler::apply::apply_command(&mut projected, &intent.command);
            // An image the host has not confirmed is not running yet (rollouts wait for it).
            if let Command::StartProvider(r) = &intent.command {
                let seen =
                    observed.hosts.get(&*r.host_id).and_then(|h| h.providers.get(&*r.provider_id));
                if let Some(now) = projected
                    .hosts
                    .get_mut(&*r.host_id)
                    .and_then(|h| h.providers.get_mut(&*r.provider_id))
                    && seen.is_none_or(|seen| seen.image_ref != now.image_ref)
                {
                    now.since = wadm_lattice::NOT_CONFIRMED;
                }
                continue;
            }
            let (host, component) = match &intent.command {
                Command::ScaleComponent(r) if r.count > 0 => (&r.host_id, &r.component_id),
                Command::UpdateComponent(r) => (&r.host_id, &r.component_id),
                _ => continue,
            };
            let seen = observed.hosts.get(&**host).and_then(|h| h.components.get(&**component));
            let Some(now) =
                projected.hosts.get_mut(&**host).and_then(|h| h.components.get_mut(&**component))
            else {
                continue;
            };
            if seen.is_none_or(|seen| seen.image_ref != now.image_ref) {
                now.since = wadm_lattice::NOT_CONFIRMED;
            }
        }
        Cow::Owned(projected)
    }

    /// [`Intents::admit`] one step's planned commands, removals (stops, deletes, scale downs)
    /// first, so that a command adding instances of a component or provider is held while a
    /// removal of that id it may replace is in flight — or could not be issued itself (held
    /// behind another order on its slot). Returns each command with its admission, in the order
    /// decided (the order to publish them in).
    pub fn admit_all<'p>(
        &mut self,
        planned: impl IntoIterator<Item = &'p PlannedCommand>,
        observed: &LatticeState,
        now: Timestamp,
        ttl_ms: u64,
        lifetime_ms: u64,
    ) -> Vec<(&'p PlannedCommand, Admission)> {
        let (removals, additions): (Vec<_>, Vec<_>) =
            planned.into_iter().partition(|c| takes_away(self, observed, &c.command));
        let mut out = Vec::with_capacity(removals.len() + additions.len());
        let mut held_removals: Vec<(Resource, Slot)> = Vec::new();
        for c in removals {
            let admission = self.admit(c, observed, now, ttl_ms, lifetime_ms);
            if admission == Admission::Busy
                && let Some(resource) = removes_shown(observed, &c.command)
            {
                held_removals.push((resource, Slot::of(&c.command)));
            }
            out.push((c, admission));
        }
        for c in additions {
            let behind = adds(observed, &c.command)
                .and_then(|added| held_removals.iter().find(|(r, _)| *r == added));
            let admission = match behind {
                Some((_, slot)) => Admission::AfterRemoval { slot: slot.clone() },
                None => self.admit(c, observed, now, ttl_ms, lifetime_ms),
            };
            out.push((c, admission));
        }
        out
    }

    /// Decide whether `planned` may be issued now, given what is `observed`: not while another
    /// order on its slot is in flight (unless it takes that order back), not before the configs
    /// it names are observed, and — when it adds instances of a component or provider — not
    /// while a removal of that id in flight still shows. When it may, it becomes pending with the
    /// next sequence number, its message expiring `ttl_ms` from `now` and its deadline
    /// `lifetime_ms` from `now`; if its effect already shows, only news heard after `now`
    /// confirms it.
    pub fn admit(
        &mut self,
        planned: &PlannedCommand,
        observed: &LatticeState,
        now: Timestamp,
        ttl_ms: u64,
        lifetime_ms: u64,
    ) -> Admission {
        let slot = Slot::of(&planned.command);
        if let Some(pending) = self.pending.get(&slot)
            && !takes_back(&planned.command, &pending.command)
        {
            return Admission::Busy;
        }
        // A config counts once the lattice shows it and no order on it is in flight (a put not
        // yet confirmed may not hold the values yet; a delete may still remove it).
        let settled = |name: &&String| {
            observed.configs.contains_key(*name)
                && !self.pending.contains_key(&Slot::Config((*name).clone()))
        };
        if let Some(config) = needed_configs(&planned.command).find(|name| !settled(name)) {
            return Admission::Waiting { config: config.clone() };
        }
        if let Some(added) = adds(observed, &planned.command)
            && let Some((slot, _)) = self
                .pending
                .iter()
                .find(|(slot, i)| removal_to_show(observed, slot, i).as_ref() == Some(&added))
        {
            return Admission::AfterRemoval { slot: slot.clone() };
        }
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        let intent = Intent {
            command: planned.command.clone(),
            app: planned.app.to_string(),
            generation: planned.generation,
            id: planned.id.to_string(),
            seq,
            issued_at: now,
            expires_at: now.saturating_add(ttl_ms),
            deadline: now.saturating_add(lifetime_ms.max(ttl_ms)),
            news_after: confirmed(observed, &planned.command).then_some(now),
        };
        self.pending.insert(slot, intent.clone());
        Admission::Issue(Box::new(intent))
    }
}

#[cfg(test)]
mod tests {
    use wadm_lattice::{ComponentInstance, ConfigState, HostState};
    use wadm_protocol::ctl::{
        ScaleComponentRequest, StartProviderRequest, StopProviderRequest, UpdateComponentRequest,
    };
    use wadm_protocol::{Link, StringMap};

    use super::*;

    fn lattice(hosts: &[&str]) -> LatticeState {
        let mut state = LatticeState { lattice: "l".into(), ..Default::default() };
        for h in hosts {
            state
                .hosts
                .insert(h.to_string(), HostState { id: h.to_string(), ..Default::default() });
        }
        state
    }

    fn scale(host: &str, count: u32, config: &[&str]) -> Command {
        Command::ScaleComponent(ScaleComponentRequest {
            config: config.iter().map(|s| s.to_string()).collect(),
            ..crate::test_fixtures::scale_request(host, "c", "img:1", count)
        })
    }

    fn update(host: &str, image: &str) -> Command {
        Command::UpdateComponent(UpdateComponentRequest {
            component_id: "c".into(),
            new_component_ref: image.into(),
            host_id: host.into(),
            annotations: None,
        })
    }

    fn planned(command: Command) -> PlannedCommand {
        PlannedCommand::new("l", "app", 2, command)
    }

    fn run(state: &mut LatticeState, host: &str, image: &str, count: u32) {
        let c = ComponentInstance {
            id: "c".into(),
            image_ref: image.into(),
            count,
            ..Default::default()
        };
        state.hosts.get_mut(host).unwrap().components.insert("c".into(), c);
    }

    #[test]
    fn one_order_per_slot_and_configs_observed_first() {
        let mut state = lattice(&["A", "B"]);
        let mut intents = Intents::default();
        let Admission::Issue(first) =
            intents.admit(&planned(scale("A", 2, &[])), &state, 0, 60, 70)
        else {
            panic!("a free slot admits");
        };
        assert_eq!((first.seq, first.expires_at, first.deadline), (0, 60, 70));
        assert_eq!(first.msg_id(), format!("{}.0", first.id));
        // Update and scale of one component on one host are one decision.
        assert_eq!(
            intents.admit(&planned(update("A", "img:2")), &state, 1, 60, 70),
            Admission::Busy
        );
        // Another host is another slot; a config named but not observed holds the order.
        let waiting = intents.admit(&planned(scale("B", 1, &["cfg"])), &state, 1, 60, 70);
        assert_eq!(waiting, Admission::Waiting { config: "cfg".into() });
        let put = Command::PutConfig { name: "cfg".into(), values: StringMap::new() };
        assert!(matches!(intents.admit(&planned(put), &state, 1, 60, 70), Admission::Issue(_)));
        // Ordered is not observed: still waiting.
        let again = intents.admit(&planned(scale("B", 1, &["cfg"])), &state, 2, 60, 70);
        assert_eq!(again, Admission::Waiting { config: "cfg".into() });
        let stored = ConfigState { name: "cfg".into(), values: Some(StringMap::new()) };
        state.configs.insert("cfg".into(), stored);
        let settled = intents.settle(&state, 3, 10);
        assert!(settled.touches_configs());
        let Admission::Issue(third) =
            intents.admit(&planned(scale("B", 1, &["cfg"])), &state, 3, 60, 70)
        else {
            panic!("the config is observed now");
        };
        assert_eq!(third.seq, 2, "sequence numbers are never reused");
        assert_eq!(intents.len(), 2);
    }

    #[test]
    fn a_config_put_is_confirmed_by_its_values_not_by_unknown_ones() {
        let mut state = lattice(&[]);
        let mut intents = Intents::default();
        let values = StringMap::from([("k".to_string(), "v2".to_string())]);
        let put = Command::PutConfig { name: "cfg".into(), values: values.clone() };
        intents.admit(&planned(put), &state, 0, 60, 70);
        // `config_set` says the config exists, not what it holds; the read that should tell
        // went unanswered. Settled now, the order would leave the planner looking at unknown
        // values, and it would put the config again while this put may be in flight.
        state.configs.insert("cfg".into(), ConfigState { name: "cfg".into(), values: None });
        assert!(intents.settle(&state, 1, 10).is_empty());
        assert_eq!(intents.project(&state).configs["cfg"].values.as_ref(), Some(&values));
        let old = StringMap::from([("k".to_string(), "v1".to_string())]);
        state.configs.get_mut("cfg").unwrap().values = Some(old);
        assert!(intents.settle(&state, 2, 10).is_empty(), "other values");
        state.configs.get_mut("cfg").unwrap().values = Some(values);
        assert_eq!(intents.settle(&state, 3, 10).removed[0].1, Settlement::Confirmed);
    }

    #[test]
    fn orders_settle_when_confirmed_expired_or_their_host_is_gone() {
        let mut state = lattice(&["A", "B", "C"]);
        let mut intents = Intents::default();
        for host in ["A", "B", "C"] {
            intents.admit(&planned(scale(host, 2, &[])), &state, 0, 60, 70);
        }
        assert_eq!(intents.next_deadline(), Some(70));
        run(&mut state, "A", "img:1", 1);
        assert!(intents.settle(&state, 10, 10).is_empty(), "1 of 2 is not the order's effect");
        run(&mut state, "A", "img:1", 2);
        state.hosts.remove("B");
        let settled = intents.settle(&state, 11, 10);
        let how: Vec<_> = settled
            .removed
            .iter()
            .map(|(i, how)| (i.command.target_host().unwrap().to_string(), *how))
            .collect();
        assert_eq!(
            how,
            vec![("A".into(), Settlement::Confirmed), ("B".into(), Settlement::HostGone)]
        );
        assert!(intents.settle(&state, 69, 10).is_empty());
        let expired = intents.settle(&state, 70, 10);
        assert_eq!(expired.removed[0].1, Settlement::Expired);
        assert!(intents.is_empty());
        assert_eq!(expired.apps(), BTreeSet::from(["app".to_string()]));
    }

    #[test]
    fn a_stop_is_confirmed_by_absence_and_never_counts_as_a_loss() {
        let mut state = lattice(&["A"]);
        run(&mut state, "A", "img:1", 2);
        let mut intents = Intents::default();
        intents.admit(&planned(scale("A", 0, &[])), &state, 0, 60, 70);
        // Planned on the projection, the stop is already done: nothing to order again.
        assert!(intents.project(&state).hosts["A"].components.is_empty());
        state.hosts.get_mut("A").unwrap().components.clear();
        let settled = intents.settle(&state, 5, 10);
        assert_eq!(settled.removed[0].1, Settlement::Confirmed);
    }

    #[test]
    fn an_update_leaves_one_echo_for_the_hosts_spurious_zero() {
        let mut state = lattice(&["A"]);
        run(&mut state, "A", "img:1", 3);
        let mut intents = Intents::default();
        intents.admit(&planned(update("A", "img:2")), &state, 0, 60, 70);
        assert_eq!(intents.project(&state).hosts["A"].components["c"].image_ref, "img:2");
        assert!(!intents.is_update_echo("A", "c", "img:1", 1), "the old image is no echo");
        run(&mut state, "A", "img:2", 3);
        intents.settle(&state, 2, 10);
        assert!(!intents.is_update_echo("A", "c", "img:1", 3), "another image");
        assert!(!intents.is_update_echo("B", "c", "img:2", 3), "another host");
        assert!(intents.is_update_echo("A", "c", "img:2", 3));
        // Executed twice (a late answer, then the retry): echoed twice.
        assert!(intents.is_update_echo("A", "c", "img:2", 4));
        assert!(!intents.is_update_echo("A", "c", "img:2", 12), "past the echo window");

        // A stop wadm ordered on the slot is not mistaken for an echo; echoes expire.
        intents.admit(&planned(update("A", "img:3")), &state, 5, 60, 70);
        run(&mut state, "A", "img:3", 3);
        intents.settle(&state, 6, 10);
        intents.admit(&planned(scale("A", 0, &[])), &state, 7, 60, 70);
        assert!(!intents.is_update_echo("A", "c", "img:3", 8));
        intents.fail_slot(&Slot::Component { host: "A".into(), component: "c".into() });
        assert!(!intents.is_update_echo("A", "c", "img:3", 16), "past the echo window");
    }

    #[test]
    fn an_echo_before_the_updates_answer_is_recognised_once() {
        let mut state = lattice(&["A"]);
        run(&mut state, "A", "img:1", 3);
        let mut intents = Intents::default();
        intents.admit(&planned(update("A", "img:2")), &state, 0, 60, 70);
        // The update's `component_scaled(img:2, 3)` is late or lost: its echo comes first, and
        // a zero of the new image can only come from the update.
        assert!(intents.is_update_echo("A", "c", "img:2", 1));
        assert!(intents.is_update_echo("A", "c", "img:2", 1), "a duplicate of the echo");
        run(&mut state, "A", "img:2", 3);
        let settled = intents.settle(&state, 2, 10);
        assert_eq!(settled.removed[0].1, Settlement::Confirmed);
        // A stop wadm orders next is answered by a zero: not an echo.
        intents.admit(&planned(scale("A", 0, &[])), &state, 3, 60, 70);
        assert!(!intents.is_update_echo("A", "c", "img:2", 3));
        intents.fail_slot(&Slot::Component { host: "A".into(), component: "c".into() });

        // Confirmed first, then a scale ordered on the slot: the echo still is one (a scale to
        // a count answers with that count, never a zero).
        intents.admit(&planned(update("A", "img:3")), &state, 5, 60, 70);
        run(&mut state, "A", "img:3", 3);
        intents.settle(&state, 6, 10);
        intents.admit(&planned(scale("A", 5, &[])), &state, 7, 60, 70);
        assert!(intents.is_update_echo("A", "c", "img:3", 8));
    }

    #[test]
    fn a_stop_takes_back_a_start_in_flight_on_its_slot() {
        let state = lattice(&["A"]);
        let mut intents = Intents::default();
        intents.admit(&planned(scale("A", 2, &[])), &state, 0, 60, 70);
        // A newer deploy wants fewer: the scale down is not held behind the start (which a
        // late answer may yet execute), it replaces it.
        let Admission::Issue(down) = intents.admit(&planned(scale("A", 1, &[])), &state, 1, 60, 70)
        else {
            panic!("a scale down takes back a scale up in flight");
        };
        assert_eq!(down.seq, 1);
        assert_eq!(intents.len(), 1);
        assert_eq!(intents.project(&state).hosts["A"].components["c"].count, 1);
        // Anything else on a busy slot still waits.
        let up = intents.admit(&planned(scale("A", 3, &[])), &state, 2, 60, 70);
        assert_eq!(up, Admission::Busy);
        let same = intents.admit(&planned(scale("A", 1, &[])), &state, 2, 60, 70);
        assert_eq!(same, Admission::Busy);
    }

    /// wadm heard news of `c` on `host` at `at` (an event of it applied then).
    fn news(state: &mut LatticeState, host: &str, at: Timestamp) {
        let clock = state.bookkeeping.hosts.entry(host.into()).or_default();
        let mark = Mark { applied_at: at, ..Default::default() };
        clock.entities.insert(HostEntity::Component("c".into()), mark);
    }

    #[test]
    fn a_take_back_already_shown_waits_for_news_of_its_slot() {
        let mut state = lattice(&["A"]);
        run(&mut state, "A", "img:1", 1);
        news(&mut state, "A", 0);
        let mut intents = Intents::default();
        intents.admit(&planned(scale("A", 2, &[])), &state, 0, 60, 70);
        // A newer plan wants 1: the take-back's effect already shows, but the start it takes
        // back may yet be executed (an answer that is only late) before it.
        let Admission::Issue(back) = intents.admit(&planned(scale("A", 1, &[])), &state, 5, 60, 70)
        else {
            panic!("a scale down takes back a scale up in flight");
        };
        assert_eq!(back.news_after, Some(5));
        assert!(intents.settle(&state, 6, 10).is_empty(), "what was known before is no news");
        news(&mut state, "A", 5);
        assert!(intents.settle(&state, 7, 10).is_empty(), "heard at the instant it was issued");
        // The late start executes: news, but not the take-back's effect.
        run(&mut state, "A", "img:1", 2);
        news(&mut state, "A", 8);
        assert!(intents.settle(&state, 8, 10).is_empty());
        run(&mut state, "A", "img:1", 1);
        news(&mut state, "A", 9);
        let settled = intents.settle(&state, 9, 10);
        assert_eq!(settled.removed[0].1, Settlement::Confirmed);

        // A heartbeat heard after it is news too; an order whose effect did not show when it
        // was issued needs none.
        let Admission::Issue(down) =
            intents.admit(&planned(scale("A", 1, &[])), &state, 10, 60, 70)
        else {
            panic!("a free slot admits")
        };
        assert_eq!(down.news_after, Some(10));
        state.bookkeeping.hosts.get_mut("A").unwrap().snapshot_at = 11;
        assert_eq!(intents.settle(&state, 11, 10).removed.len(), 1);
        let Admission::Issue(up) = intents.admit(&planned(scale("A", 3, &[])), &state, 12, 60, 70)
        else {
            panic!("a free slot admits")
        };
        assert_eq!(up.news_after, None);
        run(&mut state, "A", "img:1", 3);
        assert_eq!(intents.settle(&state, 13, 10).removed.len(), 1);
    }

    #[test]
    fn instances_are_added_only_once_removals_in_flight_show() {
        let mut state = lattice(&["A", "B"]);
        run(&mut state, "A", "img:1", 2);
        let provider = wadm_lattice::ProviderInstance { id: "p".into(), ..Default::default() };
        state.hosts.get_mut("A").unwrap().providers.insert("p".into(), provider);
        let start_p = |host: &str| {
            Command::StartProvider(StartProviderRequest {
                provider_id: "p".into(),
                provider_ref: "prov:2".into(),
                host_id: host.into(),
                config: vec![],
                annotations: Default::default(),
            })
        };
        let stop_p = Command::StopProvider(StopProviderRequest {
            provider_id: "p".into(),
            host_id: "A".into(),
        });
        let mut intents = Intents::default();
        assert!(takes_away(&intents, &state, &scale("A", 0, &[])));
        assert!(takes_away(&intents, &state, &stop_p));
        assert!(!takes_away(&intents, &state, &scale("B", 2, &[])));
        assert!(!takes_away(&intents, &state, &scale("A", 2, &[])), "same count");
        // A move: the stop on A goes first, the start on B waits until the stop shows (were it
        // executed first, three would run).
        intents.admit(&planned(scale("A", 0, &[])), &state, 0, 60, 70);
        intents.admit(&planned(stop_p), &state, 0, 60, 70);
        let a = Slot::Component { host: "A".into(), component: "c".into() };
        let held = intents.admit(&planned(scale("B", 2, &[])), &state, 1, 60, 70);
        assert_eq!(held, Admission::AfterRemoval { slot: a });
        let p = Slot::Provider { host: "A".into(), provider: "p".into() };
        let held = intents.admit(&planned(start_p("B")), &state, 1, 60, 70);
        assert_eq!(held, Admission::AfterRemoval { slot: p });
        // Another component is not held; nor is a scale that adds nothing.
        let mut other = scale("B", 1, &[]);
        if let Command::ScaleComponent(r) = &mut other {
            r.component_id = "d".into();
        }
        assert!(matches!(intents.admit(&planned(other), &state, 1, 60, 70), Admission::Issue(_)));
        run(&mut state, "B", "img:1", 1);
        assert!(matches!(
            intents.admit(&planned(scale("B", 1, &[])), &state, 1, 60, 70),
            Admission::Issue(_)
        ));
        // Once the removals show, the additions go (before the stops are even settled).
        state.hosts.get_mut("A").unwrap().components.clear();
        state.hosts.get_mut("A").unwrap().providers.clear();
        assert_eq!(intents.len(), 4);
        intents.fail_slot(&Slot::Component { host: "B".into(), component: "c".into() });
        assert!(matches!(
            intents.admit(&planned(scale("B", 2, &[])), &state, 2, 60, 70),
            Admission::Issue(_)
        ));
        assert!(matches!(
            intents.admit(&planned(start_p("B")), &state, 2, 60, 70),
            Admission::Issue(_)
        ));
    }

    #[test]
    fn an_addition_waits_for_news_of_a_take_back_it_replaces() {
        let mut state = lattice(&["A", "B"]);
        let start = |host: &str, image: &str| {
            Command::StartProvider(StartProviderRequest {
                provider_id: "p".into(),
                provider_ref: image.into(),
                host_id: host.into(),
                config: vec![],
                annotations: Default::default(),
            })
        };
        let stop = Command::StopProvider(StopProviderRequest {
            provider_id: "p".into(),
            host_id: "A".into(),
        });
        let mut intents = Intents::default();
        intents.admit(&planned(start("A", "prov:1")), &state, 0, 60, 70);
        // A newer version wants p elsewhere: the stop takes back the start on A, whose effect
        // wadm has not seen (the host may run it already). Until news of A's p, a start on B
        // could run beside it.
        let Admission::Issue(back) = intents.admit(&planned(stop), &state, 1, 60, 70) else {
            panic!("a stop takes back a start in flight")
        };
        assert_eq!(back.news_after, Some(1));
        let a = Slot::Provider { host: "A".into(), provider: "p".into() };
        let held = intents.admit(&planned(start("B", "prov:2")), &state, 2, 60, 70);
        assert_eq!(held, Admission::AfterRemoval { slot: a });
        let clock = state.bookkeeping.hosts.entry("A".into()).or_default();
        let mark = Mark { applied_at: 3, ..Default::default() };
        clock.entities.insert(HostEntity::Provider("p".into()), mark);
        let go = intents.admit(&planned(start("B", "prov:2")), &state, 3, 60, 70);
        assert!(matches!(go, Admission::Issue(_)));
    }

    #[test]
    fn a_step_admits_removals_first_and_holds_additions_behind_held_removals() {
        let mut state = lattice(&["A", "B", "C"]);
        run(&mut state, "A", "img:1", 2);
        run(&mut state, "C", "img:1", 2);
        let mut intents = Intents::default();
        // An update in flight on A: a scale down there is held behind it.
        intents.admit(&planned(update("A", "img:2")), &state, 0, 60, 70);
        let mut other = scale("B", 1, &[]);
        if let Command::ScaleComponent(r) = &mut other {
            r.component_id = "d".into();
        }
        // The plan's order: starts before stops.
        let plan = [
            planned(scale("B", 1, &[])),
            planned(other),
            planned(scale("A", 1, &[])),
            planned(scale("C", 1, &[])),
        ];
        let admitted = intents.admit_all(&plan, &state, 1, 60, 70);
        let decided: Vec<_> = admitted
            .iter()
            .map(|(c, a)| {
                let host = c.command.target_host().unwrap().to_string();
                let how = match a {
                    Admission::Issue(_) => "issue".to_string(),
                    Admission::AfterRemoval { slot } => format!("after {}", slot.host().unwrap()),
                    other => format!("{other:?}"),
                };
                (host, how)
            })
            .collect();
        let expected = [("A", "Busy"), ("C", "issue"), ("B", "after A"), ("B", "issue")];
        let expected: Vec<_> =
            expected.iter().map(|(h, a)| (h.to_string(), a.to_string())).collect();
        assert_eq!(decided, expected);
    }

    #[test]
    fn failed_and_dropped_orders_free_their_slot() {
        let state = lattice(&["A"]);
        let mut intents = Intents::default();
        let Admission::Issue(order) =
            intents.admit(&planned(scale("A", 1, &[])), &state, 0, 60, 70)
        else {
            panic!()
        };
        assert!(intents.fail_msg("nope").is_none());
        assert_eq!(intents.fail_msg(&order.msg_id()), Some(*order));
        assert!(matches!(
            intents.admit(&planned(scale("A", 1, &[])), &state, 1, 60, 70),
            Admission::Issue(_)
        ));
    }

    #[test]
    fn links_confirm_on_the_exact_link_and_the_wire_form_round_trips() {
        let mut state = lattice(&[]);
        let link = crate::test_fixtures::http_link("s", "t");
        let mut intents = Intents::default();
        intents.admit(&planned(Command::PutLink(link.clone())), &state, 0, 60, 70);
        let other = Link { target: "u".into(), ..link.clone() };
        state.links.insert(link.key(), other);
        assert!(intents.settle(&state, 1, 10).is_empty(), "another target is not this order");
        let json = serde_json::to_string(&intents).unwrap();
        let back: Intents = serde_json::from_str(&json).unwrap();
        assert_eq!(back, intents);
        assert_eq!(serde_json::to_string(&Intents::default()).unwrap(), r#"{"next_seq":0}"#);
        state.links.insert(link.key(), link);
        assert_eq!(intents.settle(&state, 2, 10).removed.len(), 1);
    }
}
