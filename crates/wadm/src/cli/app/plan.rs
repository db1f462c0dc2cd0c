//! `wadm app plan` (what a deploy would do now) and `wadm app diff` (two stored versions).
//! Both exit 0 when there is no difference and 3 when there is one ([`Failure::Changes`]).

use wadm_client::api::PlanResponse;
use wadm_model::diff::{Change, diff};

use super::Output;
use super::context::{Context, print_json};
use super::failure::Failure;
use super::table::Table;
use super::target::Target;

/// `app plan FILE|NAME [--version V]`.
pub async fn plan(cx: &Context, target: Target, version: Option<String>) -> Result<(), Failure> {
    let client = &cx.client;
    let reply = match &target {
        Target::Name(name) => client.plan_version(name, version.as_deref()).await?,
        Target::File(file) => {
            if version.is_some() {
                return Err(Failure::Usage(format!(
                    "{}: --version names a stored version; a file plans its own content",
                    file.path
                )));
            }
            client.plan_manifest(file.bytes.clone(), Some(file.info.content_type)).await?
        }
    };
    if cx.output == Output::Json {
        print_json(&reply)?;
    } else {
        print_plan(&reply);
    }
    if reply.changed { Err(Failure::Changes) } else { Ok(()) }
}

fn print_plan(reply: &PlanResponse) {
    let deployed = reply.deployed_version.as_deref().unwrap_or("nothing");
    let version = if reply.version.is_empty() { "(unversioned)" } else { &reply.version };
    outln!("{} {version} (deployed: {deployed})", reply.name);
    if !reply.changed {
        outln!("No change: deploying it would send nothing.");
        return;
    }
    print_changes(&reply.spec_changes);
    if reply.requests.is_empty() {
        outln!("No control request to send now.");
        return;
    }
    outln!();
    outln!("Control requests a deploy would send now, in order ({}):", reply.requests.len());
    let mut table = Table::new(&["#", "HOST", "REQUEST", "WHAT", "WHY"]);
    for (i, request) in reply.requests.iter().enumerate() {
        table.row(vec![
            (i + 1).to_string(),
            request.host_id.clone().unwrap_or_else(|| "-".into()),
            request.kind.clone(),
            what(&request.body),
            request.reason.clone(),
        ]);
    }
    outln!("{}", table.render().trim_end());
}

/// The identifying fields of a request body, briefly.
fn what(body: &serde_json::Value) -> String {
    let field = |k: &str| body.get(k).and_then(|v| v.as_str());
    if let (Some(id), Some(image)) =
        (field("component_id"), field("component_ref").or(field("new_component_ref")))
    {
        let count = body.get("count").and_then(|c| c.as_u64());
        return match count {
            Some(n) => format!("{id} ×{n} ({image})"),
            None => format!("{id} ({image})"),
        };
    }
    if let Some(id) = field("provider_id") {
        return match field("provider_ref") {
            Some(image) => format!("{id} ({image})"),
            None => id.to_string(),
        };
    }
    if let (Some(source), Some(target)) = (field("source_id"), field("target")) {
        return format!("{source} → {target}");
    }
    if let Some(source) = field("source_id") {
        return source.to_string();
    }
    // config.put: its keys (values may be sensitive).
    match body.as_object() {
        Some(map) if !map.is_empty() => {
            format!("keys {}", map.keys().cloned().collect::<Vec<_>>().join(", "))
        }
        _ => "-".to_string(),
    }
}

fn print_changes(changes: &[Change]) {
    if changes.is_empty() {
        outln!("The spec is the one deployed.");
        return;
    }
    outln!("Spec changes ({}):", changes.len());
    for change in changes {
        outln!("  {change}");
    }
}

/// `app diff NAME V1 V2`: the difference of two stored versions, in their normal form.
pub async fn diff_versions(cx: &Context, name: &str, from: &str, to: &str) -> Result<(), Failure> {
    let client = &cx.client;
    let old = client.get(name, Some(from)).await?;
    let new = client.get(name, Some(to)).await?;
    let changes = diff(&old, &new);
    if cx.output == Output::Json {
        print_json(&serde_json::json!({
            "name": name, "from": from, "to": to, "changes": changes,
        }))?;
    } else if changes.is_empty() {
        outln!("{name}: {from} and {to} have the same spec");
    } else {
        outln!("{name}: {from} → {to}");
        print_changes(&changes);
    }
    if changes.is_empty() { Ok(()) } else { Err(Failure::Changes) }
}
