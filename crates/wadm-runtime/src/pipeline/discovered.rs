//! Merging a discovery round (or one part of it) into a step's record: observed state, the
//! renewed leases of the hosts that answered, and the values of configs it
//! found.

use wadm_lattice::{Change, Changes, Timestamp};
use wadm_nats::store::StateStore;
use wadm_server::kv::Kv;
use wadm_server::status::StatusStore;

use super::Pipeline;
use crate::desired::DesiredSource;
use crate::io::{ControlClient, Outbox};
use crate::messages::DiscoveryReport;
use crate::parts::merge_report;
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
    /// Merge `report` into `record` at `now`; the entity changes to persist.
    pub(super) async fn merge_discovered(
        &self,
        record: &mut LatticeRecord,
        report: &DiscoveryReport,
        now: Timestamp,
        sequence: u64,
    ) -> Changes {
        let mut changes = merge_report(&mut record.state, report, now);
        tracing::debug!(
            lattice = %record.state.lattice, started_at = report.started_at,
            hosts = report.hosts.len(), changes = ?changes.changes, sequence, "discovery merged"
        );
        // Discovery renewed every answering host's lease: persist it.
        for (host, inventory) in &report.hosts {
            let inventory = inventory.as_ref().map(|i| i.host_id.as_str());
            let id = Some(host.id.as_str()).filter(|id| !id.is_empty());
            if let Some(host) = id.or(inventory)
                && record.state.hosts.contains_key(host)
            {
                let host = host.to_string();
                changes.changes.push(Change::HostUpdated { host });
            }
        }
        for change in &changes.changes {
            if let Change::ConfigSet { name } = change
                && record.state.configs.get(name).is_some_and(|c| c.values.is_none())
            {
                self.read_config(record, name).await;
            }
        }
        changes
    }
}
