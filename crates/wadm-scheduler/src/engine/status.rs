//! Application statuses of a plan: each scaler's status grouped by application and aggregated,
//! `undeployed` for undeployed applications.

use std::collections::BTreeMap;
use std::sync::Arc;

use wadm_model::{Instances, ScalerStatus, Status, StatusInfo, StatusType};

use crate::catalog::Catalog;

/// Consecutive statuses of one application, grouped (the input is in application order). Each
/// group is allocated once, at its final size.
pub(super) fn group_by_app<A: PartialEq>(
    statuses: impl Iterator<Item = (A, ScalerStatus)>,
) -> Vec<(A, Vec<ScalerStatus>)> {
    let statuses: Vec<(A, ScalerStatus)> = statuses.collect();
    let runs = statuses.chunk_by(|a, b| a.0 == b.0).map(<[_]>::len).collect::<Vec<_>>();
    let mut rest = statuses.into_iter();
    let mut groups = Vec::with_capacity(runs.len());
    for len in runs {
        let Some((app, first)) = rest.next() else { break };
        let mut group = Vec::with_capacity(len);
        group.push(first);
        group.extend(rest.by_ref().take(len - 1).map(|(_, status)| status));
        groups.push((app, group));
    }
    groups
}

/// `undeployed` for every undeployed application, then the aggregate of its scalers (none:
/// deployed) for every deployed one, and for any other application scalers reported on; of the
/// applications `keep` accepts.
pub(super) fn app_statuses<A: AsRef<str>>(
    catalog: &Catalog<'_>,
    groups: Vec<(A, Vec<ScalerStatus>)>,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, Status> {
    // Built as a list in name order (one tree built in bulk at the end, no search per insert).
    // Undeployed names come first: a later entry with the same name replaces them.
    let mut out: Vec<(String, Status)> =
        Vec::with_capacity(catalog.undeployed.len() + groups.len());
    for name in catalog.undeployed.keys().filter(|name| keep(name)) {
        out.push((name.to_string(), Status::undeployed()));
    }
    let mut groups = groups.into_iter().peekable();
    let scratch = &mut Scratch::default();
    for name in catalog.deployed.keys().filter(|name| keep(name)) {
        // Both are in name order: apps without scalers (or not deployed) are passed over.
        while let Some((app, scalers)) = groups.next_if(|(app, _)| app.as_ref() < *name) {
            out.push((app.as_ref().to_string(), aggregate(scalers, scratch)));
        }
        match groups.next_if(|(app, _)| app.as_ref() == *name) {
            Some((app, scalers)) => {
                out.push((app.as_ref().to_string(), aggregate(scalers, scratch)))
            }
            None => out.push((name.to_string(), aggregate(Vec::new(), scratch))),
        };
    }
    for (app, scalers) in groups {
        out.push((app.as_ref().to_string(), aggregate(scalers, scratch)));
    }
    // A stable sort keeps the later of equal names last, and collecting keeps the last.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().collect()
}

/// What [`aggregate`] reuses from one application to the next.
#[derive(Default)]
pub(super) struct Scratch {
    /// Where a message naming several scalers is composed.
    text: String,
    /// The empty message, shared.
    empty: Option<Arc<str>>,
    /// The last message composed: applications whose scalers say the same share it.
    last: Option<Arc<str>>,
}

impl Scratch {
    fn empty(&mut self) -> Arc<str> {
        Arc::clone(self.empty.get_or_insert_with(|| Arc::from("")))
    }
}

/// [`Status::aggregate`], composing a message naming several scalers in `scratch` and allocating
/// it once (or not at all when the previous application's was the same), sharing a single scaler's message and the empty one (it runs for every application
/// on every reconcile). Equal results: tested.
pub(super) fn aggregate(scalers: Vec<ScalerStatus>, scratch: &mut Scratch) -> Status {
    let top = scalers.iter().map(|s| s.status.status_type).max_by_key(|t| t.precedence());
    let Some(top) = top else {
        let status = StatusInfo {
            status_type: StatusType::Deployed,
            message: scratch.empty(),
            instances: None,
        };
        return Status { status, scalers, version: String::new(), components: Vec::new() };
    };
    let said =
        || scalers.iter().filter(|s| s.status.status_type == top && !s.status.message.is_empty());
    let message = match (said().next(), said().nth(1)) {
        _ if top == StatusType::Deployed => scratch.empty(),
        (Some(one), None) => Arc::clone(&one.status.message),
        (None, _) => scratch.empty(),
        _ => {
            let message = &mut scratch.text;
            message.clear();
            for (i, s) in said().enumerate() {
                if i > 0 {
                    message.push_str("; ");
                }
                message.push_str(&s.name);
                message.push_str(": ");
                message.push_str(&s.status.message);
            }
            match &scratch.last {
                Some(last) if **last == **message => Arc::clone(last),
                _ => Arc::clone(scratch.last.insert(Arc::from(message.as_str()))),
            }
        }
    };
    let instances = Instances::sum(scalers.iter().map(|s| s.status.instances.as_ref()));
    let status = StatusInfo { status_type: top, message, instances };
    Status { status, scalers, version: String::new(), components: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_as_the_model_does() {
        use StatusType::*;
        let types = [Failed, Undeployed, Waiting, Reconciling, Unhealthy, Deployed];
        let scaler =
            |i: usize, t: StatusType, message: &str, instances: Option<Instances>| ScalerStatus {
                id: format!("id{i}").into(),
                kind: "SpreadScaler".into(),
                name: format!("name{i}").into(),
                status: StatusInfo { status_type: t, message: message.into(), instances },
            };
        let messages = ["", "1/3 instances running", "spread z needs 1 instances"];
        let mut cases: Vec<Vec<ScalerStatus>> = vec![Vec::new()];
        for (a, t) in types.iter().enumerate() {
            for (b, u) in types.iter().enumerate() {
                for (m, message) in messages.iter().enumerate() {
                    let counted = Some(Instances::new(a as u64, b as u64 + 1));
                    cases.push(vec![scaler(0, *t, message, counted)]);
                    cases.push(vec![
                        scaler(0, *t, messages[(m + 1) % 3], None),
                        scaler(1, *u, message, counted),
                        scaler(2, *t, message, Some(Instances::new(u64::MAX, 1))),
                    ]);
                }
            }
        }
        for case in cases {
            assert_eq!(
                aggregate(case.clone(), &mut Scratch::default()),
                Status::aggregate(case.clone()),
                "{case:?}"
            );
        }
    }
}
