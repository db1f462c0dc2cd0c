//! `deploy --wait` progress: the status of the application and of each scaler (instances running /
//! wanted, as the statuses count them), printed whenever it changes. The waiting itself is
//! [`wadm_client::Client::wait_until_deployed`].

use wadm_client::{Instances, Status};

use super::table::Table;

/// Prints the progress block when it differs from the last one printed.
#[derive(Default)]
pub struct Progress {
    shown: String,
}

impl Progress {
    pub fn show(&mut self, name: &str, status: &Status) {
        let text = progress(name, status);
        if text != self.shown {
            eprint!("{text}");
            self.shown = text;
        }
    }
}

/// The progress block printed whenever it changes.
fn progress(name: &str, status: &Status) -> String {
    let mut text = headline(name, status);
    text.push('\n');
    if !status.scalers.is_empty() {
        for line in scaler_table(status).render().lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// `NAME: TYPE, RUNNING/TARGET instances (MESSAGE)`, the counts and message when there are any.
pub fn headline(name: &str, status: &Status) -> String {
    let mut text = format!("{name}: {}", status.status.status_type);
    if let Some(instances) = app_instances(status) {
        text.push_str(&format!(", {instances} instances"));
    }
    if !status.status.message.is_empty() {
        text.push_str(&format!(" ({})", status.status.message));
    }
    text
}

/// The application's instances running and wanted: its scalers' added up, or the overall count
/// when the scalers were left out (a long list); `None` when nothing counts instances.
pub fn app_instances(status: &Status) -> Option<Instances> {
    Instances::sum(status.scalers.iter().map(|s| s.status.instances.as_ref()))
        .or(status.status.instances)
}

/// `running/target`, or `-` when not counted.
pub fn instances_cell(instances: Option<Instances>) -> String {
    instances.map_or_else(|| "-".to_string(), |i| i.to_string())
}

/// Scalers as a table: name, kind, status, instances (running/target, whatever the status;
/// `-` for scalers that run no instances), message.
pub fn scaler_table(status: &Status) -> Table {
    let mut table = Table::new(&["SCALER", "KIND", "STATUS", "INSTANCES", "MESSAGE"]);
    for scaler in &status.scalers {
        table.row(vec![
            scaler.name.to_string(),
            scaler.kind.to_string(),
            scaler.status.status_type.to_string(),
            instances_cell(scaler.status.instances),
            scaler.status.message.to_string(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lists_scalers_with_instances() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "status": {"type": "reconciling"},
            "scalers": [{"id": "s1", "kind": "SpreadScaler", "name": "web",
                         "status": {"type": "reconciling", "message": "2/3 instances running",
                                    "instances": {"running": 2, "target": 3}}}]
        }))
        .unwrap();
        let text = progress("app", &status);
        assert!(text.starts_with("app: reconciling, 2/3 instances\n"), "{text}");
        assert!(text.lines().any(|l| l.contains("web") && l.contains("2/3")), "{text}");
    }

    /// The counts come from the status, not from its message: shown while waiting, failed or
    /// rolling out (whose message counts hosts), added up for the application.
    #[test]
    fn instances_are_shown_in_every_state_and_added_up() {
        let scaler = |name: &str, t: &str, message: &str, counts: Option<(u64, u64)>| {
            let mut status = serde_json::json!({"type": t, "message": message});
            if let Some((running, target)) = counts {
                status["instances"] = serde_json::json!({"running": running, "target": target});
            }
            serde_json::json!({"id": name, "kind": "SpreadScaler", "name": name, "status": status})
        };
        let status: Status = serde_json::from_value(serde_json::json!({
            "status": {"type": "failed", "message": "spread gpu needs 2 instances, 0 eligible hosts"},
            "scalers": [
                scaler("web", "reconciling", "rolling out img:2: 3/8 hosts done, 2 changing (at most 2 at once), 3 waiting", Some((6, 8))),
                scaler("db", "waiting", "no hosts in lattice default", Some((0, 1))),
                scaler("gpu", "failed", "spread gpu needs 2 instances, 0 eligible hosts", Some((0, 2))),
                scaler("link", "deployed", "", None),
            ]
        }))
        .unwrap();
        let rows: Vec<(String, String)> = scaler_table(&status)
            .render()
            .lines()
            .skip(1)
            .map(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                (cells[0].to_string(), cells[3].to_string())
            })
            .collect();
        let expected = [("web", "6/8"), ("db", "0/1"), ("gpu", "0/2"), ("link", "-")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(rows, expected);
        assert_eq!(app_instances(&status), Some(Instances::new(6, 11)));
        assert!(headline("shop", &status).starts_with("shop: failed, 6/11 instances (spread"));

        // Scalers left out of a long list: the overall count.
        let overall: Status = serde_json::from_value(serde_json::json!({
            "status": {"type": "waiting", "instances": {"running": 1, "target": 4}}
        }))
        .unwrap();
        assert_eq!(instances_cell(app_instances(&overall)), "1/4");
        // A server that does not count: nothing made up from the message.
        let upstream = Status::new(wadm_client::StatusType::Reconciling, "2/3 instances running");
        assert_eq!(instances_cell(app_instances(&upstream)), "-");
    }
}
