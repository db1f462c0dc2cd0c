//! Allocation events: every control command the hosts answered, published for other tools on
//! `wadm.allocation.{lattice}.{app}` (core NATS, not captured by any wadm stream) as a
//! CloudEvent of type `com.wadm.allocation`, and counted in `wadm_allocations_total`.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `allocation`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wadm_lattice::{Change as StateChange, LatticeState, Timestamp};
use wadm_scheduler::Command;

/// Subject prefix of allocation events.
pub const ALLOCATION_PREFIX: &str = "wadm.allocation";
/// The CloudEvent `type` of an allocation event.
pub const ALLOCATION_TYPE: &str = "com.wadm.allocation";
/// How long after a host left a placement of what it ran counts as its replacement.
pub const REPLACING_FOR_MS: u64 = 10 * 60 * 1000;

/// `wadm.allocation.{lattice}.{app}` (behind the account token of another account's lattice).
pub fn allocation_subject(lattice: &str, app: &str) -> String {
    wadm_protocol::subject::scoped(lattice, |name| format!("{ALLOCATION_PREFIX}.{name}.{app}"))
}

/// What a command changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A component or provider started on a host that did not run it.
    Placed,
    /// A component's image changed on a host.
    Updated,
    /// A component's count changed on a host that runs it (or its annotations or config).
    Scaled,
    /// A component or provider stopped on a host.
    Removed,
    /// A link put between a source and a target.
    Linked,
    /// A link deleted.
    Unlinked,
    /// A named config written (created or changed).
    ConfigPut,
    /// A named config deleted.
    ConfigDeleted,
}

impl Change {
    /// The name in events and metrics (`placed`, `config_put`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Placed => "placed",
            Change::Updated => "updated",
            Change::Scaled => "scaled",
            Change::Removed => "removed",
            Change::Linked => "linked",
            Change::Unlinked => "unlinked",
            Change::ConfigPut => "config_put",
            Change::ConfigDeleted => "config_deleted",
        }
    }

    /// What a command of `kind` changes when nothing else is known (a message from an older
    /// wadm): a scale with count 0 removes, any other scale scales.
    pub fn of_kind(kind: &str, count: Option<u64>) -> Option<Change> {
        Some(match kind {
            "scale_component" if count == Some(0) => Change::Removed,
            "scale_component" => Change::Scaled,
            "update_component" => Change::Updated,
            "start_provider" => Change::Placed,
            "stop_provider" => Change::Removed,
            "put_link" => Change::Linked,
            "delete_link" => Change::Unlinked,
            "put_config" => Change::ConfigPut,
            "delete_config" => Change::ConfigDeleted,
            _ => return None,
        })
    }
}

/// Why, in one word (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonClass {
    /// A placement of something no host runs, or a link or config that is missing.
    Deploy,
    /// A count that changes on a host, a placement of something that runs elsewhere, or a removal
    /// of something that still runs on another host.
    Scale,
    /// A placement of what a host that left was running, within [`REPLACING_FOR_MS`] of its
    /// leaving.
    HostLost,
    /// A `component.update`, or a placement on a host that runs another image.
    Upgrade,
    /// A command of an application being undeployed.
    Undeploy,
    /// What runs differs from what is wanted in something else than count or image (annotations,
    /// config, a link's target or interfaces, a config's values).
    Drift,
    /// A placement made possible by declared host capacity that became free.
    Capacity,
    /// A config no deployed application needs any more, deleted.
    OrphanGc,
    /// Removed by orphan collection (`crate::orphans`).
    Gc,
    /// Anything else that cannot be classified reliably when deciding (a removal of something that
    /// runs nowhere else, a link no longer wanted).
    Reconcile,
    /// A message from a wadm that did not classify its commands.
    Unknown,
}

impl ReasonClass {
    /// The name in events and metrics (`host_lost`, `orphan_gc`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonClass::Deploy => "deploy",
            ReasonClass::Scale => "scale",
            ReasonClass::HostLost => "host_lost",
            ReasonClass::Upgrade => "upgrade",
            ReasonClass::Undeploy => "undeploy",
            ReasonClass::Drift => "drift",
            ReasonClass::Capacity => "capacity",
            ReasonClass::OrphanGc => "orphan_gc",
            ReasonClass::Gc => "gc",
            ReasonClass::Reconcile => "reconcile",
            ReasonClass::Unknown => "unknown",
        }
    }
}

/// What a command changes and why, decided with it and carried in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// What the command changes.
    pub change: Change,
    /// Why it was decided.
    pub reason_class: ReasonClass,
}

