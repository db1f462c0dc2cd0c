//! `deploy --wait`: follow an application's status until it is deployed, fails, or time runs out,
//! printing progress per scaler (instances running / wanted when the status message says so).
//!
//! Statuses come from two sources: the live subscription on `wadm.status.{lattice}.{name}` and a
//! periodic `model.status` request (in case a publication was missed or never comes). A final
//! status (`deployed`, `failed`) read right after the deploy may still describe the previous
//! deployment, so it is only believed when it was published after the deploy, when another
//! status was seen first, or when polls keep reporting it.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use wadm_client::{Client, ClientError, Status, StatusStream, StatusType};

use super::failure::Failure;
use super::table::Table;

/// How often the status is also asked for.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Consecutive polls that must agree on a final status not otherwise confirmed.
const CONFIRMING_POLLS: u32 = 3;

/// Wait for `name` to be deployed. `Err` when it fails, is missing, or `timeout` passes.
pub async fn until_deployed(
    client: &Client,
    name: &str,
    mut watch: StatusStream,
    timeout: Duration,
    show_progress: bool,
) -> Result<Status, Failure> {
    let deadline = Instant::now() + timeout;
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut judge = Judge::default();
    let mut shown = String::new();
    let mut watching = true;
    loop {
        let (status, published) = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Err(timed_out(name, timeout, judge.last.as_ref()));
            }
            next = watch.next_status(), if watching => match next {
                Some(Ok(status)) => (status, true),
                Some(Err(_)) => continue, // an undecodable publication: the poll covers it
                None => { watching = false; continue }
            },
            _ = poll.tick() => {
                match tokio::time::timeout_at(deadline, client.status(name)).await {
                    Err(_) => continue, // the deadline branch reports it
                    Ok(Ok(status)) => (status, false),
                    Ok(Err(ClientError::NotFound { message })) => {
                        return Err(Failure::Api(format!("not found: {message}")));
                    }
                    Ok(Err(e)) if e.is_connection_problem() => continue,
                    Ok(Err(e)) => return Err(e.into()),
                }
            }
        };
        if show_progress {
            let text = progress(name, &status);
            if text != shown {
                eprint!("{text}");
                shown = text;
            }
        }
        match judge.observe(status, published) {
            Verdict::Deployed(status) => return Ok(status),
            Verdict::Failed(status) => {
                let why = &status.status.message;
                return Err(Failure::Api(format!("deployment of {name} failed: {why}")));
            }
            Verdict::Pending => {}
        }
    }
}

/// Decides when a status is final (pure, so it is unit-tested).
#[derive(Default)]
struct Judge {
    last: Option<Status>,
    saw_other: bool,
    agreeing_polls: u32,
}

#[derive(Debug)]
enum Verdict {
    Pending,
    Deployed(Status),
    Failed(Status),
}

impl Judge {
    fn observe(&mut self, status: Status, published: bool) -> Verdict {
        let kind = status.status.status_type;
        let previous = self.last.as_ref().map(|s| s.status.status_type);
        self.last = Some(status.clone());
        let is_final = matches!(kind, StatusType::Deployed | StatusType::Failed);
        if !is_final {
            self.saw_other = true;
            self.agreeing_polls = 0;
            return Verdict::Pending;
        }
        if !published {
            self.agreeing_polls = if previous == Some(kind) { self.agreeing_polls + 1 } else { 1 };
        }
        let believed = published || self.saw_other || self.agreeing_polls >= CONFIRMING_POLLS;
        match (believed, kind) {
            (true, StatusType::Deployed) => Verdict::Deployed(status),
            (true, _) => Verdict::Failed(status),
            (false, _) => Verdict::Pending,
        }
    }
}

fn timed_out(name: &str, timeout: Duration, last: Option<&Status>) -> Failure {
    let last = match last {
        Some(s) if s.status.message.is_empty() => {
            format!("; last status: {}", s.status.status_type)
        }
        Some(s) => format!("; last status: {} ({})", s.status.status_type, s.status.message),
        None => "; no status received".to_string(),
    };
    Failure::Api(format!("timed out after {timeout:?} waiting for {name} to be deployed{last}"))
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
            scaler.name.clone(),
            scaler.kind.clone(),
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

    fn status(kind: StatusType) -> Status {
        Status::new(kind, "")
    }

    #[test]
    fn fractions_are_found() {
        assert_eq!(fraction("3/5 instances running"), Some((3, 5)));
        assert_eq!(fraction("running 10 / 12 on host a"), Some((10, 12)));
        assert_eq!(fraction("no hosts"), None);
        assert_eq!(fraction("a/b 7/"), None);
        assert_eq!(fraction("99999999999999999999999/1"), None);
    }

    #[test]
    fn published_final_status_is_believed() {
        let mut judge = Judge::default();
        assert!(matches!(judge.observe(status(StatusType::Deployed), true), Verdict::Deployed(_)));
        let mut judge = Judge::default();
        assert!(matches!(judge.observe(status(StatusType::Failed), true), Verdict::Failed(_)));
    }

    #[test]
    fn stale_polled_status_needs_confirmation() {
        let mut judge = Judge::default();
        for _ in 1..CONFIRMING_POLLS {
            assert!(matches!(judge.observe(status(StatusType::Deployed), false), Verdict::Pending));
        }
        assert!(matches!(judge.observe(status(StatusType::Deployed), false), Verdict::Deployed(_)));
    }

    #[test]
    fn a_final_status_after_another_is_believed() {
        let mut judge = Judge::default();
        assert!(matches!(judge.observe(status(StatusType::Reconciling), false), Verdict::Pending));
        assert!(matches!(judge.observe(status(StatusType::Deployed), false), Verdict::Deployed(_)));
    }

    #[test]
    fn waiting_never_finishes() {
        let mut judge = Judge::default();
        for published in [true, false, true, false, false, false] {
            assert!(matches!(
                judge.observe(status(StatusType::Waiting), published),
                Verdict::Pending
            ));
        }
    }
}
