//! Application statuses of a plan: each scaler's status grouped by application and aggregated,
//! `undeployed` for undeployed applications.

use std::collections::BTreeMap;

use wadm_model::{ScalerStatus, Status};

use crate::catalog::Catalog;

/// Consecutive statuses of one application, grouped (the input is in application order).
pub(super) fn group_by_app<A: PartialEq>(
    statuses: impl Iterator<Item = (A, ScalerStatus)>,
) -> Vec<(A, Vec<ScalerStatus>)> {
    let mut groups: Vec<(A, Vec<ScalerStatus>)> = Vec::new();
    for (app, status) in statuses {
        match groups.last_mut() {
            Some((last, group)) if *last == app => group.push(status),
            _ => groups.push((app, vec![status])),
        }
    }
    groups
}

/// `undeployed` for every undeployed application, then the aggregate of its scalers (none:
/// deployed) for every deployed one, and for any other application scalers reported on.
pub(super) fn app_statuses<A: AsRef<str> + Into<String>>(
    catalog: &Catalog<'_>,
    groups: Vec<(A, Vec<ScalerStatus>)>,
) -> BTreeMap<String, Status> {
    let mut out: BTreeMap<String, Status> = BTreeMap::new();
    for name in catalog.undeployed.keys() {
        out.insert(name.to_string(), Status::undeployed());
    }
    let mut groups = groups.into_iter().peekable();
    for name in catalog.deployed.keys() {
        // Both are in name order: apps without scalers (or not deployed) are passed over.
        while let Some((app, scalers)) = groups.next_if(|(app, _)| app.as_ref() < *name) {
            out.insert(app.into(), Status::aggregate(scalers));
        }
        match groups.next_if(|(app, _)| app.as_ref() == *name) {
            Some((app, scalers)) => out.insert(app.into(), Status::aggregate(scalers)),
            None => out.insert(name.to_string(), Status::aggregate(Vec::new())),
        };
    }
    for (app, scalers) in groups {
        out.insert(app.into(), Status::aggregate(scalers));
    }
    out
}