/// Note the components and providers of hosts that left in `changes` (a host removed, lost or
/// stopped, with what it ran) as waiting for a replacement since `now`, and forget those noted
/// more than [`REPLACING_FOR_MS`] ago.
pub fn note_left(replacing: &mut BTreeMap<String, Timestamp>, changes: &[StateChange], now: u64) {
    let left: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            StateChange::HostRemoved { host, .. } => Some(host.as_str()),
            _ => None,
        })
        .collect();
    for change in changes {
        let id = match change {
            StateChange::ComponentRemoved { host, component } if left.contains(&host.as_str()) => {
                component
            }
            StateChange::ProviderRemoved { host, provider } if left.contains(&host.as_str()) => {
                provider
            }
            _ => continue,
        };
        replacing.insert(id.clone(), now);
    }
    replacing.retain(|_, since| now < since.saturating_add(REPLACING_FOR_MS));
}

/// The component or provider a host-addressed command acts on.
pub fn workload_id(command: &Command) -> Option<&str> {
    match command {
        Command::ScaleComponent(r) => Some(&r.component_id),
        Command::UpdateComponent(r) => Some(&r.component_id),
        Command::StartProvider(r) => Some(&r.provider_id),
        Command::StopProvider(r) => Some(&r.provider_id),
        _ => None,
    }
}

/// What `command` changes and why, from the observed `state` it is decided on (without the
/// orders in flight), whether its application is `undeploying`, and the workloads of hosts that
/// left still waiting for a replacement (`replacing`, see [`note_left`]).
pub fn classify(
    command: &Command,
    state: &LatticeState,
    undeploying: bool,
    replacing: &BTreeMap<String, Timestamp>,
) -> Allocation {
    let (change, class) = match command {
        Command::ScaleComponent(r) => {
            let here =
                state.hosts.get(&*r.host_id).and_then(|h| h.components.get(&*r.component_id));
            let elsewhere = state
                .hosts
                .iter()
                .any(|(id, h)| **id != *r.host_id && h.components.contains_key(&*r.component_id));
            match here {
                _ if r.count == 0 => (
                    Change::Removed,
                    if elsewhere { ReasonClass::Scale } else { ReasonClass::Reconcile },
                ),
                None if elsewhere => (Change::Placed, ReasonClass::Scale),
                None => (Change::Placed, ReasonClass::Deploy),
                Some(c) if *c.image_ref != *r.component_ref => {
                    (Change::Updated, ReasonClass::Upgrade)
                }
                Some(c) if c.count != r.count => (Change::Scaled, ReasonClass::Scale),
                Some(_) => (Change::Scaled, ReasonClass::Drift),
            }
        }
        Command::UpdateComponent(_) => (Change::Updated, ReasonClass::Upgrade),
        Command::StartProvider(r) => {
            let here = state.hosts.get(&*r.host_id).and_then(|h| h.providers.get(&*r.provider_id));
            let anywhere = state.hosts.values().any(|h| h.providers.contains_key(&*r.provider_id));
            match here {
                Some(_) => (Change::Placed, ReasonClass::Upgrade),
                None if anywhere => (Change::Placed, ReasonClass::Scale),
                None => (Change::Placed, ReasonClass::Deploy),
            }
        }
        Command::StopProvider(r) => {
            let elsewhere = state
                .hosts
                .iter()
                .any(|(id, h)| **id != *r.host_id && h.providers.contains_key(&*r.provider_id));
            (Change::Removed, if elsewhere { ReasonClass::Scale } else { ReasonClass::Reconcile })
        }
        Command::PutLink(link) => match state.links.get(&link.key()) {
            None => (Change::Linked, ReasonClass::Deploy),
            Some(_) => (Change::Linked, ReasonClass::Drift),
        },
        Command::DeleteLink(_) => (Change::Unlinked, ReasonClass::Reconcile),
        Command::PutConfig { name, .. } => match state.configs.get(name) {
            None => (Change::ConfigPut, ReasonClass::Deploy),
            Some(_) => (Change::ConfigPut, ReasonClass::Drift),
        },
        Command::DeleteConfig { .. } => (Change::ConfigDeleted, ReasonClass::OrphanGc),
    };
    let reason_class = if undeploying {
        ReasonClass::Undeploy
    } else if places(change, command, state)
        && workload_id(command).is_some_and(|id| replacing.contains_key(id))
    {
        ReasonClass::HostLost
    } else {
        class
    };
    Allocation { change, reason_class }
}

/// Whether a command of this `change` adds instances (a placement, or a component scaled up).
fn places(change: Change, command: &Command, state: &LatticeState) -> bool {
    matches!(change, Change::Placed)
        || matches!((change, command), (Change::Scaled, Command::ScaleComponent(r))
            if state.hosts.get(&*r.host_id)
                .and_then(|h| h.components.get(&*r.component_id))
                .is_some_and(|c| c.count < r.count))
}

