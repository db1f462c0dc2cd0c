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
use wadm_model::status::{REVERTED_PREFIX, Status, StatusType};

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
        self.deploy_expecting_and_wait(name, version, None, timeout, on_status).await
    }

    /// [`Client::deploy_and_wait`], the deploy refused unless the application is at revision
    /// `expected` when one is given.
    pub async fn deploy_expecting_and_wait(
        &self,
        name: &str,
        version: Option<&str>,
        expected: Option<u64>,
        timeout: Duration,
        on_status: impl FnMut(&Status),
    ) -> Result<(DeployModelResponse, Status), ClientError> {
        let watch = self.watch_status(name).await?;
        let reply = self.deploy_expecting(name, version, expected).await?;
        // A failed rollout may be reverted: the version deployed then is not this one.
        let judge = Judge { version: reply.version.clone(), ..Judge::default() };
        let status = self.wait_for(name, watch, timeout, judge, on_status).await?;
        Ok((reply, status))
    }

    /// Follow `watch` (from [`Client::watch_status`], made before the deploy) and poll
    /// `model.status` until `name` is deployed, has failed, or `timeout` passes.
    pub async fn wait_until_deployed(
        &self,
        name: &str,
        watch: StatusStream,
        timeout: Duration,
        on_status: impl FnMut(&Status),
    ) -> Result<Status, ClientError> {
        self.wait_for(name, watch, timeout, Judge::default(), on_status).await
    }

    /// Undeploy `name` and wait until the hosts no longer run anything of it (its status is
    /// `undeployed` with nothing left to remove), calling `on_status` with every status seen.
    pub async fn undeploy_and_wait(
        &self,
        name: &str,
        timeout: Duration,
        on_status: impl FnMut(&Status),
    ) -> Result<(DeployModelResponse, Status), ClientError> {
        self.undeploy_with_and_wait(name, false, timeout, on_status).await
    }

    /// [`Client::undeploy_and_wait`], forced when `force` (see [`Client::undeploy_with`]).
    pub async fn undeploy_with_and_wait(
        &self,
        name: &str,
        force: bool,
        timeout: Duration,
        on_status: impl FnMut(&Status),
    ) -> Result<(DeployModelResponse, Status), ClientError> {
        let watch = self.watch_status(name).await?;
        let reply = self.undeploy_with(name, force).await?;
        let status = self.wait_until_removed(name, watch, timeout, on_status).await?;
        Ok((reply, status))
    }

    /// Follow `watch` (made before the undeploy or delete) and poll `model.status` until what
    /// `name` ran is removed, or `timeout` passes. An application whose status is gone (deleted)
    /// counts as removed once the runtime has had a few polls to say otherwise.
    pub async fn wait_until_removed(
        &self,
        name: &str,
        watch: StatusStream,
        timeout: Duration,
        on_status: impl FnMut(&Status),
    ) -> Result<Status, ClientError> {
        self.wait_for(name, watch, timeout, Judge::removal(), on_status).await
    }

    async fn wait_for(
        &self,
        name: &str,
        mut watch: StatusStream,
        timeout: Duration,
        mut judge: Judge,
        mut on_status: impl FnMut(&Status),
    ) -> Result<Status, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
                        // A deleted application has no status to poll: once its removal was
                        // seen under way only the runtime's publications tell its end;
                        // before, polls that keep finding nothing say nothing is left.
                        Ok(Err(ClientError::NotFound { .. })) if judge.goal == Goal::Removed => {
                            if judge.saw_other {
                                continue;
                            }
                            (Status::undeployed(), false)
                        }
                        Ok(Err(e)) => return Err(e),
                    }
                }
            };
            on_status(&status);
            match judge.observe(status, published) {
                Verdict::Done(status) => return Ok(status),
                Verdict::Failed(status) => {
                    return Err(ClientError::DeployFailed {
                        name: name.to_string(),
                        message: status.status.message.to_string(),
                    });
                }
                Verdict::Pending => {}
            }
        }
    }
}

/// What a wait waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Goal {
    /// `deployed` (or `failed`).
    #[default]
    Deployed,
    /// `undeployed` with nothing left to remove ([`Status::is_removing`] false).
    Removed,
}

