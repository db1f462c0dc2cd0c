//! `deploy --wait` progress: the status of the application and of each scaler (instances running /
//! wanted when the status message says so), printed whenever it changes. The waiting itself is
//! [`wadm_client::Client::wait_until_deployed`].

use wadm_client::Status;

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
    let mut text = format!("{name}: {}", status.status.status_type);
    if !status.status.message.is_empty() {
        text.push_str(&format!(" ({})", status.status.message));
    }
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

/// Scalers as a table: name, kind, status, instances (running/wanted, when known), message.
pub fn scaler_table(status: &Status) -> Table {
    let mut table = Table::new(&["SCALER", "KIND", "STATUS", "INSTANCES", "MESSAGE"]);
    for scaler in &status.scalers {
        let instances = fraction(&scaler.status.message)
            .map(|(running, wanted)| format!("{running}/{wanted}"))
            .unwrap_or_else(|| "-".to_string());
        table.row(vec![
            scaler.name.to_string(),
            scaler.kind.to_string(),
            scaler.status.status_type.to_string(),
            instances,
            scaler.status.message.clone(),
        ]);
    }
    table
}

/// The first `N/M` (digits, optional spaces, slash, digits) in a message.
fn fraction(message: &str) -> Option<(u64, u64)> {
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let left = &message[start..i];
        let mut j = i;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'/' {
            j += 1;
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            let right_start = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > right_start
                && let (Ok(a), Ok(b)) = (left.parse(), message[right_start..j].parse())
            {
                return Some((a, b));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_found() {
        assert_eq!(fraction("3/5 instances running"), Some((3, 5)));
        assert_eq!(fraction("running 10 / 12 on host a"), Some((10, 12)));
        assert_eq!(fraction("no hosts"), None);
        assert_eq!(fraction("a/b 7/"), None);
        assert_eq!(fraction("99999999999999999999999/1"), None);
    }

    #[test]
    fn progress_lists_scalers_with_instances() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "status": {"type": "reconciling"},
            "scalers": [{"id": "s1", "kind": "SpreadScaler", "name": "web",
                         "status": {"type": "reconciling", "message": "2/3 running"}}]
        }))
        .unwrap();
        let text = progress("app", &status);
        assert!(text.starts_with("app: reconciling\n"), "{text}");
        assert!(text.lines().any(|l| l.contains("web") && l.contains("2/3")), "{text}");
    }
}
