//! Application and scaler status, in the wire shape of the wadm API (`model.status`, `model.get`,
//! `wadm.status.{lattice}.{app}`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The state of an application or of one of its scalers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StatusType {
    /// Not deployed (the default).
    #[default]
    Undeployed,
    /// Waiting for something outside wadm's control (e.g. no hosts yet).
    Waiting,
    /// Commands issued, not yet observed to have taken effect.
    #[serde(alias = "compensating")]
    Reconciling,
    /// Observed state matches desired state.
    #[serde(alias = "ready")]
    Deployed,
    /// Cannot be achieved as specified (the message says why).
    Failed,
    /// Running, but reporting unhealthy.
    Unhealthy,
}

impl StatusType {
    /// Precedence when aggregating scalers into an application status: higher wins.
    /// failed > undeployed > waiting > reconciling > unhealthy > deployed.
    pub fn precedence(self) -> u8 {
        match self {
            StatusType::Failed => 5,
            StatusType::Undeployed => 4,
            StatusType::Waiting => 3,
            StatusType::Reconciling => 2,
            StatusType::Unhealthy => 1,
            StatusType::Deployed => 0,
        }
    }

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusType::Undeployed => "undeployed",
            StatusType::Waiting => "waiting",
            StatusType::Reconciling => "reconciling",
            StatusType::Deployed => "deployed",
            StatusType::Failed => "failed",
            StatusType::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for StatusType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status type with its human-readable message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The state (deployed, reconciling, failed, …).
    #[serde(rename = "type")]
    pub status_type: StatusType,
    /// Why, for a person (empty when there is nothing to say). Shared: a manager reports every
    /// scaler's status on every reconcile, and most messages repeat (`1/1 instances running`).
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub message: Arc<str>,
    /// Instances running of instances wanted, whatever the state (`None`: the scaler runs no
    /// instances, e.g. links and configs, or a server that does not say). An addition to the
    /// upstream wire shape, left out when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Instances>,
}

impl StatusInfo {
    /// A status with its message.
    pub fn new(status_type: StatusType, message: impl AsRef<str>) -> Self {
        Self { status_type, message: message_text(message.as_ref()), instances: None }
    }

    /// The same status, counting `instances`.
    pub fn with_instances(mut self, instances: Instances) -> Self {
        self.instances = Some(instances);
        self
    }
}

/// `text` as a status message: the empty message is shared (no allocation), any other copied once.
pub fn message_text(text: &str) -> Arc<str> {
    if text.is_empty() { Arc::default() } else { Arc::from(text) }
}

/// How many instances run and how many are wanted (for a provider: hosts running it of hosts
/// that are to).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instances {
    /// Instances running what is wanted, where it is wanted (at most the wanted count per host).
    pub running: u64,
    /// Instances wanted.
    pub target: u64,
}

impl Instances {
    /// `running` of `target`.
    pub fn new(running: u64, target: u64) -> Self {
        Self { running, target }
    }

    /// The counts of several scalers added up (`None` when none of them counts instances).
    pub fn sum<'a>(counts: impl IntoIterator<Item = Option<&'a Instances>>) -> Option<Instances> {
        counts.into_iter().flatten().fold(None, |total, c| {
            let t = total.unwrap_or_default();
            Some(Instances {
                running: t.running.saturating_add(c.running),
                target: t.target.saturating_add(c.target),
            })
        })
    }
}

impl std::fmt::Display for Instances {
    /// `running/target`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.running, self.target)
    }
}

/// The status of one scaler of an application. The names are shared, not copied: a manager
/// reports every scaler's status on every reconcile, and its names never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalerStatus {
    /// The scaler's id (stable across reconciles of one deployment).
    pub id: Arc<str>,
    /// The scaler's kind (`SpreadScaler`, `LinkScaler`, …).
    pub kind: Arc<str>,
    /// What it manages, for a person.
    pub name: Arc<str>,
    /// Its own status.
    pub status: StatusInfo,
}

/// The status of an application, as the API returns and publishes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The application's overall status, the worst of its scalers'.
    pub status: StatusInfo,
    /// Each scaler's status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scalers: Vec<ScalerStatus>,
    /// Legacy field, always empty.
    #[serde(default)]
    pub version: String,
    /// Legacy field, always empty.
    #[serde(default)]
    pub components: Vec<serde_json::Value>,
}

/// How the message of an application begins while wadm runs the version it reverted to after a
/// failed rollout (`reverted to v1 from v2: …`).
pub const REVERTED_PREFIX: &str = "reverted to ";

/// How the message of an undeployed application still being removed begins.
pub const REMOVING_PREFIX: &str = "Removing what it ran";

impl Status {
    /// A status with no scalers.
    pub fn new(status_type: StatusType, message: impl AsRef<str>) -> Self {
        Self { status: StatusInfo::new(status_type, message), ..Self::default() }
    }

    /// The status after undeploy, once nothing it ran is left to remove.
    pub fn undeployed() -> Self {
        Self::new(StatusType::Undeployed, "Manifest has been undeployed")
    }

