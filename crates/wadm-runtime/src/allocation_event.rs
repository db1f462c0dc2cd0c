//! The allocation event of one executed command: what its message says (kind, target, the
//! [`Allocation`](crate::allocation::Allocation) decided with it) plus how the host answered.

use crate::allocation::{AllocationData, Change, LinkRef, Outcome, ReasonClass};
use crate::messages::CommandMessage;

/// The data of the event for `message`, answered with `outcome` and the host's `answer`.
pub(crate) fn event_data(
    message: &CommandMessage,
    outcome: Outcome,
    answer: &str,
) -> AllocationData {
    let body: serde_json::Value = serde_json::from_str(&message.body).unwrap_or_default();
    let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str).map(str::to_string);
    let count = body.get("count").and_then(serde_json::Value::as_u64);
    let kind = message.kind.as_str();
    let change = message
        .allocation
        .map(|a| a.change)
        .or_else(|| Change::of_kind(kind, count))
        .unwrap_or(Change::Scaled);
    let reason_class = message.allocation.map_or(ReasonClass::Unknown, |a| a.reason_class);
    let mut data = AllocationData {
        app: message.app.clone(),
        generation: message.generation,
        change,
        kind: message.kind.clone(),
        component_id: None,
        provider_id: None,
        link: None,
        config: None,
        host_id: message.target_host.clone(),
        image: None,
        count: None,
        reason_class,
        reason: message.reason.clone(),
        outcome,
        message: answer.to_string(),
        command: message.msg_id(),
    };
    match kind {
        "scale_component" => {
            data.component_id = field("component_id");
            data.image = field("component_ref");
            data.count = count;
        }
        "update_component" => {
            data.component_id = field("component_id");
            data.image = field("new_component_ref");
        }
        "start_provider" | "stop_provider" => {
            data.provider_id = field("provider_id");
            data.image = field("provider_ref");
        }
        "put_link" | "delete_link" => {
            data.link = Some(LinkRef {
                source_id: field("source_id").unwrap_or_default(),
                target: field("target"),
                name: field("name").unwrap_or_else(|| "default".to_string()),
                wit_namespace: field("wit_namespace").unwrap_or_default(),
                wit_package: field("wit_package").unwrap_or_default(),
            });
        }
        "put_config" | "delete_config" => {
            data.config = message.subject.rsplit('.').next().map(str::to_string);
        }
        _ => {}
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::{ALLOCATION_TYPE, Allocation, cloud_event};

    #[test]
    fn events_carry_the_command_and_the_answer_never_config_values() {
        let message = CommandMessage {
            id: "abc".into(),
            seq: 7,
            lattice: "l".into(),
            app: "hello".into(),
            generation: 3,
            kind: "scale_component".into(),
            subject: "wasmbus.ctl.v1.l.component.scale.A".into(),
            target_host: Some("A".into()),
            body: r#"{"component_ref":"img:1","component_id":"web","count":2,"host_id":"A"}"#
                .into(),
            issued_at: 0,
            expires_at: 10,
            reason: "wanted 2 here, the host runs none".into(),
            trace: String::new(),
            allocation: Some(Allocation {
                change: Change::Placed,
                reason_class: ReasonClass::Deploy,
            }),
        };
        let data = event_data(&message, Outcome::Accepted, "");
        assert_eq!(data.component_id.as_deref(), Some("web"));
        assert_eq!((data.count, data.image.as_deref()), (Some(2), Some("img:1")));
        assert_eq!(data.command, "abc.7");
        let event = cloud_event(&data, "wadm-1", 1_700_000_000_123);
        assert_eq!(event["id"], "abc.7");
        assert_eq!(event["type"], ALLOCATION_TYPE);
        assert_eq!(event["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(event["data"]["change"], "placed");
        assert_eq!(event["data"]["reason_class"], "deploy");
        assert_eq!(event["data"]["outcome"], "accepted");
        assert_eq!(event["data"]["host_id"], "A");

        let config = CommandMessage {
            kind: "put_config".into(),
            subject: "wasmbus.ctl.v1.l.config.put.secret-cfg".into(),
            target_host: None,
            body: r#"{"password":"hunter2"}"#.into(),
            allocation: None,
            ..message
        };
        let data = event_data(&config, Outcome::Refused, "no");
        assert_eq!(data.config.as_deref(), Some("secret-cfg"));
        assert_eq!((data.change, data.reason_class), (Change::ConfigPut, ReasonClass::Unknown));
        let text = cloud_event(&data, "w", 0).to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }
}
