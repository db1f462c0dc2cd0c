//! Property: however replicas interleave their steps (and whatever they forget), the observed
//! state a replica checks out — kept, caught up over the head's journal, or read back — is the
//! state committed in the store.

use std::sync::Arc;

use proptest::prelude::*;
use wadm_lattice::{Change, Changes, ComponentInstance, HostState, LatticeState, RemovalReason};
use wadm_runtime::{Loaded, RecordStore};
use wadm_store::kv::MemoryKv;
use wadm_store::observed::{MemoryStateStore, StateStore};

#[derive(Debug, Clone)]
enum Op {
    AddHost(u8),
    RemoveHost(u8),
    SetComponent(u8, u8, u32),
    RemoveComponent(u8, u8),
    /// Many hosts at once: more keys than the journal remembers for one step.
    Bulk(u8),
    Forget,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6).prop_map(Op::AddHost),
        1 => (0u8..6).prop_map(Op::RemoveHost),
        3 => (0u8..6, 0u8..3, 1u32..4).prop_map(|(h, c, n)| Op::SetComponent(h, c, n)),
        1 => (0u8..6, 0u8..3).prop_map(|(h, c)| Op::RemoveComponent(h, c)),
        1 => (0u8..3).prop_map(Op::Bulk),
        1 => Just(Op::Forget),
    ]
}

fn host(h: u8) -> String {
    format!("N{h}")
}

/// Apply `op` to `state`, returning the changes a reducer would report.
fn apply(state: &mut LatticeState, op: &Op, step: u64) -> Changes {
    let mut changes = Changes::default();
    match op {
        Op::AddHost(h) if !state.hosts.contains_key(&host(*h)) => {
            let id = host(*h);
            state.hosts.insert(
                id.clone(),
                HostState { id: id.clone(), last_seen: step, ..HostState::default() },
            );
            changes.changes.push(Change::HostAdded { host: id });
        }
        Op::RemoveHost(h) => {
            if let Some(removed) = state.hosts.remove(&host(*h)) {
                for component in removed.components.into_keys() {
                    changes.changes.push(Change::ComponentRemoved { host: host(*h), component });
                }
                let reason = RemovalReason::Lost;
                changes.changes.push(Change::HostRemoved { host: host(*h), reason });
            }
        }
        Op::SetComponent(h, c, n) => {
            if let Some(found) = state.hosts.get_mut(&host(*h)) {
                let id = format!("c{c}");
                let instance =
                    ComponentInstance { id: id.clone(), count: *n, ..Default::default() };
                found.components.insert(id.clone(), instance);
                changes.changes.push(Change::ComponentSet { host: host(*h), component: id });
            }
        }
        Op::RemoveComponent(h, c) => {
            let id = format!("c{c}");
            if let Some(found) = state.hosts.get_mut(&host(*h))
                && found.components.remove(&id).is_some()
            {
                changes.changes.push(Change::ComponentRemoved { host: host(*h), component: id });
            }
        }
        Op::Bulk(b) => {
            for i in 0..80 {
                let id = format!("B{b}-{i}");
                state.hosts.insert(
                    id.clone(),
                    HostState { id: id.clone(), last_seen: step, ..HostState::default() },
                );
                changes.changes.push(Change::HostUpdated { host: id });
            }
        }
        _ => {}
    }
    changes.changes.sort();
    changes.changes.dedup();
    changes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn checked_out_state_is_the_committed_state(steps in prop::collection::vec((0usize..3, op()), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let entities = Arc::new(MemoryStateStore::new());
            let heads = MemoryKv::default();
            let replicas: Vec<_> =
                (0..3).map(|_| RecordStore::new(heads.clone(), entities.clone())).collect();
            for (n, (r, op)) in steps.iter().enumerate() {
                let replica = &replicas[*r];
                if matches!(op, Op::Forget) {
                    replica.forget("l");
                    continue;
                }
                let Loaded { mut record, base, .. } = replica.checkout("l").await.unwrap();
                let changes = apply(&mut record.state, op, n as u64);
                replica.save("l", record, base, &changes).await.unwrap();
                // Only the replica that stepped looks: the others fall several steps behind.
                let committed = entities.load("l").await.unwrap();
                let (seen, _) = replica.load("l").await.unwrap();
                prop_assert_eq!(&seen.state.hosts, &committed.hosts, "replica {} step {}", r, n);
            }
            let committed = entities.load("l").await.unwrap();
            for (i, other) in replicas.iter().enumerate() {
                let (seen, _) = other.load("l").await.unwrap();
                prop_assert_eq!(&seen.state.hosts, &committed.hosts, "replica {} at the end", i);
            }
            Ok(())
        })?;
    }
}
