//! A tick's step: host leases (refreshed after a lattice nobody handled for a whole lease, then
//! expired), and every application's deployment read again from the manifest store.

use wadm_lattice::{Changes, Timestamp, expire, refresh_leases};
use wadm_nats::store::StateStore;
use wadm_server::kv::Kv;
use wadm_server::status::StatusStore;

use super::Pipeline;
use super::inputs::every_host;
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
        let mut persist = Changes::default();
        let lease = self.config.lease.lease_ms();
        if record.updated_at > 0 && record.updated_at.saturating_add(lease) < now {
            // Nobody handled this lattice for a whole lease (every replica was down): give
            // hosts a fresh lease to be heard from before losing them.
            refresh_leases(&mut record.state, now);
            persist.merge(every_host(record));
        }
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
