//! Subject names of the lattice control interface and event stream.

/// The prefix of every control subject: `wasmbus.ctl.v1.{lattice}`.
pub fn ctl_prefix(lattice: &str) -> String {
    format!("wasmbus.ctl.v1.{lattice}")
}

/// A control subject: `wasmbus.ctl.v1.{lattice}.{suffix}` (e.g. `host.ping`, `link.put`).
pub fn ctl(lattice: &str, suffix: &str) -> String {
    format!("wasmbus.ctl.v1.{lattice}.{suffix}")
}

/// A host-addressed control subject: `wasmbus.ctl.v1.{lattice}.{suffix}.{host}`.
pub fn ctl_host(lattice: &str, suffix: &str, host_id: &str) -> String {
    format!("wasmbus.ctl.v1.{lattice}.{suffix}.{host_id}")
}

/// The subject of one event: `wasmbus.evt.{lattice}.{short}`.
pub fn event(lattice: &str, short: &str) -> String {
    format!("wasmbus.evt.{lattice}.{short}")
}

/// Every event of a lattice: `wasmbus.evt.{lattice}.>`.
pub fn events_of(lattice: &str) -> String {
    format!("wasmbus.evt.{lattice}.>")
}

/// Every event of every lattice: `wasmbus.evt.*.>`.
pub const ALL_EVENTS: &str = "wasmbus.evt.*.>";

/// The lattice named by an event subject `wasmbus.evt.{lattice}.…`.
pub fn lattice_of_event_subject(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("wasmbus.evt.")?;
    let (lattice, short) = rest.split_once('.')?;
    (!lattice.is_empty() && !short.is_empty()).then_some(lattice)
}

/// Control suffixes (the part after the lattice).
pub mod suffix {
    /// Ping every host; each answers with a [`Host`](crate::Host).
    pub const HOST_PING: &str = "host.ping";
    /// A host's full inventory (`.{host}`).
    pub const HOST_GET: &str = "host.get";
    /// Stop a host (`.{host}`).
    pub const HOST_STOP: &str = "host.stop";
    /// Scale a component on a host (`.{host}`).
    pub const COMPONENT_SCALE: &str = "component.scale";
    /// Change a running component's image (`.{host}`).
    pub const COMPONENT_UPDATE: &str = "component.update";
    /// Ask which hosts could run a component.
    pub const COMPONENT_AUCTION: &str = "component.auction";
    /// Start a provider on a host (`.{host}`).
    pub const PROVIDER_START: &str = "provider.start";
    /// Stop a provider on a host (`.{host}`).
    pub const PROVIDER_STOP: &str = "provider.stop";
    /// Ask which hosts could run a provider.
    pub const PROVIDER_AUCTION: &str = "provider.auction";
    /// Put a link.
    pub const LINK_PUT: &str = "link.put";
    /// Delete a link.
    pub const LINK_DEL: &str = "link.del";
    /// List every link.
    pub const LINK_GET: &str = "link.get";
    /// Put a config (`.{name}`).
    pub const CONFIG_PUT: &str = "config.put";
    /// Read a config (`.{name}`).
    pub const CONFIG_GET: &str = "config.get";
    /// Delete a config (`.{name}`).
    pub const CONFIG_DEL: &str = "config.del";
    /// List the claims of what runs.
    pub const CLAIMS_GET: &str = "claims.get";
    /// Set a host label (`.{host}`).
    pub const LABEL_PUT: &str = "label.put";
    /// Remove a host label (`.{host}`).
    pub const LABEL_DEL: &str = "label.del";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(ctl("default", suffix::HOST_PING), "wasmbus.ctl.v1.default.host.ping");
        assert_eq!(
            ctl_host("l", suffix::COMPONENT_SCALE, "NABC"),
            "wasmbus.ctl.v1.l.component.scale.NABC"
        );
        assert_eq!(lattice_of_event_subject("wasmbus.evt.l1.host_started"), Some("l1"));
        assert_eq!(lattice_of_event_subject("wasmbus.evt.l1"), None);
        assert_eq!(lattice_of_event_subject("other.evt.l1.x"), None);
    }
}
