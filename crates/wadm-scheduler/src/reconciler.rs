//! [`Reconciler`]: one lattice's desired state with its built-in scalers and its [`Catalog`], kept
//! between reconciles. A manager reconciles far more often than the desired state changes (every
//! host event, every tick); building the scalers and indexing the desired state is then done once
//! per desired state instead of once per reconcile. The plan is exactly
//! [`crate::reconcile_with`]'s (tested).

use self_cell::self_cell;
use wadm_lattice::{LatticeState, Timestamp};

use crate::catalog::Catalog;
use crate::engine::{Plan, plan_with};
use crate::input::{DeployedApp, Desired, UndeployedApp};
use crate::scaler::Scaler;

/// The desired state a [`Reconciler`] owns.
struct DesiredState {
    lattice: String,
    deployed: Vec<DeployedApp>,
    undeployed: Vec<UndeployedApp>,
}

impl DesiredState {
    fn desired(&self) -> Desired<'_> {
        Desired { deployed: &self.deployed, undeployed: &self.undeployed }
    }
}

self_cell!(
    /// The desired state and the catalog that indexes it (borrowing from it).
    struct Indexed {
        owner: DesiredState,
        #[covariant]
        dependent: Catalog,
    }
);

/// The desired state of one lattice, its catalog and the scalers built from them.
pub struct Reconciler {
    indexed: Indexed,
    scalers: Vec<Box<dyn Scaler>>,
}

impl Reconciler {
    /// Index `deployed` and `undeployed` (applications of other lattices are ignored), build the
    /// built-in scalers, and keep them all for [`Reconciler::reconcile`].
    pub fn new(lattice: &str, deployed: Vec<DeployedApp>, undeployed: Vec<UndeployedApp>) -> Self {
        let owner = DesiredState { lattice: lattice.to_string(), deployed, undeployed };
        let indexed = Indexed::new(owner, |d| Catalog::new(&d.lattice, d.desired()));
        let scalers = crate::builtin_scalers(indexed.borrow_dependent());
        Self { indexed, scalers }
    }

    /// The lattice it reconciles.
    pub fn lattice(&self) -> &str {
        &self.indexed.borrow_owner().lattice
    }

    /// The desired state the scalers were built from.
    pub fn desired(&self) -> Desired<'_> {
        self.indexed.borrow_owner().desired()
    }

    /// Reconcile `observed` (a state of this reconciler's lattice) with the kept scalers.
    pub fn reconcile(&self, observed: &LatticeState, now: Timestamp) -> Plan {
        plan_with(observed, self.indexed.borrow_dependent(), &self.scalers, now)
    }
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let desired = self.desired();
        f.debug_struct("Reconciler")
            .field("lattice", &self.lattice())
            .field("deployed", &desired.deployed.len())
            .field("undeployed", &desired.undeployed.len())
            .field("scalers", &self.scalers.len())
            .finish()
    }
}
