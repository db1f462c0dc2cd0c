//! A tick's step: host leases expired, and every application's deployment read again from the manifest store.

use wadm_lattice::{Changes, Timestamp, expire};
use wadm_nats::store::StateStore;
use wadm_server::kv::Kv;
use wadm_server::status::StatusStore;

use super::Pipeline;
use crate::decide;
use crate::desired::DesiredSource;
use crate::io::{ControlClient, IoError, Outbox};
use crate::record::LatticeRecord;

impl<K, T, D, S, O, C> Pipeline<K, T, D, S, O, C>
where
    K: Kv,
    T: StateStore,
    D: DesiredSource,
    S: StatusStore,
    O: Outbox,
    C: ControlClient,
{
    /// Apply a tick at `now` to `record`; the entity changes to persist.
    pub(super) async fn apply_tick(
        &self,
        lattice: &str,
        record: &mut LatticeRecord,
        now: Timestamp,
    ) -> Result<Changes, IoError> {
        // Leases run from when the stream stored each host's latest event, so they survive
        // wadm being down: the backlog of heartbeats is applied before any tick of the
        // replicas that start, and a host that died meanwhile is not given a fresh lease.
        let mut persist = Changes::default();
        persist.merge(expire(&mut record.state, now, &self.config.lease));
        let deployments = self.desired.deployments(lattice).await?;
        let known: Vec<String> = record.apps.keys().cloned().collect();
        for name in known {
            decide::apply_deployment(record, &name, deployments.get(&name));
        }
        for (name, d) in &deployments {
            decide::apply_deployment(record, name, Some(d));
        }
        Ok(persist)
    }
}
