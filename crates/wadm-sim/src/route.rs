//! Which control subject is which: parse the part after `wasmbus.ctl.v1.{lattice}.` into a
//! [`Route`] that says who answers (every host, one host of the lattice, or the addressed host).

use wadm_protocol::subject::suffix;

/// The kind of a control subject and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// Every host answers (`host.ping`, auctions).
    All(&'static str),
    /// Exactly one host of the lattice answers (`link.*`, `config.*`, `claims.get`); the
    /// argument is the config name where there is one.
    One(&'static str, Option<&'a str>),
    /// Only the addressed host answers.
    Host(&'static str, &'a str),
}

impl Route<'_> {
    /// The subject suffix without host id or config name (what [`crate::RequestCounts`] counts).
    pub fn kind(&self) -> &'static str {
        match self {
            Route::All(k) | Route::One(k, _) | Route::Host(k, _) => k,
        }
    }
}

const ALL: [&str; 3] = [suffix::HOST_PING, suffix::COMPONENT_AUCTION, suffix::PROVIDER_AUCTION];
const ONE: [&str; 4] = [suffix::LINK_PUT, suffix::LINK_DEL, suffix::LINK_GET, suffix::CLAIMS_GET];
const ONE_NAMED: [&str; 3] = [suffix::CONFIG_PUT, suffix::CONFIG_GET, suffix::CONFIG_DEL];
const HOST: [&str; 8] = [
    suffix::HOST_GET,
    suffix::HOST_STOP,
    suffix::COMPONENT_SCALE,
    suffix::COMPONENT_UPDATE,
    suffix::PROVIDER_START,
    suffix::PROVIDER_STOP,
    suffix::LABEL_PUT,
    suffix::LABEL_DEL,
];

/// Subjects (relative to the control prefix) subscribed plainly: every process sees them.
/// Host-addressed subjects are subscribed per host (see `host_sub.rs`).
pub fn plain_subscriptions() -> Vec<String> {
    ALL.iter().map(|s| s.to_string()).collect()
}

/// Subjects (relative to the control prefix) subscribed in a queue group: one process answers.
pub fn queue_subscriptions() -> Vec<String> {
    ONE.iter().map(|s| s.to_string()).chain(ONE_NAMED.iter().map(|s| format!("{s}.*"))).collect()
}

/// Parse a subject suffix (`component.scale.NABC…`).
pub fn route(rest: &str) -> Option<Route<'_>> {
    if let Some(kind) = ALL.iter().chain(ONE.iter()).find(|k| **k == rest) {
        return Some(if ALL.contains(kind) { Route::All(kind) } else { Route::One(kind, None) });
    }
    let (kind, arg) = rest.rsplit_once('.')?;
    if arg.is_empty() {
        return None;
    }
    if let Some(k) = ONE_NAMED.iter().find(|k| **k == kind) {
        return Some(Route::One(k, Some(arg)));
    }
    HOST.iter().find(|k| **k == kind).map(|k| Route::Host(k, arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("host.ping"), Some(Route::All("host.ping")));
        assert_eq!(route("link.get"), Some(Route::One("link.get", None)));
        assert_eq!(route("config.get.cfg"), Some(Route::One("config.get", Some("cfg"))));
        assert_eq!(route("component.scale.NX"), Some(Route::Host("component.scale", "NX")));
        assert_eq!(route("component.scale."), None);
        assert_eq!(route("host.ping.x"), None);
        assert_eq!(route("nope"), None);
        assert_eq!(plain_subscriptions().len(), 3);
        assert_eq!(queue_subscriptions().len(), 7);
    }
}
