//! The link scaler: keeps one `link` trait's link in the lattice.

use wadm_model::StatusType;
use wadm_protocol::Link;

use smallvec::smallvec;

use super::{Evaluation, Scaler, ScalerInfo, Want, Wants};
use crate::catalog::Unresolved;
use crate::context::Context;

/// Puts one link and keeps it equal to the manifest.
#[derive(Debug, Clone)]
pub(crate) struct LinkScaler {
    pub info: ScalerInfo,
    /// The link to keep, or why it cannot be built (e.g. a shared application is not deployed:
    /// the scaler then waits for it, wanting nothing).
    pub link: Result<Link, Unresolved>,
    /// Configs either end needs that the application does not own.
    pub external_config: Vec<String>,
}

impl Scaler for LinkScaler {
    fn info(&self) -> &ScalerInfo {
        &self.info
    }

    fn into_info(self: Box<Self>) -> ScalerInfo {
        self.info
    }

    fn evaluate(&self, ctx: &Context<'_>) -> Evaluation {
        let link = match &self.link {
            Ok(link) => link,
            Err(unresolved) => {
                return Evaluation {
                    wants: Wants::new(),
                    status: unresolved.status(),
                    wake_at: None,
                    rollout: None,
                    short_of_capacity: false,
                };
            }
        };
        let observed = ctx.lattice().links.get(&link.key());
        let missing = ctx.missing_configs(&self.external_config);
        if !missing.is_empty() {
            // A put would be rejected: keep whatever is there and wait.
            return Evaluation {
                wants: observed.map(|l| Want::Link(Box::new(l.clone()))).into_iter().collect(),
                status: super::waiting_for_config(&missing),
                wake_at: None,
                rollout: None,
                short_of_capacity: false,
            };
        }
        let status = if observed == Some(link) {
            ctx.silent(StatusType::Deployed)
        } else {
            ctx.silent(StatusType::Reconciling)
        };
        Evaluation {
            wants: smallvec![Want::Link(Box::new(link.clone()))],
            status,
            wake_at: None,
            rollout: None,
            short_of_capacity: false,
        }
    }
}