/// [`classify`]'s answer for an application whose last plan was short of declared host
/// capacity: what it places now, it places because room appeared (unless a host was lost or the
/// application is undeployed).
pub fn after_capacity_shortfall(
    allocation: Allocation,
    command: &Command,
    state: &LatticeState,
) -> Allocation {
    let plain = !matches!(allocation.reason_class, ReasonClass::Undeploy | ReasonClass::HostLost);
    if plain && places(allocation.change, command, state) {
        Allocation { reason_class: ReasonClass::Capacity, ..allocation }
    } else {
        allocation
    }
}

/// How the hosts answered a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Accepted (or already so: a provider start for one already running, a stop for one not
    /// running).
    Accepted,
    /// Refused by the host (its reason is in the event's `message`).
    Refused,
}

impl Outcome {
    /// The name in events and metrics (`accepted` or `refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
        }
    }
}

/// The link a link command acts on (its identity, and its target when put).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRef {
    /// The component or provider the link starts from.
    pub source_id: String,
    /// The component or provider the link points to; `None` when the link is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The link's name.
    pub name: String,
    /// The WIT namespace of the linked interfaces.
    pub wit_namespace: String,
    /// The WIT package of the linked interfaces.
    pub wit_package: String,
}

/// The `data` of an allocation event. Never a config's values (they may be secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationData {
    /// The application the command was decided for.
    pub app: String,
    /// The application's runtime generation when the command was decided.
    pub generation: u64,
    /// What the command changes.
    pub change: Change,
    /// The control command's kind (`scale_component`, `put_link`, …).
    pub kind: String,
    /// The component acted on, for component commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_id: Option<String>,
    /// The provider acted on, for provider commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The link acted on, for link commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkRef>,
    /// The name of the config acted on, for config commands (never its values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The host a host-addressed command went to (links and configs are lattice-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// The image asked for by a component scale or update, or by a provider start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A scale's count (0: stopped on that host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Why it was decided, in one word.
    pub reason_class: ReasonClass,
    /// Why it was decided, in words (as in the `command sent` log line).
    pub reason: String,
    /// How the hosts answered.
    pub outcome: Outcome,
    /// The host's answer when it said something (a refusal's reason, "already running", …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The command message id (`Nats-Msg-Id` of the command stream).
    pub command: String,
}

