//! The shared in-memory status store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wadm_model::Status;
use wadm_store::status::{StatusError, StatusStore};

/// Per `(lattice, app)`: the last status and how many times it changed.
type Statuses = BTreeMap<(String, String), (Status, u64)>;

/// Last status per `(lattice, app)`, with a count of changes. Clones share it.
#[derive(Clone, Default)]
pub struct MemoryStatus {
    inner: Arc<Mutex<Statuses>>,
}

impl MemoryStatus {
    /// How many times the application's status changed.
    pub fn changes(&self, lattice: &str, app: &str) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.get(&(lattice.to_string(), app.to_string())).map_or(0, |(_, n)| *n)
    }

    /// The current status, synchronously (for test assertions).
    pub fn current(&self, lattice: &str, app: &str) -> Option<Status> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.get(&(lattice.to_string(), app.to_string())).map(|(s, _)| s.clone())
    }
}

impl StatusStore for MemoryStatus {
    async fn get(&self, lattice: &str, app: &str) -> Result<Option<Status>, StatusError> {
        Ok(self.current(lattice, app))
    }

    async fn list(&self, lattice: &str) -> Result<BTreeMap<String, Status>, StatusError> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(inner
            .iter()
            .filter(|((l, _), _)| l == lattice)
            .map(|((_, a), (s, _))| (a.clone(), s.clone()))
            .collect())
    }

    async fn set(&self, lattice: &str, app: &str, status: &Status) -> Result<bool, StatusError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let entry = inner.entry((lattice.to_string(), app.to_string())).or_default();
        if &entry.0 == status && entry.1 > 0 {
            return Ok(false);
        }
        *entry = (status.clone(), entry.1 + 1);
        Ok(true)
    }

    async fn remove(&self, lattice: &str, app: &str) -> Result<(), StatusError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.remove(&(lattice.to_string(), app.to_string()));
        Ok(())
    }
}
