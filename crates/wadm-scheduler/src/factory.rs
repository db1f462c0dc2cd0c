//! [`ScalerFactory`]: which scalers a [`crate::Reconciler`] builds from a desired state — the
//! built-in ones ([`crate::builtin_scalers`], the default) or a set an embedder chooses.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::scaler::Scaler;

/// A function building the scalers of a desired state (see [`ScalerFactory::new`]).
pub type BuildScalers = dyn Fn(&Catalog<'_>) -> Vec<Box<dyn Scaler>> + Send + Sync;

/// Builds the scalers of a lattice's desired state whenever it changes (a deploy, an undeploy):
/// the built-in scalers by default, or what an embedder chooses, typically the built-ins plus its
/// own ([`ScalerFactory::with_builtins`]).
///
/// Like every scaler, the function must be pure and deterministic: a function of the catalog
/// alone (no I/O, no clock, no randomness, no hash-order iteration). Replicas of wadm build their
/// scalers independently and must agree on the plan, so every replica of a lattice must use the
/// same factory.
///
/// A custom scaler belongs to one application ([`crate::ScalerInfo::app`], a deployed
/// application of the catalog: scalers of other applications are ignored when only some
/// applications are reconciled) and should want only what no other application wants (its own
/// component and provider ids, links and configs): applications are coupled through what their
/// manifests declare, which is all a scoped reconcile ([`crate::Reconciler::reconcile_apps`])
/// takes into account.
#[derive(Clone, Default)]
pub struct ScalerFactory {
    /// `None`: the built-in scalers.
    custom: Option<Arc<BuildScalers>>,
}

impl ScalerFactory {
    /// The built-in scalers only ([`crate::builtin_scalers`]; also [`Default`]).
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Exactly the scalers `build` returns (the built-ins are not added: see
    /// [`ScalerFactory::with_builtins`]).
    pub fn new(
        build: impl Fn(&Catalog<'_>) -> Vec<Box<dyn Scaler>> + Send + Sync + 'static,
    ) -> Self {
        Self { custom: Some(Arc::new(build)) }
    }

    /// The built-in scalers followed by those `extra` returns.
    pub fn with_builtins(
        extra: impl Fn(&Catalog<'_>) -> Vec<Box<dyn Scaler>> + Send + Sync + 'static,
    ) -> Self {
        Self::new(move |catalog| {
            let mut scalers = crate::builtin_scalers(catalog);
            scalers.extend(extra(catalog));
            scalers
        })
    }

    /// The scalers of `catalog`'s desired state.
    pub fn build(&self, catalog: &Catalog<'_>) -> Vec<Box<dyn Scaler>> {
        match &self.custom {
            None => crate::builtin_scalers(catalog),
            Some(build) => build(catalog),
        }
    }

    /// Whether it builds the built-in scalers only ([`ScalerFactory::builtin`]).
    pub fn is_builtin(&self) -> bool {
        self.custom.is_none()
    }
}

impl std::fmt::Debug for ScalerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_builtin() {
            "ScalerFactory(builtin)"
        } else {
            "ScalerFactory(custom)"
        })
    }
}

/// Equal when both are the built-ins or clones of one custom factory.
impl PartialEq for ScalerFactory {
    fn eq(&self, other: &Self) -> bool {
        match (&self.custom, &other.custom) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for ScalerFactory {}