/// The CloudEvent (structured JSON) of `data`, from the wadm instance `source` at `time` (ms
/// since the epoch). Its `id` is the command message id: the event of a command executed again
/// (a redelivery) carries the same id.
pub fn cloud_event(data: &AllocationData, source: &str, time: Timestamp) -> serde_json::Value {
    let time = i64::try_from(time)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({
        "specversion": "1.0",
        "id": data.command,
        "source": source,
        "type": ALLOCATION_TYPE,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use wadm_lattice::{ComponentInstance, HostState, ProviderInstance, RemovalReason};
    use wadm_protocol::ctl::{StartProviderRequest, StopProviderRequest};

    use super::*;

    fn scale(host: &str, count: u32, image: &str) -> Command {
        Command::ScaleComponent(crate::test_fixtures::scale_request(host, "web", image, count))
    }

    fn start(host: &str) -> Command {
        Command::StartProvider(StartProviderRequest {
            provider_id: "http".into(),
            provider_ref: "p:1".into(),
            host_id: host.into(),
            config: vec![],
            annotations: Default::default(),
        })
    }

    /// Host A runs `web` (img:1) x`count` and provider `http`; host B runs nothing.
    fn state(count: u32) -> LatticeState {
        let mut state = LatticeState::default();
        let mut a = HostState { id: "A".into(), ..HostState::default() };
        if count > 0 {
            let web = ComponentInstance {
                id: "web".into(),
                image_ref: "img:1".into(),
                count,
                ..Default::default()
            };
            a.components.insert("web".into(), web);
            let http = ProviderInstance { id: "http".into(), ..Default::default() };
            a.providers.insert("http".into(), http);
        }
        state.hosts.insert("A".into(), a);
        state.hosts.insert("B".into(), HostState { id: "B".into(), ..HostState::default() });
        state
    }

    fn class(command: &Command, state: &LatticeState) -> (Change, ReasonClass) {
        let a = classify(command, state, false, &BTreeMap::new());
        (a.change, a.reason_class)
    }

    #[test]
    fn placements_after_a_capacity_shortfall_are_classified_capacity() {
        let short = |c: &Command, s: &LatticeState| {
            let plain = classify(c, s, false, &BTreeMap::new());
            let a = after_capacity_shortfall(plain, c, s);
            (a.change, a.reason_class)
        };
        use Change::*;
        use ReasonClass::*;
        assert_eq!(short(&scale("B", 2, "img:1"), &state(2)), (Placed, Capacity));
        assert_eq!(short(&scale("A", 3, "img:1"), &state(2)), (Scaled, Capacity));
        // Not what places nothing.
        assert_eq!(short(&scale("A", 1, "img:1"), &state(2)), (Scaled, Scale));
        assert_eq!(short(&scale("A", 0, "img:1"), &state(2)), (Removed, Reconcile));
        let undeploying = classify(&scale("B", 2, "img:1"), &state(2), true, &BTreeMap::new());
        let undeploying = after_capacity_shortfall(undeploying, &scale("B", 2, "img:1"), &state(2));
        assert_eq!(undeploying.reason_class, Undeploy);
    }

    #[test]
    fn placements_are_classified_from_what_runs() {
        use Change::*;
        use ReasonClass::*;
        assert_eq!(class(&scale("A", 2, "img:1"), &state(0)), (Placed, Deploy));
        assert_eq!(class(&scale("B", 2, "img:1"), &state(2)), (Placed, Scale));
        assert_eq!(class(&scale("A", 3, "img:1"), &state(2)), (Scaled, Scale));
        assert_eq!(class(&scale("A", 1, "img:1"), &state(2)), (Scaled, Scale));
        assert_eq!(class(&scale("A", 2, "img:1"), &state(2)), (Scaled, Drift));
        assert_eq!(class(&scale("A", 2, "img:2"), &state(2)), (Updated, Upgrade));
        assert_eq!(class(&scale("A", 0, "img:1"), &state(2)), (Removed, Reconcile));
        let mut both = state(2);
        let web = both.hosts["A"].components["web"].clone();
        both.hosts.get_mut("B").unwrap().components.insert("web".into(), web);
        assert_eq!(class(&scale("A", 0, "img:1"), &both), (Removed, Scale));
        assert_eq!(class(&start("A"), &state(0)), (Placed, Deploy));
        assert_eq!(class(&start("B"), &state(1)), (Placed, Scale));
        let stop = Command::StopProvider(StopProviderRequest {
            provider_id: "http".into(),
            host_id: "A".into(),
        });
        assert_eq!(class(&stop, &state(1)), (Removed, Reconcile));
    }

    #[test]
    fn links_and_configs_are_deployed_or_drift() {
        let link = crate::test_fixtures::http_link("web", "http");
        let put = Command::PutLink(link.clone());
        let mut s = state(1);
        assert_eq!(class(&put, &s), (Change::Linked, ReasonClass::Deploy));
        s.links.insert(link.key(), link);
        assert_eq!(class(&put, &s), (Change::Linked, ReasonClass::Drift));
        let config = Command::PutConfig { name: "c".into(), values: Default::default() };
        assert_eq!(class(&config, &s), (Change::ConfigPut, ReasonClass::Deploy));
        let del = Command::DeleteConfig { name: "c".into() };
        assert_eq!(class(&del, &s), (Change::ConfigDeleted, ReasonClass::OrphanGc));
    }

    #[test]
    fn undeploying_wins_and_replacements_of_a_host_that_left_are_host_lost() {
        let undeploying = classify(&scale("A", 0, "img:1"), &state(2), true, &BTreeMap::new());
        assert_eq!(undeploying.reason_class, ReasonClass::Undeploy);
        // Host C ran web and http, and its lease ran out.
        let changes = vec![
            StateChange::ComponentRemoved { host: "C".into(), component: "web".into() },
            StateChange::ProviderRemoved { host: "C".into(), provider: "http".into() },
            StateChange::ComponentRemoved { host: "A".into(), component: "other".into() },
            StateChange::HostRemoved { host: "C".into(), reason: RemovalReason::Lost },
        ];
        let mut replacing = BTreeMap::new();
        note_left(&mut replacing, &changes, 1_000);
        assert_eq!(replacing.keys().collect::<Vec<_>>(), ["http", "web"]);
        let lost = |c: &Command, s: &LatticeState| classify(c, s, false, &replacing).reason_class;
        assert_eq!(lost(&scale("B", 1, "img:1"), &state(2)), ReasonClass::HostLost);
        assert_eq!(lost(&scale("A", 3, "img:1"), &state(2)), ReasonClass::HostLost);
        assert_eq!(lost(&start("B"), &state(1)), ReasonClass::HostLost);
        // Not a placement: classified as usual.
        assert_eq!(lost(&scale("A", 1, "img:1"), &state(2)), ReasonClass::Scale);
        // Forgotten after the window.
        note_left(&mut replacing, &[], 1_000 + REPLACING_FOR_MS);
        assert!(replacing.is_empty());
    }
}
