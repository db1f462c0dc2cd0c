//! [`Reconciler`]: one lattice's desired state with its scalers (the built-in ones, or those a
//! [`ScalerFactory`] builds) and its [`Catalog`], kept between reconciles. A manager reconciles
//! far more often than the desired state changes (every host event, every tick); building the
//! scalers and indexing the desired state is then done once per desired state instead of once per
//! reconcile. With the built-in scalers the plan is exactly [`crate::reconcile_with`]'s (tested).
//!
//! [`Reconciler::reconcile_apps`] plans for some applications only (those a batch of events
//! touched): the scalers of those applications and of every application coupled to them (see
//! [`crate::coupling`]) run, the others do not, and the plan equals the full plan restricted to
//! that closure (property-tested).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use self_cell::self_cell;
use wadm_lattice::{LatticeState, Timestamp};

use crate::catalog::Catalog;
use crate::coupling::Coupling;
use crate::engine::{Plan, plan_avoiding, plan_scoped, plan_with};
use crate::factory::ScalerFactory;
use crate::input::{Avoid, DeployedApp, Desired, UndeployedApp};
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
    /// Built on the first [`Reconciler::reconcile_apps`].
    coupling: OnceLock<Coupling>,
}

/// A plan for some applications ([`Reconciler::reconcile_apps`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopedPlan {
    /// The commands and statuses of exactly the applications in `apps`, as the full plan has them.
    pub plan: Plan,
    /// The applications asked for (those known here) and every application coupled to them, in
    /// name order.
    pub apps: BTreeSet<String>,
}

impl Reconciler {
    /// Index `deployed` and `undeployed` (applications of other lattices are ignored), build the
    /// built-in scalers, and keep them all for [`Reconciler::reconcile`].
    pub fn new(lattice: &str, deployed: Vec<DeployedApp>, undeployed: Vec<UndeployedApp>) -> Self {
        Self::with_scalers(lattice, deployed, undeployed, &ScalerFactory::builtin())
    }

    /// [`Reconciler::new`] with the scalers `factory` builds from the catalog (once, here)
    /// instead of the built-in ones.
    pub fn with_scalers(
        lattice: &str,
        deployed: Vec<DeployedApp>,
        undeployed: Vec<UndeployedApp>,
        factory: &ScalerFactory,
    ) -> Self {
        let owner = DesiredState { lattice: lattice.to_string(), deployed, undeployed };
        let indexed = Indexed::new(owner, |d| Catalog::new(&d.lattice, d.desired()));
        let scalers = factory.build(indexed.borrow_dependent());
        Self { indexed, scalers, coupling: OnceLock::new() }
    }

    /// The lattice it reconciles.
    pub fn lattice(&self) -> &str {
        &self.indexed.borrow_owner().lattice
    }

    /// The desired state the scalers were built from.
    pub fn desired(&self) -> Desired<'_> {
        self.indexed.borrow_owner().desired()
    }

    /// Who declared what in the desired state (ownership of links and configs).
    pub fn catalog(&self) -> &Catalog<'_> {
        self.indexed.borrow_dependent()
    }

    /// Reconcile `observed` (a state of this reconciler's lattice) with the kept scalers.
    pub fn reconcile(&self, observed: &LatticeState, now: Timestamp) -> Plan {
        plan_with(observed, self.indexed.borrow_dependent(), &self.scalers, now)
    }

    /// [`Reconciler::reconcile`], passing over the hosts `avoid` names where another host can
    /// take their share (see [`Avoid`]).
    pub fn reconcile_avoiding(
        &self,
        observed: &LatticeState,
        now: Timestamp,
        avoid: &Avoid,
    ) -> Plan {
        plan_avoiding(observed, self.indexed.borrow_dependent(), &self.scalers, now, avoid)
    }

    /// Reconcile `observed` for `apps` (names of deployed or undeployed applications; others are
    /// ignored) and every application coupled to them: only their scalers run. The plan is
    /// [`Reconciler::reconcile`]'s restricted to [`ScopedPlan::apps`]: their commands, in the same
    /// order, and their statuses.
    pub fn reconcile_apps<S: AsRef<str>>(
        &self,
        observed: &LatticeState,
        now: Timestamp,
        apps: impl IntoIterator<Item = S>,
    ) -> ScopedPlan {
        self.reconcile_apps_avoiding(observed, now, apps, &Avoid::default())
    }

    /// [`Reconciler::reconcile_apps`], passing over the hosts `avoid` names where another host
    /// can take their share (see [`Avoid`]).
    pub fn reconcile_apps_avoiding<S: AsRef<str>>(
        &self,
        observed: &LatticeState,
        now: Timestamp,
        apps: impl IntoIterator<Item = S>,
        avoid: &Avoid,
    ) -> ScopedPlan {
        let catalog = self.indexed.borrow_dependent();
        let coupling = self.coupling.get_or_init(|| Coupling::new(catalog, &self.scalers));
        let (plan, apps) =
            plan_scoped(observed, catalog, &self.scalers, coupling, apps, now, avoid);
        ScopedPlan { plan, apps }
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
