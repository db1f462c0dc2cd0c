//! How one reconcile names a host: its position among the observed hosts in id order.

/// Index of a host in [`Context::hosts`](crate::Context) (hosts are in id order).
pub type HostIx = u32;