/// Decides when a status is final (pure, so it is unit-tested).
#[derive(Default)]
struct Judge {
    goal: Goal,
    /// The version deployed: a status saying wadm reverted to another one is a failure.
    version: Option<String>,
    last: Option<Status>,
    saw_other: bool,
    agreeing_polls: u32,
}

#[derive(Debug)]
enum Verdict {
    Pending,
    Done(Status),
    Failed(Status),
}

impl Judge {
    fn removal() -> Self {
        Self { goal: Goal::Removed, ..Self::default() }
    }

    fn observe(&mut self, status: Status, published: bool) -> Verdict {
        let kind = status.status.status_type;
        let previous = self.last.as_ref().map(|s| s.status.status_type);
        if let Some(version) = &self.version
            && status.status.message.starts_with(REVERTED_PREFIX)
            && !status.version.is_empty()
            && status.version != *version
        {
            // wadm reverted the deployment to `status.version`: this one failed.
            self.last = Some(status.clone());
            return Verdict::Failed(status);
        }
        self.last = Some(status.clone());
        let is_final = match self.goal {
            Goal::Deployed => matches!(kind, StatusType::Deployed | StatusType::Failed),
            Goal::Removed => kind == StatusType::Undeployed && !status.is_removing(),
        };
        // The API publishes a plain `undeployed` the moment it undeploys, before the runtime
        // has said what is left to remove: for a removal only polls confirm it.
        let published = published && self.goal == Goal::Deployed;
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
            (true, StatusType::Deployed | StatusType::Undeployed) => Verdict::Done(status),
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
        assert!(matches!(judge.observe(status(StatusType::Deployed), true), Verdict::Done(_)));
        let mut judge = Judge::default();
        assert!(matches!(judge.observe(status(StatusType::Failed), true), Verdict::Failed(_)));
    }

    #[test]
    fn stale_polled_status_needs_confirmation() {
        let mut judge = Judge::default();
        for _ in 1..CONFIRMING_POLLS {
            assert!(matches!(judge.observe(status(StatusType::Deployed), false), Verdict::Pending));
        }
        assert!(matches!(judge.observe(status(StatusType::Deployed), false), Verdict::Done(_)));
    }

    #[test]
    fn a_final_status_after_another_is_believed() {
        let mut judge = Judge::default();
        assert!(matches!(judge.observe(status(StatusType::Reconciling), false), Verdict::Pending));
        assert!(matches!(judge.observe(status(StatusType::Deployed), false), Verdict::Done(_)));
    }

    #[test]
    fn a_removal_ends_when_polls_agree_nothing_is_left() {
        let mut judge = Judge::removal();
        let plain = Status::undeployed();
        // The API's own `undeployed`, published at once, is not believed.
        assert!(matches!(judge.observe(plain.clone(), true), Verdict::Pending));
        assert!(matches!(judge.observe(Status::removing(2), true), Verdict::Pending));
        assert!(matches!(judge.observe(Status::removing(1), false), Verdict::Pending));
        assert!(matches!(judge.observe(plain.clone(), false), Verdict::Done(_)));

        let mut judge = Judge::removal();
        for _ in 1..CONFIRMING_POLLS {
            assert!(matches!(judge.observe(plain.clone(), false), Verdict::Pending));
        }
        assert!(matches!(judge.observe(plain, false), Verdict::Done(_)));
        let mut judge = Judge::removal();
        for published in [true, false, false, false] {
            let deployed = status(StatusType::Deployed);
            assert!(matches!(judge.observe(deployed, published), Verdict::Pending));
        }
    }

    #[test]
    fn a_revert_to_another_version_fails_the_wait() {
        let mut judge = Judge { version: Some("v3".into()), ..Judge::default() };
        let mut reverted =
            Status::new(StatusType::Deployed, format!("{REVERTED_PREFIX}v2 from v3: boom"));
        reverted.version = "v2".into();
        assert!(matches!(judge.observe(reverted.clone(), false), Verdict::Failed(_)));
        // Waiting for the version reverted to (deployed again by hand) is not a failure.
        let mut judge = Judge { version: Some("v2".into()), ..Judge::default() };
        assert!(matches!(judge.observe(reverted, true), Verdict::Done(_)));
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
