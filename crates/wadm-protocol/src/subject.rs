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
    pub const HOST_PING: &str = "host.ping";
    pub const HOST_GET: &str = "host.get";
    pub const HOST_STOP: &str = "host.stop";
    pub const COMPONENT_SCALE: &str = "component.scale";
    pub const COMPONENT_UPDATE: &str = "component.update";
    pub const COMPONENT_AUCTION: &str = "component.auction";
    pub const PROVIDER_START: &str = "provider.start";
    pub const PROVIDER_STOP: &str = "provider.stop";
    pub const PROVIDER_AUCTION: &str = "provider.auction";
    pub const LINK_PUT: &str = "link.put";
    pub const LINK_DEL: &str = "link.del";
    pub const LINK_GET: &str = "link.get";
    pub const CONFIG_PUT: &str = "config.put";
    pub const CONFIG_GET: &str = "config.get";
    pub const CONFIG_DEL: &str = "config.del";
    pub const CLAIMS_GET: &str = "claims.get";
    pub const LABEL_PUT: &str = "label.put";
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
