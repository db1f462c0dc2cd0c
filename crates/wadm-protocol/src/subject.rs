//! Subject names of the lattice control interface and event stream.

/// The prefix of every control subject: `wasmbus.ctl.v1.{lattice}` (see [`scoped`] for a lattice
/// of another account).
pub fn ctl_prefix(lattice: &str) -> String {
    scoped(lattice, |name| format!("wasmbus.ctl.v1.{name}"))
}

/// A control subject: `wasmbus.ctl.v1.{lattice}.{suffix}` (e.g. `host.ping`, `link.put`).
pub fn ctl(lattice: &str, suffix: &str) -> String {
    scoped(lattice, |name| format!("wasmbus.ctl.v1.{name}.{suffix}"))
}

/// A host-addressed control subject: `wasmbus.ctl.v1.{lattice}.{suffix}.{host}`.
pub fn ctl_host(lattice: &str, suffix: &str, host_id: &str) -> String {
    scoped(lattice, |name| format!("wasmbus.ctl.v1.{name}.{suffix}.{host_id}"))
}

/// The subject of one event: `wasmbus.evt.{lattice}.{short}`.
pub fn event(lattice: &str, short: &str) -> String {
    scoped(lattice, |name| format!("wasmbus.evt.{name}.{short}"))
}

/// Every event of a lattice: `wasmbus.evt.{lattice}.>`.
pub fn events_of(lattice: &str) -> String {
    scoped(lattice, |name| format!("wasmbus.evt.{name}.>"))
}

/// Every event of every lattice: `wasmbus.evt.*.>`.
pub const ALL_EVENTS: &str = "wasmbus.evt.*.>";

/// The lattice named by an event subject `[{account}.]wasmbus.evt.{lattice}.…`, qualified with
/// its account when it has one.
pub fn lattice_of_event_subject(subject: &str) -> Option<String> {
    let (account, rest) = unscope(subject);
    let rest = rest.strip_prefix("wasmbus.evt.")?;
    let (lattice, short) = rest.split_once('.')?;
    (!lattice.is_empty() && !short.is_empty()).then(|| qualify(account, lattice))
}

/// The roots of every subject wadm and the hosts use; an account token is never one of them.
pub const ROOTS: [&str; 2] = ["wasmbus", "wadm"];

/// A lattice of another NATS account (account-scoped mode) is named `{account}.{lattice}` inside
/// wadm: its account token and its own name. Every subject of such a lattice is the account token
/// followed by the subject an unscoped lattice has (`{account}.wasmbus.ctl.v1.{lattice}.…`), as
/// the account's exports map them into wadm's account; its storage keys and consumer names hold
/// the account too, so two accounts' lattices of one name never meet. A plain lattice name never
/// holds a `.` (see [`crate::names::lattice_error`]), so the two forms cannot be confused.
pub fn split_account(lattice: &str) -> (Option<&str>, &str) {
    match lattice.split_once('.') {
        Some((account, name)) => (Some(account), name),
        None => (None, lattice),
    }
}

/// `{account}.{lattice}`, or `lattice` alone without an account (see [`split_account`]).
pub fn qualify(account: Option<&str>, lattice: &str) -> String {
    match account {
        Some(account) => format!("{account}.{lattice}"),
        None => lattice.to_string(),
    }
}

/// The subject `make` builds from a lattice's own name, behind the lattice's account token when
/// it has one (see [`split_account`]).
pub fn scoped(lattice: &str, make: impl FnOnce(&str) -> String) -> String {
    match split_account(lattice) {
        (Some(account), name) => format!("{account}.{}", make(name)),
        (None, name) => make(name),
    }
}

/// A subject's account token, when its first token is not one of [`ROOTS`], and the rest.
pub fn unscope(subject: &str) -> (Option<&str>, &str) {
    match subject.split_once('.') {
        Some((first, rest)) if !ROOTS.contains(&first) => (Some(first), rest),
        _ => (None, subject),
    }
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
        assert_eq!(lattice_of_event_subject("wasmbus.evt.l1.host_started").unwrap(), "l1");
        assert_eq!(lattice_of_event_subject("wasmbus.evt.l1"), None);
        assert_eq!(lattice_of_event_subject("other.evt.l1.x"), None);
    }

    #[test]
    fn account_scoped_subjects() {
        assert_eq!(ctl("ACC.l", suffix::HOST_PING), "ACC.wasmbus.ctl.v1.l.host.ping");
        assert_eq!(ctl_host("ACC.l", suffix::HOST_GET, "N1"), "ACC.wasmbus.ctl.v1.l.host.get.N1");
        assert_eq!(ctl_prefix("ACC.l"), "ACC.wasmbus.ctl.v1.l");
        assert_eq!(event("ACC.l", "host_started"), "ACC.wasmbus.evt.l.host_started");
        assert_eq!(events_of("ACC.l"), "ACC.wasmbus.evt.l.>");
        assert_eq!(lattice_of_event_subject("ACC.wasmbus.evt.l.host_started").unwrap(), "ACC.l");
        assert_eq!(lattice_of_event_subject("ACC.other.evt.l.x"), None);
        assert_eq!(split_account("ACC.l"), (Some("ACC"), "l"));
        assert_eq!(split_account("l"), (None, "l"));
        assert_eq!(unscope("wadm.evt.l.x"), (None, "wadm.evt.l.x"));
        assert_eq!(unscope("ACC.wadm.evt.l.x"), (Some("ACC"), "wadm.evt.l.x"));
        for lattice in ["l", "ACC.l"] {
            let (account, name) = split_account(lattice);
            assert_eq!(qualify(account, name), lattice);
        }
    }
}
