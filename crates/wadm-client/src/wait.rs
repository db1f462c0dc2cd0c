//! Waiting for a deployment to finish: [`Client::wait_until_deployed`] and
//! [`Client::deploy_and_wait`].
//!
//! Statuses come from two sources: the live subscription on `wadm.status.{lattice}.{name}` and a
//! periodic `model.status` request (in case a publication was missed or never comes). A final
//! status (`deployed`, `failed`) read right after the deploy may still describe the previous
//! deployment, so it is only believed when it was published after the deploy, when another
//! status was seen first, or when several polls in a row report it.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use wadm_model::api::DeployModelResponse;
use wadm_model::status::{Status, StatusType};

use crate::client::Client;
use crate::error::ClientError;
use crate::watch::StatusStream;

/// How often the status is also asked for while waiting.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Consecutive polls that must agree on a final status not otherwise confirmed.
const CONFIRMING_POLLS: u32 = 3;

impl Client {
    /// Deploy `version` of `name` (current when `None`) and wait until it is deployed, calling
    /// `on_status` with every status seen. The status subscription is made before the deploy,
    /// so nothing published in between is missed. Errors: [`ClientError::DeployFailed`],
    /// [`ClientError::WaitTimedOut`], or the deploy's own error.
    pub async fn deploy_and_wait(
        &self,
        name: &str,
        version: Option<&str>,
        timeout: Duration,
        on_status: impl FnMut(&Status),
    ) -> Result<(DeployModelResponse, Status), ClientError> {
        let watch = self.watch_status(name).await?;
        let reply = self.deploy(name, version).await?;
        let status = self.wait_until_deployed(name, watch, timeout, on_status).await?;
        Ok((reply, status))
    }

    /// Follow `watch` (from [`Client::watch_status`], made before the deploy) and poll
    /// `model.status` until `name` is deployed, has failed, or `timeout` passes.
    pub async fn wait_until_deployed(
        &self,
        name: &str,
        mut watch: StatusStream,
        timeout: Duration,
        mut on_status: impl FnMut(&Status),
    ) -> Result<Status, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut judge = Judge::default();
        let mut watching = true;
        loop {
            let (status, published) = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let last = judge.last.map(|s| s.status);
                    return Err(ClientError::WaitTimedOut { name: name.to_string(), after: timeout, last });
                }
                next = watch.next_status(), if watching => match next {
                    Some(Ok(status)) => (status, true),
                    Some(Err(_)) => continue, // an undecodable publication: the poll covers it
                    None => { watching = false; continue }
                },
                _ = poll.tick() => {
                    match tokio::time::timeout_at(deadline, self.status(name)).await {
                        Err(_) => continue, // the deadline branch reports it
                        Ok(Ok(status)) => (status, false),
                        Ok(Err(e)) if e.is_connection_problem() => continue,
                        Ok(Err(e)) => return Err(e),
                    }
                }
            };
            on_status(&status);
            match judge.observe(status, published) {
                Verdict::Deployed(status) => return Ok(status),
                Verdict::Failed(status) => {
                    return Err(ClientError::DeployFailed {
                        name: name.to_string(),
                        message: status.status.message,
                    });
                }
                Verdict::Pending => {}
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: StatusType) -> Status {
        Status::new(kind, "")
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
