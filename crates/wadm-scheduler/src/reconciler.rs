//! [`Reconciler`]: one lattice's desired state with its built-in scalers, kept between
//! reconciles. A manager reconciles far more often than the desired state changes (every host
//! event, every tick); building the scalers is then done once per desired state instead of once
//! per reconcile. The plan is exactly [`crate::reconcile_with`]'s (tested).

use wadm_lattice::{LatticeState, Timestamp};

use crate::catalog::Catalog;
use crate::engine::{Plan, plan_with};
use crate::input::{DeployedApp, Desired, UndeployedApp};
use crate::scaler::Scaler;

/// The desired state of one lattice and the scalers built from it.
pub struct Reconciler {
    lattice: String,
    deployed: Vec<DeployedApp>,
    undeployed: Vec<UndeployedApp>,
    scalers: Vec<Box<dyn Scaler>>,
}

impl Reconciler {
    /// Build the built-in scalers of `deployed` (applications of other lattices are ignored) and
    /// keep them, with the desired state, for [`Reconciler::reconcile`].
    pub fn new(lattice: &str, deployed: Vec<DeployedApp>, undeployed: Vec<UndeployedApp>) -> Self {
        let desired = Desired { deployed: &deployed, undeployed: &undeployed };
        let scalers = crate::builtin_scalers(&Catalog::new(lattice, desired));
        Self { lattice: lattice.to_string(), deployed, undeployed, scalers }
    }

    /// The lattice it reconciles.
    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    /// The desired state the scalers were built from.
    pub fn desired(&self) -> Desired<'_> {
        Desired { deployed: &self.deployed, undeployed: &self.undeployed }
    }

    /// Reconcile `observed` (a state of this reconciler's lattice) with the kept scalers.
    pub fn reconcile(&self, observed: &LatticeState, now: Timestamp) -> Plan {
        let catalog = Catalog::new(&self.lattice, self.desired());
        plan_with(observed, &catalog, &self.scalers, now)
    }
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("lattice", &self.lattice)
            .field("deployed", &self.deployed.len())
            .field("undeployed", &self.undeployed.len())
            .field("scalers", &self.scalers.len())
            .finish()
    }
}