    /// Undeployed, with `commands` removals of what it ran still to go or to be confirmed.
    pub fn removing(commands: usize) -> Self {
        let s = if commands == 1 { "" } else { "s" };
        Self::new(
            StatusType::Undeployed,
            format!("{REMOVING_PREFIX} ({commands} command{s} to go)"),
        )
    }

    /// Whether this is an undeployed application whose removal has not finished
    /// ([`Status::removing`]).
    pub fn is_removing(&self) -> bool {
        self.status.status_type == StatusType::Undeployed
            && self.status.message.starts_with(REMOVING_PREFIX)
    }

    /// Aggregate scaler statuses into an application status: the type of highest precedence wins;
    /// the message is that of the scaler that has that type, or names each of several with its
    /// message (`web: 1/3 instances running; kv: …`), in scaler order — none for a deployed
    /// application; the instances are the scalers' added up.
    pub fn aggregate(scalers: Vec<ScalerStatus>) -> Self {
        let Some(top) = scalers.iter().map(|s| s.status.status_type).max_by_key(|t| t.precedence())
        else {
            return Self::new(StatusType::Deployed, "");
        };
        let said: Vec<&ScalerStatus> = scalers
            .iter()
            .filter(|s| s.status.status_type == top && !s.status.message.is_empty())
            .collect();
        let message = match said.as_slice() {
            _ if top == StatusType::Deployed => Arc::default(),
            [one] => one.status.message.clone(),
            several => several
                .iter()
                .map(|s| format!("{}: {}", s.name, s.status.message))
                .collect::<Vec<_>>()
                .join("; ")
                .into(),
        };
        let instances = Instances::sum(scalers.iter().map(|s| s.status.instances.as_ref()));
        let status = StatusInfo { status_type: top, message, instances };
        Self { status, scalers, ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(t: StatusType, msg: &str) -> ScalerStatus {
        ScalerStatus {
            id: format!("id-{t}").into(),
            kind: "SpreadScaler".into(),
            name: "s".into(),
            status: StatusInfo::new(t, msg),
        }
    }

    #[test]
    fn aggregation_follows_precedence() {
        use StatusType::*;
        let order = [Failed, Undeployed, Waiting, Reconciling, Unhealthy, Deployed];
        for (i, high) in order.iter().enumerate() {
            for low in &order[i..] {
                let s = Status::aggregate(vec![scaler(*low, "low"), scaler(*high, "high")]);
                assert_eq!(s.status.status_type, *high, "{high} vs {low}");
            }
        }
        assert_eq!(Status::aggregate(vec![]).status.status_type, Deployed);
    }

    #[test]
    fn several_scalers_are_named_in_the_message_and_deployed_says_nothing() {
        use StatusType::*;
        let named = |name: &str, t, msg| ScalerStatus { name: name.into(), ..scaler(t, msg) };
        let web = named("web", Reconciling, "0/1 instances running");
        let kv = named("kv", Reconciling, "0/1 instances running");
        let done = named("cfg", Deployed, "1/1 instances running");
        let s = Status::aggregate(vec![web.clone(), done.clone(), kv]);
        assert_eq!(&*s.status.message, "web: 0/1 instances running; kv: 0/1 instances running");
        let s = Status::aggregate(vec![web, done.clone()]);
        assert_eq!(&*s.status.message, "0/1 instances running", "one scaler needs no name");
        let s = Status::aggregate(vec![done.clone(), done]);
        assert_eq!((s.status.status_type, &*s.status.message), (Deployed, ""));
    }

    #[test]
    fn instances_are_optional_on_the_wire_and_added_up_per_application() {
        use StatusType::*;
        let counted = |t, running, target| ScalerStatus {
            status: StatusInfo::new(t, "").with_instances(Instances::new(running, target)),
            ..scaler(t, "")
        };
        let json = serde_json::to_value(counted(Waiting, 1, 3).status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "waiting", "instances": {"running": 1, "target": 3}})
        );
        // Upstream's shape (no counts) still reads, and writes without them.
        let upstream: StatusInfo =
            serde_json::from_str(r#"{"type":"failed","message":"m"}"#).unwrap();
        assert_eq!(upstream.instances, None);
        assert_eq!(
            serde_json::to_value(&upstream).unwrap(),
            serde_json::json!({"type": "failed", "message": "m"})
        );
        // Scalers without counts (links, configs) add nothing.
        let s = Status::aggregate(vec![
            counted(Failed, 0, 2),
            scaler(Deployed, ""),
            counted(Reconciling, 3, 5),
        ]);
        assert_eq!(s.status.instances, Some(Instances::new(3, 7)));
        assert_eq!(s.status.instances.unwrap().to_string(), "3/7");
        assert_eq!(Status::aggregate(vec![scaler(Deployed, "")]).status.instances, None);
    }

    #[test]
    fn wire_shape_and_aliases() {
        let s = Status::new(StatusType::Deployed, "");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": {"type": "deployed"}, "version": "", "components": []})
        );
        let legacy: Status =
            serde_json::from_str(r#"{"status":{"type":"compensating","message":"m"}}"#).unwrap();
        assert_eq!(legacy.status.status_type, StatusType::Reconciling);
        let ready: StatusInfo = serde_json::from_str(r#"{"type":"ready"}"#).unwrap();
        assert_eq!(ready.status_type, StatusType::Deployed);
    }
}
